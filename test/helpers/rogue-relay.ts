// A websocket "relay" under a test's control: records connections, REQs and EVENTs, acks every EVENT,
// and lets the test push anything (valid or not) down the daemon's subscription.
import { WebSocketServer, type WebSocket } from 'ws';

/** A websocket "relay" under the test's control: records Timmy's REQ and lets the test push anything. */
export class RogueRelay {
  readonly wss: WebSocketServer;
  sockets: { ws: WebSocket; subId: string | null }[] = [];
  connections = 0;
  readonly received: { id: string; kind: number; tags: string[][] }[] = [];
  constructor(readonly port: number) {
    this.wss = new WebSocketServer({ host: '127.0.0.1', port });
    this.wss.on('connection', (ws) => {
      this.connections++;
      const entry = { ws, subId: null as string | null };
      this.sockets.push(entry);
      ws.on('message', (data) => {
        try {
          const msg = JSON.parse(String(data));
          if (msg[0] === 'REQ') entry.subId = msg[1];
          if (msg[0] === 'EVENT') {
            this.received.push(msg[1]);
            ws.send(JSON.stringify(['OK', msg[1].id, true, '']));
          }
        } catch {
          /* ignore */
        }
      });
      ws.on('close', () => (this.sockets = this.sockets.filter((s) => s !== entry)));
    });
  }
  get url() {
    return `ws://127.0.0.1:${this.port}`;
  }
  live() {
    return this.sockets.find((s) => s.subId !== null && s.ws.readyState === s.ws.OPEN);
  }
  sendRaw(text: string) {
    this.live()!.ws.send(text);
  }
  sendEvent(ev: unknown) {
    const s = this.live()!;
    s.ws.send(JSON.stringify(['EVENT', s.subId, ev]));
  }
  close() {
    for (const s of this.sockets) s.ws.terminate();
    this.wss.close();
  }
}
