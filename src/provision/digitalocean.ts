// DigitalOcean API v2: SSH keys and droplets, plus the provisioner that turns a paid job into a
// droplet running Bitcoin Knots (SPEC 4.2).
//
// Wire format (digitalocean/openapi specification/resources/{ssh_keys,droplets}; docs.digitalocean.com):
//   auth: Authorization: Bearer <token>; errors: {"id": "unprocessable_entity", "message": "...", "request_id": "..."}
//   POST /v2/account/keys {name, public_key}            -> 201 {ssh_key: {id, fingerprint, public_key, name}}
//        a key already on the account                  -> 422 "SSH Key is already in use on your account"
//   GET  /v2/account/keys/{id | fingerprint}            -> 200 {ssh_key}; fingerprint = MD5 of the key blob, colon hex
//   POST /v2/droplets {name, region, size, image, ssh_keys, tags, user_data (<= 64 KiB), ipv6, monitoring}
//                                                       -> 202 {droplet, links: {actions}} (accepted, not yet running)
//   GET  /v2/droplets?tag_name=<tag>&page=&per_page=    -> 200 {droplets: [...], links: {pages: {next, ...}}, meta: {total}}
//                                                          (per_page at most 200; no tag-prefix filter exists)
//   GET  /v2/droplets/{id}                              -> 200 {droplet}; networks.v4[] = {ip_address, netmask, gateway, type: public|private}
//   DELETE /v2/droplets/{id}                            -> 204 (404 once it is gone)
// The token is a secret: it is only ever put in the Authorization header, never in a message.
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { CloudInitError, buildCloudInit } from './cloud-init.ts';
import type { NodeSecrets, NodeServer, NodeSpec, ProvisionedNode, ProvisionOptions, Provisioner } from '../core/ports.ts';
import { ProvisionError } from '../core/ports.ts';
import { checkJobId, nodeHostname, prepareNodeSecrets, validateCustomerKey } from './secrets.ts';
import { md5Fingerprint, parsePublicKey } from './ssh-keys.ts';
import type { TailscaleClient } from './tailscale.ts';

const MAX_USER_DATA_BYTES = 64 * 1024; // DigitalOcean's limit on user_data
const MAX_MESSAGE_CHARS = 300;
const PAGE_SIZE = 200; // droplets per list page, DigitalOcean's maximum
const MAX_PAGES = 100; // a list longer than 20,000 droplets is a bug, not an account
/** Every droplet of a node order carries `timmy-job-<job id>`. */
export const JOB_TAG_PREFIX = 'timmy-job-';
/** And the tag of the Timmy instance that made it: `timmy-instance-<its Nostr pubkey, hex>`. */
export const INSTANCE_TAG_PREFIX = 'timmy-instance-';

// --- response shapes (tolerant: unknown fields are ignored) ---

const SshKey = z.object({ id: z.number(), fingerprint: z.string(), public_key: z.string(), name: z.string() });
const NetworkV4 = z.object({ ip_address: z.string(), type: z.string() });
const Droplet = z.object({
  id: z.number(),
  name: z.string(),
  status: z.string(),
  created_at: z.string().optional(),
  tags: z.array(z.string()).nullish(),
  networks: z.object({ v4: z.array(NetworkV4).nullish() }).nullish(),
});
const KeyResponse = z.object({ ssh_key: SshKey });
const DropletResponse = z.object({ droplet: Droplet });
const DropletsResponse = z.object({
  droplets: z.array(Droplet).nullish(),
  links: z.object({ pages: z.object({ next: z.string().optional() }).passthrough().optional() }).passthrough().nullish(),
});
const ErrorBody = z.object({ id: z.string().optional(), message: z.string(), request_id: z.string().optional() });

export type DoSshKey = z.infer<typeof SshKey>;
export type DoDroplet = z.infer<typeof Droplet>;

export interface CreateDropletRequest {
  name: string;
  region: string;
  size: string;
  image: string;
  sshKeyIds: number[];
  tags: string[];
  userData: string;
}

