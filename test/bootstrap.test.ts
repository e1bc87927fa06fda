// Node bootstrap: pay, provision (stub and a faithful DigitalOcean fake), deliver the credentials by
// NIP-17 DM or one HTTP claim, and erase them.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as nip17 from 'nostr-tools/nip17';
import { generateSecretKey } from 'nostr-tools/pure';
import { startDaemon, startRelay, tempDir, type DaemonProc, type RelayProc } from './helpers/procs.ts';
import { Customer, invoiceOf, payStub, queryRelay, status, tag } from './helpers/customer.ts';
import { readDb } from './helpers/store.ts';
import { waitFor } from './helpers/wait.ts';

let relay: RelayProc;
let inbox: RelayProc;
beforeAll(async () => {
  [relay, inbox] = await Promise.all([startRelay(), startRelay()]);
});
afterAll(async () => {
  await Promise.all([relay?.stop(), inbox?.stop()]);
});

const KEY_BLOCK = /-----BEGIN OPENSSH PRIVATE KEY-----[\s\S]+?-----END OPENSSH PRIVATE KEY-----/;

/** The whole database as bytes: main file and WAL. */
function dbBytes(dataDir: string): Buffer {
  const parts = ['timmy.db', 'timmy.db-wal'].map((f) => join(dataDir, f)).filter(existsSync);
  return Buffer.concat(parts.map((p) => readFileSync(p)));
}

async function order(c: Customer, timmy: string, params: string[][] = []) {
  const req = c.sign([['p', timmy], ...params], { kind: 5960 });
  await c.publish(req);
  return req;
}

