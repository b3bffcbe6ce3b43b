// A large store in the browser: a synthetic chain imported into IndexedDB (a persistent
// profile on disk) until the hot store holds `--blocks` blocks, then one compaction with the
// store's defaults (discard mode, default pacing) while the Long Tasks API watches the page.
// Prints the import's rate, the compaction's phases, its mark set, the tasks of 50 ms or more
// it caused, and the page's memory: the module's linear memory (which never shrinks, so its
// size is the peak of the wasm heap) and the JS heap, before and after.
//
//   node bench/idb-scale.mjs [--blocks 1000000] [--state 60000]
//
// `--state` is the synthetic state tree's size (about 4 hot blocks per state object stay live).
// Needs the page's dependencies (scripts/test-www.sh installs them) and Chromium.

import { arg, bytesUnder, withPagePersisted } from './common.mjs';

const BLOCKS = arg('blocks', 1_000_000);
const STATE = arg('state', 60_000);

await withPagePersisted('idb-scale', async ({ ctx, page, idbDir }) => {
  const config = {
    mode: 'discard', finality: 10, thresholdFinalities: 1_000_000, boundaryFinalities: 1, syncGapSecs: null,
    persist: false,
  };
  const imported = await page.evaluate(async ({ config, BLOCKS, STATE }) => {
    const pkg = await import('splitstore-wasm');
    window.wasm = await pkg.default();
    window.store = await pkg.SplitStore.open('scale', config);
    const chain = new pkg.SyntheticChain({ seed: 11, stateObjects: STATE, churnPercent: 10, blockTimeSecs: 30 });
    const t0 = performance.now();
    let blocks = 0;
    let bytes = 0;
    let epochs = 0;
    while (blocks < BLOCKS) {
      const e = chain.nextEpochCar();
      blocks += Number((await window.store.importCar(e.car)).blocks);
      bytes += e.bytes;
      epochs += 1;
    }
    return { blocks, bytes, epochs, ms: performance.now() - t0 };
  }, { config, BLOCKS, STATE });
  console.error(`imported ${imported.blocks} blocks over ${imported.epochs} epochs in ${(imported.ms / 1000).toFixed(1)} s`);
  const diskBefore = bytesUnder(idbDir);

  const r = await page.evaluate(async () => {
    const memory = () => ({ wasm: window.wasm.memory.buffer.byteLength, js: performance.memory?.usedJSHeapSize ?? NaN });
    const before = memory();
    const entries = [];
    const observer = new PerformanceObserver((list) => entries.push(...list.getEntries()));
    observer.observe({ type: 'longtask', buffered: false });
    // When each phase began, to tell which phase a long task fell in.
    const starts = [];
    const t0 = performance.now();
    const report = await window.store.compact((e) => {
      if (starts.at(-1)?.[1] !== e.phase) starts.push([performance.now(), e.phase]);
    });
    const ms = performance.now() - t0;
    // Let the observer's last callback run.
    await new Promise((ok) => setTimeout(ok, 100));
    entries.push(...observer.takeRecords());
    observer.disconnect();
    const phaseAt = (t) => starts.filter(([at]) => at <= t).at(-1)?.[1] ?? 'before';
    const tasks = entries.map((e) => ({ ms: e.duration, phase: phaseAt(e.startTime) }));
    const after = memory();
    await window.store.close();
    return {
      ms, before, after, tasks,
      marked: Number(report.marked), dead: Number(report.dead), purged: Number(report.purged),
      markset: Number(report.marksetBytes), perObject: report.marksetBytesPerObject,
      chainIndexKeys: Number(report.chainIndexKeys ?? 0),
      phases: report.phases.map((p) => [p.phase, Number(p.ms)]),
    };
  });
  const diskAfter = bytesUnder(idbDir);

  const mib = (n) => (n / 2 ** 20).toFixed(1);
  const s = (ms) => (ms / 1000).toFixed(1);
  console.log(`Chromium ${ctx.browser()?.version() ?? ''}: ${imported.blocks} blocks (${mib(imported.bytes)} MiB of block data) `
    + `imported over ${imported.epochs} epochs in ${s(imported.ms)} s (${Math.round(imported.blocks / (imported.ms / 1000))} blocks/s).`);
  console.log(`Compaction (discard, default pacing): ${s(r.ms)} s; marked ${r.marked}, dead ${r.dead}, purged ${r.purged}; `
    + `mark set ${mib(r.markset)} MiB (${r.perObject.toFixed(1)} B/object).`);
  console.log(`Phases: ${r.phases.map(([p, ms]) => `${p} ${s(ms)} s`).join(', ')}.`);
  console.log(`Tasks >= 50 ms during the compaction: ${r.tasks.length}`
    + (r.tasks.length ? ` (longest ${Math.max(...r.tasks.map((t) => t.ms)).toFixed(0)} ms)` : '') + '.');
  for (const t of r.tasks) console.log(`  ${t.ms.toFixed(0)} ms in ${t.phase}`);
  console.log(`Wasm linear memory: ${mib(r.before.wasm)} MiB before, ${mib(r.after.wasm)} MiB after; `
    + `JS heap ${mib(r.before.js)} MiB before, ${mib(r.after.js)} MiB after.`);
  console.log(`IndexedDB files: ${mib(diskBefore)} MiB before, ${mib(diskAfter)} MiB after.`);
  if (r.tasks.length) process.exitCode = 1;
});
