// Which relay URLs named by strangers (a job request's `relays` tag, a customer's kind 10050 list) Timmy
// may dial. Without this, anyone could make the daemon open websockets to its own loopback services,
// the LAN or a cloud metadata endpoint (SSRF). Pure: no DNS and no sockets, so the connection layer
// must still check the address a name resolves to (DNS rebinding) with isPublicAddress().
import { isIP } from 'node:net';

export interface RelayPolicy {
  /** ALLOW_PRIVATE_RELAYS=1: also ws:// and private/loopback hosts (local development, private deployments). */
  allowPrivate: boolean;
  /** Ports the daemon itself listens on (the bound HTTP port, the embedded relay port): never dialled on a local host. */
  ownPorts: number[];
  /** At most this many relays are accepted from one request. */
  maxRelays: number;
}

export type RelayVerdict = { ok: true; url: string } | { ok: false; url: string; reason: string };

/** Longer than any real relay URL; bounds the work and the log lines a stranger can cause. */
export const MAX_RELAY_URL_LENGTH = 512;

// ---------------------------------------------------------------------------------------------------
// Address ranges
// ---------------------------------------------------------------------------------------------------

/**
 * 'private': refused unless allowPrivate (a legitimate relay can live there in a private deployment).
 * 'never': refused even with allowPrivate: no relay lives there, and these are the classic SSRF targets
 * (0.0.0.0 reaches the local host on Linux, 169.254.169.254 is the cloud metadata service).
 * 'embedded': an IPv6 form that carries an IPv4 address the packet really goes to; judged by that address.
 */
type Tier = 'private' | 'never' | 'embedded';

interface Range {
  bits: number; // prefix length
  base: bigint; // network address, as a 32- or 128-bit integer
  label: string; // what the range is, for the refusal reason
  cidr: string;
  tier: Tier;
  embedded?: { shift: bigint; publicOk: boolean }; // set exactly when tier is 'embedded'
}

/** What is wrong with an address, or undefined when it is public. */
export interface AddressClass {
  reason: string;
  tier: Exclude<Tier, 'embedded'>;
}

// IANA IPv4 special-purpose registry, plus the private and CGNAT ranges that the registry also lists.
const V4_TABLE: [cidr: string, label: string, tier: Tier][] = [
  ['0.0.0.0/32', 'unspecified address', 'never'],
  ['0.0.0.0/8', '"this network" address', 'never'],
  ['10.0.0.0/8', 'private address', 'private'],
  ['100.64.0.0/10', 'carrier-grade NAT address', 'private'],
  ['100.100.100.200/32', 'cloud metadata endpoint', 'never'], // Alibaba Cloud, inside the CGNAT range
  ['127.0.0.0/8', 'loopback address', 'private'],
  ['169.254.169.254/32', 'cloud metadata endpoint', 'never'], // AWS, GCP, Azure, ...
  ['169.254.0.0/16', 'link-local address', 'never'],
  ['172.16.0.0/12', 'private address', 'private'],
  ['192.0.0.0/24', 'IETF protocol assignment', 'never'],
  ['192.0.2.0/24', 'documentation address', 'never'],
  ['192.88.99.0/24', 'deprecated 6to4 relay anycast address', 'never'],
  ['192.168.0.0/16', 'private address', 'private'],
  ['198.18.0.0/15', 'benchmarking address', 'never'],
  ['198.51.100.0/24', 'documentation address', 'never'],
  ['203.0.113.0/24', 'documentation address', 'never'],
  ['224.0.0.0/4', 'multicast address', 'never'],
  ['240.0.0.0/4', 'reserved address', 'never'],
  ['255.255.255.255/32', 'broadcast address', 'never'],
];

