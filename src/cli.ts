// The `timmy` command line (commander): every command, and nothing else.
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { nip19 } from 'nostr-tools';
import { getPublicKey as publicKeyOf } from 'nostr-tools/pure';
import { loadConfig, ConfigError, PACKAGE_ROOT } from './config.ts';
import { createLogger } from './log.ts';
import { jsonLine, terminalSafe } from './terminal.ts';
import { NoStoreError, SchemaTooNewError } from './store/db.ts';
import { openStore, openStoreReadOnly, redactDatabaseUrl, storeLocation } from './store/open.ts';
import type { Store } from './store/store.ts';
import { isJobState, JOB_STATES } from './core/job-machine.ts';
import { BOOTSTRAP_STATES, isBootstrapState } from './core/bootstrap-machine.ts';
import type { Job } from './core/types.ts';
import { loadSecretKey } from './nostr/keys.ts';
import { initCrypto, getPublicKey } from './nostr/crypto.ts';
import { lockDataDir, startDaemon, StartupError } from './daemon.ts';
import { runRequest, runBootstrap, fetchResult, devPay, SessionWallet, apiCall } from './client.ts';
import { defaultApi } from './customer/api.ts';
import { defaultKeyPath, loadCustomerKey } from './customer/key.ts';
import { showInvoice } from './customer/invoice.ts';
import { formatStatus, operatorStatus, type OperatorStatus } from './status.ts';
import { loginUrl, readConsoleToken } from './console/token.ts';

