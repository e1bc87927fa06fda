// The customer's own Nostr key for the CLI: kept in the user's config dir (created 0600 on first use), so
// credit "spent automatically on your next request" and sessions bound to it stay reachable.
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { generateSecretKey } from 'nostr-tools/pure';
import { parseSecretKey } from '../nostr/keys.ts';

/** $XDG_CONFIG_HOME/timmy/customer.key, else ~/.config/timmy/customer.key. */
export function defaultKeyPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME && env.XDG_CONFIG_HOME.startsWith('/') ? env.XDG_CONFIG_HOME : join(env.HOME || homedir(), '.config');
  return join(base, 'timmy', 'customer.key');
}

export interface CustomerKey {
  secretKey: Uint8Array;
  /** Where it came from: a file path, or "--key" for a key given on the command line. */
  source: string;
  /** True when this call generated it. */
  created: boolean;
}

/**
 * The key named by `--key` (an nsec, 64 hex characters, or a file holding one), else the default file;
 * with `create`, a missing default file is generated (directory 0700, file 0600). Null when there is none.
 */
export function loadCustomerKey(choice: string | undefined, opts: { create: boolean; env?: NodeJS.ProcessEnv }): CustomerKey | null {
  if (choice !== undefined) {
    const v = choice.trim();
    if (/^[0-9a-f]{64}$/i.test(v) || v.startsWith('nsec1')) return { secretKey: parseSecretKey(v, '--key'), source: '--key', created: false };
    const file = resolve(v);
    if (!existsSync(file)) throw new Error(`--key: no such file ${file} (give an nsec, a hex secret key, or a key file)`);
    return { secretKey: parseSecretKey(readFileSync(file, 'utf8'), file), source: file, created: false };
  }
  const file = defaultKeyPath(opts.env);
  if (existsSync(file)) return { secretKey: parseSecretKey(readFileSync(file, 'utf8'), file), source: file, created: false };
  if (!opts.create) return null;
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  chmodSync(dirname(file), 0o700);
  const sk = generateSecretKey();
  writeFileSync(file, `${Buffer.from(sk).toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
  return { secretKey: sk, source: file, created: true };
}
