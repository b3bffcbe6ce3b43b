//! Pins ([`SplitStore::protect`]) on any backend: a pinned DAG that no chain names stays in
//! the hot store through compactions in every mode and across a reopen, while an unpinned DAG
//! of the same shape goes where the mode sends dead blocks; once unpinned, it goes too.

use std::collections::HashSet;

use splitstore_core::{
    key::dag_cbor_blake2b_cid,
    kv::{Kv, Space},
    mem::{ManualClock, MemKv},
    synth::ChainGen,
    Cid, Mode, NoProgress, Phase, Progress, ProgressSink, SplitStore,
};

use crate::{
    chain::{apply_epoch, keys, node, small_chain, small_config},
    crash::copy_into,
    fault::{Fault, FaultKv},
    oracle::key_of,
    wrap::YieldKv,
};

/// A DAG no chain names, parents first: `root → [a, b]`, `a → [g1, g2]`, `b → [g2]`,
/// `g2 → [leaf]`, where `leaf` is a raw block and the rest DAG-CBOR. `nonce` makes it new.
pub fn dag(nonce: u64) -> Vec<(Cid, Vec<u8>)> {
    let leaf_bytes = format!("leaf {nonce}").into_bytes();
    let leaf = Cid::new_v1(0x55, *dag_cbor_blake2b_cid(&leaf_bytes).hash());
    let n = nonce * 16;
    let g2 = node(&[leaf], n + 1);
    let g1 = node(&[], n + 2);
    let a = node(&[g1.0, g2.0], n + 3);
    let b = node(&[g2.0], n + 4);
    let root = node(&[a.0, b.0], n + 5);
    vec![root, a, b, g1, g2, (leaf, leaf_bytes)]
}

/// Which blocks of `blocks` the keyspace `keys` holds.
pub fn held(keys: &HashSet<Vec<u8>>, blocks: &[(Cid, Vec<u8>)]) -> Vec<bool> {
    blocks.iter().map(|(c, _)| keys.contains(&key_of(c))).collect()
}

/// Applies epochs of `chain` until `n` compactions they trigger have run.
async fn compactions<K: Kv>(store: &SplitStore<K, ManualClock>, chain: &mut ChainGen, n: usize) {
    let mut ran = 0;
    for _ in 0..200 {
        let e = chain.next_epoch();
        if let Some(p) = apply_epoch(store, &e).await {
            store.run_compaction(p, &NoProgress).await.expect("compaction");
            ran += 1;
            if ran == n {
                return;
            }
        }
    }
    panic!("only {ran} compactions in 200 epochs");
}

/// Asserts that the pinned DAG is whole in hot and not in cold, and that its unpinned twin
/// went where `mode` sends dead blocks (cold in universal mode, nowhere otherwise).
pub async fn assert_kept<K: Kv>(hot: &K, cold: &K, mode: Mode, pinned: &[(Cid, Vec<u8>)], twin: &[(Cid, Vec<u8>)]) {
    let (h, c) = (keys(hot, Space::Blocks).await, keys(cold, Space::Blocks).await);
    let n = pinned.len();
    assert_eq!(held(&h, pinned), vec![true; n], "{mode:?}: the pinned DAG left the hot store");
    assert_eq!(held(&c, pinned), vec![false; n], "{mode:?}: the pinned DAG was copied to cold");
    assert_eq!(held(&h, twin), vec![false; n], "{mode:?}: the unpinned twin stayed hot");
    assert_eq!(held(&c, twin), vec![mode == Mode::Universal; n], "{mode:?}: the unpinned twin in cold");
}

/// Pins on `make()` backends, in every mode: kept through compactions and a reopen, next to
/// an unpinned twin that goes; then unpinned, and gone after the next compaction.
pub async fn pins_keep_their_dags<K: Kv + Clone>(make: &dyn Fn() -> K) {
    for (i, mode) in [Mode::Discard, Mode::Universal, Mode::Messages].into_iter().enumerate() {
        let (hot, cold) = (make(), make());
        let open = || SplitStore::open(hot.clone(), cold.clone(), ManualClock::new(0), small_config(mode));
        let store = open().await.expect("open");
        let mut chain = small_chain(17 + i as u64);
        apply_epoch(&store, &chain.next_epoch()).await;
        let (pinned, twin) = (dag(1), dag(2));
        store.put_many(pinned.clone()).await.expect("put");
        store.put_many(twin.clone()).await.expect("put");
        let root = pinned[0].0;
        store.protect(&[root, root]).await.expect("protect");
        assert_eq!(store.protected(), vec![root]);
        compactions(&store, &mut chain, 2).await;
        assert_kept(&hot, &cold, mode, &pinned, &twin).await;
        let block = store.get(&pinned[3].0).await.expect("get");
        assert_eq!(block.as_ref(), Some(&pinned[3].1), "{mode:?}: a pinned block reads back");
        store.close().await.expect("close");
        drop(store);

        let store = open().await.expect("reopen");
        assert_eq!(store.protected(), vec![root], "{mode:?}: the pin survives a reopen");
        compactions(&store, &mut chain, 1).await;
        assert_kept(&hot, &cold, mode, &pinned, &twin).await;

        store.unprotect(&[root]).await.expect("unprotect");
        assert!(store.protected().is_empty());
        compactions(&store, &mut chain, 1).await;
        let h = keys(&hot, Space::Blocks).await;
        assert_eq!(held(&h, &pinned), vec![false; pinned.len()], "{mode:?}: unpinned, the DAG stayed hot");
        store.close().await.expect("close");
        drop(store);
        let store = open().await.expect("reopen");
        assert!(store.protected().is_empty(), "{mode:?}: the unpin survives a reopen");
    }
}

