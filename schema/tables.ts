// The store's tables: the one source of truth. `npm run db:generate` writes schema/migrations from this file.
import { sql } from 'drizzle-orm';
import { sqliteTable, text, integer, index, primaryKey } from 'drizzle-orm/sqlite-core';

/**
 * One row per job request received (Nostr request event id, or a random id for HTTP jobs).
 * The primary key is the dedupe: the same request from three relays is one row.
 */
export const jobs = sqliteTable(
  'jobs',
  {
    id: text('id').primaryKey(),
    kind: integer('kind').notNull(), // request kind, e.g. 5050
    source: text('source', { enum: ['nostr', 'http'] }).notNull(),
    state: text('state').notNull(),
    customerPubkey: text('customer_pubkey'), // hex; null for anonymous HTTP jobs
    clientAddress: text('client_address'), // HTTP client address, for per-client caps
    requestJson: text('request_json'), // the signed request event, verbatim (Nostr jobs)
    encryption: text('encryption', { enum: ['none', 'nip04', 'nip44'] }).notNull().default('none'),
    input: text('input').notNull(),
    paramsJson: text('params_json').notNull().default('{}'),
    relaysJson: text('relays_json').notNull().default('[]'), // the request's `relays` tag
    bidMsats: integer('bid_msats'),
    evalCreditMsats: integer('eval_credit_msats').notNull().default(0), // customer credit applied to the eval fee
    workCreditMsats: integer('work_credit_msats').notNull().default(0), // customer credit applied to the work price
    sessionId: text('session_id'), // set when a pre-funded session pays instead of invoices
    evalPaymentHash: text('eval_payment_hash'),
    workPaymentHash: text('work_payment_hash'),
    reason: text('reason'), // eval verdict reason
    pricingJson: text('pricing_json'),
    result: text('result'),
    costLedgerJson: text('cost_ledger_json'),
    errorMessage: text('error_message'),
    requestCreatedAt: integer('request_created_at').notNull(), // unix s, from the request
    expiresAt: integer('expires_at'), // unix s, NIP-40 expiration of the request
    createdAt: integer('created_at').notNull(), // unix ms
    updatedAt: integer('updated_at').notNull(), // unix ms
    // The worker running this job's step (several workers on one PostgreSQL; SQLite: this process), until when
    // (unix ms, the database's clock), and how often it was taken: a move out of the step must name both.
    leaseOwner: text('lease_owner'),
    leaseUntil: integer('lease_until'),
    leaseEpoch: integer('lease_epoch').notNull().default(0),
  },
  (t) => [
    index('jobs_state').on(t.state, t.createdAt),
    // Partial: a Nostr job has no client address, an HTTP job no pubkey; neither pays for the other's index.
    index('jobs_customer_state').on(t.customerPubkey, t.state).where(sql`customer_pubkey is not null`),
    index('jobs_client_state').on(t.clientAddress, t.state).where(sql`client_address is not null`),
    index('jobs_working_lease').on(t.leaseUntil).where(sql`state in ('evaluating', 'executing')`),
  ],
);

/**
 * The invoice book: every invoice Timmy issued, for whatever it pays (a job's eval or work stage, a
 * session's deposit or top-up, a node order). `subject_kind` + `subject_id` name the thing paid for;
 * `account` is the credits account of whoever pays (their pubkey, else `<subject_kind>:<subject_id>`),
 * where the money goes if it arrives after the subject stopped waiting for it.
 */
export const invoiceBook = sqliteTable(
  'invoice_book',
  {
    paymentHash: text('payment_hash').primaryKey(),
    subjectKind: text('subject_kind', { enum: ['job', 'session', 'bootstrap', 'zap'] }).notNull(),
    subjectId: text('subject_id').notNull(),
    purpose: text('purpose', { enum: ['eval', 'work', 'deposit', 'topup', 'order', 'zap'] }).notNull(),
    account: text('account').notNull(),
    amountMsats: integer('amount_msats').notNull(), // what the payer owes
    bolt11: text('bolt11').notNull(),
    // open: its subject waits for it; withdrawn: the subject gave up on it (cancelled, evicted) but it can still
    // be paid until it runs out, and that money is credited; paid; expired.
    status: text('status', { enum: ['open', 'withdrawn', 'paid', 'expired'] }).notNull(),
    expiresAt: integer('expires_at').notNull(), // unix s
    paidAt: integer('paid_at'), // unix ms
    createdAt: integer('created_at').notNull(), // unix ms
  },
  (t) => [
    // Partial: only live invoices (open or withdrawn: payable) are looked for by expiry (the expiry pass) or
    // paged (the resume pass); only open ones by age (the oldest unpaid evaluation makes room under a flood).
    index('invoice_book_live_expiry').on(t.expiresAt).where(sql`status in ('open', 'withdrawn')`),
    index('invoice_book_live_hash').on(t.paymentHash).where(sql`status in ('open', 'withdrawn')`),
    index('invoice_book_open_age').on(t.subjectKind, t.purpose, t.createdAt).where(sql`status = 'open'`),
    index('invoice_book_subject').on(t.subjectKind, t.subjectId),
  ],
);

