import { describe, expect, it } from 'vitest';
import { jsonLine, terminalSafe } from './terminal.ts';

describe('terminalSafe', () => {
  it('shows escape sequences, NUL, CR and bidi overrides as visible escapes; keeps ordinary text', () => {
    const evil = 'hi\x1b[2J\x1b]0;owned\x07 \u0000 a\rb \u202Egnp.exe \u2066x\u2069 ünïcödé 😀';
    const safe = terminalSafe(evil);
    expect(safe).not.toMatch(/[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/);
    expect(safe).toContain('\\u001b[2J');
    expect(safe).toContain('\\u202e');
    expect(safe).toContain('ünïcödé 😀');
    expect(terminalSafe('line 1\nline 2\tx')).toBe('line 1\nline 2\tx');
    expect(terminalSafe('line 1\nline 2', { oneLine: true })).toBe('line 1\\u000aline 2');
  });

  it('jsonLine stays valid JSON and round-trips the original text', () => {
    const v = { input: 'a\u202Eb\x1bc\u2028d' };
    const line = jsonLine(v);
    expect(line).not.toMatch(/[\x1b\u202e\u2028]/);
    expect(JSON.parse(line)).toEqual(v);
  });
});
