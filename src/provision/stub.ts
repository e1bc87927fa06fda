// The provisioner for a checkout without DO_API_TOKEN: real secrets (a usable ed25519 keypair and a
// real node nsec) but no server. The address is from TEST-NET-1 (RFC 5737, 192.0.2.0/24), which is
// never routed, so nobody can mistake it for a live node.
import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { NodeSecrets, NodeServer, NodeSpec, ProvisionedNode, ProvisionOptions, Provisioner } from '../core/ports.ts';
import { checkJobId, nodeHostname, prepareNodeSecrets, validateCustomerKey } from './secrets.ts';

export interface StubProvisionerOptions {
  /** How long provision() pretends to work, ms; default 1500 (STUB_PROVISION_DELAY_MS). */
  delayMs?: number;
}

/** 192.0.2.1 - 192.0.2.254, the same for the same job id. */
export function stubIp(jobId: string): string {
  const n = createHash('sha256').update(jobId).digest().readUInt32BE(0);
  return `192.0.2.${(n % 254) + 1}`;
}

export class StubProvisioner implements Provisioner {
  readonly name = 'stub' as const;
  private readonly delayMs: number;

  constructor(opts: StubProvisionerOptions = {}) {
    this.delayMs = opts.delayMs ?? 1500;
  }

  validatePublicKey(line: string): void {
    validateCustomerKey(line);
  }

  prepareSecrets(spec: NodeSpec): NodeSecrets {
    return prepareNodeSecrets(spec);
  }

  async provision(spec: NodeSpec, _secrets: NodeSecrets, opts: ProvisionOptions = {}): Promise<ProvisionedNode> {
    checkJobId(spec.jobId);
    opts.onProgress?.('creating the server (stub: no real server is created)');
    if (this.delayMs > 0) await sleep(this.delayMs, undefined, { signal: opts.signal });
    else opts.signal?.throwIfAborted();
    return {
      ip: stubIp(spec.jobId),
      tailscaleHostname: `${nodeHostname(spec.jobId)}.tail-stub.ts.net`,
      sshUser: 'root',
      dropletId: null,
    };
  }

  /** The stub makes no server, so there is never one to list or destroy. */
  async listNodes(): Promise<NodeServer[]> {
    return [];
  }

  async destroy(jobId: string): Promise<number> {
    checkJobId(jobId);
    return 0;
  }
}
