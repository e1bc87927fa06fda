// Environment + relays.json -> one typed, validated Config. Fails fast naming every bad key.
import { NwcUrlError, parseNwcUrl } from './payments/nwc.ts';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';

export const PACKAGE_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

export interface RelayConfig {
  url: string;
  read: boolean;
  write: boolean;
}

const bool = z
  .enum(['1', '0', 'true', 'false', 'yes', 'no', ''])
  .transform((v) => v === '1' || v === 'true' || v === 'yes');
const int = (min = 0) => z.coerce.number().int().min(min);
const num = (min = 0) => z.coerce.number().min(min);
const port = z.coerce.number().int().min(0).max(65535);

/** Every environment variable Timmy reads: default and one-line meaning (the README table is built from this). */
export const ENV_DOC: Record<string, { default: string; doc: string }> = {
  DATA_DIR: { default: './data', doc: 'directory for the database, the generated keys and the embedded relay store (kept owner-only: 0700, files 0600)' },
  DATABASE_PATH: { default: '$DATA_DIR/timmy.db', doc: 'SQLite database file (ignored when DATABASE_URL is set)' },
  WORKER_ID: { default: '<hostname>:<pid>', doc: 'this process\'s name among workers sharing one DATABASE_URL: owner of the work it leases, `worker` in logs and /metrics' },
  LEASE_S: { default: '30', doc: 'seconds a worker holds a job step (evaluation, work, provisioning) between renewals (every LEASE_S/3), an outbox event it sends, or a request it claimed; what a dead worker held is taken over after it' },
  DATABASE_URL: { default: 'unset', doc: 'postgres://user:password@host:port/db — use PostgreSQL instead of SQLite (migrated at start; see "Running several workers")' },
  RELAYS: { default: 'from relays.json', doc: 'comma-separated relay URLs (read and write); overrides relays.json' },
  RELAYS_FILE: { default: '<package>/relays.json', doc: 'relay list file: [{url, read, write}]' },
  EMBEDDED_RELAY_PORT: { default: '7777', doc: 'port of the embedded relay on 127.0.0.1 (relays.json\'s ws://127.0.0.1:7777 entry follows it); `off` disables it' },
  HTTP_HOST: { default: '127.0.0.1', doc: 'HTTP listen address' },
  HTTP_PORT: { default: '8080', doc: 'HTTP listen port (0 picks a free one)' },
  NOSTR_SECRET_KEY: { default: 'generated into $DATA_DIR/nostr.key', doc: "Timmy's Nostr secret key, nsec or hex" },
  NODE_ENV: { default: 'development', doc: '`production` refuses stub payments and removes the dev pay route' },
  ALLOW_STUB_PAYMENTS: { default: 'unset', doc: 'allow the stub payment backend in production (demo deployments)' },
  LOG_LEVEL: { default: 'info', doc: 'pino level: trace, debug, info, warn, error, fatal, silent (short coloured lines on a terminal, JSON lines otherwise)' },
  LNBITS_URL: { default: 'unset (stub payments)', doc: 'LNbits base URL; set it to take real payments' },
  LNBITS_API_KEY: { default: 'unset', doc: 'LNbits invoice/read key of the wallet (never the admin key)' },
  LNBITS_POLL_INTERVAL_S: { default: '5', doc: 'how often open invoices are polled while the LNbits websocket is down' },
  PUBLIC_URL: { default: 'unset (no zaps)', doc: 'where the HTTP API is reachable from outside (https:// in production); turns on zaps: Timmy is its own LNURL-pay endpoint' },
  ZAP_NAME: { default: 'timmy', doc: 'the name of the lightning address <ZAP_NAME>@<host of PUBLIC_URL> (kind 0 lud16)' },
  NWC_URL: { default: 'unset', doc: 'Nostr Wallet Connect string (nostr+walletconnect://...) of the wallet that receives; LNbits wins when both are set' },
  NWC_POLL_INTERVAL_S: { default: '5', doc: 'how often open invoices are looked up while the NWC relay is down or the wallet sends no notifications' },
  ANTHROPIC_API_KEY: { default: 'unset (stub agent)', doc: 'Anthropic API key; set it for real answers' },
  ANTHROPIC_BASE_URL: { default: 'SDK default', doc: 'Anthropic API base URL' },
  ANTHROPIC_TIMEOUT_S: { default: '60', doc: 'timeout of one model call attempt' },
  ANTHROPIC_MAX_RETRIES: { default: '3', doc: 'retries of a model call on 429/529/5xx/network errors, with backoff' },
  EVAL_MODEL: { default: 'claude-haiku-4-5', doc: 'model that accepts or rejects a request' },
  WORK_MODEL: { default: 'claude-sonnet-4-6', doc: 'model that does the paid work' },
  BTC_PRICE_URL: { default: 'unset (CoinGecko simple price when payments are real)', doc: 'BTC/USD price URL, CoinGecko `simple/price` JSON shape' },
  BTC_PRICE_USD_FALLBACK: { default: '100000', doc: 'BTC price in USD used when the oracle fails or is off' },
  EVAL_FEE_SATS: { default: '10', doc: 'flat evaluation fee' },
  MIN_WORK_FEE_SATS: { default: '1', doc: 'floor of a work invoice' },
  EVAL_INPUT_USD_PER_MTOK: { default: '1', doc: 'eval model input rate, USD per million tokens' },
  EVAL_OUTPUT_USD_PER_MTOK: { default: '5', doc: 'eval model output rate, USD per million tokens' },
  WORK_INPUT_USD_PER_MTOK: { default: '3', doc: 'work model input rate, USD per million tokens' },
  WORK_OUTPUT_USD_PER_MTOK: { default: '15', doc: 'work model output rate, USD per million tokens' },
  INFRA_MONTHLY_USD: { default: '20', doc: 'monthly infrastructure cost, amortised per request' },
  INFRA_MONTHLY_REQUESTS: { default: '10000', doc: 'expected requests per month for the amortisation' },
  MARGIN_PCT: { default: '20', doc: 'margin on top of cost, percent' },
  INVOICE_EXPIRY_S: { default: '600', doc: 'lifetime of every invoice' },
  MAX_REQUEST_AGE_S: { default: '3600', doc: 'requests older than this are ignored' },
  ACCEPT_UNTARGETED: { default: 'unset', doc: 'also serve job requests that do not p-tag Timmy' },
  MAX_OPEN_UNPAID_PER_CLIENT: { default: '5', doc: 'open unpaid jobs per customer pubkey / client address' },
  MAX_OPEN_UNPAID_TOTAL: { default: '1000', doc: 'open unpaid jobs in total; at the cap the oldest unpaid evaluation is dropped to make room' },
  POW_DIFFICULTY: { default: '16', doc: 'NIP-13 proof of work (leading zero bits of the request id) demanded of Nostr requests under load; 0: never' },
  POW_THRESHOLD_PCT: { default: '50', doc: 'proof of work is demanded while open unpaid jobs reach this share of MAX_OPEN_UNPAID_TOTAL' },
  MAX_INPUT_CHARS: { default: '20000', doc: 'longest job input accepted' },
  STUB_AI_DELAY_MS: { default: '0', doc: 'artificial latency of the stub agent per call (demos, fault tests); streamed answers: the first word after it, then one per twentieth of it' },
  STUB_AI_CALL_LOG: { default: 'unset', doc: '**testing only**: a file the stub agent appends one JSON line to per call, before answering: `{worker, stage, input, atMs}` (the fault tests count AI calls across workers with it)' },
  ALLOW_PRIVATE_RELAYS: { default: 'unset', doc: 'let relay URLs from requests and 10050 lists be ws:// or private addresses' },
  DEMO_DAILY_BUDGET_USD: { default: '1', doc: 'what GET /api/demo may spend on the model per UTC day' },
  L402_DEPOSIT_SATS: { default: '1000', doc: 'deposit (and top-up) of a session opened by the L402 front door' },
  SESSION_TTL_S: { default: '2592000', doc: 'a session unused this long expires (a bound pubkey keeps its balance as credit)' },
  MAX_SESSION_DEPOSIT_SATS: { default: '1000000', doc: 'largest single deposit or top-up' },
  BOOTSTRAP_KIND: { default: '5960', doc: 'job kind of node orders (the result is kind + 1000)' },
  BOOTSTRAP_FEE_SATS: { default: '10000', doc: 'price of a node of the default size (DO_SIZE)' },
  BOOTSTRAP_SIZES: { default: 's-4vcpu-8gb=20000,s-8vcpu-16gb=40000', doc: 'further sizes and their prices: slug=sats,...' },
  CREDENTIAL_TTL_S: { default: '86400', doc: 'undelivered node credentials are erased after this long' },
  RETENTION_DAYS: { default: '30', doc: 'requests never served (refused, expired, cancelled) are purged after this many days, with their events; the money ledgers are kept; 0 keeps everything' },
  DO_API_TOKEN: { default: 'unset (stub provisioner)', doc: 'DigitalOcean API token; set it to create real droplets' },
  DO_API_URL: { default: 'https://api.digitalocean.com', doc: 'DigitalOcean API base URL' },
  DO_REGION: { default: 'nyc3', doc: 'default droplet region' },
  DO_SIZE: { default: 's-2vcpu-4gb', doc: 'default droplet size (priced BOOTSTRAP_FEE_SATS)' },
  DO_IMAGE: { default: 'ubuntu-24-04-x64', doc: 'droplet image' },
  DO_POLL_START_MS: { default: '2000', doc: 'first pause while waiting for the droplet IP (doubles, up to 15 s; DO_POLL_CAP_S in all)' },
  DO_POLL_CAP_S: { default: '120', doc: 'how long to wait for a new droplet to get its public IPv4 before the order fails (fee credited, droplet destroyed)' },
  TAILSCALE_API_KEY: { default: 'unset (no Tailscale)', doc: 'Tailscale API key: nodes join your tailnet with a one-off auth key' },
  TAILSCALE_TAILNET: { default: 'unset', doc: 'the tailnet name (required with TAILSCALE_API_KEY)' },
  TAILSCALE_API_URL: { default: 'https://api.tailscale.com', doc: 'Tailscale API base URL' },
  TAILSCALE_TAGS: { default: 'tag:timmy-node', doc: 'comma-separated ACL tags on node auth keys (required with Tailscale: untagged customer nodes would reach your whole tailnet)' },
  STUB_PROVISION_DELAY_MS: { default: '1500', doc: 'how long the stub provisioner pretends to work' },
  HTTP_MAX_CONNECTIONS: { default: '2000', doc: 'open HTTP connections at most (idle ones are closed after 10 s without a request)' },
  HTTP_MAX_CONNECTIONS_PER_ADDRESS: { default: '256', doc: 'open HTTP connections per client address at most (not applied with TRUST_PROXY: every client shares the proxy address)' },
  TIMMY_API: { default: 'http://$HTTP_HOST:$HTTP_PORT', doc: "the CLI's HTTP base URL for the customer commands and dev pay (a wildcard HTTP_HOST means 127.0.0.1); not read by the daemon" },
  CONSOLE_TOKEN: { default: 'generated into $DATA_DIR/console.token', doc: 'operator token of the web console (/console): `Authorization: Bearer <token>`, or once `/console?token=<token>`, which sets an HttpOnly cookie; a secret' },
  TRUST_PROXY: { default: 'unset', doc: 'trusted reverse-proxy hops: the client address is that many X-Forwarded-For entries from the right (`1` = one proxy; `true`/`yes` = 1)' },
};

