// The SSRF policy for relay URLs named by strangers. Pure: every case here is decided without DNS or sockets
// (the last test checks that nothing tried to connect).
import { Socket } from 'node:net';
import { domainToASCII } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi, type MockInstance } from 'vitest';
import { checkRelayUrl, classifyAddress, filterRelayUrls, isPublicAddress, MAX_RELAY_URL_LENGTH, redactRelayUrl, type RelayPolicy } from './relay-policy.ts';

const OWN_HTTP = 8080;
const OWN_RELAY = 7777;
const STRICT: RelayPolicy = { allowPrivate: false, ownPorts: [OWN_HTTP, OWN_RELAY], maxRelays: 3 };
const PRIVATE_OK: RelayPolicy = { ...STRICT, allowPrivate: true };

let connectSpy: MockInstance;
beforeAll(() => {
  connectSpy = vi.spyOn(Socket.prototype, 'connect');
});
afterAll(() => {
  expect(connectSpy).not.toHaveBeenCalled();
  connectSpy.mockRestore();
});

describe('checkRelayUrl: accepted and normalised', () => {
  // [raw, normalised]
  const cases: [string, string][] = [
    ['wss://relay.damus.io', 'wss://relay.damus.io'],
    ['wss://relay.damus.io/', 'wss://relay.damus.io'],
    ['WSS://Relay.Damus.IO/', 'wss://relay.damus.io'],
    ['wss://relay.damus.io:443/', 'wss://relay.damus.io'],
    ['  wss://nos.lol  ', 'wss://nos.lol'],
    ['wss://relay.example.com.', 'wss://relay.example.com'], // fully-qualified trailing dot
    ['wss://relay.nostr.band:8443/', 'wss://relay.nostr.band:8443'],
    ['wss://relay.nostr.band:80', 'wss://relay.nostr.band:80'], // 80 is not the default for wss
    ['wss://nostr.example.org/relay/', 'wss://nostr.example.org/relay'],
    ['wss://nostr.example.org//a//b/', 'wss://nostr.example.org/a/b'],
    ['wss://nostr.example.org/?token=abc#frag', 'wss://nostr.example.org?token=abc'],
    ['wss://ünïcode.example.com', `wss://${domainToASCII('ünïcode.example.com')}`], // IDNA as URL does it
    ['wss://8.8.8.8', 'wss://8.8.8.8'],
    ['wss://134744072', 'wss://8.8.8.8'], // decimal form of a public address is fine once normalised
    ['wss://[2606:4700:4700::1111]/', 'wss://[2606:4700:4700::1111]'],
    ['wss://[::ffff:8.8.8.8]', 'wss://[::ffff:808:808]'],
    ['wss://[64:ff9b::8.8.8.8]', 'wss://[64:ff9b::808:808]'], // NAT64 of a public IPv4
    ['wss://relay_1.example.com', 'wss://relay_1.example.com'],
  ];
  it.each(cases)('%s -> %s', (raw, url) => {
    expect(checkRelayUrl(raw, STRICT)).toEqual({ ok: true, url });
  });
});

