// A local fake of the DigitalOcean API v2 on 127.0.0.1, faithful to DO's wire format for the calls
// Timmy makes (digitalocean/openapi specification/resources/{ssh_keys,droplets}, and errors seen in
// the wild: "Unable to authenticate you", "SSH Key is already in use on your account", "You specified
// invalid ssh key ids for Droplet creation."; other 422 wordings are modelled on those):
// - every call needs `Authorization: Bearer <token>`, else 401 {"id":"unauthorized","message":"Unable to authenticate you"};
// - errors are {"id", "message", "request_id"};
// - POST /v2/account/keys -> 201 {ssh_key: {id, fingerprint (MD5 colon hex), public_key, name}}, 422 when
//   the same key is already on the account or the key does not parse;
// - GET /v2/account/keys/{id|fingerprint} -> {ssh_key} or 404 not_found;
// - POST /v2/droplets -> 202 {droplet, links: {actions: [...]}}; the droplet starts `new` with no
//   networks and becomes `active` with a public (and a private) IPv4 once it has been looked at
//   `ipAfterPolls` times (GET /v2/droplets/{id} and every appearance in a list count);
// - GET /v2/droplets[?tag_name=][&page=&per_page=] -> {droplets, links: {pages: {first, prev, next, last}}, meta: {total}},
//   paginated (per_page default 20, at most 200; pages after the last are empty); GET /v2/droplets/{id} -> {droplet};
// - DELETE /v2/droplets/{id} -> 204 (no body), 404 for an unknown id; DELETE /v2/droplets?tag_name= -> 204
//   (every droplet with that tag; none is fine), 422 without tag_name (modelled wording).
import { createHash, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

const MAX_BODY_BYTES = 256 * 1024;
const MAX_USER_DATA_BYTES = 64 * 1024;
const KEY_TYPES = ['ssh-ed25519', 'ssh-rsa', 'ecdsa-sha2-nistp256', 'ecdsa-sha2-nistp384', 'ecdsa-sha2-nistp521'];
const SLUG = /^[a-z0-9-]+$/;
const TAG = /^[A-Za-z0-9_:-]{1,255}$/;
const DROPLET_NAME = /^[A-Za-z0-9.-]{1,255}$/;
const FIRST_DROPLET_ID = 400_000_001;
const FIRST_KEY_ID = 5_000_001;

export interface FakeDroplet {
  id: number;
  name: string;
  region: string;
  size: string;
  image: string | number;
  ssh_keys: Array<number | string>;
  tags: string[];
  user_data: string;
  ipv6: boolean;
  monitoring: boolean;
  created_at: string;
  /** How often the droplet has been looked at so far. */
  polls: number;
  /** Looks before its IPv4 shows up (the fake's setting when it was created; Infinity: never). */
  ipAfterPolls: number;
}

export interface FakeSshKey {
  id: number;
  fingerprint: string;
  public_key: string;
  name: string;
}

export interface RecordedDoRequest {
  method: string;
  /** Path and query. */
  path: string;
  auth: 'ok' | 'wrong' | 'none';
  status: number;
  /** The parsed JSON body (POSTs), user_data included. */
  body?: unknown;
}

export interface FakeDigitalOceanOptions {
  token?: string;
  /** Looks at a droplet before its IPv4 shows up; default 2. */
  ipAfterPolls?: number;
}

export interface FakeDigitalOcean {
  url: string;
  token: string;
  /** Droplets that exist (deleted ones move to `deleted`). */
  droplets: FakeDroplet[];
  deleted: FakeDroplet[];
  keys: FakeSshKey[];
  requests: RecordedDoRequest[];
  /** The public IPv4 the droplet has (or will get): 203.0.113.x (RFC 5737 TEST-NET-3). */
  ipOf(id: number): string;
  /** Every following POST /v2/droplets answers `status` {id, message} until cleared with failCreate(null). */
  failCreate(status: number | null, id?: string, message?: string): void;
  /** Every following DELETE answers `status` {id, message} until cleared with failDelete(null). */
  failDelete(status: number | null, id?: string, message?: string): void;
  /** Looks before the IPv4 shows up, for droplets created from now on (Infinity: never). */
  setIpAfterPolls(n: number): void;
  close(): Promise<void>;
}

function md5Colon(blob: Buffer): string {
  return createHash('md5').update(blob).digest('hex').match(/../g)!.join(':');
}

/** The key's blob when the text is `type base64 [comment]` whose blob names the same type; else null. */
function keyBlob(publicKey: string): Buffer | null {
  const m = /^(\S+) ([A-Za-z0-9+/]+={0,2})(?: .*)?$/.exec(publicKey.trim());
  if (!m || !KEY_TYPES.includes(m[1]!)) return null;
  const blob = Buffer.from(m[2]!, 'base64');
  if (blob.length < 4) return null;
  const len = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + len).toString('latin1') === m[1] ? blob : null;
}

