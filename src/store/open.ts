// Which store a configuration names: PostgreSQL when DATABASE_URL is set, else the SQLite file.
import type { Config } from '../config.ts';
import type { Store } from './store.ts';
import { openSqliteStore, openSqliteStoreReadOnly } from './sqlite-store.ts';

/** The URL without its password, for logs and errors. */
export function redactDatabaseUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return 'postgres://(unparsable URL)';
  }
}

/** Where the store is, for logs and errors (never a password). */
export function storeLocation(config: Pick<Config, 'DATABASE_URL' | 'databasePath'>): string {
  return config.DATABASE_URL ? redactDatabaseUrl(config.DATABASE_URL) : config.databasePath;
}

/** Opens the configured store, creating and migrating it as needed. */
export async function openStore(config: Pick<Config, 'DATABASE_URL' | 'databasePath'>): Promise<Store> {
  if (!config.DATABASE_URL) return openSqliteStore(config.databasePath);
  // pg is loaded only when PostgreSQL is configured.
  const { openPgStore } = await import('./pg/store.ts');
  return openPgStore(config.DATABASE_URL);
}

/** Opens the configured store for reading (the CLI's reports): creates nothing, migrates nothing. */
export async function openStoreReadOnly(config: Pick<Config, 'DATABASE_URL' | 'databasePath'>): Promise<Store> {
  if (!config.DATABASE_URL) return openSqliteStoreReadOnly(config.databasePath);
  const { openPgStore } = await import('./pg/store.ts');
  return openPgStore(config.DATABASE_URL, { migrate: false });
}