describe('checkRelayUrl: refused by default, whatever the spelling', () => {
  // [raw, normalised url in the verdict, reason contains]
  const cases: [string, string, string][] = [
    // scheme
    ['ws://relay.damus.io', 'ws://relay.damus.io', 'scheme ws:'],
    ['https://relay.damus.io', 'https://relay.damus.io', 'scheme https:'],
    ['http://relay.damus.io', 'http://relay.damus.io', 'scheme http:'],
    ['file:///etc/passwd', 'file:///etc/passwd', 'scheme file:'],
    ['javascript:alert(1)', 'javascript:alert(1)', 'scheme javascript:'],
    // IPv4 loopback, and every encoding WHATWG URL folds into 127.0.0.1
    ['wss://127.0.0.1', 'wss://127.0.0.1', 'loopback address (127.0.0.0/8)'],
    ['wss://127.0.0.1:7777', 'wss://127.0.0.1:7777', 'loopback'],
    ['wss://127.255.255.254', 'wss://127.255.255.254', 'loopback'],
    ['wss://2130706433', 'wss://127.0.0.1', 'loopback'], // decimal
    ['wss://0x7f000001', 'wss://127.0.0.1', 'loopback'], // hex
    ['wss://0x7f.1', 'wss://127.0.0.1', 'loopback'], // hex, short
    ['wss://0177.0.0.1', 'wss://127.0.0.1', 'loopback'], // octal
    ['wss://127.000.000.001', 'wss://127.0.0.1', 'loopback'], // zero-padded
    ['wss://127.1', 'wss://127.0.0.1', 'loopback'], // short form
    ['wss://127.0.0.1.', 'wss://127.0.0.1', 'loopback'], // trailing dot
    ['wss://%31%32%37.0.0.1', 'wss://127.0.0.1', 'loopback'], // percent-encoded
    ['wss://127\u30020\u30020\u30021', 'wss://127.0.0.1', 'loopback'], // ideographic full stops
    // unspecified, "this network"
    ['wss://0.0.0.0', 'wss://0.0.0.0', 'unspecified address'],
    ['wss://0', 'wss://0.0.0.0', 'unspecified address'],
    ['wss://0.1.2.3', 'wss://0.1.2.3', '"this network"'],
    // private, CGNAT, link-local, metadata
    ['wss://10.0.0.1', 'wss://10.0.0.1', 'private address (10.0.0.0/8)'],
    ['wss://172.16.0.1', 'wss://172.16.0.1', 'private address (172.16.0.0/12)'],
    ['wss://172.31.255.255', 'wss://172.31.255.255', 'private address (172.16.0.0/12)'],
    ['wss://192.168.1.1', 'wss://192.168.1.1', 'private address (192.168.0.0/16)'],
    ['wss://3232235777', 'wss://192.168.1.1', 'private address (192.168.0.0/16)'],
    ['wss://100.64.0.1', 'wss://100.64.0.1', 'carrier-grade NAT'],
    ['wss://100.127.255.254', 'wss://100.127.255.254', 'carrier-grade NAT'],
    ['wss://169.254.1.1', 'wss://169.254.1.1', 'link-local address (169.254.0.0/16)'],
    ['wss://169.254.169.254', 'wss://169.254.169.254', 'cloud metadata endpoint'],
    ['wss://100.100.100.200', 'wss://100.100.100.200', 'cloud metadata endpoint'],
    ['wss://[fd00:ec2::254]', 'wss://[fd00:ec2::254]', 'cloud metadata endpoint'],
    ['wss://metadata.google.internal', 'wss://metadata.google.internal', 'cloud metadata endpoint'],
    // special-purpose IPv4
    ['wss://192.0.0.8', 'wss://192.0.0.8', 'IETF protocol assignment'],
    ['wss://192.0.2.1', 'wss://192.0.2.1', 'documentation address'],
    ['wss://198.51.100.7', 'wss://198.51.100.7', 'documentation address'],
    ['wss://203.0.113.9', 'wss://203.0.113.9', 'documentation address'],
    ['wss://198.18.0.1', 'wss://198.18.0.1', 'benchmarking address'],
    ['wss://198.19.255.255', 'wss://198.19.255.255', 'benchmarking address'],
    ['wss://192.88.99.1', 'wss://192.88.99.1', '6to4 relay anycast'],
    ['wss://224.0.0.1', 'wss://224.0.0.1', 'multicast address'],
    ['wss://239.255.255.250', 'wss://239.255.255.250', 'multicast address'],
    ['wss://240.0.0.1', 'wss://240.0.0.1', 'reserved address (240.0.0.0/4)'],
    ['wss://255.255.255.255', 'wss://255.255.255.255', 'broadcast address'],
    ['wss://4294967295', 'wss://255.255.255.255', 'broadcast address'],
    // IPv6
    ['wss://[::1]', 'wss://[::1]', 'loopback address (::1/128)'],
    ['wss://[0:0:0:0:0:0:0:1]', 'wss://[::1]', 'loopback address (::1/128)'],
    ['wss://[::]', 'wss://[::]', 'unspecified address (::/128)'],
    ['wss://[fe80::1]', 'wss://[fe80::1]', 'link-local address (fe80::/10)'],
    ['wss://[febf::1]', 'wss://[febf::1]', 'link-local address (fe80::/10)'],
    ['wss://[fc00::1]', 'wss://[fc00::1]', 'unique-local address (fc00::/7)'],
    ['wss://[fd12:3456::1]', 'wss://[fd12:3456::1]', 'unique-local address (fc00::/7)'],
    ['wss://[fec0::1]', 'wss://[fec0::1]', 'site-local'],
    ['wss://[ff02::1]', 'wss://[ff02::1]', 'multicast address (ff00::/8)'],
    ['wss://[2001:db8::1]', 'wss://[2001:db8::1]', 'documentation address'],
    ['wss://[3fff::1]', 'wss://[3fff::1]', 'documentation address'],
    ['wss://[2001:2::1]', 'wss://[2001:2::1]', 'benchmarking address'],
    ['wss://[2001::1]', 'wss://[2001::1]', 'Teredo'],
    ['wss://[100::1]', 'wss://[100::1]', 'discard-only'],
    ['wss://[4000::1]', 'wss://[4000::1]', 'outside 2000::/3'],
    // IPv4 embedded in IPv6
    ['wss://[::ffff:127.0.0.1]', 'wss://[::ffff:7f00:1]', 'IPv4-mapped IPv6 address (::ffff:0:0/96) embedding 127.0.0.1, a loopback'],
    ['wss://[::ffff:7f00:1]', 'wss://[::ffff:7f00:1]', 'embedding 127.0.0.1, a loopback'],
    ['wss://[0:0:0:0:0:ffff:127.0.0.1]', 'wss://[::ffff:7f00:1]', 'embedding 127.0.0.1'],
    ['wss://[::ffff:10.0.0.1]', 'wss://[::ffff:a00:1]', 'embedding 10.0.0.1, a private address'],
    ['wss://[::ffff:169.254.169.254]', 'wss://[::ffff:a9fe:a9fe]', 'embedding 169.254.169.254, a cloud metadata'],
    ['wss://[::ffff:0.0.0.0]', 'wss://[::ffff:0:0]', 'embedding 0.0.0.0, a unspecified'],
    ['wss://[::127.0.0.1]', 'wss://[::7f00:1]', 'IPv4-compatible IPv6 address (::/96) embedding 127.0.0.1'],
    ['wss://[::7f00:1]', 'wss://[::7f00:1]', 'IPv4-compatible'],
    ['wss://[::8.8.8.8]', 'wss://[::808:808]', 'IPv4-compatible IPv6 address (::/96)'], // obsolete even when public
    ['wss://[::ffff:0:7f00:1]', 'wss://[::ffff:0:7f00:1]', 'IPv4-translated'],
    ['wss://[64:ff9b::127.0.0.1]', 'wss://[64:ff9b::7f00:1]', 'NAT64 address (64:ff9b::/96) embedding 127.0.0.1'],
    ['wss://[64:ff9b::10.0.0.1]', 'wss://[64:ff9b::a00:1]', 'NAT64 address (64:ff9b::/96) embedding 10.0.0.1, a private'],
    ['wss://[64:ff9b::c0a8:101]', 'wss://[64:ff9b::c0a8:101]', 'embedding 192.168.1.1'],
    ['wss://[64:ff9b:1::1]', 'wss://[64:ff9b:1::1]', 'local-use NAT64'],
    ['wss://[2002:7f00:1::1]', 'wss://[2002:7f00:1::1]', '6to4 address (2002::/16) embedding 127.0.0.1'],
    ['wss://[2002:c0a8:101::]', 'wss://[2002:c0a8:101::]', '6to4 address (2002::/16) embedding 192.168.1.1'],
    // local names
    ['wss://localhost', 'wss://localhost', 'loopback name (localhost)'],
    ['wss://LOCALHOST.', 'wss://localhost', 'loopback name (localhost)'],
    ['wss://\u24dbocalhost', 'wss://localhost', 'loopback name (localhost)'], // circled l, folded by IDNA
    ['wss://relay.localhost', 'wss://relay.localhost', 'loopback name (localhost)'],
    ['wss://printer.local', 'wss://printer.local', 'private-use name (.local)'],
    ['wss://db.internal', 'wss://db.internal', 'private-use name (.internal)'],
    ['wss://nas.home.arpa', 'wss://nas.home.arpa', 'private-use name (.home.arpa)'],
    ['wss://router.lan', 'wss://router.lan', 'private-use name (.lan)'],
    ['wss://relay', 'wss://relay', 'single-label hostname'],
    ['wss://relay.', 'wss://relay', 'single-label hostname'],
    ['wss://relay.invalid', 'wss://relay.invalid', 'reserved name (.invalid)'],
    // malformed hostnames URL lets through
    ['wss://a!b.com', 'wss://a!b.com', 'invalid hostname'],
    ['wss://a..b.com', 'wss://a..b.com', 'invalid hostname'],
    ['wss://.relay.com', 'wss://.relay.com', 'invalid hostname'],
    ['wss://-relay.com', 'wss://-relay.com', 'invalid hostname'],
    ['wss://relay.com..', 'wss://relay.com.', 'invalid hostname'],
    // credentials
    ['wss://user:pass@relay.damus.io', 'wss://user:pass@relay.damus.io', 'credentials'],
    ['wss://user@relay.damus.io', 'wss://user@relay.damus.io', 'credentials'],
    ['wss://:pass@relay.damus.io', 'wss://:pass@relay.damus.io', 'credentials'],
    ['wss://relay.damus.io@127.0.0.1', 'wss://relay.damus.io@127.0.0.1', 'credentials'],
    // port
    ['wss://relay.damus.io:0', 'wss://relay.damus.io:0', 'port 0'],
  ];
  it.each(cases)('%s', (raw, url, reason) => {
    const v = checkRelayUrl(raw, STRICT);
    expect(v.ok).toBe(false);
    expect(v.url).toBe(url);
    if (!v.ok) expect(v.reason).toContain(reason);
  });

  it('reads a backslash as a path separator, exactly as the websocket client will', () => {
    expect(checkRelayUrl('wss://evil.com\\@127.0.0.1', STRICT)).toEqual({ ok: true, url: 'wss://evil.com/@127.0.0.1' });
  });
});

