// Statements of the hot paths, built once per database connection: drizzle would otherwise build the
// SQL text and better-sqlite3 compile it again on every call (most of the per-request CPU, see
// docs/benchmarks.md). Only for the top-level Db: a transaction object gets fresh statements.
import type { Db } from './db.ts';

const cache = new WeakMap<object, Map<string, unknown>>();

export function prepared<T>(db: Db, key: string, build: () => T): T {
  const client = (db as { $client?: object }).$client;
  if (!client) return build();
  let m = cache.get(client);
  if (!m) {
    m = new Map();
    cache.set(client, m);
  }
  let s = m.get(key) as T | undefined;
  if (s === undefined) {
    s = build();
    m.set(key, s);
  }
  return s;
}
