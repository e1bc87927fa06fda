// The one place where Timmy's parts are built and wired: config -> store -> outside systems -> core ->
// transports. Also the lifecycle: start, resume, periodic expiry, graceful stop.
import { serve, type ServerType } from '@hono/node-server';
import { nip19 } from 'nostr-tools';
import type { Config } from './config.ts';
import { createLogger, type Logger } from './log.ts';
import { openDb, closeDb, type Db } from './store/db.ts';
import { getKv, setKv } from './store/kv.ts';
import { countInvoicesByStatus, countJobsByState, unpaidNostrJobIds } from './store/jobs.ts';
import { outboxDepth } from './store/outbox.ts';
import { StubPayments } from './payments/stub.ts';
import { StubAgent } from './ai/stub.ts';
import type { Agent } from './ai/agent.ts';
import { DemoService } from './core/demo.ts';
import { CoinGeckoOracle, COINGECKO_SIMPLE_PRICE_URL } from './pricing/oracle.ts';
import { LnbitsPayments } from './payments/lnbits.ts';
import type { PaymentBackend } from './payments/payments.ts';
import type { PricingParams } from './pricing/pricing.ts';
import { JobService, type JobSettings } from './core/jobs.ts';
import { initCrypto, finalizeEvent, getPublicKey, verifyEvent } from './nostr/crypto.ts';
import { loadRootKey, loadSecretKey, loadStorageKey } from './nostr/keys.ts';
import { SessionService } from './core/sessions.ts';
import { BootstrapService } from './core/bootstrap.ts';
import { SecretBox } from './core/sealed.ts';
import type { Provisioner } from './provision/provisioner.ts';
import { StubProvisioner } from './provision/stub.ts';
import { createEventFactory } from './nostr/events.ts';
import { asEvent } from './nostr/intake.ts';
import { filterRelayUrls } from './nostr/relay-policy.ts';
import { RelayPool } from './nostr/pool.ts';
import { Intake, DELETIONS_SUB, type IntakeSettings } from './nostr/intake.ts';
import { OutboxWorker } from './nostr/outbox.ts';
import { publishOnce } from './nostr/ephemeral.ts';
import type { RelayPolicy } from './nostr/relay-policy.ts';
import { handlerTemplate, profileTemplate, type HandlerInfo } from './nostr/nip89.ts';
import { TEXT_JOB_KIND } from './nostr/nip90.ts';
import { startRelayServer, type RelayServer } from './nostr/relay-server.ts';
import { createApp } from './http/app.ts';
import { join } from 'node:path';

export interface Daemon {
  pubkey: string;
  httpPort: number;
  db: Db;
  log: Logger;
  stop(): Promise<void>;
}

const CURSOR_KEY = 'intake_cursor';
const MAX_EVENT_BYTES = 64 * 1024; // bytes of content + tags accepted in a request
const MAX_RELAY_MESSAGE_BYTES = 512 * 1024; // bytes; larger websocket frames close the connection