describe('checkRelayUrl: garbage', () => {
  const long = `wss://relay.example.com/${'a'.repeat(MAX_RELAY_URL_LENGTH)}`;
  // [raw, reason contains]
  const cases: [string, string][] = [
    ['', 'empty'],
    ['   ', 'empty'],
    ['relay.damus.io', 'not a valid URL'],
    ['//relay.damus.io', 'not a valid URL'],
    ['wss://', 'not a valid URL'],
    ['wss://[::1', 'not a valid URL'],
    ['wss://[fe80::1%25eth0]', 'not a valid URL'], // zone ids are not URL syntax
    ['wss://1.2.3.4.5', 'not a valid URL'],
    ['wss://0x100000000', 'not a valid URL'],
    ['wss://256.0.0.1', 'not a valid URL'],
    ['wss://relay.damus.io:65536', 'not a valid URL'],
    ['wss://relay.damus.io:-1', 'not a valid URL'],
    ['wss://re lay.damus.io', 'whitespace or control'],
    ['wss://relay\n.damus.io', 'whitespace or control'], // URL would silently drop the newline
    ['wss://relay.damus.io/a\tb', 'whitespace or control'],
    ['wss://relay.damus.io/\u0000', 'whitespace or control'],
    ['\u{1f4a9}', 'not a valid URL'],
    [long, `longer than ${MAX_RELAY_URL_LENGTH}`],
  ];
  it.each(cases)('%j', (raw, reason) => {
    const v = checkRelayUrl(raw, STRICT);
    expect(v.ok).toBe(false);
    if (!v.ok) expect(v.reason).toContain(reason);
    expect(v.url.length).toBeLessThanOrEqual(MAX_RELAY_URL_LENGTH + 1); // never echoes a stranger's megabyte
  });

  it('refuses non-strings that slipped past the type system', () => {
    expect(checkRelayUrl(42 as unknown as string, STRICT)).toEqual({ ok: false, url: '42', reason: 'not a string' });
    expect(checkRelayUrl(null as unknown as string, STRICT).ok).toBe(false);
  });
});

