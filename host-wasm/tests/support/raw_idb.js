// IndexedDB and Web Locks used directly, as another tab (or the browser itself) would: no
// splitstore-wasm code runs here.

function promised(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function finished(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onabort = () => reject(tx.error);
  });
}

function hex(v) {
  if (typeof v === "string") return JSON.stringify(v);
  const bytes = v instanceof ArrayBuffer ? new Uint8Array(v) : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Whether a database of this name exists (`indexedDB.databases()`). */
export async function databaseExists(name) {
  return (await indexedDB.databases()).some((d) => d.name === name);
}

/** Deletes a database, as eviction does (once the connections still closing are closed). */
export function deleteDatabase(name) {
  return promised(indexedDB.deleteDatabase(name));
}

async function connect(name) {
  if (!(await databaseExists(name))) throw new Error(`${name} does not exist`);
  const req = indexedDB.open(name);
  req.onupgradeneeded = () => req.transaction.abort();
  return promised(req);
}

/** Every entry of the given object stores (all when `stores` is empty), as sorted lines
 *  `store key=value` in hex, read in one transaction. */
export async function entries(name, stores) {
  const db = await connect(name);
  try {
    const names = stores.length ? stores : Array.from(db.objectStoreNames);
    const tx = db.transaction(names, "readonly");
    const end = finished(tx);
    const lines = [];
    await Promise.all(names.map(async (s) => {
      const store = tx.objectStore(s);
      const [keys, values] = await Promise.all([promised(store.getAllKeys()), promised(store.getAll())]);
      keys.forEach((k, i) => lines.push(`${s} ${hex(k)}=${hex(values[i])}`));
    }));
    await end;
    return lines.sort();
  } finally {
    db.close();
  }
}

/** The keys of one object store, in key order, as `Uint8Array`s. */
export async function keysOf(name, store) {
  const db = await connect(name);
  try {
    const tx = db.transaction([store], "readonly");
    const end = finished(tx);
    const keys = await promised(tx.objectStore(store).getAllKeys());
    await end;
    return keys.map((k) => new Uint8Array(k));
  } finally {
    db.close();
  }
}

/** Reads one value (`undefined` when absent). */
export async function getValue(name, store, key) {
  const db = await connect(name);
  try {
    const tx = db.transaction([store], "readonly");
    const end = finished(tx);
    const value = await promised(tx.objectStore(store).get(key));
    await end;
    return value;
  } finally {
    db.close();
  }
}

/** Writes one value durably. */
export async function putValue(name, store, key, value) {
  const db = await connect(name);
  try {
    const tx = db.transaction([store], "readwrite", { durability: "strict" });
    tx.objectStore(store).put(value, key);
    await finished(tx);
  } finally {
    db.close();
  }
}

/** Takes the Web Lock `name` if it is free: resolves with a function that releases it, or
 *  with null when another holder has it. */
export function takeLockIfFree(name) {
  return new Promise((resolve, reject) => {
    navigator.locks
      .request(name, { ifAvailable: true }, (lock) => {
        if (!lock) {
          resolve(null);
          return undefined;
        }
        return new Promise((release) => resolve(release));
      })
      .catch(reject);
  });
}

/** Replaces `navigator.storage` with a fake until `restore()`: `persist()` answers
 *  `persistAnswer` and from then on `persisted()` does too (it starts as `false`); with
 *  `missing`, `navigator.storage` is undefined. `persistCalls()` counts the requests. */
export function fakeStorage(persistAnswer, missing) {
  const state = { calls: 0, persisted: false };
  const fake = missing
    ? undefined
    : {
        persist() {
          state.calls += 1;
          state.persisted = persistAnswer;
          return Promise.resolve(persistAnswer);
        },
        persisted() {
          return Promise.resolve(state.persisted);
        },
      };
  Object.defineProperty(navigator, "storage", { configurable: true, get: () => fake });
  return {
    persistCalls: () => state.calls,
    setPersisted: (v) => {
      state.persisted = v;
    },
    restore: () => {
      delete navigator.storage;
    },
  };
}

/** The real `navigator.storage.persist()`. */
export function realPersist() {
  return navigator.storage.persist();
}

/** The real `navigator.storage.persisted()`. */
export function realPersisted() {
  return navigator.storage.persisted();
}

export async function realEstimateQuota() {
  return (await navigator.storage.estimate()).quota;
}
