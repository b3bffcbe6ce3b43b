// Number, size and error formatting for the page.

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/** `1536` -> `"1.5 KiB"`; exact bytes below 1 KiB. */
export function formatBytes(n) {
  if (!Number.isFinite(n)) return '–';
  let v = n;
  let u = 0;
  while (v >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u += 1;
  }
  return u === 0 ? `${Math.round(v)} B` : `${v.toFixed(v < 10 ? 2 : 1)} ${UNITS[u]}`;
}

/** Grouped digits, or a dash for missing values. */
export function formatCount(n) {
  return Number.isFinite(n) ? n.toLocaleString('en-US') : '–';
}

/** Milliseconds as "830 ms" or "2.4 s". */
export function formatMs(ms) {
  if (!Number.isFinite(ms)) return '–';
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** The messages of an error and its `cause` chain, outermost first, without repeats. */
export function errorChain(e) {
  const out = [];
  let cur = e;
  for (let depth = 0; cur != null && depth < 8; depth += 1) {
    const text = cur instanceof Error || typeof cur === 'object'
      ? String(cur.message ?? cur)
      : String(cur);
    if (text && !out.some((t) => t.includes(text))) out.push(text);
    cur = typeof cur === 'object' ? cur.cause : undefined;
  }
  return out;
}

/** The package's stable error codes (`error.code`) the page has advice for. */
const CODES = {
  QuotaExceeded: 'quota',
  InUse: 'in-use',
  BadCar: 'car',
  NoHead: 'no-head',
  AlreadyCompacting: 'busy',
  Closed: 'closed',
};

/** Names the kind of failure, so the page can say what to do about it. */
export function classifyError(e) {
  const names = [];
  for (let cur = e, d = 0; cur != null && typeof cur === 'object' && d < 8; cur = cur.cause, d += 1) {
    if (CODES[cur.code]) return CODES[cur.code];
    names.push(String(cur.name ?? ''));
  }
  // Errors from elsewhere (the browser, older packages) only have names and messages.
  const text = `${names.join(' ')} ${errorChain(e).join(' ')}`.toLowerCase();
  if (text.includes('quota')) return 'quota';
  if (text.includes('in use')) return 'in-use';
  return 'other';
}

const HINTS = {
  quota: 'The store reached its storage limit, or the browser refused to store more data (storage quota). The refused write was not applied and the store is consistent; compact the store (a compaction may use the room the store keeps for it) or delete a store you do not need, then try again.',
  'in-use': 'This store is open in another tab or window. Close it there, or open a store with another name here.',
  car: 'The file is not a readable CAR archive (CARv1 or CARv2). The store is still usable: pick another file or grow a synthetic chain.',
  'no-head': 'The store has no head yet: import a CAR file or grow the synthetic chain first.',
  busy: 'A compaction is already running (one started by itself); its progress is shown below.',
  closed: 'The store was closed; open it again.',
  other: '',
};

/**
 * A readable message: what failed, why, and what to do next. `inputKind` names the hint for
 * failures the page has no specific advice for (e.g. `'car'` for an import).
 */
export function describeError(action, e, inputKind = 'other') {
  const found = classifyError(e);
  const kind = found === 'other' ? inputKind : found;
  const chain = errorChain(e);
  return {
    reason: kind,
    title: `${action} failed`,
    detail: chain.length ? chain.join(' — ') : 'unknown error',
    hint: HINTS[kind],
  };
}
