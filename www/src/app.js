// The page: opens a store, feeds it chain data, and shows what it holds as it compacts.
//
// Invariants: at most one store is open; every call into it that the page makes either goes
// through `run` or handles its own rejection, so a failure becomes a message and never leaves
// a control disabled; the store is exposed as `window.splitstore.store` so tests can compare
// the page with what the store reports.

import init, * as pkg from 'splitstore-wasm';
import { describeError, formatBytes, formatCount, formatMs } from './format.js';
import { History, clearSession, lastSession, saveSession } from './history.js';
import * as model from './model.js';
import { SizeChart } from './chart.js';
import { SynthDriver } from './synth.js';
import { clearMessages, renderCheck, renderCompactions, renderInfo, renderPhase, showMessage } from './view.js';
import { readConfig, watchConfig, writeConfig } from './config.js';

const $ = (id) => document.getElementById(id);

/**
 * Least time between two `info` reads while the store changes in the background: `info`
 * counts both stores, which costs IndexedDB time the compaction and the writer also need.
 */
const REFRESH_MS = 1000;

const state = {
  store: null,
  name: null,
  config: null,
  history: null,
  info: null,
  synth: null,
  /** Set while a compaction this page started reports progress. */
  localCompaction: false,
  /** Head epoch when the page first saw the running compaction. */
  compactingSince: null,
  lastRefresh: 0,
};

const chart = new SizeChart($('chart'));

/** Runs `fn`, turning a rejection into a message; returns its result or undefined. */
async function run(action, fn, inputKind) {
  try {
    return await fn();
  } catch (e) {
    console.error(action, e);
    showMessage({ kind: 'error', ...describeError(action, e, inputKind) });
    return undefined;
  }
}

function setOpen(open) {
  for (const id of ['import-fieldset', 'synth-fieldset', 'actions-fieldset']) $(id).disabled = !open;
  $('close-btn').disabled = !open;
  for (const e of $('open-form').querySelectorAll('input, select')) e.disabled = open;
  $('open-btn').disabled = open;
  if (!open) {
    renderInfo(null);
    renderPhase({ phase: 'idle' });
    renderCompactions([]);
    renderCheck(null);
    chart.update([]);
    $('store-status').textContent = 'No store open.';
    $('synth-status').textContent = '';
    $('import-status').textContent = '';
  }
}

// ---- refresh: read info, update the panel, the chart and the compaction table ----

let refreshing = null;
let refreshAgain = false;

/** Reads `info` and redraws; concurrent calls coalesce into one more read. */
function refresh() {
  if (refreshing) {
    refreshAgain = true;
    return refreshing;
  }
  refreshing = (async () => {
    do {
      refreshAgain = false;
      const store = state.store;
      if (!store) break;
      let i;
      try {
        i = model.info(await store.info(), await store.count());
      } catch (e) {
        if (state.store === store) showMessage({ kind: 'error', ...describeError('Reading the store', e) });
        break;
      }
      if (state.store !== store) break;
      applyInfo(i);
    } while (refreshAgain);
  })().finally(() => {
    refreshing = null;
    state.lastRefresh = performance.now();
  });
  return refreshing;
}

function applyInfo(i) {
  const prev = state.info;
  state.info = i;
  renderInfo(i);
  const h = state.history;
  h.addSample({
    epoch: i.headEpoch ?? 0,
    hotBytes: i.hotBytes,
    coldBytes: i.coldBytes,
    hotObjects: i.hotObjects,
    coldObjects: i.coldObjects,
    compactions: i.compactions,
  });
  if (i.lastCompaction && i.compactions > 0) {
    h.addCompaction({ number: i.compactions, ...i.lastCompaction });
  }
  // `info` reports only the last compaction: any that ended between two reads get a row that says so.
  if (prev && i.compactions - prev.compactions > 1) {
    for (let n = prev.compactions + 1; n < i.compactions; n += 1) h.addCompaction({ number: n, unreported: true });
  }
  if (i.lastError && i.lastError !== prev?.lastError) {
    showMessage({ kind: 'error', title: 'Automatic compaction failed', detail: i.lastError,
      hint: 'The store keeps serving; the next head change tries again.' });
  }
  if (i.compacting && !prev?.compacting) state.compactingSince = i.headEpoch;
  if (!state.localCompaction) {
    renderPhase(i.compacting ? { phase: 'running', note: runningNote(i) } : { phase: 'idle', note: idleNote(i) });
  }
  renderCompactions(h.compactions);
  chart.update(h.samples);
  h.save();
}

/** Started by a head change; says how far the head moved while it runs (it falls behind when that grows). */
function runningNote(i) {
  const since = state.compactingSince;
  if (since == null || i.headEpoch == null) return 'started by a head change';
  const moved = i.headEpoch - since;
  return `started by a head change near epoch ${formatCount(since)}`
    + (moved > 0 ? `; the head has moved ${formatCount(moved)} epoch${moved > 1 ? 's' : ''} since` : '');
}

