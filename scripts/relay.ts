// Runs a real Nostr relay on 127.0.0.1 (tests and local development): npm run relay -- --port 7777 --db ./data/relay.db
import { parseArgs } from 'node:util';
import { startRelayServer } from '../src/nostr/relay-server.ts';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: '127.0.0.1' },
    port: { type: 'string', default: '7777' },
    db: { type: 'string', default: './data/relay.db' },
    auth: { type: 'string' },
  },
});

const relay = await startRelayServer({ host: values.host!, port: Number(values.port), dbPath: values.db!, authHostname: values.auth });
process.stdout.write(`relay listening ${relay.url}\n`);
const stop = () => void relay.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
