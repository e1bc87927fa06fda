// Domain types shared by the core, the store and both transports.
import type { JobState } from './job-machine.ts';
import type { CostLedger, PricingBreakdown } from '../pricing/pricing.ts';

export type Encryption = 'none' | 'nip04' | 'nip44';
export type JobSource = 'nostr' | 'http';

export interface JobParams {
  maxTokens?: number; // advisory: lowers the output estimate, never raises it
  model?: string; // advisory hint, recorded only
  session?: string; // a pre-funded session (bound to the requester's pubkey) pays instead of invoices
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
}

export interface InvoiceRecord {
  paymentHash: string;
  jobId: string;
  purpose: 'eval' | 'work';
  amountMsats: number;
  bolt11: string;
  status: 'open' | 'paid' | 'expired';
  expiresAt: number; // unix s
  paidAt: number | null; // unix ms
}

/** NIP-90 feedback statuses Timmy publishes. */
export type FeedbackStatus = 'payment-required' | 'processing' | 'error' | 'success';

/**
 * What the core asks the Nostr side to publish, recorded in the transition's transaction.
 * `result` is built from the completed job row.
 */
export type PublishIntent =
  | {
      type: 'feedback';
      status: FeedbackStatus;
      message: string;
      amountMsats?: number;
      bolt11?: string;
      content?: string;
    }
  | { type: 'result'; balanceMsats?: number } // balance: the paying session's, after the debit
  | { type: 'bootstrap_result' }
  | { type: 'dm'; inboxRelays: string[] }; // NIP-17 credentials DM; empty inboxRelays: no 10050 list