export interface PollOptions {
  /** Total time to wait for an address, ms; default 120_000. */
  capMs?: number;
  /** First pause between polls, ms; doubles each time; default 2000. */
  startMs?: number;
  /** Longest pause between polls, ms; default 15_000. */
  maxIntervalMs?: number;
  signal?: AbortSignal;
}

export interface DigitalOceanClientOptions {
  token: string;
  /** Default https://api.digitalocean.com. */
  apiUrl?: string;
  requestTimeoutMs?: number; // ms per request; default 20_000
  fetch?: typeof fetch;
}

/** The droplet's public IPv4 address, or null while DigitalOcean has not assigned one yet. */
export function publicIpv4(droplet: DoDroplet): string | null {
  return droplet.networks?.v4?.find((n) => n.type === 'public')?.ip_address ?? null;
}

/** Worth asking again later: no answer at all, rate limiting, or DigitalOcean's own trouble. */
function isTransient(err: unknown): boolean {
  return err instanceof ProvisionError && (err.status === undefined || err.status === 429 || err.status >= 500);
}

export class DigitalOceanClient {
  private readonly apiUrl: string;
  private readonly timeoutMs: number;
  private readonly fetchImpl: typeof fetch;

  constructor(private readonly opts: DigitalOceanClientOptions) {
    if (!opts.token) throw new Error('DigitalOceanClient needs a token');
    this.apiUrl = (opts.apiUrl ?? 'https://api.digitalocean.com').replace(/\/+$/, '');
    this.timeoutMs = opts.requestTimeoutMs ?? 20_000;
    this.fetchImpl = opts.fetch ?? fetch;
  }

  /** Adds the key to the account, or finds it there when it already is (same key, earlier job or restart). */
  async ensureKey(name: string, publicKey: string, signal?: AbortSignal): Promise<DoSshKey> {
    try {
      return await this.createKey(name, publicKey, signal);
    } catch (err) {
      if (!(err instanceof ProvisionError && err.status === 422 && /already in use/i.test(err.message))) throw err;
      return this.getKey(md5Fingerprint(parsePublicKey(publicKey).blob), signal);
    }
  }

  async createKey(name: string, publicKey: string, signal?: AbortSignal): Promise<DoSshKey> {
    const json = await this.request('POST', '/v2/account/keys', 'add the SSH key', { name, public_key: publicKey }, signal);
    return this.parse(KeyResponse, json, 'add the SSH key').ssh_key;
  }

  /** By numeric id or MD5 fingerprint. */
  async getKey(idOrFingerprint: number | string, signal?: AbortSignal): Promise<DoSshKey> {
    const json = await this.request('GET', `/v2/account/keys/${encodeURIComponent(String(idOrFingerprint))}`, 'find the SSH key', undefined, signal);
    return this.parse(KeyResponse, json, 'find the SSH key').ssh_key;
  }

  async createDroplet(req: CreateDropletRequest, signal?: AbortSignal): Promise<DoDroplet> {
    if (Buffer.byteLength(req.userData, 'utf8') > MAX_USER_DATA_BYTES) throw new ProvisionError('internal: the first-boot script exceeds 64 KiB');
    const body = {
      name: req.name,
      region: req.region,
      size: req.size,
      image: req.image,
      ssh_keys: req.sshKeyIds,
      tags: req.tags,
      user_data: req.userData,
      ipv6: false,
      monitoring: true,
    };
    const json = await this.request('POST', '/v2/droplets', 'create the server', body, signal);
    return this.parse(DropletResponse, json, 'create the server').droplet;
  }

