// Compiled by `tsc --noEmit` (scripts/test-npm.sh): the package's declarations fit how users
// type their code, and the Blockstore is an interface-blockstore Blockstore.
import type { Blockstore } from 'interface-blockstore';
import { CID } from 'multiformats/cid';
import init, { SplitStore, type CompactionReport, type ErrorCode, type Info, type SplitStoreError } from 'splitstore-wasm';
import { SplitStoreBlockstore } from 'splitstore-wasm/blockstore';

export async function typed(cid: CID): Promise<number> {
  await init();
  const store: SplitStore = await SplitStore.open('typed', { mode: 'universal', lock: 'wait' });
  const blockstore: Blockstore = new SplitStoreBlockstore(store, { pin: false, batchSize: 64 });
  await blockstore.put(cid, new Uint8Array([1]));
  const info: Info = await store.info();
  const report: CompactionReport = await store.compact((p) => console.log(p.phase, p.done, p.total));
  store.events.addEventListener('compactionend', () => {});
  const page = await store.listBlocks(null, 10);
  const codes: ErrorCode[] = ['InUse', 'QuotaExceeded', 'BadCar'];
  // @ts-expect-error: not a code the store rejects with
  const wrong: ErrorCode = 'NoSuchCode';
  try {
    await store.get(cid);
  } catch (e) {
    if ((e as SplitStoreError).code === 'Closed') return -1;
  }
  await store.exportCarStream('all').pipeTo(new WritableStream());
  return (info.hot?.keys ?? 0) + report.purged + page.blocks.length + codes.length + wrong.length;
}
