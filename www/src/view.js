// Rendering of the store's state into the page. Every function here only writes the DOM.

import { formatBytes, formatCount, formatMs } from './format.js';

const $ = (id) => document.getElementById(id);

/** Shows a message box; errors stay until dismissed, notes too. Returns the element. */
export function showMessage({ kind, title, detail, hint, reason, testId }) {
  const box = document.createElement('div');
  box.className = `message ${kind}`;
  if (reason) box.dataset.reason = reason;
  box.setAttribute('role', kind === 'error' ? 'alert' : 'status');
  if (testId) box.dataset.testid = testId;
  const strong = document.createElement('strong');
  strong.textContent = title;
  box.append(strong);
  if (detail) {
    const p = document.createElement('p');
    p.className = 'detail';
    p.textContent = detail;
    box.append(p);
  }
  if (hint) {
    const p = document.createElement('p');
    p.className = 'hint';
    p.textContent = hint;
    box.append(p);
  }
  const close = document.createElement('button');
  close.type = 'button';
  close.className = 'dismiss';
  close.textContent = 'Dismiss';
  close.setAttribute('aria-label', `Dismiss: ${title}`);
  close.addEventListener('click', () => box.remove());
  box.append(close);
  const list = $('messages');
  list.prepend(box);
  while (list.children.length > 6) list.lastElementChild.remove();
  return box;
}

export function clearMessages() {
  $('messages').replaceChildren();
}

function setNumber(id, value, text) {
  const e = $(id);
  e.textContent = text;
  e.dataset.value = value == null ? '' : String(value);
}

/** Fills the statistics panel from a `model.info` object (or clears it for null). */
export function renderInfo(i) {
  setNumber('stat-head', i?.headEpoch, i?.headEpoch == null ? '–' : formatCount(i.headEpoch));
  setNumber('stat-base', i?.baseEpoch, i ? formatCount(i.baseEpoch) : '–');
  setNumber('stat-compactions', i?.compactions, i ? formatCount(i.compactions) : '–');
  setNumber('stat-hot-objects', i?.hotObjects, i ? formatCount(i.hotObjects) : '–');
  setNumber('stat-hot-bytes', i?.hotBytes, i ? formatBytes(i.hotBytes) : '–');
  setNumber('stat-cold-objects', i?.coldObjects, i ? formatCount(i.coldObjects) : '–');
  setNumber('stat-cold-bytes', i?.coldBytes, i ? formatBytes(i.coldBytes) : '–');
}

/**
 * Shows the compaction phase: `p` is a progress event `{ phase, done, total }`, or
 * `{ phase: 'idle' }`, or `{ phase: 'running' }` when one runs without events for this page.
 */
export function renderPhase(p) {
  const phase = $('phase');
  const bar = $('phase-progress');
  phase.dataset.phase = p.phase;
  phase.dataset.done = String(p.done ?? 0);
  if (p.phase === 'idle') {
    phase.textContent = p.note ?? 'idle';
    bar.max = 1;
    bar.value = 0;
    return;
  }
  if (p.phase === 'running') {
    phase.textContent = p.note ? `running — ${p.note}` : 'running';
    bar.removeAttribute('value');
    return;
  }
  const total = Number(p.total);
  if (Number.isFinite(total) && total > 0) {
    bar.max = total;
    bar.value = Math.min(Number(p.done), total);
    phase.textContent = `${p.phase}: ${formatCount(Number(p.done))} of ${formatCount(total)}`;
  } else {
    bar.removeAttribute('value');
    phase.textContent = `${p.phase}: ${formatCount(Number(p.done ?? 0))}`;
  }
}

/** Rewrites the compaction table from the history rows. */
export function renderCompactions(rows) {
  const body = $('history').tBodies[0];
  const trs = rows.slice().reverse().map((r) => {
    const tr = document.createElement('tr');
    tr.dataset.number = String(r.number);
    if (r.unreported) {
      const num = document.createElement('td');
      num.textContent = String(r.number);
      const note = document.createElement('td');
      note.colSpan = 7;
      note.className = 'unreported';
      note.textContent = 'ended between two reads of the store; the store keeps only the last report';
      tr.append(num, note);
      return tr;
    }
    const phases = (r.phases ?? []).map(([name, ms]) => `${name} ${Math.round(ms)}`).join(', ');
    const cells = [
      `${r.number}${r.resumed ? ' (recovered)' : ''}`,
      formatCount(r.headEpoch),
      formatCount(r.boundaryEpoch),
      formatCount(r.marked),
      formatCount(r.purged),
      formatCount(r.moved),
      phases || '–',
      formatMs(r.totalMs),
    ];
    for (const c of cells) {
      const td = document.createElement('td');
      td.textContent = c;
      tr.append(td);
    }
    return tr;
  });
  if (trs.length === 0) {
    const tr = document.createElement('tr');
    const td = document.createElement('td');
    td.colSpan = 8;
    td.className = 'empty';
    td.textContent = 'No compaction yet.';
    tr.append(td);
    trs.push(tr);
  }
  body.replaceChildren(...trs);
}

/** Shows a check result (`model.check`) and when it ran. */
export function renderCheck(c, headEpoch) {
  const e = $('check-result');
  if (!c) {
    e.textContent = 'Not run yet.';
    e.className = 'status';
    return;
  }
  const at = headEpoch == null ? '' : ` at head epoch ${formatCount(headEpoch)}`;
  e.dataset.hot = String(c.hot);
  e.dataset.cold = String(c.cold);
  e.dataset.missing = String(c.missing);
  e.dataset.headEpoch = headEpoch == null ? '' : String(headEpoch);
  e.className = `status ${c.missing === 0 ? 'ok' : 'bad'}`;
  e.textContent = `Live set${at}: ${formatCount(c.hot)} objects hot, ${formatCount(c.cold)} cold, `
    + `${formatCount(c.missing)} missing${c.missing === 0 ? ' — complete.' : '.'}`;
  if (c.missingCids.length) e.textContent += ` First missing: ${c.missingCids.slice(0, 3).join(', ')}`;
}
