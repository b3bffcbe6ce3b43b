//! Repairs and conversions of a repo: `rollback` (undo the split) and `clear` (drop the lists
//! of an interrupted compaction).
//!
//! # Rollback
//!
//! Copies every hot block into the cold store, makes the cold store durable, writes
//! `DIR/rolled-back` (atomically), then deletes `DIR/hot`. Afterwards `DIR/cold` is one fjall
//! database holding every block (in the on-disk layout of [`crate::kv`]: keyspace `data`,
//! keys `b` followed by the blocks' multihashes), and the repo no longer opens as a split
//! store. Crash-safe: before the marker the hot store is
//! untouched and the copy (which only adds blocks to cold) is repeated by running rollback
//! again; after it every hot block is durable in cold, and running rollback again finishes
//! deleting the hot store. The store is opened (and so recovered) before the copy, so an
//! interrupted purge is finished and deleted blocks stay deleted.
//!
//! # Clear
//!
//! Drops the dead list, the cold list, the purge record and the purge checkpoint, without
//! opening the store (for when recovery itself fails). Nothing live is lost: these only say
//! what a compaction was about to delete, and the blocks they name stay in the hot store until
//! a later compaction decides again.

use std::path::Path;

use futures::executor::block_on;
use serde::{Deserialize, Serialize};
use splitstore_core::{
    kv::{Kv, Space, WriteBatch},
    meta,
};

use crate::{
    backend::NativeKv,
    errors::HostError,
    ops::{OpError, OpenStore},
    repo::{sync_dir, write_file_atomic, Repo},
};

/// The marker file of a rolled-back repo.
pub const ROLLED_BACK: &str = "rolled-back";

/// Blocks per batch when copying.
const COPY_PAGE: usize = 4096;

/// What a rollback did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackReport {
    /// Hot blocks copied into the cold store (0 when a rollback that had copied them was
    /// finished).
    pub copied: u64,
    /// Bytes of those blocks.
    pub bytes: u64,
    /// The store now holding every block.
    pub store: String,
    /// The head when the split was undone (also written in the marker file).
    pub head_epoch: Option<i64>,
}

/// Undoes the split of the repo in `dir`: see the module docs. Holds the repo's lock.
pub fn rollback(dir: &Path, mut progress: impl FnMut(u64)) -> Result<RollbackReport, OpError> {
    let repo = Repo::open_any(dir)?;
    let marker = dir.join(ROLLED_BACK);
    let mut report = RollbackReport { store: dir.join("cold").display().to_string(), ..Default::default() };
    if !marker.exists() {
        let open = OpenStore::from_repo(repo)?;
        let copied = copy_hot_to_cold(open.store.hot(), open.store.cold(), &mut progress);
        let info = block_on(open.store.info());
        // The lock stays held until the hot store is gone: no other process may write to it
        // once its blocks are copied.
        let repo = open.into_repo()?;
        let (blocks, bytes) = copied?;
        report.copied = blocks;
        report.bytes = bytes;
        report.head_epoch = info?.head_epoch;
        let text = serde_json::to_vec_pretty(&report).expect("reports serialise");
        write_file_atomic(&marker, &text)?;
        remove_hot(dir)?;
        drop(repo);
    } else {
        if let Ok(text) = std::fs::read(&marker) {
            if let Ok(earlier) = serde_json::from_slice::<RollbackReport>(&text) {
                report.head_epoch = earlier.head_epoch;
            }
        }
        remove_hot(dir)?;
        drop(repo);
    }
    Ok(report)
}

fn copy_hot_to_cold(hot: &NativeKv, cold: &NativeKv, progress: &mut dyn FnMut(u64)) -> Result<(u64, u64), OpError> {
    let hot_err = |source| HostError::Kv { store: "hot", source };
    let cold_err = |source| HostError::Kv { store: "cold", source };
    let (mut blocks, mut bytes) = (0u64, 0u64);
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = block_on(hot.scan(Space::Blocks, after.as_deref(), COPY_PAGE)).map_err(hot_err)?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
        let mut batch = WriteBatch::with_capacity(page.len());
        for (k, v) in page {
            blocks += 1;
            bytes += v.len() as u64;
            batch.put(Space::Blocks, k, v);
        }
        block_on(cold.write(batch)).map_err(cold_err)?;
        progress(blocks);
    }
    block_on(cold.flush()).map_err(cold_err)?;
    Ok((blocks, bytes))
}

fn remove_hot(dir: &Path) -> Result<(), HostError> {
    let hot = dir.join("hot");
    match std::fs::remove_dir_all(&hot) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(HostError::io("remove", &hot, e)),
    }
    sync_dir(dir)
}

/// What `clear` found, and dropped unless it was a dry run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClearReport {
    /// Dead-list entries.
    pub dead_entries: u64,
    /// Cold-list entries.
    pub cold_list_entries: u64,
    /// A purge record was present (a purge was interrupted).
    pub purge_record: bool,
    /// A purge checkpoint was present.
    pub checkpoint: bool,
    /// The entries were dropped (false for a dry run).
    pub cleared: bool,
}

impl ClearReport {
    /// True when there is nothing to clear.
    pub fn is_empty(&self) -> bool {
        self.dead_entries == 0 && self.cold_list_entries == 0 && !self.purge_record && !self.checkpoint
    }
}

/// Counts the interrupted compaction's lists and records in the repo in `dir` and, unless
/// `dry_run`, drops them (durably). Works on a store whose recovery fails.
pub fn clear(dir: &Path, dry_run: bool) -> Result<ClearReport, OpError> {
    let repo = Repo::open(dir)?;
    let (hot, _cold) = repo.open_stores()?;
    let err = |source| HostError::Kv { store: "hot", source };
    let mut report = ClearReport {
        purge_record: block_on(hot.get(Space::Meta, meta::PURGE)).map_err(err)?.is_some(),
        checkpoint: block_on(hot.get(Space::Meta, meta::CHECKPOINT)).map_err(err)?.is_some(),
        ..Default::default()
    };
    for (space, count) in [(Space::Dead, &mut report.dead_entries), (Space::ColdList, &mut report.cold_list_entries)] {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let keys = block_on(hot.scan_keys(space, after.as_deref(), COPY_PAGE)).map_err(err)?;
            let Some(last) = keys.last() else { break };
            after = Some(last.clone());
            *count += keys.len() as u64;
            if !dry_run {
                let mut batch = WriteBatch::with_capacity(keys.len());
                for k in keys {
                    batch.delete(space, k);
                }
                block_on(hot.write(batch)).map_err(err)?;
            }
        }
    }
    if !dry_run {
        // The records go last: until they are gone, recovery still finds a consistent
        // (shorter) purge to finish.
        let mut batch = WriteBatch::with_capacity(2);
        batch.delete(Space::Meta, meta::CHECKPOINT);
        batch.delete(Space::Meta, meta::PURGE);
        batch.strict();
        block_on(hot.write(batch)).map_err(err)?;
        block_on(hot.flush()).map_err(err)?;
        report.cleared = true;
    }
    Ok(report)
}
