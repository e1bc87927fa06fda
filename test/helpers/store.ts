// Read-only looks into a daemon's SQLite file (WAL readers never block the writer).
import Database from 'better-sqlite3';
import { join } from 'node:path';

export function readDb<T>(dataDir: string, fn: (db: Database.Database) => T): T {
  const db = new Database(join(dataDir, 'timmy.db'), { readonly: true, fileMustExist: true });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}

export function jobRow(dataDir: string, id: string): { state: string; error_message: string | null } | undefined {
  return readDb(dataDir, (db) => db.prepare('select * from jobs where id = ?').get(id) as { state: string; error_message: string | null } | undefined);
}

export function outboxRows(dataDir: string, jobId: string): { id: number; intent_json: string; event_id: string | null; acked_at: number | null }[] {
  return readDb(dataDir, (db) => db.prepare('select * from outbox where job_id = ? order by id').all(jobId) as { id: number; intent_json: string; event_id: string | null; acked_at: number | null }[]);
}
