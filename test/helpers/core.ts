// The core in process, as the daemon builds it (buildBackends + buildCore), on a temporary SQLite file with
// the stub payment backend, stub provisioner and a scriptable agent: fast tests of the services.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { pino } from 'pino';
import { loadConfig } from '../../src/config.ts';
import { createLogger } from '../../src/log.ts';
import type { Store } from '../../src/store/store.ts';
import { testStore } from './store-under-test.ts';
import { buildBackends, buildCore, buildNostr, NostrPorts, type Backends, type Core, type NostrSide } from '../../src/daemon.ts';
import type { Event } from 'nostr-tools';
import { generateSecretKey, getPublicKey, initCrypto } from '../../src/nostr/crypto.ts';
import { StubAgent } from '../../src/ai/stub.ts';
import type { Agent, Clock, StreamHooks, Verdict, WorkAnswer, WorkPrompt } from '../../src/core/ports.ts';
import type { NewJob, OutboxRow } from '../../src/core/types.ts';
import { tempDir } from './procs.ts';

/** The stub agent, with hooks a test can set to fail, hang or count calls. */
export class ScriptedAgent implements Agent {
  readonly name = 'stub' as const;
  readonly calls = { evaluate: 0, work: 0 };
  streamCalls = 0; // workStream calls (conversations, streamed answers)
  onEvaluate: ((input: string) => Promise<Verdict> | null) | null = null;
  onWork: ((input: string) => Promise<WorkAnswer> | null) | null = null;
  onWorkStream: ((prompt: WorkPrompt, hooks: StreamHooks) => Promise<WorkAnswer> | null) | null = null;
  private readonly inner = new StubAgent({ evalModel: 'claude-haiku-4-5', workModel: 'claude-sonnet-4-6' });

  async evaluate(input: string): Promise<Verdict> {
    this.calls.evaluate++;
    return (await this.onEvaluate?.(input)) ?? this.inner.evaluate(input);
  }

  async work(input: string, maxTokens: number): Promise<WorkAnswer> {
    this.calls.work++;
    return (await this.onWork?.(input)) ?? this.inner.work(input, maxTokens);
  }

  async workStream(prompt: WorkPrompt, maxTokens: number, hooks: StreamHooks): Promise<WorkAnswer> {
    this.streamCalls++;
    return (await this.onWorkStream?.(prompt, hooks)) ?? this.inner.workStream(prompt, maxTokens, hooks);
  }
}

export interface CoreHarness {
  /** The store under test: SQLite, or PostgreSQL when TIMMY_TEST_STORE=pg (the `pg` vitest project). */
  store: Store;
  /** The PostgreSQL database's URL (another worker's store opens it too); null on SQLite. */
  url: string | null;
  /** Runs one SQL statement on the store's engine (`?` placeholders) and returns its rows. */
  exec(sql: string, ...params: unknown[]): Promise<Record<string, unknown>[]>;
  config: ReturnType<typeof loadConfig>;
  /** Timmy's keys in this harness. */
  keys: { secretKey: Uint8Array; pubkey: string };
  /** The Nostr side (intake, outbox) on a transport that records what it is given; relays ack when told. */
  nostr: NostrSide;
  sent: Event[];
  /** When true (default), the transport acks every event it is given, as a relay would. */
  autoAck: { on: boolean };
  core: Core;
  backends: Backends & { stubPayments: NonNullable<Backends['stubPayments']> };
  agent: ScriptedAgent;
  /** How many times the core said it committed events to publish. */
  wakes: () => number;
  /** Pays a stub invoice as a wallet would; the settlement reaches the book as the backend pushes it. */
  pay(paymentHash: string): Promise<void>;
  intents(subjectId: string): Promise<OutboxRow[]>;
  close(): Promise<void>;
}

export async function coreHarness(env: Record<string, string> = {}, opts: { clock?: Clock } = {}): Promise<CoreHarness> {
  const dir = tempDir('timmy-core-');
  const config = loadConfig({ DATA_DIR: dir, EMBEDDED_RELAY_PORT: 'off', RELAYS: 'ws://127.0.0.1:9', STUB_PROVISION_DELAY_MS: '0', ...env });
  const log = createLogger('silent', pino.destination({ dest: '/dev/null', sync: true }));
  await initCrypto();
  const { store, exec, drop, url } = await testStore(join(dir, 'timmy.db'));
  const secretKey = generateSecretKey();
  const keys = { secretKey, pubkey: getPublicKey(secretKey) };
  const built = await buildBackends(config, store, log, keys.pubkey);
  const agent = new ScriptedAgent();
  const backends = { ...built, agent, stubPayments: built.stubPayments! };
  let wakes = 0;
  const link = new NostrPorts();
  const core = buildCore(config, store, backends, { publisher: { wake: () => (wakes++, link.wake()) }, inbox: { inboxRelays: async () => [] }, clock: opts.clock }, log);
  await core.book.start();
  const sent: Event[] = [];
  const autoAck = { on: true };
  const transport = {
    publish(event: Event): string[] {
      sent.push(event);
      if (autoAck.on) setImmediate(() => nostr.outbox.onOk('stub://relay', event.id, true, ''));
      return ['stub://relay'];
    },
    connectedCount: 1,
  };
  const nostr: NostrSide = buildNostr(config, store, keys, core, backends, { link, transport }, log);
  await nostr.intake.load();
  return {
    store,
    url,
    exec,
    config,
    keys,
    nostr,
    sent,
    autoAck,
    core,
    backends,
    agent,
    wakes: () => wakes,
    async pay(paymentHash) {
      await backends.stubPayments.pay(paymentHash);
      await new Promise((r) => setImmediate(r)); // the stub reports on a microtask; let it land
      await core.book.settle(paymentHash); // and idempotently once more, as a poll would
    },
    intents: (subjectId) => store.outbox.outboxForJob(subjectId),
    async close() {
      nostr.stop();
      core.jobs.stop();
      await core.runner.stop(1000);
      await new Promise((r) => setImmediate(r)); // acks already queued by the transport land first
      await store.close();
      await drop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

let counter = 0;

/** A parsed text request as intake or the HTTP shim would hand it to the core. */
export function newJob(over: Partial<NewJob> = {}): NewJob {
  counter++;
  return {
    id: (over.id ?? `${Date.now().toString(16)}${String(counter).padStart(8, '0')}`).padEnd(64, '0').slice(0, 64),
    kind: 5050,
    source: 'nostr',
    customerPubkey: 'a'.repeat(63) + (counter % 10),
    clientAddress: null,
    requestJson: null,
    encryption: 'none',
    input: 'Explain Lightning invoices in two sentences.',
    params: {},
    relays: [],
    bidMsats: null,
    requestCreatedAt: Math.floor(Date.now() / 1000),
    expiresAt: null,
    ...over,
  };
}
