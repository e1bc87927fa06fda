// Timmy's Nostr identity: NOSTR_SECRET_KEY (nsec or hex), else a key generated once into DATA_DIR (0600).
import { existsSync, mkdirSync, readFileSync, writeFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { nip19 } from 'nostr-tools';

export const KEY_FILE = 'nostr.key';

export class KeyError extends Error {
  override name = 'KeyError';
}

/** Parses an nsec or 64-hex secret key; the message never echoes the input. */
export function parseSecretKey(value: string, label: string): Uint8Array {
  const v = value.trim();
  if (/^[0-9a-f]{64}$/i.test(v)) return new Uint8Array(Buffer.from(v, 'hex'));
  if (v.startsWith('nsec1')) {
    try {
      const d = nip19.decode(v);
      if (d.type === 'nsec') return d.data;
    } catch {
      /* reported below */
    }
  }
  throw new KeyError(`${label}: not an nsec or a 64-character hex secret key`);
}

/** Loads (or on first start creates) the daemon's secret key. */
export function loadSecretKey(dataDir: string, fromEnv?: string): Uint8Array {
  if (fromEnv) return parseSecretKey(fromEnv, 'NOSTR_SECRET_KEY');
  const file = join(dataDir, KEY_FILE);
  if (existsSync(file)) return parseSecretKey(readFileSync(file, 'utf8'), file);
  mkdirSync(dataDir, { recursive: true });
  const sk = randomBytes(32);
  writeFileSync(file, `${sk.toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
  return new Uint8Array(sk);
}

/** The macaroon root key: 32 random bytes generated once into DATA_DIR (0600). */
export function loadRootKey(dataDir: string): Uint8Array {
  return loadOrCreateKey(dataDir, 'macaroon.key');
}

/** The key that seals node credentials at rest (see core/sealed.ts). */
export function loadStorageKey(dataDir: string): Uint8Array {
  return loadOrCreateKey(dataDir, 'storage.key');
}

function loadOrCreateKey(dataDir: string, name: string): Uint8Array {
  const file = join(dataDir, name);
  if (existsSync(file)) {
    const hex = readFileSync(file, 'utf8').trim();
    if (!/^[0-9a-f]{64}$/.test(hex)) throw new KeyError(`${file}: not a 64-character hex key`);
    return new Uint8Array(Buffer.from(hex, 'hex'));
  }
  mkdirSync(dataDir, { recursive: true });
  const key = randomBytes(32);
  writeFileSync(file, `${key.toString('hex')}\n`, { mode: 0o600, flag: 'wx' });
  chmodSync(file, 0o600);
  return new Uint8Array(key);
}
