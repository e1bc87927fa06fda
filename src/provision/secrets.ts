// What a node needs before it exists: an SSH keypair (unless the customer brought a public key) and
// its own Nostr identity. Shared by every provisioner so the stub hands out real, usable secrets.
import { nip19 } from 'nostr-tools';
import { generateSecretKey, getPublicKey } from 'nostr-tools/pure';
import type { NodeSecrets, NodeSpec } from '../core/ports.ts';
import { ProvisionError } from '../core/ports.ts';
import { SshKeyError, generateEd25519KeyPair, parsePublicKey, type ParsedPublicKey } from './ssh-keys.ts';

/** Job ids become DigitalOcean tags and hostnames, so they are held to a conservative alphabet. */
const JOB_ID = /^[A-Za-z0-9_-]{8,64}$/;
const HOSTNAME_ID_CHARS = 8;

export function checkJobId(jobId: string): void {
  if (!JOB_ID.test(jobId)) throw new ProvisionError('internal: the job id is not usable as a server tag');
}

/** The node's machine name (droplet name and Tailscale hostname): `timmy-node-<first 8 of the job id>`. */
export function nodeHostname(jobId: string): string {
  checkJobId(jobId);
  return `timmy-node-${jobId.slice(0, HOSTNAME_ID_CHARS).toLowerCase().replace(/_/g, '-')}`;
}

/** Parses a customer's key, turning every format problem into a user-facing ProvisionError. */
export function validateCustomerKey(line: string): ParsedPublicKey {
  try {
    return parsePublicKey(line);
  } catch (err) {
    if (err instanceof SshKeyError) throw new ProvisionError(`ssh_key: ${err.message}`);
    throw err;
  }
}

export function prepareNodeSecrets(spec: NodeSpec): NodeSecrets {
  checkJobId(spec.jobId);
  const sk = generateSecretKey();
  const nodeNsec = nip19.nsecEncode(sk);
  const nodeNpub = nip19.npubEncode(getPublicKey(sk));
  sk.fill(0);
  if (spec.customerSshKey !== undefined) {
    // The customer keeps their private key; we never make one (SPEC 4.1).
    return { sshPrivateKey: null, sshPublicKey: validateCustomerKey(spec.customerSshKey).line, nodeNsec, nodeNpub };
  }
  const pair = generateEd25519KeyPair(nodeHostname(spec.jobId));
  return { sshPrivateKey: pair.privateKey, sshPublicKey: pair.publicKey, nodeNsec, nodeNpub };
}
