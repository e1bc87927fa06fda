// PostgreSQL for tests: a fresh database per caller, copied from the run's migrated template (tens of ms).
// The server is the run's (test/helpers/pg-server.ts, a global setup): embedded, or TEST_DATABASE_URL's.
import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';
import { databaseUrl, withPgClient, type PgServer } from './pg-server.ts';

let server: Promise<PgServer> | undefined;

/** The run's server, started (and its template migrated) by the first caller in the whole run. */
export function pgServer(): Promise<PgServer> {
  server ??= (async () => {
    const res = await fetch(inject('pgHarness'), { method: 'POST' });
    if (!res.ok) throw new Error(`PostgreSQL for tests: ${await res.text()}`);
    return (await res.json()) as PgServer;
  })();
  return server;
}

/** A new database with the current schema and no rows; `drop()` removes it (closing any connection left open). */
export async function freshPgDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const { url, template, prefix } = await pgServer();
  const name = `${prefix}${randomBytes(6).toString('hex')}`; // unique, not seeded: names must not repeat across files
  await withPgClient(url, (c) => c.query(`create database ${name} template ${template}`));
  return {
    url: databaseUrl(url, name),
    drop: async () => {
      await withPgClient(url, (c) => c.query(`drop database if exists ${name} with (force)`));
    },
  };
}
