// The node bootstrap job (SPEC 4): pay one invoice, get a Bitcoin node. Credentials are generated and
// stored sealed BEFORE provisioning (a restart reuses them and finds the same droplet), delivered by a
// NIP-17 DM or one HTTP claim, then erased.
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Logger } from '../log.ts';
import type * as store from '../store/bootstrap.ts';
import type { Store } from '../store/store.ts';
import { ProvisionError, type Clock, type InboxDirectory, type NodeSecrets, type Provisioner, type Publisher } from './ports.ts';
import { nextBootstrapState, type BootstrapEvent } from './bootstrap-machine.ts';
import type { SecretBox } from './sealed.ts';
import { creditedTo, msatsText, refundCredit, type InvoiceBook, type SubjectHandler } from './book.ts';
import { Refusal } from './refusal.ts';
import { errorFeedback, type Worker } from './job-moves.ts';
import { LeaseKeeper } from './leases.ts';
import type { BookInvoice, BootstrapJob, NewBookInvoice, PublishIntent } from './types.ts';

export interface BootstrapSettings {
  sizes: Record<string, number>; // size slug -> price, sats
  defaultSize: string;
  defaultRegion: string;
  credentialTtlSecs: number;
  maxOpenUnpaidPerClient: number;
}

export interface BootstrapDeps {
  store: Store;
  book: InvoiceBook;
  provisioner: Provisioner;
  box: SecretBox;
  settings: BootstrapSettings;
  log: Logger;
  publisher: Publisher;
  inbox: InboxDirectory;
  clock: Clock;
  fault: (point: string) => void;
  /** This worker: provisioning runs under its lease (core/leases.ts). */
  worker: Worker;
}

export interface BootstrapRequest {
  id: string;
  source: 'nostr' | 'http';
  customerPubkey: string | null;
  clientAddress: string | null;
  requestJson: string | null;
  relays: string[];
  size?: string;
  region?: string;
  sshKey?: string;
}

/** What the customer receives: the JSON block of the DM and of the HTTP claim (field names are a contract). */
export interface Credentials {
  ip: string;
  tailscaleHostname: string | null;
  sshUser: string;
  nodeNpub: string;
  nodeNsec: string;
  nextSteps: string[];
}

const REGION = /^[a-z]{3}[0-9]$/;

/**
 * Orders whose servers are only a cost: failed (the fee was credited) and expired (never paid). Unknown
 * orders (not in this store) join them; provisioning ones are kept (the resumed job adopts its server),
 * and so are unpaid, ready and delivered ones — the last two are the customer's node.
 */
const DISPOSABLE: ReadonlySet<string> = new Set(['failed', 'expired']);
/** Since when this store has been cleaning up (unix ms): older servers of unknown orders are not its own to judge. */
const CLEANUP_SINCE_KEY = 'server_cleanup_since';

export function nextSteps(c: { ip: string; tailscaleHostname: string | null; sshUser: string }, keyFile = '~/.ssh/timmy-node'): string[] {
  return [
    `ssh -i ${keyFile} ${c.sshUser}@${c.ip}${c.tailscaleHostname ? `   (or over Tailscale: ssh ${c.sshUser}@${c.tailscaleHostname})` : ''}`,
    'cloud-init takes a few minutes: `cloud-init status --wait`, then `docker compose -f /opt/bitcoin-knots/compose.yaml logs -f`',
    'Bitcoin Knots runs pruned (550 MiB); initial block download takes hours to days',
    "the node's own Nostr key is in /root/.timmy-node/nostr.key (root only)",
  ];
}

export class BootstrapService {
  private readonly running = new Map<string, Promise<void>>();
  private stopping = false;
  private reconciling: Promise<number> | null = null;
  private readonly leases: LeaseKeeper;

  constructor(private readonly d: BootstrapDeps) {
    d.book.handle('bootstrap', this.invoiceHandler());
    this.leases = new LeaseKeeper({
      store: d.store,
      table: 'bootstrap',
      worker: d.worker,
      log: d.log,
      onClaimed: (c) => this.runInBackground(c.id), // provisioning is idempotent: the droplet is found by its tag
    });
  }

  get(id: string): Promise<BootstrapJob | undefined> {
    return this.d.store.bootstrap.getBootstrap(id);
  }

