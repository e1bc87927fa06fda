// The operator token that opens the console: CONSOLE_TOKEN, else one generated once into DATA_DIR (0600).
// The browser keeps a cookie derived from it (never the token itself); checks compare in constant time.
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export const CONSOLE_TOKEN_FILE = 'console.token';

/** The token from the environment, else `DATA_DIR/console.token` (created 0600 on first use). */
export function loadConsoleToken(dataDir: string, fromEnv: string | undefined): { token: string; source: 'env' | 'file'; file: string } {
  const file = join(dataDir, CONSOLE_TOKEN_FILE);
  if (fromEnv) return { token: fromEnv, source: 'env', file };
  if (existsSync(file)) {
    chmodSync(file, 0o600); // a copy restored with looser permissions is owner-only again
    const token = readFileSync(file, 'utf8').trim();
    if (token.length >= 16) return { token, source: 'file', file };
  }
  mkdirSync(dataDir, { recursive: true });
  const token = randomBytes(24).toString('base64url');
  writeFileSync(file, `${token}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return { token, source: 'file', file };
}

/** The token as the CLI finds it (never creating one): CONSOLE_TOKEN, else the file; null when neither. */
export function readConsoleToken(dataDir: string, fromEnv: string | undefined): string | null {
  if (fromEnv) return fromEnv;
  const file = join(dataDir, CONSOLE_TOKEN_FILE);
  return existsSync(file) ? readFileSync(file, 'utf8').trim() || null : null;
}

/** Constant-time equality of two strings of any length (both are hashed first). */
export function sameSecret(a: string, b: string): boolean {
  const h = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(h(a), h(b));
}

/** The cookie value a login sets: derived from the token, so a leaked cookie is not the token. */
export function cookieValue(token: string): string {
  return createHmac('sha256', token).update('timmy console cookie v1').digest('base64url');
}

/** The URL that logs a browser in once (it then holds the cookie and the URL's token is not needed). */
export function loginUrl(base: string, token: string): string {
  return `${base.replace(/\/$/, '')}/console?token=${encodeURIComponent(token)}`;
}
