// A large store in the browser: a synthetic chain imported into IndexedDB (a persistent
// profile on disk) until the hot store holds `--blocks` blocks, then one compaction with the
// store's defaults (discard mode, default pacing) while the Long Tasks API watches the page.
// Prints the import's rate, the compaction's phases, its mark set, the tasks of 50 ms or more
// it caused, and the page's memory: the module's linear memory (which never shrinks, so its
// size is the peak of the wasm heap) and the JS heap, before and after.
//
//   node bench/idb-scale.mjs [--blocks 1000000] [--state 60000] [--kept-graph-mb 0] [--hot-key-list-mb 0]
//     [--rounds N]
//
// `--state` is the synthetic state tree's size (about 4 hot blocks per state object stay live).
// `--kept-graph-mb` above 0 keeps the compaction's graph (`keptGraphBytes`): the imported
// blocks are recorded as they are written (within that memory), the first compaction marks
// from those records and builds the graph at the end of its mark, and a second one, right
// after, marks from it. `--hot-key-list-mb` above 0 keeps the hot key list (`hotKeyListBytes`):
// the first compaction scans and fills it, a second one collects from it. `--rounds` sets the
// number of compactions (default 2 with either option, else 1).
// Needs the page's dependencies (scripts/test-www.sh installs them) and Chromium.

import { arg, bytesUnder, withPagePersisted } from './common.mjs';

const BLOCKS = arg('blocks', 1_000_000);
const STATE = arg('state', 60_000);
const KEPT_GRAPH_MB = arg('kept-graph-mb', 0);
const HOT_KEY_LIST_MB = arg('hot-key-list-mb', 0);
const ROUNDS = arg('rounds', KEPT_GRAPH_MB > 0 || HOT_KEY_LIST_MB > 0 ? 2 : 1);

await withPagePersisted('idb-scale', async ({ ctx, page, idbDir }) => {
  const config = {
    mode: 'discard', finality: 10, thresholdFinalities: 1_000_000, boundaryFinalities: 1, syncGapSecs: null,
    persist: false, keptGraphBytes: KEPT_GRAPH_MB * 2 ** 20, hotKeyListBytes: HOT_KEY_LIST_MB * 2 ** 20,
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

  const r = await page.evaluate(async ({ rounds }) => {
    const memory = () => ({ wasm: window.wasm.memory.buffer.byteLength, js: performance.memory?.usedJSHeapSize ?? NaN });
    const before = memory();
    const compactions = [];
    for (let round = 0; round < rounds; round++) {
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
      compactions.push({
        ms, tasks: entries.map((e) => ({ ms: e.duration, phase: phaseAt(e.startTime) })),
        marked: Number(report.marked), dead: Number(report.dead), purged: Number(report.purged),
        markset: Number(report.marksetBytes), perObject: report.marksetBytesPerObject,
        graphMarked: Number(report.graphMarked), graphObjects: Number(report.graphObjects),
        graphBytes: Number(report.graphBytes), graphWritten: Number(report.graphWritten),
        loaded: Number(report.loadedBelowHeaders),
        visited: Number(report.hotScanned), listed: report.hotKeysListed,
        phases: report.phases.map((p) => [p.phase, Number(p.ms)]),
      });
    }
    const after = memory();
    await window.store.close();
    return { before, after, compactions };
  }, { rounds: ROUNDS });
  const diskAfter = bytesUnder(idbDir);

  const mib = (n) => (n / 2 ** 20).toFixed(1);
  const s = (ms) => (ms / 1000).toFixed(1);
  console.log(`Chromium ${ctx.browser()?.version() ?? ''}: ${imported.blocks} blocks (${mib(imported.bytes)} MiB of block data) `
    + `imported over ${imported.epochs} epochs in ${s(imported.ms)} s (${Math.round(imported.blocks / (imported.ms / 1000))} blocks/s).`);
  for (const [i, c] of r.compactions.entries()) {
    console.log(`Compaction ${i + 1} (discard, default pacing): ${s(c.ms)} s; marked ${c.marked} `
      + `(${c.graphMarked} from the kept graph, ${c.graphWritten} recorded as written; ${c.loaded} blocks read `
      + `below the headers), dead ${c.dead}, purged ${c.purged}; `
      + `mark set ${mib(c.markset)} MiB (${c.perObject.toFixed(1)} B/object)`
      + (KEPT_GRAPH_MB > 0 ? `; kept graph ${c.graphObjects} objects, ${mib(c.graphBytes)} MiB.` : '.'));
    console.log(`  Phases: ${c.phases.map(([p, ms]) => `${p} ${s(ms)} s`).join(', ')}; collect `
      + `${c.listed ? 'visited the hot key list' : 'read every hot key'} (${c.visited} keys).`);
    console.log(`  Tasks >= 50 ms during the compaction: ${c.tasks.length}`
      + (c.tasks.length ? ` (longest ${Math.max(...c.tasks.map((t) => t.ms)).toFixed(0)} ms)` : '') + '.');
    for (const t of c.tasks) console.log(`    ${t.ms.toFixed(0)} ms in ${t.phase}`);
  }
  console.log(`Wasm linear memory: ${mib(r.before.wasm)} MiB before, ${mib(r.after.wasm)} MiB after; `
    + `JS heap ${mib(r.before.js)} MiB before, ${mib(r.after.js)} MiB after.`);
  console.log(`IndexedDB files: ${mib(diskBefore)} MiB before, ${mib(diskAfter)} MiB after.`);
  if (r.compactions.some((c) => c.tasks.length)) process.exitCode = 1;
});
