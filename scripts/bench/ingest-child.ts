// Entry of one ingest run in its own process (so the pure-JS run can swap the verifier at load time).
// BENCH_VERIFY=wasm|purejs, BENCH_INGEST_N, BENCH_INGEST_WARMUP. Prints one JSON line on stdout.
import { register } from 'node:module';

const mode = process.env.BENCH_VERIFY === 'purejs' ? 'purejs' : 'wasm';
if (mode === 'purejs') register('./verify-purejs-hooks.mjs', import.meta.url);
const { runIngest } = await import('./ingest.ts');
const result = await runIngest({
  mode,
  n: Number(process.env.BENCH_INGEST_N ?? 2000),
  warmup: Number(process.env.BENCH_INGEST_WARMUP ?? 200),
});
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
