// Module resolve hook for the pure-JS ingest run: every import of src/nostr/crypto.ts gets
// scripts/bench/crypto-purejs.ts instead (registered by ingest-child.ts when BENCH_VERIFY=purejs).
const replacement = new URL('./crypto-purejs.ts', import.meta.url).href;

export async function resolve(specifier, context, nextResolve) {
  const r = await nextResolve(specifier, context);
  if (r.url.endsWith('/src/nostr/crypto.ts')) return { ...r, url: replacement, shortCircuit: true };
  return r;
}
