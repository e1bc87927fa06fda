// The store's tables for PostgreSQL: schema/tables.ts table for table (meanings and units are there), in pg-core.
// `npm run db:generate` writes schema/migrations-pg from this file; test/schema-agreement.test.ts keeps the two equal.
// Unix ms and s, msats and counters are bigint (int4 stops at 2.1e9); small counts and kinds are integer.
import { sql } from 'drizzle-orm';
import { pgTable, text, integer, bigint, boolean, index, primaryKey } from 'drizzle-orm/pg-core';

export const jobs = pgTable(
  'jobs',
  {
    id: text('id').primaryKey(),
    kind: integer('kind').notNull(),
    source: text('source', { enum: ['nostr', 'http'] }).notNull(),
    state: text('state').notNull(),
    customerPubkey: text('customer_pubkey'),
    clientAddress: text('client_address'),
    requestJson: text('request_json'), // text, not jsonb: a signed event verbatim
    encryption: text('encryption', { enum: ['none', 'nip04', 'nip44'] }).notNull().default('none'),
    input: text('input').notNull(),
    paramsJson: text('params_json').notNull().default('{}'),
    relaysJson: text('relays_json').notNull().default('[]'),
    bidMsats: bigint('bid_msats', { mode: 'number' }),
    evalCreditMsats: bigint('eval_credit_msats', { mode: 'number' }).notNull().default(0),
    workCreditMsats: bigint('work_credit_msats', { mode: 'number' }).notNull().default(0),
    sessionId: text('session_id'),
    evalPaymentHash: text('eval_payment_hash'),
    workPaymentHash: text('work_payment_hash'),
    reason: text('reason'),
    pricingJson: text('pricing_json'),
    result: text('result'),
    costLedgerJson: text('cost_ledger_json'),
    errorMessage: text('error_message'),
    requestCreatedAt: bigint('request_created_at', { mode: 'number' }).notNull(), // unix s, as the customer sent it
    expiresAt: bigint('expires_at', { mode: 'number' }), // unix s, as the customer sent it
    createdAt: bigint('created_at', { mode: 'number' }).notNull(),
    updatedAt: bigint('updated_at', { mode: 'number' }).notNull(),
    leaseOwner: text('lease_owner'),
    leaseUntil: bigint('lease_until', { mode: 'number' }),
    leaseEpoch: integer('lease_epoch').notNull().default(0),
  },
  (t) => [
    index('jobs_state').on(t.state, t.createdAt),
    index('jobs_customer_state').on(t.customerPubkey, t.state).where(sql`customer_pubkey is not null`),
    index('jobs_client_state').on(t.clientAddress, t.state).where(sql`client_address is not null`),
    index('jobs_working_lease').on(t.leaseUntil).where(sql`state in ('evaluating', 'executing')`),
  ],
);

export const invoiceBook = pgTable(
  'invoice_book',
  {
    paymentHash: text('payment_hash').primaryKey(),
    subjectKind: text('subject_kind', { enum: ['job', 'session', 'bootstrap', 'zap'] }).notNull(),
    subjectId: text('subject_id').notNull(),
    purpose: text('purpose', { enum: ['eval', 'work', 'deposit', 'topup', 'order', 'zap'] }).notNull(),
    account: text('account').notNull(),
    amountMsats: bigint('amount_msats', { mode: 'number' }).notNull(),
    bolt11: text('bolt11').notNull(),
    status: text('status', { enum: ['open', 'withdrawn', 'paid', 'expired'] }).notNull(),
    expiresAt: bigint('expires_at', { mode: 'number' }).notNull(),
    paidAt: bigint('paid_at', { mode: 'number' }),
    createdAt: bigint('created_at', { mode: 'number' }).notNull(),
  },
  (t) => [
    index('invoice_book_live_expiry').on(t.expiresAt).where(sql`status in ('open', 'withdrawn')`),
    index('invoice_book_live_hash').on(t.paymentHash).where(sql`status in ('open', 'withdrawn')`),
    index('invoice_book_open_age').on(t.subjectKind, t.purpose, t.createdAt).where(sql`status = 'open'`),
    index('invoice_book_subject').on(t.subjectKind, t.subjectId),
  ],
);

