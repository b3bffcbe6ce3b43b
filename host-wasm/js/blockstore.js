// An `interface-blockstore` Blockstore over a SplitStore: what Helia and the js-stores
// ecosystem speak. See blockstore.d.ts for the contract and README.md for the rules that
// differ from a plain store.

import { NotFoundError } from 'interface-store';
import { CID } from 'multiformats/cid';
import * as raw from 'multiformats/codecs/raw';
import * as Digest from 'multiformats/hashes/digest';
import init, { SplitStore } from './splitstore_wasm.js';

const DEFAULT_BATCH = 256;

function checkAbort(options) {
  options?.signal?.throwIfAborted();
}

/** The bytes of a put: one Uint8Array, or the chunks of an (async) iterable joined. */
async function joined(bytes, options) {
  if (bytes instanceof Uint8Array) return bytes;
  const chunks = [];
  let length = 0;
  for await (const chunk of bytes) {
    checkAbort(options);
    chunks.push(chunk);
    length += chunk.length;
  }
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(length);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Batches of up to `size` items of an (async) iterable. */
async function* batches(source, size, options) {
  let batch = [];
  for await (const item of source) {
    checkAbort(options);
    batch.push(item);
    if (batch.length >= size) {
      yield batch;
      batch = [];
    }
  }
  if (batch.length > 0) yield batch;
}

async function* present(cid, bytes) {
  if (bytes === undefined) throw new NotFoundError(`block ${cid} is not stored`);
  yield bytes;
}

export class SplitStoreBlockstore {
  #store;
  #pin;
  #batch;

  /**
   * @param {SplitStore} store an open SplitStore
   * @param {{ pin?: boolean, batchSize?: number }} [options]
   */
  constructor(store, { pin = true, batchSize = DEFAULT_BATCH } = {}) {
    if (!(store instanceof SplitStore)) throw new TypeError('SplitStoreBlockstore wraps an open SplitStore');
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new TypeError('batchSize is a positive integer');
    this.#store = store;
    this.#pin = pin;
    this.#batch = batchSize;
  }

  /** Loads the module (once), opens the store `name` and wraps it. */
  static async open(name, config, options) {
    await init();
    return new SplitStoreBlockstore(await SplitStore.open(name, config), options);
  }

  /** The SplitStore underneath: head changes, compactions, info. */
  get store() {
    return this.#store;
  }

  async put(cid, bytes, options) {
    checkAbort(options);
    const block = await joined(bytes, options);
    checkAbort(options);
    // The pin first: no compaction can drop the block between its write and its pin.
    if (this.#pin) await this.#store.protect([cid]);
    await this.#store.put(cid, block);
    return cid;
  }

  async *putMany(source, options) {
    checkAbort(options);
    for await (const pairs of batches(source, this.#batch, options)) {
      const blocks = [];
      for (const { cid, bytes } of pairs) blocks.push({ cid, bytes: await joined(bytes, options) });
      checkAbort(options);
      if (this.#pin) await this.#store.protect(blocks.map((b) => b.cid));
      await this.#store.putMany(blocks);
      for (const { cid } of blocks) yield cid;
    }
  }

  async *get(cid, options) {
    checkAbort(options);
    const bytes = await this.#store.get(cid);
    checkAbort(options);
    yield* present(cid, bytes);
  }

  async *getMany(source, options) {
    checkAbort(options);
    for await (const cids of batches(source, this.#batch, options)) {
      const found = await this.#store.getMany(cids);
      checkAbort(options);
      for (let i = 0; i < cids.length; i++) yield { cid: cids[i], bytes: present(cids[i], found[i]) };
    }
  }

  async has(cid, options) {
    checkAbort(options);
    return this.#store.has(cid);
  }

  async delete(cid, options) {
    checkAbort(options);
    // The pin last to go first: a crash between the two leaves the block unpinned, never a
    // pin that a later write of the same block would revive unasked.
    if (this.#pin) await this.#store.unprotect([cid]);
    await this.#store.delete(cid);
  }

  async *deleteMany(source, options) {
    checkAbort(options);
    for await (const cids of batches(source, this.#batch, options)) {
      if (this.#pin) await this.#store.unprotect(cids);
      await this.#store.deleteMany(cids);
      for (const cid of cids) yield cid;
    }
  }

  async *getAll(options) {
    checkAbort(options);
    if (this.#pin) {
      // The pinned blocks: what was put through a pinning Blockstore, and roots pinned with
      // SplitStore.protect. Pins keep their CIDs, codec included.
      const pins = (await this.#store.protected()).map((s) => CID.parse(s));
      for (let i = 0; i < pins.length; i += this.#batch) {
        checkAbort(options);
        const cids = pins.slice(i, i + this.#batch);
        const found = await this.#store.getMany(cids);
        for (let j = 0; j < cids.length; j++) {
          if (found[j] !== undefined) yield { cid: cids[j], bytes: present(cids[j], found[j]) };
        }
      }
      return;
    }
    // Every stored block. The store keys blocks by multihash, so each is named by a raw CIDv1.
    let cursor = null;
    do {
      checkAbort(options);
      const page = await this.#store.listBlocks(cursor, this.#batch);
      for (const { multihash, bytes } of page.blocks) {
        const cid = CID.createV1(raw.code, Digest.decode(multihash));
        yield { cid, bytes: present(cid, bytes) };
      }
      cursor = page.next;
    } while (cursor !== null);
  }

  /** Closes the SplitStore underneath. */
  async close() {
    await this.#store.close();
  }
}
