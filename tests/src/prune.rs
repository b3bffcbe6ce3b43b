//! Cold prune: what it keeps (against the independent oracle), its crash matrix, and a node's
//! writes in real orders at every await of it.
//!
//! The kept set is [`Universe::prune_set`] from the head, with the DAGs below the pins and
//! below every other hot block, computed over both stores before the prune. After a prune cold holds exactly its cold blocks that are in
//! that set, hot is untouched, and every link of a cold block that is not a header is present
//! (the policy drops old state below headers, never part of a DAG it keeps).

use std::collections::HashSet;

use splitstore_core::{
    kv::{Kv, Space, WriteBatch},
    mem::{ManualClock, MemKv},
    Cid, Config, Mode, NoProgress, SplitStore,
};

use crate::{
    chain::{apply_epoch, hot_holes, keys, node, small_chain, small_config, universe_of},
    crash::{copy_into, Survival},
    fault::{Fault, FaultKv},
    oracle::{key_of, Universe},
};

/// Settings of the prune suites: the small chain's, lenient about missing state (a prune
/// leaves old headers whose state it dropped, and `check` then counts nothing missing only
/// inside the boundaries).
pub fn prune_config(mode: Mode) -> Config {
    small_config(mode)
}

/// A store that has run many compactions, so cold holds many epochs of old state (universal)
/// or old messages (messages mode), plus blocks no chain names: `junk` unlinked blocks written
/// straight into cold (an archive's strays) and, in universal mode, unlinked hot blocks the
/// compactions moved there. One DAG is pinned.
pub struct PrunedBase {
    /// The hot store (a durable image).
    pub hot: MemKv,
    /// The cold store (a durable image).
    pub cold: MemKv,
    /// The pinned DAG's root.
    pub pinned: Cid,
}

/// Builds a [`PrunedBase`] of `epochs` epochs.
pub async fn base(mode: Mode, seed: u64, epochs: usize) -> PrunedBase {
    let (hot, cold) = (MemKv::with_crash_tracking(), MemKv::with_crash_tracking());
    let mut junk = WriteBatch::new();
    for i in 0..12u64 {
        let (c, b) = node(&[], 10_000 + seed * 100 + i);
        junk.put(Space::Blocks, key_of(&c), b);
    }
    cold.write(junk).await.expect("cold junk");
    let store =
        SplitStore::open(hot.clone(), cold.clone(), ManualClock::new(0), prune_config(mode)).await.expect("open");
    let (leaf, leaf_bytes) = node(&[], 20_000 + seed);
    let (pinned, pinned_bytes) = node(&[leaf], 20_001 + seed);
    store.put_many(vec![(leaf, leaf_bytes), (pinned, pinned_bytes)]).await.expect("put pinned DAG");
    store.protect(&[pinned]).await.expect("pin");
    let mut chain = small_chain(seed);
    for i in 0..epochs {
        let e = chain.next_epoch();
        if i % 5 == 0 {
            // A stray hot block: dead at the next compaction, kept in cold in universal mode.
            let (c, b) = node(&[], 30_000 + seed * 1000 + i as u64);
            store.put(&c, b).await.expect("stray");
        }
        if let Some(p) = apply_epoch(&store, &e).await {
            store.run_compaction(p.without_head_wait(), &NoProgress).await.expect("compaction");
        }
    }
    store.close().await.expect("close");
    PrunedBase { hot: hot.crash_image(0), cold: cold.crash_image(0), pinned }
}

