import { describe, expect, it } from 'vitest';
import pg from 'pg';
import { parseInt8, parseNumeric, pgTypes, UnsafeNumberError } from './pg-types.ts';

describe('PostgreSQL type parsers', () => {
  it('int8 becomes a number up to ±(2^53 - 1), and an error past it', () => {
    expect(parseInt8('0')).toBe(0);
    expect(parseInt8('1796210898672')).toBe(1_796_210_898_672); // unix ms
    expect(parseInt8('9007199254740991')).toBe(Number.MAX_SAFE_INTEGER);
    expect(parseInt8('-9007199254740991')).toBe(-Number.MAX_SAFE_INTEGER);
    expect(() => parseInt8('9007199254740992')).toThrow(UnsafeNumberError);
    expect(() => parseInt8('-9223372036854775808')).toThrow(UnsafeNumberError);
  });

  it('numeric becomes a number: integral ones exact or an error, fractions as the nearest double', () => {
    expect(parseNumeric('55')).toBe(55);
    expect(parseNumeric('-21000000000')).toBe(-21_000_000_000);
    expect(parseNumeric('2.5000000000000000')).toBe(2.5);
    expect(() => parseNumeric('18446744073709551614')).toThrow(UnsafeNumberError); // sum of two int8 maxima
    expect(() => parseNumeric('NaN')).toThrow(UnsafeNumberError);
  });

  it('applies to text int8 and numeric only; everything else parses as pg does', () => {
    expect(pgTypes.getTypeParser(20, 'text')).toBe(parseInt8);
    expect(pgTypes.getTypeParser(20)).toBe(parseInt8);
    expect(pgTypes.getTypeParser(1700, 'text')).toBe(parseNumeric);
    expect(pgTypes.getTypeParser(16, 'text')).toBe(pg.types.getTypeParser(16, 'text'));
    expect(pgTypes.getTypeParser(20, 'binary')).toBe(pg.types.getTypeParser(20, 'binary'));
    expect(pg.types.getTypeParser(20, 'text')).not.toBe(parseInt8); // the global parsers are left alone
  });
});