/**
 * Counts kept in step with the rows they count, in the same transactions (so a per-request cap check
 * reads one row instead of counting open work): `open_invoices:<subject kind>`.
 */
export const counters = sqliteTable('counters', {
  name: text('name').primaryKey(),
  value: integer('value').notNull(),
});

/**
 * Publish intents, written in the same transaction as the transition that causes them.
 * The Nostr side signs each once (signed_json) and sends it until a relay acks it.
 */
export const outbox = sqliteTable(
  'outbox',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    jobId: text('job_id'),
    intentJson: text('intent_json').notNull(),
    eventId: text('event_id'),
    signedJson: text('signed_json'),
    createdAt: integer('created_at').notNull(), // unix ms
    signedAt: integer('signed_at'),
    ackedAt: integer('acked_at'), // first relay OK true (or duplicate)
    attempts: integer('attempts').notNull().default(0),
    // Who sends it now (several workers over PostgreSQL): claimed with a lease, taken over once it ran out.
    leaseOwner: text('lease_owner'),
    leaseUntil: integer('lease_until'),
  },
  (t) => [
    // Partial: only intents still to sign, and events still waiting for an ack, are looked for; signing
    // (or the ack) takes the row out, so each drain costs what is pending, not the table's size.
    index('outbox_unsigned').on(t.id).where(sql`signed_json is null`),
    index('outbox_unacked').on(t.id).where(sql`acked_at is null`),
    index('outbox_job').on(t.jobId),
    index('outbox_event').on(t.eventId),
  ],
);

/**
 * NIP-57 zaps: one row per zap request (kind 9734) Timmy issued an invoice for (its invoice is in the book,
 * subject kind `zap`). `target_job_id` is the job the zap's `e` tag points at (the request, or one of its
 * feedback events); `target_session_id` + `target_payment_hash` the session invoice a profile zap from
 * the session's bound pubkey pays; both null for a tip. `outcome` is set once when the invoice is paid:
 * the job stage or session invoice it paid, credited (too little, or nothing waited any more), or a tip.
 */
export const zaps = sqliteTable(
  'zaps',
  {
    id: text('id').primaryKey(), // the zap request's event id
    paymentHash: text('payment_hash').notNull().unique(),
    senderPubkey: text('sender_pubkey').notNull(),
    targetEventId: text('target_event_id'),
    targetJobId: text('target_job_id'),
    // A profile zap (no `e`) from the pubkey a session is bound to, while that session has an open deposit
    // or top-up invoice: the zap pays that invoice.
    targetSessionId: text('target_session_id'),
    targetPaymentHash: text('target_payment_hash'),
    amountMsats: integer('amount_msats').notNull(),
    requestJson: text('request_json').notNull(), // exactly as received: its SHA-256 is the invoice's description hash
    relaysJson: text('relays_json').notNull(), // where the receipt goes (the request's relays, through the relay policy)
    outcome: text('outcome', { enum: ['paid_eval', 'paid_work', 'paid_deposit', 'paid_topup', 'credited', 'tip'] }),
    createdAt: integer('created_at').notNull(), // unix ms
    paidAt: integer('paid_at'), // unix ms
  },
  (t) => [index('zaps_target_job').on(t.targetJobId)],
);

/** OK answers per relay for each outbox event. */
export const outboxAcks = sqliteTable(
  'outbox_acks',
  {
    outboxId: integer('outbox_id').notNull(),
    relay: text('relay').notNull(),
    ok: integer('ok', { mode: 'boolean' }).notNull(),
    message: text('message').notNull(),
    at: integer('at').notNull(), // unix ms
  },
  (t) => [primaryKey({ columns: [t.outboxId, t.relay] })],
);

/**
 * The credits ledger (SPEC 3.5): money received for work not delivered, spent before new invoices.
 * `account` is the payer's pubkey (hex), or `job:<id>` for anonymous HTTP jobs. `ref` makes each
 * entry happen once (e.g. `fail:<job>`, `late:<payment hash>`, `spend-eval:<job>`).
 */
export const credits = sqliteTable(
  'credits',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    account: text('account').notNull(),
    deltaMsats: integer('delta_msats').notNull(), // + credit, - spend
    reason: text('reason').notNull(),
    jobId: text('job_id'),
    ref: text('ref').notNull().unique(),
    createdAt: integer('created_at').notNull(), // unix ms
  },
  (t) => [index('credits_account').on(t.account)],
);

/** Pre-funded sessions (SPEC 6). The balance is never stored: it is the sum of the session's ledger. */
export const sessions = sqliteTable(
  'sessions',
  {
    id: text('id').primaryKey(), // random 128-bit hex
    state: text('state').notNull(),
    pubkey: text('pubkey'), // hex; Nostr requests from it may spend the session
    clientAddress: text('client_address'),
    origin: text('origin', { enum: ['http', 'l402'] }).notNull(),
    createdAt: integer('created_at').notNull(), // unix ms
    lastUsedAt: integer('last_used_at').notNull(), // unix ms; the TTL counts from here
    updatedAt: integer('updated_at').notNull(), // unix ms
  },
  (t) => [index('sessions_state').on(t.state), index('sessions_client').on(t.clientAddress, t.state)],
);

