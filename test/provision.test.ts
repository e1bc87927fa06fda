// The provisioning layer: real SSH/Nostr secrets checked with the real ssh-keygen, the stub, and the
// DigitalOcean provisioner (with Tailscale) against local fakes that speak their wire formats.
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { nip19 } from 'nostr-tools';
import { getPublicKey } from 'nostr-tools/pure';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { DigitalOceanProvisioner, type DigitalOceanProvisionerOptions } from '../src/provision/digitalocean.ts';
import { ProvisionError, type NodeSecrets, type NodeSpec } from '../src/core/ports.ts';
import { md5Fingerprint, parsePublicKey } from '../src/provision/ssh-keys.ts';
import { StubProvisioner, stubIp } from '../src/provision/stub.ts';
import { TailscaleClient } from '../src/provision/tailscale.ts';
import { startFakeDigitalOcean, type FakeDigitalOcean, type FakeDigitalOceanOptions } from './fakes/digitalocean.ts';
import { startFakeTailscale, type FakeTailscale } from './fakes/tailscale.ts';
import { tempDir } from './helpers/procs.ts';

const SSH_KEYGEN = '/usr/bin/ssh-keygen';
const dir = tempDir('timmy-provision-');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const cleanups: (() => Promise<void>)[] = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

let fileSeq = 0;
function writeSecret(content: string): string {
  const file = join(dir, `f${++fileSeq}`);
  writeFileSync(file, content, { mode: 0o600 });
  return file;
}

/** A real customer key made by ssh-keygen. */
function customerKey(type: 'ed25519' | 'rsa' | 'ecdsa', bits?: number): string {
  const file = join(dir, `cust${++fileSeq}`);
  execFileSync(SSH_KEYGEN, ['-q', '-t', type, ...(bits ? ['-b', String(bits)] : []), '-N', '', '-C', 'alice@laptop', '-f', file]);
  return readFileSync(`${file}.pub`, 'utf8').trim();
}

const INSTANCE = 'a1'.repeat(32); // this Timmy's pubkey (hex)
const OTHER_INSTANCE = 'b2'.repeat(32);
const jobId = (n: number) => `${n.toString(16).padStart(8, '0')}${'ab'.repeat(28)}`; // 64 hex, like an event id
const spec = (n: number, extra: Partial<NodeSpec> = {}): NodeSpec => ({ jobId: jobId(n), size: '', region: '', ...extra });

