//! Reify: a cold DAG read through the hot view is copied into hot, stopping at blocks already
//! hot, within the configured limits, and stays hot through a compaction that runs while it is
//! being read and copied.
//!
//! The expected copy is computed independently: the oracle's blocks below the root, breadth
//! first, not going below blocks the hot store holds.

use std::collections::{HashMap, HashSet, VecDeque};

use splitstore_core::{
    kv::{Kv, Space},
    mem::{ManualClock, MemKv},
    synth::Epoch,
    Cid, Config, Mode, SplitStore,
};

use crate::{
    chain::{apply_epoch, keys, small_chain, universe_of},
    crash::copy_into,
    oracle::{header, key_of, links, Universe},
    prune::{base, prune_config},
};

/// A universal-mode store whose cold store holds many epochs of old state, and the epoch whose
/// head change starts its next compaction (not applied yet).
pub struct ReifyBase {
    /// The hot store.
    pub hot: MemKv,
    /// The cold store.
    pub cold: MemKv,
    /// Applying it triggers a compaction.
    pub next: Epoch,
    /// Old state roots whose DAGs are partly or wholly cold, largest cold part first, each
    /// with the keys a reify must copy (its cold part).
    pub roots: Vec<(Cid, HashMap<Vec<u8>, Cid>)>,
}

/// The settings of the reify suites.
pub fn reify_config() -> Config {
    prune_config(Mode::Universal)
}

/// The blocks below `root` in `u` (itself included) reached without going below a block whose
/// key is in `hot`: what a reify of `root` copies. (Links to absent blocks of other codecs,
/// such as actor code, are not blocks of the chain.)
pub fn cold_part(u: &Universe, hot: &HashSet<Vec<u8>>, root: &Cid) -> HashMap<Vec<u8>, Cid> {
    let mut out = HashMap::new();
    let mut seen = HashSet::new();
    let mut queue = VecDeque::from([*root]);
    while let Some(c) = queue.pop_front() {
        let k = key_of(&c);
        if !seen.insert(k.clone()) || hot.contains(&k) || c.hash().code() == 0 {
            continue;
        }
        let Some(bytes) = u.blocks.get(&k) else { continue };
        out.insert(k, c);
        if c.codec() == 0x71 {
            queue.extend(links(bytes).unwrap_or_default());
        }
    }
    out
}

/// Builds a [`ReifyBase`] from `epochs` epochs of the small chain.
pub async fn reify_base(seed: u64, epochs: usize) -> ReifyBase {
    let b = base(Mode::Universal, seed, epochs).await;
    let store =
        SplitStore::open(b.hot.clone(), b.cold.clone(), ManualClock::new(0), reify_config()).await.expect("open");
    let mut chain = small_chain(seed);
    for _ in 0..epochs {
        chain.next_epoch();
    }
    // The stores as they are just before the first epoch that triggers a compaction.
    let (hot, cold, next) = loop {
        let e = chain.next_epoch();
        let (h, c) = (store.hot().crash_image(usize::MAX), store.cold().crash_image(usize::MAX));
        if apply_epoch(&store, &e).await.is_some() {
            break (h, c, e);
        }
    };
    drop(store);
    let u = universe_of(&hot, &cold).await;
    let hot_keys = keys(&hot, Space::Blocks).await;
    let mut headers: Vec<_> = u.blocks.values().filter_map(|b| header(b)).collect();
    headers.sort_by_key(|h| h.height);
    let mut roots = Vec::new();
    let mut seen = HashSet::new();
    for h in headers {
        if !seen.insert(h.state_root) || hot_keys.contains(&key_of(&h.state_root)) {
            continue;
        }
        let part = cold_part(&u, &hot_keys, &h.state_root);
        if part.len() >= 3 {
            roots.push((h.state_root, part));
        }
    }
    assert!(roots.len() >= 4, "too few old state roots in cold: {}", roots.len());
    roots.sort_by_key(|(_, part)| std::cmp::Reverse(part.len()));
    ReifyBase { hot, cold, next, roots }
}

