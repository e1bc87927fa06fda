// The operator console in the browser: a few pages drawn from the daemon's /console/api, redrawn when the
// live feed (server-sent events) says the store moved. Text is set as text, never as HTML.
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import './style.css';

type Child = Node | string | number | null | undefined | false;

/** Builds an element; strings become text nodes (data from customers and relays is never parsed as HTML). */
function h(tag: string, attrs: Record<string, string | number | boolean | undefined> = {}, ...children: Child[]): HTMLElement {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== false) el.setAttribute(k, String(v));
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

class Unauthorized extends Error {}

async function api<T>(path: string): Promise<T> {
  const res = await fetch(`/console/api/${path}`, { credentials: 'same-origin', headers: { accept: 'application/json' } });
  if (res.status === 401) throw new Unauthorized();
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status}`);
  return (await res.json()) as T;
}

const fmt = (n: number) => n.toLocaleString('en-US');
const sats = (n: number | null | undefined) => (n === null || n === undefined ? '—' : `${fmt(n)} sats`);
const usd = (n: number | null | undefined) => (n === null || n === undefined ? '—' : `$${n.toFixed(4)}`);
const time = (ms: number) => new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
const preciseTime = (ms: number) => new Date(ms).toISOString().replace('T', ' ').slice(0, 23);

function age(ms: number): string {
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

const state = (s: string) => h('span', { class: `state ${s}` }, s);
const card = (k: string, v: Child, s?: Child, cls = '') => h('div', { class: 'card' }, h('div', { class: 'k' }, k), h('div', { class: `v ${cls}` }, v), s ? h('div', { class: 's' }, s) : null);

function table(headers: (string | [string, string])[], rows: HTMLElement[], empty = 'nothing yet'): HTMLElement {
  const head = h('tr', {}, ...headers.map((x) => (Array.isArray(x) ? h('th', { class: x[1] }, x[0]) : h('th', {}, x))));
  const body = rows.length ? rows : [h('tr', {}, h('td', { colspan: headers.length, class: 'muted' }, empty))];
  return h('div', { class: 'table-wrap' }, h('table', {}, h('thead', {}, head), h('tbody', {}, ...body)));
}

// --- the data the pages read (the daemon's shapes) ---

interface Part { backend: string; ok: boolean; detail: string }
interface MoneyWindow { receivedSats: number; earnedSats: number; byPurpose: Record<string, number>; jobsCharged: number; modelCostUsd: number; modelCostSats: number; marginSats: number; marginPct: number | null }
interface Status {
  at: string; ok: boolean | null; relays: { url: string; connected: boolean; lastError: string | null }[] | null; payments: Part | null; ai: Part | null; store: boolean;
  outboxDepth: number; jobs: Record<string, number>; nodeOrders: Record<string, number>; btcPriceUsd: number;
  revenue: { today: MoneyWindow; week: MoneyWindow; all: MoneyWindow }; processingMs: { p50: number; p95: number; n: number } | null;
  sessions: { held: number; heldSats: number }; credits: { accounts: number; owedSats: number };
  lastErrors: { at: string; subject: string; id: string; state: string; message: string }[];
}
interface Series { btcPriceUsd: number; t: number[]; receivedSats: number[]; modelCostSats: number[]; outcomes: Record<string, number[]> }
interface JobRow { id: string; type: 'text' | 'node'; state: string; source: string; satsIn: number; costUsd: number | null; costSats: number | null; createdAt: number; customer: string; private: boolean; summary: string }
interface TimelineEntry { at: number; what: string; text: string; detail?: unknown }

// --- pages ---

const charts: uPlot[] = [];

function chart(title: string, id: string, data: uPlot.AlignedData, series: { label: string; stroke: string }[], extra: Record<string, string>): HTMLElement {
  const box = h('div', { class: 'chart', id, ...Object.fromEntries(Object.entries(extra).map(([k, v]) => [`data-${k}`, v])) }, h('div', { class: 'k muted' }, title));
  requestAnimationFrame(() => {
    const width = Math.max(280, box.clientWidth - 16);
    const axis = { stroke: '#9aa3b2', grid: { stroke: '#262b36' }, ticks: { stroke: '#262b36' } };
    charts.push(
      new uPlot(
        { width, height: 220, series: [{}, ...series.map((s) => ({ ...s, width: 2, points: { show: false } }))], axes: [axis, axis], legend: { live: false } },
        data,
        box,
      ),
    );
  });
  return box;
}

async function overview(): Promise<HTMLElement> {
  const [s, series] = await Promise.all([api<Status>('status'), api<Series>('series?hours=48')]);
  const part = (name: string, p: Part | null) => card(name, p ? (p.ok ? 'ok' : 'down') : 'unknown', p ? `${p.backend} · ${p.detail}` : undefined, p?.ok ? 'ok' : 'bad');
  const relaysUp = (s.relays ?? []).filter((r) => r.connected).length;
  const inFlight = ['awaiting_eval_payment', 'evaluating', 'awaiting_work_payment', 'executing'].reduce((n, k) => n + (s.jobs[k] ?? 0), 0);
  const money = (label: string, w: MoneyWindow) =>
    card(label, sats(w.receivedSats), `earned ${sats(w.earnedSats)} · model ${usd(w.modelCostUsd)} (${sats(w.modelCostSats)}) · margin ${sats(w.marginSats)}${w.marginPct === null ? '' : ` (${w.marginPct}%)`}`);
  const totalReceived = series.receivedSats.reduce((a, b) => a + b, 0);
  const outcomeColours: Record<string, string> = { complete: '#3fb950', failed: '#f85149', rejected: '#d29922', expired: '#9aa3b2', cancelled: '#6e7681' };
  return h(
    'div',
    {},
    h('h1', {}, 'Overview ', h('span', { class: s.ok ? 'ok' : 'bad' }, s.ok ? '· healthy' : '· unhealthy')),
    h('h2', {}, 'Health'),
    h(
      'div',
      { class: 'cards' },
      card('relays', `${relaysUp} / ${(s.relays ?? []).length}`, 'connected', relaysUp > 0 ? 'ok' : 'bad'),
      part('payments', s.payments),
      part('AI', s.ai),
      card('store', s.store ? 'ok' : 'down', `outbox ${s.outboxDepth} waiting`, s.store ? 'ok' : 'bad'),
      card('payment → processing', s.processingMs ? `${s.processingMs.p50} ms` : '—', s.processingMs ? `p95 ${s.processingMs.p95} ms · last ${s.processingMs.n}` : 'no Nostr payment yet'),
    ),
    h('h2', {}, 'Money'),
    h(
      'div',
      { class: 'cards', id: 'money' },
      money('today', s.revenue.today),
      money('7 days', s.revenue.week),
      money('all time', s.revenue.all),
      card('held in sessions', sats(s.sessions.heldSats), `${s.sessions.held} session(s): owed as service`),
      card('credits owed', sats(s.credits.owedSats), `${s.credits.accounts} account(s)`),
      card('in flight', fmt(inFlight), `text jobs; node orders ${['awaiting_payment', 'provisioning', 'ready'].reduce((n, k) => n + (s.nodeOrders[k] ?? 0), 0)}`),
    ),
    chart('Received and model cost per hour (sats), last 48 h', 'revenue-chart', [series.t, series.receivedSats, series.modelCostSats], [
      { label: 'received', stroke: '#f7931a' },
      { label: 'model cost', stroke: '#58a6ff' },
    ], { 'received-sats': String(totalReceived) }),
    chart('Jobs per hour by outcome', 'outcome-chart', [series.t, ...Object.values(series.outcomes)], Object.keys(series.outcomes).map((k) => ({ label: k, stroke: outcomeColours[k] ?? '#9aa3b2' })), {}),
    h('h2', {}, 'Last errors'),
    table(
      ['when', 'subject', 'state', 'message'],
      s.lastErrors.map((e) => h('tr', {}, h('td', {}, e.at.replace('T', ' ').slice(0, 19)), h('td', {}, h('a', { href: `#/jobs/${e.id}` }, `${e.subject} ${e.id.slice(0, 10)}…`)), h('td', {}, state(e.state)), h('td', { class: 'wrap' }, e.message))),
      'no errors',
    ),
  );
}

