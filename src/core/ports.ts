// The ports: the small interfaces the core owns and the outside systems implement (payments, AI,
// provisioner), plus the core's own seams (clock, publisher, inbox lookup). Adapters import from here;
// the core never imports an adapter.

/** Whether an outside system answers, as last seen: `detail` says what was seen, for operators. */
export interface Health {
  ok: boolean;
  detail: string;
}

// --- payments: create invoices, learn when they are paid ---

/** An invoice as the core and clients see it. */
export interface Invoice {
  paymentHash: string; // hex
  bolt11: string;
  amountMsats: number;
  expiresAt: number; // unix s
}

export interface InvoiceRequest {
  amountMsats: number;
  memo: string;
  expirySecs: number;
  /** Hex SHA-256 the invoice commits to instead of `memo` (BOLT11 `h`; NIP-57 zaps: of the zap request). */
  descriptionHash?: string;
}

/** What the core needs of a Lightning backend (stub, LNbits). */
export interface PaymentBackend {
  readonly name: 'stub' | 'lnbits' | 'nwc';
  /** As last seen (cheap: a stale reading starts a check in the background); absent = always answers. */
  health?(): Health;
  createInvoice(req: InvoiceRequest): Promise<Invoice>;
  /** Asks the backend whether an invoice is settled (the poll path; settlements are also pushed). */
  isPaid(paymentHash: string): Promise<boolean>;
  /** Registers the one settlement listener; it may be called more than once per invoice. */
  onSettled(listener: (paymentHash: string) => void): void;
  /**
   * Puts an invoice from an earlier process under watch (settlements are then pushed or polled, paced by
   * the backend). Backends without it are asked with isPaid instead.
   */
  watch?(paymentHash: string, expiresAt: number): void;
  close(): Promise<void>;
}

export class PaymentError extends Error {
  override name = 'PaymentError';
}

// --- AI: an eval verdict and a work answer, each with token usage ---

export interface Usage {
  model: string;
  inputTokens: number;
  outputTokens: number;
}

export interface Verdict {
  accept: boolean;
  reason: string;
  usage: Usage;
}

export interface WorkAnswer {
  text: string;
  usage: Usage;
  /** The caller went away mid-answer: `text` is what was generated until then, `usage` what it cost (estimated where the API had not said). */
  aborted?: boolean;
}

/** One turn of a conversation (system turns are taken out into `WorkPrompt.system`). */
export interface ChatTurn {
  role: 'user' | 'assistant';
  content: string;
}

/** A conversation for the work model: the customer's system prompt (Timmy's when absent) and the turns, the first one the user's. */
export interface WorkPrompt {
  system?: string;
  turns: ChatTurn[];
}

/** How a streamed answer is followed: each piece of text as it comes, and a signal that stops the generation. */
export interface StreamHooks {
  onText?: (delta: string) => void;
  signal?: AbortSignal;
}

/** What the core needs of a model provider (stub, Anthropic). */
export interface Agent {
  readonly name: 'stub' | 'anthropic';
  /** As last seen (cheap: a stale reading starts a check in the background); absent = always answers. */
  health?(): Health;
  /** Checks now (a cheap call, no tokens) and resolves with the fresh reading. */
  recheck?(): Promise<Health>;
  evaluate(input: string): Promise<Verdict>;
  /** `maxTokens` comes from the price estimate, so the actual cost cannot exceed the quote. */
  work(input: string, maxTokens: number): Promise<WorkAnswer>;
  /**
   * The work call on a conversation, streamed: `onText` gets the text as it is generated; an abort of `signal`
   * stops the generation and resolves with what was generated (`aborted`). Absent = `work` on the last turn.
   */
  workStream?(prompt: WorkPrompt, maxTokens: number, hooks: StreamHooks): Promise<WorkAnswer>;
  /** Input tokens the work call for `input` would be billed (system prompt included), counted by the backend; absent = estimate. */
  countInputTokens?(input: string | WorkPrompt): Promise<number>;
}

export class AgentError extends Error {
  override name = 'AgentError';
}

// --- provisioner: a stub that pretends, or DigitalOcean. Secrets come first and separately so the core
// can seal and commit them before any server exists; provision() is idempotent per job. ---

export interface NodeSecrets {
  /** OpenSSH `openssh-key-v1` PEM block; only when Timmy generated the key (null with a customer key). */
  sshPrivateKey: string | null;
  /** `ssh-ed25519 AAAA... comment` (or the customer's own key line). */
  sshPublicKey: string;
  /** The node's own Nostr identity. */
  nodeNsec: string;
  nodeNpub: string;
}

export interface NodeSpec {
  jobId: string;
  size: string;
  region: string;
  /** The customer's OpenSSH public key; then no private key is ever generated. */
  customerSshKey?: string;
}

export interface ProvisionedNode {
  ip: string;
  /** The Tailscale machine name requested for the node, or null without Tailscale. */
  tailscaleHostname: string | null;
  sshUser: string;
  dropletId: string | null;
}

/** A server a provisioner made and still sees, with the job its tag names. */
export interface NodeServer {
  jobId: string;
  serverId: string;
  /** When the provider made it, unix ms (null when it does not say). */
  createdAtMs: number | null;
}

export interface ProvisionOptions {
  signal?: AbortSignal;
  onProgress?: (message: string) => void;
}

export interface Provisioner {
  readonly name: 'stub' | 'digitalocean';
  /** Throws ProvisionError when `line` is not an acceptable OpenSSH public key (checked before invoicing). */
  validatePublicKey(line: string): void;
  /** Generates what must be stored (encrypted) BEFORE provisioning, so a restart reuses it. */
  prepareSecrets(spec: NodeSpec): NodeSecrets;
  /** Idempotent per jobId: finds an existing droplet by its job tag before creating one; polls until it has a public IPv4 (~2 min cap, backoff). */
  provision(spec: NodeSpec, secrets: NodeSecrets, opts?: ProvisionOptions): Promise<ProvisionedNode>;
  /** Servers this Timmy made that still exist (what the clean-up compares with the orders). */
  listNodes(): Promise<NodeServer[]>;
  /**
   * Destroys every server this Timmy made for the job, also one whose create answer was lost; returns how
   * many. Transient failures are tried again a few times, then it throws.
   */
  destroy(jobId: string): Promise<number>;
}

export interface ProvisionErrorDetails {
  /** HTTP status of the refusing API, when there was one. */
  status?: number;
  /** The API's own error id (DigitalOcean `id`, e.g. "unprocessable_entity"). */
  code?: string;
  /** DigitalOcean's `request_id`, for support tickets. */
  requestId?: string;
}

/** The message is user-facing (it ends up in the job's error feedback); it never holds a credential. */
export class ProvisionError extends Error {
  override name = 'ProvisionError';
  readonly status?: number;
  readonly code?: string;
  readonly requestId?: string;

  constructor(message: string, details: ProvisionErrorDetails = {}) {
    super(message);
    this.status = details.status;
    this.code = details.code;
    this.requestId = details.requestId;
  }
}

// --- the core's own seams ---

/** Wall-clock time, injected so tests can move it. */
export interface Clock {
  nowMs(): number; // unix ms
}

export const systemClock: Clock = { nowMs: () => Date.now() };

/** Told after a commit that recorded events to publish (the outbox then signs and sends them). */
export interface Publisher {
  wake(): void;
}

/** The customer's NIP-17 inbox relays (kind 10050), already policy-filtered; [] when none. */
export interface InboxDirectory {
  inboxRelays(pubkey: string): Promise<string[]>;
}
