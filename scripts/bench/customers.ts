// Customers for the relay benchmarks: keys, raw relay connections, signed kind-5050 requests (nostr-wasm,
// so signing costs the bench process little), and a timed "N requests in, N payment-required out" run.
import type { Event } from 'nostr-tools';
import { finalizeEvent, generateSecretKey, getPublicKey } from '../../src/nostr/crypto.ts';
import { RelayConn, type FeedbackWatch } from './relay-client.ts';
import { cpuMs } from './daemon.ts';
import { until } from './common.ts';

export interface Customer {
  sk: Uint8Array;
  pubkey: string;
  conn: RelayConn;
}

export async function makeCustomers(url: string, count: number): Promise<Customer[]> {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const sk = generateSecretKey();
      return { sk, pubkey: getPublicKey(sk), conn: await RelayConn.connect(url) };
    }),
  );
}

export function signRequest(sk: Uint8Array, timmy: string, text: string): Event {
  const ev = finalizeEvent(
    { kind: 5050, created_at: Math.floor(Date.now() / 1000), tags: [['i', text, 'text'], ['p', timmy]], content: '' },
    sk,
  ) as Event;
  return JSON.parse(JSON.stringify(ev)) as Event;
}

/** Signs `n` requests, round-robin over the customers. */
export function signRequests(customers: Customer[], timmy: string, n: number, label: string): { customer: Customer; event: Event }[] {
  return Array.from({ length: n }, (_, i) => {
    const customer = customers[i % customers.length]!;
    return { customer, event: signRequest(customer.sk, timmy, `${label} #${i}: summarise the history of the Lightning Network in three sentences`) };
  });
}

/** Every customer sends its own requests as a burst; all customers at once. Throws on a refused event. */
export async function publishAll(batch: { customer: Customer; event: Event }[]): Promise<void> {
  const results = await Promise.all(batch.map(({ customer, event }) => customer.conn.publish(event)));
  const refused = results.filter((r) => !r.ok);
  if (refused.length) throw new Error(`${refused.length} requests refused by the relay, e.g. ${refused[0]!.message}`);
}

export interface IntakeRun {
  n: number;
  elapsedMs: number; // first publish -> n-th payment-required at the subscriber
  rate: number; // requests/s
  daemonCpuMs: number;
  relayCpuMs: number;
  ids: string[];
}

/** n requests in (burst), until n payment-required feedback events are at the subscriber. */
export async function intakeRun(
  o: { customers: Customer[]; watch: FeedbackWatch; timmy: string; n: number; label: string; daemonPid: number; relayPid: number; timeoutMs?: number },
): Promise<IntakeRun> {
  const batch = signRequests(o.customers, o.timmy, o.n, o.label);
  const ids = batch.map((b) => b.event.id);
  const cpu0 = [cpuMs(o.daemonPid), cpuMs(o.relayPid)];
  const t0 = performance.now();
  await publishAll(batch);
  let done = 0;
  await until(
    () => {
      while (done < ids.length && o.watch.nth(ids[done]!, 'payment-required')) done++;
      return done >= ids.length;
    },
    `${o.n} payment-required feedback events (${done} so far)`,
    o.timeoutMs ?? 300_000,
    5,
  );
  const last = Math.max(...ids.map((id) => o.watch.nth(id, 'payment-required')!.at));
  const elapsedMs = last - t0;
  return {
    n: o.n,
    elapsedMs,
    rate: (o.n / elapsedMs) * 1000,
    daemonCpuMs: cpuMs(o.daemonPid) - cpu0[0]!,
    relayCpuMs: cpuMs(o.relayPid) - cpu0[1]!,
    ids,
  };
}
