// Logs for humans on a terminal, JSON otherwise; secrets censored either way (issue 14, item 21).
import { describe, expect, it } from 'vitest';
import { Writable } from 'node:stream';
import { createLogger } from './log.ts';

function capture(): { stream: Writable; text: () => string } {
  let out = '';
  return {
    stream: new Writable({
      write(chunk, _enc, cb) {
        out += String(chunk);
        cb();
      },
    }),
    text: () => out,
  };
}

describe('logger', () => {
  it('pretty: one short human line per entry, module in front, secrets censored', () => {
    const c = capture();
    const log = createLogger('info', c.stream, { pretty: true }).child({ module: 'book' });
    log.info({ amountSats: 10, preimage: 'ab'.repeat(32) }, 'invoice paid');
    const line = c.text().trim();
    expect(line.split('\n')).toHaveLength(1);
    expect(line).toMatch(/^\[\d\d:\d\d:\d\d\] INFO: \(book\) invoice paid/);
    expect(line).toContain('"amountSats":10');
    expect(line).toContain('[secret]');
    expect(line).not.toContain('abab');
    expect(() => JSON.parse(line)).toThrow();
  });

  it('JSON lines when not pretty', () => {
    const c = capture();
    createLogger('info', c.stream, { pretty: false }).info({ amountSats: 1 }, 'x');
    expect(JSON.parse(c.text())).toMatchObject({ msg: 'x', amountSats: 1, level: 30 });
  });

  it('names the worker (WORKER_ID) in every JSON line, children included', () => {
    const c = capture();
    const log = createLogger('info', c.stream, { pretty: false, worker: 'host-a:42' });
    log.info('x');
    log.child({ module: 'book' }).warn('y');
    expect(c.text().trim().split('\n').map((l) => JSON.parse(l).worker)).toEqual(['host-a:42', 'host-a:42']);
  });
});
