// What each publish intent becomes on Nostr, and where it goes: NIP-90 feedback and results of paid
// jobs, the bootstrap job's public result and NIP-17 credentials DM, and NIP-57 zap receipts.
import type { Event, EventTemplate } from 'nostr-tools';
import * as nip17 from 'nostr-tools/nip17';
import { customerHasPaid } from '../core/job-machine.ts';
import type { BootstrapJob, Job, OutboxRow } from '../core/types.ts';
import { buildFeedback, buildResult, FEEDBACK_KIND } from './nip90.ts';
import { encryptFor } from './encryption.ts';
import type { EventFactory, Route } from './outbox.ts';
import { zapReceiptTemplate } from './zaps.ts';

export interface EventDeps {
  secretKey: Uint8Array;
  /** The subject of an outbox row: a text job or a node order (read when the event is built). */
  job(id: string): Promise<Job | undefined>;
  order(id: string): Promise<BootstrapJob | undefined>;
  /** The credentials DM text of a ready bootstrap job, or null once erased. */
  credentialsMessage(job: BootstrapJob): string | null;
  /** A relay from the customer's 10050 list accepted the DM. */
  onDmDelivered(jobId: string, relay: string): Promise<void>;
}

export const DM_SUBJECT = 'Your Bitcoin node is ready';

function requestOf(json: string | null): Event | null {
  return json ? (JSON.parse(json) as Event) : null;
}

/** The public 6960 result: facts only; the credentials travel by DM. */
export function buildBootstrapResult(job: BootstrapJob): EventTemplate {
  const content = {
    status: 'ready',
    ip: job.ip,
    tailscaleHostname: job.tailscaleHostname,
    sshUser: job.sshUser,
    nodeNpub: job.nodeNpub,
    size: job.size,
    region: job.region,
    credentials: 'sent to you as an encrypted NIP-17 direct message',
  };
  const tags: string[][] = [
    ['e', job.id],
    ['p', job.customerPubkey!],
    ['amount', String(job.amountMsats)],
  ];
  if (job.requestJson) tags.unshift(['request', job.requestJson]);
  const kind = (requestOf(job.requestJson)?.kind ?? 5960) + 1000;
  return { kind, created_at: Math.floor(Date.now() / 1000), tags, content: JSON.stringify(content) };
}

export function createEventFactory(d: EventDeps): EventFactory {
  type Subject = { job?: Job; boot?: BootstrapJob };
  const subject = async (row: OutboxRow): Promise<Subject> => {
    if (!row.jobId || row.intent.type === 'zap_receipt') return {}; // a receipt is self-contained
    const job = await d.job(row.jobId);
    return job ? { job } : { boot: await d.order(row.jobId) };
  };

  const eventOf = (row: OutboxRow, { job, boot }: Subject): EventTemplate | Event | null => {
    const intent = row.intent;
    if (intent.type === 'zap_receipt') return zapReceiptTemplate(intent); // self-contained: no subject to read
    if (job) {
      const encrypt = (plain: string) => encryptFor(job, plain, d.secretKey);
      if (intent.type === 'result') return buildResult(job, encrypt, intent.balanceMsats);
      if (intent.type === 'feedback') return buildFeedback(job, intent, encrypt);
    }
    if (boot) {
      if (intent.type === 'feedback') return buildFeedback({ id: boot.id, customerPubkey: boot.customerPubkey, encryption: 'none' }, intent, () => null);
      if (intent.type === 'bootstrap_result') return buildBootstrapResult(boot);
      if (intent.type === 'dm') {
        const text = d.credentialsMessage(boot);
        if (text === null) return null; // already claimed or erased: nothing to send
        return nip17.wrapEvent(d.secretKey, { publicKey: boot.customerPubkey! }, text, DM_SUBJECT, { eventId: boot.id });
      }
    }
    throw new Error(`intent ${intent.type} of outbox row ${row.id} has no subject`);
  };

  const routeOf = (row: OutboxRow, { job, boot }: Subject): Route => {
    const intent = row.intent;
    if (intent.type === 'zap_receipt') return { pool: true, extra: intent.relays }; // the zap request's relays (policy applied) and ours
    if (intent.type === 'dm') {
      // NIP-17: the customer's inbox relays only; without a 10050 list, the request's relays and ours.
      return intent.inboxRelays.length > 0 ? { pool: false, extra: intent.inboxRelays } : { pool: true, extra: boot?.relays ?? [] };
    }
    if (job) return { pool: true, extra: customerHasPaid(job) ? job.relays : [] };
    if (boot) return { pool: true, extra: boot.state === 'awaiting_payment' || boot.state === 'expired' ? [] : boot.relays };
    return { pool: true, extra: [] };
  };

  return {
    // The subject is read once for both the event and its first route.
    async build(row) {
      const sub = await subject(row);
      const event = eventOf(row, sub);
      return event && { event, route: routeOf(row, sub) };
    },

    route: async (row) => routeOf(row, await subject(row)),

    async onExtraAck(row, relay) {
      if (row.intent.type === 'dm' && row.intent.inboxRelays.includes(relay) && row.jobId) await d.onDmDelivered(row.jobId, relay);
    },
  };
}

export { FEEDBACK_KIND };
