// The store a test runs on: SQLite in a temporary file, or, in the `pg` vitest project (TIMMY_TEST_STORE=pg), a
// fresh PostgreSQL database copied from the run's migrated template. Tests talk to it through the Store ops;
// `exec` is for the few statements a test needs that no op has (seeding an odd row, bending a counter).
import type { Store } from '../../src/store/store.ts';
import { openSqliteStore } from '../../src/store/sqlite-store.ts';

export const TEST_STORE: 'sqlite' | 'pg' = process.env.TIMMY_TEST_STORE === 'pg' ? 'pg' : 'sqlite';

export interface StoreUnderTest {
  store: Store;
  /** One statement with `?` placeholders, on the store's engine; its rows. */
  exec(sql: string, ...params: unknown[]): Promise<Record<string, unknown>[]>;
  /** The database URL when on PostgreSQL (for daemons started against it). */
  url: string | null;
  /** Removes the database (after `store.close()`). */
  drop(): Promise<void>;
}

export async function testStore(sqlitePath: string): Promise<StoreUnderTest> {
  if (TEST_STORE === 'sqlite') {
    const store = openSqliteStore(sqlitePath);
    return {
      store,
      url: null,
      exec: async (sql, ...params) => {
        const st = store.db.$client.prepare(sql);
        return st.reader ? (st.all(...params) as Record<string, unknown>[]) : (st.run(...params), []);
      },
      drop: async () => {},
    };
  }
  const [{ freshPgDatabase }, { openPgStore }] = await Promise.all([import('./pg.ts'), import('../../src/store/pg/store.ts')]);
  const db = await freshPgDatabase();
  const store = await openPgStore(db.url);
  return {
    store,
    url: db.url,
    exec: async (sql, ...params) => {
      let n = 0;
      const text = sql.replace(/\?/g, () => `$${++n}`);
      return (await store.db.$client.query(text, params)).rows as Record<string, unknown>[];
    },
    drop: () => db.drop(),
  };
}