const JOB_STATES = ['awaiting_eval_payment', 'evaluating', 'awaiting_work_payment', 'executing', 'complete', 'rejected', 'failed', 'expired', 'cancelled', 'awaiting_payment', 'provisioning', 'ready', 'delivered'];

async function jobs(query: URLSearchParams): Promise<HTMLElement> {
  const filter = query.get('state') ?? '';
  const { jobs: rows } = await api<{ jobs: JobRow[] }>(`jobs?limit=200${filter ? `&state=${encodeURIComponent(filter)}` : ''}`);
  const select = h('select', { id: 'state-filter', 'aria-label': 'filter by state' }, h('option', { value: '' }, 'every state'), ...JOB_STATES.map((s) => h('option', { value: s, selected: s === filter }, s))) as HTMLSelectElement;
  select.addEventListener('change', () => (location.hash = select.value ? `#/jobs?state=${select.value}` : '#/jobs'));
  return h(
    'div',
    {},
    h('h1', {}, 'Jobs'),
    h('div', { class: 'toolbar' }, select, h('span', { class: 'muted' }, `${rows.length} shown · live`)),
    table(
      ['age', 'kind', 'state', ['sats in', 'num'], ['cost', 'num'], 'customer', ['request', 'hide-sm']],
      rows.map((j) =>
        h(
          'tr',
          { 'data-job-id': j.id, 'data-state': j.state },
          h('td', { title: time(j.createdAt) }, h('a', { href: `#/jobs/${j.id}` }, age(j.createdAt))),
          h('td', {}, j.type === 'node' ? 'node order' : j.private ? 'text (private)' : 'text'),
          h('td', {}, state(j.state)),
          h('td', { class: 'num' }, sats(j.satsIn)),
          h('td', { class: 'num', title: j.costSats === null ? '' : `${j.costSats} sats` }, usd(j.costUsd)),
          h('td', {}, j.customer),
          h('td', { class: 'wrap hide-sm' }, j.summary),
        ),
      ),
    ),
  );
}

