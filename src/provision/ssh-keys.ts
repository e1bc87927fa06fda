// OpenSSH keys without a library: Node's crypto makes the ed25519 keypair; the OpenSSH wire formats
// (RFC 4253 §6.6 public key blobs, PROTOCOL.key's unencrypted `openssh-key-v1` container) are small
// enough to write by hand, and the tests check the result with the real ssh-keygen.
import { createHash, generateKeyPairSync, randomBytes } from 'node:crypto';

export const SSH_KEY_TYPES = ['ssh-ed25519', 'ssh-rsa', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521'] as const;
export type SshKeyType = (typeof SSH_KEY_TYPES)[number];

const MAX_LINE_CHARS = 16 * 1024; // an RSA-16384 public key line is ~2.8 KB; anything far longer is not a key
const MIN_RSA_BITS = 2048;
/** ECDSA: curve name and the length of the uncompressed point (0x04 || X || Y), bytes. */
const ECDSA_POINT_BYTES: Record<string, number> = { nistp256: 65, nistp384: 97, nistp521: 133 };
const PEM_LINE_CHARS = 70; // what ssh-keygen writes

export class SshKeyError extends Error {
  override name = 'SshKeyError';
}

export interface ParsedPublicKey {
  type: SshKeyType;
  /** The decoded key blob (what fingerprints are computed over). */
  blob: Buffer;
  comment: string;
  /** `type base64 [comment]`, whitespace normalised. */
  line: string;
}

export interface GeneratedKeyPair {
  /** `ssh-ed25519 AAAA... comment` */
  publicKey: string;
  /** `-----BEGIN OPENSSH PRIVATE KEY-----` block, unencrypted, trailing newline included. */
  privateKey: string;
}

// --- wire helpers (RFC 4251 §5: uint32 big-endian, string = uint32 length + bytes) ---

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(n);
  return b;
}

function sshString(data: Buffer | string): Buffer {
  const body = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
  return Buffer.concat([u32(body.length), body]);
}

class Reader {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}

  string(): Buffer {
    if (this.pos + 4 > this.buf.length) throw new SshKeyError('truncated key blob');
    const len = this.buf.readUInt32BE(this.pos);
    this.pos += 4;
    if (this.pos + len > this.buf.length) throw new SshKeyError('truncated key blob');
    const out = this.buf.subarray(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }

  done(): boolean {
    return this.pos === this.buf.length;
  }
}

// --- generation ---

/** A fresh ed25519 keypair in OpenSSH formats (`ssh-keygen -t ed25519 -N ''` equivalent). */
export function generateEd25519KeyPair(comment: string): GeneratedKeyPair {
  if (!/^[\x21-\x7e]{0,100}$/.test(comment)) throw new SshKeyError('the key comment must be printable ASCII without spaces');
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const pub = Buffer.from(publicKey.export({ format: 'jwk' }).x!, 'base64url'); // 32 bytes
  const seed = Buffer.from(privateKey.export({ format: 'jwk' }).d!, 'base64url'); // 32 bytes
  const blob = Buffer.concat([sshString('ssh-ed25519'), sshString(pub)]);

  // PROTOCOL.key: two equal random check ints, then the key (OpenSSH's ed25519 "private" field is
  // seed || public, 64 bytes), the comment, and padding 1,2,3,... to the cipher block size (8 for "none").
  const check = randomBytes(4);
  let section = Buffer.concat([check, check, sshString('ssh-ed25519'), sshString(pub), sshString(Buffer.concat([seed, pub])), sshString(comment)]);
  const pad = (8 - (section.length % 8)) % 8;
  section = Buffer.concat([section, Buffer.from(Array.from({ length: pad }, (_, i) => i + 1))]);

  const container = Buffer.concat([
    Buffer.from('openssh-key-v1\0', 'latin1'),
    sshString('none'), // cipher: the key travels sealed (SecretBox at rest, NIP-44 in the DM) instead
    sshString('none'), // kdf
    sshString(''), // kdf options
    u32(1), // number of keys
    sshString(blob),
    sshString(section),
  ]);
  seed.fill(0);
  const b64 = container.toString('base64');
  const lines = b64.match(new RegExp(`.{1,${PEM_LINE_CHARS}}`, 'g')) ?? [];
  return {
    publicKey: `ssh-ed25519 ${blob.toString('base64')}${comment ? ` ${comment}` : ''}`,
    privateKey: `-----BEGIN OPENSSH PRIVATE KEY-----\n${lines.join('\n')}\n-----END OPENSSH PRIVATE KEY-----\n`,
  };
}

