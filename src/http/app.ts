// The HTTP shim: routes -> core calls, validated by zod, described by one OpenAPI document.
// Each route group lives in its own module and is mounted here; the shim holds no business rule.
import { OpenAPIHono } from '@hono/zod-openapi';
import { HTTPException } from 'hono/http-exception';
import { bodyLimit } from 'hono/body-limit';
import type { Logger } from '../log.ts';
import { Refusal } from '../core/refusal.ts';
import { refusalResponse } from './errors.ts';
import { describeIssues } from './schemas.ts';
import { mountOpenAiRoutes, openAiError, openAiRefusal, type OpenAiRoutesDeps } from './openai.ts';

export { describeIssues };
import { mountSystemRoutes, type SystemDeps } from './system.ts';
import { mountDevRoutes, type DevDeps } from './dev.ts';
import { mountJobRoutes, type JobRoutesDeps } from './jobs.ts';
import { mountDemoRoutes, type DemoDeps } from './demo.ts';
import { mountMetrics, type MetricsSources } from './metrics.ts';
import { mountSessionRoutes, type SessionRoutesDeps } from './sessions.ts';
import { mountBootstrapRoutes, type BootstrapRoutesDeps } from './bootstrap.ts';
import { mountLnurlRoutes, type LnurlDeps } from './lnurl.ts';
import { mountConsoleRoutes, type ConsoleRoutesDeps } from './console.ts';

export interface HttpDeps extends SystemDeps {
  log: Logger;
  dev: DevDeps | null; // the dev pay route exists only outside production with the stub backend
  maxBodyBytes: number;
  jobs: JobRoutesDeps;
  demo: DemoDeps;
  sessions: SessionRoutesDeps;
  openai: OpenAiRoutesDeps;
  bootstrap: BootstrapRoutesDeps;
  /** The zap endpoint (LNURL-pay), only with PUBLIC_URL. */
  lnurl: LnurlDeps | null;
  metrics: MetricsSources;
  console: ConsoleRoutesDeps | null; // the operator console (/console); null: not served
}

export type App = OpenAPIHono;


export function createApp(deps: HttpDeps): App {
  const app = new OpenAPIHono({
    defaultHook: (result, c) => {
      if (!result.success) return c.json({ error: `invalid request: ${describeIssues(result.error.issues)}` }, 400);
    },
  });

  app.use('*', mountMetrics(app, deps.metrics, { worker: deps.worker }));
  // A body that is not JSON gets 415 before any route reads it.
  app.use('/api/*', async (c, next) => {
    const hasBody = Number(c.req.header('content-length') ?? 0) > 0 || c.req.header('transfer-encoding') !== undefined;
    if (hasBody && ['POST', 'PUT', 'PATCH'].includes(c.req.method) && !/^application\/(.+\+)?json\b/i.test(c.req.header('content-type') ?? '')) {
      return c.json({ error: 'unsupported media type: send the body as application/json' }, 415);
    }
    return next();
  });
  app.use(
    '/api/*',
    bodyLimit({
      maxSize: deps.maxBodyBytes,
      onError: (c) => c.json({ error: `request body too large: the limit is ${deps.maxBodyBytes} bytes` }, 413),
    }),
  );
  // The OpenAI-compatible routes answer the same checks in OpenAI's error shape.
  app.use('/v1/*', async (c, next) => {
    const hasBody = Number(c.req.header('content-length') ?? 0) > 0 || c.req.header('transfer-encoding') !== undefined;
    if (hasBody && c.req.method === 'POST' && !/^application\/(.+\+)?json\b/i.test(c.req.header('content-type') ?? '')) {
      return openAiError(c, 415, 'unsupported media type: send the body as application/json');
    }
    return next();
  });
  app.use('/v1/*', bodyLimit({ maxSize: deps.maxBodyBytes, onError: (c) => openAiError(c, 413, `request body too large: the limit is ${deps.maxBodyBytes} bytes`) }));

  mountSystemRoutes(app, deps);
  mountJobRoutes(app, deps.jobs);
  mountDemoRoutes(app, deps.demo);
  mountSessionRoutes(app, deps.sessions);
  mountOpenAiRoutes(app, deps.openai);
  mountBootstrapRoutes(app, deps.bootstrap);
  if (deps.lnurl) mountLnurlRoutes(app, deps.lnurl);
  if (deps.dev) mountDevRoutes(app, deps.dev);
  if (deps.console) mountConsoleRoutes(app, deps.console);

  app.doc('/api/openapi.json', {
    openapi: '3.0.3',
    info: { title: 'Timmy HTTP API', version: '1', description: 'Paid AI jobs over Lightning; the same core as the Nostr side.' },
  });

  const openAi = (c: { req: { path: string } }) => c.req.path.startsWith('/v1/');
  app.notFound((c) => (openAi(c) ? openAiError(c, 404, `not found: ${c.req.method} ${c.req.path}`) : c.json({ error: `not found: ${c.req.method} ${c.req.path}` }, 404)));
  app.onError((err, c) => {
    if (err instanceof Refusal) return openAi(c) ? openAiRefusal(c, err) : refusalResponse(c, err);
    if (err instanceof HTTPException) return openAi(c) ? openAiError(c, err.status, err.message) : c.json({ error: err.message }, err.status);
    deps.log.error({ err, path: c.req.path }, 'unhandled HTTP error');
    return openAi(c) ? openAiError(c, 500, 'internal error') : c.json({ error: 'internal error' }, 500);
  });
  return app;
}
