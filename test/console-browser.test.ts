// The operator console in a real browser: headless Chromium (Debian's `chromium` package) driven with
// playwright-core against the real daemon and relay. A wrong token is refused; the right one logs in; a paid
// job appears on the jobs page without a reload, its timeline opens, the revenue chart's data moves. Each
// page is saved as a screenshot under test-artifacts/console (CONSOLE_SCREENSHOT_DOCS=1 also refreshes the
// README's docs/console.png).
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { ROOT, startDaemon, startRelay, type DaemonProc, type RelayProc } from './helpers/procs.ts';
import { Customer, payStub } from './helpers/customer.ts';
import { consoleToken, paidJob } from './helpers/console.ts';
import { TIME_SCALE } from './helpers/wait.ts';

const CHROMIUM = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p): p is string => !!p && existsSync(p));
const ARTIFACTS = join(ROOT, 'test-artifacts', 'console');
const WAIT_MS = 15_000 * TIME_SCALE; // a backstop: every wait below is for something the page must show

if (!CHROMIUM) {
  process.stderr.write(
    '\n  SKIPPED test/console-browser.test.ts: no Chromium found (/usr/bin/chromium; set CHROMIUM_PATH, or `apt-get install -y chromium`).\n' +
      '  Not tested in a browser: login with the token, a wrong token refused, a paid job appearing live, its timeline, the revenue chart moving, the screenshots.\n\n',
  );
}

describe.skipIf(!CHROMIUM)('operator console in Chromium', () => {
  let relay: RelayProc;
  let daemon: DaemonProc;
  let customer: Customer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;

  beforeAll(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    relay = await startRelay();
    daemon = await startDaemon({ relays: [relay.url] });
    customer = await new Customer([relay.url], daemon.pubkey).connect();
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-dev-shm-usage'] });
    context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    page = await context.newPage();
    page.setDefaultTimeout(WAIT_MS);
  });
  afterAll(async () => {
    await browser?.close();
    customer?.close();
    await daemon?.kill();
    await relay?.stop();
  });

  const shot = (name: string) => page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });

  it('refuses a wrong token, and the API without the cookie', async () => {
    const res = await page.goto(`${daemon.api}/console?token=not-the-operator-token`);
    expect(res?.status()).toBe(401);
    await expect(page.locator('.why').textContent()).resolves.toContain('not right');
    const api = await page.evaluate(async () => (await fetch('/console/api/jobs')).status);
    expect(api).toBe(401);
    await shot('login-refused');
  });

  it('logs in with the token: the token leaves the address bar and an HttpOnly cookie holds the login', async () => {
    const res = await page.goto(`${daemon.api}/console?token=${encodeURIComponent(consoleToken(daemon))}`);
    expect(res?.status()).toBe(200);
    expect(page.url()).toBe(`${daemon.api}/console`);
    const [cookie] = await context.cookies();
    expect(cookie).toMatchObject({ name: 'timmy_console', httpOnly: true, sameSite: 'Strict' });
    expect(cookie!.value).not.toContain(consoleToken(daemon));
    await page.locator('#revenue-chart[data-received-sats="0"]').waitFor();
    await page.locator('#revenue-chart canvas').waitFor();
  });

  let job: { id: string; paidSats: number };

  it('shows a paid job on the jobs page as it happens, without a reload, and opens its timeline', async () => {
    await page.click('header nav a[href="#/jobs"]');
    await page.locator('#state-filter').waitFor();
    await page.evaluate(() => ((globalThis as unknown as { notReloaded: boolean }).notReloaded = true));
    job = await paidJob(customer, daemon, 'How many sats make a bitcoin?');
    const row = page.locator(`tr[data-job-id="${job.id}"][data-state="complete"]`);
    await row.waitFor();
    await expect(row.textContent()).resolves.toContain(`${job.paidSats} sats`);
    expect(await page.evaluate(() => (globalThis as unknown as { notReloaded?: boolean }).notReloaded)).toBe(true);
    await shot('jobs');

    await row.locator('a').first().click();
    await page.locator('#timeline li[data-what="result"]').waitFor();
    const timeline = await page.locator('#timeline').textContent();
    expect(timeline).toContain('request received over nostr');
    expect(timeline).toMatch(/eval invoice 10 sats paid/);
    expect(timeline).toMatch(/work invoice \d+ sats paid/);
    expect(timeline).toContain('feedback processing');
    expect(timeline).toMatch(new RegExp(`feedback processing[^—]*— event [0-9a-f]{12}…, relays: ${relay.url} OK`)); // each published event with its relay's ack
    expect(timeline).toContain('complete');
    await shot('job');
  });

  it('moves the revenue on the chart data', async () => {
    await page.click('header nav a[href="#/"]');
    await page.locator(`#revenue-chart[data-received-sats="${job.paidSats}"]`).waitFor();
    await page.locator('#revenue-chart canvas').waitFor();
    await expect(page.locator('#money').textContent()).resolves.toContain(`${job.paidSats} sats`);
    await shot('overview');
    if (process.env.CONSOLE_SCREENSHOT_DOCS === '1') copyFileSync(join(ARTIFACTS, 'overview.png'), join(ROOT, 'docs', 'console.png'));
  });

  it('filters jobs by state, and shows sessions, credits, node orders and relays', async () => {
    await page.goto(`${daemon.api}/console#/jobs?state=failed`);
    await page.locator('#state-filter').waitFor();
    expect(await page.locator('tr[data-job-id]').count()).toBe(0);
    await page.selectOption('#state-filter', 'complete');
    await page.locator(`tr[data-job-id="${job.id}"]`).waitFor();

    const s = (await (await fetch(`${daemon.api}/api/sessions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ amountSats: 250 }) })).json()) as {
      sessionId: string;
      depositInvoice: { paymentRequest: string };
    };
    await payStub(daemon.api, s.depositInvoice.paymentRequest);
    await page.click('header nav a[href="#/sessions"]');
    await page.locator(`a[href="#/sessions/${s.sessionId}"]`).waitFor();
    await page.getByText('250 sats').first().waitFor(); // the deposit counted, live
    await shot('sessions');
    await page.click(`a[href="#/sessions/${s.sessionId}"]`);
    await page.getByText('deposit', { exact: true }).waitFor();
    await shot('session');

    await page.click('header nav a[href="#/credits"]');
    await page.getByText('nobody is owed anything').waitFor();
    await shot('credits');
    await page.click('header nav a[href="#/orders"]');
    await page.locator('h1', { hasText: 'Node orders' }).waitFor();
    await shot('orders');
    await page.click('header nav a[href="#/relays"]');
    await page.locator('td', { hasText: relay.url }).waitFor();
    await expect(page.locator('td.ok').first().textContent()).resolves.toBe('connected');
    await shot('relays');
  });

  it('fits a phone', async () => {
    const phone = await context.newPage();
    await phone.setViewportSize({ width: 390, height: 844 });
    await phone.goto(`${daemon.api}/console#/`);
    await phone.locator('#revenue-chart canvas').waitFor({ timeout: WAIT_MS });
    // Nothing wider than the screen: the page does not scroll sideways.
    expect(await phone.evaluate(() => (globalThis as unknown as { document: { documentElement: { scrollWidth: number } } }).document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
    await phone.screenshot({ path: join(ARTIFACTS, 'overview-phone.png'), fullPage: true });
    await phone.close();
  });
});
