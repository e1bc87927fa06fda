// System routes: health and the public facts a client needs to talk to Timmy.
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';

export interface RelayStatus {
  url: string;
  read: boolean;
  write: boolean;
  connected: boolean;
}

/** One outside part as last seen: its backend's name, whether it answers, and what was seen. */
export interface PartHealth {
  backend: string;
  ok: boolean;
  detail: string;
}

export interface SystemDeps {
  /** This process's WORKER_ID: in /api/healthz and on every /metrics series (health is per worker). */
  worker: string;
  health(): Promise<{ relays: RelayStatus[]; storeOk: boolean; payments: PartHealth; ai: PartHealth }>;
  info(): {
    pubkey: string;
    npub: string;
    relays: RelayStatus[];
    kinds: number[];
    prices: { evalFeeSats: number; minWorkFeeSats: number; workModel: string; evalModel: string; bootstrapSizes: Record<string, number> };
    payments: string;
    agent: string;
    lud16: string | null;
  };
}

const Relay = z.object({ url: z.string(), read: z.boolean(), write: z.boolean(), connected: z.boolean() });

const Part = z.object({ backend: z.string(), ok: z.boolean(), detail: z.string() });
const Health = z
  .object({
    ok: z.boolean().openapi({ description: 'false (and HTTP 503) when any part the daemon needs is down' }),
    worker: z.string().openapi({ description: 'the worker that answered (WORKER_ID): health is per worker' }),
    relaysConnected: z.number().int(),
    relays: z.array(Relay),
    store: z.boolean(),
    payments: Part,
    ai: Part,
    agent: z.string().openapi({ description: 'the AI backend name (also ai.backend)' }),
  })
  .openapi('Health');

const Info = z
  .object({
    pubkey: z.string().openapi({ description: "Timmy's Nostr public key, hex" }),
    npub: z.string(),
    relays: z.array(Relay),
    kinds: z.array(z.number().int()),
    prices: z.object({
      evalFeeSats: z.number().int(),
      minWorkFeeSats: z.number().int(),
      workModel: z.string(),
      evalModel: z.string(),
      bootstrapSizes: z.record(z.string(), z.number().int()).openapi({ description: 'node size slug -> price in sats' }),
    }),
    payments: z.string(),
    agent: z.string(),
    lud16: z.string().nullable().openapi({ description: "Timmy's lightning address for zaps (with PUBLIC_URL), else null" }),
  })
  .openapi('Info');

export function mountSystemRoutes(app: OpenAPIHono, deps: SystemDeps): void {
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/healthz',
      summary: 'Readiness, part by part: relays, store, payment backend, AI backend',
      responses: {
        200: { description: 'healthy', content: { 'application/json': { schema: Health } } },
        503: { description: 'unhealthy: no relay connected, the store, the payment backend or the AI backend down', content: { 'application/json': { schema: Health } } },
      },
    }),
    async (c) => {
      const h = await deps.health();
      const relaysConnected = h.relays.filter((r) => r.connected).length;
      const ok = h.storeOk && relaysConnected > 0 && h.payments.ok && h.ai.ok;
      return c.json({ ok, worker: deps.worker, relaysConnected, relays: h.relays, store: h.storeOk, payments: h.payments, ai: h.ai, agent: h.ai.backend }, ok ? 200 : 503);
    },
  );

  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/info',
      summary: 'Public identity, relays, job kinds and prices',
      responses: { 200: { description: 'info', content: { 'application/json': { schema: Info } } } },
    }),
    (c) => c.json(deps.info(), 200),
  );
}