export async function startFakeDigitalOcean(opts: FakeDigitalOceanOptions = {}): Promise<FakeDigitalOcean> {
  const token = opts.token ?? `dop_v1_${randomUUID().replace(/-/g, '')}`;
  let ipAfterPolls = opts.ipAfterPolls ?? 2;
  const droplets: FakeDroplet[] = [];
  const deleted: FakeDroplet[] = [];
  let nextDropletId = FIRST_DROPLET_ID;
  const keys: FakeSshKey[] = [];
  const requests: RecordedDoRequest[] = [];
  let createFailure: { status: number; id: string; message: string } | null = null;
  let deleteFailure: { status: number; id: string; message: string } | null = null;

  const ipOf = (id: number) => `203.0.113.${((id - FIRST_DROPLET_ID) % 254) + 1}`;

  /** DO's droplet object, as much of it as a client reads. Looking at it counts as a poll. */
  function view(d: FakeDroplet): Record<string, unknown> {
    d.polls += 1;
    const ready = d.polls > d.ipAfterPolls;
    return {
      id: d.id,
      name: d.name,
      memory: 4096,
      vcpus: 2,
      disk: 80,
      locked: false,
      status: ready ? 'active' : 'new',
      created_at: d.created_at,
      features: d.monitoring ? ['monitoring'] : [],
      image: { slug: d.image, distribution: 'Ubuntu' },
      size_slug: d.size,
      region: { slug: d.region, name: d.region, available: true },
      tags: d.tags,
      // The private address is listed first on purpose: clients must pick by type, not position.
      networks: {
        v4: ready
          ? [
              { ip_address: `10.10.0.${(d.id % 250) + 2}`, netmask: '255.255.0.0', gateway: '10.10.0.1', type: 'private' },
              { ip_address: ipOf(d.id), netmask: '255.255.255.0', gateway: '203.0.113.254', type: 'public' },
            ]
          : [],
        v6: [],
      },
      vpc_uuid: '760e09ef-dc84-11e8-981e-3cfdfeaae000',
    };
  }

  function send(res: ServerResponse, status: number, body?: unknown): void {
    res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'x-request-id': randomUUID() });
    res.end(body === undefined ? '' : JSON.stringify(body));
  }

  function fail(res: ServerResponse, status: number, id: string, message: string): number {
    send(res, status, { id, message, request_id: randomUUID() });
    return status;
  }

  async function readJson(req: IncomingMessage): Promise<unknown> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY_BYTES) throw new Error('too large');
      chunks.push(chunk as Buffer);
    }
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  }

  function createKey(res: ServerResponse, body: Record<string, unknown>): number {
    if (typeof body.name !== 'string' || body.name.length === 0) return fail(res, 422, 'unprocessable_entity', 'Name is required');
    if (typeof body.public_key !== 'string') return fail(res, 422, 'unprocessable_entity', 'Public key is required');
    const blob = keyBlob(body.public_key);
    if (!blob) return fail(res, 422, 'unprocessable_entity', "Key invalid, key should be of the form 'type key [comment]'");
    const fingerprint = md5Colon(blob);
    if (keys.some((k) => k.fingerprint === fingerprint)) return fail(res, 422, 'unprocessable_entity', 'SSH Key is already in use on your account');
    const key: FakeSshKey = { id: FIRST_KEY_ID + keys.length, fingerprint, public_key: body.public_key, name: body.name };
    keys.push(key);
    send(res, 201, { ssh_key: key });
    return 201;
  }

  function createDroplet(res: ServerResponse, body: Record<string, unknown>): number {
    if (createFailure) return fail(res, createFailure.status, createFailure.id, createFailure.message);
    const { name, region, size, image } = body;
    if (typeof name !== 'string' || !DROPLET_NAME.test(name)) return fail(res, 422, 'unprocessable_entity', 'Name is invalid; only a-z, A-Z, 0-9, . and - are allowed');
    if (typeof region !== 'string' || !SLUG.test(region)) return fail(res, 422, 'unprocessable_entity', 'You specified an invalid region for Droplet creation.');
    if (typeof size !== 'string' || !SLUG.test(size)) return fail(res, 422, 'unprocessable_entity', 'You specified an invalid size for Droplet creation.');
    if (!((typeof image === 'string' && SLUG.test(image)) || typeof image === 'number')) return fail(res, 422, 'unprocessable_entity', 'You specified an invalid image for Droplet creation.');
    const sshKeys = body.ssh_keys ?? [];
    if (!Array.isArray(sshKeys) || !sshKeys.every((k) => keys.some((x) => x.id === k || x.fingerprint === k))) {
      return fail(res, 422, 'unprocessable_entity', 'You specified invalid ssh key ids for Droplet creation.');
    }
    const tags = body.tags ?? [];
    if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string' && TAG.test(t))) {
      return fail(res, 422, 'unprocessable_entity', 'Tag names may only contain letters, numbers, colons, dashes, and underscores.');
    }
    const userData = body.user_data ?? '';
    if (typeof userData !== 'string' || Buffer.byteLength(userData) > MAX_USER_DATA_BYTES) {
      return fail(res, 422, 'unprocessable_entity', 'user_data must be plain text of at most 64 KiB.');
    }
    const d: FakeDroplet = {
      id: nextDropletId++,
      name,
      region,
      size,
      image: image as string | number,
      ssh_keys: sshKeys as Array<number | string>,
      tags: tags as string[],
      user_data: userData,
      ipv6: body.ipv6 === true,
      monitoring: body.monitoring === true,
      created_at: new Date().toISOString(),
      polls: 0,
      ipAfterPolls,
    };
    droplets.push(d);
    const created = view(d);
    d.polls -= 1; // the create answer itself is not a poll
    send(res, 202, { droplet: created, links: { actions: [{ id: d.id + 7, rel: 'create', href: `/v2/actions/${d.id + 7}` }] } });
    return 202;
  }

  function remove(d: FakeDroplet): void {
    droplets.splice(droplets.indexOf(d), 1);
    deleted.push(d);
  }

  /** DO's pagination: `page` from 1, `per_page` 1..200 (default 20); links.pages names the neighbours. */
  function listDroplets(res: ServerResponse, url: URL): number {
    const tag = url.searchParams.get('tag_name');
    const page = Number(url.searchParams.get('page') ?? '1');
    const perPage = Number(url.searchParams.get('per_page') ?? '20');
    if (!Number.isInteger(page) || page < 1) return fail(res, 400, 'bad_request', 'page must be a positive integer');
    if (!Number.isInteger(perPage) || perPage < 1 || perPage > 200) return fail(res, 400, 'bad_request', 'per_page must be between 1 and 200');
    const all = droplets.filter((d) => tag === null || d.tags.includes(tag));
    const last = Math.max(1, Math.ceil(all.length / perPage));
    const link = (p: number) => {
      const q = new URLSearchParams({ page: String(p), per_page: String(perPage), ...(tag === null ? {} : { tag_name: tag }) });
      return `https://api.digitalocean.com/v2/droplets?${q}`;
    };
    const pages: Record<string, string> = {};
    if (page > 1) Object.assign(pages, { first: link(1), prev: link(Math.min(page - 1, last)) });
    if (page < last) Object.assign(pages, { next: link(page + 1), last: link(last) });
    const list = all.slice((page - 1) * perPage, page * perPage).map(view);
    send(res, 200, { droplets: list, links: Object.keys(pages).length ? { pages } : {}, meta: { total: all.length } });
    return 200;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const header = req.headers.authorization;
    const auth: RecordedDoRequest['auth'] = header === undefined ? 'none' : header === `Bearer ${token}` ? 'ok' : 'wrong';
    const rec: RecordedDoRequest = { method: req.method ?? 'GET', path: url.pathname + url.search, auth, status: 0 };
    requests.push(rec); // recorded on arrival; `status` is filled in before the answer leaves
    if (auth !== 'ok') {
      rec.status = fail(res, 401, 'unauthorized', 'Unable to authenticate you');
      return;
    }
    let body: Record<string, unknown> = {};
    if (req.method === 'POST') {
      try {
        const parsed = await readJson(req);
        if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
        body = parsed as Record<string, unknown>;
        rec.body = parsed;
      } catch {
        rec.status = fail(res, 400, 'bad_request', 'unexpected end of JSON input');
        return;
      }
    }
    const path = url.pathname.replace(/\/+$/, '');
    const keyMatch = /^\/v2\/account\/keys\/([^/]+)$/.exec(path);
    const dropletMatch = /^\/v2\/droplets\/(\d+)$/.exec(path);
    if (req.method === 'POST' && path === '/v2/account/keys') {
      rec.status = createKey(res, body);
    } else if (req.method === 'GET' && keyMatch) {
      const ref = decodeURIComponent(keyMatch[1]!);
      const key = keys.find((k) => String(k.id) === ref || k.fingerprint === ref);
      if (key) send(res, (rec.status = 200), { ssh_key: key });
      else rec.status = fail(res, 404, 'not_found', 'The resource you were accessing could not be found.');
    } else if (req.method === 'POST' && path === '/v2/droplets') {
      rec.status = createDroplet(res, body);
    } else if (req.method === 'GET' && path === '/v2/droplets') {
      rec.status = listDroplets(res, url);
    } else if (req.method === 'DELETE' && path === '/v2/droplets') {
      const tag = url.searchParams.get('tag_name');
      if (deleteFailure) rec.status = fail(res, deleteFailure.status, deleteFailure.id, deleteFailure.message);
      else if (!tag) rec.status = fail(res, 422, 'unprocessable_entity', 'tag_name is required to delete Droplets by tag.');
      else {
        for (const d of droplets.filter((x) => x.tags.includes(tag))) remove(d);
        send(res, (rec.status = 204));
      }
    } else if (req.method === 'DELETE' && dropletMatch) {
      const d = droplets.find((x) => x.id === Number(dropletMatch[1]));
      if (deleteFailure) rec.status = fail(res, deleteFailure.status, deleteFailure.id, deleteFailure.message);
      else if (!d) rec.status = fail(res, 404, 'not_found', 'The resource you were accessing could not be found.');
      else {
        remove(d);
        send(res, (rec.status = 204));
      }
    } else if (req.method === 'GET' && dropletMatch) {
      const d = droplets.find((x) => x.id === Number(dropletMatch[1]));
      if (d) send(res, (rec.status = 200), { droplet: view(d) });
      else rec.status = fail(res, 404, 'not_found', 'The resource you were accessing could not be found.');
    } else {
      rec.status = fail(res, 404, 'not_found', 'The resource you were accessing could not be found.');
    }
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
        if (!res.headersSent) fail(res, 500, 'server_error', 'Server was unable to give you a response.');
      });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    token,
    droplets,
    deleted,
    keys,
    requests,
    ipOf,
    failCreate(status, id = 'unprocessable_entity', message = 'Size is not available in this region.') {
      createFailure = status === null ? null : { status, id, message };
    },
    failDelete(status, id = 'server_error', message = 'Server was unable to give you a response.') {
      deleteFailure = status === null ? null : { status, id, message };
    },
    setIpAfterPolls(n) {
      ipAfterPolls = n;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
