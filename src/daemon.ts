// The one place where Timmy's parts are built and wired, in four builders — outside systems (backends),
// the core, the Nostr side, the HTTP side — and the lifecycle: start, resume, periodic passes, stop.
import { serve, type ServerType } from '@hono/node-server';
import { nip19 } from 'nostr-tools';
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from './config.ts';
import { createLogger, type Logger } from './log.ts';
import { SchemaTooNewError } from './store/db.ts';
import type { Store } from './store/store.ts';
import { openStore, storeLocation } from './store/open.ts';
import { modelCostUsd, operatorStatus } from './status.ts';
import { creditsView, jobPage, jobRows, orderRows, relayRows, seriesView, sessionPage, sessionRows, type ViewSettings } from './console/views.ts';
import { consoleAssets } from './console/assets.ts';
import { loadConsoleToken, loginUrl } from './console/token.ts';
import type { ConsoleRoutesDeps } from './http/console.ts';
import { StubPayments } from './payments/stub.ts';
import { LnbitsPayments } from './payments/lnbits.ts';
import { NwcPayments } from './payments/nwc.ts';
import { redactRelayUrl } from './nostr/relay-policy.ts';
import { StubAgent } from './ai/stub.ts';
import { StubProvisioner } from './provision/stub.ts';
import { CoinGeckoOracle, COINGECKO_SIMPLE_PRICE_URL, type PriceOracle } from './pricing/oracle.ts';
import type { PricingParams } from './pricing/pricing.ts';
import { systemClock, type Agent, type Clock, type InboxDirectory, type PaymentBackend, type Provisioner, type Publisher } from './core/ports.ts';
import { InvoiceBook } from './core/book.ts';
import { JobMoves, type Worker } from './core/job-moves.ts';
import { JobService, type JobSettings } from './core/jobs.ts';
import { Quoter } from './core/quote.ts';
import { ZapService } from './core/zaps.ts';
import { JobRunner } from './core/job-runner.ts';
import { SessionService } from './core/sessions.ts';
import { BootstrapService } from './core/bootstrap.ts';
import { DemoService } from './core/demo.ts';
import { SecretBox } from './core/sealed.ts';
import { initCrypto, finalizeEvent, getPublicKey, verifyEvent } from './nostr/crypto.ts';
import { KEY_FILE, KeyError, keyFingerprints, loadRootKey, loadSecretKey, loadStorageKey } from './nostr/keys.ts';
import { createEventFactory } from './nostr/events.ts';
import { asEvent, Intake, DELETIONS_SUB, type IntakeSettings, type IntakeStore } from './nostr/intake.ts';
import { filterRelayUrls, type RelayPolicy } from './nostr/relay-policy.ts';
import { RelayPool } from './nostr/pool.ts';
import { OutboxWorker, type OutboxDeps, type OutboxStore } from './nostr/outbox.ts';
import type { OutboxClaim } from './store/outbox.ts';
import { publishOnce } from './nostr/ephemeral.ts';
import { handlerTemplate, profileTemplate, type HandlerInfo } from './nostr/nip89.ts';
import { TEXT_JOB_KIND } from './nostr/nip90.ts';
import { startRelayServer, type RelayServer } from './nostr/relay-server.ts';
import { createApp, type App } from './http/app.ts';
import { DEMO_WINDOW_MS } from './http/demo.ts';
import { limitConnections } from './connections.ts';

export interface Daemon {
  pubkey: string;
  httpPort: number;
  store: Store;
  log: Logger;
  stop(): Promise<void>;
}

const CURSOR_KEY = 'intake_cursor';
const MAX_EVENT_BYTES = 64 * 1024; // bytes of content + tags accepted in a request
const MAX_RELAY_MESSAGE_BYTES = 512 * 1024; // bytes; larger websocket frames close the connection
const PASS_INTERVAL_MS = 2000; // ms between expiry passes
const RETENTION_EVERY_TICKS = 30; // the retention pass runs every 30 passes (a minute)
const CLEANUP_EVERY_TICKS = 300; // the server clean-up runs every 300 passes (10 minutes), and at start
const NO_RELAY_GRACE_MS = 5000; // ms after start before "no relay connected" is worth a warning
const NO_RELAY_WARN_EVERY_MS = 60_000; // ms between repeated warnings while it lasts

export class StartupError extends Error {
  override name = 'StartupError';
}

/**
 * Runs one start-up step; an expected failure (a port in use, an unusable directory, a damaged or newer
 * database, a bad key) becomes a StartupError that names the setting or the path, not a stack trace.
 */
async function startStep<T>(fn: () => T | Promise<T>, explain: (err: NodeJS.ErrnoException & { code?: string }) => string | null): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    const why = err instanceof StartupError ? null : explain(err as NodeJS.ErrnoException);
    if (why) throw new StartupError(why, { cause: err });
    throw err;
  }
}

const portInUse = (name: string, port: number) => (e: NodeJS.ErrnoException) =>
  e.code === 'EADDRINUSE' ? `${name}=${port}: the port is already in use on this machine; choose another` : null;

const FS_CODES = new Set(['EACCES', 'EPERM', 'EROFS', 'ENOTDIR', 'ENOENT', 'EISDIR', 'ENOSPC']);

/**
 * The data directory holds the decrypted words of private requests and the keys: owner only. New files
 * (SQLite's -wal/-shm included) are created 0600 through the umask; files from older versions are fixed.
 */
