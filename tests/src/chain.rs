//! Building stores from the synthetic chain, and reading back what a store holds.

use std::collections::HashSet;

use splitstore_core::{
    kv::{Kv, Space},
    mem::ManualClock,
    synth::{ChainGen, Epoch, SynthConfig},
    Config, Mode, SplitStore,
};

use crate::oracle::Universe;

/// Small epochs and batches so a few dozen epochs exercise every phase and many batches.
pub fn small_config(mode: Mode) -> Config {
    Config {
        mode,
        finality: 4,
        threshold_finalities: 3,
        boundary_finalities: 2,
        message_retention: 1,
        sync_gap_secs: None,
        batch_size: 64,
        yield_every: 32,
        missing_retries: 1,
        missing_retry_wait_ms: 5,
        purge_pace_after_ms: 0,
        purge_sleep_factor: 1,
        ..Config::default()
    }
}

/// A small synthetic chain.
pub fn small_chain(seed: u64) -> ChainGen {
    ChainGen::new(SynthConfig { seed, state_objects: 120, messages_per_block: 3, ..SynthConfig::default() })
}

/// Every key of `space`, by paged scan through the trait.
pub async fn keys<K: Kv>(kv: &K, space: Space) -> HashSet<Vec<u8>> {
    let mut out = HashSet::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = kv.scan_keys(space, after.as_deref(), 500).await.expect("scan");
        let Some(last) = page.last().cloned() else { return out };
        out.extend(page);
        after = Some(last);
    }
}

/// Every block of a store, by paged scan.
pub async fn blocks<K: Kv>(kv: &K) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = kv.scan(Space::Blocks, after.as_deref(), 500).await.expect("scan");
        let Some((last, _)) = page.last().cloned() else { return out };
        out.extend(page);
        after = Some(last);
    }
}

/// The union of hot and cold.
pub async fn universe_of<K: Kv>(hot: &K, cold: &K) -> Universe {
    let mut u = Universe::default();
    u.extend(blocks(hot).await);
    u.extend(blocks(cold).await);
    u
}

/// Writes an epoch's blocks and applies it as the head; returns the compaction it triggered.
pub async fn apply_epoch<K: Kv>(
    store: &SplitStore<K, ManualClock>,
    epoch: &Epoch,
) -> Option<splitstore_core::PendingCompaction> {
    store.put_many(epoch.blocks.clone()).await.expect("put epoch");
    store.head_change(&[], std::slice::from_ref(&epoch.tipset)).await.expect("head change")
}
