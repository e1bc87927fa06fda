// Stand-in for src/nostr/crypto.ts in the pure-JS run of the ingest benchmark (loaded through
// verify-purejs-hooks.mjs, so no file under src/ changes): signing stays on nostr-wasm, verification
// is nostr-tools' pure-JS (noble) `verifyEvent`. Every call is counted so the run can prove the swap.
import { initNostrWasm } from 'nostr-wasm';
import { setNostrWasm, finalizeEvent, getPublicKey, generateSecretKey } from 'nostr-tools/wasm';
import { verifyEvent as pureVerifyEvent } from 'nostr-tools/pure';
import type { Event } from 'nostr-tools';

let ready: Promise<void> | null = null;

export function initCrypto(): Promise<void> {
  ready ??= initNostrWasm().then(setNostrWasm);
  return ready;
}

const counter = globalThis as { __benchPureVerifyCalls?: number };

export function verifyEvent(event: Event): boolean {
  counter.__benchPureVerifyCalls = (counter.__benchPureVerifyCalls ?? 0) + 1;
  return pureVerifyEvent(event);
}

export { finalizeEvent, getPublicKey, generateSecretKey };
