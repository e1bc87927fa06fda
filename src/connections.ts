// Sockets are a resource strangers can hold: caps per client address and in total, enforced at accept, so
// thousands of idle connections from one place cannot take the file descriptors a health check or an honest
// customer needs. Used by the HTTP server and the embedded relay.
import type { Server, Socket } from 'node:net';

export interface ConnectionLimits {
  total: number; // open sockets at most
  perAddress: number | null; // open sockets per remote address at most; null behind a proxy (all share its address)
  firstRequestMs: number; // ms a new socket has to start a request (or a websocket upgrade) before it is closed
}

/** Enforces `limits` on `server`; returns how many sockets it refused so far (for logs/tests). */
export function limitConnections(server: Server, limits: ConnectionLimits): { refused(): number } {
  server.maxConnections = limits.total; // Node closes sockets beyond this itself
  const perAddress = new Map<string, number>();
  let refused = 0;
  // A socket that said nothing is closed; once it makes a request (or upgrades to a websocket) the server's
  // own request and keep-alive timeouts take over.
  const started = (req: { socket: Socket }) => req.socket.setTimeout(0);
  server.on('request', started);
  server.on('upgrade', started);
  server.on('connection', (socket: Socket) => {
    socket.setTimeout(limits.firstRequestMs, () => socket.destroy());
    if (limits.perAddress === null) return;
    const addr = socket.remoteAddress ?? 'unknown';
    const n = (perAddress.get(addr) ?? 0) + 1;
    if (n > limits.perAddress) {
      refused++;
      socket.destroy();
      return;
    }
    perAddress.set(addr, n);
    socket.once('close', () => {
      const left = (perAddress.get(addr) ?? 1) - 1;
      if (left <= 0) perAddress.delete(addr);
      else perAddress.set(addr, left);
    });
  });
  return { refused: () => refused };
}
