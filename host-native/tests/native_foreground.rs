//! Foreground traffic during a background compaction on the on-disk store: other threads keep
//! reading live blocks and writing new epochs and unrelated blocks; none of it is lost, and the
//! compaction finishes whatever the writer's pace.
//!
//! One writer pauses 5 ms per epoch, as a chain grows at a pace; the other never rests. The
//! compaction's work grows with what the foreground writes during it (every block written
//! during a compaction has its DAG protected), but it must not chase the writer forever.
#![allow(clippy::result_large_err)]

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

use cid::{multihash::Multihash, Cid};
use futures::executor::block_on;
use splitstore_core::{synth::ChainGen, CompactionReport, Progress};
use splitstore_native::{
    demo::synth_config,
    ops::OpenStore,
    repo::{Repo, RepoConfig},
};

/// How long a compaction under foreground traffic may take before the test calls it stalled:
/// several times what it needs under a writer that never rests (measured on a loaded two-core
/// machine: 6–15 s in release, 14–27 s in the test profile).
/// The unpaced writer's ceiling, blocks per second: about 60 times what a mainnet node writes
/// (a tipset's few thousand blocks every 30 s). Without it, on one busy core, the writer's
/// thread takes the CPU from fjall's own flush and compaction threads, and the store's
/// reclaim cannot finish (5.3 million blocks written in 120 s, stuck in reclaim).
const WRITER_CEILING: f64 = 20_000.0;

const STALL_BOUND: Duration = Duration::from_secs(if cfg!(debug_assertions) { 120 } else { 60 });

fn raw_block(i: u64) -> (Cid, Vec<u8>) {
    let bytes: Vec<u8> = (0..300).map(|j| (i.wrapping_mul(131) + j) as u8).chain(i.to_le_bytes()).collect();
    let digest = blake2b_simd::Params::new().hash_length(32).hash(&bytes);
    let mh = Multihash::<64>::wrap(0xb220, digest.as_bytes()).expect("digest fits");
    (Cid::new_v1(0x55, mh), bytes)
}

/// What one compaction under foreground traffic did.
struct Outcome {
    report: CompactionReport,
    /// Blocks the chain held before the compaction.
    before: usize,
    /// Blocks the writer wrote while the compaction ran.
    written: usize,
    /// Reads of live headers while it ran.
    reads: u64,
    /// Wall-clock time of the compaction.
    elapsed: Duration,
}

/// Builds a 150-epoch chain, compacts it while a reader reads live headers and a writer
/// writes new epochs and unrelated raw blocks (pausing `pace` per epoch, if any) until the
/// compaction ends, then checks that every block written and every live object is still there.
/// Fails if the compaction takes longer than [`STALL_BOUND`].
fn compact_under_traffic(pace: Option<Duration>) -> Outcome {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = RepoConfig {
        finality: 10,
        sync_gap_secs: 0,
        hot_cache_mb: 32,
        cold_cache_mb: 8,
        // Discard: a block wrongly purged from hot is gone, not kept in cold.
        mode: "discard".into(),
        ..RepoConfig::default()
    };
    let repo = Repo::init(&tmp.path().join("repo"), config).expect("init");
    let open = OpenStore::from_repo(repo).expect("open");
    let store = Arc::clone(&open.store);

    let mut gen = ChainGen::new(synth_config(7, 3000));
    let mut headers = Vec::new();
    let mut before = 0;
    for _ in 0..150 {
        let e = gen.next_epoch();
        before += e.blocks.len();
        block_on(store.put_many(e.blocks)).expect("put");
        headers.extend(e.tipset.iter().copied());
        drop(block_on(store.head_change(&[], &[e.tipset])).expect("head"));
    }

    let last_progress: Arc<Mutex<Option<Progress>>> = Arc::new(Mutex::new(None));
    let started = Instant::now();
    let pending = store.begin_compaction().expect("begin");
    let compactor = {
        let store = Arc::clone(&store);
        let last = Arc::clone(&last_progress);
        let sink = move |p: &Progress| *last.lock().expect("progress lock") = Some(*p);
        thread::spawn(move || {
            let report = block_on(store.run_compaction(pending, &sink));
            (report, started.elapsed())
        })
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
        assert!(
            started.elapsed() < STALL_BOUND,
            "the compaction did not finish within {STALL_BOUND:?} under foreground writes ({} blocks written); \
             last progress: {:?}",
            written.len(),
            *last_progress.lock().expect("progress lock"),
        );
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
        match pace {
            Some(pause) => thread::sleep(pause),
            // At most WRITER_CEILING blocks a second: a writer that never waits for anything
            // but the store, yet leaves the machine's cores to the store's own threads.
            None => {
                while written.len() as f64 > started.elapsed().as_secs_f64() * WRITER_CEILING {
                    thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
    let (report, elapsed) = compactor.join().expect("compaction thread");
    let report = report.expect("compaction");
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
    Outcome { report, before, written: written.len(), reads: reads.load(Ordering::Relaxed), elapsed }
}

fn describe(o: &Outcome) -> String {
    let phases: Vec<String> = o.report.phases.iter().map(|(p, ms)| format!("{} {ms} ms", p.as_str())).collect();
    format!(
        "compaction {:?}: {} blocks before, {} written during it, {} reads, {} refs protected, {} hot keys scanned; {}",
        o.elapsed,
        o.before,
        o.written,
        o.reads,
        o.report.protected_refs,
        o.report.hot_scanned,
        phases.join(", ")
    )
}

#[test]
fn reads_and_writes_during_compaction_are_never_lost() {
    // A node's chain grows at a pace.
    let o = compact_under_traffic(Some(Duration::from_millis(5)));
    eprintln!("paced writer: {}", describe(&o));
}

#[test]
fn a_writer_that_never_rests_cannot_stall_a_compaction() {
    let o = compact_under_traffic(None);
    eprintln!("unpaced writer: {}", describe(&o));
    // The writer kept the compaction busy: it wrote at half its ceiling or more all along, so
    // neither held the other up.
    let floor = 0.5 * WRITER_CEILING * o.elapsed.as_secs_f64();
    assert!(o.written as f64 >= floor, "the writer was held up ({floor:.0} blocks expected): {}", describe(&o));
}