export const counters = pgTable('counters', {
  name: text('name').primaryKey(),
  value: bigint('value', { mode: 'number' }).notNull(),
});

export const outbox = pgTable(
  'outbox',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedByDefaultAsIdentity(),
    jobId: text('job_id'),
    intentJson: text('intent_json').notNull(),
    eventId: text('event_id'),
    signedJson: text('signed_json'),
    createdAt: bigint('created_at', { mode: 'number' }).notNull(),
    signedAt: bigint('signed_at', { mode: 'number' }),
    ackedAt: bigint('acked_at', { mode: 'number' }),
    attempts: integer('attempts').notNull().default(0),
    // Who sends it now (several workers over PostgreSQL): claimed with a lease, taken over once it ran out.
    leaseOwner: text('lease_owner'),
    leaseUntil: bigint('lease_until', { mode: 'number' }),
  },
  (t) => [
    index('outbox_unsigned').on(t.id).where(sql`signed_json is null`),
    index('outbox_unacked').on(t.id).where(sql`acked_at is null`),
    index('outbox_job').on(t.jobId),
    index('outbox_event').on(t.eventId),
  ],
);

export const zaps = pgTable(
  'zaps',
  {
    id: text('id').primaryKey(),
    paymentHash: text('payment_hash').notNull().unique(),
    senderPubkey: text('sender_pubkey').notNull(),
    targetEventId: text('target_event_id'),
    targetJobId: text('target_job_id'),
    targetSessionId: text('target_session_id'),
    targetPaymentHash: text('target_payment_hash'),
    amountMsats: bigint('amount_msats', { mode: 'number' }).notNull(),
    requestJson: text('request_json').notNull(), // text, not jsonb: its SHA-256 is the invoice's description hash
    relaysJson: text('relays_json').notNull(),
    outcome: text('outcome', { enum: ['paid_eval', 'paid_work', 'paid_deposit', 'paid_topup', 'credited', 'tip'] }),
    createdAt: bigint('created_at', { mode: 'number' }).notNull(),
    paidAt: bigint('paid_at', { mode: 'number' }),
  },
  (t) => [index('zaps_target_job').on(t.targetJobId)],
);

export const outboxAcks = pgTable(
  'outbox_acks',
  {
    outboxId: bigint('outbox_id', { mode: 'number' }).notNull(),
    relay: text('relay').notNull(),
    ok: boolean('ok').notNull(),
    message: text('message').notNull(),
    at: bigint('at', { mode: 'number' }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.outboxId, t.relay] })],
);

export const credits = pgTable(
  'credits',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedByDefaultAsIdentity(),
    account: text('account').notNull(),
    deltaMsats: bigint('delta_msats', { mode: 'number' }).notNull(),
    reason: text('reason').notNull(),
    jobId: text('job_id'),
    ref: text('ref').notNull().unique(),
    createdAt: bigint('created_at', { mode: 'number' }).notNull(),
  },
  (t) => [index('credits_account').on(t.account)],
);

export const sessions = pgTable(
  'sessions',
  {
    id: text('id').primaryKey(),
    state: text('state').notNull(),
    pubkey: text('pubkey'),
    clientAddress: text('client_address'),
    origin: text('origin', { enum: ['http', 'l402'] }).notNull(),
    createdAt: bigint('created_at', { mode: 'number' }).notNull(),
    lastUsedAt: bigint('last_used_at', { mode: 'number' }).notNull(),
    updatedAt: bigint('updated_at', { mode: 'number' }).notNull(),
  },
  (t) => [index('sessions_state').on(t.state), index('sessions_client').on(t.clientAddress, t.state)],
);