function idleNote(i) {
  const last = state.history?.compactions.at(-1);
  if (!last) return 'idle';
  if (last.resumed && last.headEpoch == null) return `idle — last: #${last.number}, finished by recovery`;
  return `idle — last: #${last.number} at epoch ${formatCount(last.headEpoch)}, ${formatMs(last.totalMs)}`;
}

// Polls while something changes the store in the background.
setInterval(() => {
  if (!state.store) return;
  const busy = state.info?.compacting || state.synth?.running;
  if (busy && performance.now() - state.lastRefresh > REFRESH_MS) refresh();
}, 200);

// ---- open, close, delete ----

async function openStore(name, config, { fromReload = false } = {}) {
  if (state.store) await closeStore();
  $('store-status').textContent = `Opening ${name}…`;
  const store = await run(`Opening store "${name}"`, () => pkg.SplitStore.open(name, config));
  if (!store) {
    $('store-status').textContent = 'No store open.';
    return false;
  }
  Object.assign(state, { store, name, config, history: new History(name), info: null });
  state.synth = new SynthDriver({
    ChainClass: pkg.SyntheticChain,
    store: () => state.store,
    position: state.history.synth,
    onEpoch: onSynthEpoch,
    onPosition: (p) => {
      state.history.setSynth(p);
      state.history.save();
    },
    onError: (e) => showMessage({ kind: 'error', ...describeError('Growing the chain', e) }),
    onState: onSynthState,
  });
  state.synth.setSpeed($('synth-speed').value);
  saveSession({ name, config });
  setOpen(true);
  $('store-status').textContent = `Open: "${name}" — ${config.mode} mode, finality ${config.finality}, `
    + `compacts when the head is more than ${config.thresholdFinalities * config.finality} epochs past the base, `
    + `keeps state of the last ${config.boundaryFinalities * config.finality} epochs.`;
  onSynthState(false);
  await refresh();
  reportRecovery(fromReload);
  return true;
}

/** Says what recovery at open did, if anything. */
function reportRecovery(fromReload) {
  const i = state.info;
  if (!i) return;
  const r = i.recovery;
  if (r?.finishedPurge) {
    showMessage({
      kind: 'note', testId: 'recovery-note',
      title: 'Recovery ran when the store opened',
      detail: `A compaction was interrupted${fromReload ? ' (the page was closed or reloaded)' : ''} after it had started deleting. `
        + (r.purged == null
          ? 'Opening the store finished it before serving anything; nothing live was lost.'
          : `Opening the store finished it: ${formatCount(r.purged)} more objects deleted in ${formatMs(r.ms)}, nothing live lost.`),
    });
    if (i.compactions > 0 && !state.history.compactions.some((c) => c.number === i.compactions)) {
      state.history.addCompaction({
        number: i.compactions, headEpoch: undefined, boundaryEpoch: i.baseEpoch, marked: undefined, dead: undefined,
        moved: undefined, purged: r.purged ?? undefined, phases: r.ms == null ? [] : [['recovery', r.ms]],
        totalMs: r.ms ?? undefined, resumed: true,
      });
      renderCompactions(state.history.compactions);
      state.history.save();
    }
  } else if (r && r.discardedEntries > 0) {
    showMessage({
      kind: 'note', testId: 'recovery-note',
      title: 'Recovery ran when the store opened',
      detail: `A compaction was interrupted before it deleted anything; its ${formatCount(r.discardedEntries)} leftover list entries were discarded. The store is as it was before that compaction.`,
    });
  } else if (i.pendingRecovery) {
    showMessage({ kind: 'note', testId: 'recovery-note', title: 'An interrupted compaction is waiting to be finished',
      detail: 'It is finished the next time the store opens.' });
  }
}

async function closeStore() {
  const store = state.store;
  if (!store) return;
  state.synth?.detach();
  state.history?.save();
  state.store = null;
  state.info = null;
  await run('Closing the store', () => store.close());
  setOpen(false);
}

// ---- chain data ----

async function importCar(file) {
  const store = state.store;
  if (!store) return;
  $('import-status').textContent = `Importing ${file.name} (${formatBytes(file.size)})…`;
  const bytes = new Uint8Array(await file.arrayBuffer());
  const res = await run(`Importing ${file.name}`, () => store.importCar(bytes), 'car');
  if (res) {
    const roots = (res.roots ?? []).map(String);
    let head = `the head is unchanged: ${res.headSkipped ?? 'the file has no roots'}.`;
    if (res.head && roots.length) head = `its root${roots.length > 1 ? 's' : ''} (${roots.length} block${roots.length > 1 ? 's' : ''}, ${roots[0].slice(0, 14)}…) became the head.`;
    $('import-status').textContent = `Imported ${formatCount(Number(res.blocks))} blocks from ${file.name}; ${head}`;
    $('import-status').dataset.blocks = String(res.blocks);
  } else {
    $('import-status').textContent = `${file.name} was not imported.`;
  }
  await refresh();
}

