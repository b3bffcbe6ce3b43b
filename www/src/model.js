// Plain views of what the package returns: the page reads only these shapes.

const num = (v) => (typeof v === 'bigint' ? Number(v) : typeof v === 'number' ? v : undefined);

/** `{ objects, bytes }` from the package's space statistics. */
function space(s) {
  return { objects: num(s?.objects ?? s?.keys) ?? 0, bytes: num(s?.bytes) ?? 0 };
}

/** Phase timings as `[name, ms]` pairs in phase order. */
function phases(p) {
  if (Array.isArray(p)) {
    return p.map((x) => (Array.isArray(x) ? [String(x[0]), num(x[1]) ?? 0] : [String(x.phase ?? x.name), num(x.ms) ?? 0]));
  }
  if (p && typeof p === 'object') return Object.entries(p).map(([k, v]) => [k, num(v) ?? 0]);
  return [];
}

/** A compaction report: what one run did and how long each phase took. */
export function report(r) {
  if (!r) return null;
  return {
    headEpoch: num(r.headEpoch),
    boundaryEpoch: num(r.boundaryEpoch),
    marked: num(r.marked) ?? 0,
    dead: num(r.dead) ?? 0,
    moved: num(r.moved) ?? 0,
    purged: num(r.purged) ?? 0,
    phases: phases(r.phases),
    totalMs: num(r.totalMs) ?? 0,
    resumed: Boolean(r.resumed),
  };
}

/** What recovery at open did, or null when it did nothing. */
export function recovery(r) {
  if (!r) return null;
  return {
    finishedPurge: Boolean(r.finishedPurge),
    purged: num(r.purged) ?? null,
    discardedEntries: num(r.discardedEntries) ?? 0,
    ms: num(r.ms) ?? null,
  };
}

/**
 * The store's state as the page shows it: `info()` (constant time) with the exact sizes of
 * `count()` when given (the package's `info` holds only the backends' estimates).
 */
export function info(i, counts) {
  const hot = space(counts?.hot ?? i.hot);
  const cold = space(counts?.cold ?? i.cold);
  return {
    head: Array.isArray(i.head) ? i.head.map(String) : [],
    headEpoch: num(i.headEpoch),
    baseEpoch: num(i.baseEpoch) ?? 0,
    compactions: num(i.compactions) ?? 0,
    hotObjects: hot.objects,
    hotBytes: hot.bytes,
    coldObjects: cold.objects,
    coldBytes: cold.bytes,
    compacting: Boolean(i.compacting),
    pendingRecovery: Boolean(i.pendingRecovery),
    // `recovery` details when the package reports them; `recoveredOnOpen` says at least
    // whether opening the store finished an interrupted compaction.
    recovery: recovery(i.recovery) ?? (i.recoveredOnOpen ? { finishedPurge: true, purged: null, discardedEntries: 0, ms: null } : null),
    lastCompaction: report(i.lastCompaction),
    lastError: i.lastError ? String(i.lastError) : null,
  };
}

/** A check result. */
export function check(c) {
  return {
    hot: num(c.hot) ?? 0,
    cold: num(c.cold) ?? 0,
    missing: num(c.missing) ?? 0,
    missingCids: Array.isArray(c.missingCids) ? c.missingCids.map(String) : [],
  };
}