describe('stub provisioner over Nostr', () => {
  let daemon: DaemonProc;
  beforeAll(async () => {
    daemon = await startDaemon({ relays: [relay.url], env: { ALLOW_PRIVATE_RELAYS: '1', STUB_PROVISION_DELAY_MS: '200' } });
  });
  afterAll(async () => {
    await daemon?.kill();
  });

  it('pay -> processing -> a NIP-17 DM with a working key to the 10050 inbox; public result has no secret; then erased', async () => {
    const c = await new Customer([relay.url], daemon.pubkey).connect();
    try {
      await c.publish(c.sign([['relay', inbox.url]], { kind: 10050 }));
      const req = await order(c, daemon.pubkey);
      const [fb] = await c.waitForFeedback(req.id, 'payment-required');
      expect(invoiceOf(fb!).msats).toBe(10_000_000); // BOOTSTRAP_FEE_SATS default
      await payStub(daemon.api, invoiceOf(fb!).bolt11);
      await c.waitForFeedback(req.id, 'processing');
      await c.waitForFeedback(req.id, 'success', 1, 20_000);

      const wraps = await waitFor(async () => {
        const w = await queryRelay(inbox.url, { kinds: [1059], '#p': [c.pubkey] });
        return w.length > 0 && w;
      }, 'gift wrap on the inbox relay');
      expect(wraps).toHaveLength(1);
      const rumor = nip17.unwrapEvent(wraps[0]!, c.sk);
      expect(rumor.pubkey).toBe(daemon.pubkey);
      expect(rumor.kind).toBe(14);
      expect(rumor.tags.find((t) => t[0] === 'e')?.[1]).toBe(req.id);
      expect(rumor.tags.find((t) => t[0] === 'subject')?.[1]).toBeTruthy();
      const key = KEY_BLOCK.exec(rumor.content)?.[0];
      expect(key).toBeDefined();
      const json = JSON.parse(/```json\n([\s\S]+?)\n```/.exec(rumor.content)![1]!);
      expect(Object.keys(json).sort()).toEqual(['ip', 'nextSteps', 'nodeNpub', 'nodeNsec', 'sshUser', 'tailscaleHostname']);
      expect(json.ip).toMatch(/^192\.0\.2\.\d+$/);
      const keyFile = join(tempDir(), 'id');
      writeFileSync(keyFile, `${key}\n`, { mode: 0o600 });
      const pub = execFileSync('ssh-keygen', ['-y', '-f', keyFile]).toString().trim();
      expect(pub.startsWith('ssh-ed25519 ')).toBe(true);

      // Another key cannot open it.
      expect(() => nip17.unwrapEvent(wraps[0]!, generateSecretKey())).toThrow();

      // The public result: facts only.
      const results = await queryRelay(relay.url, { kinds: [6960], '#e': [req.id] });
      expect(results).toHaveLength(1);
      expect(JSON.stringify(results[0])).not.toMatch(/PRIVATE KEY|nsec1/);
      expect(JSON.parse(results[0]!.content).ip).toBe(json.ip);
      // Nothing went to our own relay but the wrap's public envelope? No: DMs go to the inbox only.
      expect(await queryRelay(relay.url, { kinds: [1059], '#p': [c.pubkey] })).toHaveLength(0);

      // The inbox relay acked: delivered, and the database holds no trace of the key or the nsec.
      await waitFor(() => readDb(daemon.dataDir, (db) => (db.prepare('select state from bootstrap_jobs where id = ?').get(req.id) as { state: string }).state === 'delivered'), 'delivered');
      const body = key!.split('\n').slice(1, -1).join('');
      const bytes = dbBytes(daemon.dataDir);
      expect(bytes.includes(Buffer.from(body.slice(0, 40)))).toBe(false);
      expect(bytes.includes(Buffer.from(json.nodeNsec))).toBe(false);
    } finally {
      c.close();
    }
  });

  it("with the customer's own ssh_key no private key is generated or sent", async () => {
    const c = await new Customer([relay.url], daemon.pubkey).connect();
    try {
      const dir = tempDir();
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', join(dir, 'k')]);
      const pub = readFileSync(join(dir, 'k.pub'), 'utf8').trim();
      const req = await order(c, daemon.pubkey, [['param', 'ssh_key', pub]]);
      const [fb] = await c.waitForFeedback(req.id, 'payment-required');
      await payStub(daemon.api, invoiceOf(fb!).bolt11);
      await c.waitForFeedback(req.id, 'success', 1, 20_000);
      const wraps = await waitFor(async () => {
        const w = await queryRelay(relay.url, { kinds: [1059], '#p': [c.pubkey] });
        return w.length > 0 && w;
      }, 'gift wrap (no 10050: our relays)');
      const rumor = nip17.unwrapEvent(wraps[0]!, c.sk);
      expect(rumor.content).not.toMatch(/PRIVATE KEY/);
      expect(readDb(daemon.dataDir, (db) => (db.prepare('select ssh_public_key k from bootstrap_jobs where id = ?').get(req.id) as { k: string }).k)).toBe(pub);
      expect(dbBytes(daemon.dataDir).includes(Buffer.from('PRIVATE KEY'))).toBe(false);
    } finally {
      c.close();
    }
  });

  it('an unknown size or a garbage ssh_key is refused with error and no invoice', async () => {
    const c = await new Customer([relay.url], daemon.pubkey).connect();
    try {
      const a = await order(c, daemon.pubkey, [['param', 'size', 'huge']]);
      const [e1] = await c.waitForFeedback(a.id, 'error');
      expect(tag(e1!, 'status')?.[2]).toMatch(/unknown size "huge"/);
      const b = await order(c, daemon.pubkey, [['param', 'ssh_key', 'not a key']]);
      const [e2] = await c.waitForFeedback(b.id, 'error');
      expect(tag(e2!, 'status')?.[2]).toMatch(/key/i);
      expect(c.feedback(a.id, 'payment-required')).toHaveLength(0);
    } finally {
      c.close();
    }
  });
});

