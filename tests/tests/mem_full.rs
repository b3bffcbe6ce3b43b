//! A full store on the in-memory backend's quota model: the refused write names the cause, a
//! compaction within the reserve frees space in every mode, a reserve too small fails cleanly,
//! and a crash at every call of the full store's compaction recovers under the same quota.

use splitstore_conformance::{executor::block_on, full};
use splitstore_core::{mem::Quota, Mode};

/// Bytes the hot store may hold: about thirty epochs of the small chain.
const LIMIT: u64 = 1 << 20;

fn quota() -> Quota {
    Quota { limit: LIMIT, reserve: LIMIT / 4 }
}

#[test]
fn a_full_store_compacts_back_in_every_mode() {
    for (i, mode) in [Mode::Discard, Mode::Universal, Mode::Messages].into_iter().enumerate() {
        let s = block_on(full::full_store_compacts_back(mode, 40 + i as u64, quota()));
        println!(
            "{mode:?}: refused after {} epochs at {} bytes; compaction peak {} (+{}), after {}",
            s.epochs,
            s.used_full,
            s.peak,
            s.peak - s.used_full,
            s.used_after
        );
        assert!(s.epochs > 10, "{mode:?}: the quota was reached too early to prove anything");
    }
}

#[test]
fn a_reserve_too_small_fails_cleanly_and_nothing_is_lost() {
    for mode in [Mode::Discard, Mode::Universal] {
        block_on(full::too_small_a_reserve_fails_cleanly(mode, 50, LIMIT));
    }
}

#[test]
fn a_crash_while_full_recovers_within_the_quota() {
    for (i, mode) in [Mode::Discard, Mode::Universal, Mode::Messages].into_iter().enumerate() {
        let s = block_on(full::crash_while_full(mode, 60 + i as u64, quota(), 3));
        println!("{mode:?}: {} crash points on a full store, {} recovered purges", s.crash_points, s.recovered_purges);
        assert!(s.crash_points > 30 && s.recovered_purges > 0);
    }
}

/// A store past its size limit compacts before the epoch threshold, says so in the report,
/// and does not compact again at the next head.
#[test]
fn a_store_past_its_size_limit_compacts_early_and_says_so() {
    use splitstore_conformance::chain::{apply_epoch, small_chain, small_config};
    use splitstore_core::{
        mem::{ManualClock, MemKv},
        Config, NoProgress, SplitStore,
    };
    block_on(async {
        // A tenth of this finality is three epochs: the next head is too soon to compact again.
        let config = Config { finality: 30, hot_size_limit: Some(100_000), ..small_config(Mode::Discard) };
        let threshold = config.threshold();
        let store = SplitStore::open(MemKv::new(), MemKv::new(), ManualClock::new(0), config).await.expect("open");
        let mut chain = small_chain(70);
        let mut early = None;
        for _ in 0..threshold {
            let e = chain.next_epoch();
            if let Some(p) = apply_epoch(&store, &e).await {
                early = Some((e.height, store.run_compaction(p, &NoProgress).await.expect("compaction")));
                break;
            }
        }
        let (height, report) = early.expect("no compaction before the epoch threshold");
        assert!(report.over_size_limit, "the report does not say why it ran early");
        assert!(height <= threshold, "compacted at {height}, not before the threshold {threshold}");
        let e = chain.next_epoch();
        assert!(apply_epoch(&store, &e).await.is_none(), "compacted again at the very next head");
    });
}
