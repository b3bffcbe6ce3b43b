//! The shared conformance suites (`splitstore-conformance`) on the IndexedDB backend, in
//! headless Chromium.
//!
//! The suites build backends through a synchronous constructor; [`LazyIdb`] names a fresh
//! database and opens it on first use. Every database a test created is deleted at its end.
#![cfg(target_arch = "wasm32")]

mod support;

use splitstore_conformance::{
    blockstore_contract::blockstore_contract,
    chain_index,
    crash::crash_matrix_on,
    hot_keys,
    interleave::{one_seed_on, SeedStats},
    kv_contract, pins, prune,
    realdata::import_and_compact,
    reify, scenarios, warmup,
};
use splitstore_core::Mode;
use splitstore_wasm::js;
use support::{log, LazyIdb};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn the_blockstore_crate_contract_holds_on_indexeddb() {
    blockstore_contract(&|| LazyIdb::fresh("bs")).await;
    support::cleanup().await;
}

#[wasm_bindgen_test]
async fn pins_keep_their_dags_on_indexeddb() {
    // Shared handles: the scenario reopens the store over the same databases.
    #[allow(clippy::arc_with_non_send_sync)]
    pins::pins_keep_their_dags(&|| std::sync::Arc::new(LazyIdb::fresh("pins"))).await;
    support::cleanup().await;
}

/// A pin made during a compaction's mark, move and purge, then the page dies at every 10th
/// backend call: reopened, a pin that returned holds and its DAG is whole.
#[wasm_bindgen_test]
async fn pins_survive_a_crash_on_indexeddb() {
    let points = pins::pins_survive_a_crash_beside_a_compaction(&|| LazyIdb::fresh("pin-crash"), 10).await;
    log(&format!("pins: {points} crash points on IndexedDB"));
    assert!(points > 20, "only {points} crash points");
    support::cleanup().await;
}

#[wasm_bindgen_test]
async fn kv_contract_get_has() {
    let t0 = js::perf_now();
    kv_contract::kv_contract_get_has(LazyIdb::fresh("kv")).await;
    log(&format!("kv_contract_get_has: {:.0} ms", js::perf_now() - t0));
    support::cleanup().await;
}

#[wasm_bindgen_test]
async fn kv_contract_batch_across_spaces() {
    let t0 = js::perf_now();
    kv_contract::kv_contract_batch_across_spaces(LazyIdb::fresh("kv")).await;
    log(&format!("kv_contract_batch_across_spaces: {:.0} ms", js::perf_now() - t0));
    support::cleanup().await;
}

#[wasm_bindgen_test]
async fn kv_contract_spaces_independent() {
    let t0 = js::perf_now();
    kv_contract::kv_contract_spaces_independent(LazyIdb::fresh("kv")).await;
    log(&format!("kv_contract_spaces_independent: {:.0} ms", js::perf_now() - t0));
    support::cleanup().await;
}

#[wasm_bindgen_test]
async fn kv_contract_scan_order_and_limits() {
    let t0 = js::perf_now();
    kv_contract::kv_contract_scan_order_and_limits(LazyIdb::fresh("kv")).await;
    log(&format!("kv_contract_scan_order_and_limits: {:.0} ms", js::perf_now() - t0));
    support::cleanup().await;
}

#[wasm_bindgen_test]
async fn kv_contract_scan_with_changes_between_pages() {
    let t0 = js::perf_now();
    kv_contract::kv_contract_scan_with_changes_between_pages(LazyIdb::fresh("kv")).await;
    log(&format!("kv_contract_scan_with_changes_between_pages: {:.0} ms", js::perf_now() - t0));
    support::cleanup().await;
}

#[wasm_bindgen_test]
async fn kv_contract_delete_idempotent() {
    let t0 = js::perf_now();
    kv_contract::kv_contract_delete_idempotent(LazyIdb::fresh("kv")).await;
    log(&format!("kv_contract_delete_idempotent: {:.0} ms", js::perf_now() - t0));
    support::cleanup().await;
}

#[wasm_bindgen_test]
async fn kv_contract_overwrite() {
    let t0 = js::perf_now();
    kv_contract::kv_contract_overwrite(LazyIdb::fresh("kv")).await;
    log(&format!("kv_contract_overwrite: {:.0} ms", js::perf_now() - t0));
    support::cleanup().await;
}

#[wasm_bindgen_test]
async fn kv_contract_empty_values() {
    let t0 = js::perf_now();
    kv_contract::kv_contract_empty_values(LazyIdb::fresh("kv")).await;
    log(&format!("kv_contract_empty_values: {:.0} ms", js::perf_now() - t0));
    support::cleanup().await;
}

#[wasm_bindgen_test]
async fn kv_contract_large_values() {
    let t0 = js::perf_now();
    kv_contract::kv_contract_large_values(LazyIdb::fresh("kv")).await;
    log(&format!("kv_contract_large_values: {:.0} ms", js::perf_now() - t0));
    support::cleanup().await;
}

