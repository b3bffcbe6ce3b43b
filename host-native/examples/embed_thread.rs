//! Embedding the store in a native program with plain threads.
//!
//! The main thread syncs a chain as a node does: it writes each tipset's blocks, then reports
//! the new head. When a head change decides that a compaction is due, the pending compaction is
//! handed to a background thread that runs it while the main thread keeps syncing. A running
//! compaction waits, before its purge, for a fresh head reported during its critical section,
//! so after its last epoch the main thread winds down: it keeps reporting heads, declining new
//! compactions, until none is running. Then one more compaction is started by hand
//! (`begin_compaction`, which waits for no head), and `check` walks the live set from the head
//! and must find every block.
//!
//! ```sh
//! cargo run -p splitstore-native --example embed_thread
//! ```
// The core's `Error` carries CIDs by value; errors are the cold path.
#![allow(clippy::result_large_err)]

use std::{
    sync::{mpsc, Arc},
    thread,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use futures::executor::block_on;
use splitstore_core::{
    config::Trigger,
    kv::Space,
    synth::{ChainGen, SynthConfig},
    CompactionReport, Kv, NoProgress, PendingCompaction,
};
use splitstore_native::{
    demo::synth_config,
    ops::OpenStore,
    repo::{Repo, RepoConfig},
};

/// Epochs during which head changes may start compactions (more until `MIN_COMPACTIONS` have
/// been started).
const EPOCHS: u64 = 150;
/// Compactions that head changes start, at least.
const MIN_COMPACTIONS: u64 = 2;
/// Finality in epochs: small, so that a compaction is due once the head is 25 epochs (5
/// finalities) past the last one's base.
const FINALITY: i64 = 5;
/// Actors in the synthetic state tree.
const ACTORS: usize = 300;
/// Each epoch takes at least this long: the chain grows at a pace (30 s an epoch on mainnet).
const EPOCH_PACE: Duration = Duration::from_millis(5);
/// A bound on the epochs synced while waiting for the last compaction to finish.
const MAX_EPOCHS: u64 = 20 * EPOCHS;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let start = Instant::now();
    let dir = tempfile::tempdir()?;
    let config = RepoConfig { mode: "universal".into(), finality: FINALITY, ..RepoConfig::default() };
    // The repo holds its directory's lock until `open` is dropped.
    let open = OpenStore::from_repo(Repo::init(dir.path(), config)?)?;
    let store = Arc::clone(&open.store);

    // The compaction thread runs the compactions it is handed, one after the other, until the
    // sending side is dropped.
    let (to_compactor, pending_rx) = mpsc::channel::<PendingCompaction>();
    let compactor = {
        let store = Arc::clone(&store);
        thread::spawn(move || -> Result<Vec<CompactionReport>, splitstore_core::Error> {
            let mut reports = Vec::new();
            for pending in pending_rx {
                reports.push(block_on(store.run_compaction(pending, &NoProgress))?);
            }
            Ok(reports)
        })
    };

    // The chain's timestamps start at the wall clock and advance 30 s per epoch, faster than
    // real time, so every head is fresh (within the sync gap) when it is reported.
    let now_secs = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let mut chain = ChainGen::new(SynthConfig { genesis_timestamp: now_secs, ..synth_config(1, ACTORS) });
    let (mut epochs, mut decided, mut busy, mut declined) = (0u64, 0u64, 0u64, 0u64);
    loop {
        let winding_down = epochs >= EPOCHS && decided >= MIN_COMPACTIONS;
        if winding_down && !store.is_compacting() {
            break;
        }
        let epoch_start = Instant::now();
        if epochs >= MAX_EPOCHS {
            return Err("a compaction did not finish while the chain grew".into());
        }
        let epoch = chain.next_epoch();
        block_on(store.put_many(epoch.blocks))?;
        let header = epoch.tipset[0];
        let outcome = block_on(store.head_change_outcome(&[], &[epoch.tipset]))?;
        if outcome.trigger == Trigger::Busy {
            busy += 1;
        }
        if let Some(pending) = outcome.compaction {
            if !winding_down {
                decided += 1;
                to_compactor.send(pending).map_err(|_| "the compaction thread stopped")?;
            } else {
                // Winding down: dropping a decided compaction closes its transaction and
                // leaves the store as it was.
                drop(pending);
                declined += 1;
            }
        }
        // The head just written reads back, whatever the compaction is doing.
        if !block_on(store.has(&header))? {
            return Err(format!("head header {header} is missing right after it was written").into());
        }
        epochs += 1;
        thread::sleep(EPOCH_PACE.saturating_sub(epoch_start.elapsed()));
    }

    // One more compaction, decided by hand against the current head.
    to_compactor.send(store.begin_compaction()?).map_err(|_| "the compaction thread stopped")?;
    drop(to_compactor);
    let reports = compactor.join().map_err(|_| "the compaction thread panicked")??;

    let check = block_on(store.check())?;
    let hot = block_on(store.hot().stats(Space::Blocks))?;
    let cold = block_on(store.cold().stats(Space::Blocks))?;
    open.close()?;

    assert_eq!(reports.len() as u64, decided + 1, "every compaction ran to the end");
    assert!(reports.iter().map(|r| r.moved).sum::<u64>() > 0, "old blocks moved to the cold store");
    assert_eq!(check.missing, 0, "live blocks missing: {:?}", check.missing_cids);
    assert!(check.hot > 0);

    let moved: u64 = reports.iter().map(|r| r.moved).sum();
    let purged: u64 = reports.iter().map(|r| r.purged).sum();
    println!("embed_thread: synced {epochs} epochs ({} chain blocks)", chain.emitted_blocks());
    println!(
        "  compactions: {decided} started by head changes ({busy} head changes came while one ran, {declined} \
         declined while winding down), 1 by hand"
    );
    println!("  {moved} blocks moved to the cold store, {purged} purged from the hot store");
    println!("  hot store {} blocks, cold store {} blocks", hot.keys, cold.keys);
    println!("  check: {} live blocks hot, {} cold, none missing", check.hot, check.cold);
    println!("  {:.1} s", start.elapsed().as_secs_f64());
    Ok(())
}