describe('checkRelayUrl with allowPrivate (ALLOW_PRIVATE_RELAYS=1)', () => {
  const accepted: [string, string][] = [
    ['ws://relay.damus.io', 'ws://relay.damus.io'],
    ['ws://relay.damus.io:80/', 'ws://relay.damus.io'],
    ['ws://127.0.0.1:4848', 'ws://127.0.0.1:4848'],
    ['ws://0x7f.1:4848', 'ws://127.0.0.1:4848'],
    ['wss://localhost', 'wss://localhost'],
    ['ws://localhost:10547/', 'ws://localhost:10547'],
    ['ws://[::1]:4848', 'ws://[::1]:4848'],
    ['ws://[::ffff:127.0.0.1]:4848', 'ws://[::ffff:7f00:1]:4848'],
    ['ws://10.0.0.5:7000', 'ws://10.0.0.5:7000'],
    ['ws://100.64.1.1:7000', 'ws://100.64.1.1:7000'],
    ['ws://[fd00::5]:7000', 'ws://[fd00::5]:7000'],
    ['ws://relay:7000', 'ws://relay:7000'], // docker-compose service name
    ['ws://relay.lan:7000', 'ws://relay.lan:7000'],
  ];
  it.each(accepted)('accepts %s', (raw, url) => {
    expect(checkRelayUrl(raw, PRIVATE_OK)).toEqual({ ok: true, url });
  });

  // Still refused: no relay lives there, or it is the daemon itself.
  const refused: [string, string][] = [
    ['ws://127.0.0.1:8080', `own port ${OWN_HTTP}`],
    ['ws://127.0.0.1:7777', `own port ${OWN_RELAY}`],
    ['ws://localhost:7777/', `own port ${OWN_RELAY}`],
    ['ws://2130706433:7777', `own port ${OWN_RELAY}`],
    ['ws://127.1:8080', `own port ${OWN_HTTP}`],
    ['ws://[::1]:8080', `own port ${OWN_HTTP}`],
    ['ws://[::ffff:127.0.0.1]:7777', `own port ${OWN_RELAY}`],
    ['ws://relay.localhost:7777', `own port ${OWN_RELAY}`],
    ['ws://192.168.1.20:7777', `own port ${OWN_RELAY}`], // may be this host's LAN address
    ['ws://myhost:8080', `own port ${OWN_HTTP}`],
    ['ws://0.0.0.0:4848', 'unspecified address'],
    ['ws://[::]:4848', 'unspecified address'],
    ['ws://169.254.169.254', 'cloud metadata endpoint'],
    ['ws://169.254.1.1:4848', 'link-local'],
    ['ws://[fe80::1]:4848', 'link-local'],
    ['ws://224.0.0.1:4848', 'multicast'],
    ['ws://255.255.255.255:4848', 'broadcast'],
    ['ws://metadata.google.internal', 'cloud metadata endpoint'],
    ['https://127.0.0.1:4848', 'scheme https:'],
    ['ws://user:pass@127.0.0.1:4848', 'credentials'],
  ];
  it.each(refused)('refuses %s', (raw, reason) => {
    const v = checkRelayUrl(raw, PRIVATE_OK);
    expect(v.ok).toBe(false);
    if (!v.ok) expect(v.reason).toContain(reason);
  });

  it('counts the default port as the port: an own port of 80 or 443 blocks the bare URL', () => {
    const policy: RelayPolicy = { ...PRIVATE_OK, ownPorts: [80, 443] };
    expect(checkRelayUrl('ws://127.0.0.1', policy)).toMatchObject({ ok: false, reason: expect.stringContaining('own port 80') });
    expect(checkRelayUrl('wss://localhost/', policy)).toMatchObject({ ok: false, reason: expect.stringContaining('own port 443') });
  });

  it('does not apply own ports to public hosts', () => {
    expect(checkRelayUrl('wss://relay.damus.io:7777', PRIVATE_OK)).toEqual({ ok: true, url: 'wss://relay.damus.io:7777' });
    expect(checkRelayUrl('wss://relay.damus.io:7777', STRICT)).toEqual({ ok: true, url: 'wss://relay.damus.io:7777' });
  });
});

