// Runs a real Nostr relay on 127.0.0.1 (tests and local development): npm run relay -- --port 7777 --db ./data/relay.db
import { parseArgs } from 'node:util';
import { startRelayServer } from '../src/nostr/relay-server.ts';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '7777' },
    db: { type: 'string', default: './data/relay.db' },
    auth: { type: 'string' },
    'trace-events': { type: 'boolean', default: false }, // prints "EVENT <id> <connection>" per EVENT received
    'ok-delay-ms': { type: 'string' }, // answers OK late: a slow relay
  },
});

const relay = await startRelayServer({
  host: values.host!,
  port: Number(values.port),
  dbPath: values.db!,
  authHostname: values.auth,
  okDelayMs: values['ok-delay-ms'] ? Number(values['ok-delay-ms']) : undefined,
  onEvent: values['trace-events'] ? (id, connection) => process.stdout.write(`EVENT ${id} ${connection}\n`) : undefined,
});
process.stdout.write(`relay listening ${relay.url}\n`);
const stop = () => void relay.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
