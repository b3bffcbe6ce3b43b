// The packed package as a user's Vite app uses it (built into dist/ by scripts/test-npm.sh),
// in headless Chromium: the interface-blockstore contract suite in both pin modes, Helia
// beside a compacting chain, and a store inside a Web Worker.

import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { startServer } from '../../../www/server.mjs';

const DIST = fileURLToPath(new URL('../dist/', import.meta.url));
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking',
  '--disable-component-update', '--disable-sync', '--no-first-run'];

const TESTDATA = process.env.SPLITSTORE_TESTDATA
  ?? resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..', '..', 'shared', 'testdata');
// The chain files the Helia page fetches, served from the shared test data.
const FIXTURES = join(TESTDATA, 'kubo-lotus-testnet');

let server;
let browser;

before(async () => {
  if (!existsSync(`${DIST}contract.html`)) throw new Error(`no build in ${DIST}: run scripts/test-npm.sh`);
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: run scripts/setup.sh`);
  if (!existsSync(FIXTURES)) throw new Error(`test data not found at ${FIXTURES}: set SPLITSTORE_TESTDATA`);
  server = await startServer({ port: 0, root: DIST });
  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
});

after(async () => {
  await browser?.close();
  await server?.close();
});

/** Opens `page` in a fresh context (its own IndexedDB) and waits for its `window.result`. */
async function result(page, timeout) {
  const ctx = await browser.newContext();
  await ctx.route('**/fixtures/*.car', (route) => {
    const file = join(FIXTURES, new URL(route.request().url()).pathname.split('/').pop());
    return existsSync(file) ? route.fulfill({ path: file, contentType: 'application/vnd.ipld.car' })
      : route.fulfill({ status: 404 });
  });
  const tab = await ctx.newPage();
  const errors = [];
  tab.on('pageerror', (e) => errors.push(e.message));
  try {
    await tab.goto(`${server.url}${page}`);
    await tab.waitForFunction(() => window.result !== undefined, null, { timeout });
    const out = await tab.evaluate(() => window.result);
    return { ...out, errors };
  } finally {
    await ctx.close();
  }
}

test('the interface-blockstore contract suite passes in both pin modes', async () => {
  const r = await result('contract.html', 600_000);
  assert.deepEqual(r.failures, [], 'failures');
  // The suite's 18 tests (interface-blockstore-tests 9.0.1), once per pin mode.
  assert.equal(r.passes.length, 36, r.passes.join('\n'));
  assert.ok(r.ok);
});

test('Helia keeps its data in the store beside a compacting chain, and its gc honours its pins', async () => {
  const r = await result('helia.html', 300_000);
  assert.ok(r.ok, `${r.error}\n${r.stack}\n${r.errors.join('\n')}`);
  assert.deepEqual(r.steps.at(-1), { notFound: 'NotFoundError', offline: 'BlockNotFoundWhileOfflineError' });
});

test('the package runs inside a Web Worker', async () => {
  const r = await result('worker.html', 120_000);
  assert.ok(r.ok, JSON.stringify(r));
  assert.equal(r.isWorker, true);
});