function configOrExit() {
  try {
    return loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

/** A whole number option (`--limit 20`); anything else is refused by commander with the option's name. */
const intArg = (min: number) => (value: string): number => {
  if (!/^\d+$/.test(value.trim()) || Number(value) < min) throw new InvalidArgumentError(`must be a whole number${min > 0 ? ` of at least ${min}` : ''}.`);
  return Number(value);
};

/** The customer's key (`--key`, else the config-dir file, created on first use), or exit 2 naming the problem. */
function customerKeyOrExit(choice: string | undefined): Uint8Array {
  try {
    const k = loadCustomerKey(choice, { create: true })!;
    if (k.created) {
      process.stdout.write(`new customer key ${k.source} (${nip19.npubEncode(publicKeyOf(k.secretKey))}): credit and bound sessions belong to it, keep it\n`);
    }
    return k.secretKey;
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    process.exit(2);
  }
}

/** The store, opened read-only; a missing store is said, never created (exit 1). */
async function storeOrExit(): Promise<{ store: Store; path: string }> {
  const config = configOrExit();
  try {
    return { store: await openStoreReadOnly(config), path: storeLocation(config) };
  } catch (err) {
    if (err instanceof NoStoreError || err instanceof SchemaTooNewError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
}

const API_HELP = "Timmy's HTTP API (TIMMY_API, else http://HTTP_HOST:HTTP_PORT)";
const KEY_HELP = `your customer key: an nsec, hex, or a file holding one (default: ${defaultKeyPath()}, created on first use)`;
const VERSION = (JSON.parse(readFileSync(resolve(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

const program = new Command()
  .name('timmy')
  .description('Timmy: a paid AI agent on Nostr (NIP-90 jobs paid over Lightning)')
  .version(VERSION, '-V, --version', 'print the version')
  .showHelpAfterError();

program
  .command('start')
  .description('run the daemon (embedded relay, stub payments and stub AI unless configured otherwise)')
  .action(async () => {
    const config = configOrExit();
    const log = createLogger(config.LOG_LEVEL, undefined, { worker: config.workerId });
    let daemon: Awaited<ReturnType<typeof startDaemon>> | undefined;
    // `npm start` in a terminal: Ctrl-C reaches the daemon twice (from the terminal and forwarded by npm),
    // so only a signal a second or more after the first means "exit now". The handlers are in place before the
    // start (HTTP answers before the start has finished): a signal meanwhile stops the daemon once it is up.
    let firstSignalAt = 0;
    let stopWhenStarted: string | null = null; // the first signal came while starting
    const stop = (sig: string) => {
      log.info({ signal: sig }, 'shutting down');
      daemon!.stop().then(
        () => process.exit(0),
        (err) => {
          log.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
    };
    const onSignal = (sig: string) => {
      if (firstSignalAt > 0 && Date.now() - firstSignalAt < 1000) return;
      if (firstSignalAt > 0) {
        log.warn({ signal: sig }, 'second signal: exiting now');
        process.exit(1);
      }
      firstSignalAt = Date.now();
      if (daemon) stop(sig);
      else stopWhenStarted = sig;
    };
    process.on('SIGTERM', () => onSignal('SIGTERM'));
    process.on('SIGINT', () => onSignal('SIGINT'));
    try {
      daemon = await startDaemon(config, log);
    } catch (err) {
      if (err instanceof StartupError) {
        log.fatal(err.message);
        process.exit(2);
      }
      throw err;
    }
    if (stopWhenStarted) stop(stopWhenStarted);
  });

program
  .command('keys')
  .description("show Timmy's public key (generating the secret key into DATA_DIR on first use)")
  .action(async () => {
    const config = configOrExit();
    await initCrypto();
    const pubkey = getPublicKey(loadSecretKey(config.DATA_DIR, config.NOSTR_SECRET_KEY));
    process.stdout.write(`pubkey ${pubkey}\nnpub   ${nip19.npubEncode(pubkey)}\n`);
  });

program
  .command('migrate')
  .description('create or upgrade the database schema, then exit; with --to, move the SQLite store into PostgreSQL')
  .option('--to <url>', 'copy every row of the SQLite store (DATABASE_PATH) into this empty PostgreSQL database (stop the daemon first)')
  .action(async (opts: { to?: string }) => {
    const config = configOrExit();
    if (!opts.to) {
      await (await openStore(config)).close();
      process.stdout.write(`database ${storeLocation(config)} is up to date\n`);
      return;
    }
    if (!/^postgres(ql)?:\/\//.test(opts.to)) fail(new Error('--to must be a postgres:// or postgresql:// URL'));
    let unlock = () => {};
    try {
      unlock = lockDataDir(config); // the daemon must not write while its store is copied
    } catch (err) {
      if (err instanceof StartupError) fail(err);
      throw err;
    }
    try {
      await (await openStore({ ...config, DATABASE_URL: undefined })).close(); // the SQLite store up to date first
      const { copySqliteToPg, TargetNotEmptyError } = await import('./store/copy.ts');
      try {
        const rows = await copySqliteToPg(config.databasePath, opts.to);
        const total = Object.values(rows).reduce((a, b) => a + b, 0);
        process.stdout.write(`copied ${total} rows from ${config.databasePath} to ${redactDatabaseUrl(opts.to)}\n`);
        for (const [table, n] of Object.entries(rows)) process.stdout.write(`  ${table.padEnd(16)} ${n}\n`);
        process.stdout.write('start the daemon with DATABASE_URL set to that URL; keep the SQLite file as a backup\n');
      } catch (err) {
        if (err instanceof TargetNotEmptyError) fail(err);
        throw err;
      }
    } finally {
      unlock();
    }
  });

/** What a job costs and what of it is paid so far, in msats: invoices, credit applied, a session's charge. */
async function jobMoney(store: Store, j: Job): Promise<{ priceMsats: number; paidMsats: number }> {
  const invoices = await store.invoices.invoicesOf('job', j.id);
  const credit = j.evalCreditMsats + j.workCreditMsats;
  const session = j.sessionId && j.costLedger ? j.costLedger.chargedSats * 1000 : 0;
  return {
    priceMsats: invoices.reduce((a, i) => a + i.amountMsats, 0) + credit + session,
    paidMsats: invoices.filter((i) => i.status === 'paid').reduce((a, i) => a + i.amountMsats, 0) + credit + session,
  };
}

const sats = (msats: number) => String(msats / 1000);

program
  .command('jobs')
  .description('list text jobs and node orders, newest first (reads the store; never creates one)')
  .addOption(new Option('--state <state>', 'only those in this state').choices([...new Set<string>([...JOB_STATES, ...BOOTSTRAP_STATES])]))
  .option('--limit <n>', 'how many of each', intArg(1), 20)
  .option('--json', 'one JSON object per line')
  .action(async (opts: { state?: string; limit: number; json?: boolean }) => {
    const { store } = await storeOrExit();
    const jobStates = opts.state ? (isJobState(opts.state) ? [opts.state] : null) : undefined;
    const orderStates = opts.state ? (isBootstrapState(opts.state) ? [opts.state] : null) : undefined;
    const rows = jobStates === null ? [] : await store.jobs.listJobs({ states: jobStates, limit: opts.limit });
    const orders = orderStates === null ? [] : await store.bootstrap.listNodeOrders({ states: orderStates, limit: opts.limit });
    for (const j of rows) {
      const m = await jobMoney(store, j);
      if (opts.json) {
        process.stdout.write(`${jsonLine({ type: 'job', id: j.id, state: j.state, source: j.source, customer: j.customerPubkey, createdAt: j.createdAt, priceSats: m.priceMsats / 1000, paidSats: m.paidMsats / 1000, input: j.input.slice(0, 80), error: j.errorMessage })}\n`);
      } else {
        const when = new Date(j.createdAt).toISOString();
        const note = j.errorMessage ?? j.reason ?? '';
        const money = `${sats(m.paidMsats)}/${sats(m.priceMsats)} sats`;
        // The input and the reasons come from strangers: never let them drive the terminal.
        const text = terminalSafe(j.input.slice(0, 40).replace(/\s+/g, ' '), { oneLine: true });
        process.stdout.write(`${when}  ${j.id}  ${j.source.padEnd(5)}  ${j.state.padEnd(22)}  ${money.padStart(14)}  ${text}${note ? `  (${terminalSafe(note.slice(0, 60), { oneLine: true })})` : ''}\n`);
      }
    }
    if (!opts.json) process.stdout.write(`${rows.length} job(s)${orders.length ? '; node orders:' : ''}\n`);
    for (const o of orders) {
      const paid = (await store.invoices.invoicesOf('bootstrap', o.id)).some((i) => i.status === 'paid');
      if (opts.json) {
        process.stdout.write(`${jsonLine({ type: 'node', id: o.id, state: o.state, source: o.source, customer: o.customerPubkey, createdAt: o.createdAt, priceSats: o.amountMsats / 1000, paidSats: paid ? o.amountMsats / 1000 : 0, size: o.size, region: o.region, ip: o.ip, error: o.errorMessage })}\n`);
      } else {
        const money = `${paid ? sats(o.amountMsats) : 0}/${sats(o.amountMsats)} sats`;
        const where = terminalSafe(`${o.size} ${o.region}${o.ip ? ` ${o.ip}` : ''}`, { oneLine: true });
        const note = o.errorMessage ? `  (${terminalSafe(o.errorMessage.slice(0, 60), { oneLine: true })})` : '';
        process.stdout.write(`${new Date(o.createdAt).toISOString()}  ${o.id}  ${o.source.padEnd(5)}  ${o.state.padEnd(22)}  ${money.padStart(14)}  node ${where}${note}\n`);
      }
    }
    if (!opts.json && orders.length) process.stdout.write(`${orders.length} node order(s)\n`);
    await store.close();
  });

/**
 * The operator's status: from the running daemon (its console route, with the operator token), else from the
 * store read directly (health then unknown). Exit 0 healthy, 1 unhealthy or unknown.
 */
async function readStatus(api: string): Promise<OperatorStatus> {
  const config = configOrExit();
  const token = readConsoleToken(config.DATA_DIR, config.CONSOLE_TOKEN);
  if (token) {
    const res = await fetch(`${api}/console/api/status`, { headers: { authorization: `Bearer ${token}` }, signal: AbortSignal.timeout(10_000) }).catch(() => null);
    if (res?.ok) return (await res.json()) as OperatorStatus;
    if (res?.status === 401) process.stderr.write(`${api} refused the operator token (CONSOLE_TOKEN or ${config.DATA_DIR}/console.token are not the daemon's); reading the store\n`);
  }
  const { store } = await storeOrExit();
  try {
    const rates = { model: config.WORK_MODEL, inputUsdPerMtok: config.WORK_INPUT_USD_PER_MTOK, outputUsdPerMtok: config.WORK_OUTPUT_USD_PER_MTOK };
    return await operatorStatus({ store, rates, btcPriceUsd: config.BTC_PRICE_USD_FALLBACK, live: null, nowMs: Date.now() });
  } finally {
    await store.close();
  }
}

program
  .command('status')
  .description("the operator's view: relays, payment and AI health, outbox, jobs by state, revenue against model cost, money held and owed, the last errors (from the running daemon, else its store)")
  .option('--api <url>', API_HELP, defaultApi())
  .option('--json', 'one JSON object')
  .option('--watch [seconds]', 'refresh every few seconds (default 5) until interrupted')
  .action(async (opts: { api: string; json?: boolean; watch?: string | boolean }) => {
    const every = opts.watch === undefined || opts.watch === false ? 0 : opts.watch === true ? 5 : intArg(1)(opts.watch);
    for (;;) {
      const s = await readStatus(opts.api.replace(/\/+$/, ''));
      const text = opts.json ? `${JSON.stringify(s, null, every ? 0 : 2)}\n` : formatStatus(s);
      process.stdout.write(every && !opts.json && process.stdout.isTTY ? `\x1b[2J\x1b[H${text}` : text);
      if (!every) {
        process.exitCode = s.ok === null ? 3 : s.ok ? 0 : 1; // 3: the daemon could not be asked
        return;
      }
      await new Promise((r) => setTimeout(r, every * 1000));
    }
  });

program
  .command('console')
  .description("print the operator console's login URL (it holds the operator token: keep it to yourself)")
  .option('--api <url>', "the daemon's HTTP base as your browser reaches it", defaultApi())
  .action((opts: { api: string }) => {
    const config = configOrExit();
    const token = readConsoleToken(config.DATA_DIR, config.CONSOLE_TOKEN);
    if (!token) {
      process.stderr.write(`no operator token yet: set CONSOLE_TOKEN, or start the daemon once (it writes ${config.DATA_DIR}/console.token)\n`);
      process.exit(1);
    }
    process.stdout.write(`${loginUrl(opts.api, token)}\n`);
  });

program
  .command('request')
  .description('act as a customer: post a kind 5050 job request with your key, follow it live, print the result')
  .argument('<prompt>', 'what to ask')
  .option('--api <url>', API_HELP, defaultApi())
  .option('--key <key>', KEY_HELP)
  .option('--to <npub>', "Timmy's npub or hex pubkey (default: from the API)")
  .option('--relay <url...>', 'relays to use (default: those the API lists)')
  .option('--pay-stub', 'pay each invoice through the dev route (stub payments only)')
  .option('--zap', "pay each stage by zapping its payment-required event (NIP-57); the zap invoice is paid through the dev route (stub payments only)")
  .option('--max-tokens <n>', 'advisory max_tokens param', intArg(1))
  .option('--bid <msats>', 'the most you will pay, in msats', intArg(0))
  .option('--timeout <s>', 'give up after this many seconds', intArg(1), 120)
  .option('--no-qr', 'do not draw invoices as QR codes')
  .option('--session <id>', 'spend this pre-funded session (created with `timmy session create --bind`)')
  .action(async (prompt: string, opts) => {
    const code = await runRequest(prompt, {
      session: opts.session,
      secretKey: customerKeyOrExit(opts.key),
      api: opts.api,
      to: opts.to,
      relays: opts.relay,
      payStub: Boolean(opts.payStub),
      zap: Boolean(opts.zap),
      maxTokens: opts.maxTokens,
      bidMsats: opts.bid,
      timeoutSecs: opts.timeout,
      qr: opts.qr !== false,
    });
    process.exit(code);
  });

program
  .command('result')
  .description('fetch the result (or the state) of a job you requested earlier: from the relays, else GET /api/jobs/:id')
  .argument('<jobId>', 'the request event id (Nostr) or the HTTP job id')
  .option('--api <url>', API_HELP, defaultApi())
  .option('--key <key>', `${KEY_HELP}; decrypts encrypted results`)
  .option('--to <npub>', "Timmy's npub or hex pubkey (default: from the API)")
  .option('--relay <url...>', 'relays to ask (default: those the API lists)')
  .option('--no-qr', 'do not draw an open invoice as a QR code')
  .action(async (jobId: string, opts) => {
    let sk: Uint8Array | null;
    try {
      sk = loadCustomerKey(opts.key, { create: false })?.secretKey ?? null;
    } catch (err) {
      process.stderr.write(`${(err as Error).message}\n`);
      process.exit(2);
    }
    process.exit(await fetchResult(jobId.trim().toLowerCase(), { api: opts.api, to: opts.to, relays: opts.relay, secretKey: sk, qr: opts.qr !== false }));
  });

/** An account named on the command line: npub or hex pubkey, or job:<id>; exit 2 on a bad npub. */
function accountOrExit(account: string): string {
  if (!account.startsWith('npub')) return account;
  try {
    const d = nip19.decode(account);
    if (d.type !== 'npub') throw new Error(d.type);
    return d.data;
  } catch {
    process.stderr.write(`timmy credits: "${terminalSafe(account.slice(0, 80), { oneLine: true })}" is not a valid npub (give an npub, a hex pubkey, or job:<id>)\n`);
    process.exit(2);
  }
}

program
  .command('credits')
  .description("your credit (your customer key's account), another account's, or every balance (reads the store; never creates one)")
  .argument('[account]', 'a pubkey (hex or npub) or job:<id> (default: your customer key)')
  .option('--key <key>', KEY_HELP.replace(', created on first use', ''))
  .option('--all', 'every account with a balance')
  .action(async (account: string | undefined, opts: { key?: string; all?: boolean }) => {
    let key: string | undefined;
    if (!opts.all) {
      if (account) {
        key = accountOrExit(account);
      } else {
        let mine;
        try {
          mine = loadCustomerKey(opts.key, { create: false });
        } catch (err) {
          process.stderr.write(`${(err as Error).message}\n`);
          process.exit(2);
        }
        if (!mine) {
          process.stdout.write(`no customer key yet (${defaultKeyPath()} is created by your first request): no credit\n`);
          return;
        }
        key = publicKeyOf(mine.secretKey);
        process.stdout.write(`account ${key} (${nip19.npubEncode(key)})\n`);
      }
    }
    const { store } = await storeOrExit();
    if (key !== undefined) {
      for (const e of await store.credits.creditEntries(key)) {
        process.stdout.write(`${new Date(e.createdAt).toISOString()}  ${String(e.deltaMsats / 1000).padStart(8)} sats  ${terminalSafe(e.reason, { oneLine: true })}${e.jobId ? `  (job ${e.jobId})` : ''}\n`);
      }
      process.stdout.write(`balance ${(await store.credits.creditBalanceMsats(key)) / 1000} sats\n`);
    } else {
      const rows = (await store.credits.creditBalances()).filter((r) => r.balanceMsats !== 0);
      for (const r of rows) process.stdout.write(`${terminalSafe(r.account, { oneLine: true })}  ${r.balanceMsats / 1000} sats\n`);
      process.stdout.write(`${rows.length} account(s) with credit\n`);
    }
    await store.close();
  });

program
  .command('bootstrap')
  .description('order a Bitcoin full node over Nostr (or follow an earlier order); the credentials arrive by encrypted DM')
  .option('--ssh-key <file>', 'your OpenSSH public key (then no private key is generated)')
  .option('--size <slug>', 'node size (see GET /api/info and the README)')
  .option('--region <slug>', 'region, e.g. nyc3')
  .option('--resume <orderId>', 'follow an order placed earlier with the same key and fetch its credentials')
  .option('--pay-stub', 'pay the invoice through the dev route')
  .option('--key-out <file>', 'where to write a generated private key', './timmy-node.key')
  .option('--api <url>', API_HELP, defaultApi())
  .option('--key <key>', KEY_HELP)
  .option('--to <npub>', "Timmy's npub or hex pubkey (default: from the API)")
  .option('--relay <url...>', 'relays to use (default: those the API lists)')
  .option('--timeout <s>', 'give up after this many seconds', intArg(1), 300)
  .option('--no-qr', 'do not draw the invoice as a QR code')
  .action(async (opts) => {
    if (opts.resume !== undefined && !/^[0-9a-f]{64}$/i.test(opts.resume)) {
      process.stderr.write('--resume: give the order id (the 64-hex request id printed when you ordered)\n');
      process.exit(2);
    }
    const code = await runBootstrap({
      api: opts.api,
      to: opts.to,
      relays: opts.relay,
      size: opts.size,
      region: opts.region,
      sshKeyFile: opts.sshKey,
      payStub: Boolean(opts.payStub),
      keyOut: opts.keyOut,
      secretKey: customerKeyOrExit(opts.key),
      timeoutSecs: opts.timeout,
      qr: opts.qr !== false,
      resume: opts.resume?.toLowerCase(),
    });
    process.exit(code);
  });

interface SessionCreated {
  sessionId: string;
  macaroon: string;
  depositInvoice: { paymentRequest: string; paymentHash: string; amountSats: number };
}

const session = program.command('session').description('pre-funded sessions (through the HTTP API); macaroons are kept in $DATA_DIR/client-sessions');
const wallet = () => new SessionWallet(join(configOrExit().DATA_DIR, 'client-sessions'));
const print = (l: string) => process.stdout.write(`${terminalSafe(l)}\n`);
const fail = (err: unknown) => {
  process.stderr.write(`${(err as Error).message}\n`);
  process.exit(1);
};
session
  .command('create')
  .description('open a session: prints the deposit invoice and keeps the macaroon')
  .requiredOption('--amount <sats>', 'deposit in sats', intArg(1))
  .option('--bind', 'bind it to your customer key, so `timmy request --session` can spend it')
  .option('--key <key>', KEY_HELP)
  .option('--pay-stub', 'pay the deposit through the dev route')
  .option('--api <url>', API_HELP, defaultApi())
  .option('--no-qr', 'no QR code')
  .action(async (opts) => {
    try {
      await initCrypto();
      const pubkey = opts.bind ? getPublicKey(customerKeyOrExit(opts.key)) : undefined;
      const r = await apiCall<SessionCreated>(opts.api, 'POST', '/api/sessions', { amountSats: opts.amount, ...(pubkey ? { pubkey } : {}) });
      wallet().save(r.sessionId, r.macaroon);
      print(`session ${r.sessionId}${pubkey ? ` (bound to ${nip19.npubEncode(pubkey)})` : ''}`);
      print(`macaroon saved; use it as Authorization: Bearer <macaroon>`);
      showInvoice(print, r.depositInvoice.paymentRequest, r.depositInvoice.amountSats, { qr: opts.qr, payStub: Boolean(opts.payStub) });
      if (opts.payStub) {
        await devPay(opts.api, r.depositInvoice.paymentHash);
        print('deposit paid through the dev route');
      }
    } catch (err) {
      fail(err);
    }
  });
for (const [name, description] of [
  ['show', 'state, balance and expiry'],
  ['ledger', 'every deposit, top-up, reservation, release and debit'],
  ['close', 'close it (a bound pubkey keeps the balance as credit)'],
] as const) {
  session
    .command(name)
    .description(description)
    .argument('<id>', 'session id')
    .option('--macaroon <m>', 'macaroon (default: the saved one)')
    .option('--api <url>', API_HELP, defaultApi())
    .action(async (id: string, opts: { macaroon?: string; api: string }) => {
      try {
        const mac = opts.macaroon ?? wallet().load(id);
        const path = name === 'ledger' ? `/api/sessions/${id}/ledger` : `/api/sessions/${id}`;
        print(JSON.stringify(await apiCall(opts.api, name === 'close' ? 'DELETE' : 'GET', path, undefined, mac), null, 2));
      } catch (err) {
        fail(err);
      }
    });
}
session
  .command('topup')
  .description('a new invoice that adds to the balance when paid')
  .argument('<id>', 'session id')
  .requiredOption('--amount <sats>', 'top-up in sats', intArg(1))
  .option('--macaroon <m>', 'macaroon (default: the saved one)')
  .option('--pay-stub', 'pay it through the dev route')
  .option('--api <url>', API_HELP, defaultApi())
  .option('--no-qr', 'no QR code')
  .action(async (id: string, opts) => {
    try {
      const r = await apiCall<{ invoice: { paymentRequest: string; paymentHash: string; amountSats: number } }>(
        opts.api,
        'POST',
        `/api/sessions/${id}/topup`,
        { amountSats: opts.amount },
        opts.macaroon ?? wallet().load(id),
      );
      showInvoice(print, r.invoice.paymentRequest, r.invoice.amountSats, { qr: opts.qr, payStub: Boolean(opts.payStub) });
      if (opts.payStub) {
        await devPay(opts.api, r.invoice.paymentHash);
        print('top-up paid through the dev route');
      }
    } catch (err) {
      fail(err);
    }
  });

const dev = program.command('dev').description('development helpers');
dev
  .command('pay')
  .description('pay a stub invoice through the dev route')
  .argument('<invoice>', 'bolt11 invoice or payment hash')
  .option('--api <url>', API_HELP, defaultApi())
  .action(async (invoice: string, opts: { api: string }) => {
    try {
      const r = await devPay(opts.api, invoice);
      process.stdout.write(`paid: preimage ${r.preimage}\n`);
    } catch (err) {
      process.stderr.write(`${(err as Error).message}\n`);
      process.exit(1);
    }
  });

await program.parseAsync(process.argv);