/**
 * Every movement of a session's money: deposit, topup (+), reserve (-), release (+), debit (-),
 * expire/close (- what moved to the credits ledger). `ref` makes each entry happen once.
 */
export const sessionLedger = sqliteTable(
  'session_ledger',
  {
    id: integer('id').primaryKey({ autoIncrement: true }),
    sessionId: text('session_id').notNull(),
    kind: text('kind', { enum: ['deposit', 'topup', 'reserve', 'release', 'debit', 'expire', 'close'] }).notNull(),
    amountMsats: integer('amount_msats').notNull(), // signed
    jobId: text('job_id'),
    paymentHash: text('payment_hash'),
    ref: text('ref').notNull().unique(),
    createdAt: integer('created_at').notNull(), // unix ms
  },
  (t) => [index('session_ledger_session').on(t.sessionId), index('session_ledger_job').on(t.jobId)],
);

/**
 * Node bootstrap jobs (SPEC 4); their invoice is in the invoice book. Node credentials are kept only encrypted
 * (`secrets_enc`, AES-256-GCM with the data-directory key) and erased once delivered or after the TTL.
 */
export const bootstrapJobs = sqliteTable(
  'bootstrap_jobs',
  {
    id: text('id').primaryKey(), // request event id (Nostr) or random 128-bit hex (HTTP)
    source: text('source', { enum: ['nostr', 'http'] }).notNull(),
    state: text('state').notNull(),
    customerPubkey: text('customer_pubkey'),
    clientAddress: text('client_address'),
    requestJson: text('request_json'),
    relaysJson: text('relays_json').notNull().default('[]'),
    size: text('size').notNull(),
    region: text('region').notNull(),
    customerSshKey: text('customer_ssh_key'),
    amountMsats: integer('amount_msats').notNull(), // the order's price; its invoice is in the invoice book
    claimTokenHash: text('claim_token_hash'), // sha256 of the HTTP claim token
    secretsEnc: text('secrets_enc'), // encrypted NodeSecrets JSON; null before generation and after erasure
    nodeNpub: text('node_npub'),
    sshPublicKey: text('ssh_public_key'),
    ip: text('ip'),
    tailscaleHostname: text('tailscale_hostname'),
    sshUser: text('ssh_user'),
    dropletId: text('droplet_id'),
    progress: text('progress'),
    errorMessage: text('error_message'),
    readyAt: integer('ready_at'), // unix ms
    erasedAt: integer('erased_at'), // unix ms
    createdAt: integer('created_at').notNull(), // unix ms
    updatedAt: integer('updated_at').notNull(), // unix ms
    // The worker running this order's provisioning (several workers on one PostgreSQL; SQLite: this process), until when
    // (unix ms, the database's clock), and how often it was taken: a move out of the step must name both.
    leaseOwner: text('lease_owner'),
    leaseUntil: integer('lease_until'),
    leaseEpoch: integer('lease_epoch').notNull().default(0),
  },
  (t) => [
    index('bootstrap_state').on(t.state),
    index('bootstrap_customer_state').on(t.customerPubkey, t.state),
    index('bootstrap_client_state').on(t.clientAddress, t.state),
    index('bootstrap_working_lease').on(t.leaseUntil).where(sql`state = 'provisioning'`),
  ],
);

/** Hits on a rate-limited key (the demo: per client address), shared by every worker; pruned after the window. */
export const rateHits = sqliteTable(
  'rate_hits',
  {
    key: text('key').notNull(),
    at: integer('at').notNull(), // unix ms
  },
  (t) => [index('rate_hits_key_at').on(t.key, t.at)],
);

/**
 * Who answers a Nostr request (several workers hear each one): claimed before anything is invoiced, until
 * the job is recorded or the claim runs out (its worker died; another then answers). Pruned once past.
 */
export const requestClaims = sqliteTable('request_claims', {
  id: text('id').primaryKey(), // the request's event id
  owner: text('owner').notNull(),
  until: integer('until').notNull(), // unix ms
});

/** Small named values: the subscription cursor, the stub node key. */
export const kv = sqliteTable('kv', {
  key: text('key').primaryKey(),
  value: text('value').notNull(),
});

/** The in-process stub Lightning node's own invoices (what LNbits would hold). */
export const stubInvoices = sqliteTable('stub_invoices', {
  paymentHash: text('payment_hash').primaryKey(),
  preimage: text('preimage').notNull(),
  bolt11: text('bolt11').notNull(),
  amountMsats: integer('amount_msats').notNull(),
  expiresAt: integer('expires_at').notNull(), // unix s
  paidAt: integer('paid_at'), // unix ms
});
