// The page in headless Chromium: real package, real IndexedDB, real test data.
//
// Each test uses its own browser context, hence its own IndexedDB and localStorage.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { carSummary } from './car.mjs';
import {
  carinfo, exportCar, launch, newPage, openPage, openStore, screenshot, settledStats, shownStats, storeInfo, testdata,
  untilIdle,
} from './harness.mjs';

const TESTNET_128 = testdata('kubo-lotus-testnet', 'lotus_testnet_export_128.car');

let env;
before(async () => {
  env = await launch();
});
after(async () => {
  await env?.close();
});

/** The independent expectation for the testnet file, from two readers that agree. */
function testnetExpectation() {
  const info = carinfo(TESTNET_128);
  const own = carSummary(TESTNET_128);
  // The test data README and carinfo.py say 1049 blocks, 6 of them identity-hashed; a store
  // never stores identity blocks, so 1043 distinct blocks must land in the hot store.
  assert.equal(info.blocks, 1049);
  assert.equal(own.sections, info.blocks);
  assert.equal(own.identity, info.hashes.identity);
  assert.equal(own.storable, info.unique_blocks - info.hashes.identity);
  return { ...own, roots: info.roots };
}

async function importFile(page, path) {
  const before = await page.evaluate(() => document.getElementById('import-status').textContent);
  await page.setInputFiles('#car-file', path);
  await page.waitForFunction(
    (prev) => {
      const t = document.getElementById('import-status').textContent;
      return t !== prev && !t.startsWith('Importing');
    },
    before,
    { timeout: 60_000 },
  );
}

