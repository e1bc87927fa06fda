// System routes: health and the public facts a client needs to talk to Timmy.
import { createRoute, z, type OpenAPIHono } from '@hono/zod-openapi';

export interface RelayStatus {
  url: string;
  read: boolean;
  write: boolean;
  connected: boolean;
}

export interface SystemDeps {
  health(): { relays: RelayStatus[]; storeOk: boolean; payments: string; agent: string };
  info(): {
    pubkey: string;
    npub: string;
    relays: RelayStatus[];
    kinds: number[];
    prices: { evalFeeSats: number; minWorkFeeSats: number; workModel: string; evalModel: string; bootstrapSizes: Record<string, number> };
    payments: string;
    agent: string;
  };
}

const Relay = z.object({ url: z.string(), read: z.boolean(), write: z.boolean(), connected: z.boolean() });

const Health = z
  .object({
    ok: z.boolean(),
    relaysConnected: z.number().int(),
    relays: z.array(Relay),
    store: z.boolean(),
    payments: z.string(),
    agent: z.string(),
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
  })
  .openapi('Info');

export function mountSystemRoutes(app: OpenAPIHono, deps: SystemDeps): void {
  app.openapi(
    createRoute({
      method: 'get',
      path: '/api/healthz',
      summary: 'Liveness and readiness: relays connected, store, payment backend',
      responses: {
        200: { description: 'healthy', content: { 'application/json': { schema: Health } } },
        503: { description: 'unhealthy (no relay connected or store down)', content: { 'application/json': { schema: Health } } },
      },
    }),
    (c) => {
      const h = deps.health();
      const relaysConnected = h.relays.filter((r) => r.connected).length;
      const ok = h.storeOk && relaysConnected > 0;
      return c.json({ ok, relaysConnected, relays: h.relays, store: h.storeOk, payments: h.payments, agent: h.agent }, ok ? 200 : 503);
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
