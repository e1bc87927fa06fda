// Encrypted job requests (NIP-90 "encrypted" tag): NIP-04 (what NIP-90 names) or NIP-44 (what newer
// clients send), detected from the payload, and answered in the same scheme.
import * as nip04 from 'nostr-tools/nip04';
import * as nip44 from 'nostr-tools/nip44';
import type { Encryption, Job } from '../core/types.ts';

/** NIP-04 payloads are `<base64>?iv=<base64>`; anything else is tried as NIP-44 v2. */
export function detectScheme(payload: string): Exclude<Encryption, 'none'> {
  return payload.includes('?iv=') ? 'nip04' : 'nip44';
}

export type Decrypted = { ok: true; scheme: Exclude<Encryption, 'none'>; tags: string[][] } | { ok: false; reason: string };

/** Decrypts an encrypted request's content into its `i`/`param` tags. */
export function decryptRequestTags(content: string, senderPubkey: string, secretKey: Uint8Array): Decrypted {
  const scheme = detectScheme(content);
  let plain: string;
  try {
    plain = scheme === 'nip04' ? nip04.decrypt(secretKey, senderPubkey, content) : nip44.decrypt(content, nip44.getConversationKey(secretKey, senderPubkey));
  } catch {
    return { ok: false, reason: `cannot decrypt the request content (${scheme}); encrypt it to Timmy's pubkey` };
  }
  let tags: unknown;
  try {
    tags = JSON.parse(plain);
  } catch {
    return { ok: false, reason: 'encrypted content must be a JSON array of tags' };
  }
  if (!Array.isArray(tags) || !tags.every((t) => Array.isArray(t) && t.every((x) => typeof x === 'string'))) {
    return { ok: false, reason: 'encrypted content must be a JSON array of string arrays (tags)' };
  }
  return { ok: true, scheme, tags: tags as string[][] };
}

/** Encrypts `plain` to the job's customer in the job's scheme; null for plaintext jobs. */
export function encryptFor(job: Pick<Job, 'encryption' | 'customerPubkey'>, plain: string, secretKey: Uint8Array): string | null {
  if (job.encryption === 'none' || !job.customerPubkey) return null;
  if (job.encryption === 'nip04') return nip04.encrypt(secretKey, job.customerPubkey, plain);
  return nip44.encrypt(plain, nip44.getConversationKey(secretKey, job.customerPubkey));
}
