// The one logger. Every module takes a child: log.child({ module: 'pool' }). JSON lines for machines; short,
// coloured lines for a human when stdout is a terminal (pino-pretty, in-process, same redaction).
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };

/** Keys that may hold secrets are censored wherever they appear in a log object (SPEC 1). */
const REDACT = [
  'secretKey', 'nsec', 'preimage', 'macaroon', 'apiKey', 'privateKey', 'userData', 'authKey', 'token',
  '*.secretKey', '*.nsec', '*.preimage', '*.macaroon', '*.apiKey', '*.privateKey', '*.userData', '*.authKey', '*.token',
];

/**
 * `pretty` (default: stdout is a terminal) writes `HH:MM:ss LEVEL (module): message key=value` lines;
 * otherwise one JSON object per line. `worker` (WORKER_ID) is in every JSON line: several workers' logs
 * collected in one place stay apart.
 */
export function createLogger(level: string, destination?: pino.DestinationStream, opts: { pretty?: boolean; worker?: string } = {}): Logger {
  const base = { pid: process.pid, ...(opts.worker ? { worker: opts.worker } : {}) };
  const options: pino.LoggerOptions = { level, base, redact: { paths: REDACT, censor: '[secret]' } };
  const human = opts.pretty ?? (destination === undefined && process.stdout.isTTY === true);
  if (!human) return pino(options, destination);
  const stream = pretty({
    colorize: destination === undefined,
    sync: true,
    translateTime: 'HH:MM:ss',
    ignore: 'pid,hostname,module,worker',
    messageFormat: '{if module}({module}) {end}{msg}',
    hideObject: false,
    singleLine: true,
    destination: (destination as NodeJS.WritableStream | undefined) ?? 1,
  });
  return pino(options, stream);
}
