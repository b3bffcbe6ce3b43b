// Test harness: the page's own server, headless Chromium from the system, test data paths,
// screenshots, and small page helpers.

import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startServer } from '../server.mjs';

const WWW = fileURLToPath(new URL('..', import.meta.url));
export const ARTIFACTS = join(WWW, 'test-artifacts');

/** The shared test data folder; a missing folder fails loudly. */
export function testdata(...parts) {
  const root = process.env.SPLITSTORE_TESTDATA ?? resolve(WWW, '..', '..', 'shared', 'testdata');
  if (!existsSync(root)) {
    throw new Error(`test data not found at ${root}: set SPLITSTORE_TESTDATA to the shared testdata folder`);
  }
  const p = join(root, ...parts);
  if (!existsSync(p)) throw new Error(`test data file missing: ${p}`);
  return p;
}

/** `carinfo.py --json` for one file (the test data's own inspector). */
export function carinfo(path) {
  const out = execFileSync('python3', [testdata('carinfo.py'), path, '--json'], { encoding: 'utf8' });
  const all = JSON.parse(out);
  return Object.values(all)[0];
}

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const ARGS = [
  '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--disable-quic', '--no-first-run',
];

/** Starts the page server and the browser; `close()` stops both. */
export async function launch() {
  if (!existsSync(join(WWW, 'node_modules', 'splitstore-wasm', 'splitstore_wasm.js'))) {
    throw new Error('node_modules/splitstore-wasm is missing: run scripts/test-www.sh (builds the package, npm ci)');
  }
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: run scripts/setup.sh`);
  mkdirSync(ARTIFACTS, { recursive: true });
  const server = await startServer({ port: 0 });
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
  return {
    url: server.url,
    browser,
    async close() {
      await browser.close();
      await server.close();
    },
  };
}

/** A new page in a fresh context (its own IndexedDB), console errors collected. */
export async function newPage(env, { width = 1200, height = 900, context } = {}) {
  const ctx = context ?? (await env.browser.newContext({ viewport: { width, height } }));
  const page = await ctx.newPage();
  page.consoleErrors = [];
  page.on('console', (m) => {
    if (m.type() === 'error') page.consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => page.consoleErrors.push(`pageerror: ${e.message}`));
  return { ctx, page };
}

/** Loads the page and waits until its script finished starting. */
export async function openPage(page, url) {
  await page.goto(url);
  try {
    await page.waitForFunction(() => document.body.dataset.ready === 'true', null, { timeout: 30_000 });
  } catch (e) {
    const state = await page.evaluate(() => ({
      ready: document.body.dataset.ready,
      status: document.getElementById('store-status')?.textContent,
      messages: document.getElementById('messages')?.textContent,
    })).catch(() => null);
    throw new Error(`the page did not become ready: ${JSON.stringify(state)}; console: ${page.consoleErrors.join(' | ')}`, { cause: e });
  }
}

/** Fills the open-store form and opens the store. */
export async function openStore(page, {
  name, mode = 'universal', finality = 5, threshold = 2, boundary = 1, batchSize, syncCheck = false,
}) {
  await page.fill('#store-name', name);
  await page.selectOption('#mode', mode);
  await page.fill('#finality', String(finality));
  await page.fill('#threshold', String(threshold));
  await page.fill('#boundary', String(boundary));
  if (batchSize != null || syncCheck) {
    if (!(await page.locator('.advanced').evaluate((d) => d.open))) await page.click('.advanced summary');
    if (batchSize != null) await page.fill('#batch-size', String(batchSize));
    await page.setChecked('#sync-check', syncCheck);
  }
  await page.click('#open-btn');
  // Open, and its first `info` is on screen.
  await page.waitForFunction(() => window.splitstore.store != null && !document.getElementById('close-btn').disabled
    && (document.getElementById('stat-hot-objects').dataset.value ?? '') !== '');
}

/** The numbers the statistics panel shows (from their `data-value`). */
export async function shownStats(page) {
  return page.evaluate(() => {
    const v = (id) => {
      const s = document.getElementById(id).dataset.value;
      return s === '' || s == null ? null : Number(s);
    };
    return {
      headEpoch: v('stat-head'),
      baseEpoch: v('stat-base'),
      compactions: v('stat-compactions'),
      hotObjects: v('stat-hot-objects'),
      hotBytes: v('stat-hot-bytes'),
      coldObjects: v('stat-cold-objects'),
      coldBytes: v('stat-cold-bytes'),
    };
  });
}

/** What the page's store reports, read directly from it. */
export async function storeInfo(page) {
  return page.evaluate(async () => {
    const i = await window.splitstore.store.info();
    const c = await window.splitstore.store.count();
    const n = (x) => (x == null ? null : Number(x));
    return {
      headEpoch: n(i.headEpoch),
      baseEpoch: n(i.baseEpoch),
      compactions: n(i.compactions),
      hotObjects: n(c.hot.keys),
      hotBytes: n(c.hot.bytes),
      coldObjects: n(c.cold.keys),
      coldBytes: n(c.cold.bytes),
      compacting: Boolean(i.compacting),
      pendingRecovery: Boolean(i.pendingRecovery),
      recovered: Boolean(i.recoveredOnOpen || i.recovery?.finishedPurge),
    };
  });
}

/** Waits until no compaction runs (polling the store; up to `timeoutMs`). */
export async function untilIdle(page, timeoutMs = 120_000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const info = await storeInfo(page);
    if (!info.compacting) return info;
    if (Date.now() > end) throw new Error(`still compacting after ${timeoutMs} ms`);
    await new Promise((ok) => setTimeout(ok, 100));
  }
}

/** Waits for the store to be idle, makes the panel current, then returns what it shows and what the store reports. */
export async function settledStats(page) {
  await untilIdle(page);
  await page.evaluate(() => window.splitstore.refresh());
  return { shown: await shownStats(page), info: await storeInfo(page) };
}

/** The package's `exportCar(which)` of the page's store, as bytes. */
export async function exportCar(page, which) {
  const b64 = await page.evaluate(async (w) => {
    const bytes = await window.splitstore.store.exportCar(w);
    let s = '';
    for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    return btoa(s);
  }, which);
  return Buffer.from(b64, 'base64');
}

export async function screenshot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}
