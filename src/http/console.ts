// The operator console at /console: an operator token (Bearer, or once in the login URL, then an HttpOnly
// cookie), the page and its bundled assets, JSON for each page, and a server-sent event when the store moved.
// Nothing here is part of the public API (it stays out of the OpenAPI document).
import type { Context, MiddlewareHandler } from 'hono';
import type { OpenAPIHono } from '@hono/zod-openapi';
import { getCookie, setCookie, deleteCookie } from 'hono/cookie';
import { streamSSE } from 'hono/streaming';
import { cookieValue, sameSecret } from '../console/token.ts';
import type { ConsoleAssets } from '../console/assets.ts';

export interface ConsoleRoutesDeps {
  token: string;
  trustProxy: number;
  status(): Promise<unknown>;
  series(hours: number): Promise<unknown>;
  jobs(opts: { state?: string; limit: number }): Promise<unknown[]>;
  job(id: string): Promise<unknown | null>;
  sessions(): Promise<unknown[]> | unknown[];
  session(id: string): Promise<unknown | null> | unknown | null;
  credits(): Promise<unknown> | unknown;
  orders(): Promise<unknown[]> | unknown[];
  relays(): Promise<unknown[]> | unknown[];
  /** A number that moves with every write to the store (the live feed's trigger). */
  changes(): Promise<number> | number;
  assets(): Promise<ConsoleAssets>;
}

const COOKIE = 'timmy_console';
const LIVE_POLL_MS = 500; // how often the live feed looks for a change of the store
const HEADERS = {
  // The page loads only its own code and talks only to this daemon: no CDN, no third party.
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'referrer-policy': 'no-referrer',
  'x-content-type-options': 'nosniff',
  'cache-control': 'no-store',
};

function page(title: string, body: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title><link rel="stylesheet" href="/console/assets/app.css"></head>
<body>${body}</body></html>`;
}

const LOGIN = (why: string) =>
  page(
    'Timmy console: log in',
    `<main class="login"><h1>Timmy console</h1><p class="why">${why}</p>
<p>Open the login URL the daemon printed at start, or enter the operator token (<code>CONSOLE_TOKEN</code>, else <code>DATA_DIR/console.token</code>; <code>timmy console</code> prints the URL).</p>
<form method="post" action="/console/login"><input type="password" name="token" autocomplete="current-password" placeholder="operator token" required><button type="submit">Log in</button></form></main>`,
  );

const SHELL = page(
  'Timmy console',
  `<header><a class="brand" href="#/">Timmy</a><nav>
<a href="#/">Overview</a><a href="#/jobs">Jobs</a><a href="#/sessions">Sessions</a><a href="#/credits">Credits</a><a href="#/orders">Node orders</a><a href="#/relays">Relays</a>
</nav><span id="live" class="live" title="live updates">●</span></header>
<main id="app"><p>Loading…</p></main><script type="module" src="/console/assets/app.js"></script>`,
);

export function mountConsoleRoutes(app: OpenAPIHono, deps: ConsoleRoutesDeps): void {
  const cookie = cookieValue(deps.token);
  const secure = (c: Context) => new URL(c.req.url).protocol === 'https:' || (deps.trustProxy > 0 && c.req.header('x-forwarded-proto') === 'https');
  const authorised = (c: Context): boolean => {
    const bearer = /^Bearer\s+(.+)$/i.exec(c.req.header('authorization') ?? '')?.[1]?.trim();
    if (bearer !== undefined) return sameSecret(bearer, deps.token);
    const held = getCookie(c, COOKIE);
    return held !== undefined && sameSecret(held, cookie);
  };
  const logIn = (c: Context) => {
    setCookie(c, COOKIE, cookie, { path: '/console', httpOnly: true, sameSite: 'Strict', secure: secure(c) });
    return c.redirect('/console', 303); // the token leaves the address bar (and the history)
  };
  const guard: MiddlewareHandler = async (c, next) => {
    for (const [k, v] of Object.entries(HEADERS)) c.header(k, v);
    if (!authorised(c)) return c.json({ error: 'unauthorized: the console needs the operator token' }, 401);
    return next();
  };

  app.get('/console', (c) => {
    for (const [k, v] of Object.entries(HEADERS)) c.header(k, v);
    const token = c.req.query('token');
    if (token !== undefined) return sameSecret(token, deps.token) ? logIn(c) : c.html(LOGIN('That token is not right.'), 401);
    return authorised(c) ? c.html(SHELL) : c.html(LOGIN('Log in to see the console.'), 401);
  });
  app.post('/console/login', async (c) => {
    for (const [k, v] of Object.entries(HEADERS)) c.header(k, v);
    const form = await c.req.parseBody().catch(() => ({}) as Record<string, unknown>);
    const token = typeof form.token === 'string' ? form.token : '';
    return sameSecret(token, deps.token) ? logIn(c) : c.html(LOGIN('That token is not right.'), 401);
  });
  app.post('/console/logout', (c) => {
    deleteCookie(c, COOKIE, { path: '/console' });
    return c.redirect('/console', 303);
  });
  // The login page's stylesheet is the one public asset (it holds nothing but styles).
  app.get('/console/assets/app.css', async (c) => c.body((await deps.assets()).css, 200, { 'content-type': 'text/css; charset=utf-8', 'x-content-type-options': 'nosniff' }));
  app.use('/console/assets/*', guard);
  app.get('/console/assets/app.js', async (c) => c.body((await deps.assets()).js, 200, { 'content-type': 'text/javascript; charset=utf-8' }));

  app.use('/console/api/*', guard);
  app.get('/console/api/status', async (c) => c.json(await deps.status()));
  app.get('/console/api/series', async (c) => {
    const hours = Math.min(24 * 31, Math.max(1, Number(c.req.query('hours') ?? 48) || 48));
    return c.json(await deps.series(hours));
  });
  app.get('/console/api/jobs', async (c) => {
    const limit = Math.min(500, Math.max(1, Number(c.req.query('limit') ?? 100) || 100));
    const state = c.req.query('state') || undefined;
    return c.json({ jobs: await deps.jobs({ state, limit }) });
  });
  app.get('/console/api/jobs/:id', async (c) => {
    const job = await deps.job(c.req.param('id'));
    return job ? c.json(job) : c.json({ error: 'not found' }, 404);
  });
  app.get('/console/api/sessions', async (c) => c.json({ sessions: await deps.sessions() }));
  app.get('/console/api/sessions/:id', async (c) => {
    const s = await deps.session(c.req.param('id'));
    return s ? c.json(s) : c.json({ error: 'not found' }, 404);
  });
  app.get('/console/api/credits', async (c) => c.json(await deps.credits()));
  app.get('/console/api/orders', async (c) => c.json({ orders: await deps.orders() }));
  app.get('/console/api/relays', async (c) => c.json({ relays: await deps.relays() }));
  app.get('/console/api/events', (c) =>
    streamSSE(c, async (stream) => {
      let alive = true;
      stream.onAbort(() => {
        alive = false;
      });
      let last = -1;
      let quiet = 0;
      while (alive) {
        const n = await deps.changes();
        if (n !== last) {
          last = n;
          quiet = 0;
          await stream.writeSSE({ event: 'change', data: String(n) });
        } else if (++quiet % 30 === 0) {
          await stream.write(': still here\n\n'); // keeps proxies from closing a quiet stream
        }
        await stream.sleep(LIVE_POLL_MS);
      }
    }),
  );
}