  /**
   * Droplets carrying `tag`, every page, oldest first (by id; DigitalOcean ids grow over time). The next
   * page is asked for by number while the answer names one: its `links.pages.next` URL is not followed,
   * so the token only ever goes to the configured API.
   */
  async listDropletsByTag(tag: string, signal?: AbortSignal): Promise<DoDroplet[]> {
    const all: DoDroplet[] = [];
    for (let page = 1; ; page++) {
      const json = await this.request('GET', `/v2/droplets?tag_name=${encodeURIComponent(tag)}&page=${page}&per_page=${PAGE_SIZE}`, 'list servers', undefined, signal);
      const body = this.parse(DropletsResponse, json, 'list servers');
      all.push(...(body.droplets ?? []));
      if (!body.links?.pages?.next || (body.droplets ?? []).length === 0) break;
      if (page >= MAX_PAGES) throw new ProvisionError(`DigitalOcean lists more than ${MAX_PAGES} pages of servers tagged ${tag}`, { status: 502 });
    }
    return all.sort((a, b) => a.id - b.id);
  }

  /** Destroys a droplet; one that is already gone (404) counts as destroyed. */
  async deleteDroplet(id: number, signal?: AbortSignal): Promise<void> {
    try {
      await this.request('DELETE', `/v2/droplets/${id}`, 'destroy the server', undefined, signal);
    } catch (err) {
      if (err instanceof ProvisionError && err.status === 404) return;
      throw err;
    }
  }

  async getDroplet(id: number, signal?: AbortSignal): Promise<DoDroplet> {
    const json = await this.request('GET', `/v2/droplets/${id}`, 'check the server', undefined, signal);
    return this.parse(DropletResponse, json, 'check the server').droplet;
  }

  /**
   * Polls the droplet until it has a public IPv4, with exponential backoff. Rate limits, 5xx and network
   * errors are retried until the cap; any other refusal (401, 404: the droplet was destroyed) ends it.
   */
  async waitForPublicIpv4(id: number, opts: PollOptions = {}): Promise<{ droplet: DoDroplet; ip: string }> {
    const capMs = opts.capMs ?? 120_000;
    const maxIntervalMs = opts.maxIntervalMs ?? 15_000;
    let pauseMs = opts.startMs ?? 2000;
    const deadline = Date.now() + capMs;
    let lastError: ProvisionError | undefined;
    for (;;) {
      try {
        const droplet = await this.getDroplet(id, opts.signal);
        const ip = publicIpv4(droplet);
        if (ip) return { droplet, ip };
      } catch (err) {
        if (opts.signal?.aborted || !isTransient(err)) throw err;
        lastError = err as ProvisionError;
      }
      const remainingMs = deadline - Date.now();
      if (remainingMs <= 0) {
        const why = lastError ? ` (last error: ${lastError.message})` : '';
        throw new ProvisionError(`the server has no public IPv4 address after ${Math.round(capMs / 1000)} s${why}`);
      }
      await sleep(Math.min(pauseMs, remainingMs), undefined, { signal: opts.signal });
      pauseMs = Math.min(pauseMs * 2, maxIntervalMs);
    }
  }

  // --- transport ---

