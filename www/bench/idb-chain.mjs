// Compaction cost against chain length in Chromium (IndexedDB): two stores with the same state
// size, one holding a chain `--factor` times longer, each grown as a node grows it (one CAR per
// epoch, the head moved by the import, and the compaction the head decides, every three
// finalities, waited for). The last `--runs` compactions of each store, each after the same
// number of new epochs, are compared: medians and means of their times, medians of their mark
// phases, and the ratios. The mean is the cost per compaction when some rotate the database and
// others not. `--hot-key-list-mb` above 0 keeps the hot key list (`hotKeyListBytes`), so a
// collect visits it instead of reading every hot key.
//
//   node bench/idb-chain.mjs [--epochs 200] [--factor 10] [--runs 10] [--state 500] [--hot-key-list-mb 0]
//
// Needs the page's dependencies (scripts/test-www.sh installs them) and Chromium.

import { arg, mean, median, withBrowser } from './common.mjs';

const EPOCHS = arg('epochs', 200);
const FACTOR = arg('factor', 10);
const RUNS = arg('runs', 10);
const STATE = arg('state', 500);
const HOT_KEY_LIST_MB = arg('hot-key-list-mb', 0);

await withBrowser(async ({ browser, url }) => {
  const grow = async (epochs, name) => {
    const page = await browser.newPage();
    page.setDefaultTimeout(0);
    await page.goto(url);
    await page.waitForFunction(() => document.body.dataset.ready === 'true', null, { timeout: 30_000 });
    const r = await page.evaluate(async ({ epochs, name, RUNS, STATE, HOT_KEY_LIST_MB }) => {
      const pkg = await import('splitstore-wasm');
      const config = {
        mode: 'discard', finality: 10, thresholdFinalities: 3, boundaryFinalities: 2, messageRetention: 1,
        syncGapSecs: null, persist: false, purgeSleepFactor: 0, hotKeyListBytes: HOT_KEY_LIST_MB * 2 ** 20,
      };
      await pkg.SplitStore.destroy(name);
      const store = await pkg.SplitStore.open(name, config);
      const chain = new pkg.SyntheticChain({ seed: 11, stateObjects: STATE, blockTimeSecs: 30 });
      const reports = [];
      const t0 = performance.now();
      for (let i = 0; i < epochs; i += 1) {
        await store.importCar(chain.nextEpochCar().car);
        let info = await store.info();
        while (info.compacting) {
          await new Promise((ok) => setTimeout(ok, 5));
          info = await store.info();
        }
        const last = info.lastCompaction;
        if (last && info.compactions > reports.length) reports.push(last);
      }
      const info = await store.info();
      await store.close();
      await pkg.SplitStore.destroy(name);
      const phase = (r, name) => r.phases.filter((p) => p.phase === name).reduce((a, p) => a + p.ms, 0);
      return {
        secs: (performance.now() - t0) / 1000,
        compactions: info.compactions,
        hotKeys: info.hot?.keys,
        last: reports.slice(-RUNS).map((r) => ({
          ms: r.totalMs, mark: phase(r, 'mark'), collect: phase(r, 'collect'), indexed: r.chainIndexKeys,
          visited: r.hotScanned, listed: r.hotKeysListed,
        })),
      };
    }, { epochs, name, RUNS, STATE, HOT_KEY_LIST_MB });
    await page.close();
    console.error(`${name}: ${epochs} epochs in ${r.secs.toFixed(1)} s, ${r.compactions} compactions, `
      + `last ${RUNS}: ${JSON.stringify(r.last)}`);
    return r;
  };
  const short = await grow(EPOCHS, 'chain-short');
  const long = await grow(EPOCHS * FACTOR, 'chain-long');
  const m = (r, f) => median(r.last.map(f));
  const a = (r) => mean(r.last.map((x) => x.ms));
  console.log(`\n${STATE} actors, discard mode, finality 10, a compaction every 30 epochs; the last ${RUNS}`
    + (HOT_KEY_LIST_MB > 0 ? `; hot key list of ${HOT_KEY_LIST_MB} MiB` : ''));
  console.log('| store | compaction (median) | compaction (mean) | mark (median) | collect (median) '
    + '| keys collect visited (median) | keys from the index |');
  console.log('|---|---|---|---|---|---|---|');
  for (const [r, n] of [[short, EPOCHS], [long, EPOCHS * FACTOR]]) {
    console.log(`| ${n} epochs | ${m(r, (x) => x.ms)} ms | ${a(r).toFixed(0)} ms | ${m(r, (x) => x.mark)} ms `
      + `| ${m(r, (x) => x.collect)} ms | ${m(r, (x) => x.visited)} | ${m(r, (x) => x.indexed)} |`);
  }
  console.log(`\nlong / short: compaction ${(m(long, (x) => x.ms) / m(short, (x) => x.ms)).toFixed(2)}× (median), `
    + `${(a(long) / a(short)).toFixed(2)}× (mean), `
    + `mark ${(m(long, (x) => x.mark) / Math.max(1, m(short, (x) => x.mark))).toFixed(2)}×`);
});