function onSynthEpoch(epoch) {
  $('synth-status').textContent = `Epoch ${formatCount(epoch.height)}: ${epoch.tipset.length} block${epoch.tipset.length > 1 ? 's' : ''}, `
    + `${formatCount(epoch.newBlocks)} new objects. ${formatCount(state.synth.epochs)} epochs grown.`;
  // The head is known at once; sizes follow with the next `info` read.
  $('stat-head').textContent = formatCount(epoch.height);
  $('stat-head').dataset.value = String(epoch.height);
  if (performance.now() - state.lastRefresh > REFRESH_MS || !state.synth.running) refresh();
}

function onSynthState(running) {
  const b = $('synth-toggle');
  b.textContent = running ? 'Pause' : state.synth?.epochs ? 'Resume' : 'Start';
  b.setAttribute('aria-pressed', String(running));
  $('synth-step').disabled = running;
}

// ---- compaction and check ----

async function compactNow() {
  const store = state.store;
  if (!store) return;
  if (state.info?.compacting || state.localCompaction) {
    showMessage({ kind: 'note', title: 'A compaction is already running', detail: 'Its progress is shown below.' });
    return;
  }
  state.localCompaction = true;
  $('compact-btn').disabled = true;
  renderPhase({ phase: 'starting', done: 0 });
  const r = await run('Compaction', () => store.compact((p) => renderPhase(p)));
  state.localCompaction = false;
  $('compact-btn').disabled = false;
  await refresh();
  if (r) {
    const rep = model.report(r);
    renderPhase({ phase: 'idle', note: `done — purged ${formatCount(rep.purged)}, moved ${formatCount(rep.moved)} in ${formatMs(rep.totalMs)}` });
  }
}

async function runCheck() {
  const store = state.store;
  if (!store) return;
  $('check-btn').disabled = true;
  $('check-result').textContent = 'Checking…';
  const c = await run('Check', () => store.check());
  $('check-btn').disabled = false;
  if (c) renderCheck(model.check(c), state.info?.headEpoch);
  else renderCheck(null);
}

// ---- wiring ----

let destroyArmed = null;

function wire() {
  $('open-form').addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const form = $('open-form');
    if (!form.reportValidity()) return;
    clearMessages();
    const { name, config } = readConfig(form);
    await openStore(name, config);
  });
  $('close-btn').addEventListener('click', async () => {
    await closeStore();
    clearSession();
  });
  $('destroy-btn').addEventListener('click', async () => {
    const name = $('store-name').value.trim();
    const btn = $('destroy-btn');
    if (!name) return;
    if (destroyArmed !== name) {
      destroyArmed = name;
      btn.textContent = `Really delete "${name}"?`;
      setTimeout(() => {
        if (destroyArmed === name) {
          destroyArmed = null;
          btn.textContent = 'Delete store…';
        }
      }, 5000);
      return;
    }
    destroyArmed = null;
    btn.textContent = 'Delete store…';
    if (state.name === name) {
      await closeStore();
      clearSession();
    }
    const ok = await run(`Deleting store "${name}"`, async () => {
      await pkg.SplitStore.destroy(name);
      return true;
    });
    if (ok) {
      History.forget(name);
      showMessage({ kind: 'note', title: `Deleted store "${name}"`, detail: 'Its databases are gone.' });
    }
  });
  $('car-file').addEventListener('change', async (ev) => {
    const input = ev.target;
    const file = input.files?.[0];
    if (file) await importCar(file);
    input.value = '';
  });
  $('synth-toggle').addEventListener('click', () => {
    if (!state.synth) return;
    if (state.synth.running) state.synth.pause();
    else state.synth.start();
  });
  $('synth-step').addEventListener('click', () => run('Growing the chain', () => state.synth?.step()));
  $('synth-speed').addEventListener('input', (ev) => {
    $('synth-speed-out').value = ev.target.value;
    state.synth?.setSpeed(ev.target.value);
  });
  $('compact-btn').addEventListener('click', compactNow);
  $('check-btn').addEventListener('click', runCheck);
  window.addEventListener('pagehide', () => state.history?.save());
}

async function main() {
  wire();
  watchConfig($('open-form'));
  setOpen(false);
  await init();
  const session = lastSession();
  if (session?.name && session.config) {
    writeConfig($('open-form'), session);
    await openStore(session.name, session.config, { fromReload: true });
  }
  document.body.dataset.ready = 'true';
}

window.splitstore = {
  get store() {
    return state.store;
  },
  get history() {
    return state.history;
  },
  get synth() {
    return state.synth;
  },
  refresh,
  ready: main().catch((e) => {
    showMessage({ kind: 'error', ...describeError('Loading the page', e),
      hint: 'The WebAssembly package could not start; reload to try again.' });
    document.body.dataset.ready = 'error';
    throw e;
  }),
};