describe('secrets (shared by every provisioner)', () => {
  const stub = new StubProvisioner({ delayMs: 0 });

  it('generates an ed25519 key that ssh-keygen reads, derives the same public key from, and signs with', () => {
    const s = stub.prepareSecrets(spec(1));
    expect(s.sshPrivateKey).toMatch(/^-----BEGIN OPENSSH PRIVATE KEY-----\n[A-Za-z0-9+/=\n]+\n-----END OPENSSH PRIVATE KEY-----\n$/);
    expect(s.sshPublicKey).toMatch(/^ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI[A-Za-z0-9+/]+=* timmy-node-00000001$/);
    const keyFile = writeSecret(s.sshPrivateKey!);
    const derived = execFileSync(SSH_KEYGEN, ['-y', '-f', keyFile]).toString().trim();
    expect(derived.split(' ').slice(0, 2).join(' ')).toBe(s.sshPublicKey.split(' ').slice(0, 2).join(' '));

    // -y reads the public half stored in the file; a signature proves the private half matches it.
    const data = writeSecret('hello node');
    execFileSync(SSH_KEYGEN, ['-Y', 'sign', '-q', '-f', keyFile, '-n', 'timmy', data], { stdio: 'pipe' });
    const signers = writeSecret(`timmy@node ${s.sshPublicKey}\n`);
    const out = execFileSync(SSH_KEYGEN, ['-Y', 'verify', '-f', signers, '-I', 'timmy@node', '-n', 'timmy', '-s', `${data}.sig`], {
      input: 'hello node',
    }).toString();
    expect(out).toContain('Good "timmy" signature');

    // DigitalOcean's fingerprint format is ssh-keygen's MD5 one.
    const pubFile = writeSecret(`${s.sshPublicKey}\n`);
    const md5 = execFileSync(SSH_KEYGEN, ['-l', '-E', 'md5', '-f', pubFile]).toString().split(' ')[1];
    expect(`MD5:${md5Fingerprint(parsePublicKey(s.sshPublicKey).blob)}`).toBe(md5);
  });

  it('gives every node its own valid Nostr keypair', () => {
    const a = stub.prepareSecrets(spec(2));
    const b = stub.prepareSecrets(spec(2));
    const d = nip19.decode(a.nodeNsec);
    expect(d.type).toBe('nsec');
    expect(nip19.npubEncode(getPublicKey(d.data as Uint8Array))).toBe(a.nodeNpub);
    expect(a.nodeNsec).not.toBe(b.nodeNsec);
    expect(a.sshPublicKey).not.toBe(b.sshPublicKey);
  });

  it("with the customer's key (ed25519, RSA, ECDSA) no private key is ever made", () => {
    for (const key of [customerKey('ed25519'), customerKey('rsa', 3072), customerKey('ecdsa', 256), customerKey('ecdsa', 521)]) {
      expect(() => stub.validatePublicKey(key)).not.toThrow();
      const s = stub.prepareSecrets(spec(3, { customerSshKey: `  ${key}\n` }));
      expect(s.sshPrivateKey).toBeNull();
      expect(s.sshPublicKey).toBe(key);
    }
  });

  it('refuses garbage customer keys with a ProvisionError that does not echo them', () => {
    const good = customerKey('ed25519');
    const [type, b64] = good.split(' ') as [string, string];
    const rsaBlob = customerKey('rsa', 3072).split(' ')[1]!;
    const bad = [
      '',
      'hello',
      'ssh-ed25519',
      `ssh-ed25519 ${b64.slice(0, -8)}`, // truncated blob
      `ssh-ed25519 ${b64}!!`,
      `ssh-ed25519 ${rsaBlob}`, // type and blob disagree
      `ssh-dss ${b64}`,
      `sk-ssh-ed25519@openssh.com ${b64}`,
      `command="rm -rf /" ${good}`, // authorized_keys options
      `${good}\n${good}`,
      `${type} ${b64} evil\u0007bell`,
      customerKey('rsa', 1024),
      `-----BEGIN OPENSSH PRIVATE KEY-----\n${b64}\n-----END OPENSSH PRIVATE KEY-----`,
    ];
    for (const line of bad) {
      let err: unknown;
      try {
        stub.prepareSecrets(spec(4, { customerSshKey: line }));
      } catch (e) {
        err = e;
      }
      expect(err, JSON.stringify(line)).toBeInstanceOf(ProvisionError);
      expect((err as Error).message).toMatch(/^ssh_key: /);
      if (b64.length > 0) expect((err as Error).message).not.toContain(b64.slice(0, 20));
      expect(() => stub.validatePublicKey(line)).toThrow(ProvisionError);
    }
    expect(() => stub.validatePublicKey(customerKey('rsa', 1024))).toThrow(/at least 2048 bits/);
  });
});

describe('StubProvisioner', () => {
  it('answers a TEST-NET-1 address and a stub tailnet name after its delay', async () => {
    const stub = new StubProvisioner({ delayMs: 20 });
    const s = spec(5);
    const progress: string[] = [];
    const started = Date.now();
    const node = await stub.provision(s, stub.prepareSecrets(s), { onProgress: (m) => progress.push(m) });
    expect(Date.now() - started).toBeGreaterThanOrEqual(15);
    expect(node).toEqual({ ip: stubIp(s.jobId), tailscaleHostname: 'timmy-node-00000005.tail-stub.ts.net', sshUser: 'root', dropletId: null });
    expect(node.ip).toMatch(/^192\.0\.2\.(\d+)$/);
    const last = Number(node.ip.split('.')[3]);
    expect(last).toBeGreaterThanOrEqual(1);
    expect(last).toBeLessThanOrEqual(254);
    expect(stubIp(s.jobId)).toBe(node.ip);
    expect(progress.length).toBeGreaterThan(0);
  });

  it('stops waiting when aborted', async () => {
    const stub = new StubProvisioner({ delayMs: 60_000 });
    const ac = new AbortController();
    const p = stub.provision(spec(6), stub.prepareSecrets(spec(6)), { signal: ac.signal });
    ac.abort();
    await expect(p).rejects.toThrow(/abort/i);
  });
});

