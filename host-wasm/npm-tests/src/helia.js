// Helia (offline: createHeliaLight, no network) keeps its data in a SplitStoreBlockstore
// whose SplitStore also holds a compacting Filecoin chain (a real Lotus testnet export,
// streamed from a fetch body; discard mode: everything outside the chain's live set and the
// pins goes at each compaction). A control store takes the same chain and the same
// compactions without Helia: the chain must come out the same, and whole.
import { dagCbor } from '@helia/dag-cbor';
import * as dagCborCodec from '@ipld/dag-cbor';
import { createHeliaLight } from 'helia';
import all from 'it-all';
import { CID } from 'multiformats/cid';
import * as raw from 'multiformats/codecs/raw';
import { sha256 } from 'multiformats/hashes/sha2';
import init, { SplitStore } from 'splitstore-wasm';
import { SplitStoreBlockstore } from 'splitstore-wasm/blockstore';
import { run, uniqueName } from './report.js';

const CONFIG = {
  mode: 'discard', finality: 4, thresholdFinalities: 100, boundaryFinalities: 4, syncGapSecs: null,
};

function check(cond, what) {
  if (!cond) throw new Error(what);
}

/** Streams the CAR at `url` (served by the test from the shared test data) into each store. */
async function importInto(stores, url) {
  for (const store of stores) {
    const res = await fetch(url);
    check(res.ok, `${url}: HTTP ${res.status}`);
    const r = await store.importCarStream(res.body);
    check(r.head, `${url} did not become the head: ${r.headSkipped}`);
  }
}

/** The chain's live set as `check` sees it, and the head. */
async function chainState(store) {
  const { hot, cold, missing, missingCids } = await store.check();
  return { hot, cold, missing, missingCids, head: (await store.info()).head };
}

/** Compacts both stores and asserts the chain came out whole, and the same in both. */
async function compactAndCompare([store, control], what) {
  const report = await store.compact();
  await control.compact();
  const [mine, theirs] = [await chainState(store), await chainState(control)];
  check(mine.missing === 0, `${what}: the chain's live set lacks ${mine.missingCids}`);
  check(JSON.stringify(mine) === JSON.stringify(theirs), `${what}: the chain differs from the control's`);
  return report;
}

async function has(helia, cid) {
  return helia.blockstore.has(cid);
}

run(async () => {
  await init();
  const name = uniqueName('helia');
  const controlName = uniqueName('control');
  const store = await SplitStore.open(name, CONFIG);
  const control = await SplitStore.open(controlName, CONFIG);
  const both = [store, control];
  const blockstore = new SplitStoreBlockstore(store);
  const helia = createHeliaLight({ blockstore, codecs: [dagCborCodec] });
  await helia.start();
  const d = dagCbor(helia);
  const steps = [];

  // Helia's data: a pinned DAG (root -> leaf), and an unpinned raw block.
  const leaf = await d.add({ note: 'a leaf kept by its pinned parent', at: 1 });
  const root = await d.add({ name: 'root', child: leaf });
  await all(helia.pins.add(root));
  const loose = new TextEncoder().encode('an unpinned raw block');
  const looseCid = CID.createV1(raw.code, await sha256.digest(loose));
  await helia.blockstore.put(looseCid, loose);
  check((await d.get(root)).child.equals(leaf), 'the root reads back with its link');

  // The chain arrives in the same store and compacts twice: Helia's blocks are not in its live
  // set, and a compaction in discard mode drops everything else that is not pinned.
  await importInto(both, '/fixtures/lotus_testnet_export_128.car');
  const first = await compactAndCompare(both, 'first compaction');
  check(first.purged > 0, 'the first compaction purged chain blocks');
  await importInto(both, '/fixtures/lotus_testnet_export_256_multiroot.car');
  const second = await compactAndCompare(both, 'second compaction');
  check(second.purged > 0, 'the second compaction purged chain blocks');
  steps.push({ compacted: [first.purged, second.purged] });
  check((await d.get(leaf)).note.startsWith('a leaf'), 'the leaf survives the compactions');
  check((await d.get(root)).name === 'root', 'the root survives the compactions');
  check(await has(helia, looseCid), 'the unpinned block survives the compactions (put through the Blockstore)');
  const decoded = new TextDecoder().decode((await all(helia.blockstore.get(looseCid))).at(0));
  check(decoded === 'an unpinned raw block', 'the raw block reads back');

  // helia.gc() deletes what Helia has not pinned, among the Blockstore's blocks: the loose
  // block goes, the pinned DAG stays, the chain is not touched.
  await helia.gc();
  check(!(await has(helia, looseCid)), 'gc deletes the block Helia did not pin');
  check(await has(helia, root) && await has(helia, leaf), 'gc keeps the pinned DAG');
  const [afterGc, controlNow] = [await chainState(store), await chainState(control)];
  check(JSON.stringify(afterGc) === JSON.stringify(controlNow), 'gc left the chain as the control has it');

  // Unpinned in Helia, the DAG goes at the next gc; and a deleted block stays deleted
  // through a compaction.
  await all(helia.pins.rm(root));
  await helia.gc();
  check(!(await has(helia, root)) && !(await has(helia, leaf)), 'gc deletes the DAG once unpinned');
  await compactAndCompare(both, 'third compaction');
  check(!(await has(helia, looseCid)) && !(await has(helia, root)), 'deleted blocks stay deleted');
  const errorOf = (promise) => promise.then(() => 'no error', (e) => e.name);
  // The Blockstore's own error, and what Helia makes of it offline.
  const notFound = await errorOf(all(blockstore.get(root)));
  const offline = await errorOf(all(helia.blockstore.get(root, { offline: true })));
  steps.push({ notFound, offline });
  check(notFound === 'NotFoundError', `an absent block is a NotFoundError, not ${notFound}`);
  check(offline === 'BlockNotFoundWhileOfflineError', `Helia offline: ${offline}`);

  await helia.stop();
  for (const s of both) await s.close();
  await SplitStore.destroy(name);
  await SplitStore.destroy(controlName);
  return { steps };
});