describe('splitstore page', () => {
  test('imports the testnet CAR through the file input, compacts, and shows what the store holds', async () => {
    const expected = testnetExpectation();
    const { ctx, page } = await newPage(env);
    await openPage(page, env.url);
    // With the sync check on, a head from 2020 is out of sync: only a manual compaction runs.
    await openStore(page, { name: 'testnet', mode: 'universal', finality: 5, threshold: 2, boundary: 1, syncCheck: true });

    await importFile(page, TESTNET_128);
    const statusBlocks = Number(await page.getAttribute('#import-status', 'data-blocks'));
    assert.equal(statusBlocks, expected.sections, 'the import reports every section of the file');
    let { shown, info } = await settledStats(page);
    assert.deepEqual(shown, {
      headEpoch: info.headEpoch, baseEpoch: info.baseEpoch, compactions: info.compactions,
      hotObjects: info.hotObjects, hotBytes: info.hotBytes, coldObjects: info.coldObjects, coldBytes: info.coldBytes,
    });
    assert.equal(info.headEpoch, 128, 'the file\'s root (height 128) became the head');
    assert.equal(info.compactions, 0, 'a 2020 head is out of sync: no automatic compaction');
    assert.equal(info.compacting, false);
    assert.equal(info.hotObjects, expected.storable);
    assert.equal(info.hotBytes, expected.storableBytes);
    assert.equal(info.coldObjects, 0);
    await screenshot(page, '01-testnet-imported');

    const phases = await page.evaluate(() => {
      const seen = [];
      const phase = document.getElementById('phase');
      new MutationObserver(() => seen.push(phase.dataset.phase))
        .observe(phase, { attributes: true, attributeFilter: ['data-phase'] });
      window.seenPhases = seen;
      document.getElementById('compact-btn').click();
      return seen;
    });
    assert.deepEqual(phases, []);
    await page.waitForFunction(() => !document.getElementById('compact-btn').disabled
      && document.getElementById('phase').dataset.phase === 'idle', null, { timeout: 60_000 });
    const seen = [...new Set(await page.evaluate(() => window.seenPhases))];
    assert.deepEqual(seen.filter((p) => ['mark', 'collect', 'move', 'purge'].includes(p)), ['mark', 'collect', 'move', 'purge'],
      `the progress display went through the phases: ${seen.join(', ')}`);
    assert.equal(await page.locator('.message', { hasText: 'already running' }).count(), 0);
    ({ shown, info } = await settledStats(page));
    assert.deepEqual(shown, {
      headEpoch: info.headEpoch, baseEpoch: info.baseEpoch, compactions: info.compactions,
      hotObjects: info.hotObjects, hotBytes: info.hotBytes, coldObjects: info.coldObjects, coldBytes: info.coldBytes,
    });
    assert.equal(info.compactions, 1);
    assert.equal(info.baseEpoch, 128 - 5, 'base = head - boundary finalities x finality');
    // Universal mode moves every purged block to cold: nothing is lost, hot shrank.
    assert.equal(info.hotObjects + info.coldObjects, expected.storable);
    assert.equal(info.hotBytes + info.coldBytes, expected.storableBytes);
    assert.ok(info.coldObjects > 0 && info.hotObjects < expected.storable, `hot ${info.hotObjects}, cold ${info.coldObjects}`);

    const rows = await page.$$eval('#history tbody tr[data-number]', (trs) => trs.map((tr) => [...tr.cells].map((c) => c.textContent)));
    assert.equal(rows.length, 1);
    assert.equal(rows[0][1], '128');
    assert.equal(rows[0][2], '123');
    assert.match(rows[0][6], /mark \d+/);
    assert.equal(await page.locator('#chart .compaction-mark').count(), 1);

    await page.click('#check-btn');
    await page.waitForFunction(() => document.getElementById('check-result').dataset.missing != null);
    const check = await page.evaluate(() => ({ ...document.getElementById('check-result').dataset }));
    assert.equal(check.missing, '0', 'the live set is complete after compaction');
    assert.equal(Number(check.hot), info.hotObjects, 'after a compaction the hot store is exactly the live set');
    assert.match(await page.textContent('#check-result'), /0 missing — complete/);
    await screenshot(page, '02-testnet-compacted');

    // Every control has an accessible name (a label, aria-label or its text).
    const unnamed = await page.evaluate(() => [...document.querySelectorAll('input, select, button, textarea')]
      .filter((e) => !(e.labels?.length || e.getAttribute('aria-label') || e.getAttribute('aria-labelledby') || e.textContent.trim()))
      .map((e) => e.id || e.outerHTML.slice(0, 60)));
    assert.deepEqual(unnamed, []);

    await page.setViewportSize({ width: 375, height: 800 });
    await page.waitForTimeout(200);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `no horizontal scrolling on a narrow screen (overflow ${overflow}px)`);
    await screenshot(page, '03-testnet-narrow');
    assert.deepEqual(page.consoleErrors, []);
    await ctx.close();
  });

  test('a malformed CAR gives a readable error and the page keeps working', async () => {
    const { ctx, page } = await newPage(env);
    await openPage(page, env.url);
    await openStore(page, { name: 'malformed' });
    const bad = [
      testdata('go-car', 'cmd-car-inputs', 'badheaderlength.car'),
      testdata('go-car', 'cmd-car-inputs', 'badsectionlength.car'),
      testdata('go-car', 'v2-testdata', 'sample-rootless-v42.car'),
    ];
    for (const path of bad) {
      const name = path.split('/').pop();
      await importFile(page, path);
      const box = page.locator('.message.error', { hasText: `Importing ${name} failed` });
      await box.waitFor();
      const text = await box.textContent();
      assert.match(text, /not a readable CAR archive/);
      assert.ok((await box.locator('.detail').textContent()).length > 5, `an explanation for ${name}: ${text}`);
      assert.equal(await page.textContent('#import-status'), `${name} was not imported.`);
    }
    await screenshot(page, '04-malformed-car');
    const info = await storeInfo(page);
    assert.equal(info.headEpoch, null, 'no head from a malformed file');
    // Without a head there is nothing to compact: the page says what to do.
    await page.click('#compact-btn');
    const noHead = page.locator('.message.error[data-reason="no-head"]');
    await noHead.waitFor();
    assert.match(await noHead.textContent(), /Compaction failed.*import a CAR file or grow the synthetic chain first/s);
    assert.equal(await page.isEnabled('#compact-btn'), true);

    // Still working: a good file imports (and, with the sync check off, its head passes the
    // threshold so a compaction runs by itself), and the errors can be dismissed from the keyboard.
    await importFile(page, TESTNET_128);
    const { shown } = await settledStats(page);
    assert.equal(shown.headEpoch, 128);
    assert.equal(shown.compactions, 1);
    assert.equal(shown.hotObjects + shown.coldObjects, testnetExpectation().storable);
    const dismiss = page.locator('.message.error .dismiss').first();
    await dismiss.focus();
    await page.keyboard.press('Enter');
    assert.equal(await page.locator('.message.error').count(), bad.length);
    // The console carries the failures' details, nothing else.
    assert.ok(page.consoleErrors.every((t) => /^(Importing|Compaction)/.test(t)), page.consoleErrors.join('\n'));
    await ctx.close();
  });

  test('a full storage quota gives a readable error and the store keeps working', async () => {
    const expected = testnetExpectation();
    const { ctx, page } = await newPage(env);
    await openPage(page, env.url);
    // Chromium's own quota override: the origin may hold 64 KiB, far less than the file. It is
    // set before the store opens (which also shows a full store still opens): IndexedDB
    // answers space checks for 30 s from what it learnt at the last one, and opening a new
    // store writes its identity records.
    const cdp = await ctx.newCDPSession(page);
    const origin = new URL(env.url).origin;
    await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: 64 * 1024 });
    await openStore(page, { name: 'quota', syncCheck: true });
    await importFile(page, TESTNET_128);
    const box = page.locator('.message.error[data-reason="quota"]');
    await box.waitFor();
    assert.match(await box.textContent(), /Importing lotus_testnet_export_128\.car failed/);
    assert.match(await box.textContent(), /quota exceeded/);
    assert.match(await box.textContent(), /storage quota\)\. The refused write was not applied/);
    await screenshot(page, '08-quota');
    let { shown, info } = await settledStats(page);
    assert.equal(info.hotObjects, 0, 'the refused batch left nothing behind');
    assert.equal(shown.hotObjects, 0);
    assert.equal(info.headEpoch, null);

    // With room again, the same store takes the same file.
    await cdp.send('Storage.overrideQuotaForOrigin', { origin });
    await importFile(page, TESTNET_128);
    ({ shown, info } = await settledStats(page));
    assert.equal(info.hotObjects, expected.storable);
    assert.equal(shown.hotObjects, expected.storable);
    assert.equal(shown.headEpoch, 128);

    // Deleting the store (two presses: the first only asks) removes its databases.
    await page.click('#destroy-btn');
    assert.equal(await page.textContent('#destroy-btn'), 'Really delete "quota"?');
    assert.notEqual(await page.evaluate(() => window.splitstore.store), null);
    await page.click('#destroy-btn');
    await page.locator('.message.note', { hasText: 'Deleted store "quota"' }).waitFor();
    assert.equal(await page.evaluate(() => window.splitstore.store), null);
    await openStore(page, { name: 'quota' });
    assert.deepEqual(await shownStats(page), {
      headEpoch: null, baseEpoch: 0, compactions: 0, hotObjects: 0, hotBytes: 0, coldObjects: 0, coldBytes: 0,
    });
    assert.equal(await page.locator('#history tbody tr[data-number]').count(), 0);
    await ctx.close();
  });

  test('a synthetic chain compacts several times and the hot store stays bounded', async () => {
    const { ctx, page } = await newPage(env);
    await openPage(page, env.url);
    // Keyboard only: name the store, open it with Enter, start the chain with Space.
    await page.focus('#store-name');
    await page.fill('#store-name', 'synthetic');
    await page.keyboard.press('Enter');
    await page.waitForFunction(() => window.splitstore.store != null);
    await page.focus('#synth-speed');
    await page.keyboard.press('Home');
    for (let i = 0; i < 7; i += 1) await page.keyboard.press('ArrowRight');
    assert.equal(await page.textContent('#synth-speed-out'), '8');
    await page.focus('#synth-toggle');
    await page.keyboard.press('Space');
    assert.equal(await page.getAttribute('#synth-toggle', 'aria-pressed'), 'true');

    // At least four compactions, and three of them seen ending in the history's samples (two
    // that end between one sample and the next show as one step).
    await page.waitForFunction(() => {
      const samples = window.splitstore.history?.samples ?? [];
      const steps = samples.filter((x, k) => k > 0 && x.compactions > samples[k - 1].compactions).length;
      return Number(document.getElementById('stat-compactions').dataset.value) >= 4 && steps >= 3;
    }, null, { timeout: 240_000, polling: 250 });
    await page.click('#synth-toggle');
    await page.waitForFunction(() => !window.splitstore.synth.busy);
    const { shown, info } = await settledStats(page);
    await screenshot(page, '05-synthetic-chain');
    assert.equal(shown.hotObjects, info.hotObjects);
    assert.equal(shown.coldBytes, info.coldBytes);
    assert.ok(info.compactions >= 4);

    // Universal mode loses nothing: every block the generator emitted (each counted once) is
    // in hot or cold. A block written while a compaction copied it to cold stays hot too.
    const written = await page.evaluate(() => window.splitstore.synth.written);
    const all = carSummary(await exportCar(page, 'all'));
    assert.equal(all.storable, written.blocks);
    assert.equal(all.storableBytes, written.bytes);
    assert.ok(info.hotObjects + info.coldObjects >= written.blocks);
    const hot = carSummary(await exportCar(page, 'hot'));
    assert.equal(hot.storable, info.hotObjects);
    assert.equal(hot.storableBytes, info.hotBytes);

    // Bounded: after the first compaction, hot grows only by what stays live for ever (every
    // header back to genesis), far slower than cold, which receives everything else.
    const samples = await page.evaluate(() => window.splitstore.history.samples);
    const after = samples.filter((x, k) => k > 0 && x.compactions > samples[k - 1].compactions);
    assert.ok(after.length >= 3, `saw ${after.length} compactions end in the samples`);
    const [first, last] = [after[0], after.at(-1)];
    const ratio = (last.hotBytes - first.hotBytes) / (last.coldBytes - first.coldBytes);
    console.log(`after each compaction, hot/cold bytes: ${after.map((x) => `${x.hotBytes}/${x.coldBytes}`).join(', ')}; ratio ${ratio.toFixed(2)}`);
    assert.ok(last.coldBytes > first.coldBytes);
    assert.ok(ratio < 0.5, `hot grew ${last.hotBytes - first.hotBytes} bytes while cold grew ${last.coldBytes - first.coldBytes}`);
    assert.ok(last.hotBytes < first.hotBytes * 2, `hot after the last compaction ${last.hotBytes}, after the first ${first.hotBytes}`);
    assert.ok(info.hotBytes < written.bytes * 0.8, `hot ${info.hotBytes} of ${written.bytes} bytes written`);
    assert.ok(info.coldBytes > 0);
    assert.ok(await page.locator('#chart .compaction-mark').count() >= 2);
    assert.ok(await page.locator('#history tbody tr[data-number]').count() >= 2);

    await page.click('#check-btn');
    await page.waitForFunction(() => document.getElementById('check-result').dataset.missing != null);
    assert.equal(await page.getAttribute('#check-result', 'data-missing'), '0');

    // Reload: the same store and the same chain continue.
    await openPage(page, env.url);
    const again = await settledStats(page);
    assert.equal(again.info.headEpoch, info.headEpoch);
    assert.equal(again.shown.compactions, info.compactions);
    assert.equal(await page.inputValue('#store-name'), 'synthetic');
    await page.click('#synth-step');
    await page.waitForFunction((h) => Number(document.getElementById('stat-head').dataset.value) > h, info.headEpoch);
    await untilIdle(page);
    // The new tipset's parents are the old head: the walk from it finds everything.
    await page.click('#check-btn');
    await page.waitForFunction((h) => Number(document.getElementById('check-result').dataset.headEpoch) > h, info.headEpoch);
    assert.equal(await page.getAttribute('#check-result', 'data-missing'), '0');
    assert.deepEqual(page.consoleErrors, []);
    await ctx.close();
  });

  test('a reload in the middle of a compaction is recovered, with a visible note', async () => {
    const expected = testnetExpectation();
    const { ctx, page } = await newPage(env);
    await openPage(page, env.url);

    // Reference: the same data and settings, compacted without interruption.
    await openStore(page, { name: 'reference', batchSize: 4, syncCheck: true });
    await importFile(page, TESTNET_128);
    await page.click('#compact-btn');
    await page.waitForFunction(() => window.splitstore.store && document.getElementById('phase').dataset.phase === 'idle'
      && !document.getElementById('compact-btn').disabled, null, { timeout: 120_000 });
    const reference = (await settledStats(page)).info;
    assert.equal(reference.compactions, 1);
    await page.click('#close-btn');
    await page.waitForFunction(() => window.splitstore.store == null);
    await openStore(page, { name: 'interrupted', batchSize: 4, syncCheck: true });
    await importFile(page, TESTNET_128);

    // Reload as soon as the purge starts: by then the compaction has made its purge record
    // durable, and with 4 objects per batch the purge has hundreds of batches to go.
    const reloaded = page.waitForEvent('load', { timeout: 120_000 });
    const phases = await page.evaluate(() => new Promise((resolve) => {
      const seen = [];
      const phase = document.getElementById('phase');
      new MutationObserver(() => {
        seen.push(phase.dataset.phase);
        if (phase.dataset.phase === 'purge') {
          sessionStorage.setItem('phases-before-reload', JSON.stringify(seen));
          location.reload();
        }
      }).observe(phase, { attributes: true, attributeFilter: ['data-phase'] });
      document.getElementById('compact-btn').click();
      resolve(true);
    }));
    assert.ok(phases);
    await reloaded;
    await page.waitForFunction(() => document.body.dataset.ready === 'true', null, { timeout: 60_000 });
    const seen = JSON.parse(await page.evaluate(() => sessionStorage.getItem('phases-before-reload')));
    assert.ok(seen.includes('mark') && seen.at(-1) === 'purge', seen.join(','));

    const note = page.locator('[data-testid="recovery-note"]');
    await note.waitFor({ timeout: 30_000 });
    assert.match(await note.textContent(), /Recovery ran when the store opened/);
    assert.match(await note.textContent(), /Opening the store finished it/);
    const { shown, info } = await settledStats(page);
    assert.equal(info.recovered, true);
    assert.equal(info.pendingRecovery, false);
    assert.equal(shown.hotObjects, info.hotObjects);
    // The recovered store holds exactly what the uninterrupted one does.
    assert.equal(info.compactions, 1);
    assert.equal(info.baseEpoch, reference.baseEpoch);
    assert.equal(info.hotObjects, reference.hotObjects);
    assert.equal(info.coldObjects, reference.coldObjects);
    assert.equal(info.hotObjects + info.coldObjects, expected.storable);
    await page.click('#check-btn');
    await page.waitForFunction(() => document.getElementById('check-result').dataset.missing != null);
    assert.equal(await page.getAttribute('#check-result', 'data-missing'), '0');
    assert.match(await page.textContent('#history tbody'), /\(recovered\)/);
    await screenshot(page, '06-recovered-after-reload');
    await ctx.close();
  });

  test('reloads at five moments of a compaction all recover with nothing lost', async () => {
    const expected = testnetExpectation();
    const { ctx, page } = await newPage(env);
    await openPage(page, env.url);
    await openStore(page, { name: 'reload-reference', batchSize: 4, syncCheck: true });
    await importFile(page, TESTNET_128);
    await page.click('#compact-btn');
    await page.waitForFunction(() => window.splitstore.store && document.getElementById('phase').dataset.phase === 'idle'
      && !document.getElementById('compact-btn').disabled, null, { timeout: 120_000 });
    const reference = (await settledStats(page)).info;
    await page.click('#close-btn');
    await page.waitForFunction(() => window.splitstore.store == null);
    // Reload on entering a phase, or a number of progress events into it.
    const moments = [['mark', 0], ['collect', 0], ['move', 0], ['purge', 0], ['purge', 40]];
    for (const [i, [when, after]] of moments.entries()) {
      await openStore(page, { name: `reload-trial-${i}`, batchSize: 4, syncCheck: true });
      await importFile(page, TESTNET_128);
      const reloaded = page.waitForEvent('load', { timeout: 120_000 });
      await page.evaluate(([when, after]) => {
        const phase = document.getElementById('phase');
        let events = 0;
        new MutationObserver(() => {
          if (phase.dataset.phase === when && events++ >= after) location.reload();
        }).observe(phase, { attributes: true, attributeFilter: ['data-phase', 'data-done'] });
        document.getElementById('compact-btn').click();
      }, [when, after]);
      await reloaded;
      await page.waitForFunction(() => document.body.dataset.ready === 'true', null, { timeout: 60_000 });
      const { info } = await settledStats(page);
      const at = `trial ${i} (reload in ${when})`;
      assert.equal(info.pendingRecovery, false, at);
      if (info.compactions === 1) {
        // The purge had begun: opening finished it, exactly as without the reload (universal
        // mode: every stored block is in hot or cold).
        assert.equal(info.hotObjects, reference.hotObjects, at);
        assert.equal(info.hotObjects + info.coldObjects, expected.storable, at);
      } else {
        // Before the purge: the compaction was discarded and nothing left the hot store.
        assert.equal(info.compactions, 0, at);
        assert.equal(info.hotObjects, expected.storable, at);
      }
      await page.click('#check-btn');
      await page.waitForFunction(() => document.getElementById('check-result').dataset.missing != null);
      assert.equal(await page.getAttribute('#check-result', 'data-missing'), '0', at);
      await page.click('#close-btn');
      await page.waitForFunction(() => window.splitstore.store == null);
    }
    await ctx.close();
  });

  test('a store open in another tab is refused with a readable message', async () => {
    const { ctx, page } = await newPage(env);
    await openPage(page, env.url);
    await openStore(page, { name: 'shared' });
    // A second tab of the same browser profile reopens the last store on load.
    const { page: second } = await newPage(env, { context: ctx });
    await openPage(second, env.url);
    const box = second.locator('.message.error', { hasText: 'Opening store "shared" failed' });
    await box.waitFor();
    assert.match(await box.textContent(), /open in another tab/);
    assert.equal(await second.evaluate(() => window.splitstore.store), null);
    await screenshot(second, '07-store-in-use');
    // The second tab keeps working with another store.
    await openStore(second, { name: 'other' });
    assert.equal((await shownStats(second)).hotObjects, 0);
    // Closing the first tab's store frees it for the second: once the close has finished
    // (the button is disabled after it) and the browser has released the store's Web Locks
    // (after the close resolves, in the first tab's own time).
    await page.click('#close-btn');
    await page.waitForFunction(() => document.getElementById('close-btn').disabled);
    await second.click('#close-btn');
    await second.waitForFunction(
      async () => (await navigator.locks.query()).held.every((l) => !l.name.startsWith('splitstore:shared-')),
      null, { timeout: 10_000, polling: 50 });
    await openStore(second, { name: 'shared' });
    await ctx.close();
  });
});
