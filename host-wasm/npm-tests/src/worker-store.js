// Runs in a dedicated Web Worker: the package loads, opens a store on the worker's
// IndexedDB, writes and reads through SplitStore and the Blockstore, and compacts.
import all from 'it-all';
import { CID } from 'multiformats/cid';
import * as raw from 'multiformats/codecs/raw';
import { sha256 } from 'multiformats/hashes/sha2';
import { SplitStore } from 'splitstore-wasm';
import { SplitStoreBlockstore } from 'splitstore-wasm/blockstore';

self.onmessage = async ({ data: { name } }) => {
  try {
    const blockstore = await SplitStoreBlockstore.open(name, { mode: 'universal' });
    const blocks = [];
    for (let i = 0; i < 300; i++) {
      const bytes = new TextEncoder().encode(`worker block ${i}`);
      blocks.push({ cid: CID.createV1(raw.code, await sha256.digest(bytes)), bytes });
    }
    const put = await all(blockstore.putMany(blocks));
    const back = await all(blockstore.getMany(blocks.map((b) => b.cid)));
    const same = await Promise.all(back.map(async ({ bytes }, i) => {
      const [got] = await all(bytes);
      return new TextDecoder().decode(got) === `worker block ${i}`;
    }));
    const listed = (await all(blockstore.getAll())).length;
    const info = await blockstore.store.info();
    let inUse = '';
    try {
      await SplitStore.open(name);
    } catch (e) {
      inUse = e.code;
    }
    await blockstore.close();
    await SplitStore.destroy(name);
    self.postMessage({
      ok: put.length === 300 && same.every(Boolean) && listed === 300 && info.hot.keys === 300 && inUse === 'InUse',
      put: put.length, same: same.filter(Boolean).length, listed, hotKeys: info.hot.keys, inUse,
      isWorker: typeof WorkerGlobalScope !== 'undefined' && self instanceof WorkerGlobalScope,
    });
  } catch (e) {
    self.postMessage({ ok: false, error: `${e.name}: ${e.message} (${e.code ?? ''})` });
  }
};
