// Domain types shared by the core, the store and both transports.
import type { JobState } from './job-machine.ts';
import type { BootstrapState } from './bootstrap-machine.ts';
import type { CostLedger, PricingBreakdown } from '../pricing/pricing.ts';
import type { WorkPrompt } from './ports.ts';

export type Encryption = 'none' | 'nip04' | 'nip44';
export type JobSource = 'nostr' | 'http';

export interface JobParams {
  maxTokens?: number; // advisory: lowers the output estimate, never raises it
  model?: string; // advisory hint, recorded only
  session?: string; // a pre-funded session (bound to the requester's pubkey) pays instead of invoices
  stream?: boolean; // NIP-90 `["param","stream","true"]`: `partial` feedback with the text so far while working
  chat?: WorkPrompt; // an OpenAI-style conversation (HTTP /v1/chat/completions); `input` is then its last user turn
}

/** A parsed job request, whichever transport it came by. */
export interface NewJob {
  id: string; // request event id (Nostr) or random 128-bit hex (HTTP)
  kind: number;
  source: JobSource;
  customerPubkey: string | null; // hex
  clientAddress: string | null;
  requestJson: string | null; // signed request event, verbatim
  encryption: Encryption;
  input: string;
  params: JobParams;
  relays: string[];
  bidMsats: number | null;
  requestCreatedAt: number; // unix s
  expiresAt: number | null; // unix s (NIP-40)
}

export interface Job extends NewJob {
  state: JobState;
  evalCreditMsats: number; // customer credit applied to the eval fee
  workCreditMsats: number; // customer credit applied to the work price
  sessionId: string | null; // the pre-funded session that pays for it
  evalPaymentHash: string | null;
  workPaymentHash: string | null;
  reason: string | null;
  pricing: PricingBreakdown | null;
  result: string | null;
  costLedger: CostLedger | null;
  errorMessage: string | null;
  createdAt: number; // unix ms
  updatedAt: number; // unix ms
  /** The worker running its step (evaluation, work; provisioning), and how often the step was taken: a move out of it names both. */
  leaseOwner: string | null;
  leaseEpoch: number;
}

/** What an invoice pays for: the subject (a text job, a session, a node order) and the stage. */
export type SubjectKind = 'job' | 'session' | 'bootstrap' | 'zap';
export type InvoicePurpose = 'eval' | 'work' | 'deposit' | 'topup' | 'order' | 'zap';

/** A row of the invoice book. `account` is the payer's credits account (pubkey, else `<kind>:<id>`). */
export interface BookInvoice {
  paymentHash: string;
  subjectKind: SubjectKind;
  subjectId: string;
  purpose: InvoicePurpose;
  account: string;
  amountMsats: number;
  bolt11: string;
  status: InvoiceStatus;
  expiresAt: number; // unix s
  paidAt: number | null; // unix ms
}

/** An invoice issued by the backend and addressed in the book, not yet recorded (the subject's transaction does). */
/** open: its subject waits for it; withdrawn: its subject gave up on it, yet it stays payable until it runs out. */
export type InvoiceStatus = 'open' | 'withdrawn' | 'paid' | 'expired';

export type NewBookInvoice = Omit<BookInvoice, 'status' | 'paidAt'>;

/** An entry of the credits ledger (SPEC 3.5); `ref` makes it happen once. */
export interface CreditEntry {
  account: string;
  deltaMsats: number; // + credit, - spend
  reason: string;
  jobId: string | null;
  ref: string;
}

/** A node order (SPEC 4). Its invoice is in the book (subject `bootstrap`, purpose `order`). */
export interface BootstrapJob {
  id: string;
  source: JobSource;
  state: BootstrapState;
  customerPubkey: string | null;
  clientAddress: string | null;
  requestJson: string | null;
  relays: string[];
  size: string;
  region: string;
  customerSshKey: string | null;
  amountMsats: number; // the price
  claimTokenHash: string | null;
  secretsEnc: string | null;
  nodeNpub: string | null;
  sshPublicKey: string | null;
  ip: string | null;
  tailscaleHostname: string | null;
  sshUser: string | null;
  dropletId: string | null;
  progress: string | null;
  errorMessage: string | null;
  readyAt: number | null; // unix ms
  erasedAt: number | null; // unix ms
  createdAt: number; // unix ms
  updatedAt: number; // unix ms
  /** The worker running its step (evaluation, work; provisioning), and how often the step was taken: a move out of it names both. */
  leaseOwner: string | null;
  leaseEpoch: number;
}

/** NIP-90 feedback statuses Timmy publishes. */
export type FeedbackStatus = 'payment-required' | 'processing' | 'partial' | 'error' | 'success';

/**
 * What the core asks the Nostr side to publish, recorded in the transition's transaction.
 * `result` is built from the completed job row.
 */
export type PublishIntent =
  | {
      type: 'feedback';
      status: FeedbackStatus;
      message: string;
      /** For `error`: the reason's public prefix, the only part shown in the clear for encrypted requests. */
      label?: string;
      amountMsats?: number;
      bolt11?: string;
      content?: string;
    }
  | { type: 'result'; balanceMsats?: number } // balance: the paying session's, after the debit
  | { type: 'bootstrap_result' }
  | { type: 'dm'; inboxRelays: string[] } // NIP-17 credentials DM; empty inboxRelays: no 10050 list
  | { type: 'zap_receipt'; zapRequest: string; bolt11: string; paidAt: number; relays: string[] }; // NIP-57 kind 9735; paidAt unix s

/** A recorded publish intent, and once signed, its event (the outbox row). */
export interface OutboxRow {
  id: number;
  jobId: string | null; // the subject the event is about (job or node order id)
  intent: PublishIntent;
  eventId: string | null;
  signedJson: string | null;
  createdAt: number; // unix ms
  ackedAt: number | null;
}
