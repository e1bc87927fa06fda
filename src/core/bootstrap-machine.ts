// The node bootstrap job lifecycle (SPEC 4) as data.

export const BOOTSTRAP_STATES = ['awaiting_payment', 'provisioning', 'ready', 'delivered', 'expired', 'failed'] as const;
export type BootstrapState = (typeof BOOTSTRAP_STATES)[number];

export const BOOTSTRAP_EVENTS = ['paid', 'provisioned', 'delivered', 'invoice_expired', 'failed'] as const;
export type BootstrapEvent = (typeof BOOTSTRAP_EVENTS)[number];

/** Allowed moves: state -> event -> next state. */
export const BOOTSTRAP_TRANSITIONS: Readonly<Record<BootstrapState, Partial<Record<BootstrapEvent, BootstrapState>>>> = {
  awaiting_payment: { paid: 'provisioning', invoice_expired: 'expired' },
  provisioning: { provisioned: 'ready', failed: 'failed' },
  ready: { delivered: 'delivered' },
  delivered: {},
  expired: {},
  failed: {},
};

export function nextBootstrapState(state: BootstrapState, event: BootstrapEvent): BootstrapState | null {
  return BOOTSTRAP_TRANSITIONS[state][event] ?? null;
}

export function isBootstrapState(s: string): s is BootstrapState {
  return (BOOTSTRAP_STATES as readonly string[]).includes(s);
}