#[wasm_bindgen_test]
async fn kv_contract_flush() {
    let t0 = js::perf_now();
    kv_contract::kv_contract_flush(LazyIdb::fresh("kv")).await;
    log(&format!("kv_contract_flush: {:.0} ms", js::perf_now() - t0));
    support::cleanup().await;
}

#[wasm_bindgen_test]
async fn kv_contract_stats() {
    let t0 = js::perf_now();
    kv_contract::kv_contract_stats(LazyIdb::fresh("kv")).await;
    log(&format!("kv_contract_stats: {:.0} ms", js::perf_now() - t0));
    support::cleanup().await;
}

#[wasm_bindgen_test]
async fn kv_contract_bulk() {
    let t0 = js::perf_now();
    kv_contract::kv_contract_bulk(LazyIdb::fresh("kv")).await;
    log(&format!("kv_contract_bulk: {:.0} ms", js::perf_now() - t0));
    support::cleanup().await;
}

#[wasm_bindgen_test]
async fn identity_and_unitary_on_indexeddb() {
    scenarios::identity_and_unitary(&|| LazyIdb::fresh("unitary")).await;
    support::cleanup().await;
}

#[wasm_bindgen_test]
async fn fingerprint_and_exact_marksets_agree_on_indexeddb() {
    scenarios::fingerprint_and_exact_agree(&|| LazyIdb::fresh("marksets")).await;
    support::cleanup().await;
}

#[wasm_bindgen_test]
async fn protectors_keep_their_dags_on_indexeddb() {
    scenarios::protectors_keep_their_dags(&|| LazyIdb::fresh("protect")).await;
    support::cleanup().await;
}

/// Interleavings: a compaction beside a node's foreground (a chain syncing in every order,
/// several writers, dropped writes), task switches chosen by a seeded executor; when no task can
/// progress the executor gives the page's event loop a turn, where IndexedDB delivers its
/// results (and commits the transactions of dropped writes).
#[wasm_bindgen_test]
async fn interleavings_on_indexeddb() {
    const SEEDS: u64 = 24;
    let t0 = js::perf_now();
    let mut t = SeedStats::default();
    for seed in 1..=SEEDS {
        t.add(&one_seed_on(&|| LazyIdb::fresh("inter"), seed, js::yield_to_event_loop).await);
        support::cleanup().await;
    }
    log(&format!(
        "interleavings on IndexedDB: {SEEDS} seeds; during compactions {} reads found, {} writes, {} dropped, \
         {} heads applied; {} purged, {:.0} ms",
        t.reads,
        t.writes,
        t.dropped,
        t.heads,
        t.purged,
        js::perf_now() - t0
    ));
    assert!(t.reads > 0 && t.writes > 0 && t.dropped > 0 && t.purged > 0, "the foreground must overlap the compaction");
}

/// The interleavings with a hot database rotated after every compaction: the foreground's
/// writes, dropped writes and reads go on beside the copy, and the store stays whole.
#[wasm_bindgen_test]
async fn interleavings_with_rotation_on_indexeddb() {
    const SEEDS: u64 = 6;
    let t0 = js::perf_now();
    let mut t = SeedStats::default();
    for seed in 101..101 + SEEDS {
        t.add(&one_seed_on(&|| LazyIdb::rotating("inter-rot"), seed, js::yield_to_event_loop).await);
        support::cleanup().await;
    }
    log(&format!(
        "interleavings with rotation: {SEEDS} seeds, {} rotations, {} writes and {} dropped during compactions, \
         {:.0} ms",
        support::rotations(),
        t.writes,
        t.dropped,
        js::perf_now() - t0
    ));
    assert!(support::rotations() >= SEEDS, "only {} rotations", support::rotations());
}

#[wasm_bindgen_test]
async fn compaction_in_every_mode_on_indexeddb() {
    let t0 = js::perf_now();
    scenarios::all_modes(&|| LazyIdb::fresh("modes")).await;
    support::cleanup().await;
    log(&format!("all_modes on IndexedDB: {:.0} ms", js::perf_now() - t0));
}

/// The chain index on IndexedDB: compactions that mark from it leave the stores exactly as
/// full walks do, and a reorg below it walks to genesis.
#[wasm_bindgen_test]
async fn chain_index_matches_the_full_walk_on_indexeddb() {
    let t0 = js::perf_now();
    let s = chain_index::indexed_equals_full_walk(&|| LazyIdb::fresh("index"), Mode::Universal, 3, 50, 9).await;
    assert!(s.indexed >= 3, "{s:?}");
    chain_index::reorg_below_the_anchor(&|| LazyIdb::fresh("index-reorg"), Mode::Discard).await;
    support::cleanup().await;
    log(&format!("chain index on IndexedDB: {s:?}, {:.0} ms", js::perf_now() - t0));
}

/// The hot key list on IndexedDB: compactions whose collect visits it leave the stores exactly
/// as compactions that read every key, with late messages and the kept graph (seed 5).
#[wasm_bindgen_test]
async fn hot_key_list_matches_scans_on_indexeddb() {
    let t0 = js::perf_now();
    let s = hot_keys::listed_equals_scanned(&|| LazyIdb::fresh("keys"), Mode::Universal, 5, 50, 9).await;
    assert!(s.listed + 1 == s.compactions && s.indexed > 0 && s.fewer == s.indexed, "{s:?}");
    support::cleanup().await;
    log(&format!("hot key list on IndexedDB: {s:?}, {:.0} ms", js::perf_now() - t0));
}

