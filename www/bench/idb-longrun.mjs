// Do both stores stay bounded on disk over a long universal-mode run in the browser? A
// persistent Chromium profile, the page's package, a synthetic chain imported epoch by epoch;
// a compaction every `--every` epochs, a cold prune (retention 0) after every third one, and
// the store closed and opened again after every `--session` compactions (as a page is
// reloaded). At each reopen: the head, the hot and cold block counts, and the bytes of the
// profile's IndexedDB folder on disk.
//
//   node bench/idb-longrun.mjs [--epochs 1500] [--every 60] [--session 3] [--state 2000] [--rotate 1]
//
// `--rotate` is the store's `rotation` (default 1, the store's default; -1: false, never).
//
// Needs the page's dependencies (scripts/test-www.sh installs them) and Chromium.

import { arg, bytesUnder, withPagePersisted } from './common.mjs';

const EPOCHS = arg('epochs', 1500);
const EVERY = arg('every', 60);
const SESSION = arg('session', 3);
const STATE = arg('state', 2000);
const ROTATE = arg('rotate', 1);

await withPagePersisted('idb-longrun', async ({ ctx, page, idbDir }) => {
  const config = {
    mode: 'universal', finality: 10, thresholdFinalities: 1_000_000, boundaryFinalities: 4, syncGapSecs: null,
    persist: false, purgeSleepFactor: 0, rotation: ROTATE < 0 ? false : ROTATE,
  };
  await page.evaluate(async ({ config, STATE }) => {
    window.pkg = await import('splitstore-wasm');
    window.store = await window.pkg.SplitStore.open('longrun', config);
    window.chain = new window.pkg.SyntheticChain({ seed: 5, stateObjects: STATE, churnPercent: 10, blockTimeSecs: 30 });
    window.written = 0;
  }, { config, STATE });

  const rows = [];
  let compactions = 0;
  let prunes = 0;
  const t0 = Date.now();
  for (let epoch = EVERY; epoch <= EPOCHS; epoch += EVERY) {
    await page.evaluate(async (n) => {
      for (let i = 0; i < n; i++) {
        const r = await window.store.importCar(window.chain.nextEpochCar().car);
        window.written += Number(r.blocks);
      }
    }, EVERY);
    compactions += 1;
    const prune = compactions % 3 === 0;
    prunes += prune ? 1 : 0;
    await page.evaluate(async (prune) => {
      await window.store.compact();
      if (prune) await window.store.prune({ retention: 0 });
    }, prune);
    if (compactions % SESSION !== 0) continue;
    const row = await page.evaluate(async (config) => {
      await window.store.close();
      window.store = await window.pkg.SplitStore.open('longrun', config);
      const info = await window.store.info();
      const check = await window.store.check();
      return {
        head: Number(info.headEpoch), written: window.written, hot: Number(info.hot.keys), cold: Number(info.cold.keys),
        missing: Number(check.missing),
      };
    }, config);
    row.disk = bytesUnder(idbDir);
    rows.push(row);
    console.error(`epoch ${row.head}: ${JSON.stringify(row)}`);
    if (row.missing !== 0) throw new Error(`${row.missing} live blocks missing at epoch ${row.head}`);
  }
  await page.evaluate(() => window.store.close());

  const mb = (n) => (n / 1e6).toFixed(1);
  console.log(`Chromium ${ctx.browser()?.version() ?? ''}: rotation ${config.rotation}, state ${STATE} objects, `
    + `${compactions} compactions, ${prunes} prunes, ${((Date.now() - t0) / 1000).toFixed(0)} s; nothing live missing.`);
  console.log('\n| head epoch | blocks written | hot blocks | cold blocks | IndexedDB files on disk |');
  console.log('|---|---|---|---|---|');
  for (const r of rows) {
    console.log(`| ${r.head} | ${r.written} | ${r.hot} | ${r.cold} | ${mb(r.disk)} MB |`);
  }
});