/// What [`reify_copies_cold_dags_read_in_use`] saw.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReifySummary {
    /// Blocks of the first root's DAG copied.
    pub copied: u64,
    /// Its DAG's size in cold before.
    pub cold_part: usize,
}

/// On backends from `make` holding a copy of `b`: plain reads queue nothing; a read through
/// the hot view queues a cold hit once; the drain copies exactly the cold part of the DAG into
/// hot and leaves cold as it was; reads then hit hot; the per-DAG limit, the queue bound,
/// `has` through the view, and a limit of 0 behave as configured.
pub async fn reify_copies_cold_dags_read_in_use<K: Kv>(make: &dyn Fn() -> K, b: &ReifyBase) -> ReifySummary {
    let copy = || async {
        let (hot, cold) = (make(), make());
        copy_into(&b.hot, &hot).await;
        copy_into(&b.cold, &cold).await;
        (hot, cold)
    };
    let cold_before = keys(&b.cold, Space::Blocks).await;
    let (root, part) = &b.roots[0];
    let (hot, cold) = copy().await;
    let store = SplitStore::open(&hot, &cold, ManualClock::new(0), reify_config()).await.expect("open");
    assert!(store.get(root).await.expect("get").is_some());
    assert_eq!(store.reify_waiting(), 0, "a plain read does not reify");
    let view = store.hot_view();
    for _ in 0..3 {
        assert!(view.get(root).await.expect("get").is_some());
    }
    assert_eq!(store.reify_waiting(), 1, "a root is queued once");
    let r = store.reify_pending().await.expect("reify");
    assert_eq!((r.roots, r.aborted, r.missing), (1, 0, 0));
    assert_eq!(r.copied as usize, part.len(), "the cold part, each block once");
    let hot_now = keys(&hot, Space::Blocks).await;
    let lacking: Vec<_> = part.keys().filter(|k| !hot_now.contains(*k)).take(3).collect();
    assert!(lacking.is_empty(), "not copied: {lacking:02x?}");
    assert_eq!(keys(&cold, Space::Blocks).await, cold_before, "reify only copies");
    let m = store.info().await.expect("info").metrics;
    assert_eq!((m.reify_queued, m.reified), (1, r.copied));
    let hits = m.hot_hits;
    assert!(view.get(root).await.expect("get").is_some());
    assert_eq!(store.info().await.expect("info").metrics.hot_hits, hits + 1, "the DAG is read from hot now");
    assert_eq!(store.reify_waiting(), 0);
    assert_eq!(store.reify_pending().await.expect("reify").roots, 0);
    store.close().await.expect("close");

    // A DAG whose cold part exceeds the limit is not copied; one at the limit is.
    let (root2, part2) = &b.roots[1];
    for (limit, copied) in [(part2.len() - 1, 0), (part2.len(), part2.len())] {
        let (hot, cold) = copy().await;
        let cfg = Config { reify_limit: limit, ..reify_config() };
        let store = SplitStore::open(&hot, &cold, ManualClock::new(0), cfg).await.expect("open");
        assert!(store.hot_view().has(root2).await.expect("has"), "has through the view");
        let r = store.reify_pending().await.expect("reify");
        assert_eq!((r.copied as usize, r.aborted), (copied, u64::from(copied == 0)), "limit {limit}");
        assert_eq!(keys(&hot, Space::Blocks).await.len(), keys(&b.hot, Space::Blocks).await.len() + copied);
        assert_eq!(store.info().await.expect("info").metrics.reify_aborted, u64::from(copied == 0));
    }

    // The queue holds at most `reify_queue` roots; a limit of 0 turns reify off.
    let (hot, cold) = copy().await;
    let cfg = Config { reify_queue: 2, ..reify_config() };
    let store = SplitStore::open(&hot, &cold, ManualClock::new(0), cfg).await.expect("open");
    let three: Vec<Cid> = b.roots[..3].iter().map(|(c, _)| *c).collect();
    let got = store.hot_view().get_many(&three).await.expect("get_many");
    assert!(got.iter().all(Option::is_some));
    assert_eq!(store.reify_waiting(), 2);
    assert_eq!(store.info().await.expect("info").metrics.reify_dropped, 1);
    drop(store);
    let cfg = Config { reify_limit: 0, ..reify_config() };
    let store = SplitStore::open(&hot, &cold, ManualClock::new(0), cfg).await.expect("open");
    assert!(store.hot_view().get(root).await.expect("get").is_some());
    assert_eq!(store.reify_waiting(), 0, "reify_limit 0 turns reify off");
    ReifySummary { copied: part.len() as u64, cold_part: part.len() }
}

