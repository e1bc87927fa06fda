// Timmy's Nostr identity: NOSTR_SECRET_KEY (nsec or hex), else a key generated once into DATA_DIR (0600).
import { existsSync, linkSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash, randomBytes } from 'node:crypto';
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
  if (!existsSync(file)) createOnce(dataDir, file, randomBytes(32).toString('hex'));
  return parseSecretKey(readFileSync(file, 'utf8'), file);
}

/** The macaroon root key: 32 random bytes generated once into DATA_DIR (0600). */
export function loadRootKey(dataDir: string): Uint8Array {
  return loadOrCreateKey(dataDir, 'macaroon.key');
}

/** The key that seals node credentials at rest (see core/sealed.ts). */
export function loadStorageKey(dataDir: string): Uint8Array {
  return loadOrCreateKey(dataDir, 'storage.key');
}

/**
 * What workers sharing one database compare at start: SHA-256 (hex) of each DATA_DIR key every worker must
 * hold alike (the key itself, so a trailing newline is no difference), and the Nostr pubkey.
 */
export function keyFingerprints(dataDir: string, pubkey: string): Record<string, string> {
  const sha256 = (key: Uint8Array) => createHash('sha256').update(key).digest('hex');
  return { 'macaroon.key': sha256(loadRootKey(dataDir)), 'storage.key': sha256(loadStorageKey(dataDir)), pubkey };
}

function loadOrCreateKey(dataDir: string, name: string): Uint8Array {
  const file = join(dataDir, name);
  if (!existsSync(file)) createOnce(dataDir, file, randomBytes(32).toString('hex'));
  const hex = readFileSync(file, 'utf8').trim();
  if (!/^[0-9a-f]{64}$/.test(hex)) throw new KeyError(`${file}: not a 64-character hex key`);
  return new Uint8Array(Buffer.from(hex, 'hex'));
}

/**
 * Creates `file` (0600) holding `hex` unless it exists. Written whole under a private name first, then
 * linked into place (link fails on an existing name): workers sharing DATA_DIR and starting together never
 * read a half-written key, and the first one's key is everyone's.
 */
function createOnce(dataDir: string, file: string, hex: string): void {
  mkdirSync(dataDir, { recursive: true });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  writeFileSync(tmp, `${hex}\n`, { mode: 0o600, flag: 'wx' });
  try {
    linkSync(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  } finally {
    rmSync(tmp, { force: true });
  }
}
