// Does Chromium give IndexedDB's space back after a compaction? A persistent profile on disk,
// the page's package, a synthetic chain imported until the hot store holds `--blocks` blocks,
// then one compaction (discard mode: every dead block is deleted). Prints the origin's usage
// (`navigator.storage.estimate()`) and the bytes of the profile's IndexedDB folder on disk,
// before, right after, 10 s after, after closing the store, and after reopening it.
//
//   node bench/idb-space.mjs [--blocks 100000] [--state 2000] [--rotate 1]
//
// `--rotate` is the store's `rotation` (default 1, the store's default; -1: false, never):
// with a rotation the compaction copies the live hot blocks to a new database and deletes the
// old one.
// `--state` is the synthetic state tree's size: small, most of what the chain wrote is dead
// at the compaction; large, most is still live.
//
// Needs the page's dependencies (scripts/test-www.sh installs them) and Chromium.

import { arg, bytesUnder, withPagePersisted } from './common.mjs';

const BLOCKS = arg('blocks', 100_000);
const STATE = arg('state', 2000);
const ROTATE = arg('rotate', 1);

await withPagePersisted('idb-space', async ({ ctx, page, idbDir }) => {
  const rows = [];
  const sample = async (when) => {
    const usage = await page.evaluate(async () => (await navigator.storage.estimate()).usage);
    rows.push({ when, usage, disk: bytesUnder(idbDir) });
    console.error(`${when}: usage ${usage}, disk ${rows.at(-1).disk}`);
  };
  const config = {
    mode: 'discard', finality: 10, thresholdFinalities: 1_000_000, boundaryFinalities: 1, syncGapSecs: null,
    persist: false, purgeSleepFactor: 0, rotation: ROTATE < 0 ? false : ROTATE,
  };
  const filled = await page.evaluate(async ({ config, BLOCKS, STATE }) => {
    const pkg = await import('splitstore-wasm');
    window.pkg = pkg;
    window.store = await pkg.SplitStore.open('space', config);
    const chain = new pkg.SyntheticChain({ seed: 3, stateObjects: STATE, churnPercent: 10, blockTimeSecs: 30 });
    let blocks = 0;
    let bytes = 0;
    while (blocks < BLOCKS) {
      const e = chain.nextEpochCar();
      const r = await window.store.importCar(e.car);
      blocks += Number(r.blocks);
      bytes += e.bytes;
    }
    return { blocks, bytes, head: Number((await window.store.info()).headEpoch) };
  }, { config, BLOCKS, STATE });
  console.error(`imported ${filled.blocks} blocks (${filled.bytes} bytes) up to epoch ${filled.head}`);
  await sample('before the compaction');
  const report = await page.evaluate(async () => {
    const r = await window.store.compact();
    return {
      dead: Number(r.dead), purged: Number(r.purged), marked: Number(r.marked), ms: Number(r.totalMs),
      reclaimMs: Number(r.phases.find((p) => p.phase === 'reclaim')?.ms ?? NaN),
    };
  });
  await sample('right after it');
  await new Promise((ok) => setTimeout(ok, 10_000));
  await sample('10 s after it');
  await page.evaluate(() => window.store.close());
  await new Promise((ok) => setTimeout(ok, 10_000));
  await sample('store closed, 10 s later');
  await page.evaluate(async (config) => {
    window.store = await window.pkg.SplitStore.open('space', config);
  }, config);
  await sample('reopened');
  const counts = await page.evaluate(async () => Number((await window.store.count()).hot.bytes));
  await page.evaluate(() => window.store.close());

  const mb = (n) => (n / 1e6).toFixed(1);
  console.log(`Chromium ${ctx.browser()?.version() ?? ''}: ${filled.blocks} blocks imported (${mb(filled.bytes)} MB of block data), `
    + `${report.purged} purged of ${report.dead} dead, ${report.marked} marked; hot holds ${mb(counts)} MB of blocks after; `
    + `rotation ${config.rotation}; compaction ${report.ms} ms (reclaim ${report.reclaimMs} ms).`);
  console.log('\n| when | origin usage (estimate) | IndexedDB files on disk | disk / before |');
  console.log('|---|---|---|---|');
  for (const r of rows) {
    console.log(`| ${r.when} | ${mb(r.usage)} MB | ${mb(r.disk)} MB | ${(r.disk / rows[0].disk).toFixed(2)} |`);
  }
});