export class StartupError extends Error {
  override name = 'StartupError';
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

// The settings each part takes from Config, named once (the daemon and the ingest benchmark build them).
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
    invoiceExpirySecs: config.INVOICE_EXPIRY_S,
    maxOpenUnpaidPerClient: config.MAX_OPEN_UNPAID_PER_CLIENT,
    maxOpenUnpaidTotal: config.MAX_OPEN_UNPAID_TOTAL,
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

/** The persisted subscription cursor (unix s of the newest request seen). */
export function intakeCursor(db: Db): { get(): number | null; set(v: number): void } {
  return {
    get: () => {
      const v = getKv(db, CURSOR_KEY);
      return v ? Number(v) : null;
    },
    set: (v) => setKv(db, CURSOR_KEY, String(v)),
  };
}

export async function startDaemon(config: Config, log = createLogger(config.LOG_LEVEL)): Promise<Daemon> {
  if (config.production && !config.LNBITS_URL && !config.ALLOW_STUB_PAYMENTS) {
    throw new StartupError('NODE_ENV=production with the stub payment backend: set LNBITS_URL, or ALLOW_STUB_PAYMENTS=1 for a demo');
  }
  await initCrypto();
  const fault = faultInjector(config.TIMMY_FAULT, log);
  const secretKey = loadSecretKey(config.DATA_DIR, config.NOSTR_SECRET_KEY);
  const pubkey = getPublicKey(secretKey);
  const db = openDb(config.databasePath);
  log.info({ pubkey, npub: nip19.npubEncode(pubkey), database: config.databasePath }, 'Timmy starting');

  let embedded: RelayServer | null = null;
  if (config.EMBEDDED_RELAY_PORT !== 'off') {
    embedded = await startRelayServer({
      host: '127.0.0.1',
      port: config.EMBEDDED_RELAY_PORT,
      dbPath: join(config.DATA_DIR, 'relay.db'),
      log: log.child({ module: 'embedded-relay' }),
    });
    log.info({ url: embedded.url }, 'embedded relay listening');
  }

  const payments: PaymentBackend & { start?: () => void } = config.LNBITS_URL
    ? new LnbitsPayments({
        url: config.LNBITS_URL,
        apiKey: config.LNBITS_API_KEY!,
        pollIntervalMs: config.LNBITS_POLL_INTERVAL_S * 1000,
        log: log.child({ module: 'lnbits' }),
      })
    : new StubPayments(db);
  if (payments.name === 'stub') log.warn('payments: stub backend (test invoices, paid through the dev route)');
  else log.info({ url: config.LNBITS_URL }, 'payments: LNbits');
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
    : new StubAgent({ evalModel: config.EVAL_MODEL, workModel: config.WORK_MODEL }, config.STUB_AI_DELAY_MS);
  if (agent.name === 'stub') log.warn('AI: stub agent (canned answers); set ANTHROPIC_API_KEY for a real model');
  else log.info({ evalModel: config.EVAL_MODEL, workModel: config.WORK_MODEL }, 'AI: Anthropic');
  const oracle = new CoinGeckoOracle({
    // With stub payments the price matters to nobody: no network call unless asked for.
    url: config.BTC_PRICE_URL ?? (payments.name === 'lnbits' ? COINGECKO_SIMPLE_PRICE_URL : undefined),
    fallbackUsd: config.BTC_PRICE_USD_FALLBACK,
    log: log.child({ module: 'oracle' }),
  });
  const pricing = pricingParams(config);

  // The outbox needs the pool and the pool's handlers need the outbox: bind late through these.
  let outboxWorker: OutboxWorker | null = null;
  let refreshDeletions: (() => void) | null = null;
  let deletionTimer: NodeJS.Timeout | null = null;
  /** The set of unpaid jobs may have changed: renew the NIP-09 subscription shortly (coalesced). */
  const refreshDeletionsSoon = () => {
    deletionTimer ??= setTimeout(() => {
      deletionTimer = null;
      refreshDeletions?.();
    }, 200);
  };
  const jobs = new JobService({
    db,
    payments,
    agent,
    oracle,
    pricing,
    settings: jobSettings(config),
    log: log.child({ module: 'jobs' }),
    onIntents: () => {
      outboxWorker?.kick();
      refreshDeletionsSoon();
    },
    fault,
  });
  const sessions = new SessionService({
    db,
    payments,
    jobs,
    rootKey: loadRootKey(config.DATA_DIR),
    settings: {
      invoiceExpirySecs: config.INVOICE_EXPIRY_S,
      sessionTtlSecs: config.SESSION_TTL_S,
      maxOpenUnpaidPerClient: config.MAX_OPEN_UNPAID_PER_CLIENT,
      maxDepositSats: config.MAX_SESSION_DEPOSIT_SATS,
    },
    log: log.child({ module: 'sessions' }),
  });
  const provisioner: Provisioner = config.DO_API_TOKEN
    ? new (await import('./provision/digitalocean.ts')).DigitalOceanProvisioner({
        token: config.DO_API_TOKEN,
        apiUrl: config.DO_API_URL,
        region: config.DO_REGION,
        size: config.DO_SIZE,
        image: config.DO_IMAGE,
        pollStartMs: config.DO_POLL_START_MS,
        tailscale:
          config.TAILSCALE_API_KEY && config.TAILSCALE_TAILNET
            ? new (await import('./provision/tailscale.ts')).TailscaleClient({ apiKey: config.TAILSCALE_API_KEY, tailnet: config.TAILSCALE_TAILNET, apiUrl: config.TAILSCALE_API_URL })
            : undefined,
      })
    : new StubProvisioner({ delayMs: config.STUB_PROVISION_DELAY_MS });
  if (provisioner.name === 'stub') log.warn('provisioner: stub (no droplets; test IPs); set DO_API_TOKEN for real nodes');
  // Bound late: the 10050 lookup needs the pool, built below.
  let inboxLookup: (pubkey: string) => Promise<string[]> = async () => [];
  const bootstrap = new BootstrapService({
    db,
    payments,
    provisioner,
    box: new SecretBox(loadStorageKey(config.DATA_DIR)),
    settings: {
      sizes: config.bootstrapSizes,
      defaultSize: config.DO_SIZE,
      defaultRegion: config.DO_REGION,
      invoiceExpirySecs: config.INVOICE_EXPIRY_S,
      credentialTtlSecs: config.CREDENTIAL_TTL_S,
      maxOpenUnpaidPerClient: config.MAX_OPEN_UNPAID_PER_CLIENT,
    },
    log: log.child({ module: 'bootstrap' }),
    onIntents: () => outboxWorker?.kick(),
    inboxRelays: (pubkey) => inboxLookup(pubkey),
    fault,
  });
  payments.onSettled((hash) => {
    try {
      if (sessions.onInvoicePaid(hash) || bootstrap.onInvoicePaid(hash)) return;
    } catch (err) {
      log.error({ err, paymentHash: hash }, 'session settlement handling failed');
      return;
    }
    jobs.onInvoicePaid(hash).catch((err) => log.error({ err, paymentHash: hash }, 'settlement handling failed'));
  });

  // Relay URLs strangers give us (SPEC 9 ALLOW_PRIVATE_RELAYS); the bound HTTP port joins ownPorts below.
  const relayPolicy: RelayPolicy = {
    allowPrivate: config.ALLOW_PRIVATE_RELAYS,
    ownPorts: config.EMBEDDED_RELAY_PORT === 'off' ? [] : [config.EMBEDDED_RELAY_PORT],
    maxRelays: 3,
  };
  const intake = new Intake(
    intakeSettings(config, { relayPolicy, pubkey, secretKey }),
    jobs,
    log.child({ module: 'intake' }),
    intakeCursor(db),
    () => unpaidNostrJobIds(db, 500),
    bootstrap,
  );

  const handlerInfo: HandlerInfo = {
    kinds: [TEXT_JOB_KIND, config.BOOTSTRAP_KIND],
    evalFeeSats: config.EVAL_FEE_SATS,
    minWorkFeeSats: config.MIN_WORK_FEE_SATS,
    workModel: config.WORK_MODEL,
    paymentsStub: payments.name === 'stub',
    agentStub: agent.name === 'stub',
  };
  // Profile and handler announcement are replaceable events: signed once per start, sent on every connect.
  const identity = [finalizeEvent(profileTemplate(handlerInfo), secretKey), finalizeEvent(handlerTemplate(handlerInfo), secretKey)];

  const pool = new RelayPool(
    config.relays,
    {
      subscriptions: () => intake.subscriptions(),
      onEvent: (relay, sub, ev) => intake.handle(relay, sub, ev),
      onOk: (relay, id, ok, msg) => outboxWorker?.onOk(relay, id, ok, msg),
      onConnected: (relay) => {
        for (const ev of identity) pool.publish(ev, relay);
        outboxWorker?.onConnected(relay);
      },
      signAuth: (t) => finalizeEvent(t, secretKey),
    },
    { maxMessageBytes: MAX_RELAY_MESSAGE_BYTES },
    log.child({ module: 'pool' }),
  );
  refreshDeletions = () => {
    if (intake.deletionsChanged()) pool.resubscribe(DELETIONS_SUB);
  };
  outboxWorker = new OutboxWorker({
    db,
    pool,
    secretKey,
    log: log.child({ module: 'outbox' }),
    fault,
    publishOnce: (url, event) => publishOnce(url, event, { allowPrivate: config.ALLOW_PRIVATE_RELAYS }),
    events: createEventFactory({
      db,
      secretKey,
      credentialsMessage: (job) => bootstrap.credentialsMessage(job),
      onDmDelivered: (jobId) => bootstrap.onDmDelivered(jobId),
    }),
  });
  inboxLookup = async (pubkey) => {
    // NIP-17: the newest valid kind 10050 by the customer, on our read relays; its relays pass the policy.
    const events = (await pool.query({ kinds: [10050], authors: [pubkey], limit: 5 }))
      .map(asEvent)
      .filter((e): e is NonNullable<typeof e> => e !== null && e.pubkey === pubkey && e.kind === 10050 && verifyEvent(e))
      .sort((a, b) => b.created_at - a.created_at);
    const urls = (events[0]?.tags ?? []).filter((t) => t[0] === 'relay' && t[1]).map((t) => t[1]!);
    return filterRelayUrls(urls, relayPolicy).accepted;
  };

  const relayStatus = () => pool.status();
  const app = createApp({
    log: log.child({ module: 'http' }),
    maxBodyBytes: 64 * 1024,
    dev: config.production || !(payments instanceof StubPayments) ? null : { pay: (hash) => payments.pay(hash) },
    jobs: { jobs, maxInputChars: config.MAX_INPUT_CHARS, trustProxy: config.TRUST_PROXY },
    bootstrap: { bootstrap, payments, trustProxy: config.TRUST_PROXY },
    sessions: {
      sessions,
      maxInputChars: config.MAX_INPUT_CHARS,
      maxDepositSats: config.MAX_SESSION_DEPOSIT_SATS,
      l402DepositSats: config.L402_DEPOSIT_SATS,
      trustProxy: config.TRUST_PROXY,
    },
    demo: {
      demo: new DemoService({ db, agent, pricing, dailyBudgetUsd: config.DEMO_DAILY_BUDGET_USD }),
      trustProxy: config.TRUST_PROXY,
      maxInputChars: config.MAX_INPUT_CHARS,
    },
    metrics: {
      jobsByState: () => countJobsByState(db),
      invoicesByStatus: () => countInvoicesByStatus(db),
      relays: relayStatus,
      outboxDepth: () => outboxDepth(db),
      intake: () => ({ ...intake.counters }),
    },
    health: () => {
      let storeOk = true;
      try {
        db.$client.prepare('select 1').get();
      } catch {
        storeOk = false;
      }
      return { relays: relayStatus(), storeOk, payments: payments.name, agent: agent.name };
    },
    info: () => ({
      pubkey,
      npub: nip19.npubEncode(pubkey),
      relays: relayStatus(),
      kinds: handlerInfo.kinds,
      prices: {
        evalFeeSats: config.EVAL_FEE_SATS,
        minWorkFeeSats: config.MIN_WORK_FEE_SATS,
        workModel: config.WORK_MODEL,
        evalModel: config.EVAL_MODEL,
        bootstrapSizes: config.bootstrapSizes,
      },
      payments: payments.name,
      agent: agent.name,
    }),
  });
  const server: ServerType = await new Promise((resolve, reject) => {
    const s = serve({ fetch: app.fetch, hostname: config.HTTP_HOST, port: config.HTTP_PORT }, () => resolve(s));
    s.once('error', reject);
  });
  const addr = server.address();
  const httpPort = typeof addr === 'object' && addr ? addr.port : config.HTTP_PORT;
  log.info({ url: `http://${config.HTTP_HOST}:${httpPort}/api` }, 'HTTP listening');
  relayPolicy.ownPorts.push(httpPort);

  outboxWorker.start();
  payments.start?.();
  pool.start();
  // Resume in the background: with a large backlog the daemon already serves new work meanwhile.
  const resumed = (async () => {
    await jobs.resume();
    await sessions.resume();
    await bootstrap.resume();
    log.info('resume pass done');
  })().catch((err) => log.error({ err }, 'resume pass failed'));
  const expiryTimer = setInterval(() => {
    jobs.expireDue().catch((err) => log.error({ err }, 'expiry pass failed'));
    sessions.expireDue().catch((err) => log.error({ err }, 'session expiry pass failed'));
    bootstrap.expireDue().catch((err) => log.error({ err }, 'bootstrap expiry pass failed'));
    refreshDeletions?.();
  }, 2000);
  log.info({ relays: config.relays.map((r) => r.url), jobs: countJobsByState(db), outbox: outboxDepth(db) }, 'Timmy ready');

  let stopped = false;
  return {
    pubkey,
    httpPort,
    db,
    log,
    async stop() {
      if (stopped) return;
      stopped = true;
      log.info('stopping: intake closed, letting running steps commit');
      clearInterval(expiryTimer);
      if (deletionTimer) clearTimeout(deletionTimer);
      await Promise.all([jobs.stop(5000), bootstrap.stop(5000), resumed]);
      await outboxWorker!.flush(2000);
      outboxWorker!.stop();
      pool.close();
      await payments.close();
      const closed = new Promise<void>((r) => server.close(() => r()));
      if ('closeAllConnections' in server) server.closeAllConnections();
      await closed;
      await embedded?.close();
      closeDb(db);
      log.info('stopped');
    },
  };
}