// --- parsing and validation ---

/** Bits of an SSH mpint (two's complement, big-endian, a leading 0x00 when the top bit is set). */
function mpintBits(m: Buffer): number {
  let i = 0;
  while (i < m.length && m[i] === 0) i++;
  if (i === m.length) return 0;
  return (m.length - i - 1) * 8 + (32 - Math.clz32(m[i]!));
}

/** Checks the blob's structure for its type: the right fields, sizes and nothing trailing. */
function checkBlob(type: SshKeyType, blob: Buffer): void {
  const r = new Reader(blob);
  if (r.string().toString('latin1') !== type) throw new SshKeyError(`the key data is not a ${type} key`);
  if (type === 'ssh-ed25519') {
    if (r.string().length !== 32) throw new SshKeyError('an ed25519 public key is 32 bytes');
  } else if (type === 'ssh-rsa') {
    const e = r.string();
    const n = r.string();
    if (mpintBits(e) < 2) throw new SshKeyError('invalid RSA exponent');
    const bits = mpintBits(n);
    if (bits < MIN_RSA_BITS) throw new SshKeyError(`RSA keys need at least ${MIN_RSA_BITS} bits (this one has ${bits})`);
  } else {
    const curve = type.slice('ecdsa-sha2-'.length);
    if (r.string().toString('latin1') !== curve) throw new SshKeyError(`the key data does not name curve ${curve}`);
    const q = r.string();
    if (q.length !== ECDSA_POINT_BYTES[curve] || q[0] !== 0x04) throw new SshKeyError(`not an uncompressed ${curve} point`);
  }
  if (!r.done()) throw new SshKeyError('unexpected bytes after the key');
}

/**
 * Parses one OpenSSH public key line (`type base64 [comment]`, as in id_ed25519.pub). authorized_keys
 * options, several keys, certificates, DSA and sk- keys are refused. Messages never echo the input.
 */
export function parsePublicKey(input: string): ParsedPublicKey {
  const text = input.trim();
  if (text.length === 0) throw new SshKeyError('the SSH public key is empty');
  if (text.length > MAX_LINE_CHARS) throw new SshKeyError('the SSH public key is too long');
  if (/[\r\n\0]/.test(text)) throw new SshKeyError('the SSH public key must be a single line');
  const m = /^(\S+)[ \t]+([A-Za-z0-9+/]+={0,2})(?:[ \t]+([\x20-\x7e]*))?$/.exec(text);
  if (!m) throw new SshKeyError('not an OpenSSH public key line ("ssh-ed25519 AAAA... comment")');
  const type = m[1]!;
  if (!(SSH_KEY_TYPES as readonly string[]).includes(type)) {
    throw new SshKeyError(`unsupported key type; use one of ${SSH_KEY_TYPES.join(', ')}`);
  }
  const blob = Buffer.from(m[2]!, 'base64');
  // Node's decoder skips junk silently; a round trip proves the text was canonical base64.
  if (blob.toString('base64') !== m[2]) throw new SshKeyError('the key data is not valid base64');
  checkBlob(type as SshKeyType, blob);
  const comment = (m[3] ?? '').trim();
  return { type: type as SshKeyType, blob, comment, line: `${type} ${m[2]}${comment ? ` ${comment}` : ''}` };
}

/** MD5 fingerprint as colon hex (`ssh-keygen -E md5 -l` without "MD5:"), the form DigitalOcean uses. */
export function md5Fingerprint(blob: Buffer): string {
  return createHash('md5').update(blob).digest('hex').match(/../g)!.join(':');
}
