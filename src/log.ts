// The one logger. Every module takes a child: log.child({ module: 'pool' }).
import { pino, type Logger } from 'pino';

export type { Logger };

/** Keys that may hold secrets are censored wherever they appear in a log object (SPEC 1). */
const REDACT = [
  'secretKey', 'nsec', 'preimage', 'macaroon', 'apiKey', 'privateKey', 'userData', 'authKey', 'token',
  '*.secretKey', '*.nsec', '*.preimage', '*.macaroon', '*.apiKey', '*.privateKey', '*.userData', '*.authKey', '*.token',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino({ level, base: { pid: process.pid }, redact: { paths: REDACT, censor: '[secret]' } }, destination);
}
