// A store at its storage limit, in headless Chromium with a quota the test sets: the package
// itself (loaded by the page), real IndexedDB, a synthetic chain written in the orders real
// nodes write (each epoch in pieces, children first or parents first, then the head change).
//
// The browser's own quota (set through the DevTools protocol) is the store's limit, as an
// embedder that knows its quota sets it: the store refuses the node's writes at
// `limit - reserve`, and its compaction must then fit under the browser's quota with what the
// reserve kept (the browser refuses any write past it).

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { launch, newPage, openPage } from './harness.mjs';

const MiB = 1024 * 1024;
const LIMIT = 24 * MiB;
const BROWSER_QUOTA = LIMIT;
/** The default reserve: a quarter of the limit. */
const RESERVE = LIMIT / 4;

let env;
before(async () => {
  env = await launch();
});
after(async () => {
  await env?.close();
});

/** Installs `window.t`: the store, a seeded chain and a writer that follows real-node orders. */
async function setUp(page, { name, seed, config }) {
  await page.evaluate(async ({ name, seed, config }) => {
    const pkg = await import('splitstore-wasm');
    let rng = seed;
    const random = () => {
      rng = (rng * 1103515245 + 12345) % 2147483648;
      return rng / 2147483648;
    };
    const t = {
      pkg,
      config,
      store: await pkg.SplitStore.open(name, config),
      chain: new pkg.SyntheticChain({ seed, stateObjects: 2000, churnPercent: 10, blockTimeSecs: 30 }),
      pending: null,
      /** Epochs written whole, and the height of the last. */
      epochs: 0,
      written: 0,
      /** Writes the next epoch; a refused epoch keeps the pieces that landed and is retried as is. */
      async writeEpoch() {
        const e = t.pending ?? t.chain.nextEpoch();
        t.pending = e;
        const blocks = e.blocks.map(([cid, bytes]) => ({ cid, bytes }));
        if (random() < 0.5) blocks.reverse();
        const cut = 1 + Math.floor(random() * (blocks.length - 1));
        for (const piece of [blocks.slice(0, cut), blocks.slice(cut)]) await t.store.putMany(piece);
        await t.store.headChange(e.tipset);
        t.pending = null;
        t.epochs += 1;
        t.written = e.height;
      },
      /** Writes epochs until one is refused (returns its error) or `max` were written. */
      async writeUntilRefused(max) {
        for (let i = 0; i < max; i += 1) {
          try {
            await t.writeEpoch();
          } catch (e) {
            return { code: e.code, message: e.message, at: t.written, epochs: t.epochs };
          }
        }
        return null;
      },
      async usage() {
        return Number((await t.store.info()).storage.usage);
      },
    };
    window.t = t;
  }, { name, seed, config });
}

const fullConfig = {
  mode: 'discard', finality: 10, thresholdFinalities: 100000, boundaryFinalities: 1, syncGapSecs: null,
  persist: false, purgeSleepFactor: 1, storageLimit: LIMIT, compactAtShare: null,
};

