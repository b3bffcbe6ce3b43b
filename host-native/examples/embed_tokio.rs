//! Embedding the store in a tokio program.
//!
//! The same loop as `embed_thread`, under tokio's multi-thread runtime: a task syncs a chain
//! (writes each tipset's blocks, then reports the new head) and awaits the store's futures
//! directly; each compaction a head change decides runs on tokio's blocking pool.
//!
//! Why the blocking pool: the native store's clock sleeps by blocking its thread (the
//! compaction paces its purge with it), and the on-disk backend's calls block on disk I/O
//! before completing on their first poll. A foreground call blocks only briefly, as any
//! embedded database called from async code does; a whole compaction must not hold a runtime
//! worker, so it runs in `spawn_blocking`, driven there by `futures::executor::block_on`.
//!
//! A running compaction waits, before its purge, for a fresh head reported during its
//! critical section, so after its last epoch the task winds down: it keeps reporting heads,
//! declining new compactions, until none is running. Then one more compaction is started by
//! hand (`begin_compaction`, which waits for no head), and `check` walks the live set from the
//! head and must find every block.
//!
//! ```sh
//! cargo run -p splitstore-native --example embed_tokio
//! ```
// The core's `Error` carries CIDs by value; errors are the cold path.
#![allow(clippy::result_large_err)]

use std::{
    sync::Arc,
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
    ops::{NativeStore, OpenStore},
    repo::{Repo, RepoConfig},
};
use tokio::task::JoinHandle;

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

type Error = Box<dyn std::error::Error + Send + Sync>;

/// What the syncing task did.
struct Summary {
    epochs: u64,
    decided: u64,
    busy: u64,
    declined: u64,
    chain_blocks: u64,
}

/// Runs `pending` to the end on the blocking pool.
fn spawn_compaction(
    store: &Arc<NativeStore>,
    pending: PendingCompaction,
) -> JoinHandle<Result<CompactionReport, splitstore_core::Error>> {
    let store = Arc::clone(store);
    tokio::task::spawn_blocking(move || block_on(store.run_compaction(pending, &NoProgress)))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    let start = Instant::now();
    let dir = tempfile::tempdir()?;
    let config = RepoConfig { mode: "universal".into(), finality: FINALITY, ..RepoConfig::default() };
    // The repo holds its directory's lock until `open` is dropped.
    let open = OpenStore::from_repo(Repo::init(dir.path(), config)?)?;
    let store = Arc::clone(&open.store);

    // The chain's timestamps start at the wall clock and advance 30 s per epoch, faster than
    // real time, so every head is fresh (within the sync gap) when it is reported.
    let now_secs = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let mut chain = ChainGen::new(SynthConfig { genesis_timestamp: now_secs, ..synth_config(1, ACTORS) });

    // The syncing task. Head changes decide one compaction at a time (a head change while one
    // runs reports `Trigger::Busy`), so at most one handle is outstanding.
    let sync = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut reports = Vec::new();
            let mut running: Option<JoinHandle<_>> = None;
            let (mut epochs, mut decided, mut busy, mut declined) = (0u64, 0u64, 0u64, 0u64);
            loop {
                let winding_down = epochs >= EPOCHS && decided >= MIN_COMPACTIONS;
                if winding_down && !store.is_compacting() {
                    break;
                }
                let epoch_start = Instant::now();
                if epochs >= MAX_EPOCHS {
                    return Err::<_, Error>("a compaction did not finish while the chain grew".into());
                }
                let epoch = chain.next_epoch();
                store.put_many(epoch.blocks).await?;
                let header = epoch.tipset[0];
                let outcome = store.head_change_outcome(&[], &[epoch.tipset]).await?;
                if outcome.trigger == Trigger::Busy {
                    busy += 1;
                }
                match outcome.compaction {
                    Some(pending) if !winding_down => {
                        decided += 1;
                        // The previous compaction has finished: this one could not be decided
                        // while it ran.
                        if let Some(done) = running.take() {
                            reports.push(done.await??);
                        }
                        running = Some(spawn_compaction(&store, pending));
                    }
                    Some(pending) => {
                        // Winding down: dropping a decided compaction closes its transaction
                        // and leaves the store as it was.
                        drop(pending);
                        declined += 1;
                    }
                    None => {}
                }
                // The head just written reads back, whatever the compaction is doing.
                if !store.has(&header).await? {
                    return Err(format!("head header {header} is missing right after it was written").into());
                }
                epochs += 1;
                tokio::time::sleep(EPOCH_PACE.saturating_sub(epoch_start.elapsed())).await;
            }
            if let Some(done) = running.take() {
                reports.push(done.await??);
            }
            let summary = Summary { epochs, decided, busy, declined, chain_blocks: chain.emitted_blocks() };
            Ok((reports, summary))
        })
    };
    let (mut reports, Summary { epochs, decided, busy, declined, chain_blocks }) = sync.await??;
    assert_eq!(reports.len() as u64, decided, "every compaction ran to the end");

    // One more compaction, decided by hand against the current head.
    reports.push(spawn_compaction(&store, store.begin_compaction()?).await??);

    let check = store.check().await?;
    let hot = store.hot().stats(Space::Blocks).await?;
    let cold = store.cold().stats(Space::Blocks).await?;
    open.close()?;

    assert!(reports.iter().map(|r| r.moved).sum::<u64>() > 0, "old blocks moved to the cold store");
    assert_eq!(check.missing, 0, "live blocks missing: {:?}", check.missing_cids);
    assert!(check.hot > 0);

    let moved: u64 = reports.iter().map(|r| r.moved).sum();
    let purged: u64 = reports.iter().map(|r| r.purged).sum();
    println!("embed_tokio: synced {epochs} epochs ({chain_blocks} chain blocks)");
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