  priceSats(size: string): number | undefined {
    return this.d.settings.sizes[size];
  }

  /** The order's invoice. */
  async invoice(id: string): Promise<BookInvoice | undefined> {
    return (await this.d.book.of('bootstrap', id))[0];
  }

  /** The order after asking the backend about its open invoice (a GET after the watcher was down). */
  async refresh(id: string): Promise<BootstrapJob | undefined> {
    const job = await this.get(id);
    if (job?.state !== 'awaiting_payment') return job;
    await this.d.book.refresh((await this.invoice(id))?.paymentHash ?? null);
    return this.get(id);
  }

  /** Validates the request, issues the invoice and records the job. Returns the claim token for HTTP callers. */
  async submit(req: BootstrapRequest): Promise<{ status: 'created'; job: BootstrapJob; invoice: NewBookInvoice; claimToken: string | null } | { status: 'duplicate' }> {
    if (await this.d.store.bootstrap.bootstrapExists(req.id)) return { status: 'duplicate' };
    const size = req.size ?? this.d.settings.defaultSize;
    const priceSats = this.d.settings.sizes[size];
    if (priceSats === undefined) {
      throw new Refusal('invalid', `unknown size "${size}": choose one of ${Object.entries(this.d.settings.sizes).map(([s, p]) => `${s} (${p} sats)`).join(', ')}`);
    }
    const region = req.region ?? this.d.settings.defaultRegion;
    if (!REGION.test(region)) throw new Refusal('invalid', `region must look like nyc3 or fra1, got "${region.slice(0, 20)}"`);
    if (req.sshKey !== undefined) {
      try {
        this.d.provisioner.validatePublicKey(req.sshKey);
      } catch (err) {
        if (err instanceof ProvisionError) throw new Refusal('invalid', err.message);
        throw err;
      }
    }
    const max = this.d.settings.maxOpenUnpaidPerClient;
    const by = req.customerPubkey ? { customerPubkey: req.customerPubkey } : req.clientAddress ? { clientAddress: req.clientAddress } : null;
    if (by && (await this.d.store.bootstrap.countUnpaidBootstraps(by, max)) >= max) {
      throw Refusal.of('rate-limited', 'too many unpaid node orders are open; pay them or let them expire first');
    }
    const invoice = await this.d.book.issue({
      subjectKind: 'bootstrap',
      subjectId: req.id,
      pubkey: req.customerPubkey,
      purpose: 'order',
      amountMsats: priceSats * 1000,
      memo: `Timmy: Bitcoin node ${size} in ${region}`,
    });
    const claimToken = req.source === 'http' ? randomBytes(32).toString('base64url') : null;
    const now = this.d.clock.nowMs();
    const created = await this.d.store.bootstrap.createBootstrap(
      {
        id: req.id,
        source: req.source,
        state: 'awaiting_payment',
        customerPubkey: req.customerPubkey,
        clientAddress: req.clientAddress,
        requestJson: req.requestJson,
        relaysJson: JSON.stringify(req.relays),
        size,
        region,
        customerSshKey: req.sshKey ?? null,
        amountMsats: invoice.amountMsats,
        claimTokenHash: claimToken ? sha256(claimToken) : null,
        progress: 'waiting for payment',
        createdAt: now,
        updatedAt: now,
      },
      invoice,
      this.intents(req.source, [
        {
          type: 'feedback',
          status: 'payment-required',
          message: `Pay ${priceSats} sats for a ${size} Bitcoin node in ${region}.`,
          amountMsats: invoice.amountMsats,
          bolt11: invoice.bolt11,
        },
      ]),
    );
    if (!created) return { status: 'duplicate' };
    this.d.publisher.wake();
    this.d.log.info({ bootstrapId: req.id, size, region }, 'node order created');
    return { status: 'created', job: (await this.get(req.id))!, invoice, claimToken };
  }

  private intents(source: 'nostr' | 'http', intents: PublishIntent[]): PublishIntent[] {
    return source === 'nostr' ? intents : [];
  }