/// What a prune of `hot` and `cold` under `retention` must leave in cold: the cold blocks of
/// the prune set from the stores' head, with the pinned DAG.
pub async fn expected_cold<K: Kv>(hot: &K, cold: &K, cfg: &Config, retention: i64, pinned: &Cid) -> HashSet<Vec<u8>> {
    let store = SplitStore::open(hot, cold, ManualClock::new(0), cfg.clone()).await.expect("open");
    let info = store.info().await.expect("info");
    let head = info.head.expect("head");
    let height = info.head_epoch.expect("height");
    drop(store);
    let from = (retention >= 0).then(|| height - (cfg.boundary_finalities + retention) * cfg.finality);
    let u = universe_of(hot, cold).await;
    let mut kept = u.prune_set(&head, from, cfg.mode == Mode::Messages).present;
    // Below every hot block the chain walk did not reach: a prune leaves no hot block linking
    // a block it deleted.
    let mut below_hot = vec![*pinned];
    for (k, bytes) in crate::chain::blocks(hot).await {
        if !kept.contains(&k) {
            below_hot.extend(crate::oracle::links(&bytes).unwrap_or_default());
        }
    }
    kept.extend(u.closure(&below_hot).present);
    keys(cold, Space::Blocks).await.intersection(&kept).cloned().collect()
}

/// Checks a store after a prune (or after recovery finished one): cold is exactly `expected`,
/// hot is `hot_before`, no list or record is left, cold is closed below every non-header
/// block, and the live set is whole.
pub async fn check_pruned<K: Kv>(
    at: &str,
    store: &SplitStore<K, ManualClock>,
    hot_before: &HashSet<Vec<u8>>,
    expected: &HashSet<Vec<u8>>,
) {
    let (hot, cold) = (store.hot(), store.cold());
    let cold_now = keys(cold, Space::Blocks).await;
    let stale: Vec<_> = cold_now.difference(expected).take(3).collect();
    let lost: Vec<_> = expected.difference(&cold_now).take(3).collect();
    assert!(
        stale.is_empty() && lost.is_empty(),
        "{at}: cold is not the kept set: stale {stale:02x?}, lost {lost:02x?}"
    );
    assert_eq!(&keys(hot, Space::Blocks).await, hot_before, "{at}: a prune changed the hot store");
    assert!(keys(hot, Space::Dead).await.is_empty(), "{at}: dead list left");
    for record in [&b"prune"[..], b"checkpoint"] {
        assert!(hot.get(Space::Meta, record).await.expect("meta").is_none(), "{at}: {record:?} record left");
    }
    let holes = hot_holes(cold, hot).await;
    assert!(holes.is_empty(), "{at}: cold blocks lost children: {:02x?}", &holes[..holes.len().min(3)]);
    let check = store.check().await.expect("check");
    assert_eq!(check.missing, 0, "{at}: live blocks missing: {:?}", check.missing_cids);
    assert!(!store.info().await.expect("info").pending_recovery, "{at}: purge left pending");
}

/// Prunes a copy of `base` under each retention and checks the result against the oracle.
/// Returns, per retention, the cold blocks before and after.
pub async fn prune_matches_oracle(mode: Mode, base: &PrunedBase, retentions: &[i64]) -> Vec<(i64, usize, usize)> {
    let cfg = prune_config(mode);
    let mut out = Vec::new();
    for &r in retentions {
        let (hot, cold) = (base.hot.crash_image(0), base.cold.crash_image(0));
        let expected = expected_cold(&hot, &cold, &cfg, r, &base.pinned).await;
        let hot_before = keys(&hot, Space::Blocks).await;
        let cold_before = keys(&cold, Space::Blocks).await.len();
        let store = SplitStore::open(hot, cold, ManualClock::new(0), cfg.clone()).await.expect("open");
        let report = store.prune(r, &NoProgress).await.expect("prune");
        let at = format!("{mode:?} retention {r}");
        assert_eq!(report.purged as usize, cold_before - expected.len(), "{at}: report counts the purge");
        assert_eq!(report.cold_scanned as usize, cold_before, "{at}: collect scanned cold");
        check_pruned(&at, &store, &hot_before, &expected).await;
        let info = store.info().await.expect("info");
        assert_eq!(info.prunes, 1);
        assert_eq!(info.last_prune.as_ref(), Some(&report));
        // A second prune under the same policy finds nothing more.
        let again = store.prune(r, &NoProgress).await.expect("prune again");
        assert_eq!(again.purged, 0, "{at}: a second prune purged more");
        // Compactions go on as before.
        store.compact(&NoProgress).await.expect("compaction after a prune");
        assert_eq!(store.check().await.expect("check").missing, 0);
        out.push((r, cold_before, expected.len()));
    }
    out
}

