// Benchmark 4: GET /api/jobs/:id with autocannon (programmatic API, in this process) at a fixed
// concurrency for a fixed time, rotating over many job ids. Every job asked about awaits its eval
// payment, so each request also asks the payment backend about the invoice (`jobs.refresh`).
import autocannon from 'autocannon';
import { cpuMs } from './daemon.ts';
import { progress } from './common.ts';

export interface HttpResult {
  connections: number;
  durationS: number;
  ids: number;
  requests: number; // 2xx responses
  rate: number; // 2xx responses per second
  p50: number;
  p99: number;
  max: number;
  non2xx: number;
  errors: number;
  daemonCpuMs: number;
}

function run(url: string, ids: string[], connections: number, duration: number): Promise<autocannon.Result> {
  let next = 0;
  return autocannon({
    url,
    connections,
    duration,
    requests: [
      {
        method: 'GET',
        setupRequest: (req) => ({ ...req, path: `/api/jobs/${ids[next++ % ids.length]}` }),
      },
    ],
  });
}

export async function runHttp(o: { api: string; ids: string[]; connections: number; durationS: number; daemonPid: number }): Promise<HttpResult> {
  progress(`http: warm-up, then GET /api/jobs/:id at concurrency ${o.connections} for ${o.durationS} s`);
  await run(o.api, o.ids, o.connections, 1);
  const cpu0 = cpuMs(o.daemonPid);
  const r = await run(o.api, o.ids, o.connections, o.durationS);
  const daemonCpuMs = cpuMs(o.daemonPid) - cpu0;
  const ok = r['2xx'];
  progress(`http: ${ok} responses, ${(ok / r.duration).toFixed(0)}/s, p99 ${r.latency.p99} ms, non-2xx ${r.non2xx}, errors ${r.errors}`);
  return {
    connections: o.connections,
    durationS: r.duration,
    ids: o.ids.length,
    requests: ok,
    rate: ok / r.duration,
    p50: r.latency.p50,
    p99: r.latency.p99,
    max: r.latency.max,
    non2xx: r.non2xx,
    errors: r.errors,
    daemonCpuMs,
  };
}
