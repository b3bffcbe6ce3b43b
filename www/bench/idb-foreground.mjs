// How long a page's reads wait while the store purges, in Chromium. A synthetic chain is
// imported until the hot store holds `--blocks` blocks; then, for each value of the store's
// `purgeLockedDeletes` (dead blocks deleted per transaction under its exclusive lock), a copy
// of that store compacts (discard mode; the purge unpaced, or with `--paced` paced as the
// store's defaults pace it) while a reader asks for a random header of the chain every 10 ms. Each read's latency is taken from its slot in the schedule (a read that
// waits delays the ones behind it, as a page's would) and from its own start; idle reads of the
// same store before the compaction are the baseline; the figures are of the reads that
// started while the compaction was in its purge phase. One compaction per value, values in turn,
// `--runs` rounds; medians of the rounds are printed as a table, with the reads that completed
// 10 ms or more after their slot during the whole compaction (the harm, whatever the purge's
// length) and the time the purge paused.
//
//   node bench/idb-foreground.mjs [--blocks 60000] [--runs 2] [--values 1024,128,32] [--paced]
//
// Needs the page's dependencies (scripts/test-www.sh installs them) and Chromium.

import { arg, median, withBrowser } from './common.mjs';

const BLOCKS = arg('blocks', 60_000);
const RUNS = arg('runs', 2);
const valuesArg = process.argv.indexOf('--values');
const VALUES = valuesArg < 0 ? [1024, 128, 32] : process.argv[valuesArg + 1].split(',').map(Number);
const PACED = process.argv.includes('--paced');

await withBrowser(async ({ browser, url }) => {
  const rows = new Map(VALUES.map((v) => [v, []]));
  for (let run = 0; run < RUNS; run += 1) {
    for (const value of VALUES) {
      const page = await browser.newPage();
      await page.goto(url);
      await page.waitForFunction(() => document.body.dataset.ready === 'true', null, { timeout: 30_000 });
      const r = await page.evaluate(async ({ BLOCKS, value, run, PACED }) => {
        const pkg = await import('splitstore-wasm');
        const config = {
          mode: 'discard', finality: 10, thresholdFinalities: 1_000_000, boundaryFinalities: 1, syncGapSecs: null,
          persist: false, purgeLockedDeletes: value, ...(PACED ? {} : { purgeSleepFactor: 0 }),
        };
        const name = `fg-${run}-${value}`;
        const store = await pkg.SplitStore.open(name, config);
        const chain = new pkg.SyntheticChain({ seed: 5, stateObjects: 2000, churnPercent: 10, blockTimeSecs: 30 });
        const headers = [];
        let blocks = 0;
        while (blocks < BLOCKS) {
          const e = chain.nextEpochCar();
          blocks += Number((await store.importCar(e.car)).blocks);
          headers.push(...e.tipset);
        }
        // Reads on a fixed schedule until `done()` says stop.
        let seed = 12345;
        const pick = () => {
          seed = (seed * 1103515245 + 12345) % 2147483648;
          return headers[seed % headers.length];
        };
        let phase = 'idle';
        const readUntil = async (done) => {
          const lat = [];
          const t0 = performance.now();
          for (let i = 0; !done(); i += 1) {
            const slot = t0 + i * 10;
            const wait = slot - performance.now();
            if (wait > 0) await new Promise((ok) => setTimeout(ok, wait));
            const start = performance.now();
            const got = await store.get(pick());
            if (!got) throw new Error('a live header is missing');
            const end = performance.now();
            lat.push({ sched: end - slot, service: end - start, phase });
          }
          return lat;
        };
        const idleUntil = performance.now() + 3000;
        const idle = await readUntil(() => performance.now() > idleUntil);
        let finished = false;
        const started = performance.now();
        const compaction = store.compact((e) => { phase = e.phase; }).then((rep) => { finished = true; return rep; });
        const during = await readUntil(() => finished);
        const report = await compaction;
        const ms = performance.now() - started;
        await store.close();
        const purge = during.filter((x) => x.phase === 'purge');
        const q = (xs, f, p) => {
          const s = xs.map(f).sort((a, b) => a - b);
          return s[Math.min(s.length - 1, Math.floor(p * s.length))];
        };
        const stats = (xs) => ({
          n: xs.length,
          p50: q(xs, (x) => x.sched, 0.5),
          p99: q(xs, (x) => x.sched, 0.99),
          max: q(xs, (x) => x.sched, 1),
          svc99: q(xs, (x) => x.service, 0.99),
        });
        const late = (xs) => xs.filter((x) => x.sched >= 10).length;
        return {
          blocks, purged: Number(report.purged), ms, idle: stats(idle), during: stats(purge), all: stats(during),
          late: late(during), latePurge: late(purge), pausedMs: Number(report.purgePausedMs ?? 0),
          purgeMs: Number(report.phases.find((p) => p.phase === 'purge')?.ms ?? 0),
        };
      }, { BLOCKS, value, run, PACED });
      await page.close();
      console.error(`run ${run + 1}, ${value} per transaction: ${JSON.stringify(r)}`);
      rows.get(value).push(r);
    }
  }
  const f = (x) => x.toFixed(1);
  console.log(`\n${BLOCKS}+ blocks, discard mode, ${PACED ? 'default pacing' : 'unpaced purge'}, a read every 10 ms; `
    + `medians of ${RUNS} runs`);
  console.log('| deletions per locked transaction | compaction | purged | idle p99 | purge p99 | p99 ratio | max | service p99 '
    + '| purge (paused) | reads ≥ 10 ms late: compaction, purge |');
  console.log('|---|---|---|---|---|---|---|---|---|---|');
  for (const [value, rs] of rows) {
    const m = (g) => median(rs.map(g));
    console.log(`| ${value} | ${f(m((r) => r.ms) / 1000)} s | ${m((r) => r.purged)} | ${f(m((r) => r.idle.p99))} ms | `
      + `${f(m((r) => r.during.p99))} ms | ${f(m((r) => r.during.p99 / r.idle.p99))}× | ${f(m((r) => r.during.max))} ms | `
      + `${f(m((r) => r.during.svc99))} ms | ${f(m((r) => r.purgeMs) / 1000)} s (${f(m((r) => r.pausedMs) / 1000)} s) | `
      + `${m((r) => r.late)}, ${m((r) => r.latePurge)} |`);
  }
});