/// What a prune crash matrix covered.
#[derive(Clone, Copy, Debug, Default)]
pub struct PruneCrashStats {
    /// Backend calls in one prune.
    pub calls: u64,
    /// Crash points exercised.
    pub crash_points: u64,
    /// Of those, how many left a prune's purge for recovery to finish.
    pub recovered: u64,
}

async fn count_prune_calls<K: Kv>(hot: K, cold: K, cfg: &Config, retention: i64) -> u64 {
    let fault = Fault::new();
    let store = SplitStore::open(
        FaultKv::new(hot, fault.clone()),
        FaultKv::new(cold, fault.clone()),
        ManualClock::new(0),
        cfg.clone(),
    )
    .await
    .expect("open");
    fault.reset_ops();
    store.prune(retention, &NoProgress).await.expect("clean prune");
    fault.ops()
}

/// Crashes a prune at every `stride`-th backend call with each survival variant, reopens, and
/// checks: recovery finished a purge that had begun (cold exactly the kept set) or discarded
/// the prune (cold untouched); nothing kept is lost either way; a prune after it reaches the
/// kept set exactly.
pub async fn prune_crash_matrix(mode: Mode, base: &PrunedBase, retention: i64, stride: u64) -> PruneCrashStats {
    let cfg = prune_config(mode);
    let (expected, hot_before, cold_before) = before_prune(base, &cfg, retention).await;
    let calls = count_prune_calls(base.hot.crash_image(0), base.cold.crash_image(0), &cfg, retention).await;
    let mut stats = PruneCrashStats { calls, ..PruneCrashStats::default() };
    let mut k = 0;
    while k < calls {
        for survival in [Survival::DurableOnly, Survival::Half, Survival::Everything] {
            let (h, c) = (base.hot.crash_image(0), base.cold.crash_image(0));
            let fault = Fault::new();
            let store = SplitStore::open(
                FaultKv::new(h.clone(), fault.clone()),
                FaultKv::new(c.clone(), fault.clone()),
                ManualClock::new(0),
                cfg.clone(),
            )
            .await
            .expect("open");
            fault.arm(k);
            assert!(store.prune(retention, &NoProgress).await.is_err(), "{mode:?}: prune survived a crash at call {k}");
            drop(store);
            let (h2, c2) = (crate::crash::image(&h, survival), crate::crash::image(&c, survival));
            let had_record = h2.get(Space::Meta, b"prune").await.expect("meta").is_some();
            stats.recovered += had_record as u64;
            let at = format!("{mode:?} retention {retention}, crash at call {k}, {survival:?}");
            check_after_crash(&at, &cfg, h2, c2, retention, &hot_before, &cold_before, &expected, had_record).await;
            stats.crash_points += 1;
        }
        k += stride;
    }
    stats
}

/// What a crash matrix compares with: the cold blocks a prune of `base` keeps, and the hot
/// and cold blocks before it.
async fn before_prune(
    base: &PrunedBase,
    cfg: &Config,
    retention: i64,
) -> (HashSet<Vec<u8>>, HashSet<Vec<u8>>, HashSet<Vec<u8>>) {
    let (hot, cold) = (base.hot.crash_image(0), base.cold.crash_image(0));
    let expected = expected_cold(&hot, &cold, cfg, retention, &base.pinned).await;
    (expected, keys(&base.hot, Space::Blocks).await, keys(&base.cold, Space::Blocks).await)
}