/// True when `kv` holds every block of `blocks`.
async fn held_all<K: Kv>(kv: &K, blocks: &[(Cid, Vec<u8>)]) -> bool {
    held(&keys(kv, Space::Blocks).await, blocks).into_iter().all(|h| h)
}

/// Opens once a compaction reports a chosen phase (or once it is opened by hand): a future
/// waits on it without polling, so a backend whose events arrive between tasks (IndexedDB)
/// is never starved by a waiter that wakes itself.
struct PhaseGate {
    when: Phase,
    state: std::sync::Mutex<(bool, Option<core::task::Waker>)>,
}

impl PhaseGate {
    fn new(when: Phase) -> Self {
        PhaseGate { when, state: std::sync::Mutex::new((false, None)) }
    }

    fn open(&self) {
        let mut s = self.state.lock().expect("gate");
        s.0 = true;
        if let Some(w) = s.1.take() {
            w.wake();
        }
    }

    async fn wait(&self) {
        core::future::poll_fn(|cx| {
            let mut s = self.state.lock().expect("gate");
            if s.0 {
                core::task::Poll::Ready(())
            } else {
                s.1 = Some(cx.waker().clone());
                core::task::Poll::Pending
            }
        })
        .await;
    }
}

impl ProgressSink for PhaseGate {
    fn report(&self, p: &Progress) {
        if p.phase == self.when {
            self.open();
        }
    }
}

/// A compaction with a pin of `root` made once it reported `when` (or once it ended), on
/// `hot` / `cold` behind a fuse armed at call `crash_at` (none: counted only). Every backend
/// call yields, so the pin lands among the compaction's calls. Returns the calls made and
/// whether the pin returned.
async fn pin_beside_compaction<K: Kv>(
    hot: &K,
    cold: &K,
    mode: Mode,
    root: Cid,
    when: Phase,
    crash_at: Option<u64>,
) -> (u64, bool) {
    let fault = Fault::new();
    let kv = |k| YieldKv(FaultKv::new(k, fault.clone()));
    let store = SplitStore::open(kv(hot), kv(cold), ManualClock::new(0), small_config(mode)).await.expect("open");
    fault.reset_ops();
    if let Some(k) = crash_at {
        fault.arm(k);
    }
    let gate = PhaseGate::new(when);
    let run = async {
        let r = store.compact(&gate).await;
        gate.open();
        r
    };
    let pin = async {
        gate.wait().await;
        store.protect(&[root]).await
    };
    let (ran, pinned) = futures::join!(run, pin);
    if crash_at.is_none() {
        ran.expect("a compaction without a crash");
        pinned.as_ref().expect("a pin without a crash");
    }
    (fault.ops(), pinned.is_ok())
}

/// A pin made while a compaction runs, then the process dies at every `stride`-th backend
/// call of the two, on backends whose committed writes survive a crash (fjall after
/// `kill -9`, IndexedDB after a reload); `make` returns a fresh, empty backend. Reopened: a
/// pin whose call returned is in force; whenever the pin holds, its DAG is whole in the hot
/// store, after recovery and after the next compaction. Returns the crash points run.
pub async fn pins_survive_a_crash_beside_a_compaction<K: Kv>(make: &dyn Fn() -> K, stride: u64) -> u64 {
    let mut points = 0;
    for (i, mode) in [Mode::Discard, Mode::Universal, Mode::Messages].into_iter().enumerate() {
        let (base_hot, base_cold) = (MemKv::new(), MemKv::new());
        let store = SplitStore::open(base_hot.clone(), base_cold.clone(), ManualClock::new(0), small_config(mode))
            .await
            .expect("open");
        let mut chain = small_chain(29 + i as u64);
        compactions(&store, &mut chain, 1).await;
        let (pinned, twin) = (dag(11), dag(12));
        store.put_many(pinned.clone()).await.expect("put");
        store.put_many(twin).await.expect("put");
        store.close().await.expect("close");
        drop(store);
        let root = pinned[0].0;
        let fresh = || async {
            let (h, c) = (make(), make());
            copy_into(&base_hot, &h).await;
            copy_into(&base_cold, &c).await;
            (h, c)
        };
        // The pin lands while the compaction marks, while it moves, and in its critical
        // section (its purge).
        for when in [Phase::Mark, Phase::Move, Phase::Purge] {
            let (h, c) = fresh().await;
            let (calls, _) = pin_beside_compaction(&h, &c, mode, root, when, None).await;
            let mut k = 0;
            while k < calls {
                let at = format!("{mode:?}, pin in {when:?}, crash at call {k} of {calls}");
                let (h, c) = fresh().await;
                let (_, returned) = pin_beside_compaction(&h, &c, mode, root, when, Some(k)).await;
                let reopened = SplitStore::open(&h, &c, ManualClock::new(0), small_config(mode))
                    .await
                    .unwrap_or_else(|e| panic!("{at}: reopen: {e}"));
                let holds = reopened.protected().contains(&root);
                assert!(holds || !returned, "{at}: a pin that returned did not survive");
                let whole = || held_all(&h, &pinned);
                assert!(!holds || whole().await, "{at}: a pinned DAG is not whole after recovery");
                reopened.compact(&NoProgress).await.unwrap_or_else(|e| panic!("{at}: compaction after reopen: {e}"));
                assert!(!holds || whole().await, "{at}: a pinned DAG is not whole after the next compaction");
                points += 1;
                k += stride;
            }
        }
    }
    points
}
