//! Foreground traffic during a background compaction on the on-disk store: other threads keep
//! reading live blocks and writing new epochs and unrelated blocks; none of it is lost.
//!
//! The writer pauses 5 ms per epoch, as a chain grows at a pace; `SPLITSTORE_FG_UNPACED=1`
//! removes the pause (a writer that never rests).
#![allow(clippy::result_large_err)]

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    thread,
};

use cid::{multihash::Multihash, Cid};
use futures::executor::block_on;
use splitstore_core::{synth::ChainGen, Progress};
use splitstore_native::{
    demo::synth_config,
    ops::OpenStore,
    repo::{Repo, RepoConfig},
};

fn raw_block(i: u64) -> (Cid, Vec<u8>) {
    let bytes: Vec<u8> = (0..300).map(|j| (i.wrapping_mul(131) + j) as u8).chain(i.to_le_bytes()).collect();
    let digest = blake2b_simd::Params::new().hash_length(32).hash(&bytes);
    let mh = Multihash::<64>::wrap(0xb220, digest.as_bytes()).expect("digest fits");
    (Cid::new_v1(0x55, mh), bytes)
}

#[test]
fn reads_and_writes_during_compaction_are_never_lost() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = RepoConfig {
        finality: 10,
        sync_gap_secs: 0,
        hot_cache_mb: 32,
        cold_cache_mb: 8,
        mode: "universal".into(),
        ..RepoConfig::default()
    };
    let repo = Repo::init(&tmp.path().join("repo"), config).expect("init");
    let open = OpenStore::from_repo(repo).expect("open");
    let store = Arc::clone(&open.store);

    let mut gen = ChainGen::new(synth_config(7, 3000));
    let mut headers = Vec::new();
    for _ in 0..150 {
        let e = gen.next_epoch();
        block_on(store.put_many(e.blocks)).expect("put");
        headers.extend(e.tipset.iter().copied());
        drop(block_on(store.head_change(&[], &[e.tipset])).expect("head"));
    }

    let pending = store.begin_compaction().expect("begin");
    let compactor = {
        let store = Arc::clone(&store);
        let last = std::sync::Mutex::new(None);
        let sink = move |p: &Progress| {
            let mut l = last.lock().expect("lock");
            if *l != Some(p.phase) {
                eprintln!("phase {} at {:?}", p.phase.as_str(), std::time::Instant::now());
                *l = Some(p.phase);
            }
        };
        thread::spawn(move || block_on(store.run_compaction(pending, &sink)))
    };
    let done = Arc::new(AtomicBool::new(false));
    let reads = Arc::new(AtomicU64::new(0));

    // Reader: headers are live forever; every read must find its block.
    let reader = {
        let (store, done, reads) = (Arc::clone(&store), Arc::clone(&done), Arc::clone(&reads));
        let headers = headers.clone();
        thread::spawn(move || {
            let mut i = 0usize;
            while !done.load(Ordering::Acquire) {
                let c = headers[(i * 7919) % headers.len()];
                assert!(
                    block_on(store.get(&c)).expect("get").is_some(),
                    "live header {c} unreadable during compaction"
                );
                reads.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        })
    };

    // Writer (this thread): new epochs and unrelated raw blocks while the compaction runs.
    let mut written = Vec::new();
    let mut n = 0u64;
    while !compactor.is_finished() || n < 200 {
        let e = gen.next_epoch();
        written.extend(e.blocks.iter().map(|(c, _)| *c));
        block_on(store.put_many(e.blocks)).expect("put during compaction");
        drop(block_on(store.head_change(&[], &[e.tipset])).expect("head during compaction"));
        for _ in 0..20 {
            let (c, b) = raw_block(n);
            block_on(store.put(&c, b)).expect("put raw");
            written.push(c);
            n += 1;
        }
        // A node's chain grows at a pace; the compaction must keep up with it, not with a
        // writer that never rests.
        if std::env::var_os("SPLITSTORE_FG_UNPACED").is_none() {
            thread::sleep(std::time::Duration::from_millis(5));
        }
    }
    let report = compactor.join().expect("compaction thread").expect("compaction");
    done.store(true, Ordering::Release);
    reader.join().expect("reader thread");
    assert!(report.purged > 0, "the compaction purged something: {report:?}");
    assert!(reads.load(Ordering::Relaxed) > 0);

    // Everything written while the compaction ran is still readable.
    let mut missing = 0;
    for c in &written {
        if !block_on(store.has(c)).expect("has") {
            missing += 1;
        }
    }
    assert_eq!(missing, 0, "{missing} of {} blocks written during the compaction were lost", written.len());
    let check = block_on(store.check()).expect("check");
    assert_eq!(check.missing, 0, "{check:?}");
    open.close().expect("close");
}
