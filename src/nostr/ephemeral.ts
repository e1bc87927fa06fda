// One-off publishing to relays a customer named (a request's `relays` tag, later a 10050 list): the URL
// passed the relay policy already; here the resolved address is checked again right before connecting,
// so a public name that resolves to a private address (DNS rebinding) is refused too.
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import type { LookupFunction } from 'node:net';
import WebSocket from 'ws';
import type { Event } from 'nostr-tools';
import { classifyAddress } from './relay-policy.ts';

export interface EphemeralOptions {
  allowPrivate: boolean;
  timeoutMs?: number; // ms for connect + OK
  maxMessageBytes?: number;
}

export type PublishOutcome = { ok: boolean; message: string };

/** A `lookup` for ws/http that refuses addresses the policy forbids. */
function guardedLookup(allowPrivate: boolean): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses) => {
      if (err) return callback(err, []);
      const list = addresses as LookupAddress[];
      for (const a of list) {
        const bad = classifyAddress(a.address);
        if (bad && (bad.tier === 'never' || !allowPrivate)) {
          return callback(new Error(`refused: ${hostname} resolves to ${bad.reason}`), []);
        }
      }
      const wantAll = options.all;
      if (wantAll) return callback(null, list);
      return callback(null, list[0]!.address, list[0]!.family);
    });
  };
}

/** Connects, sends one EVENT, waits for its OK (or the timeout), closes. Never throws. */
export function publishOnce(url: string, event: Event, o: EphemeralOptions): Promise<PublishOutcome> {
  const timeoutMs = o.timeoutMs ?? 10_000;
  return new Promise((resolve) => {
    let settled = false;
    let ws: WebSocket;
    const done = (r: PublishOutcome) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      ws?.terminate();
      resolve(r);
    };
    const timer = setTimeout(() => done({ ok: false, message: 'timeout' }), timeoutMs);
    try {
      ws = new WebSocket(url, {
        handshakeTimeout: timeoutMs,
        maxPayload: o.maxMessageBytes ?? 256 * 1024,
        followRedirects: false,
        lookup: guardedLookup(o.allowPrivate),
      });
    } catch (err) {
      done({ ok: false, message: (err as Error).message });
      return;
    }
    ws.on('open', () => ws.send(JSON.stringify(['EVENT', event])));
    ws.on('message', (data) => {
      try {
        const msg = JSON.parse(String(data));
        if (Array.isArray(msg) && msg[0] === 'OK' && msg[1] === event.id) {
          const message = typeof msg[3] === 'string' ? msg[3] : '';
          done({ ok: msg[2] === true || message.startsWith('duplicate:'), message });
        }
      } catch {
        /* not JSON: ignore */
      }
    });
    ws.on('error', (err) => done({ ok: false, message: err.message }));
    ws.on('close', () => done({ ok: false, message: 'closed before OK' }));
  });
}
