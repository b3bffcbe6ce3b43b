// Which way of dropping dead IndexedDB data gives the disk space back in Chromium? Raw
// IndexedDB in a persistent profile on disk: `--entries` values of `--bytes` random bytes are
// written, then all but one in 16 are dropped by one of three ways, each in a fresh profile:
//
//   delete    deleting the entries in place (what a purge does);
//   store     copying the live entries to a new object store and deleting the old store
//             (a version change: "rotating the object store");
//   database  copying the live entries to a new database and deleting the old database.
//
// Prints the IndexedDB folder's bytes on disk after the drop, 10 s later, 30 s after closing
// every connection, and after reopening.
//
//   node bench/idb-reclaim.mjs [--entries 100000] [--bytes 400]
//
// Needs the page's dependencies (scripts/test-www.sh installs them) and Chromium.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { startServer } from '../server.mjs';
import { arg, bytesUnder, CHROMIUM } from './common.mjs';

const ENTRIES = arg('entries', 100_000);
const BYTES = arg('bytes', 400);
const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

/** Helpers defined in the page: promisified requests, transactions and opens. */
function pageHelpers() {
  window.req = (r) => new Promise((ok, no) => { r.onsuccess = () => ok(r.result); r.onerror = () => no(r.error); });
  window.done = (t) => new Promise((ok, no) => { t.oncomplete = ok; t.onabort = () => no(t.error); });
  window.openDb = (name, version, upgrade) => new Promise((ok, no) => {
    const r = indexedDB.open(name, version);
    r.onupgradeneeded = () => upgrade?.(r.result);
    r.onsuccess = () => ok(r.result);
    r.onerror = () => no(r.error);
  });
}

async function run(server, way) {
  const profile = mkdtempSync(join(tmpdir(), 'splitstore-idb-reclaim-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  try {
    const page = await ctx.newPage();
    await page.goto(server.url);
    await page.evaluate(pageHelpers);
    const idbDir = join(profile, 'Default', 'IndexedDB');
    const row = { way };
    const sample = (when) => { row[when] = bytesUnder(idbDir); };
    await page.evaluate(async ({ ENTRIES, BYTES }) => {
      window.db = await openDb('x', 1, (db) => db.createObjectStore('a'));
      for (let b = 0; b < ENTRIES; b += 1000) {
        const t = db.transaction('a', 'readwrite');
        const s = t.objectStore('a');
        for (let i = b; i < Math.min(b + 1000, ENTRIES); i++) {
          const v = new Uint8Array(BYTES);
          crypto.getRandomValues(v);
          s.put(v, i);
        }
        await done(t);
      }
    }, { ENTRIES, BYTES });
    sample('filled');
    row.name = await page.evaluate(async ({ way, ENTRIES }) => {
      const live = [];
      for (let i = 0; i < ENTRIES; i += 16) live.push(i);
      if (way === 'delete') {
        const t = db.transaction('a', 'readwrite');
        for (let i = 0; i < ENTRIES; i++) if (i % 16 !== 0) t.objectStore('a').delete(i);
        await done(t);
        return 'x';
      }
      const t = db.transaction('a', 'readonly');
      const values = await Promise.all(live.map((k) => req(t.objectStore('a').get(k))));
      db.close();
      const copy = (s) => live.forEach((k, i) => s.put(values[i], k));
      if (way === 'store') {
        window.db = await openDb('x', 2, (d) => { copy(d.createObjectStore('b')); d.deleteObjectStore('a'); });
        return 'x';
      }
      window.db = await openDb('y', 1, (d) => copy(d.createObjectStore('a')));
      await req(indexedDB.deleteDatabase('x'));
      return 'y';
    }, { way, ENTRIES });
    sample('dropped');
    await sleep(10_000);
    sample('10 s later');
    await page.evaluate(() => db.close());
    await sleep(30_000);
    sample('closed 30 s');
    await page.evaluate(async (name) => { window.db = await openDb(name); }, row.name);
    await sleep(1_000);
    sample('reopened');
    await page.evaluate(() => db.close());
    return { row, version: ctx.browser()?.version() ?? '' };
  } finally {
    await ctx.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

const server = await startServer({ port: 0 });
try {
  const rows = [];
  let version = '';
  for (const way of ['delete', 'store', 'database']) {
    const r = await run(server, way);
    rows.push(r.row);
    version = r.version;
    console.error(way, r.row);
  }
  const mb = (n) => (n / 1e6).toFixed(1);
  const live = (ENTRIES / 16) * BYTES;
  console.log(`Chromium ${version}: ${ENTRIES} entries of ${BYTES} B, ${mb(live)} MB live after the drop`);
  console.log('\n| way | filled | dropped | 10 s later | closed 30 s | reopened | reopened / live |');
  console.log('|---|---|---|---|---|---|---|');
  for (const r of rows) {
    console.log(`| ${r.way} | ${mb(r.filled)} MB | ${mb(r.dropped)} MB | ${mb(r['10 s later'])} MB | `
      + `${mb(r['closed 30 s'])} MB | ${mb(r.reopened)} MB | ${(r.reopened / live).toFixed(1)}× |`);
  }
} finally {
  await server.close();
}
