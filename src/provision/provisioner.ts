// The provisioning seam the bootstrap job (SPEC 4) talks to: a stub that pretends, or DigitalOcean.
// Secrets come first and separately so the core can seal and commit them before any server exists;
// provision() is idempotent per job so a restart finds the server it already paid for.

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
