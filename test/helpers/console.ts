// Helpers of the operator console tests: a paid Nostr job from request to result, and the operator token.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as nip44 from 'nostr-tools/nip44';
import { Customer, invoiceOf, payStub } from './customer.ts';
import type { DaemonProc } from './procs.ts';

/** The token the daemon generated into its data directory. */
export function consoleToken(daemon: DaemonProc): string {
  return readFileSync(join(daemon.dataDir, 'console.token'), 'utf8').trim();
}

/**
 * Posts a text job, pays the evaluation and the work through the dev route, and waits for the result.
 * `private`: the request is NIP-44 encrypted to Timmy. Returns the job id and the sats paid.
 */
export async function paidJob(customer: Customer, daemon: DaemonProc, prompt: string, opts: { private?: boolean } = {}): Promise<{ id: string; paidSats: number }> {
  const req = opts.private
    ? customer.sign([['p', daemon.pubkey], ['encrypted']], { content: nip44.encrypt(JSON.stringify([['i', prompt, 'text']]), nip44.getConversationKey(customer.sk, daemon.pubkey)) })
    : customer.sign([['i', prompt, 'text'], ['p', daemon.pubkey]]);
  await customer.publish(req);
  const [evalFb] = await customer.waitForFeedback(req.id, 'payment-required');
  const evalInv = invoiceOf(evalFb!);
  await payStub(daemon.api, evalInv.bolt11);
  const [, workFb] = await customer.waitForFeedback(req.id, 'payment-required', 2);
  const workInv = invoiceOf(workFb!);
  await payStub(daemon.api, workInv.bolt11);
  await customer.waitForResult(req.id);
  return { id: req.id, paidSats: (evalInv.msats + workInv.msats) / 1000 };
}
