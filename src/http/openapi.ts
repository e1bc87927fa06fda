// The OpenAPI document of the default configuration, without a running daemon (for openapi.yaml).
import { createLogger } from '../log.ts';
import { loadConfig } from '../config.ts';
import { createApp } from './app.ts';

/** Builds the app with inert dependencies and returns what GET /api/openapi.json serves. */
export async function openApiDocument(): Promise<unknown> {
  const config = loadConfig({});
  const never = () => {
    throw new Error('not available while generating the OpenAPI document');
  };
  const app = createApp({
    log: createLogger('silent'),
    maxBodyBytes: 64 * 1024,
    dev: { pay: never },
    jobs: { jobs: never as never, maxInputChars: config.MAX_INPUT_CHARS, trustProxy: false },
    demo: { demo: never as never, trustProxy: false, maxInputChars: config.MAX_INPUT_CHARS },
    bootstrap: { bootstrap: never as never, payments: { isPaid: never }, trustProxy: false },
    sessions: {
      sessions: never as never,
      maxInputChars: config.MAX_INPUT_CHARS,
      maxDepositSats: config.MAX_SESSION_DEPOSIT_SATS,
      l402DepositSats: config.L402_DEPOSIT_SATS,
      trustProxy: false,
    },
    metrics: { jobsByState: never, invoicesByStatus: never, relays: never, outboxDepth: never, intake: never },
    health: never,
    info: never,
  });
  return (await app.request('/api/openapi.json')).json();
}
