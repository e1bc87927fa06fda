// Identity events published at start: the kind 0 profile and the NIP-89 handler announcement (kind 31990).
import type { EventTemplate } from 'nostr-tools';

export interface HandlerInfo {
  kinds: number[];
  evalFeeSats: number;
  minWorkFeeSats: number;
  workModel: string;
  paymentsStub: boolean;
  agentStub: boolean;
  /** The lightning address Timmy receives zaps at (`<ZAP_NAME>@<host of PUBLIC_URL>`), when zaps are on. */
  lud16?: string;
}

const ABOUT =
  'Timmy: a paid AI agent. Post a NIP-90 text-generation request (kind 5050) p-tagged to me; pay a small evaluation fee, then the quoted work price, and get the answer.';

export function profileTemplate(info: HandlerInfo): EventTemplate {
  const about = info.agentStub ? `${ABOUT} (This instance runs the stub agent: answers are canned.)` : ABOUT;
  return {
    kind: 0,
    created_at: Math.floor(Date.now() / 1000),
    tags: [],
    content: JSON.stringify({ name: 'Timmy', display_name: 'Timmy', about, bot: true, ...(info.lud16 ? { lud16: info.lud16 } : {}) }),
  };
}

export function handlerTemplate(info: HandlerInfo): EventTemplate {
  const content = {
    name: 'Timmy',
    about: ABOUT,
    encryptionSupported: true,
    pricing: {
      evalFeeSats: info.evalFeeSats,
      minWorkFeeSats: info.minWorkFeeSats,
      work: `priced per request from estimated tokens of ${info.workModel}, quoted before you pay`,
    },
    payments: info.paymentsStub ? 'stub (test invoices only)' : 'lightning',
  };
  return {
    kind: 31990,
    created_at: Math.floor(Date.now() / 1000),
    tags: [['d', 'timmy'], ...info.kinds.map((k) => ['k', String(k)])],
    content: JSON.stringify(content),
  };
}