describe('filterRelayUrls', () => {
  it('keeps at most maxRelays, in order, and refuses the rest as too many', () => {
    const r = filterRelayUrls(['wss://a.example.com', 'wss://b.example.com', 'wss://c.example.com', 'wss://d.example.com', 'wss://e.example.com'], STRICT);
    expect(r.accepted).toEqual(['wss://a.example.com', 'wss://b.example.com', 'wss://c.example.com']);
    expect(r.refused).toEqual([
      { url: 'wss://d.example.com', reason: 'too many relays' },
      { url: 'wss://e.example.com', reason: 'too many relays' },
    ]);
  });

  it('collapses duplicates after normalisation, so they take no slot', () => {
    const r = filterRelayUrls(
      ['wss://relay.damus.io', 'wss://relay.damus.io/', 'WSS://RELAY.DAMUS.IO:443', 'wss://relay.damus.io.', 'wss://nos.lol', 'wss://nos.lol/#x', 'wss://relay.nostr.band'],
      STRICT,
    );
    expect(r.accepted).toEqual(['wss://relay.damus.io', 'wss://nos.lol', 'wss://relay.nostr.band']);
    expect(r.refused).toEqual([]);
  });

  it('reports refusals with their reason, collapsing repeated refusals too, and they take no slot', () => {
    const r = filterRelayUrls(
      ['wss://127.0.0.1', 'wss://2130706433', 'ws://relay.damus.io', 'garbage', 'wss://a.example.com', 'wss://b.example.com', 'wss://c.example.com'],
      STRICT,
    );
    expect(r.accepted).toEqual(['wss://a.example.com', 'wss://b.example.com', 'wss://c.example.com']);
    expect(r.refused).toEqual([
      { url: 'wss://127.0.0.1', reason: 'loopback address (127.0.0.0/8)' },
      { url: 'ws://relay.damus.io', reason: 'scheme ws: not allowed (wss:// only)' },
      { url: 'garbage', reason: 'not a valid URL' },
    ]);
  });

  it('still names the real reason for a bad URL after the slots are full', () => {
    const r = filterRelayUrls(['wss://a.example.com', 'wss://b.example.com', 'wss://c.example.com', 'wss://10.0.0.1'], STRICT);
    expect(r.refused).toEqual([{ url: 'wss://10.0.0.1', reason: 'private address (10.0.0.0/8)' }]);
  });

  it('handles empty input, a zero cap and a non-array', () => {
    expect(filterRelayUrls([], STRICT)).toEqual({ accepted: [], refused: [] });
    expect(filterRelayUrls(['wss://a.example.com'], { ...STRICT, maxRelays: 0 })).toEqual({
      accepted: [],
      refused: [{ url: 'wss://a.example.com', reason: 'too many relays' }],
    });
    expect(filterRelayUrls('wss://a.example.com' as unknown as string[], STRICT)).toEqual({ accepted: [], refused: [] });
  });

  it('applies allowPrivate through to each URL', () => {
    const r = filterRelayUrls(['ws://127.0.0.1:4848', 'ws://127.0.0.1:7777', 'ws://localhost:4848/'], PRIVATE_OK);
    expect(r.accepted).toEqual(['ws://127.0.0.1:4848', 'ws://localhost:4848']);
    expect(r.refused).toEqual([{ url: 'ws://127.0.0.1:7777', reason: expect.stringContaining('own port 7777') }]);
  });
});