async function job(id: string): Promise<HTMLElement> {
  const p = await api<{ row: JobRow; facts: Record<string, unknown>; timeline: TimelineEntry[] }>(`jobs/${encodeURIComponent(id)}`);
  const facts = Object.entries(p.facts).filter(([, v]) => v !== null && v !== undefined);
  return h(
    'div',
    {},
    h('h1', {}, p.row.type === 'node' ? 'Node order ' : 'Job ', h('code', {}, id.slice(0, 16)), '… ', state(p.row.state)),
    h(
      'div',
      { class: 'cards' },
      card('sats in', sats(p.row.satsIn)),
      card('model cost', usd(p.row.costUsd), p.row.costSats === null ? undefined : `${p.row.costSats} sats`),
      card('customer', p.row.customer, p.row.source),
      card('age', age(p.row.createdAt), time(p.row.createdAt)),
    ),
    h('h2', {}, 'Timeline'),
    h(
      'ol',
      { class: 'timeline', id: 'timeline' },
      ...p.timeline.map((e) => h('li', { class: e.what, 'data-what': e.what }, h('span', { class: 'at' }, preciseTime(e.at)), e.text, e.detail ? h('pre', {}, JSON.stringify(e.detail, null, 2)) : null)),
    ),
    facts.length ? h('h2', {}, 'Facts') : null,
    facts.length ? h('dl', { class: 'facts' }, ...facts.flatMap(([k, v]) => [h('dt', {}, k), h('dd', {}, typeof v === 'object' ? JSON.stringify(v) : String(v))])) : null,
  );
}

async function sessions(): Promise<HTMLElement> {
  const { sessions: rows } = await api<{ sessions: { id: string; state: string; origin: string; customer: string; balanceSats: number; createdAt: number; lastUsedAt: number }[] }>('sessions');
  return h(
    'div',
    {},
    h('h1', {}, 'Sessions'),
    table(
      ['session', 'state', ['balance', 'num'], 'customer', 'origin', 'last used'],
      rows.map((s) => h('tr', {}, h('td', {}, h('a', { href: `#/sessions/${s.id}` }, `${s.id.slice(0, 12)}…`)), h('td', {}, state(s.state)), h('td', { class: 'num' }, sats(s.balanceSats)), h('td', {}, s.customer || '—'), h('td', {}, s.origin), h('td', {}, `${age(s.lastUsedAt)} ago`))),
    ),
  );
}

async function session(id: string): Promise<HTMLElement> {
  const s = await api<{ id: string; state: string; balanceSats: number; customer: string; entries: { kind: string; amountSats: number; jobId: string | null; createdAt: number }[] }>(`sessions/${encodeURIComponent(id)}`);
  return h(
    'div',
    {},
    h('h1', {}, 'Session ', h('code', {}, id.slice(0, 16)), '… ', state(s.state)),
    h('div', { class: 'cards' }, card('balance', sats(s.balanceSats)), card('customer', s.customer || '—')),
    h('h2', {}, 'Ledger'),
    table(
      ['when', 'kind', ['amount', 'num'], 'job'],
      s.entries.map((e) => h('tr', {}, h('td', {}, time(e.createdAt)), h('td', {}, e.kind), h('td', { class: 'num' }, sats(e.amountSats)), h('td', {}, e.jobId ? h('a', { href: `#/jobs/${e.jobId}` }, `${e.jobId.slice(0, 10)}…`) : '—'))),
    ),
  );
}

async function credits(): Promise<HTMLElement> {
  const c = await api<{ owed: { account: string; balanceSats: number }[]; entries: { account: string; deltaSats: number; reason: string; jobId: string | null; createdAt: number }[] }>('credits');
  return h(
    'div',
    {},
    h('h1', {}, 'Credits'),
    h('h2', {}, 'Who is owed what'),
    table(['account', ['owed', 'num']], c.owed.map((o) => h('tr', {}, h('td', {}, o.account), h('td', { class: 'num' }, sats(o.balanceSats)))), 'nobody is owed anything'),
    h('h2', {}, 'Newest entries'),
    table(
      ['when', 'account', ['amount', 'num'], 'why', 'job'],
      c.entries.map((e) => h('tr', {}, h('td', {}, time(e.createdAt)), h('td', {}, e.account), h('td', { class: 'num' }, sats(e.deltaSats)), h('td', { class: 'wrap' }, e.reason), h('td', {}, e.jobId ? h('a', { href: `#/jobs/${e.jobId}` }, `${e.jobId.slice(0, 10)}…`) : '—'))),
    ),
  );
}