  private async move(job: BootstrapJob, event: BootstrapEvent, patch: store.BootstrapPatch, intents: PublishIntent[], extra: Pick<Parameters<typeof store.moveBootstrap>[1], 'credits' | 'settle'> = {}): Promise<boolean> {
    const to = nextBootstrapState(job.state, event);
    if (!to) return false;
    // Into provisioning: this worker leases it. Out of it: only the lease holder may move it.
    const lease = to === 'provisioning' ? { owner: this.d.worker.id, ms: this.d.worker.leaseMs } : undefined;
    const fence = job.state === 'provisioning' ? { owner: this.d.worker.id, epoch: job.leaseEpoch } : undefined;
    const moved = await this.d.store.bootstrap.moveBootstrap({ id: job.id, from: job.state, to, patch, intents: this.intents(job.source, intents), ...extra, lease, fence });
    if (moved) {
      this.d.log.info({ bootstrapId: job.id, from: job.state, to }, 'node order transition');
      if (intents.length) this.d.publisher.wake();
      this.d.fault(`after-commit:bootstrap:${to}`);
      if (to === 'provisioning') this.runInBackground(job.id);
    }
    return moved;
  }

  /** The order's side of the invoice book. */
  private invoiceHandler(): SubjectHandler {
    const waiting = async (inv: BookInvoice) => {
      const job = await this.get(inv.subjectId);
      return job?.state === 'awaiting_payment' ? job : null;
    };
    return {
      paid: async (inv) => {
        const job = await waiting(inv);
        return (
          job !== null &&
          (await this.move(job, 'paid', { progress: 'paid; provisioning' }, [{ type: 'feedback', status: 'processing', message: 'Payment received; provisioning your node.' }], {
            settle: { paymentHash: inv.paymentHash, status: 'paid' },
          }))
        );
      },
      expired: async (inv) => {
        const job = await waiting(inv);
        return (
          job !== null &&
          (await this.move(job, 'invoice_expired', { progress: 'expired unpaid' }, [errorFeedback('expired', 'expired: the invoice was not paid in time')], {
            settle: { paymentHash: inv.paymentHash, status: 'expired' },
          }))
        );
      },
      late: async (inv) => {
        const job = await this.get(inv.subjectId);
        const message = `payment received after the order ${job?.state ?? 'was removed'}: ${msatsText(inv.amountMsats)} credited`;
        return { reason: 'payment after the node order expired', intents: job ? this.intents(job.source, [errorFeedback('credited', message)]) : [] };
      },
    };
  }

  private runInBackground(id: string): void {
    if (this.running.has(id) || this.stopping) return;
    const p = this.provision(id)
      .catch((err) => this.d.log.error({ err, bootstrapId: id }, 'provisioning step crashed'))
      .finally(() => this.running.delete(id));
    this.running.set(id, p);
  }

  /** Secrets first (sealed, committed), then the provisioner, which finds an existing droplet by tag. */
  private async provision(id: string): Promise<void> {
    const job = await this.get(id);
    if (!job || job.state !== 'provisioning' || job.leaseOwner !== this.d.worker.id) return; // another worker's
    this.leases.hold(id, job.leaseEpoch);
    try {
      await this.provisionLeased(job);
    } finally {
      this.leases.release(id, job.leaseEpoch);
    }
  }

