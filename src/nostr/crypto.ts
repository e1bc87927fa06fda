// Schnorr signing and verification through nostr-wasm (about 6x faster than the pure-JS path on Node 20).
import { initNostrWasm } from 'nostr-wasm';
import { setNostrWasm, finalizeEvent, verifyEvent, getPublicKey, generateSecretKey } from 'nostr-tools/wasm';

let ready: Promise<void> | null = null;

/** Must resolve before any sign/verify call. */
export function initCrypto(): Promise<void> {
  ready ??= initNostrWasm().then(setNostrWasm);
  return ready;
}

export { finalizeEvent, verifyEvent, getPublicKey, generateSecretKey };