async function orders(): Promise<HTMLElement> {
  const { orders: rows } = await api<{ orders: (JobRow & { size: string; region: string; dropletId: string | null; ip: string | null; progress: string | null; error: string | null })[] }>('orders');
  return h(
    'div',
    {},
    h('h1', {}, 'Node orders'),
    table(
      ['age', 'state', 'size', 'region', ['sats in', 'num'], 'droplet', 'ip', 'customer', ['progress', 'hide-sm']],
      rows.map((o) =>
        h(
          'tr',
          {},
          h('td', {}, h('a', { href: `#/jobs/${o.id}` }, age(o.createdAt))),
          h('td', {}, state(o.state)),
          h('td', {}, o.size),
          h('td', {}, o.region),
          h('td', { class: 'num' }, sats(o.satsIn)),
          h('td', {}, o.dropletId ?? '—'),
          h('td', {}, o.ip ?? '—'),
          h('td', {}, o.customer),
          h('td', { class: 'wrap hide-sm' }, o.error ?? o.progress ?? ''),
        ),
      ),
    ),
  );
}

async function relays(): Promise<HTMLElement> {
  const { relays: rows } = await api<{ relays: { url: string; read: boolean; write: boolean; connected: boolean; lastError: string | null; accepted: number; refused: number; lastRefusal: string | null }[] }>('relays');
  return h(
    'div',
    {},
    h('h1', {}, 'Relays'),
    table(
      ['relay', 'state', 'use', ['acks', 'num'], ['refused', 'num'], 'last error'],
      rows.map((r) =>
        h(
          'tr',
          {},
          h('td', {}, r.url),
          h('td', { class: r.connected ? 'ok' : 'bad' }, r.connected ? 'connected' : 'down'),
          h('td', {}, [r.read && 'read', r.write && 'write'].filter(Boolean).join(' + ')),
          h('td', { class: 'num' }, fmt(r.accepted)),
          h('td', { class: 'num' }, fmt(r.refused)),
          h('td', { class: 'wrap' }, r.lastError ?? r.lastRefusal ?? '—'),
        ),
      ),
    ),
  );
}

// --- routing and the live feed ---

async function route(): Promise<HTMLElement> {
  const [path = '', q = ''] = location.hash.replace(/^#/, '').split('?');
  const parts = path.split('/').filter(Boolean);
  const query = new URLSearchParams(q);
  for (const a of document.querySelectorAll('header nav a')) a.classList.toggle('on', a.getAttribute('href') === `#/${parts[0] ?? ''}`);
  switch (parts[0]) {
    case 'jobs':
      return parts[1] ? job(parts[1]) : jobs(query);
    case 'sessions':
      return parts[1] ? session(parts[1]) : sessions();
    case 'credits':
      return credits();
    case 'orders':
      return orders();
    case 'relays':
      return relays();
    default:
      return overview();
  }
}

const app = document.getElementById('app')!;
let drawing = false;
let again = false;

/** Draws the current page; a redraw asked for meanwhile runs once the current one is done. */
async function draw(): Promise<void> {
  if (drawing) {
    again = true;
    return;
  }
  drawing = true;
  try {
    const page = await route();
    for (const c of charts.splice(0)) c.destroy();
    app.replaceChildren(page);
    document.body.dataset.drawn = String(Number(document.body.dataset.drawn ?? 0) + 1); // for tests: a redraw happened
  } catch (err) {
    if (err instanceof Unauthorized) location.href = '/console';
    else app.replaceChildren(h('p', { class: 'bad' }, `Could not load this page: ${(err as Error).message}`));
  } finally {
    drawing = false;
    if (again) {
      again = false;
      void draw();
    }
  }
}

function follow(): void {
  const live = document.getElementById('live');
  const feed = new EventSource('/console/api/events');
  let timer: number | undefined;
  feed.addEventListener('open', () => live?.classList.add('on'));
  feed.addEventListener('error', () => live?.classList.remove('on')); // EventSource reconnects by itself
  feed.addEventListener('change', () => {
    // A burst of writes is one redraw, at most every 400 ms.
    timer ??= window.setTimeout(() => {
      timer = undefined;
      void draw();
    }, 400);
  });
}

window.addEventListener('hashchange', () => void draw());
void draw();
follow();