function protectDataDir(config: Config): void {
  process.umask(0o077);
  mkdirSync(config.DATA_DIR, { recursive: true, mode: 0o700 });
  chmodSync(config.DATA_DIR, 0o700);
  const files = [config.databasePath, join(config.DATA_DIR, 'relay.db')].flatMap((f) => [f, `${f}-wal`, `${f}-shm`]);
  for (const f of files) if (existsSync(f)) chmodSync(f, 0o600);
}

/**
 * One daemon per data directory (two writing one SQLite store and one outbox would each send the other's
 * events, and fight over the embedded relay): `timmy.lock` holds the owner's pid, created exclusively.
 * A lock whose pid is gone (a crash) is taken over. Returns the release.
 */
export function lockDataDir(config: Config): () => void {
  const file = join(config.DATA_DIR, 'timmy.lock');
  for (let attempt = 0; ; attempt++) {
    try {
      writeFileSync(file, `${process.pid}\n`, { flag: 'wx', mode: 0o600 });
      return () => rmSync(file, { force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err;
    }
    const pid = Number(readFileSync(file, 'utf8').trim());
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && isAlive(pid)) {
      throw new StartupError(`another Timmy (pid ${pid}) is running on DATA_DIR ${config.DATA_DIR}; stop it first, or give this one its own DATA_DIR`);
    }
    rmSync(file, { force: true }); // left by a process that is gone
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

const FINGERPRINTS_KEY = 'key_fingerprints';

/**
 * Workers sharing one database must hold the same keys: a macaroon minted by one is checked by another,
 * credentials one sealed another opens, and all speak as one Nostr identity. The first worker to start
 * records the keys' fingerprints; a worker whose keys differ refuses to start, naming each such key.
 */
export async function checkKeysAgree(store: Store, dataDir: string, pubkey: string): Promise<void> {
  const mine = keyFingerprints(dataDir, pubkey);
  const theirs = JSON.parse(await store.kv.getOrCreate(FINGERPRINTS_KEY, JSON.stringify(mine))) as Record<string, string>;
  const short = (v: string) => `${v.slice(0, 12)}…`;
  const problems = Object.entries(mine)
    .filter(([name, v]) => theirs[name] !== undefined && theirs[name] !== v)
    .map(([name, v]) =>
      name === 'pubkey'
        ? `the Nostr key differs from the other workers' (pubkey ${short(v)} here, ${short(theirs[name]!)} theirs): give every worker the same NOSTR_SECRET_KEY or ${join(dataDir, KEY_FILE)}`
        : `${name} differs from the other workers' (sha256 ${short(v)} here, ${short(theirs[name]!)} theirs): give every worker the same DATA_DIR keys`,
    );
  if (problems.length) throw new StartupError(problems.join('; '));
}

/** What is wrong with the database file, in the operator's words (null: not an expected failure). */
function dbProblem(path: string, e: NodeJS.ErrnoException): string | null {
  if (e instanceof SchemaTooNewError) return e.message;
  // PostgreSQL (DATABASE_URL): cannot connect, wrong password, no such database. `path` has no password.
  if (['ECONNREFUSED', 'ENOTFOUND', 'ETIMEDOUT', 'EAI_AGAIN'].includes(e.code ?? '')) return `DATABASE_URL ${path}: cannot connect (${e.code}); is PostgreSQL running there?`;
  if (e.code === '28P01' || e.code === '28000') return `DATABASE_URL ${path}: the server refused the login (${e.message})`;
  if (e.code === '3D000') return `DATABASE_URL ${path}: ${e.message}; create it first (createdb)`;
  if (e.code === 'SQLITE_NOTADB' || e.code === 'SQLITE_CORRUPT') return `${path} is not a Timmy database, or it is damaged (${e.message}); restore a backup or point DATABASE_PATH elsewhere`;
  if (e.code === 'SQLITE_CANTOPEN' || e.code === 'SQLITE_READONLY' || FS_CODES.has(e.code ?? '')) return `${path} cannot be opened for writing (${e.code}: ${e.message})`;
  return null;
}

/** Test-only crash points: TIMMY_FAULT=<point> kills the process (SIGKILL) when that point is reached. */
function faultInjector(spec: string | undefined, log: Logger): (point: string) => void {
  if (!spec) return () => {};
  const points = new Set(spec.split(','));
  log.warn({ points: [...points] }, 'fault injection armed (testing only)');
  return (point) => {
    if (points.has(point)) process.kill(process.pid, 'SIGKILL');
  };
}

// --- settings each part takes from Config, named once ---

export function pricingParams(config: Config): PricingParams {
  return {
    work: { model: config.WORK_MODEL, inputUsdPerMtok: config.WORK_INPUT_USD_PER_MTOK, outputUsdPerMtok: config.WORK_OUTPUT_USD_PER_MTOK },
    infraMonthlyUsd: config.INFRA_MONTHLY_USD,
    infraMonthlyRequests: config.INFRA_MONTHLY_REQUESTS,
    marginPct: config.MARGIN_PCT,
    minWorkFeeSats: config.MIN_WORK_FEE_SATS,
  };
}

export function jobSettings(config: Config): JobSettings {
  return {
    evalFeeSats: config.EVAL_FEE_SATS,
    maxOpenUnpaidPerClient: config.MAX_OPEN_UNPAID_PER_CLIENT,
    maxOpenUnpaidTotal: config.MAX_OPEN_UNPAID_TOTAL,
    powDifficulty: config.POW_DIFFICULTY,
    powAboveOpenUnpaid: Math.ceil((config.MAX_OPEN_UNPAID_TOTAL * config.POW_THRESHOLD_PCT) / 100),
    retentionDays: config.RETENTION_DAYS,
  };
}

export function intakeSettings(config: Config, who: { relayPolicy: RelayPolicy; pubkey: string; secretKey: Uint8Array }): IntakeSettings {
  return {
    ...who,
    bootstrapKind: config.BOOTSTRAP_KIND,
    acceptUntargeted: config.ACCEPT_UNTARGETED,
    maxRequestAgeSecs: config.MAX_REQUEST_AGE_S,
    maxFutureSecs: 600,
    maxEventBytes: MAX_EVENT_BYTES,
    maxInputChars: config.MAX_INPUT_CHARS,
  };
}

/** The intake's state in the store: the subscription cursor (unix s of the newest request seen), the unpaid jobs. */
export function intakeStore(store: Store, worker: Worker): IntakeStore {
  return {
    claim: (id) => store.leases.claimRequest(id, worker.id, worker.leaseMs),
    unclaim: (id) => store.leases.releaseRequest(id, worker.id),
    claimMs: worker.leaseMs,
    cursor: async () => {
      const v = await store.kv.getKv(CURSOR_KEY);
      return v ? Number(v) : null;
    },
    saveCursor: (v) => store.kv.setMaxNumber(CURSOR_KEY, v), // only forward: workers save theirs in any order
    unpaidIds: () => store.jobs.unpaidNostrJobIds(500),
  };
}

/** The outbox worker's view of the store (nostr/outbox.ts declares what it needs). */
export function outboxStore(store: Store, worker: Worker): OutboxStore {
  const o = store.outbox;
  const claim = (c: OutboxClaim) => o.claimOutbox(worker.id, worker.leaseMs, c);
  return {
    claimUnsigned: (afterId, limit = 200) => claim({ rows: 'unsigned', afterId, limit }),
    storeSigned: (rows) => o.storeSigned(rows),
    claimUnacked: (sinceMs, limit = 200) => claim({ rows: 'unacked', sinceMs, limit }),
    claimMissed: (relay, sinceMs) => claim({ rows: 'missed', relay, sinceMs, limit: 500 }),
    holdsUnacked: () => o.holdsUnacked(worker.id),
    release: () => o.releaseOutbox(worker.id),
    noteAttempt: (id) => o.noteAttempt(id),
    recordAcks: (acks) => o.recordAcks(acks),
    drop: (id) => o.dropIntent(id),
  };
}

// --- builders ---

export interface Backends {
  payments: PaymentBackend & { start?(): void };
  stubPayments: StubPayments | null; // the dev pay route's wallet; null with a real backend
  agent: Agent;
  provisioner: Provisioner;
  oracle: PriceOracle;
}

/**
 * The outside systems, chosen by configuration (stubs unless a real service is configured). `pubkey` (hex)
 * is this Timmy's identity: DigitalOcean droplets are tagged with it (required with DO_API_TOKEN).
 */
export async function buildBackends(config: Config, store: Store, log: Logger, pubkey?: string): Promise<Backends> {
  // LNbits wins when both are configured; the stub only when neither is.
  const stubPayments = config.LNBITS_URL || config.NWC_URL ? null : new StubPayments(store, { log: log.child({ module: 'stub-payments' }) });
  let payments: Backends['payments'];
  if (stubPayments) {
    payments = stubPayments;
    log.warn('payments: stub backend (test invoices, paid through the dev route)');
  } else if (config.LNBITS_URL) {
    payments = new LnbitsPayments({ url: config.LNBITS_URL, apiKey: config.LNBITS_API_KEY!, pollIntervalMs: config.LNBITS_POLL_INTERVAL_S * 1000, log: log.child({ module: 'lnbits' }) });
    log.info({ url: config.LNBITS_URL, nwcIgnored: config.NWC_URL ? true : undefined }, 'payments: LNbits');
  } else {
    const nwc = new NwcPayments({ url: config.NWC_URL!, pollIntervalMs: config.NWC_POLL_INTERVAL_S * 1000, log: log.child({ module: 'nwc' }) });
    payments = nwc;
    log.info({ wallet: nwc.conn.walletPubkey, relays: nwc.conn.relays.map(redactRelayUrl) }, 'payments: Nostr Wallet Connect');
  }
  // Optional backends are loaded only when configured (the Anthropic SDK alone is ~20 MiB of heap).
  const agent: Agent = config.ANTHROPIC_API_KEY
    ? new (await import('./ai/anthropic.ts')).AnthropicAgent({
        apiKey: config.ANTHROPIC_API_KEY,
        baseURL: config.ANTHROPIC_BASE_URL,
        evalModel: config.EVAL_MODEL,
        workModel: config.WORK_MODEL,
        timeoutMs: config.ANTHROPIC_TIMEOUT_S * 1000,
        maxRetries: config.ANTHROPIC_MAX_RETRIES,
        log: log.child({ module: 'anthropic' }),
      })
    : new StubAgent(
        { evalModel: config.EVAL_MODEL, workModel: config.WORK_MODEL },
        config.STUB_AI_DELAY_MS,
        config.STUB_AI_CALL_LOG ? { path: config.STUB_AI_CALL_LOG, worker: config.workerId } : undefined,
      );
  if (agent.name === 'stub') log.warn('AI: stub agent (canned answers); set ANTHROPIC_API_KEY for a real model');
  else log.info({ evalModel: config.EVAL_MODEL, workModel: config.WORK_MODEL }, 'AI: Anthropic');
  const provisioner: Provisioner = config.DO_API_TOKEN
    ? new (await import('./provision/digitalocean.ts')).DigitalOceanProvisioner({
        token: config.DO_API_TOKEN,
        apiUrl: config.DO_API_URL,
        region: config.DO_REGION,
        size: config.DO_SIZE,
        image: config.DO_IMAGE,
        pollStartMs: config.DO_POLL_START_MS,
        pollCapMs: config.DO_POLL_CAP_S * 1000,
        instance: pubkey ?? '',
        tailscale:
          config.TAILSCALE_API_KEY && config.TAILSCALE_TAILNET
            ? new (await import('./provision/tailscale.ts')).TailscaleClient({ apiKey: config.TAILSCALE_API_KEY, tailnet: config.TAILSCALE_TAILNET, apiUrl: config.TAILSCALE_API_URL, tags: config.TAILSCALE_TAGS })
            : undefined,
      })
    : new StubProvisioner({ delayMs: config.STUB_PROVISION_DELAY_MS });
  if (provisioner.name === 'stub') log.warn('provisioner: stub (no droplets; test IPs); set DO_API_TOKEN for real nodes');
  const oracle = new CoinGeckoOracle({
    // With stub payments the price matters to nobody: no network call unless asked for.
    url: config.BTC_PRICE_URL ?? (stubPayments ? undefined : COINGECKO_SIMPLE_PRICE_URL),
    fallbackUsd: config.BTC_PRICE_USD_FALLBACK,
    log: log.child({ module: 'oracle' }),
  });
  payments.health?.(); // first readings start their checks now, not at the first health request
  agent.health?.();
  return { payments, stubPayments, agent, provisioner, oracle };
}

/** What the core needs from the Nostr side, connected once that side is built (the two need each other). */
export class NostrPorts implements Publisher, InboxDirectory {
  private target: { wake(): void; inboxRelays(pubkey: string): Promise<string[]> } | null = null;
  connect(target: NostrPorts['target']): void {
    this.target = target;
  }
  wake(): void {
    this.target?.wake();
  }
  inboxRelays(pubkey: string): Promise<string[]> {
    return this.target ? this.target.inboxRelays(pubkey) : Promise.resolve([]);
  }
}

export interface Core {
  book: InvoiceBook;
  quoter: Quoter;
  jobs: JobService;
  runner: JobRunner;
  sessions: SessionService;
  bootstrap: BootstrapService;
  demo: DemoService;
  zaps: ZapService;
}

/** The services and their invoice book, on the given backends and ports. */
export function buildCore(
  config: Config,
  store: Store,
  b: Backends,
  ports: { publisher: Publisher; inbox: InboxDirectory; clock?: Clock; fault?: (point: string) => void },
  log: Logger,
): Core {
  const clock = ports.clock ?? systemClock;
  const fault = ports.fault ?? (() => {});
  const pricing = pricingParams(config);
  const book = new InvoiceBook({ store, payments: b.payments, publisher: ports.publisher, clock, log: log.child({ module: 'book' }), invoiceExpirySecs: config.INVOICE_EXPIRY_S });
  b.payments.onSettled((hash) => void book.settle(hash).catch((err) => log.error({ err, paymentHash: hash }, 'settlement handling failed')));
  const worker = { id: config.workerId, leaseMs: config.LEASE_S * 1000 };
  const moves = new JobMoves({ store, log: log.child({ module: 'jobs' }), publisher: ports.publisher, fault, worker });
  // Seen down: check again before refusing (the API may be back), so one failure does not refuse for long.
  const aiHealth = async () => {
    const last = b.agent.health?.() ?? { ok: true, detail: 'in process' };
    return last.ok || !b.agent.recheck ? last : b.agent.recheck();
  };
  const quoter = new Quoter({ agent: b.agent, oracle: b.oracle, pricing, log: log.child({ module: 'pricing' }) });
  const jobs = new JobService({ moves, book, aiHealth, quoter, settings: jobSettings(config) });
  const runner = new JobRunner({ moves, book, agent: b.agent, quoter, pricing, clock });
  const sessions = new SessionService({
    store,
    book,
    jobs,
    runner,
    rootKey: loadRootKey(config.DATA_DIR),
    settings: { sessionTtlSecs: config.SESSION_TTL_S, maxOpenUnpaidPerClient: config.MAX_OPEN_UNPAID_PER_CLIENT, maxDepositSats: config.MAX_SESSION_DEPOSIT_SATS },
    clock,
    log: log.child({ module: 'sessions' }),
  });
  const bootstrap = new BootstrapService({
    store,
    worker,
    book,
    provisioner: b.provisioner,
    box: new SecretBox(loadStorageKey(config.DATA_DIR)),
    settings: {
      sizes: config.bootstrapSizes,
      defaultSize: config.DO_SIZE,
      defaultRegion: config.DO_REGION,
      credentialTtlSecs: config.CREDENTIAL_TTL_S,
      maxOpenUnpaidPerClient: config.MAX_OPEN_UNPAID_PER_CLIENT,
    },
    log: log.child({ module: 'bootstrap' }),
    publisher: ports.publisher,
    inbox: ports.inbox,
    clock,
    fault,
  });
  const demo = new DemoService({ store, agent: b.agent, pricing, dailyBudgetUsd: config.DEMO_DAILY_BUDGET_USD });
  const zaps = new ZapService({ store, book, jobs, sessions, publisher: ports.publisher, clock, log: log.child({ module: 'zaps' }), maxOpenZaps: config.MAX_OPEN_UNPAID_TOTAL });
  return { book, quoter, jobs, runner, sessions, bootstrap, demo, zaps };
}

export interface NostrSide {
  pool: RelayPool;
  intake: Intake;
  outbox: OutboxWorker;
  relayPolicy: RelayPolicy;
  handlerInfo: HandlerInfo;
  /** Renews the NIP-09 subscription when the set of unpaid jobs changed. */
  refreshDeletions(): Promise<void>;
  /** Calls `listener` with each payment -> `processing` latency (ms), when the feedback is first acked by a relay. */
  onProcessingAcked(listener: (ms: number) => void): void;
  /** Stops the outbox (the pool is closed by its owner). */
  stop(): void;
}

/**
 * The relay pool, intake and outbox, wired to the core and connected to its ports. `transport` replaces the
 * pool as the outbox's way out (the ingest benchmark measures without sockets).
 */
export function buildNostr(
  config: Config,
  store: Store,
  keys: { secretKey: Uint8Array; pubkey: string },
  core: Core,
  b: Pick<Backends, 'payments' | 'agent'>,
  ports: { link: NostrPorts; fault?: (point: string) => void; transport?: OutboxDeps['pool'] },
  log: Logger,
): NostrSide {
  // Relay URLs strangers give us (SPEC 9 ALLOW_PRIVATE_RELAYS); the bound HTTP port joins ownPorts at start.
  const worker: Worker = { id: config.workerId, leaseMs: config.LEASE_S * 1000 };
  const relayPolicy: RelayPolicy = { allowPrivate: config.ALLOW_PRIVATE_RELAYS, ownPorts: config.EMBEDDED_RELAY_PORT === 'off' ? [] : [config.EMBEDDED_RELAY_PORT], maxRelays: 3 };
  const intake = new Intake(
    intakeSettings(config, { relayPolicy, ...keys }),
    { jobs: core.jobs, orders: core.bootstrap },
    log.child({ module: 'intake' }),
    intakeStore(store, worker),
  );
  const handlerInfo: HandlerInfo = {
    kinds: [TEXT_JOB_KIND, config.BOOTSTRAP_KIND],
    evalFeeSats: config.EVAL_FEE_SATS,
    minWorkFeeSats: config.MIN_WORK_FEE_SATS,
    workModel: config.WORK_MODEL,
    paymentsStub: b.payments.name === 'stub',
    agentStub: b.agent.name === 'stub',
    lud16: config.PUBLIC_URL ? `${config.ZAP_NAME}@${new URL(config.PUBLIC_URL).host}` : undefined,
  };
  // Profile and handler announcement are replaceable events: signed once per start, sent on every connect.
  const identity = [finalizeEvent(profileTemplate(handlerInfo), keys.secretKey), finalizeEvent(handlerTemplate(handlerInfo), keys.secretKey)];
  const pool: RelayPool = new RelayPool(
    config.relays,
    {
      subscriptions: () => intake.subscriptions(),
      onEvent: (relay, sub, ev) => intake.handle(relay, sub, ev),
      onOk: (relay, id, ok, msg) => outbox.onOk(relay, id, ok, msg),
      onConnected: (relay) => {
        for (const ev of identity) pool.publish(ev, relay);
        void outbox.onConnected(relay); // logs its own failure
      },
      signAuth: (t) => finalizeEvent(t, keys.secretKey),
    },
    { maxMessageBytes: MAX_RELAY_MESSAGE_BYTES },
    log.child({ module: 'pool' }),
  );
  const ackListeners: ((ms: number) => void)[] = [];
  const outboxRows = outboxStore(store, worker);
  const recordAcks = outboxRows.recordAcks;
  outboxRows.recordAcks = async (acks) => {
    const since = Date.now();
    const ids = await recordAcks(acks);
    if (ackListeners.length && ids.length) for (const ms of await store.money.processingLatencies({ ids, ackedSince: since })) for (const l of ackListeners) l(ms);
    return ids;
  };
  const outbox: OutboxWorker = new OutboxWorker({
    store: outboxRows,
    shared: store.dialect === 'pg',
    pool: ports.transport ?? pool,
    secretKey: keys.secretKey,
    log: log.child({ module: 'outbox' }),
    fault: ports.fault ?? (() => {}),
    publishOnce: (url, event) => publishOnce(url, event, { allowPrivate: config.ALLOW_PRIVATE_RELAYS }),
    events: createEventFactory({
      secretKey: keys.secretKey,
      job: (id) => store.jobs.getJob(id),
      order: (id) => store.bootstrap.getBootstrap(id),
      credentialsMessage: (job) => core.bootstrap.credentialsMessage(job),
      onDmDelivered: (jobId) => core.bootstrap.onDmDelivered(jobId),
    }),
  });
  const refreshDeletions = async () => {
    if (await intake.deletionsChanged()) pool.resubscribe(DELETIONS_SUB);
  };
  // The NIP-09 subscription follows the unpaid jobs at the pace of the periodic pass (every 2 s), not on
  // every commit: under a burst each renewal resends up to 500 ids, and the relay stores deletions, so one
  // that arrives in between is still delivered by the next renewal (its `since` reaches back).
  ports.link.connect({
    wake: () => outbox.kick(),
    inboxRelays: async (pubkey) => {
      // NIP-17: the newest valid kind 10050 by the customer, on our read relays; its relays pass the policy.
      const events = (await pool.query({ kinds: [10050], authors: [pubkey], limit: 5 }))
        .map(asEvent)
        .filter((e): e is NonNullable<typeof e> => e !== null && e.pubkey === pubkey && e.kind === 10050 && verifyEvent(e))
        .sort((a, c) => c.created_at - a.created_at);
      return filterRelayUrls((events[0]?.tags ?? []).filter((t) => t[0] === 'relay' && t[1]).map((t) => t[1]!), relayPolicy).accepted;
    },
  });
  const stop = () => {
    intake.stop();
    outbox.stop();
  };
  return { pool, intake, outbox, relayPolicy, handlerInfo, refreshDeletions, onProcessingAcked: (l) => void ackListeners.push(l), stop };
}

/** The HTTP shim over the same core; with `consoleToken`, the operator console too. */
export function buildHttp(config: Config, store: Store, keys: { pubkey: string }, core: Core, b: Backends, nostr: NostrSide, log: Logger, opts: { consoleToken?: string } = {}): App {
  const relays = () => nostr.pool.status();
  const stub = b.stubPayments;
  const health = async () => {
    // Real reads of the tables requests need, not `select 1`: a damaged store must not look healthy.
    const storeOk = await store.health().then(
      () => true,
      () => false,
    );
    const inProcess = { ok: true, detail: 'in process' };
    return {
      relays: relays(),
      storeOk,
      payments: { backend: b.payments.name, ...(b.payments.health?.() ?? inProcess) },
      ai: { backend: b.agent.name, ...(b.agent.health?.() ?? inProcess) },
    };
  };
  const rates = pricingParams(config).work;
  const btcPriceUsd = async () => (await b.oracle.btcUsd()).usd;
  const views: ViewSettings = { rates, btcPriceUsd };
  const consoleDeps: ConsoleRoutesDeps | null = opts.consoleToken
    ? {
        token: opts.consoleToken,
        trustProxy: config.TRUST_PROXY,
        status: async () => {
          const h = await health();
          const live = { relays: nostr.pool.details().map((r) => ({ url: r.url, connected: r.connected, lastError: r.lastError })), payments: h.payments, ai: h.ai, storeOk: h.storeOk };
          return operatorStatus({ store, rates, btcPriceUsd: await btcPriceUsd(), live, nowMs: Date.now() });
        },
        series: (hours) => seriesView(store, views, hours, Date.now()),
        jobs: (o) => jobRows(store, views, o),
        job: (id) => jobPage(store, views, id),
        sessions: () => sessionRows(store),
        session: (id) => sessionPage(store, id),
        credits: () => creditsView(store),
        orders: () => orderRows(store),
        relays: () => relayRows(store, nostr.pool.details()),
        changes: () => store.money.changeCount(),
        assets: consoleAssets,
      }
    : null;
  return createApp({
    worker: config.workerId,
    console: consoleDeps,
    log: log.child({ module: 'http' }),
    maxBodyBytes: 64 * 1024,
    dev: config.production || !stub ? null : { pay: (hash) => stub.pay(hash) },
    jobs: { jobs: core.jobs, book: core.book, maxInputChars: config.MAX_INPUT_CHARS, trustProxy: config.TRUST_PROXY },
    bootstrap: { bootstrap: core.bootstrap, trustProxy: config.TRUST_PROXY },
    sessions: {
      sessions: core.sessions,
      maxInputChars: config.MAX_INPUT_CHARS,
      maxDepositSats: config.MAX_SESSION_DEPOSIT_SATS,
      l402DepositSats: config.L402_DEPOSIT_SATS,
      trustProxy: config.TRUST_PROXY,
    },
    openai: {
      sessions: core.sessions,
      model: config.WORK_MODEL,
      prices: () => core.quoter.prices(),
      maxInputChars: config.MAX_INPUT_CHARS,
      l402DepositSats: config.L402_DEPOSIT_SATS,
      trustProxy: config.TRUST_PROXY,
    },
    demo: { demo: core.demo, limits: store.limits, trustProxy: config.TRUST_PROXY, maxInputChars: config.MAX_INPUT_CHARS },
    lnurl: config.PUBLIC_URL
      ? {
          zaps: core.zaps,
          publicUrl: config.PUBLIC_URL.replace(/\/+$/, ''),
          name: config.ZAP_NAME,
          pubkey: keys.pubkey,
          minSendableMsats: 1000,
          maxSendableMsats: config.MAX_SESSION_DEPOSIT_SATS * 1000,
          acceptRelays: (urls) => filterRelayUrls(urls, nostr.relayPolicy).accepted,
        }
      : null,
    metrics: {
      jobsByState: () => store.jobs.countJobsByState(),
      invoices: () => store.invoices.countInvoices(),
      relays,
      outboxDepth: () => store.outbox.outboxDepth(),
      intake: () => ({ ...nostr.intake.counters }),
      money: async () => {
        const usage = await store.money.modelUsage();
        return {
          receivedMsats: await store.money.receivedMsats(),
          modelCostUsd: modelCostUsd(pricingParams(config).work, usage.inputTokens, usage.outputTokens),
          inputTokens: usage.inputTokens,
          outputTokens: usage.outputTokens,
          creditsOwedMsats: (await store.money.creditsOwedMsats()).msats,
          sessionsHeldMsats: (await store.money.sessionsHeldMsats()).msats,
        };
      },
      onProcessingAcked: (observe) => nostr.onProcessingAcked(observe),
    },
    health,
    info: () => ({
      pubkey: keys.pubkey,
      npub: nip19.npubEncode(keys.pubkey),
      relays: relays(),
      kinds: nostr.handlerInfo.kinds,
      prices: {
        evalFeeSats: config.EVAL_FEE_SATS,
        minWorkFeeSats: config.MIN_WORK_FEE_SATS,
        workModel: config.WORK_MODEL,
        evalModel: config.EVAL_MODEL,
        bootstrapSizes: config.bootstrapSizes,
      },
      payments: b.payments.name,
      agent: b.agent.name,
      lud16: nostr.handlerInfo.lud16 ?? null,
    }),
  });
}

/**
 * Serves the app; resolves with the server and the port it got (HTTP_PORT=0 picks a free one). Idle or slow
 * sockets are closed (headers within 10 s, the request within 60 s, checked every 5 s) and capped.
 */
async function listen(app: App, config: Config): Promise<{ server: ServerType; port: number }> {
  const port = config.HTTP_PORT;
  const server: ServerType = await new Promise((resolve, reject) => {
    const s = serve(
      { fetch: app.fetch, hostname: config.HTTP_HOST, port, serverOptions: { headersTimeout: 10_000, requestTimeout: 60_000, connectionsCheckingInterval: 5_000 } },
      () => resolve(s),
    );
    s.once('error', reject);
  });
  // Behind a proxy every client shares its address: only the total is capped there.
  limitConnections(server, { total: config.HTTP_MAX_CONNECTIONS, perAddress: config.TRUST_PROXY > 0 ? null : config.HTTP_MAX_CONNECTIONS_PER_ADDRESS, firstRequestMs: 10_000 });
  const addr = server.address();
  return { server, port: typeof addr === 'object' && addr ? addr.port : port };
}

/** The embedded relay's default address, as the committed relays.json names it. */
export const EMBEDDED_RELAY_DEFAULT_URL = 'ws://127.0.0.1:7777';

/**
 * Starts the embedded relay (unless `off`); the relay list's entry for the embedded relay follows the port
 * it really got (EMBEDDED_RELAY_PORT=17977 must not dial 7777).
 */
async function startEmbeddedRelay(config: Config, log: Logger): Promise<{ relay: RelayServer | null; config: Config }> {
  if (config.EMBEDDED_RELAY_PORT === 'off') return { relay: null, config };
  const port = config.EMBEDDED_RELAY_PORT;
  const relay = await startStep(
    () => startRelayServer({ host: '127.0.0.1', port, dbPath: join(config.DATA_DIR, 'relay.db'), log: log.child({ module: 'embedded-relay' }) }),
    portInUse('EMBEDDED_RELAY_PORT', port),
  );
  log.info({ url: relay.url }, 'embedded relay listening');
  const relays = config.relays.map((r) => (r.url.replace(/\/$/, '') === EMBEDDED_RELAY_DEFAULT_URL ? { ...r, url: relay.url } : r));
  return { relay, config: { ...config, relays } };
}

/**
 * The periodic passes (expiry, erasure, NIP-09 renewal) and a watch on the relays: with none connected the
 * daemon cannot hear anyone, which must not go unnoticed — warned after a grace period, then every minute.
 */
function startPasses(core: Core, store: Store, nostr: NostrSide, relays: string[], log: Logger): () => void {
  const startedAt = Date.now();
  let lastWarn = 0;
  let tick = 0;
  const timer = setInterval(() => {
    for (const pass of [core.book.expireDue(), core.sessions.expireDue(), core.bootstrap.expireDue()]) pass.catch((err) => log.error({ err }, 'periodic pass failed'));
    nostr.refreshDeletions().catch((err) => log.error({ err }, 'renewing the deletion subscription failed'));
    if (tick > 0 && tick % CLEANUP_EVERY_TICKS === 0) void cleanUpServers(core, log);
    if (tick++ % RETENTION_EVERY_TICKS === 0) {
      core.jobs.purgeUnserved().catch((err) => log.error({ err }, 'retention pass failed'));
      store.limits.prune(Date.now() - DEMO_WINDOW_MS).catch((err) => log.error({ err }, 'pruning rate-limit hits failed'));
      // Claims that ran out are of no use (a minute's slack for the clocks).
      store.leases.pruneRequestClaims(Date.now() - 60_000).catch((err) => log.error({ err }, 'pruning request claims failed'));
    }
    const now = Date.now();
    if (nostr.pool.connectedCount > 0) lastWarn = 0;
    else if (now - startedAt >= NO_RELAY_GRACE_MS && now - lastWarn >= NO_RELAY_WARN_EVERY_MS) {
      lastWarn = now;
      log.warn({ relays }, 'no relay connected: requests cannot reach Timmy and nothing is published; check RELAYS / relays.json');
    }
  }, PASS_INTERVAL_MS);
  return () => clearInterval(timer);
}

/** Destroys servers of orders that will never be delivered (failed, expired, unknown); see BootstrapService.reconcile. */
function cleanUpServers(core: Core, log: Logger): Promise<void> {
  return core.bootstrap.reconcile().then(
    (orders) => log.info({ orders }, 'server clean-up pass done'),
    (err) => log.error({ err }, 'server clean-up pass failed (the provider could not list servers); tried again in 10 minutes'),
  );
}

/**
 * Where the console is. The token is a secret, so the log (files, journald) names only where it is kept; the
 * login URL itself is written only to a terminal an operator is watching (`timmy console` prints it later).
 */
function announceConsole(base: string, t: { source: 'env' | 'file'; file: string; token: string }, log: Logger): void {
  log.info({ url: `${base}/console`, token: t.source === 'env' ? 'CONSOLE_TOKEN' : t.file }, 'operator console (log in with the token; `timmy console` prints the login URL)');
  if (process.stderr.isTTY) process.stderr.write(`\n  operator console: ${loginUrl(base, t.token)}\n\n`);
}

// --- lifecycle ---

export async function startDaemon(config: Config, log = createLogger(config.LOG_LEVEL, undefined, { worker: config.workerId })): Promise<Daemon> {
  if (config.production && !config.LNBITS_URL && !config.NWC_URL && !config.ALLOW_STUB_PAYMENTS) {
    throw new StartupError('NODE_ENV=production with the stub payment backend: set NWC_URL or LNBITS_URL, or ALLOW_STUB_PAYMENTS=1 for a demo');
  }
  await initCrypto();
  const dirProblem = (e: NodeJS.ErrnoException) => (FS_CODES.has(e.code ?? '') ? `DATA_DIR ${config.DATA_DIR} cannot be used: ${e.code} (${e.message})` : null);
  // SQLite: one daemon per data directory. PostgreSQL: workers may share one (the store's leases keep them apart).
  const unlock = await startStep(() => (protectDataDir(config), config.DATABASE_URL ? () => {} : lockDataDir(config)), dirProblem);
  const fault = faultInjector(config.TIMMY_FAULT, log);
  const secretKey = await startStep(() => loadSecretKey(config.DATA_DIR, config.NOSTR_SECRET_KEY), (e) => (e instanceof KeyError ? e.message : dirProblem(e)));
  const keys = { secretKey, pubkey: getPublicKey(secretKey) };
  const store = await startStep(() => openStore(config), (e) => dbProblem(storeLocation(config), e));
  if (store.dialect === 'pg') {
    await startStep(() => checkKeysAgree(store, config.DATA_DIR, keys.pubkey), (e) => (e instanceof KeyError ? e.message : dirProblem(e)));
  }
  log.info({ pubkey: keys.pubkey, npub: nip19.npubEncode(keys.pubkey), database: storeLocation(config) }, 'Timmy starting');
  const { relay: embedded, config: cfg } = await startEmbeddedRelay(config, log);
  config = cfg;
  const backends = await buildBackends(config, store, log, keys.pubkey);
  const link = new NostrPorts();
  const core = buildCore(config, store, backends, { publisher: link, inbox: link, fault }, log);
  await core.book.start();
  const nostr = buildNostr(config, store, keys, core, backends, { link, fault }, log);
  await nostr.intake.load();
  const consoleToken = await startStep(() => loadConsoleToken(config.DATA_DIR, config.CONSOLE_TOKEN), dirProblem);
  const { server, port: httpPort } = await startStep(
    () => listen(buildHttp(config, store, keys, core, backends, nostr, log, { consoleToken: consoleToken.token }), config),
    portInUse('HTTP_PORT', config.HTTP_PORT),
  );
  nostr.relayPolicy.ownPorts.push(httpPort);
  log.info({ url: `http://${config.HTTP_HOST}:${httpPort}/api` }, 'HTTP listening');
  announceConsole(`http://${/^(0\.0\.0\.0|::)$/.test(config.HTTP_HOST) ? '127.0.0.1' : config.HTTP_HOST}:${httpPort}`, consoleToken, log);

  nostr.outbox.start();
  backends.payments.start?.();
  nostr.pool.start();
  // Resume in the background: with a large backlog the daemon already serves new work meanwhile.
  const resumed = (async () => {
    await core.runner.resume();
    await core.bootstrap.resume();
    await Promise.all([core.book.resume(), cleanUpServers(core, log)]);
    log.info('resume pass done');
  })().catch((err) => log.error({ err }, 'resume pass failed'));
  const stopPasses = startPasses(core, store, nostr, nostr.pool.status().map((r) => r.url), log);
  log.info({ relays: nostr.pool.status().map((r) => r.url), jobs: await store.jobs.countJobsByState(), outbox: await store.outbox.outboxDepth() }, 'Timmy ready');

  let stopped = false;
  return {
    pubkey: keys.pubkey, httpPort, store, log,
    async stop() {
      if (stopped) return;
      stopped = true;
      log.info({ jobsInFlight: core.runner.runningIds, nodeOrdersInFlight: core.bootstrap.runningIds }, 'stopping: intake closed, letting running steps commit');
      stopPasses();
      nostr.intake.stop(); // claims nothing more: the other workers answer what relays hand in meanwhile
      core.jobs.stop();
      core.book.stop();
      await Promise.all([core.runner.stop(5000), core.bootstrap.stop(5000), resumed]);
      await nostr.outbox.finish(2000);
      nostr.stop();
      nostr.pool.close();
      await backends.payments.close();
      const closed = new Promise<void>((r) => server.close(() => r()));
      if ('closeAllConnections' in server) server.closeAllConnections();
      await closed;
      await embedded?.close();
      await store.close();
      unlock();
      log.info('stopped');
    },
  };
}