describe('a store at its storage limit', () => {
  test('refuses the node\'s writes with a clear error, compacts back, survives a reload mid-purge and takes writes again', async () => {
    const { ctx, page } = await newPage(env);
    await openPage(page, env.url);
    const cdp = await ctx.newCDPSession(page);
    await cdp.send('Storage.overrideQuotaForOrigin', { origin: new URL(env.url).origin, quotaSize: BROWSER_QUOTA });
    await setUp(page, { name: 'full', seed: 7, config: fullConfig });

    // Fill: the first refused write names the database, the limit and the next step.
    const refused = await page.evaluate(() => window.t.writeUntilRefused(5000));
    assert.ok(refused, 'the store never reached its limit');
    assert.equal(refused.code, 'QuotaExceeded');
    assert.match(refused.message, /full-hot: the store's storage limit is reached/);
    assert.match(refused.message, new RegExp(`the limit is ${LIMIT} bytes, of which ${RESERVE} are kept for compactions`));
    assert.match(refused.message, /compact\(\) frees space/);
    const full = await page.evaluate(async () => {
      const t = window.t;
      const info = await t.store.info();
      // Writing on is refused again, with the same error. (The browser's own cleanup of
      // deleted entries may free a little room first and let an epoch or two through.)
      const again = await t.writeUntilRefused(5);
      const check = await t.store.check();
      const after = await t.store.info();
      return {
        head: Number(info.headEpoch), headAfter: Number(after.headEpoch), usage: Number(after.storage.usage),
        limit: Number(after.storage.limit), reserve: Number(after.storage.reserve), again, missing: Number(check.missing),
        hot: Number((await t.store.count()).hot.keys),
      };
    });
    console.log(`refused at epoch ${refused.at}, again at ${full.again?.at}: usage ${full.usage} of limit ${full.limit}, `
      + `${full.hot} blocks hot`);
    assert.equal(full.head, refused.at, 'the head is the last epoch written whole');
    assert.ok(full.again, 'writing on is not refused again');
    assert.equal(full.headAfter, full.again.at, 'a refused write changes nothing: the head is the last epoch written whole');
    assert.equal(full.limit, LIMIT);
    assert.equal(full.reserve, RESERVE);
    assert.ok(full.usage > LIMIT - RESERVE - MiB && full.usage < BROWSER_QUOTA, `usage ${full.usage}`);
    assert.equal(full.again.code, 'QuotaExceeded');
    assert.match(full.again.message, /storage limit is reached/);
    assert.equal(full.missing, 0, 'nothing reachable from the head is missing');

    // A compaction of the full store starts; the page is reloaded in the middle of its purge.
    const peak = await page.evaluate(async () => {
      let peak = 0;
      const sample = setInterval(async () => {
        peak = Math.max(peak, (await navigator.storage.estimate()).usage);
      }, 50);
      await new Promise((ok) => {
        window.t.store.compact((p) => {
          if (p.phase === 'purge' && p.done > 0) ok();
        }).catch(() => {});
      });
      clearInterval(sample);
      return peak;
    });
    // The compaction's own writes (its dead list, its purge record) fit in the reserve.
    console.log(`the compaction's usage peaked at ${peak} bytes before its purge`);
    assert.ok(peak >= full.usage && peak < LIMIT, `peak ${peak}`);
    await openPage(page, env.url);
    await setUp(page, { name: 'full', seed: 7, config: fullConfig });
    const reopened = await page.evaluate(async ({ epochs, at }) => {
      const t = window.t;
      // The same chain, past the epochs written whole; the refused one comes next again.
      t.chain.skip(epochs);
      [t.epochs, t.written] = [epochs, at];
      const info = await t.store.info();
      const check = await t.store.check();
      return {
        recovered: Boolean(info.recovery?.finishedPurge), recoveryPurged: Number(info.recovery?.purged ?? 0),
        head: Number(info.headEpoch), missing: Number(check.missing), hot: Number((await t.store.count()).hot.keys),
      };
    }, full.again);
    console.log(`reopened: the recovery purged ${reopened.recoveryPurged}; ${reopened.hot} blocks hot`);
    assert.ok(reopened.recovered, 'the reopened store finished the interrupted purge');
    assert.ok(reopened.recoveryPurged > 0);
    assert.ok(reopened.hot < full.hot);
    assert.equal(reopened.head, full.again.at);
    assert.equal(reopened.missing, 0);

    // Compacting frees space below the limit's reserve, and the node's writes go on.
    const back = await page.evaluate(async () => {
      const t = window.t;
      const report = await t.store.compact();
      const usage = await t.usage();
      const start = Number((await t.store.info()).headEpoch);
      const refused = await t.writeUntilRefused(30);
      const check = await t.store.check();
      return {
        dead: Number(report.dead), usage, start, head: Number((await t.store.info()).headEpoch), refused,
        written: t.written, missing: Number(check.missing),
      };
    });
    console.log(`after the compaction: ${back.dead} dead, usage ${back.usage}`);
    assert.ok(back.usage < LIMIT - RESERVE, `usage ${back.usage} after the compaction`);
    assert.equal(back.refused, null, `a write was refused after the compaction: ${JSON.stringify(back.refused)}`);
    assert.equal(back.head, back.written);
    assert.ok(back.written >= back.start + 30);
    assert.equal(back.missing, 0);
    await page.evaluate(() => window.t.store.close());
    assert.deepEqual(page.consoleErrors, []);
    await ctx.close();
  });

  test('compacts early on its own once usage reaches a share of the limit, before any write is refused', async () => {
    const { ctx, page } = await newPage(env);
    await openPage(page, env.url);
    const cdp = await ctx.newCDPSession(page);
    await cdp.send('Storage.overrideQuotaForOrigin', { origin: new URL(env.url).origin, quotaSize: BROWSER_QUOTA });
    await setUp(page, { name: 'early', seed: 11, config: { ...fullConfig, compactAtShare: 0.3, purgeSleepFactor: 0 } });
    const r = await page.evaluate(async () => {
      const t = window.t;
      const reports = [];
      t.store.events.addEventListener('compactionend', (e) => reports.push(e.detail));
      let peak = 0;
      let refused = null;
      // A node syncing at a steady pace the compaction keeps up with: four epochs a second.
      for (let i = 0; i < 150 && !refused; i += 1) {
        const next = performance.now() + 250;
        refused = await t.writeUntilRefused(1);
        if (i % 10 === 0) peak = Math.max(peak, await t.usage());
        await new Promise((ok) => setTimeout(ok, Math.max(0, next - performance.now())));
      }
      while ((await t.store.info()).compacting) await new Promise((ok) => setTimeout(ok, 100));
      const check = await t.store.check();
      return {
        refused, peak, head: t.written, missing: Number(check.missing),
        reports: reports.map((x) => ({
          early: x.overSizeLimit, head: Number(x.headEpoch), purged: Number(x.purged),
          ms: x.phases.reduce((a, p) => a + Number(p.ms), 0),
        })),
      };
    });
    console.log(`early compactions: ${JSON.stringify(r.reports)}; peak usage ${r.peak}`);
    assert.equal(r.refused, null, `a write was refused: ${JSON.stringify(r.refused)}`);
    assert.ok(r.reports.length >= 2, `${r.reports.length} compactions`);
    assert.ok(r.reports.every((x) => x.early && x.purged > 0));
    // The epoch threshold (100000 finalities) never came near: every compaction was early.
    assert.ok(r.head >= 150);
    assert.ok(r.peak < LIMIT - RESERVE, `peak usage ${r.peak}`);
    assert.equal(r.missing, 0);
    await page.evaluate(() => window.t.store.close());
    assert.deepEqual(page.consoleErrors, []);
    await ctx.close();
  });
});