/// The checks of one crash point, on the crashed images.
#[allow(clippy::too_many_arguments)]
async fn check_after_crash<K: Kv>(
    at: &str,
    cfg: &Config,
    hot: K,
    cold: K,
    retention: i64,
    hot_before: &HashSet<Vec<u8>>,
    cold_before: &HashSet<Vec<u8>>,
    expected: &HashSet<Vec<u8>>,
    had_record: bool,
) {
    let store = SplitStore::open(hot, cold, ManualClock::new(0), cfg.clone())
        .await
        .unwrap_or_else(|e| panic!("{at}: reopen failed: {e}"));
    let cold_now = keys(store.cold(), Space::Blocks).await;
    let lost: Vec<_> = expected.difference(&cold_now).take(3).collect();
    assert!(lost.is_empty(), "{at}: kept cold blocks lost: {lost:02x?}");
    assert!(cold_now.is_subset(cold_before), "{at}: cold gained blocks");
    if had_record {
        check_pruned(at, &store, hot_before, expected).await;
        assert_eq!(store.recovery().map(|r| r.finished_purge), Some(true), "{at}: recovery did not report the purge");
    } else {
        assert!(keys(store.hot(), Space::Dead).await.is_empty(), "{at}: dead list left");
        assert_eq!(&keys(store.hot(), Space::Blocks).await, hot_before, "{at}: hot changed");
    }
    store.prune(retention, &NoProgress).await.unwrap_or_else(|e| panic!("{at}: prune after recovery: {e}"));
    check_pruned(at, &store, hot_before, expected).await;
}

/// The prune crash matrix on a backend whose committed writes all survive (the on-disk store
/// after `kill -9`, IndexedDB after a reload): `make` returns a fresh, empty backend.
pub async fn prune_crash_matrix_on<K: Kv>(
    make: &dyn Fn() -> K,
    mode: Mode,
    base: &PrunedBase,
    retention: i64,
    stride: u64,
) -> PruneCrashStats {
    let cfg = prune_config(mode);
    let (expected, hot_before, cold_before) = before_prune(base, &cfg, retention).await;
    let fresh = || async {
        let (h, c) = (make(), make());
        copy_into(&base.hot, &h).await;
        copy_into(&base.cold, &c).await;
        (h, c)
    };
    let (h, c) = fresh().await;
    let calls = count_prune_calls(h, c, &cfg, retention).await;
    let mut stats = PruneCrashStats { calls, ..PruneCrashStats::default() };
    let mut k = 0;
    while k < calls {
        let (h, c) = fresh().await;
        let fault = Fault::new();
        {
            let store = SplitStore::open(
                FaultKv::new(&h, fault.clone()),
                FaultKv::new(&c, fault.clone()),
                ManualClock::new(0),
                cfg.clone(),
            )
            .await
            .expect("open");
            fault.arm(k);
            assert!(store.prune(retention, &NoProgress).await.is_err(), "{mode:?}: prune survived a crash at call {k}");
        }
        let had_record = h.get(Space::Meta, b"prune").await.expect("meta").is_some();
        stats.recovered += had_record as u64;
        let at = format!("{mode:?} retention {retention}, crash at call {k}");
        check_after_crash(&at, &cfg, h, c, retention, &hot_before, &cold_before, &expected, had_record).await;
        stats.crash_points += 1;
        k += stride;
    }
    stats
}

/// Cold blocks of `base` that a prune under `retention` drops, DAG-CBOR with links first:
/// the old state a node may still read, or link from a new block, while the prune runs.
pub async fn doomed(base: &PrunedBase, cfg: &Config, retention: i64) -> Vec<Cid> {
    let expected = expected_cold(&base.hot, &base.cold, cfg, retention, &base.pinned).await;
    let u: Universe = universe_of(&base.hot, &base.cold).await;
    let hot = keys(&base.hot, Space::Blocks).await;
    let mut out: Vec<(usize, Cid)> = keys(&base.cold, Space::Blocks)
        .await
        .into_iter()
        .filter(|k| !expected.contains(k) && !hot.contains(k))
        .filter_map(|k| {
            let c = splitstore_core::BlockKey::from_bytes(k.clone()).to_raw_cid()?;
            let bytes = u.blocks.get(&k)?;
            let links = crate::oracle::links(bytes).unwrap_or_default().len();
            // Stored blocks are DAG-CBOR or raw; the key keeps only the multihash.
            let c = if crate::oracle::links(bytes).is_some() { Cid::new_v1(0x71, *c.hash()) } else { c };
            Some((links, c))
        })
        .collect();
    out.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    out.into_iter().map(|(_, c)| c).collect()
}
