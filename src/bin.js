#!/usr/bin/env node
// The `timmy` executable. It runs the bundle that `npm install` builds (dist/timmy.mjs, ~40 MiB less
// memory than compiling on the fly) when that bundle is newer than every source file; otherwise, e.g.
// while someone edits src/, it runs the TypeScript sources through tsx.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const src = dirname(fileURLToPath(import.meta.url));
const bundle = join(src, '..', 'dist', 'timmy.mjs');

/** Newest modification time (ms) of the .ts files under `dir`. */
function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) newest = Math.max(newest, newestSource(path));
    else if (entry.name.endsWith('.ts')) newest = Math.max(newest, statSync(path).mtimeMs);
  }
  return newest;
}

if (process.env.TIMMY_NO_BUNDLE !== '1' && existsSync(bundle) && statSync(bundle).mtimeMs >= newestSource(src)) {
  await import(pathToFileURL(bundle).href);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('./cli.ts');
}