  private async request(method: 'GET' | 'POST' | 'DELETE', path: string, what: string, body: unknown, signal?: AbortSignal): Promise<unknown> {
    const headers: Record<string, string> = { Authorization: `Bearer ${this.opts.token}`, Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let res: Response;
    try {
      res = await this.fetchImpl(`${this.apiUrl}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.any([AbortSignal.timeout(this.timeoutMs), ...(signal ? [signal] : [])]),
      });
    } catch (err) {
      if (signal?.aborted) throw signal.reason;
      const reason = (err as Error).name === 'TimeoutError' ? `no answer within ${this.timeoutMs / 1000} s` : (err as Error).message;
      throw new ProvisionError(`DigitalOcean could not be reached to ${what}: ${this.redact(reason)}`);
    }
    const text = await res.text();
    let json: unknown;
    try {
      json = text.length > 0 ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    if (!res.ok) {
      const e = ErrorBody.safeParse(json);
      const message = e.success ? e.data.message : `HTTP ${res.status}`;
      throw new ProvisionError(`DigitalOcean refused to ${what}: ${this.redact(message.slice(0, MAX_MESSAGE_CHARS))}`, {
        status: res.status,
        code: e.success ? e.data.id : undefined,
        requestId: e.success ? e.data.request_id : undefined,
      });
    }
    return json;
  }

  private parse<T>(schema: z.ZodType<T>, json: unknown, what: string): T {
    const r = schema.safeParse(json);
    if (!r.success) throw new ProvisionError(`DigitalOcean answered an unexpected body when asked to ${what}`, { status: 502 });
    return r.data;
  }

  /** Belt and braces: whatever an upstream message says, the token never leaves in it. */
  private redact(text: string): string {
    return text.split(this.opts.token).join('[redacted]');
  }
}

// --- the provisioner ---

export interface DigitalOceanProvisionerOptions {
  token: string;
  apiUrl?: string;
  /** Defaults for jobs that name none (DO_REGION, DO_SIZE, DO_IMAGE). */
  region: string;
  size: string;
  image: string;
  /**
   * This Timmy's Nostr pubkey (64 hex). Its droplets carry `timmy-instance-<pubkey>`, and only its own
   * are ever adopted, listed or destroyed: another Timmy sharing the DigitalOcean account (which could
   * even hold an order with the same job id) is never touched.
   */
  instance: string;
  /** When set, nodes join the tailnet with a one-off auth key. */
  tailscale?: TailscaleClient;
  /** Total wait for the public IPv4, ms; default 120_000. */
  pollCapMs?: number;
  /** First pause between polls, ms; default 2000 (doubling up to pollMaxIntervalMs). */
  pollStartMs?: number;
  /** Longest pause between polls, ms; default 15_000. */
  pollMaxIntervalMs?: number;
  /** Bitcoin prune target, MiB; default 550. */
  prune?: number;
  /** Pauses before retrying a destroy that failed transiently, ms; default [1000, 4000] (three tries). */
  destroyRetryMs?: number[];
  requestTimeoutMs?: number;
  fetch?: typeof fetch;
}

export class DigitalOceanProvisioner implements Provisioner {
  readonly name = 'digitalocean' as const;
  readonly client: DigitalOceanClient;
  private readonly instanceTag: string;

  constructor(private readonly opts: DigitalOceanProvisionerOptions) {
    if (!/^[0-9a-f]{64}$/.test(opts.instance)) throw new Error('DigitalOceanProvisioner needs the instance pubkey (64 hex)');
    this.client = new DigitalOceanClient({ token: opts.token, apiUrl: opts.apiUrl, requestTimeoutMs: opts.requestTimeoutMs, fetch: opts.fetch });
    this.instanceTag = `${INSTANCE_TAG_PREFIX}${opts.instance}`;
  }

  /**
   * Made by this instance: it carries our instance tag, or no instance tag at all (made before instance
   * tags existed, when one Timmy per account was the only setup).
   */
  private ours(d: DoDroplet): boolean {
    const tags = d.tags ?? [];
    return tags.includes(this.instanceTag) || !tags.some((t) => t.startsWith(INSTANCE_TAG_PREFIX));
  }

  private async dropletsOf(jobId: string, signal?: AbortSignal): Promise<DoDroplet[]> {
    return (await this.client.listDropletsByTag(`${JOB_TAG_PREFIX}${jobId}`, signal)).filter((d) => this.ours(d));
  }

  /** This instance's droplets (by its instance tag), each with the job its tag names. */
  async listNodes(): Promise<NodeServer[]> {
    return (await this.client.listDropletsByTag(this.instanceTag)).flatMap((d) => {
      const tag = d.tags?.find((t) => t.startsWith(JOB_TAG_PREFIX));
      const createdAtMs = d.created_at ? Date.parse(d.created_at) : NaN;
      return tag ? [{ jobId: tag.slice(JOB_TAG_PREFIX.length), serverId: String(d.id), createdAtMs: Number.isFinite(createdAtMs) ? createdAtMs : null }] : [];
    });
  }

  /**
   * Destroys every droplet of ours tagged for the job — found by the tag, so one whose create answer was
   * lost goes too — by id: DELETE ?tag_name= would also take another instance's droplet with that tag.
   * Transient failures (no answer, 429, 5xx) are tried again; then it throws.
   */
  async destroy(jobId: string): Promise<number> {
    checkJobId(jobId);
    const pauses = this.opts.destroyRetryMs ?? [1000, 4000];
    for (let attempt = 0; ; attempt++) {
      try {
        const droplets = await this.dropletsOf(jobId);
        for (const d of droplets) await this.client.deleteDroplet(d.id);
        return droplets.length;
      } catch (err) {
        if (!isTransient(err) || attempt >= pauses.length) throw err;
        await sleep(pauses[attempt]!);
      }
    }
  }

  validatePublicKey(line: string): void {
    validateCustomerKey(line);
  }

  prepareSecrets(spec: NodeSpec): NodeSecrets {
    return prepareNodeSecrets(spec);
  }

  async provision(spec: NodeSpec, secrets: NodeSecrets, opts: ProvisionOptions = {}): Promise<ProvisionedNode> {
    checkJobId(spec.jobId);
    const { signal } = opts;
    const progress = (m: string) => opts.onProgress?.(m);
    const tag = `${JOB_TAG_PREFIX}${spec.jobId}`;
    const hostname = nodeHostname(spec.jobId);

    // Idempotency: the job tag is the record of a droplet we already created (a restart lands here).
    let droplet = (await this.dropletsOf(spec.jobId, signal))[0];
    if (droplet) {
      progress('found the server created earlier');
    } else {
      droplet = await this.create(spec, secrets, tag, hostname, progress, signal);
    }

    let ip = publicIpv4(droplet);
    if (!ip) {
      progress('waiting for the server to get its IP address');
      ip = (await this.client.waitForPublicIpv4(droplet.id, {
        capMs: this.opts.pollCapMs,
        startMs: this.opts.pollStartMs,
        maxIntervalMs: this.opts.pollMaxIntervalMs,
        signal,
      })).ip;
    }
    progress('the server is up; Bitcoin Knots is installing');
    return { ip, tailscaleHostname: this.opts.tailscale ? hostname : null, sshUser: 'root', dropletId: String(droplet.id) };
  }

  private async create(spec: NodeSpec, secrets: NodeSecrets, tag: string, hostname: string, progress: (m: string) => void, signal?: AbortSignal): Promise<DoDroplet> {
    progress('uploading the SSH key');
    const key = await this.client.ensureKey(`timmy ${hostname}`, secrets.sshPublicKey, signal);

    let tailscaleAuthKey: string | undefined;
    if (this.opts.tailscale) {
      progress('creating a Tailscale auth key');
      tailscaleAuthKey = await this.opts.tailscale.createAuthKey({ description: `timmy node ${hostname}`, signal });
    }

    let userData: string;
    try {
      userData = buildCloudInit({ nodeNsec: secrets.nodeNsec, nodeNpub: secrets.nodeNpub, tailscaleAuthKey, hostname, prune: this.opts.prune });
    } catch (err) {
      if (err instanceof CloudInitError) throw new ProvisionError(`internal: cannot build the first-boot script (${err.message})`);
      throw err;
    }

    progress('creating the server');
    const request: CreateDropletRequest = {
      name: hostname,
      region: spec.region || this.opts.region,
      size: spec.size || this.opts.size,
      image: this.opts.image,
      sshKeyIds: [key.id],
      tags: [tag, this.instanceTag],
      userData,
    };
    try {
      return await this.client.createDroplet(request, signal);
    } catch (err) {
      // The request may have been carried out even though no answer came back: look before failing.
      if (signal?.aborted || !isTransient(err)) throw err;
      const existing = (await this.dropletsOf(spec.jobId, signal).catch(() => []))[0];
      if (existing) return existing;
      throw err;
    }
  }
}
