// The `timmy` command line (commander): every command, and nothing else.
import { Command, Option } from 'commander';
import { nip19 } from 'nostr-tools';
import { loadConfig, ConfigError } from './config.ts';
import { createLogger } from './log.ts';
import { jsonLine, terminalSafe } from './terminal.ts';
import { openDb, closeDb } from './store/db.ts';
import { listJobs } from './store/jobs.ts';
import { creditBalanceMsats, creditBalances, creditEntries } from './store/credits.ts';
import { isJobState, JOB_STATES } from './core/job-machine.ts';
import { loadSecretKey } from './nostr/keys.ts';
import { initCrypto, getPublicKey } from './nostr/crypto.ts';
import { startDaemon, StartupError } from './daemon.ts';
import { join } from 'node:path';
import { runRequest, runBootstrap, devPay, clientKey, SessionWallet, apiCall, showInvoice } from './client.ts';

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

const program = new Command()
  .name('timmy')
  .description('Timmy: a paid AI agent on Nostr (NIP-90 jobs paid over Lightning)')
  .showHelpAfterError();

program
  .command('start')
  .description('run the daemon (embedded relay, stub payments and stub AI unless configured otherwise)')
  .action(async () => {
    const config = configOrExit();
    const log = createLogger(config.LOG_LEVEL);
    let daemon;
    try {
      daemon = await startDaemon(config, log);
    } catch (err) {
      if (err instanceof StartupError) {
        log.fatal(err.message);
        process.exit(2);
      }
      throw err;
    }
    // `npm start` in a terminal: Ctrl-C reaches the daemon twice (from the terminal and forwarded by npm),
    // so only a signal a second or more after the first means "exit now".
    let firstSignalAt = 0;
    const onSignal = (sig: string) => {
      if (firstSignalAt > 0 && Date.now() - firstSignalAt < 1000) return;
      if (firstSignalAt > 0) {
        log.warn({ signal: sig }, 'second signal: exiting now');
        process.exit(1);
      }
      firstSignalAt = Date.now();
      log.info({ signal: sig }, 'shutting down');
      daemon.stop().then(
        () => process.exit(0),
        (err) => {
          log.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
    };
    process.on('SIGTERM', () => onSignal('SIGTERM'));
    process.on('SIGINT', () => onSignal('SIGINT'));
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
  .description('create or upgrade the database schema, then exit')
  .action(() => {
    const config = configOrExit();
    closeDb(openDb(config.databasePath));
    process.stdout.write(`database ${config.databasePath} is up to date\n`);
  });

program
  .command('jobs')
  .description('list jobs, newest first')
  .addOption(new Option('--state <state>', 'only jobs in this state').choices([...JOB_STATES]))
  .option('--limit <n>', 'how many', '20')
  .option('--json', 'one JSON object per line')
  .action((opts: { state?: string; limit: string; json?: boolean }) => {
    const config = configOrExit();
    const db = openDb(config.databasePath);
    const states = opts.state && isJobState(opts.state) ? [opts.state] : undefined;
    const rows = listJobs(db, { states, limit: Number(opts.limit) || 20 });
    for (const j of rows) {
      if (opts.json) {
        process.stdout.write(`${jsonLine({ id: j.id, state: j.state, source: j.source, customer: j.customerPubkey, createdAt: j.createdAt, input: j.input.slice(0, 80), error: j.errorMessage })}\n`);
      } else {
        const when = new Date(j.createdAt).toISOString();
        const note = j.errorMessage ?? j.reason ?? '';
        // The input and the reasons come from strangers: never let them drive the terminal.
        const text = terminalSafe(j.input.slice(0, 40).replace(/\s+/g, ' '), { oneLine: true });
        process.stdout.write(`${when}  ${j.id}  ${j.source.padEnd(5)}  ${j.state.padEnd(22)}  ${text}${note ? `  (${terminalSafe(note.slice(0, 60), { oneLine: true })})` : ''}\n`);
      }
    }
    if (!opts.json) process.stdout.write(`${rows.length} job(s)\n`);
    closeDb(db);
  });

program
  .command('request')
  .description('act as a customer: post a kind 5050 job request, follow it live, print the result')
  .argument('<prompt>', 'what to ask')
  .option('--api <url>', "Timmy's HTTP API (used to find its pubkey and relays, and for --pay-stub)", 'http://127.0.0.1:8080')
  .option('--to <npub>', "Timmy's npub or hex pubkey (default: from the API)")
  .option('--relay <url...>', 'relays to use (default: those the API lists)')
  .option('--pay-stub', 'pay each invoice through the dev route (stub payments only)')
  .option('--max-tokens <n>', 'advisory max_tokens param')
  .option('--bid <msats>', 'the most you will pay, in msats')
  .option('--timeout <s>', 'give up after this many seconds', '120')
  .option('--no-qr', 'do not draw invoices as QR codes')
  .option('--session <id>', 'spend this pre-funded session (created with `timmy session create --bind`)')
  .action(async (prompt: string, opts) => {
    const config = opts.session ? configOrExit() : null;
    const code = await runRequest(prompt, {
      session: opts.session,
      secretKey: config ? clientKey(config.DATA_DIR) : undefined,
      api: opts.api,
      to: opts.to,
      relays: opts.relay,
      payStub: Boolean(opts.payStub),
      maxTokens: opts.maxTokens ? Number(opts.maxTokens) : undefined,
      bidMsats: opts.bid ? Number(opts.bid) : undefined,
      timeoutSecs: Number(opts.timeout),
      qr: opts.qr !== false,
    });
    process.exit(code);
  });

program
  .command('credits')
  .description('show the credits ledger: balances per account, or one account\'s entries')
  .argument('[account]', 'a pubkey (hex or npub) or job:<id>')
  .action((account?: string) => {
    const config = configOrExit();
    const db = openDb(config.databasePath);
    if (account) {
      let key = account;
      if (account.startsWith('npub')) {
        try {
          const d = nip19.decode(account);
          if (d.type !== 'npub') throw new Error(d.type);
          key = d.data;
        } catch {
          process.stderr.write(`timmy credits: "${terminalSafe(account.slice(0, 80), { oneLine: true })}" is not a valid npub (give an npub, a hex pubkey, or job:<id>)\n`);
          closeDb(db);
          process.exit(2);
        }
      }
      for (const e of creditEntries(db, key)) {
        process.stdout.write(`${new Date(e.createdAt).toISOString()}  ${String(e.deltaMsats / 1000).padStart(8)} sats  ${terminalSafe(e.reason, { oneLine: true })}${e.jobId ? `  (job ${e.jobId})` : ''}\n`);
      }
      process.stdout.write(`balance ${creditBalanceMsats(db, key) / 1000} sats\n`);
    } else {
      const rows = creditBalances(db).filter((r) => r.balanceMsats !== 0);
      for (const r of rows) process.stdout.write(`${r.account}  ${r.balanceMsats / 1000} sats\n`);
      process.stdout.write(`${rows.length} account(s) with credit\n`);
    }
    closeDb(db);
  });

program
  .command('bootstrap')
  .description('order a Bitcoin full node over Nostr; the credentials arrive by encrypted DM')
  .option('--ssh-key <file>', 'your OpenSSH public key (then no private key is generated)')
  .option('--size <slug>', 'node size (see GET /api/info and the README)')
  .option('--region <slug>', 'region, e.g. nyc3')
  .option('--pay-stub', 'pay the invoice through the dev route')
  .option('--key-out <file>', 'where to write a generated private key', './timmy-node.key')
  .option('--api <url>', "Timmy's HTTP API", 'http://127.0.0.1:8080')
  .option('--to <npub>', "Timmy's npub or hex pubkey (default: from the API)")
  .option('--relay <url...>', 'relays to use (default: those the API lists)')
  .option('--timeout <s>', 'give up after this many seconds', '300')
  .option('--no-qr', 'do not draw the invoice as a QR code')
  .action(async (opts) => {
    const config = configOrExit();
    const code = await runBootstrap({
      api: opts.api,
      to: opts.to,
      relays: opts.relay,
      size: opts.size,
      region: opts.region,
      sshKeyFile: opts.sshKey,
      payStub: Boolean(opts.payStub),
      keyOut: opts.keyOut,
      secretKey: clientKey(config.DATA_DIR),
      timeoutSecs: Number(opts.timeout),
      qr: opts.qr !== false,
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
  .requiredOption('--amount <sats>', 'deposit in sats')
  .option('--bind', "bind it to this CLI's Nostr key, so `timmy request --session` can spend it")
  .option('--pay-stub', 'pay the deposit through the dev route')
  .option('--api <url>', "Timmy's HTTP API", 'http://127.0.0.1:8080')
  .option('--no-qr', 'no QR code')
  .action(async (opts) => {
    try {
      const config = configOrExit();
      await initCrypto();
      const pubkey = opts.bind ? getPublicKey(clientKey(config.DATA_DIR)) : undefined;
      const r = await apiCall<SessionCreated>(opts.api, 'POST', '/api/sessions', { amountSats: Number(opts.amount), ...(pubkey ? { pubkey } : {}) });
      wallet().save(r.sessionId, r.macaroon);
      print(`session ${r.sessionId}${pubkey ? ` (bound to ${nip19.npubEncode(pubkey)})` : ''}`);
      print(`macaroon saved; use it as Authorization: Bearer <macaroon>`);
      showInvoice(print, r.depositInvoice.paymentRequest, r.depositInvoice.amountSats, opts.qr);
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
    .option('--api <url>', "Timmy's HTTP API", 'http://127.0.0.1:8080')
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
  .requiredOption('--amount <sats>', 'top-up in sats')
  .option('--macaroon <m>', 'macaroon (default: the saved one)')
  .option('--pay-stub', 'pay it through the dev route')
  .option('--api <url>', "Timmy's HTTP API", 'http://127.0.0.1:8080')
  .option('--no-qr', 'no QR code')
  .action(async (id: string, opts) => {
    try {
      const r = await apiCall<{ invoice: { paymentRequest: string; paymentHash: string; amountSats: number } }>(
        opts.api,
        'POST',
        `/api/sessions/${id}/topup`,
        { amountSats: Number(opts.amount) },
        opts.macaroon ?? wallet().load(id),
      );
      showInvoice(print, r.invoice.paymentRequest, r.invoice.amountSats, opts.qr);
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
  .option('--api <url>', "Timmy's HTTP API", 'http://127.0.0.1:8080')
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