/// The crash matrix on IndexedDB: a compaction fails at backend call `k` as if the page died
/// there, the same databases are reopened (committed IndexedDB transactions survive a reload)
/// and must hold a consistent store that lost nothing live. Every third call point of a small
/// chain in every mode (each point copies the base store into two fresh databases, ~1 ms per
/// transaction, so every point of every mode would not fit CI).
#[wasm_bindgen_test]
async fn crash_matrix_on_indexeddb() {
    const STRIDE: u64 = 3;
    for (i, mode) in [Mode::Discard, Mode::Universal, Mode::Messages].into_iter().enumerate() {
        let t0 = js::perf_now();
        let stats = crash_matrix_on(&|| LazyIdb::fresh("crash"), mode, 41 + i as u64, 20, STRIDE).await;
        log(&format!(
            "crash matrix on IndexedDB, {mode:?}: {} calls per compaction, every {STRIDE}rd point: {} crash points, \
             {} recovered purges, {:.0} ms",
            stats.calls,
            stats.crash_points,
            stats.recovered_purges,
            js::perf_now() - t0
        ));
        assert!(stats.crash_points >= stats.calls / STRIDE, "{mode:?}: points skipped");
        assert!(stats.recovered_purges > 0, "{mode:?}: no crash point fell inside the purge");
        support::cleanup().await;
    }
}

/// A sample of the cold prune's crash matrix on IndexedDB: every sixth call of a prune in
/// universal mode (retention 0) and messages mode (retention 1), each point on two fresh
/// databases reopened after the failure.
#[wasm_bindgen_test]
async fn prune_crash_matrix_on_indexeddb() {
    const STRIDE: u64 = 6;
    for (mode, retention) in [(Mode::Universal, 0), (Mode::Messages, 1)] {
        let t0 = js::perf_now();
        let base = prune::base(mode, 52, 24).await;
        let stats = prune::prune_crash_matrix_on(&|| LazyIdb::fresh("prune"), mode, &base, retention, STRIDE).await;
        log(&format!(
            "prune crash matrix on IndexedDB, {mode:?}: {} calls, every {STRIDE}th point: {} crash points, {} \
             recovered purges, {:.0} ms",
            stats.calls,
            stats.crash_points,
            stats.recovered,
            js::perf_now() - t0
        ));
        assert!(stats.crash_points >= stats.calls / STRIDE, "{mode:?}: points skipped");
        assert!(stats.recovered > 0, "{mode:?}: no crash point fell inside the purge");
        support::cleanup().await;
    }
}

/// Warmup from a cold archive on IndexedDB: the first head change copies headers and one
/// finality of state into the empty hot database, once.
#[wasm_bindgen_test]
async fn warmup_on_indexeddb() {
    let copied = warmup::warmup_from_an_archive(&|| LazyIdb::fresh("warmup"), Mode::Universal).await;
    warmup::no_warmup_without_an_archive(&|| LazyIdb::fresh("warmup")).await;
    log(&format!("warmup on IndexedDB copied {copied} blocks"));
    support::cleanup().await;
}

/// Reify on IndexedDB: a cold DAG read through the hot view is copied into hot, within the
/// per-DAG limit and the queue's bound; a drain crashed at every second backend call leaves a
/// store whose next drain completes the copy.
#[wasm_bindgen_test]
async fn reify_on_indexeddb() {
    let base = reify::reify_base(74, 30).await;
    let s = reify::reify_copies_cold_dags_read_in_use(&|| LazyIdb::fresh("reify"), &base).await;
    log(&format!("reify on IndexedDB copied {} blocks", s.copied));
    support::cleanup().await;
    let m = reify::reify_crash_matrix_on(&|| LazyIdb::fresh("reify-crash"), &base, 2).await;
    log(&format!(
        "reify crash matrix on IndexedDB: {} calls, {} points, {} partial copies",
        m.calls, m.crash_points, m.partial
    ));
    assert!(m.crash_points > 3);
    support::cleanup().await;
}

/// The real-chain retention test (same as native): a 2020 Lotus testnet export with three
/// head blocks, compacted in every mode, compared with the oracle's independent walk.
#[wasm_bindgen_test]
async fn real_chain_retention_on_indexeddb() {
    const CAR: &[u8] =
        include_bytes!("../../../shared/testdata/kubo-lotus-testnet/lotus_testnet_export_256_multiroot.car");
    for mode in [Mode::Discard, Mode::Universal, Mode::Messages] {
        let t0 = js::perf_now();
        let (before, after, cold) = import_and_compact(&|| LazyIdb::fresh("real"), CAR, mode, 10, false)
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        log(&format!(
            "real chain on IndexedDB, {mode:?}: hot {before} -> {after}, cold {cold}, {:.0} ms",
            js::perf_now() - t0
        ));
        assert!(after < before);
        support::cleanup().await;
    }
}