  private async provisionLeased(leased: BootstrapJob): Promise<void> {
    let job = leased;
    const id = job.id;
    const fence = { owner: this.d.worker.id, epoch: job.leaseEpoch };
    const spec = { jobId: job.id, size: job.size, region: job.region, customerSshKey: job.customerSshKey ?? undefined };
    let secrets: NodeSecrets;
    if (job.secretsEnc) {
      secrets = JSON.parse(this.d.box.open(job.secretsEnc)) as NodeSecrets;
    } else {
      secrets = this.d.provisioner.prepareSecrets(spec);
      const stored = await this.d.store.bootstrap.moveBootstrap({
        id,
        from: 'provisioning',
        to: null,
        patch: { secretsEnc: this.d.box.seal(JSON.stringify(secrets)), nodeNpub: secrets.nodeNpub, sshPublicKey: secrets.sshPublicKey, progress: 'creating the server' },
        fence,
      });
      if (!stored) return;
      job = (await this.get(id))!;
    }
    let node;
    try {
      node = await this.d.provisioner.provision(spec, secrets, {
        onProgress: (message) =>
          void this.d.store.bootstrap
            .moveBootstrap({ id, from: 'provisioning', to: null, patch: { progress: message }, fence })
            .catch((err) => this.d.log.warn({ err, bootstrapId: id }, 'progress not recorded')),
      });
    } catch (err) {
      // Failed first (committed, fee credited), then the server goes: a crash in between leaves a failed
      // order whose server the start-up clean-up destroys, never a provisioning one that would make another.
      if (await this.fail({ ...job, leaseEpoch: fence.epoch }, `provisioning failed: ${(err as Error).message}`)) await this.destroyServers(id, 'failed');
      return;
    }
    const inbox = job.customerPubkey ? await this.d.inbox.inboxRelays(job.customerPubkey).catch(() => []) : [];
    const fresh = (await this.get(id))!;
    await this.move(
      { ...fresh, leaseEpoch: fence.epoch }, // the lease this step holds, whatever the row says now
      'provisioned',
      { ip: node.ip, tailscaleHostname: node.tailscaleHostname, sshUser: node.sshUser, dropletId: node.dropletId, readyAt: this.d.clock.nowMs(), progress: 'ready' },
      [
        { type: 'bootstrap_result' },
        { type: 'dm', inboxRelays: inbox },
        { type: 'feedback', status: 'success', message: 'Your node is up. The credentials were sent to you by encrypted direct message.' },
      ],
    );
  }

  private async fail(job: BootstrapJob, message: string): Promise<boolean> {
    const payer = { subjectKind: 'bootstrap' as const, subjectId: job.id, pubkey: job.customerPubkey };
    const note = `; ${msatsText(job.amountMsats)} credited to ${creditedTo(payer)}`;
    this.d.log.warn({ bootstrapId: job.id, message, creditedSats: job.amountMsats / 1000 }, 'node order failed');
    const moved = await this.move(job, 'failed', { errorMessage: message, progress: 'failed' }, [errorFeedback('failed', `${message}${note}`)], {
      credits: [refundCredit(payer, job.amountMsats, message)],
    });
    if (moved) await this.d.store.bootstrap.eraseCredentials(job.id, null);
    return moved;
  }

  /** Destroys the order's servers; a failure is logged loudly and left to the next clean-up pass. */
  private async destroyServers(id: string, state: string): Promise<void> {
    try {
      const count = await this.d.provisioner.destroy(id);
      if (count > 0) this.d.log.warn({ bootstrapId: id, state, servers: count }, 'destroyed the server of a node order that will not be delivered');
    } catch (err) {
      this.d.log.error(
        { err, bootstrapId: id, state },
        'could not destroy the server of a node order that will not be delivered: it keeps costing money until the clean-up pass (at start and every 10 minutes) removes it',
      );
    }
  }

  /**
   * The clean-up pass: every server this Timmy made whose order failed, expired or is unknown to this
   * store is destroyed (each logged with its job id); the others are kept (see DISPOSABLE). One pass at a
   * time; resolves with how many orders had servers destroyed or attempted.
   */
  reconcile(): Promise<number> {
    this.reconciling ??= (async () => {
      let since = Number(await this.d.store.kv.getKv(CLEANUP_SINCE_KEY));
      if (!Number.isFinite(since) || since <= 0) await this.d.store.kv.setKv(CLEANUP_SINCE_KEY, String((since = this.d.clock.nowMs())));
      let n = 0;
      const servers = await this.d.provisioner.listNodes();
      for (const id of new Set(servers.map((s) => s.jobId))) {
        if (this.stopping) break;
        const job = await this.get(id);
        if (job && !DISPOSABLE.has(job.state)) continue;
        // An order unknown here whose server is older than this store's clean-up (a fresh store started with
        // the same NOSTR_SECRET_KEY, a restored backup) may be a customer's live node: kept, and said so.
        const older = servers.filter((s) => s.jobId === id && (s.createdAtMs === null || s.createdAtMs < since));
        if (!job && older.length > 0) {
          this.d.log.warn({ bootstrapId: id, servers: older.map((s) => s.serverId) }, 'a server of ours whose order this store does not know, made before this store: kept; destroy it by hand if it is not a customer node');
          continue;
        }
        await this.destroyServers(id, job?.state ?? 'unknown to this store');
        n++;
      }
      return n;
    })().finally(() => (this.reconciling = null));
    return this.reconciling;
  }

