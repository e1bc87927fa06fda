// A real Nostr relay (@nostr-relay/core + its SQLite repository) on a local port: the daemon's embedded
// relay in a fresh checkout, and the relay process the integration tests run.
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { WebSocketServer } from 'ws';
import { NostrRelay } from '@nostr-relay/core';
import { createOutgoingNoticeMessage, EventUtils } from '@nostr-relay/common';
import { EventRepositorySqlite } from '@nostr-relay/event-repository-sqlite';
import { Validator } from '@nostr-relay/validator';
import { createServer } from 'node:http';
import { limitConnections } from '../connections.ts';
import type { Logger } from '../log.ts';
import { initCrypto, verifyEvent } from './crypto.ts';

/**
 * The library checks ids and signatures with pure-JS noble (~1.5 ms an event); the same checks through
 * nostr-wasm (src/nostr/crypto.ts) take a tenth of that, which is what bounds the embedded relay's intake
 * (a flood of requests, every reply Timmy publishes). Its two static checks are replaced by one wasm check,
 * cached on the event (nostr-tools' verifyEvent marks the events it verified).
 */
async function useWasmVerification(): Promise<void> {
  await initCrypto();
  const valid = (event: Parameters<typeof verifyEvent>[0]) => verifyEvent(event);
  EventUtils.isIdValid = valid;
  EventUtils.isSigValid = valid;
}

export interface RelayServerOptions {
  host: string;
  port: number;
  dbPath: string;
  /** Hostname for NIP-42; set it to make the relay send AUTH challenges. */
  authHostname?: string;
  maxMessageBytes?: number;
  log?: Logger;
  /** Each EVENT message received, with the connection it came on (tests count who sent what). */
  onEvent?: (eventId: string, connection: number) => void;
  /** Answers OK this many ms late (tests: a slow relay, so unacked events are sent again). */
  okDelayMs?: number;
}

export interface RelayServer {
  url: string;
  port: number;
  close(): Promise<void>;
}

export async function startRelayServer(o: RelayServerOptions): Promise<RelayServer> {
  mkdirSync(dirname(o.dbPath), { recursive: true });
  await useWasmVerification();
  const repo = new EventRepositorySqlite(o.dbPath);
  await repo.init();
  const quiet = { setLogLevel() {}, debug() {}, info() {}, warn() {}, error: (m: string) => o.log?.warn({ relay: 'embedded' }, m) };
  // filterResultCacheTtl 0: the library otherwise answers an identical REQ from a cache that can hide
  // events stored since (seen: a restarted daemon re-subscribing with the same filter got nothing).
  const relay = new NostrRelay(repo, { hostname: o.authHostname, logger: quiet, filterResultCacheTtl: 0 });
  // NIP-09: the library deletes the referenced events but neither stores nor broadcasts the kind 5
  // deletion itself; relays should keep sharing deletions, and the daemon subscribes to them.
  relay.register({
    async handleMessage(_ctx, message, next) {
      const result = await next();
      if (message[0] === 'EVENT' && message[1].kind === 5 && result && 'success' in result && result.success) {
        await repo.upsert(message[1]);
        await relay.broadcast(message[1]);
      }
      return result;
    },
  });
  // The relay must take what Timmy takes: a 20,000-character prompt in an `i` tag, a result that quotes
  // its request, and the NIP-09 subscription's list of unpaid job ids (the library's defaults are 1,024
  // characters per tag value and 256 values per tag filter).
  const validator = new Validator({ maxTagValueLength: 256 * 1024, maxContentLength: 256 * 1024, maxFilterGenericTagsLength: 1000 });
  // Websockets are held open by design: cap them per address and in total (see src/connections.ts); a
  // socket that never completes its upgrade is closed after 10 s.
  const httpServer = createServer({ headersTimeout: 10_000, requestTimeout: 10_000 });
  limitConnections(httpServer, { total: 2000, perAddress: 100, firstRequestMs: 10_000 });
  const wss = new WebSocketServer({ server: httpServer, maxPayload: o.maxMessageBytes ?? 512 * 1024 });
  // The websocket server repeats its HTTP server's errors: listened to from the start (a port in use is
  // reported once, by the rejected start below, not as an unhandled 'error').
  let listening = false;
  wss.on('error', (err) => {
    if (listening) o.log?.error({ err }, 'embedded relay error');
  });
  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(o.port, o.host, () => {
      httpServer.off('error', reject);
      listening = true;
      resolve();
    });
  });
  let connections = 0;
  wss.on('connection', (ws, req) => {
    relay.handleConnection(ws, req.socket.remoteAddress);
    const connection = ++connections;
    if (o.okDelayMs) {
      const send = ws.send.bind(ws) as (data: string) => void;
      const later = o.okDelayMs;
      ws.send = ((data: string) => {
        if (typeof data === 'string' && data.startsWith('["OK"')) setTimeout(() => ws.readyState === ws.OPEN && send(data), later);
        else send(data);
      }) as typeof ws.send;
    }
    ws.on('message', async (data) => {
      try {
        const message = await validator.validateIncomingMessage(data);
        if (o.onEvent && message[0] === 'EVENT') o.onEvent(message[1].id, connection);
        await relay.handleMessage(ws, message);
      } catch (err) {
        if (ws.readyState === ws.OPEN) ws.send(JSON.stringify(createOutgoingNoticeMessage((err as Error).message)));
      }
    });
    ws.on('close', () => relay.handleDisconnect(ws));
    ws.on('error', () => relay.handleDisconnect(ws));
  });
  const addr = httpServer.address();
  const port = typeof addr === 'object' && addr ? addr.port : o.port;
  return {
    url: `ws://${o.host}:${port}`,
    port,
    async close() {
      for (const c of wss.clients) c.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
      await new Promise<void>((r) => httpServer.close(() => r()));
      await relay.destroy();
      await repo.destroy();
    },
  };
}
