// Tailscale API v2, just enough to mint one-off auth keys for new nodes.
//
// Wire format (tailscale/tailscale api.md "Create a new key for a tailnet"; tailscale.com/api):
//   POST /api/v2/tailnet/{tailnet}/keys   Authorization: Bearer <API access token>
//     {capabilities:{devices:{create:{reusable, ephemeral, preauthorized, tags?}}}, expirySeconds, description}
//   -> 200 {id, key: "tskey-auth-...", created, expires, capabilities, description}
//   errors: {"message": "..."}. The tailnet "-" means the token's default tailnet.
//   `description`: at most 50 characters of letters, digits, hyphens, underscores (and spaces).
// The API key and the minted auth key are secrets: they are never logged nor put in an error message.
import { ProvisionError } from '../core/ports.ts';

export interface TailscaleOptions {
  /** API access token (tskey-api-...) or an OAuth access token with the auth_keys scope. */
  apiKey: string;
  /** Tailnet name; "-" (default) is the token's own tailnet. */
  tailnet?: string;
  /** Default https://api.tailscale.com. */
  apiUrl?: string;
  /** ACL tags for the nodes (tag:name); required when the token belongs to an OAuth client. */
  tags?: string[];
  /** Auth key lifetime, s; default 3600: the node uses it within minutes of boot or never. */
  keyExpirySeconds?: number;
  requestTimeoutMs?: number; // ms per request; default 15_000
  fetch?: typeof fetch;
}

const TAG = /^tag:[A-Za-z0-9-]{1,64}$/;
const DESCRIPTION = /^[A-Za-z0-9 _-]{1,50}$/;
const AUTH_KEY = /^tskey-[A-Za-z0-9-]{8,200}$/;

export class TailscaleClient {
  private readonly apiUrl: string;
  private readonly tailnet: string;
  private readonly tags: string[];
  private readonly expirySeconds: number;
  private readonly timeoutMs: number;
  private readonly fetchImpl: typeof fetch;

  constructor(private readonly opts: TailscaleOptions) {
    if (!opts.apiKey) throw new Error('TailscaleClient needs an API key');
    this.apiUrl = (opts.apiUrl ?? 'https://api.tailscale.com').replace(/\/+$/, '');
    this.tailnet = opts.tailnet ?? '-';
    this.tags = opts.tags ?? [];
    for (const t of this.tags) if (!TAG.test(t)) throw new Error(`Tailscale tag "${t}" must look like tag:name`);
    this.expirySeconds = opts.keyExpirySeconds ?? 3600;
    this.timeoutMs = opts.requestTimeoutMs ?? 15_000;
    this.fetchImpl = opts.fetch ?? fetch;
  }

  /** Mints a single-use, pre-authorized, non-ephemeral auth key and returns it (tskey-auth-...). */
  async createAuthKey(args: { description: string; signal?: AbortSignal }): Promise<string> {
    if (!DESCRIPTION.test(args.description)) throw new Error('Tailscale key description: at most 50 of [A-Za-z0-9 _-]');
    const create: Record<string, unknown> = { reusable: false, ephemeral: false, preauthorized: true };
    if (this.tags.length > 0) create.tags = this.tags;
    const body = { capabilities: { devices: { create } }, expirySeconds: this.expirySeconds, description: args.description };
    const signals = [AbortSignal.timeout(this.timeoutMs), ...(args.signal ? [args.signal] : [])];
    let res: Response;
    try {
      res = await this.fetchImpl(`${this.apiUrl}/api/v2/tailnet/${encodeURIComponent(this.tailnet)}/keys`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${this.opts.apiKey}`, 'Content-Type': 'application/json', Accept: 'application/json' },
        body: JSON.stringify(body),
        signal: AbortSignal.any(signals),
      });
    } catch (err) {
      if (args.signal?.aborted) throw args.signal.reason;
      throw new ProvisionError(`Tailscale API unreachable: ${(err as Error).name === 'TimeoutError' ? 'timed out' : this.redact((err as Error).message)}`);
    }
    const text = await res.text();
    let json: unknown = undefined;
    try {
      json = JSON.parse(text);
    } catch {
      /* handled below */
    }
    if (!res.ok) {
      const message = typeof (json as { message?: unknown })?.message === 'string' ? (json as { message: string }).message : `HTTP ${res.status}`;
      throw new ProvisionError(`Tailscale refused to create an auth key: ${this.redact(message.slice(0, 300))}`, { status: res.status });
    }
    const key = (json as { key?: unknown })?.key;
    if (typeof key !== 'string' || !AUTH_KEY.test(key)) throw new ProvisionError('Tailscale answered without a usable auth key');
    return key;
  }

  /** Belt and braces: whatever an upstream message says, the API key never leaves in it. */
  private redact(text: string): string {
    return text.split(this.opts.apiKey).join('[redacted]');
  }
}
