// The interface-blockstore contract suite (interface-blockstore-tests, the suite every
// js-stores backend runs) against SplitStoreBlockstore, each test on a fresh store, in both
// pin modes. Runs under mocha in the page.
import 'mocha/mocha.js';
import { interfaceBlockstoreTests } from 'interface-blockstore-tests';
import init, { SplitStore } from 'splitstore-wasm';
import { SplitStoreBlockstore } from 'splitstore-wasm/blockstore';
import { report, uniqueName } from './report.js';

await init();
const mocha = globalThis.mocha;
mocha.setup({ ui: 'bdd', reporter: 'html', timeout: 60_000 });

for (const pin of [true, false]) {
  describe(`SplitStoreBlockstore, pin: ${pin}`, () => {
    interfaceBlockstoreTests({
      async setup() {
        return SplitStoreBlockstore.open(uniqueName('contract'), { mode: 'universal' }, { pin });
      },
      async teardown(store) {
        await store.close();
        await SplitStore.destroy(store.store.name);
      },
    });
  });
}

const results = { passes: [], failures: [] };
mocha
  .run(() => report({ ok: results.failures.length === 0 && results.passes.length > 0, ...results }))
  .on('pass', (t) => results.passes.push(t.fullTitle()))
  .on('fail', (t, err) => results.failures.push(`${t.fullTitle()}: ${err?.message ?? err}`));
