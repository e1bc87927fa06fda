// A local fake of Tailscale's API v2 key-creation endpoint on 127.0.0.1 (tailscale/tailscale api.md,
// "Create a new key for a tailnet"):
// - the API key travels as `Authorization: Bearer <key>` or as the Basic-auth username with an empty
//   password; anything else is 401 {"message": ...};
// - POST /api/v2/tailnet/{tailnet}/keys, tailnet = the configured name or "-" (the key's own tailnet);
// - body {capabilities: {devices: {create: {reusable, ephemeral, preauthorized, tags?}}}, expirySeconds?,
//   description?} (description: at most 50 of letters, digits, spaces, hyphens, underscores), else 400;
// - 200 {id, key: "tskey-auth-<id>-<secret>", created, expires, capabilities, description}.
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

const DEFAULT_EXPIRY_S = 90 * 24 * 3600; // "Defaults to 90d"
const DESCRIPTION = /^[A-Za-z0-9 _-]{0,50}$/;
const TAG = /^tag:[A-Za-z0-9-]+$/;

export interface FakeAuthKey {
  id: string;
  key: string;
  tailnet: string;
  reusable: boolean;
  ephemeral: boolean;
  preauthorized: boolean;
  tags: string[];
  expirySeconds: number;
  description: string;
}

export interface FakeTailscale {
  url: string;
  apiKey: string;
  tailnet: string;
  /** Auth keys minted so far, secrets included (so tests can look for them elsewhere). */
  keys: FakeAuthKey[];
  requests: Array<{ method: string; path: string; status: number; auth: 'bearer' | 'basic' | 'wrong' | 'none' }>;
  close(): Promise<void>;
}

function authOf(header: string | undefined, apiKey: string): 'bearer' | 'basic' | 'wrong' | 'none' {
  if (header === undefined) return 'none';
  if (header === `Bearer ${apiKey}`) return 'bearer';
  if (header === `Basic ${Buffer.from(`${apiKey}:`).toString('base64')}`) return 'basic';
  return 'wrong';
}

export async function startFakeTailscale(opts: { apiKey?: string; tailnet?: string } = {}): Promise<FakeTailscale> {
  const apiKey = opts.apiKey ?? `tskey-api-k${randomBytes(6).toString('hex')}CNTRL-${randomBytes(16).toString('hex')}`;
  const tailnet = opts.tailnet ?? 'example.com';
  const keys: FakeAuthKey[] = [];
  const requests: FakeTailscale['requests'] = [];

  function send(res: ServerResponse, status: number, body: unknown): number {
    res.writeHead(status, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
    return status;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const rec = { method: req.method ?? 'GET', path: url.pathname, status: 0, auth: authOf(req.headers.authorization, apiKey) };
    requests.push(rec);
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    if (rec.auth === 'none' || rec.auth === 'wrong') {
      rec.status = send(res, 401, { message: 'API token invalid' });
      return;
    }
    const m = /^\/api\/v2\/tailnet\/([^/]+)\/keys$/.exec(url.pathname);
    if (req.method !== 'POST' || !m) {
      rec.status = send(res, 404, { message: 'not found' });
      return;
    }
    const net = decodeURIComponent(m[1]!);
    if (net !== '-' && net !== tailnet) {
      rec.status = send(res, 404, { message: 'tailnet not found' });
      return;
    }
    let body: {
      capabilities?: { devices?: { create?: { reusable?: unknown; ephemeral?: unknown; preauthorized?: unknown; tags?: unknown } } };
      expirySeconds?: unknown;
      description?: unknown;
    };
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      rec.status = send(res, 400, { message: 'invalid JSON body' });
      return;
    }
    const create = body.capabilities?.devices?.create;
    if (!create || typeof create !== 'object') {
      rec.status = send(res, 400, { message: 'capabilities.devices.create is required' });
      return;
    }
    const tags = create.tags ?? [];
    if (!Array.isArray(tags) || !tags.every((t) => typeof t === 'string' && TAG.test(t))) {
      rec.status = send(res, 400, { message: 'invalid tags' });
      return;
    }
    const description = body.description ?? '';
    if (typeof description !== 'string' || !DESCRIPTION.test(description)) {
      rec.status = send(res, 400, { message: 'description must be at most 50 alphanumeric characters, hyphens or underscores' });
      return;
    }
    const expirySeconds = body.expirySeconds ?? DEFAULT_EXPIRY_S;
    if (typeof expirySeconds !== 'number' || !Number.isInteger(expirySeconds) || expirySeconds < 0) {
      rec.status = send(res, 400, { message: 'invalid expirySeconds' });
      return;
    }
    const id = `k${randomBytes(6).toString('hex')}CNTRL`;
    const key: FakeAuthKey = {
      id,
      key: `tskey-auth-${id}-${randomBytes(16).toString('hex')}`,
      tailnet,
      reusable: create.reusable === true,
      ephemeral: create.ephemeral === true,
      preauthorized: create.preauthorized === true,
      tags: tags as string[],
      expirySeconds,
      description,
    };
    keys.push(key);
    const now = Date.now();
    rec.status = send(res, 200, {
      id,
      key: key.key,
      created: new Date(now).toISOString(),
      expires: new Date(now + expirySeconds * 1000).toISOString(),
      capabilities: { devices: { create: { reusable: key.reusable, ephemeral: key.ephemeral, preauthorized: key.preauthorized, tags: key.tags } } },
      description,
    });
  }

  const server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) send(res, 500, { message: 'internal error' });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    apiKey,
    tailnet,
    keys,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