/// What [`reify_crash_matrix`] covered.
#[derive(Clone, Copy, Debug, Default)]
pub struct ReifyCrashStats {
    /// Backend calls in one drain.
    pub calls: u64,
    /// Crash points exercised.
    pub crash_points: u64,
    /// Of those, how many left part of the copy in hot.
    pub partial: u64,
}

/// Settings of the reify crash matrices: small batches, so a crash can fall between two
/// batches of the copy.
fn crash_config() -> Config {
    Config { batch_size: 4, ..reify_config() }
}

/// What the crash matrices compare against: the stores' keys before the drain, and the blocks.
struct Before {
    hot: HashSet<Vec<u8>>,
    cold: HashSet<Vec<u8>>,
    u: Universe,
}

impl Before {
    async fn of(b: &ReifyBase) -> Self {
        Before {
            hot: keys(&b.hot, Space::Blocks).await,
            cold: keys(&b.cold, Space::Blocks).await,
            u: universe_of(&b.hot, &b.cold).await,
        }
    }
}

/// Opens `hot` and `cold` behind one fault fuse, reads `root` through the hot view and returns
/// the store, ready for a drain.
async fn opened_with_a_read<K: Kv>(
    hot: K,
    cold: K,
    fault: &crate::fault::Fault,
    root: &Cid,
) -> SplitStore<crate::fault::FaultKv<K>, ManualClock> {
    use crate::fault::FaultKv;
    let store = SplitStore::open(
        FaultKv::new(hot, fault.clone()),
        FaultKv::new(cold, fault.clone()),
        ManualClock::new(0),
        crash_config(),
    )
    .await
    .expect("open");
    assert!(store.hot_view().get(root).await.expect("read").is_some());
    store
}

/// After a drain of `b`'s first root crashed: cold is as before (reify never writes it), hot
/// holds what it held plus part of the root's cold part and nothing else, every copy has its
/// own bytes and came after its cold children, the reopened store finds nothing live missing,
/// and a new read in use and drain complete the copy. True when the copy was partial.
async fn check_after_crash<K: Kv>(at: &str, hot: &K, cold: &K, b: &ReifyBase, before: &Before) -> bool {
    let (root, part) = &b.roots[0];
    assert_eq!(keys(cold, Space::Blocks).await, before.cold, "{at}: cold changed");
    let hot_now = keys(hot, Space::Blocks).await;
    assert!(hot_now.is_superset(&before.hot), "{at}: hot lost blocks");
    let gained: Vec<&Vec<u8>> = hot_now.difference(&before.hot).collect();
    for key in &gained {
        assert!(part.contains_key(*key), "{at}: hot gained what the DAG does not hold");
        let bytes = hot.get(Space::Blocks, key).await.expect("read");
        assert_eq!(bytes.as_ref(), before.u.blocks.get(*key), "{at}: a copy's bytes differ");
        let links = before.u.blocks.get(*key).and_then(|b| links(b)).unwrap_or_default();
        assert!(
            links.iter().filter(|l| part.contains_key(&key_of(l))).all(|l| hot_now.contains(&key_of(l))),
            "{at}: a copied block is hot before its cold children"
        );
    }
    let store = SplitStore::open(hot, cold, ManualClock::new(0), crash_config())
        .await
        .unwrap_or_else(|e| panic!("{at}: reopen: {e}"));
    assert_eq!(store.check().await.expect("check").missing, 0, "{at}: live blocks missing");
    assert!(store.hot_view().get(root).await.expect("read").is_some(), "{at}: the root reads");
    store.reify_pending().await.unwrap_or_else(|e| panic!("{at}: reify after the crash: {e}"));
    let hot_after = keys(hot, Space::Blocks).await;
    assert!(part.keys().all(|k| hot_after.contains(k)), "{at}: a new drain did not complete the copy");
    store.close().await.expect("close");
    !gained.is_empty() && gained.len() < part.len()
}

