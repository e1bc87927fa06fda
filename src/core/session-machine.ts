// The pre-funded session lifecycle (SPEC 6) as data.

export const SESSION_STATES = ['awaiting_deposit', 'active', 'depleted', 'expired', 'closed'] as const;
export type SessionState = (typeof SESSION_STATES)[number];

export const SESSION_EVENTS = ['deposit_paid', 'spent', 'topped_up', 'expired', 'closed'] as const;
export type SessionEvent = (typeof SESSION_EVENTS)[number];

/** Allowed moves: state -> event -> next state. A top-up revives an idle-expired session. */
export const SESSION_TRANSITIONS: Readonly<Record<SessionState, Partial<Record<SessionEvent, SessionState>>>> = {
  awaiting_deposit: { deposit_paid: 'active', expired: 'expired' },
  active: { spent: 'depleted', expired: 'expired', closed: 'closed' },
  depleted: { topped_up: 'active', expired: 'expired', closed: 'closed' },
  expired: { topped_up: 'active' },
  closed: {},
};

export function nextSessionState(state: SessionState, event: SessionEvent): SessionState | null {
  return SESSION_TRANSITIONS[state][event] ?? null;
}

export function isSessionState(s: string): s is SessionState {
  return (SESSION_STATES as readonly string[]).includes(s);
}

/** States in which requests may be reserved against the balance. */
export const SPENDABLE_SESSION_STATES: readonly SessionState[] = ['active', 'depleted'];
