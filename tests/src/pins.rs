//! Pins ([`SplitStore::protect`]) on any backend: a pinned DAG that no chain names stays in
//! the hot store through compactions in every mode and across a reopen, while an unpinned DAG
//! of the same shape goes where the mode sends dead blocks; once unpinned, it goes too.

use std::collections::HashSet;

use splitstore_core::{
    key::dag_cbor_blake2b_cid,
    kv::{Kv, Space},
    mem::ManualClock,
    synth::ChainGen,
    Cid, Mode, NoProgress, SplitStore,
};

use crate::{
    chain::{apply_epoch, keys, node, small_chain, small_config},
    oracle::key_of,
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