/// Backend calls of one drain of `b`'s first root.
async fn count_drain_calls<K: Kv>(hot: K, cold: K, b: &ReifyBase) -> u64 {
    let fault = crate::fault::Fault::new();
    let store = opened_with_a_read(hot, cold, &fault, &b.roots[0].0).await;
    fault.reset_ops();
    store.reify_pending().await.expect("reify");
    fault.ops()
}

/// Crashes a reify drain of `b`'s first root at every `stride`-th backend call, with each
/// survival variant, and checks each crashed store ([`check_after_crash`]).
pub async fn reify_crash_matrix(b: &ReifyBase, stride: u64) -> ReifyCrashStats {
    use crate::crash::{image, Survival};
    let before = Before::of(b).await;
    let calls = count_drain_calls(b.hot.crash_image(usize::MAX), b.cold.crash_image(usize::MAX), b).await;
    let mut stats = ReifyCrashStats { calls, ..ReifyCrashStats::default() };
    for k in (0..calls).step_by(stride as usize) {
        for survival in [Survival::DurableOnly, Survival::Half, Survival::Everything] {
            let (h, c) = (b.hot.crash_image(usize::MAX), b.cold.crash_image(usize::MAX));
            let fault = crate::fault::Fault::new();
            let store = opened_with_a_read(h.clone(), c.clone(), &fault, &b.roots[0].0).await;
            fault.arm(k);
            assert!(store.reify_pending().await.is_err(), "the drain survived call {k}");
            drop(store);
            let (h2, c2) = (image(&h, survival), image(&c, survival));
            let at = format!("crash at call {k} of {calls}, {survival:?}");
            stats.partial += u64::from(check_after_crash(&at, &h2, &c2, b, &before).await);
            stats.crash_points += 1;
        }
    }
    stats
}

/// The reify crash matrix on a backend whose committed writes all survive (the on-disk store
/// after `kill -9`, IndexedDB after a reload): `make` returns a fresh, empty backend.
pub async fn reify_crash_matrix_on<K: Kv>(make: &dyn Fn() -> K, b: &ReifyBase, stride: u64) -> ReifyCrashStats {
    let before = Before::of(b).await;
    let fresh = || async {
        let (h, c) = (make(), make());
        copy_into(&b.hot, &h).await;
        copy_into(&b.cold, &c).await;
        (h, c)
    };
    let (h, c) = fresh().await;
    let calls = count_drain_calls(&h, &c, b).await;
    let mut stats = ReifyCrashStats { calls, ..ReifyCrashStats::default() };
    for k in (0..calls).step_by(stride as usize) {
        let (h, c) = fresh().await;
        let fault = crate::fault::Fault::new();
        {
            let store = opened_with_a_read(&h, &c, &fault, &b.roots[0].0).await;
            fault.arm(k);
            assert!(store.reify_pending().await.is_err(), "the drain survived call {k}");
        }
        let at = format!("crash at call {k} of {calls}");
        stats.partial += u64::from(check_after_crash(&at, &h, &c, b, &before).await);
        stats.crash_points += 1;
    }
    stats
}