const V6_TABLE: [cidr: string, label: string, tier: Tier][] = [
  ['::/128', 'unspecified address', 'never'],
  ['::1/128', 'loopback address', 'private'],
  ['::ffff:0:0/96', 'IPv4-mapped IPv6 address', 'embedded'],
  ['::ffff:0:0:0/96', 'IPv4-translated IPv6 address', 'embedded'],
  ['::/96', 'IPv4-compatible IPv6 address', 'embedded'], // deprecated, still routed to the IPv4 host by some stacks
  ['64:ff9b::/96', 'NAT64 address', 'embedded'],
  ['64:ff9b:1::/48', 'local-use NAT64 address', 'private'],
  ['100::/64', 'discard-only address', 'never'],
  ['2001::/32', 'Teredo tunnel address', 'never'], // the client IPv4 is obfuscated; no relay needs Teredo
  ['2001:2::/48', 'benchmarking address', 'never'],
  ['2001:10::/28', 'deprecated ORCHID address', 'never'],
  ['2001:20::/28', 'ORCHIDv2 address', 'never'],
  ['2001:db8::/32', 'documentation address', 'never'],
  ['2002::/16', '6to4 address', 'embedded'],
  ['3fff::/20', 'documentation address', 'never'],
  ['fc00::/7', 'unique-local address', 'private'],
  ['fd00:ec2::254/128', 'cloud metadata endpoint', 'never'], // AWS IMDS over IPv6, inside fc00::/7
  ['fe80::/10', 'link-local address', 'never'],
  ['fec0::/10', 'deprecated site-local address', 'private'],
  ['ff00::/8', 'multicast address', 'never'],
];

// Where the IPv4 address sits in each 'embedded' form (the low 32 bits, except 6to4: bits 80..111), and
// whether the form is usable at all with a public IPv4 inside. Mapped, NAT64 and 6to4 addresses do
// reach that IPv4 host; compatible and translated ones are obsolete or host-internal, so never a relay.
const EMBEDDED: Record<string, { shift: bigint; publicOk: boolean }> = {
  '::ffff:0:0/96': { shift: 0n, publicOk: true },
  '::ffff:0:0:0/96': { shift: 0n, publicOk: false },
  '::/96': { shift: 0n, publicOk: false },
  '64:ff9b::/96': { shift: 0n, publicOk: true },
  '2002::/16': { shift: 80n, publicOk: true },
};

/** Everything outside 2000::/3 (global unicast) that no table entry names is unassigned. */
const V6_GLOBAL_UNICAST = { base: 0x2n << 124n, bits: 3 };

