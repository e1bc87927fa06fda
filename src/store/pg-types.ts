// Type parsers for PostgreSQL connections: int8 and numeric come back as numbers, refused when not exact.
// Given per pool or client (`types: pgTypes`), never set on the global `pg.types`, which other users of pg share.
// drizzle's node-postgres driver sends its own parsers with every query (falling back to the global ones), so
// these reach only queries run on the pool or client itself: in drizzle, a bigint column in number mode is
// converted by drizzle (unchecked), and a raw aggregate needs sql<number>`...`.mapWith(parseInt8).
import pg from 'pg';

const INT8 = 20; // oid: bigint columns, count(*), sum(...)::bigint
const NUMERIC = 1700; // oid: sum() and avg() of bigint

/** A value from PostgreSQL that a JS number cannot hold exactly. */
export class UnsafeNumberError extends RangeError {
  override name = 'UnsafeNumberError';
}

/** int8 text → number; throws beyond ±(2^53 - 1), where a number would silently round. */
export function parseInt8(text: string): number {
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new UnsafeNumberError(`int8 ${text} does not fit a JS number exactly`);
  return n;
}

/** numeric text → number; an integral value must be a safe integer (a sum of msats), a fraction may round (an average). */
export function parseNumeric(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || (/^-?\d+$/.test(text) && !Number.isSafeInteger(n))) {
    throw new UnsafeNumberError(`numeric ${text} does not fit a JS number exactly`);
  }
  return n;
}

/** For `new pg.Pool({ ..., types: pgTypes })`: text-format int8 and numeric as numbers, everything else as pg does. */
export const pgTypes: pg.CustomTypesConfig = {
  getTypeParser: (oid: number, format?: 'text' | 'binary') => {
    if (format !== 'binary') {
      if (oid === INT8) return parseInt8;
      if (oid === NUMERIC) return parseNumeric;
    }
    return pg.types.getTypeParser(oid, format);
  },
};