export const sessionLedger = pgTable(
  'session_ledger',
  {
    id: bigint('id', { mode: 'number' }).primaryKey().generatedByDefaultAsIdentity(),
    sessionId: text('session_id').notNull(),
    kind: text('kind', { enum: ['deposit', 'topup', 'reserve', 'release', 'debit', 'expire', 'close'] }).notNull(),
    amountMsats: bigint('amount_msats', { mode: 'number' }).notNull(),
    jobId: text('job_id'),
    paymentHash: text('payment_hash'),
    ref: text('ref').notNull().unique(),
    createdAt: bigint('created_at', { mode: 'number' }).notNull(),
  },
  (t) => [index('session_ledger_session').on(t.sessionId), index('session_ledger_job').on(t.jobId)],
);

export const bootstrapJobs = pgTable(
  'bootstrap_jobs',
  {
    id: text('id').primaryKey(),
    source: text('source', { enum: ['nostr', 'http'] }).notNull(),
    state: text('state').notNull(),
    customerPubkey: text('customer_pubkey'),
    clientAddress: text('client_address'),
    requestJson: text('request_json'),
    relaysJson: text('relays_json').notNull().default('[]'),
    size: text('size').notNull(),
    region: text('region').notNull(),
    customerSshKey: text('customer_ssh_key'),
    amountMsats: bigint('amount_msats', { mode: 'number' }).notNull(),
    claimTokenHash: text('claim_token_hash'),
    secretsEnc: text('secrets_enc'),
    nodeNpub: text('node_npub'),
    sshPublicKey: text('ssh_public_key'),
    ip: text('ip'),
    tailscaleHostname: text('tailscale_hostname'),
    sshUser: text('ssh_user'),
    dropletId: text('droplet_id'),
    progress: text('progress'),
    errorMessage: text('error_message'),
    readyAt: bigint('ready_at', { mode: 'number' }),
    erasedAt: bigint('erased_at', { mode: 'number' }),
    createdAt: bigint('created_at', { mode: 'number' }).notNull(),
    updatedAt: bigint('updated_at', { mode: 'number' }).notNull(),
    leaseOwner: text('lease_owner'),
    leaseUntil: bigint('lease_until', { mode: 'number' }),
    leaseEpoch: integer('lease_epoch').notNull().default(0),
  },
  (t) => [
    index('bootstrap_state').on(t.state),
    index('bootstrap_customer_state').on(t.customerPubkey, t.state),
    index('bootstrap_client_state').on(t.clientAddress, t.state),
    index('bootstrap_working_lease').on(t.leaseUntil).where(sql`state = 'provisioning'`),
  ],
);

export const rateHits = pgTable(
  'rate_hits',
  {
    key: text('key').notNull(),
    at: bigint('at', { mode: 'number' }).notNull(),
  },
  (t) => [index('rate_hits_key_at').on(t.key, t.at)],
);

/**
 * Who answers a Nostr request (several workers hear each one): claimed before anything is invoiced, until
 * the job is recorded or the claim runs out (its worker died; another then answers). Pruned once past.
 */
export const requestClaims = pgTable('request_claims', {
  id: text('id').primaryKey(), // the request's event id
  owner: text('owner').notNull(),
  until: bigint('until', { mode: 'number' }).notNull(), // unix ms
});

export const kv = pgTable('kv', {
  key: text('key').primaryKey(),
  value: text('value').notNull(),
});

export const stubInvoices = pgTable('stub_invoices', {
  paymentHash: text('payment_hash').primaryKey(),
  preimage: text('preimage').notNull(),
  bolt11: text('bolt11').notNull(),
  amountMsats: bigint('amount_msats', { mode: 'number' }).notNull(),
  expiresAt: bigint('expires_at', { mode: 'number' }).notNull(),
  paidAt: bigint('paid_at', { mode: 'number' }),
});