/** Dotted quad to a 32-bit integer. Only called on strings that net.isIP() already accepted as IPv4. */
function parseIPv4(s: string): bigint {
  return s.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

/** IPv6 text (any valid form, zone already removed) to a 128-bit integer. Only called after net.isIP() said 6. */
function parseIPv6(s: string): bigint {
  let text = s;
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    // A trailing dotted quad is two hextets.
    const v4 = parseIPv4(tail);
    text = `${text.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [headText, tailText] = text.split('::') as [string, string | undefined];
  const groups = (part: string): string[] => (part === '' ? [] : part.split(':'));
  const head = groups(headText);
  const rest = tailText === undefined ? [] : groups(tailText);
  const zeros = tailText === undefined ? [] : new Array<string>(8 - head.length - rest.length).fill('0');
  return [...head, ...zeros, ...rest].reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

function buildTable(rows: [string, string, Tier][], width: 32 | 128): Range[] {
  const ranges = rows.map(([cidr, label, tier]): Range => {
    const [addr, bits] = cidr.split('/') as [string, string];
    const range: Range = { cidr, label, tier, bits: Number(bits), base: width === 32 ? parseIPv4(addr) : parseIPv6(addr) };
    if (tier === 'embedded') {
      const spec = EMBEDDED[cidr];
      if (!spec) throw new Error(`relay-policy: no EMBEDDED entry for ${cidr}`);
      range.embedded = spec;
    }
    return range;
  });
  // Longest prefix first, so the most specific reason wins (broadcast before reserved, metadata before link-local).
  return ranges.sort((a, b) => b.bits - a.bits);
}

const V4_RANGES = buildTable(V4_TABLE, 32);
const V6_RANGES = buildTable(V6_TABLE, 128);

function inPrefix(value: bigint, base: bigint, bits: number, width: number): boolean {
  const shift = BigInt(width - bits);
  return value >> shift === base >> shift;
}

function classifyV4(value: bigint): AddressClass | undefined {
  const hit = V4_RANGES.find((r) => inPrefix(value, r.base, r.bits, 32));
  // No IPv4 entry is 'embedded', so a hit is always 'private' or 'never'.
  return hit && { reason: `${hit.label} (${hit.cidr})`, tier: hit.tier as AddressClass['tier'] };
}

function formatIPv4(value: bigint): string {
  return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join('.');
}

function classifyV6(value: bigint): AddressClass | undefined {
  const hit = V6_RANGES.find((r) => inPrefix(value, r.base, r.bits, 128));
  if (hit?.embedded) {
    const v4 = (value >> hit.embedded.shift) & 0xffffffffn;
    const inner = classifyV4(v4);
    if (inner) return { reason: `${hit.label} (${hit.cidr}) embedding ${formatIPv4(v4)}, a ${inner.reason}`, tier: inner.tier };
    return hit.embedded.publicOk ? undefined : { reason: `${hit.label} (${hit.cidr})`, tier: 'never' };
  }
  if (hit) return { reason: `${hit.label} (${hit.cidr})`, tier: hit.tier as AddressClass['tier'] };
  if (!inPrefix(value, V6_GLOBAL_UNICAST.base, V6_GLOBAL_UNICAST.bits, 128)) {
    return { reason: 'unassigned IPv6 address (outside 2000::/3)', tier: 'never' };
  }
  return undefined;
}

/**
 * Why an IP literal is not public, or undefined when it is. Anything net.isIP() rejects (including
 * odd encodings such as 0177.0.0.1 or 127.1, and bracketed IPv6) is refused as not an address.
 */
export function classifyAddress(ip: string): AddressClass | undefined {
  const bare = ip.replace(/%.*$/, ''); // an IPv6 zone (fe80::1%eth0) names an interface, not part of the address
  switch (isIP(bare)) {
    case 4:
      return classifyV4(parseIPv4(bare));
    case 6:
      return classifyV6(parseIPv6(bare));
    default:
      return { reason: 'not an IP address', tier: 'never' };
  }
}

/**
 * True only for a well-formed, globally routable unicast address. For the connection layer: check the
 * address a relay's name resolved to, right before connecting, since a public name may resolve to 127.0.0.1.
 */
export function isPublicAddress(ip: string): boolean {
  return classifyAddress(ip) === undefined;
}

// ---------------------------------------------------------------------------------------------------
// Host names
// ---------------------------------------------------------------------------------------------------

// Names that only mean something inside a host or a private network (RFC 6761, 6762 appendix G, 8375,
// and the cloud providers' internal zones). A private relay could live there, hence 'private'.
const LOCAL_SUFFIXES = ['localhost', 'local', 'internal', 'home.arpa', 'lan', 'intranet', 'corp', 'private', 'home', 'test'];
// Names that never resolve publicly, and cloud metadata services, which must never be dialled.
const NEVER_SUFFIXES = ['invalid', 'example'];
const METADATA_NAMES = new Set(['metadata.google.internal', 'metadata.goog', 'metadata', 'instance-data', 'instance-data.ec2.internal']);

const LABEL = /^(?!-)[a-z0-9_-]{1,63}(?<!-)$/;

function hasSuffix(name: string, suffix: string): boolean {
  return name === suffix || name.endsWith(`.${suffix}`);
}

/** Why a DNS name (lowercase, punycode, no trailing dot) is not a public relay host, or undefined. */
function classifyName(name: string): AddressClass | undefined {
  if (name.length > 253 || !name.split('.').every((l) => LABEL.test(l))) {
    return { reason: 'invalid hostname', tier: 'never' };
  }
  if (METADATA_NAMES.has(name)) return { reason: 'cloud metadata endpoint', tier: 'never' };
  const never = NEVER_SUFFIXES.find((s) => hasSuffix(name, s));
  if (never) return { reason: `reserved name (.${never})`, tier: 'never' };
  if (hasSuffix(name, 'localhost')) return { reason: 'loopback name (localhost)', tier: 'private' };
  const local = LOCAL_SUFFIXES.find((s) => hasSuffix(name, s));
  if (local) return { reason: `private-use name (.${local})`, tier: 'private' };
  // A dotless name is completed by the resolver's search list, i.e. it names something on the local network.
  if (!name.includes('.')) return { reason: 'single-label hostname', tier: 'private' };
  return undefined;
}

// ---------------------------------------------------------------------------------------------------
// URLs
// ---------------------------------------------------------------------------------------------------

const refuse = (url: string, reason: string): RelayVerdict => ({ ok: false, url, reason });

/** Enough of the raw input to recognise it in a log, never a stranger's megabyte. */
function forLog(raw: string): string {
  return raw.length > MAX_RELAY_URL_LENGTH ? `${raw.slice(0, MAX_RELAY_URL_LENGTH)}…` : raw;
}

/**
 * The canonical form used for comparing and dialling: lowercase scheme and host (done by URL), no
 * default port (done by URL), no trailing dot on the host, no repeated or trailing slash, no fragment.
 */
function normalise(u: URL, host: string): string {
  const path = u.pathname.replace(/\/{2,}/g, '/').replace(/\/$/, '');
  const port = u.port === '' ? '' : `:${u.port}`;
  return `${u.protocol}//${host}${port}${path}${u.search}`;
}

function effectivePort(u: URL): number {
  if (u.port !== '') return Number(u.port);
  return u.protocol === 'wss:' ? 443 : 80;
}

/**
 * Judges one relay URL from an untrusted source. On success `url` is the normalised form: dial that
 * string, never the raw one, since other parsers may read odd input differently.
 */
export function checkRelayUrl(raw: string, policy: RelayPolicy): RelayVerdict {
  if (typeof raw !== 'string') return refuse(forLog(String(raw)), 'not a string');
  const text = raw.trim();
  if (text.length === 0) return refuse(raw, 'empty');
  if (text.length > MAX_RELAY_URL_LENGTH) return refuse(forLog(text), `longer than ${MAX_RELAY_URL_LENGTH} characters`);
  // URL silently drops inner tabs and newlines; a URL that needs them is not one we want to guess about.
  if (/[\u0000-\u0020\u007f]/.test(text)) return refuse(text, 'contains whitespace or control characters');

  let u: URL;
  try {
    u = new URL(text);
  } catch {
    return refuse(text, 'not a valid URL');
  }

  const schemeOk = u.protocol === 'wss:' || (policy.allowPrivate && u.protocol === 'ws:');
  if (!schemeOk) return refuse(text, `scheme ${u.protocol} not allowed (wss:// only)`);
  if (u.username !== '' || u.password !== '') return refuse(text, 'credentials (user:pass@) not allowed');

  // URL has already decoded decimal, hex, octal and short IPv4 forms (2130706433, 0x7f.1, 0177.0.0.1,
  // 127.1) into a dotted quad, and IPv6 into its compressed form in brackets; only the trailing dot
  // of a fully-qualified name is left to strip.
  const host = u.hostname.startsWith('[') ? u.hostname : u.hostname.replace(/\.$/, '');
  const url = normalise(u, host);
  if (url.length > MAX_RELAY_URL_LENGTH) return refuse(forLog(url), `longer than ${MAX_RELAY_URL_LENGTH} characters`);

  const port = effectivePort(u);
  if (port === 0) return refuse(url, 'port 0');

  const bare = host.replace(/^\[(.*)\]$/, '$1');
  const hostClass = isIP(bare) !== 0 ? classifyAddress(bare) : classifyName(bare);
  if (hostClass === undefined) return { ok: true, url };
  if (hostClass.tier === 'never' || !policy.allowPrivate) return refuse(url, hostClass.reason);
  // A private host is allowed now, but it may be this very machine: never let Timmy dial itself.
  if (policy.ownPorts.includes(port)) return refuse(url, `the daemon's own port ${port} on a local host: ${hostClass.reason}`);
  return { ok: true, url };
}

/**
 * Judges a request's relay list: duplicates (after normalisation) collapse silently, and at most
 * policy.maxRelays URLs are accepted, in the order given; acceptable ones past that are refused.
 */
export function filterRelayUrls(
  raws: readonly string[],
  policy: RelayPolicy,
): { accepted: string[]; refused: { url: string; reason: string }[] } {
  const accepted: string[] = [];
  const refused: { url: string; reason: string }[] = [];
  const seen = new Set<string>();
  const max = Math.max(0, Math.floor(policy.maxRelays));
  for (const raw of Array.isArray(raws) ? raws : []) {
    const verdict = checkRelayUrl(raw, policy);
    if (seen.has(verdict.url)) continue;
    seen.add(verdict.url);
    if (!verdict.ok) refused.push({ url: verdict.url, reason: verdict.reason });
    else if (accepted.length >= max) refused.push({ url: verdict.url, reason: 'too many relays' });
    else accepted.push(verdict.url);
  }
  return { accepted, refused };
}

/**
 * A relay URL as it may be shown (logs, /api/info, /api/healthz, /metrics labels): credentials in the
 * userinfo and the query (tokens) replaced by `***`. A URL without either is returned as written.
 */
export function redactRelayUrl(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return '[unparseable relay URL]';
  }
  if (!u.username && !u.password && !u.search) return url;
  const path = u.pathname === '/' && !url.replace(/^[a-z]+:\/\/[^/]*/i, '').startsWith('/') ? '' : u.pathname;
  return `${u.protocol}//${u.username || u.password ? '***@' : ''}${u.host}${path}${u.search ? '?***' : ''}`;
}
