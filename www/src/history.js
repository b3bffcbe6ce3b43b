// What the page remembers about each store across reloads: the size samples the chart draws,
// the compactions the table lists, the settings it was opened with and the synthetic chain's
// position. Kept in localStorage, one key per store; the store itself is in IndexedDB.

const PREFIX = 'splitstore-www/';
const MAX_SAMPLES = 800;
const MAX_COMPACTIONS = 200;

function read(key, fallback) {
  try {
    const raw = localStorage.getItem(PREFIX + key);
    return raw == null ? fallback : JSON.parse(raw);
  } catch {
    return fallback;
  }
}

function write(key, value) {
  try {
    localStorage.setItem(PREFIX + key, JSON.stringify(value));
    return true;
  } catch {
    // A full localStorage only costs the chart its memory; the store is unaffected.
    return false;
  }
}

/** The last store the page had open and its settings, or null. */
export function lastSession() {
  return read('session', null);
}

export function saveSession(session) {
  write('session', session);
}

export function clearSession() {
  try {
    localStorage.removeItem(PREFIX + 'session');
  } catch {
    /* unavailable storage: nothing to clear */
  }
}

/** The chart samples and compaction rows of one store. */
export class History {
  constructor(name) {
    this.name = name;
    const saved = read(`history/${name}`, null);
    this.samples = Array.isArray(saved?.samples) ? saved.samples : [];
    this.compactions = Array.isArray(saved?.compactions) ? saved.compactions : [];
    this.synth = saved?.synth ?? null;
    this.dirty = false;
  }

  /**
   * Records one observation of the store. Consecutive identical observations are merged so
   * the chart shows changes, not polling.
   */
  addSample({ epoch, hotBytes, coldBytes, hotObjects, coldObjects, compactions }) {
    const last = this.samples[this.samples.length - 1];
    const s = { epoch, hotBytes, coldBytes, hotObjects, coldObjects, compactions };
    if (last && Object.keys(s).every((k) => last[k] === s[k])) return;
    this.samples.push(s);
    if (this.samples.length > MAX_SAMPLES) {
      // Halve the older half's resolution, keeping every sample that shows a compaction.
      const cut = Math.floor(this.samples.length / 2);
      const old = this.samples.slice(0, cut).filter((x, i, a) => i % 2 === 0
        || (i > 0 && x.compactions !== a[i - 1].compactions));
      this.samples = old.concat(this.samples.slice(cut));
    }
    this.dirty = true;
  }

  /** Adds a compaction row unless one with the same number is already there. */
  addCompaction(row) {
    if (this.compactions.some((c) => c.number === row.number)) return false;
    this.compactions.push(row);
    this.compactions.sort((a, b) => a.number - b.number);
    if (this.compactions.length > MAX_COMPACTIONS) this.compactions.shift();
    this.dirty = true;
    return true;
  }

  setSynth(state) {
    this.synth = state;
    this.dirty = true;
  }

  save() {
    if (!this.dirty) return;
    write(`history/${this.name}`, {
      samples: this.samples,
      compactions: this.compactions,
      synth: this.synth,
    });
    this.dirty = false;
  }

  /** Forgets everything about the store (after it was deleted). */
  static forget(name) {
    try {
      localStorage.removeItem(`${PREFIX}history/${name}`);
    } catch {
      /* unavailable storage: nothing to forget */
    }
  }
}
