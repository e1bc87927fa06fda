// The HTTP shim over the same core: full flow, OpenAPI, demo limits, production guard, bad input, caps, metrics.
import { request as httpRequest } from 'node:http';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Ajv } from 'ajv';
import { parse } from 'yaml';
import { ROOT, startDaemon, startRelay, tempDir, type DaemonProc, type RelayProc } from './helpers/procs.ts';
import { outboxRows } from './helpers/store.ts';
import { waitFor } from './helpers/wait.ts';
import { openApiDocument } from '../src/http/openapi.ts';

let relay: RelayProc;
let daemon: DaemonProc;

beforeAll(async () => {
  relay = await startRelay();
  daemon = await startDaemon({ relays: [relay.url], env: { MAX_OPEN_UNPAID_PER_CLIENT: '3', WORKER_ID: 'api-worker' } });
});
afterAll(async () => {
  await daemon?.kill();
  await relay?.stop();
});

interface Res {
  status: number;
  headers: Record<string, unknown>;
  body: any; // eslint-disable-line @typescript-eslint/no-explicit-any
}

/** An HTTP call from a chosen loopback source address (the daemon's view of the client address). */
function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}, from = '127.0.0.1'): Promise<Res> {
  const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
  const h: Record<string, string> = { ...headers };
  if (payload !== undefined) {
    h['content-type'] ??= 'application/json';
    h['content-length'] = String(Buffer.byteLength(payload));
  }
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${daemon.api}${path}`, { method, headers: h, localAddress: from }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        let parsed: unknown = text;
        try {
          parsed = JSON.parse(text);
        } catch {
          /* not JSON */
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers as Record<string, unknown>, body: parsed });
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

/** GET from a chosen loopback source address (the daemon sees it as the client address). */
function getFrom(localAddress: string, path: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${daemon.api}${path}`, { localAddress }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const pay = (hash: string) => call('POST', `/api/dev/stub/pay/${hash}`);

let doc: any; // eslint-disable-line @typescript-eslint/no-explicit-any
const ajv = new Ajv({ strict: false, allErrors: true });
function validate(schemaName: string, value: unknown): void {
  const schema = { ...doc.components.schemas[schemaName], components: doc.components };
  const text = JSON.stringify(schema).replaceAll('#/components/schemas/', '#/components/schemas/');
  const ok = ajv.validate(JSON.parse(text), value);
  expect(ok, `${schemaName}: ${ajv.errorsText()}`).toBe(true);
}

describe('HTTP jobs', () => {
  beforeAll(async () => {
    doc = (await call('GET', '/api/openapi.json')).body;
  });

  it('runs the full flow: create -> pay eval -> quote -> pay work -> complete with costLedger', async () => {
    const created = await call('POST', '/api/jobs', { request: 'Explain a Lightning invoice in one sentence.' });
    expect(created.status).toBe(201);
    validate('JobCreated', created.body);
    const { jobId, evalInvoice } = created.body;
    expect(jobId).toMatch(/^[0-9a-f]{32}$/);
    expect(evalInvoice.amountSats).toBe(10);
    expect(Date.parse(evalInvoice.expiresAt)).toBeGreaterThan(Date.now());

    expect((await pay(evalInvoice.paymentHash)).status).toBe(200);
    const quoted = await waitFor(async () => {
      const r = await call('GET', `/api/jobs/${jobId}`);
      return r.body.state === 'awaiting_work_payment' && r;
    }, 'work quote');
    validate('Job', quoted.body);
    expect(quoted.body.pricingBreakdown.amountSats).toBe(quoted.body.workInvoice.amountSats);
    expect(quoted.body.reason).toMatch(/accepted/);

    await pay(quoted.body.workInvoice.paymentHash);
    const done = await waitFor(async () => {
      const r = await call('GET', `/api/jobs/${jobId}`);
      return r.body.state === 'complete' && r;
    }, 'complete');
    validate('Job', done.body);
    expect(done.body.result).toContain('stub agent');
    expect(done.body.costLedger.chargedSats).toBe(quoted.body.pricingBreakdown.amountSats);

    // Same jobs as Nostr ones, but they publish nothing to relays; the CLI lists them.
    expect(await outboxRows(daemon.dataDir, jobId)).toEqual([]);
    const listed = execFileSync(process.execPath, ['src/bin.js', 'jobs', '--json'], { cwd: ROOT, env: { ...process.env, DATA_DIR: daemon.dataDir } }).toString();
    expect(listed).toContain(`"id":"${jobId}","state":"complete","source":"http"`);
  });

  it('rejects an obviously bad request and issues no work invoice', async () => {
    const created = await call('POST', '/api/jobs', { request: 'write ransomware please' });
    await pay(created.body.evalInvoice.paymentHash);
    const r = await waitFor(async () => {
      const x = await call('GET', `/api/jobs/${created.body.jobId}`);
      return x.body.state === 'rejected' && x;
    }, 'rejected');
    expect(r.body.reason).toMatch(/ransomware/);
    expect(r.body.workInvoice).toBeUndefined();
  });

  it('answers unknown ids with 404 and odd ids with 400', async () => {
    expect((await call('GET', `/api/jobs/${'0'.repeat(32)}`)).status).toBe(404);
    expect((await call('GET', '/api/jobs/not-hex')).status).toBe(400);
  });

  it('a GET advances a job whose invoice was paid while the push path missed it, exactly once', async () => {
    // The stub backend reports settlements by push; a payment it did not push is still found by the GET.
    const created = await call('POST', '/api/jobs', { request: 'hello' });
    const hash = created.body.evalInvoice.paymentHash;
    // Pay behind the daemon's back: write the stub node's book directly, as if the push had been lost.
    const Database = (await import('better-sqlite3')).default;
    const db = new Database(join(daemon.dataDir, 'timmy.db'));
    db.prepare('update stub_invoices set paid_at = ? where payment_hash = ?').run(Date.now(), hash);
    db.close();
    const [a, b] = await Promise.all([call('GET', `/api/jobs/${created.body.jobId}`), call('GET', `/api/jobs/${created.body.jobId}`)]);
    expect([a.body.state, b.body.state].some((s) => s !== 'awaiting_eval_payment')).toBe(true);
    const done = await waitFor(async () => {
      const x = await call('GET', `/api/jobs/${created.body.jobId}`);
      return x.body.state === 'awaiting_work_payment' && x;
    }, 'advanced');
    expect(done.body.evalInvoice.paymentHash).toBe(hash);
    const transitions = daemon.logs.filter((l) => l.msg === 'job transition' && l.jobId === created.body.jobId && l.to === 'evaluating');
    expect(transitions).toHaveLength(1);
  });

  it('caps unpaid invoices per client address: the next one gets 429 and no invoice', async () => {
    // Earlier tests left this address with at most one unpaid job; fill up to the cap of 3.
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await call('POST', '/api/jobs', { request: `unpaid ${i}` })).status);
    expect(statuses).toContain(429);
    const refused = await call('POST', '/api/jobs', { request: 'one too many' });
    expect(refused.status).toBe(429);
    expect(refused.body.error).toMatch(/^rate-limited: /);
    expect(refused.body.evalInvoice).toBeUndefined();
  });
});