describe('DigitalOceanProvisioner (local fakes)', () => {
  const FAST = { pollStartMs: 5, pollMaxIntervalMs: 20, pollCapMs: 10_000 };

  async function setup(
    fakeOpts: FakeDigitalOceanOptions = {},
    withTailscale = false,
    provOpts: Partial<DigitalOceanProvisionerOptions> = {},
  ): Promise<{ fake: FakeDigitalOcean; ts: FakeTailscale | null; prov: DigitalOceanProvisioner }> {
    const fake = await startFakeDigitalOcean(fakeOpts);
    cleanups.push(() => fake.close());
    let ts: FakeTailscale | null = null;
    if (withTailscale) {
      ts = await startFakeTailscale({ tailnet: 'example.com' });
      cleanups.push(() => ts!.close());
    }
    const prov = new DigitalOceanProvisioner({
      token: fake.token,
      apiUrl: fake.url,
      region: 'nyc3',
      size: 's-2vcpu-4gb',
      image: 'ubuntu-24-04-x64',
      instance: INSTANCE,
      tailscale: ts ? new TailscaleClient({ apiKey: ts.apiKey, tailnet: ts.tailnet, apiUrl: ts.url, tags: ['tag:bitcoin-node'] }) : undefined,
      ...FAST,
      ...provOpts,
    });
    return { fake, ts, prov };
  }

  const dropletPolls = (fake: FakeDigitalOcean) => fake.requests.filter((r) => r.method === 'GET' && /^\/v2\/droplets\/\d+$/.test(r.path)).length;

  it('uploads the key, mints a Tailscale key, creates the droplet with user_data and a job tag, polls until the IP shows', async () => {
    const { fake, ts, prov } = await setup({ ipAfterPolls: 3 }, true);
    const s = spec(7, { region: 'fra1', size: 's-4vcpu-8gb' });
    const secrets = prov.prepareSecrets(s);
    const progress: string[] = [];
    const node = await prov.provision(s, secrets, { onProgress: (m) => progress.push(m) });

    expect(fake.droplets).toHaveLength(1);
    const d = fake.droplets[0]!;
    expect(node).toEqual({ ip: fake.ipOf(d.id), tailscaleHostname: 'timmy-node-00000007', sshUser: 'root', dropletId: String(d.id) });
    expect(dropletPolls(fake)).toBe(4); // ipAfterPolls 3: three looks without an address, the 4th has it

    // The key went up once, and the droplet embeds it by id.
    expect(fake.keys).toHaveLength(1);
    expect(fake.keys[0]!.public_key).toBe(secrets.sshPublicKey);
    expect(d.ssh_keys).toEqual([fake.keys[0]!.id]);
    // Per-job region/size win over the defaults; the rest is as asked.
    expect(d).toMatchObject({ name: 'timmy-node-00000007', region: 'fra1', size: 's-4vcpu-8gb', image: 'ubuntu-24-04-x64', tags: [`timmy-job-${s.jobId}`, `timmy-instance-${INSTANCE}`], ipv6: false, monitoring: true });

    // Tailscale: one single-use, pre-authorized key whose secret is in the first-boot script.
    expect(ts!.keys).toHaveLength(1);
    const authKey = ts!.keys[0]!;
    expect(authKey).toMatchObject({ reusable: false, ephemeral: false, preauthorized: true, tags: ['tag:bitcoin-node'], expirySeconds: 3600 });
    expect(ts!.requests[0]!.auth).toBe('bearer');
    expect(d.user_data).toMatch(/^#cloud-config\n/);
    expect(d.user_data).toContain(`tailscale up --auth-key=file:/root/.timmy-node/tailscale-auth.key --hostname=timmy-node-00000007`);
    expect(d.user_data).toContain(`\n      ${authKey.key}\n`); // in its 0600 file, not on the command line
    expect(d.user_data).toContain(`nsec=${secrets.nodeNsec}`);
    // The SSH private key never travels to DigitalOcean.
    expect(JSON.stringify(fake.requests)).not.toContain('PRIVATE KEY');
    expect(JSON.stringify(fake.requests)).not.toContain(secrets.sshPrivateKey!.split('\n')[2]);
    expect(fake.requests.every((r) => r.auth === 'ok')).toBe(true);
    expect(progress).toEqual(expect.arrayContaining(['uploading the SSH key', 'creating a Tailscale auth key', 'creating the server']));
  });

  it('without Tailscale: no auth key, no tailscale in the script, tailscaleHostname null; defaults for region and size', async () => {
    const { fake, prov } = await setup({ ipAfterPolls: 0 });
    const s = spec(8);
    const node = await prov.provision(s, prov.prepareSecrets(s));
    const d = fake.droplets[0]!;
    expect(node.tailscaleHostname).toBeNull();
    expect(node.ip).toBe(fake.ipOf(d.id));
    expect(d).toMatchObject({ region: 'nyc3', size: 's-2vcpu-4gb' });
    expect(d.user_data).not.toContain('tailscale');
  });

  it('a restart finds the droplet by its job tag and polls it: still exactly one droplet', async () => {
    const { fake, ts, prov } = await setup({ ipAfterPolls: 1000 }, true, { pollCapMs: 50 });
    const s = spec(9);
    const secrets = prov.prepareSecrets(s);
    // First run: the droplet is created but no IP shows within the cap (a crash would end it the same way).
    await expect(prov.provision(s, secrets)).rejects.toThrow(/no public IPv4 address after/);
    expect(fake.droplets).toHaveLength(1);

    // Second run (after a restart), with an IP now two looks away.
    const restarted = new DigitalOceanProvisioner({
      token: fake.token,
      apiUrl: fake.url,
      region: 'nyc3',
      size: 's-2vcpu-4gb',
      image: 'ubuntu-24-04-x64',
      instance: INSTANCE,
      tailscale: new TailscaleClient({ apiKey: ts!.apiKey, tailnet: ts!.tailnet, apiUrl: ts!.url }),
      ...FAST,
    });
    const d = fake.droplets[0]!;
    d.polls = 1000 - 2;
    const posts = () => fake.requests.filter((r) => r.method === 'POST').length;
    const postsBefore = posts();
    const node = await restarted.provision(s, secrets);
    expect(node).toMatchObject({ ip: fake.ipOf(d.id), dropletId: String(d.id), tailscaleHostname: 'timmy-node-00000009' });
    expect(fake.droplets).toHaveLength(1);
    expect(posts()).toBe(postsBefore); // no key upload, no create
    expect(ts!.keys).toHaveLength(1); // and no second Tailscale key

    // A third call once the droplet is up answers straight from the tag lookup.
    const again = await restarted.provision(s, secrets);
    expect(again).toEqual(node);
    expect(fake.droplets).toHaveLength(1);
  });

  it('a key already on the account is found by its MD5 fingerprint', async () => {
    const { fake, prov } = await setup({ ipAfterPolls: 0 });
    const key = customerKey('ed25519');
    await prov.provision(spec(10), prov.prepareSecrets(spec(10, { customerSshKey: key })));
    const n2 = await prov.provision(spec(11), prov.prepareSecrets(spec(11, { customerSshKey: key })));
    expect(fake.keys).toHaveLength(1);
    expect(fake.droplets).toHaveLength(2);
    expect(fake.droplets.map((d) => d.ssh_keys)).toEqual([[fake.keys[0]!.id], [fake.keys[0]!.id]]);
    expect(n2.ip).toBe(fake.ipOf(fake.droplets[1]!.id));
    const lookup = fake.requests.find((r) => r.method === 'GET' && r.path.startsWith('/v2/account/keys/'));
    expect(decodeURIComponent(lookup!.path.split('/').pop()!)).toBe(fake.keys[0]!.fingerprint);
    expect(fake.keys[0]!.fingerprint).toMatch(/^([0-9a-f]{2}:){15}[0-9a-f]{2}$/);
  });

  it("a DigitalOcean refusal becomes a ProvisionError carrying DO's message, never the token", async () => {
    const { fake, prov } = await setup();
    fake.failCreate(422, 'unprocessable_entity', 'Size is not available in this region.');
    const s = spec(12);
    const err = await prov.provision(s, prov.prepareSecrets(s)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ProvisionError);
    const pe = err as ProvisionError;
    expect(pe.message).toBe('DigitalOcean refused to create the server: Size is not available in this region.');
    expect(pe).toMatchObject({ status: 422, code: 'unprocessable_entity' });
    expect(pe.requestId).toMatch(/^[0-9a-f-]{36}$/);
    expect(pe.message).not.toContain(fake.token);
    expect(fake.droplets).toHaveLength(0);
  });

  it('a wrong token is "Unable to authenticate you", and neither token shows in the error', async () => {
    const { fake } = await setup();
    const wrong = 'dop_v1_wrongwrongwrongwrong';
    const prov = new DigitalOceanProvisioner({ token: wrong, apiUrl: fake.url, region: 'nyc3', size: 's-2vcpu-4gb', image: 'ubuntu-24-04-x64', instance: INSTANCE, ...FAST });
    const s = spec(13);
    const err = (await prov.provision(s, prov.prepareSecrets(s)).catch((e: unknown) => e)) as ProvisionError;
    expect(err).toBeInstanceOf(ProvisionError);
    expect(err.message).toBe('DigitalOcean refused to list servers: Unable to authenticate you');
    expect(err.status).toBe(401);
    expect(`${err.message} ${err.stack}`).not.toContain(wrong);
    expect(`${err.message} ${err.stack}`).not.toContain(fake.token);
    expect(fake.requests.map((r) => r.auth)).toEqual(['wrong']);
  });

  it('an unreachable API is a ProvisionError too, without the token', async () => {
    const { fake } = await setup();
    await fake.close();
    const prov = new DigitalOceanProvisioner({ token: fake.token, apiUrl: fake.url, region: 'nyc3', size: 's-2vcpu-4gb', image: 'ubuntu-24-04-x64', instance: INSTANCE, ...FAST });
    const err = (await prov.provision(spec(14), prov.prepareSecrets(spec(14))).catch((e: unknown) => e)) as ProvisionError;
    expect(err).toBeInstanceOf(ProvisionError);
    expect(err.message).toMatch(/^DigitalOcean could not be reached to list servers/);
    expect(err.message).not.toContain(fake.token);
  });

  it('a Tailscale refusal stops before any droplet exists', async () => {
    const { fake } = await setup();
    const ts = await startFakeTailscale();
    cleanups.push(() => ts.close());
    const prov = new DigitalOceanProvisioner({
      token: fake.token,
      apiUrl: fake.url,
      region: 'nyc3',
      size: 's-2vcpu-4gb',
      image: 'ubuntu-24-04-x64',
      instance: INSTANCE,
      tailscale: new TailscaleClient({ apiKey: 'tskey-api-wrong', tailnet: ts.tailnet, apiUrl: ts.url }),
      ...FAST,
    });
    const err = (await prov.provision(spec(15), prov.prepareSecrets(spec(15))).catch((e: unknown) => e)) as ProvisionError;
    expect(err).toBeInstanceOf(ProvisionError);
    expect(err.message).toBe('Tailscale refused to create an auth key: API token invalid');
    expect(err.message).not.toContain('tskey-api-wrong');
    expect(fake.droplets).toHaveLength(0);
  });

  it('stops polling when aborted', async () => {
    const { fake, prov } = await setup({ ipAfterPolls: 1_000_000 }, false, { pollStartMs: 10_000, pollMaxIntervalMs: 10_000, pollCapMs: 60_000 });
    const ac = new AbortController();
    const s = spec(16);
    const p = prov.provision(s, prov.prepareSecrets(s), { signal: ac.signal, onProgress: (m) => m.startsWith('waiting') && ac.abort() });
    await expect(p).rejects.toThrow(/abort/i);
    expect(fake.droplets).toHaveLength(1);
  });
});

describe('DigitalOcean clean-up: list every page, destroy only our own', () => {
  const FAST = { pollStartMs: 5, pollMaxIntervalMs: 20, pollCapMs: 10_000, destroyRetryMs: [5, 5] };

  async function setup(instance = INSTANCE) {
    const fake = await startFakeDigitalOcean({ ipAfterPolls: 0 });
    cleanups.push(() => fake.close());
    const prov = new DigitalOceanProvisioner({ token: fake.token, apiUrl: fake.url, region: 'nyc3', size: 's-2vcpu-4gb', image: 'ubuntu-24-04-x64', instance, ...FAST });
    /** A droplet made straight through the API (another Timmy, an older version, a person). */
    const make = (name: string, tags: string[]) =>
      prov.client.createDroplet({ name, region: 'nyc3', size: 's-1vcpu-1gb', image: 'ubuntu-24-04-x64', sshKeyIds: [], tags, userData: '' });
    return { fake, prov, make };
  }

  it('the fake pages like DigitalOcean: per_page, links.pages.next, meta.total; 400 past 200 per page', async () => {
    const { fake, make } = await setup();
    for (let i = 0; i < 5; i++) await make(`d${i}`, ['t']);
    await make('other', ['u']);
    const get = async (q: string) => (await fetch(`${fake.url}/v2/droplets?${q}`, { headers: { authorization: `Bearer ${fake.token}` } }));
    const p1 = (await (await get('tag_name=t&per_page=2')).json()) as { droplets: { name: string }[]; links: { pages?: { next?: string } }; meta: { total: number } };
    expect(p1.droplets.map((d) => d.name)).toEqual(['d0', 'd1']);
    expect(p1.meta.total).toBe(5);
    expect(new URL(p1.links.pages!.next!).searchParams.get('page')).toBe('2');
    const p3 = (await (await get('tag_name=t&per_page=2&page=3')).json()) as typeof p1;
    expect(p3.droplets.map((d) => d.name)).toEqual(['d4']);
    expect(p3.links.pages?.next).toBeUndefined();
    expect((await get('per_page=201')).status).toBe(400);
    expect((await get('')).status).toBe(200);
  });

  it('lists every page (more than 200 droplets) and names the job of each of ours, and only ours', async () => {
    const { prov, make } = await setup();
    for (let i = 0; i < 203; i++) await make(`n${i}`, [`timmy-job-${jobId(1000 + i)}`, `timmy-instance-${INSTANCE}`]);
    await make('theirs', [`timmy-job-${jobId(5000)}`, `timmy-instance-${OTHER_INSTANCE}`]);
    const nodes = await prov.listNodes();
    expect(nodes).toHaveLength(203);
    expect(new Set(nodes.map((n) => n.jobId))).toEqual(new Set(Array.from({ length: 203 }, (_, i) => jobId(1000 + i))));
    expect(nodes.every((n) => typeof n.createdAtMs === 'number' && n.createdAtMs > 0)).toBe(true);
  });

  it("destroy takes the job's droplets by id (also a second one from a lost create, and a pre-instance-tag one), never another Timmy's", async () => {
    const { fake, prov, make } = await setup();
    const job = jobId(77);
    const mine = await make('mine', [`timmy-job-${job}`, `timmy-instance-${INSTANCE}`]);
    const lost = await make('lost', [`timmy-job-${job}`, `timmy-instance-${INSTANCE}`]);
    const legacy = await make('legacy', [`timmy-job-${job}`]);
    const theirs = await make('theirs', [`timmy-job-${job}`, `timmy-instance-${OTHER_INSTANCE}`]);
    const unrelated = await make('unrelated', [`timmy-job-${jobId(78)}`, `timmy-instance-${INSTANCE}`]);
    expect(await prov.destroy(job)).toBe(3);
    expect(fake.deleted.map((d) => d.id).sort()).toEqual([mine.id, lost.id, legacy.id].sort());
    expect(fake.droplets.map((d) => d.id).sort()).toEqual([theirs.id, unrelated.id].sort());
    expect(fake.requests.filter((r) => r.method === 'DELETE').map((r) => r.path).every((p) => /^\/v2\/droplets\/\d+$/.test(p))).toBe(true);
    // Nothing left: a second call finds nothing and destroys nothing.
    expect(await prov.destroy(job)).toBe(0);
  });

  it('destroy tries transient failures three times, then throws; a refusal is not retried', async () => {
    const { fake, prov, make } = await setup();
    const job = jobId(79);
    await make('x', [`timmy-job-${job}`, `timmy-instance-${INSTANCE}`]);
    const deletes = () => fake.requests.filter((r) => r.method === 'DELETE').length;
    fake.failDelete(503);
    await expect(prov.destroy(job)).rejects.toThrow(/DigitalOcean refused to destroy the server/);
    expect(deletes()).toBe(3);
    fake.failDelete(403, 'forbidden', 'You do not have access for the attempted action.');
    await expect(prov.destroy(job)).rejects.toMatchObject({ status: 403 });
    expect(deletes()).toBe(4);
    fake.failDelete(null);
    expect(await prov.destroy(job)).toBe(1);
    expect(fake.droplets).toHaveLength(0);
  });

  it("a restart never adopts another Timmy's droplet that carries the same job tag", async () => {
    const { fake, prov, make } = await setup();
    const s = spec(80);
    const theirs = await make('theirs', [`timmy-job-${s.jobId}`, `timmy-instance-${OTHER_INSTANCE}`]);
    const node = await prov.provision(s, prov.prepareSecrets(s));
    expect(node.dropletId).not.toBe(String(theirs.id));
    expect(fake.droplets).toHaveLength(2);
  });

  it('the fake deletes by tag (204, only that tag), refuses a tagless bulk delete (422) and unknown ids (404)', async () => {
    const { fake, make } = await setup();
    await make('a', ['gone']);
    await make('b', ['gone', 'x']);
    const keep = await make('c', ['x']);
    const del = (path: string) => fetch(`${fake.url}${path}`, { method: 'DELETE', headers: { authorization: `Bearer ${fake.token}` } });
    expect((await del('/v2/droplets')).status).toBe(422);
    const r = await del('/v2/droplets?tag_name=gone');
    expect(r.status).toBe(204);
    expect(await r.text()).toBe('');
    expect(fake.droplets.map((d) => d.id)).toEqual([keep.id]);
    expect((await del('/v2/droplets/1')).status).toBe(404);
    expect((await fetch(`${fake.url}/v2/droplets/${keep.id}`, { method: 'DELETE' })).status).toBe(401);
    expect(fake.droplets).toHaveLength(1);
  });
});

describe('TailscaleClient', () => {
  it('also works against the default tailnet "-" and never puts the API key in an error', async () => {
    const ts = await startFakeTailscale();
    cleanups.push(() => ts.close());
    const ok = new TailscaleClient({ apiKey: ts.apiKey, apiUrl: ts.url });
    const key = await ok.createAuthKey({ description: 'timmy node timmy-node-abc' });
    expect(key).toBe(ts.keys[0]!.key);
    expect(ts.requests[0]!.path).toBe('/api/v2/tailnet/-/keys');
    const wrongNet = new TailscaleClient({ apiKey: ts.apiKey, tailnet: 'other.net', apiUrl: ts.url });
    await expect(wrongNet.createAuthKey({ description: 'x' })).rejects.toThrow('Tailscale refused to create an auth key: tailnet not found');
  });
});

// Keep the NodeSecrets import honest: prepareSecrets' shape is the contract the core seals.
const _shape: (s: NodeSecrets) => [string | null, string, string, string] = (s) => [s.sshPrivateKey, s.sshPublicKey, s.nodeNsec, s.nodeNpub];
void _shape;