  /** The DM text: a human line, the OpenSSH private key block verbatim (when generated), a JSON block. */
  credentialsMessage(job: BootstrapJob): string | null {
    const c = this.credentials(job);
    if (!c) return null;
    const parts = [
      `Your Bitcoin node (${job.size}, ${job.region}) is ready at ${c.credentials.ip}. Keep this message private.`,
    ];
    if (c.sshPrivateKey) parts.push(`SSH private key (save as ~/.ssh/timmy-node, chmod 600):\n\n${c.sshPrivateKey.trim()}`);
    else parts.push('Log in with the SSH key you gave us.');
    parts.push(`\`\`\`json\n${JSON.stringify(c.credentials, null, 2)}\n\`\`\``);
    return parts.join('\n\n');
  }

  private credentials(job: BootstrapJob): { credentials: Credentials; sshPrivateKey: string | null } | null {
    if (!job.secretsEnc || !job.ip) return null;
    const s = JSON.parse(this.d.box.open(job.secretsEnc)) as NodeSecrets;
    const base = { ip: job.ip, tailscaleHostname: job.tailscaleHostname, sshUser: job.sshUser ?? 'root' };
    return { credentials: { ...base, nodeNpub: s.nodeNpub, nodeNsec: s.nodeNsec, nextSteps: nextSteps(base) }, sshPrivateKey: s.sshPrivateKey };
  }

  /** A 10050 relay acked the DM: the customer has it; erase our copy. */
  async onDmDelivered(id: string): Promise<void> {
    if (await this.d.store.bootstrap.eraseCredentials(id, 'delivered')) this.d.log.info({ bootstrapId: id }, 'credentials delivered by DM and erased');
  }

  /** HTTP claim with the token: the credentials once, then erased. */
  async claim(id: string, token: string): Promise<{ status: 'ok'; credentials: Credentials; sshPrivateKey: string | null } | { status: 'unauthorized' | 'gone' | 'not_ready' | 'not_found' }> {
    const job = await this.get(id);
    if (!job) return { status: 'not_found' };
    if (job.erasedAt !== null && (job.state === 'delivered' || job.claimTokenHash === null)) return { status: 'gone' };
    if (!job.claimTokenHash || !timingSafeEqualHex(job.claimTokenHash, sha256(token))) return { status: 'unauthorized' };
    if (job.state !== 'ready') return { status: 'not_ready' };
    const c = this.credentials(job);
    if (!c) return { status: 'gone' };
    if (!(await this.d.store.bootstrap.eraseCredentials(id, 'delivered'))) return { status: 'gone' };
    return { status: 'ok', credentials: c.credentials, sshPrivateKey: c.sshPrivateKey };
  }

  /** Undelivered credentials are erased after CREDENTIAL_TTL_S. (Unpaid orders expire with their invoice.) */
  async expireDue(nowMs = this.d.clock.nowMs()): Promise<void> {
    for (const job of await this.d.store.bootstrap.staleCredentials(nowMs - this.d.settings.credentialTtlSecs * 1000)) {
      if (await this.d.store.bootstrap.eraseCredentials(job.id, job.state === 'ready' ? 'delivered' : null)) {
        this.d.log.info({ bootstrapId: job.id }, 'undelivered credentials erased after CREDENTIAL_TTL_S');
      }
    }
  }

  /** After a restart: provisioning owed is resumed (the provisioner finds the droplet it already made). */
  async resume(): Promise<void> {
    await this.leases.start();
  }

  /** Node orders whose provisioning is running now. */
  get runningIds(): string[] {
    return [...this.running.keys()];
  }

  async stop(graceMs = 5000): Promise<void> {
    this.stopping = true;
    this.leases.stop();
    const inFlight = [...this.running.values(), ...(this.reconciling ? [this.reconciling] : [])];
    await Promise.race([Promise.allSettled(inFlight), new Promise((r) => setTimeout(r, graceMs).unref())]);
    await this.leases.giveUp();
  }
}

function sha256(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

function timingSafeEqualHex(a: string, b: string): boolean {
  return a.length === b.length && timingSafeEqual(Buffer.from(a, 'hex'), Buffer.from(b, 'hex'));
}