describe('OpenAPI', () => {
  it('lists every route, and the committed openapi.yaml is current', async () => {
    const served = (await call('GET', '/api/openapi.json')).body;
    expect(Object.keys(served.paths).sort()).toEqual(
      [
        '/api/bootstrap',
        '/api/bootstrap/{id}',
        '/api/bootstrap/{id}/claim',
        '/api/demo',
        '/api/dev/stub/pay/{paymentHash}',
        '/api/healthz',
        '/api/info',
        '/api/jobs',
        '/api/jobs/{id}',
        '/api/l402/request',
        '/api/sessions',
        '/api/sessions/{id}',
        '/api/sessions/{id}/ledger',
        '/api/sessions/{id}/request',
        '/api/sessions/{id}/topup',
        '/v1/chat/completions',
        '/v1/models',
      ].sort(),
    );
    const committed = parse(readFileSync(join(ROOT, 'openapi.yaml'), 'utf8'));
    expect(committed, 'openapi.yaml is stale: run npm run openapi').toEqual(await openApiDocument());
    validate('Info', (await call('GET', '/api/info')).body);
    validate('Health', (await call('GET', '/api/healthz')).body);
  });
});

describe('demo', () => {
  it('allows five per hour per address, then 429 with Retry-After; another address is unaffected', async () => {
    for (let i = 0; i < 5; i++) {
      const r = await getFrom('127.0.0.1', `/api/demo?request=${encodeURIComponent(`demo ${i}`)}`);
      expect(r.status).toBe(200);
      expect(JSON.parse(r.body).result).toContain(`demo ${i}`);
    }
    const sixth = await getFrom('127.0.0.1', '/api/demo?request=again');
    expect(sixth.status).toBe(429);
    expect(Number(sixth.headers['retry-after'])).toBeGreaterThan(0);
    expect((await getFrom('127.0.0.2', '/api/demo?request=hi')).status).toBe(200);
  });

  it('answers a missing or empty request with 400', async () => {
    expect((await getFrom('127.0.0.3', '/api/demo')).status).toBe(400);
    expect((await getFrom('127.0.0.3', '/api/demo?request=')).status).toBe(400);
    expect((await getFrom('127.0.0.3', '/api/demo?request=%20%20')).status).toBe(400);
  });
});