const EnvSchema = z.object({
  DATA_DIR: z.string().min(1).default('./data'),
  DATABASE_PATH: z.string().min(1).optional(),
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\/[^\s]+$/, 'must be a postgres:// or postgresql:// URL')
    .optional(),
  WORKER_ID: z.string().regex(/^[\w.:@-]{1,100}$/, 'letters, digits and . : @ _ - only (at most 100)').optional(),
  LEASE_S: int(2).default(30),
  RELAYS: z.string().optional(),
  RELAYS_FILE: z.string().optional(),
  EMBEDDED_RELAY_PORT: z.union([z.literal('off'), port]).default(7777),
  HTTP_HOST: z.string().min(1).default('127.0.0.1'),
  HTTP_PORT: port.default(8080),
  HTTP_MAX_CONNECTIONS: int(1).default(2000),
  HTTP_MAX_CONNECTIONS_PER_ADDRESS: int(1).default(256),
  NOSTR_SECRET_KEY: z.string().optional(),
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  ALLOW_STUB_PAYMENTS: bool.default(false),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
  LNBITS_URL: z.url({ protocol: /^https?$/ }).optional(),
  LNBITS_API_KEY: z.string().min(1).optional(),
  LNBITS_POLL_INTERVAL_S: num(0.05).default(5),
  NWC_URL: z.string().min(1).optional(),
  PUBLIC_URL: z.url({ protocol: /^https?$/ }).optional(),
  ZAP_NAME: z.string().regex(/^[a-z0-9._-]{1,64}$/, 'lower-case letters, digits, . _ - only').default('timmy'),
  NWC_POLL_INTERVAL_S: num(0.05).default(5),
  ANTHROPIC_API_KEY: z.string().min(1).optional(),
  ANTHROPIC_BASE_URL: z.url({ protocol: /^https?$/ }).optional(),
  ANTHROPIC_TIMEOUT_S: num(0.1).default(60),
  ANTHROPIC_MAX_RETRIES: int(0).default(3),
  EVAL_MODEL: z.string().min(1).default('claude-haiku-4-5'),
  WORK_MODEL: z.string().min(1).default('claude-sonnet-4-6'),
  BTC_PRICE_URL: z.url().optional(),
  BTC_PRICE_USD_FALLBACK: num(1).default(100000),
  EVAL_FEE_SATS: int(0).default(10),
  MIN_WORK_FEE_SATS: int(1).default(1),
  EVAL_INPUT_USD_PER_MTOK: num().default(1),
  EVAL_OUTPUT_USD_PER_MTOK: num().default(5),
  WORK_INPUT_USD_PER_MTOK: num().default(3),
  WORK_OUTPUT_USD_PER_MTOK: num().default(15),
  INFRA_MONTHLY_USD: num().default(20),
  INFRA_MONTHLY_REQUESTS: int(1).default(10000),
  MARGIN_PCT: num().default(20),
  INVOICE_EXPIRY_S: int(1).default(600),
  MAX_REQUEST_AGE_S: int(1).default(3600),
  ACCEPT_UNTARGETED: bool.default(false),
  MAX_OPEN_UNPAID_PER_CLIENT: int(1).default(5),
  MAX_OPEN_UNPAID_TOTAL: int(1).default(1000),
  POW_DIFFICULTY: int(0).max(32).default(16),
  POW_THRESHOLD_PCT: int(0).max(100).default(50),
  MAX_INPUT_CHARS: int(1).default(20000),
  STUB_AI_DELAY_MS: int(0).default(0),
  STUB_AI_CALL_LOG: z.string().min(1).optional(),
  ALLOW_PRIVATE_RELAYS: bool.default(false),
  DEMO_DAILY_BUDGET_USD: num().default(1),
  L402_DEPOSIT_SATS: int(1).default(1000),
  SESSION_TTL_S: int(1).default(2_592_000),
  MAX_SESSION_DEPOSIT_SATS: int(1).default(1_000_000),
  BOOTSTRAP_KIND: int(5000).max(5999).default(5960),
  BOOTSTRAP_FEE_SATS: int(1).default(10_000),
  BOOTSTRAP_SIZES: z
    .string()
    .regex(/^([a-z0-9-]+=\d+)(,[a-z0-9-]+=\d+)*$/, 'must be slug=sats,slug=sats')
    .default('s-4vcpu-8gb=20000,s-8vcpu-16gb=40000'),
  CREDENTIAL_TTL_S: int(1).default(86_400),
  RETENTION_DAYS: int(0).default(30),
  DO_API_TOKEN: z.string().min(1).optional(),
  DO_API_URL: z.url({ protocol: /^https?$/ }).default('https://api.digitalocean.com'),
  DO_REGION: z.string().regex(/^[a-z]{3}[0-9]$/, 'must look like nyc3').default('nyc3'),
  DO_SIZE: z.string().regex(/^[a-z0-9-]+$/).default('s-2vcpu-4gb'),
  DO_IMAGE: z.string().min(1).default('ubuntu-24-04-x64'),
  DO_POLL_START_MS: int(1).default(2000),
  DO_POLL_CAP_S: int(1).default(120),
  TAILSCALE_API_KEY: z.string().min(1).optional(),
  TAILSCALE_TAILNET: z.string().min(1).optional(),
  TAILSCALE_API_URL: z.url({ protocol: /^https?$/ }).default('https://api.tailscale.com'),
  TAILSCALE_TAGS: z
    .string()
    .default('tag:timmy-node')
    .transform((v) => v.split(',').map((t) => t.trim()).filter(Boolean))
    .refine((tags) => tags.every((t) => /^tag:[a-zA-Z][a-zA-Z0-9-]*$/.test(t)), 'each tag must look like tag:name'),
  STUB_PROVISION_DELAY_MS: int(0).default(1500),
  TRUST_PROXY: z
    .string()
    .regex(/^(\d{1,2}|true|false|yes|no|)$/, 'must be a number of proxy hops (0-99), or true/false')
    .transform((v) => (v === 'true' || v === 'yes' ? 1 : v === 'false' || v === 'no' || v === '' ? 0 : Number(v)))
    .default(0),
  CONSOLE_TOKEN: z.string().min(16, 'must be at least 16 characters (it guards the money view)').optional(),
  TIMMY_FAULT: z.string().optional(),
});