describe('isPublicAddress (for the resolved address, against DNS rebinding)', () => {
  const table: [string, boolean][] = [
    ['8.8.8.8', true],
    ['1.1.1.1', true],
    ['93.184.216.34', true],
    ['100.63.255.255', true], // just below CGNAT
    ['100.128.0.0', true], // just above CGNAT
    ['172.15.255.255', true], // just below 172.16/12
    ['172.32.0.0', true], // just above
    ['198.17.255.255', true], // just below benchmarking
    ['198.20.0.0', true], // just above
    ['223.255.255.255', true], // just below multicast
    ['2606:4700:4700::1111', true],
    ['2a00:1450:4001:82b::200e', true],
    ['::ffff:8.8.8.8', true],
    ['64:ff9b::808:808', true],
    ['2002:808:808::1', true],
    ['0.0.0.0', false],
    ['0.255.255.255', false],
    ['10.1.2.3', false],
    ['100.64.0.0', false],
    ['127.0.0.1', false],
    ['127.8.9.10', false],
    ['169.254.0.1', false],
    ['172.16.0.0', false],
    ['172.31.255.255', false],
    ['192.0.0.1', false],
    ['192.0.2.255', false],
    ['192.168.0.1', false],
    ['198.18.0.0', false],
    ['198.51.100.1', false],
    ['203.0.113.1', false],
    ['224.0.0.251', false],
    ['240.0.0.1', false],
    ['255.255.255.255', false],
    ['::', false],
    ['::1', false],
    ['::ffff:127.0.0.1', false],
    ['::ffff:7f00:1', false],
    ['::ffff:192.168.0.1', false],
    ['::127.0.0.1', false],
    ['::8.8.8.8', false],
    ['64:ff9b::7f00:1', false],
    ['64:ff9b::10.0.0.1', false],
    ['64:ff9b:1::808:808', false],
    ['2002:a00:1::', false],
    ['2001::1', false],
    ['2001:db8::1', false],
    ['fc00::1', false],
    ['fd00:ec2::254', false],
    ['fe80::1', false],
    ['fe80::1%eth0', false],
    ['fec0::1', false],
    ['ff02::1', false],
    ['4000::1', false],
    // not canonical addresses: refuse rather than guess how a resolver or socket would read them
    ['2130706433', false],
    ['0x7f.1', false],
    ['0177.0.0.1', false],
    ['127.1', false],
    ['[::1]', false],
    [' 8.8.8.8', false],
    ['localhost', false],
    ['', false],
    ['not an ip', false],
  ];
  it.each(table)('%s -> %s', (ip, expected) => {
    expect(isPublicAddress(ip)).toBe(expected);
  });

  it('explains why an address is not public', () => {
    expect(classifyAddress('127.0.0.1')).toEqual({ reason: 'loopback address (127.0.0.0/8)', tier: 'private' });
    expect(classifyAddress('169.254.169.254')).toEqual({ reason: 'cloud metadata endpoint (169.254.169.254/32)', tier: 'never' });
    expect(classifyAddress('nope')).toEqual({ reason: 'not an IP address', tier: 'never' });
    expect(classifyAddress('8.8.8.8')).toBeUndefined();
  });
});

describe('redactRelayUrl', () => {
  it('hides userinfo and query, keeps everything else as written', () => {
    expect(redactRelayUrl('wss://relay.example.com')).toBe('wss://relay.example.com');
    expect(redactRelayUrl('ws://127.0.0.1:7777')).toBe('ws://127.0.0.1:7777');
    expect(redactRelayUrl('wss://relay.example.com/nostr')).toBe('wss://relay.example.com/nostr');
    expect(redactRelayUrl('ws://user:pass@host.example:7000/?token=abc')).toBe('ws://***@host.example:7000/?***');
    expect(redactRelayUrl('wss://relay.example.com?auth=s3cret')).toBe('wss://relay.example.com?***');
    expect(redactRelayUrl('wss://alice@relay.example.com/inbox')).toBe('wss://***@relay.example.com/inbox');
  });
});
