// The OpenAPI document of the default configuration, without a running daemon (for openapi.yaml).
import { createLogger } from '../log.ts';
import { loadConfig } from '../config.ts';
import { createApp, type HttpDeps } from './app.ts';

/** An object whose every method throws: the routes are mounted, never called. */
function inert<T extends object>(): T {
  return new Proxy({} as T, {
    get: () => () => {
      throw new Error('not available while generating the OpenAPI document');
    },
  });
}

function inertSources(): Omit<HttpDeps['metrics'], 'onProcessingAcked'> {
  const fail = inert<{ f(): never }>().f;
  return { jobsByState: fail, invoices: fail, relays: fail, outboxDepth: fail, intake: fail, money: fail };
}

/** Builds the app with inert dependencies and returns what GET /api/openapi.json serves. */
export async function openApiDocument(): Promise<unknown> {
  const config = loadConfig({});
  const deps: HttpDeps = {
    worker: 'openapi',
    log: createLogger('silent'),
    maxBodyBytes: 64 * 1024,
    dev: inert<NonNullable<HttpDeps['dev']>>(),
    jobs: { jobs: inert(), book: inert(), maxInputChars: config.MAX_INPUT_CHARS, trustProxy: 0 },
    demo: { demo: inert(), limits: inert(), trustProxy: 0, maxInputChars: config.MAX_INPUT_CHARS },
    bootstrap: { bootstrap: inert(), trustProxy: 0 },
    lnurl: null, // outside /api: not in the document
    sessions: {
      sessions: inert(),
      maxInputChars: config.MAX_INPUT_CHARS,
      maxDepositSats: config.MAX_SESSION_DEPOSIT_SATS,
      l402DepositSats: config.L402_DEPOSIT_SATS,
      trustProxy: 0,
    },
    openai: { sessions: inert(), model: config.WORK_MODEL, prices: inert<{ f(): never }>().f, maxInputChars: config.MAX_INPUT_CHARS, l402DepositSats: config.L402_DEPOSIT_SATS, trustProxy: 0 },
    metrics: { ...inertSources(), onProcessingAcked: () => {} }, // subscribed at mount, so it must not throw
    console: null, // the operator console is not part of the public API
    health: inert<Pick<HttpDeps, 'health'>>().health,
    info: inert<Pick<HttpDeps, 'info'>>().info,
  };
  const app = createApp(deps);
  return (await app.request('/api/openapi.json')).json();
}