describe('HTTP claim (no 10050 list: kept until claimed)', () => {
  let daemon: DaemonProc;
  beforeAll(async () => {
    daemon = await startDaemon({ relays: [relay.url], env: { STUB_PROVISION_DELAY_MS: '100' } });
  });
  afterAll(async () => {
    await daemon?.kill();
  });

  it('the claim token gives the credentials once, then 410; a wrong token 401', async () => {
    const created = await fetch(`${daemon.api}/api/bootstrap`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(created.status).toBe(201);
    const o = (await created.json()) as { bootstrapJobId: string; claimToken: string; invoice: { paymentHash: string; amountSats: number } };
    expect(o.invoice.amountSats).toBe(10_000);
    await fetch(`${daemon.api}/api/dev/stub/pay/${o.invoice.paymentHash}`, { method: 'POST' });
    const ready = await waitFor(async () => {
      const r = (await (await fetch(`${daemon.api}/api/bootstrap/${o.bootstrapJobId}`)).json()) as { state: string; nextSteps: string[] };
      return r.state === 'ready' && r;
    }, 'ready', 20_000);
    expect(ready.nextSteps.length).toBeGreaterThan(0);
    const claim = (token: string) => fetch(`${daemon.api}/api/bootstrap/${o.bootstrapJobId}/claim`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    expect((await claim('wrong-token')).status).toBe(401);
    const first = await claim(o.claimToken);
    expect(first.status).toBe(200);
    const creds = (await first.json()) as { sshPrivateKey: string; nodeNsec: string; ip: string };
    expect(creds.sshPrivateKey).toMatch(KEY_BLOCK);
    expect(creds.nodeNsec).toMatch(/^nsec1/);
    expect((await claim(o.claimToken)).status).toBe(410);
    const after = (await (await fetch(`${daemon.api}/api/bootstrap/${o.bootstrapJobId}`)).json()) as { state: string; credentialsAvailable: boolean };
    expect(after).toMatchObject({ state: 'delivered', credentialsAvailable: false });
    expect(dbBytes(daemon.dataDir).includes(Buffer.from(creds.nodeNsec))).toBe(false);
  });
});

describe('CREDENTIAL_TTL_S', () => {
  it('without a 10050 list the sealed credentials are kept for the TTL, then erased', async () => {
    const d = await startDaemon({ relays: [relay.url], env: { STUB_PROVISION_DELAY_MS: '50', CREDENTIAL_TTL_S: '3' } });
    const c = await new Customer([relay.url], d.pubkey).connect();
    try {
      const req = await order(c, d.pubkey);
      const [fb] = await c.waitForFeedback(req.id, 'payment-required');
      await payStub(d.api, invoiceOf(fb!).bolt11);
      await c.waitForFeedback(req.id, 'success', 1, 20_000);
      const row = () => readDb(d.dataDir, (db) => db.prepare('select state, secrets_enc from bootstrap_jobs where id = ?').get(req.id)) as { state: string; secrets_enc: string | null };
      expect(row()).toMatchObject({ state: 'ready' });
      expect(row().secrets_enc).not.toBeNull(); // kept (sealed) so delivery can be retried or claimed
      await waitFor(() => row().secrets_enc === null, 'erased after the TTL', 15_000);
      expect(row().state).toBe('delivered');
    } finally {
      c.close();
      await d.kill();
    }
  });
});

describe('DigitalOcean (local fake)', () => {
  it('uploads the key, creates the droplet with user_data and a job tag, polls for the IP; a restart polls the same droplet', async () => {
    const { startFakeDigitalOcean } = await import('./fakes/digitalocean.ts');
    const fake = await startFakeDigitalOcean({ ipAfterPolls: 4 });
    const { startFakeTailscale } = await import('./fakes/tailscale.ts');
    const ts = await startFakeTailscale();
    const dataDir = tempDir();
    const env = { DO_API_TOKEN: fake.token, DO_API_URL: fake.url, DO_POLL_START_MS: '100', TAILSCALE_API_KEY: ts.apiKey, TAILSCALE_TAILNET: ts.tailnet, TAILSCALE_API_URL: ts.url };
    let d = await startDaemon({ relays: [relay.url], dataDir, env });
    const c = await new Customer([relay.url], d.pubkey).connect();
    try {
      const req = await order(c, d.pubkey);
      const [fb] = await c.waitForFeedback(req.id, 'payment-required');
      await payStub(d.api, invoiceOf(fb!).bolt11);
      await waitFor(() => fake.droplets.length === 1, 'droplet created');
      await d.kill('SIGKILL'); // mid-provisioning, before the IP showed up
      d = await startDaemon({ relays: [relay.url], dataDir, env });
      await c.waitForFeedback(req.id, 'success', 1, 30_000);
      expect(fake.droplets).toHaveLength(1);
      const droplet = fake.droplets[0]!;
      expect(droplet.tags).toContain(`timmy-job-${req.id}`);
      expect(droplet.user_data).toMatch(/^#cloud-config\n/);
      expect(fake.keys.length).toBeGreaterThanOrEqual(1);
      const result = (await queryRelay(relay.url, { kinds: [6960], '#e': [req.id] }))[0]!;
      expect(JSON.parse(result.content).ip).toBe(fake.ipOf(droplet.id));
      expect(JSON.stringify(fake.requests)).not.toContain('PRIVATE KEY');
      // The node joins the tailnet tagged, so the operator's ACL can fence it off (issue 14, item 1).
      expect(ts.keys.length).toBeGreaterThanOrEqual(1);
      for (const k of ts.keys) expect(k.tags).toEqual(['tag:timmy-node']);
    } finally {
      c.close();
      await d.kill();
      await fake.close();
      await ts.close();
    }
  });

  it("a DigitalOcean error ends in failed with DO's message and the fee credited", async () => {
    const { startFakeDigitalOcean } = await import('./fakes/digitalocean.ts');
    const fake = await startFakeDigitalOcean({});
    fake.failCreate(422, 'unprocessable_entity', 'Size is not available in this region.');
    const d = await startDaemon({ relays: [relay.url], env: { DO_API_TOKEN: fake.token, DO_API_URL: fake.url, DO_POLL_START_MS: '100' } });
    const c = await new Customer([relay.url], d.pubkey).connect();
    try {
      const req = await order(c, d.pubkey);
      const [fb] = await c.waitForFeedback(req.id, 'payment-required');
      await payStub(d.api, invoiceOf(fb!).bolt11);
      const [err] = await c.waitForFeedback(req.id, 'error', 1, 20_000);
      expect(tag(err!, 'status')?.[2]).toMatch(/Size is not available in this region\..*10000 sats credited/);
      expect(tag(err!, 'status')?.[2]).not.toContain(fake.token);
      const credit = readDb(d.dataDir, (db) => (db.prepare('select coalesce(sum(delta_msats),0) s from credits where account = ?').get(c.pubkey) as { s: number }).s);
      expect(credit).toBe(10_000_000);
      expect(status(err!)).toBe('error');
    } finally {
      c.close();
      await d.kill();
      await fake.close();
    }
  });
});

describe('DigitalOcean clean-up (issue 14, item 14b)', () => {
  type Order = { bootstrapJobId: string; claimToken: string };
  async function httpOrder(api: string): Promise<Order> {
    const r = await fetch(`${api}/api/bootstrap`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    expect(r.status).toBe(201);
    const o = (await r.json()) as Order & { invoice: { paymentHash: string } };
    expect((await fetch(`${api}/api/dev/stub/pay/${o.invoice.paymentHash}`, { method: 'POST' })).status).toBe(200);
    return o;
  }
  const stateOf = async (api: string, id: string) => ((await (await fetch(`${api}/api/bootstrap/${id}`)).json()) as { state: string }).state;
  const jobTag = (id: string) => `timmy-job-${id}`;

  it('a droplet whose IP never appears: the order fails, the fee is credited, and the droplet is destroyed', async () => {
    const { startFakeDigitalOcean } = await import('./fakes/digitalocean.ts');
    const fake = await startFakeDigitalOcean({ ipAfterPolls: Infinity });
    const d = await startDaemon({ relays: [relay.url], env: { DO_API_TOKEN: fake.token, DO_API_URL: fake.url, DO_POLL_START_MS: '100', DO_POLL_CAP_S: '1' } });
    try {
      const o = await httpOrder(d.api);
      await waitFor(async () => (await stateOf(d.api, o.bootstrapJobId)) === 'failed', 'failed', 20_000);
      const credit = readDb(d.dataDir, (db) => (db.prepare('select coalesce(sum(delta_msats),0) s from credits where account = ?').get(`bootstrap:${o.bootstrapJobId}`) as { s: number }).s);
      expect(credit).toBe(10_000_000);
      await waitFor(() => fake.deleted.length === 1, 'the droplet destroyed');
      expect(fake.droplets).toHaveLength(0);
      expect(fake.deleted[0]!.tags).toContain(jobTag(o.bootstrapJobId));
      expect(fake.requests.find((r) => r.method === 'DELETE')).toMatchObject({ path: `/v2/droplets/${fake.deleted[0]!.id}`, auth: 'ok', status: 204 });
      // The fake records the DELETE before its answer reaches the daemon, which logs after it: wait for the line.
      await waitFor(() => d.logs.some((l) => l.msg === 'destroyed the server of a node order that will not be delivered' && l.bootstrapId === o.bootstrapJobId), 'the destruction logged');
    } finally {
      await d.kill();
      await fake.close();
    }
  });

  it('at start, droplets of failed and unknown orders are destroyed; provisioning and delivered ones, and other Timmys\', are kept', async () => {
    const { startFakeDigitalOcean } = await import('./fakes/digitalocean.ts');
    const { DigitalOceanClient } = await import('../src/provision/digitalocean.ts');
    const fake = await startFakeDigitalOcean({ ipAfterPolls: 2 });
    const dataDir = tempDir();
    const env = (capS: number) => ({ DO_API_TOKEN: fake.token, DO_API_URL: fake.url, DO_POLL_START_MS: '100', DO_POLL_CAP_S: String(capS) });
    const dropletOf = (id: string) => [...fake.droplets, ...fake.deleted].find((x) => x.tags.includes(jobTag(id)))!;

    // First run: a delivered order, and a failed one whose droplet could not be destroyed (DO failing).
    let d = await startDaemon({ relays: [relay.url], dataDir, env: env(1) });
    const delivered = await httpOrder(d.api);
    await waitFor(async () => (await stateOf(d.api, delivered.bootstrapJobId)) === 'ready', 'ready', 20_000);
    const claim = await fetch(`${d.api}/api/bootstrap/${delivered.bootstrapJobId}/claim`, { method: 'POST', headers: { authorization: `Bearer ${delivered.claimToken}` } });
    expect(claim.status).toBe(200);
    expect(await stateOf(d.api, delivered.bootstrapJobId)).toBe('delivered');
    fake.failDelete(500);
    fake.setIpAfterPolls(Infinity);
    const failed = await httpOrder(d.api);
    await waitFor(async () => (await stateOf(d.api, failed.bootstrapJobId)) === 'failed', 'failed', 20_000);
    await waitFor(() => d.logs.some((l) => l.level === 50 && l.bootstrapId === failed.bootstrapJobId && String(l.msg).startsWith('could not destroy')), 'the destroy given up, loudly');
    await d.kill();

    // Second run (deletes still failing): an order left provisioning by a crash.
    d = await startDaemon({ relays: [relay.url], dataDir, env: env(600) });
    const provisioning = await httpOrder(d.api);
    await waitFor(() => fake.droplets.some((x) => x.tags.includes(jobTag(provisioning.bootstrapJobId))), 'droplet created');
    await d.kill('SIGKILL');
    fake.failDelete(null);

    // Droplets made meanwhile: one of ours for an order this store never had, one of another Timmy.
    const client = new DigitalOceanClient({ token: fake.token, apiUrl: fake.url });
    const make = (name: string, tags: string[]) => client.createDroplet({ name, region: 'nyc3', size: 's-1vcpu-1gb', image: 'ubuntu-24-04-x64', sshKeyIds: [], tags, userData: '' });
    const unknownId = 'c'.repeat(32);
    const unknown = await make('unknown', [jobTag(unknownId), `timmy-instance-${d.pubkey}`]);
    const theirs = await make('theirs', [jobTag('d'.repeat(32)), `timmy-instance-${'e'.repeat(64)}`]);
    expect(fake.deleted).toHaveLength(0);

    // Third start: the clean-up pass.
    d = await startDaemon({ relays: [relay.url], dataDir, env: env(600) });
    try {
      await waitFor(() => d.logs.some((l) => l.msg === 'server clean-up pass done'), 'clean-up pass');
      expect(d.logs.find((l) => l.msg === 'server clean-up pass done')).toMatchObject({ orders: 2 });
      expect(fake.deleted.map((x) => x.id).sort()).toEqual([dropletOf(failed.bootstrapJobId).id, unknown.id].sort());
      expect(fake.droplets.map((x) => x.id).sort()).toEqual([dropletOf(delivered.bootstrapJobId).id, dropletOf(provisioning.bootstrapJobId).id, theirs.id].sort());
      const destroyed = d.logs.filter((l) => l.msg === 'destroyed the server of a node order that will not be delivered');
      expect(destroyed.map((l) => [l.bootstrapId, l.state]).sort()).toEqual([[failed.bootstrapJobId, 'failed'], [unknownId, 'unknown to this store']].sort());
      expect(await stateOf(d.api, provisioning.bootstrapJobId)).toBe('provisioning');
      expect(await stateOf(d.api, delivered.bootstrapJobId)).toBe('delivered');
    } finally {
      await d.kill();
      await fake.close();
    }
  });
});