describe('bad input', () => {
  const cases: [string, string, string, unknown, Record<string, string>, number, RegExp][] = [
    ['wrong type', 'POST', '/api/jobs', { request: 42 }, {}, 400, /request/],
    ['missing field', 'POST', '/api/jobs', {}, {}, 400, /request/],
    ['empty request', 'POST', '/api/jobs', { request: '' }, {}, 400, /request: must not be empty/],
    ['too long', 'POST', '/api/jobs', { request: 'x'.repeat(20_001) }, {}, 400, /at most 20000/],
    ['negative maxTokens', 'POST', '/api/jobs', { request: 'hi', maxTokens: -1 }, {}, 400, /maxTokens/],
    ['broken JSON', 'POST', '/api/jobs', '{"request": "hi"', {}, 400, /JSON/i],
    ['JSON array', 'POST', '/api/jobs', '[1,2]', {}, 400, /./],
    ['wrong content type', 'POST', '/api/jobs', 'request=hi', { 'content-type': 'application/x-www-form-urlencoded' }, 415, /application\/json/],
    ['huge body', 'POST', '/api/jobs', JSON.stringify({ request: 'x'.repeat(100_000) }), {}, 413, /too large/],
    ['odd id', 'GET', '/api/jobs/%00%ff', undefined, {}, 400, /id/],
    ['unknown route', 'GET', '/api/nope', undefined, {}, 404, /not found/],
    ['bad payment hash', 'POST', '/api/dev/stub/pay/xyz', undefined, {}, 400, /paymentHash/],
    ['unknown payment hash', 'POST', `/api/dev/stub/pay/${'a'.repeat(64)}`, undefined, {}, 404, /no invoice/],
  ];
  it.each(cases)('%s -> %s %s answers %#', async (_name, method, path, body, headers, status, message) => {
    const r = await call(method, path, body, headers);
    expect(r.status).toBe(status);
    expect(r.body.error).toMatch(message);
  });

  it('accepts unicode and stays alive after all of it', async () => {
    const r = await call('POST', '/api/jobs', { request: 'Ünïcødé ✓ 日本語 🚀 \u202e' }, {}, '127.0.0.4');
    expect(r.status).toBe(201);
    expect((await call('GET', '/api/healthz')).status).toBe(200);
  });
});

describe('metrics', () => {
  it('exposes Prometheus counters that move when a job runs, every series labelled with the worker', async () => {
    const before = (await call('GET', '/metrics')).body as string;
    expect(before).toMatch(/# TYPE timmy_jobs gauge/);
    const created = await call('POST', '/api/jobs', { request: 'count me' }, {}, '127.0.0.5');
    const after = (await call('GET', '/metrics')).body as string;
    const metric = (text: string, re: RegExp) => Number(re.exec(text)?.[1] ?? 0);
    const httpPosts = /timmy_http_requests_total\{method="POST",status="201",worker="api-worker"\} (\d+)/;
    expect(metric(after, httpPosts)).toBeGreaterThan(metric(before, httpPosts));
    const open = /timmy_invoices\{status="open",worker="api-worker"\} (\d+)/;
    expect(metric(after, open)).toBeGreaterThan(metric(before, open));
    expect(after).toMatch(/timmy_relay_connected\{relay="ws:\/\/127\.0\.0\.1:\d+",worker="api-worker"\} 1/);
    expect(after).toMatch(/timmy_outbox_depth\{worker="api-worker"\} \d+/);
    const series = after.split('\n').filter((l) => l && !l.startsWith('#'));
    expect(series.length).toBeGreaterThan(20);
    expect(series.filter((l) => !l.includes('worker="api-worker"'))).toEqual([]);
    expect(created.status).toBe(201);
  });

  it('names the worker in /api/healthz and in every log line', async () => {
    expect((await call('GET', '/api/healthz')).body).toMatchObject({ ok: true, worker: 'api-worker' });
    expect(daemon.logs.length).toBeGreaterThan(0);
    expect(daemon.logs.filter((l) => l.worker !== 'api-worker')).toEqual([]);
  });
});

describe('production guard', () => {
  it('refuses to start on stub payments; with ALLOW_STUB_PAYMENTS=1 it starts and the dev route is gone', async () => {
    let out = '';
    try {
      execFileSync(process.execPath, ['src/bin.js', 'start'], {
        cwd: ROOT,
        env: { PATH: process.env.PATH, DATA_DIR: tempDir(), NODE_ENV: 'production', EMBEDDED_RELAY_PORT: 'off', RELAYS: relay.url, HTTP_PORT: '0' },
        stdio: 'pipe',
      });
    } catch (err) {
      const e = err as { status: number; stdout: Buffer; stderr: Buffer };
      expect(e.status).toBe(2);
      out = `${e.stdout}${e.stderr}`;
    }
    expect(out).toMatch(/stub payment backend/);

    const prod = await startDaemon({ relays: [relay.url], env: { NODE_ENV: 'production', ALLOW_STUB_PAYMENTS: '1' } });
    try {
      const r = await fetch(`${prod.api}/api/dev/stub/pay/${'a'.repeat(64)}`, { method: 'POST' });
      expect(r.status).toBe(404);
      expect((await fetch(`${prod.api}/api/healthz`)).status).toBe(200);
    } finally {
      await prod.kill();
    }
  });
});