export type Env = z.infer<typeof EnvSchema>;

/** Every environment variable the daemon reads. */
export const ENV_KEYS = Object.keys(EnvSchema.shape);

export interface Config extends Env {
  databasePath: string;
  /** WORKER_ID, else host:pid. */
  workerId: string;
  /** Node sizes and their prices in sats: DO_SIZE at BOOTSTRAP_FEE_SATS, plus BOOTSTRAP_SIZES. */
  bootstrapSizes: Record<string, number>;
  relays: RelayConfig[];
  production: boolean;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

const RelayFileSchema = z.array(
  z.object({ url: z.string().regex(/^wss?:\/\//, 'must be a ws:// or wss:// URL'), read: z.boolean().default(true), write: z.boolean().default(true) }),
);

function relayList(env: Env): RelayConfig[] {
  if (env.RELAYS !== undefined && env.RELAYS.trim() !== '') {
    const urls = env.RELAYS.split(',').map((u) => u.trim()).filter(Boolean);
    const bad = urls.filter((u) => !/^wss?:\/\/[^\s]+$/.test(u));
    if (bad.length) throw new ConfigError(`RELAYS: not a ws:// or wss:// URL: ${bad.join(', ')}`);
    return urls.map((url) => ({ url, read: true, write: true }));
  }
  const file = env.RELAYS_FILE ?? resolve(PACKAGE_ROOT, 'relays.json');
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError(`RELAYS_FILE: cannot read ${file}: ${(err as Error).message}`);
  }
  const parsed = RelayFileSchema.safeParse(raw);
  if (!parsed.success) {
    throw new ConfigError(`RELAYS_FILE ${file}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
  }
  return parsed.data;
}

/** Reads and validates the environment; throws ConfigError naming every bad key. */
export function loadConfig(source: NodeJS.ProcessEnv = process.env): Config {
  const input: Record<string, string> = {};
  for (const key of Object.keys(EnvSchema.shape)) {
    const v = source[key];
    if (v !== undefined && v !== '') input[key] = v;
  }
  const parsed = EnvSchema.safeParse(input);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `${String(i.path[0])}=${JSON.stringify(input[String(i.path[0])])}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n  ${lines.join('\n  ')}`);
  }
  const env = parsed.data;
  if (env.TAILSCALE_API_KEY && !env.TAILSCALE_TAILNET) throw new ConfigError('invalid configuration:\n  TAILSCALE_TAILNET: required with TAILSCALE_API_KEY');
  if (env.TAILSCALE_API_KEY && env.TAILSCALE_TAGS.length === 0) {
    throw new ConfigError('invalid configuration:\n  TAILSCALE_TAGS: at least one ACL tag is required with Tailscale (untagged customer nodes would reach your whole tailnet)');
  }
  if (env.LNBITS_URL && !env.LNBITS_API_KEY) throw new ConfigError('invalid configuration:\n  LNBITS_API_KEY: required when LNBITS_URL is set (the invoice/read key)');
  if (env.NWC_URL) {
    try {
      parseNwcUrl(env.NWC_URL);
    } catch (err) {
      if (err instanceof NwcUrlError) throw new ConfigError(`invalid configuration:\n  ${err.message}`); // names the part, never the secret
      throw err;
    }
  }
  if (env.PUBLIC_URL && env.NODE_ENV === 'production' && !env.PUBLIC_URL.startsWith('https://')) {
    throw new ConfigError('invalid configuration:\n  PUBLIC_URL: must be https:// in production (wallets fetch the zap endpoint there)');
  }
  const dataDir = resolve(env.DATA_DIR);
  return {
    ...env,
    DATA_DIR: dataDir,
    databasePath: resolve(env.DATABASE_PATH ?? resolve(dataDir, 'timmy.db')),
    workerId: env.WORKER_ID ?? `${hostname()}:${process.pid}`,
    relays: relayList(env),
    bootstrapSizes: {
      [env.DO_SIZE]: env.BOOTSTRAP_FEE_SATS,
      ...Object.fromEntries(env.BOOTSTRAP_SIZES.split(',').map((p) => [p.split('=')[0]!, Number(p.split('=')[1])])),
    },
    production: env.NODE_ENV === 'production',
  };
}
