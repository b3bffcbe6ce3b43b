//! `info` and `check`: what the store holds, and whether the live set is all there.

use alloc::{string::String, sync::Arc, vec::Vec};

use crate::sync::Mutex;
use cid::Cid;
use serde::{Deserialize, Serialize};

use super::SplitStore;
use crate::{
    clock::Clock,
    compact::{CompactionReport, Progress, PruneReport, RecoveryReport},
    error::Error,
    header,
    key::{is_unitary, may_have_links, BlockKey},
    kv::{Kv, Space, SpaceEstimate, SpaceStats},
    markset::{AnyMarks, MarkSetKind, Marks},
    metrics::Metrics,
    walk::WALK_BATCH,
};

/// A snapshot of the store's state, taken in time independent of the store's size.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Info {
    /// Head tipset.
    #[serde(with = "crate::cid_serde::option")]
    #[cfg_attr(feature = "ts", tsify(type = "string[] | null"))]
    pub head: Option<Vec<Cid>>,
    /// Head height.
    pub head_epoch: Option<i64>,
    /// State below this epoch has left the hot store.
    pub base_epoch: i64,
    /// Completed compactions.
    pub compactions: u64,
    /// Completed cold prunes.
    pub prunes: u64,
    /// Height of the head from which the hot store was warmed from cold, if it was.
    pub warmup_epoch: Option<i64>,
    /// Hot store blocks, as the backend estimates them without a scan (see
    /// [`SplitStore::count`] for exact figures); `None` when it keeps no estimate.
    pub hot: Option<SpaceEstimate>,
    /// Cold store blocks, estimated likewise.
    pub cold: Option<SpaceEstimate>,
    /// A compaction (or a cold prune) is running.
    pub compacting: bool,
    /// The running compaction's (or prune's) latest progress event.
    pub progress: Option<Progress>,
    /// An interrupted purge is waiting to be finished.
    pub pending_recovery: bool,
    /// What recovery did when the store was opened, if anything.
    pub recovery: Option<RecoveryReport>,
    /// The last compaction's report.
    pub last_compaction: Option<CompactionReport>,
    /// The last cold prune's report.
    pub last_prune: Option<PruneReport>,
    /// The last compaction's or prune's error, if it failed.
    pub last_error: Option<String>,
    /// Running counters since the store was opened.
    pub metrics: Metrics,
    /// Memory the store holds between compactions.
    #[serde(default)]
    pub held: HeldMemory,
}

/// Heap bytes the store holds between compactions, by what holds them (each bounded by its
/// `Config` limit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct HeldMemory {
    /// The hot key list (`Config::hot_key_list_bytes`).
    pub hot_key_list: u64,
    /// The kept graph and the records of the blocks written since (`Config::kept_graph_bytes`).
    pub kept_graph: u64,
}

/// Exact block counts and value bytes of both stores, from a scan of each.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct Counts {
    /// The hot store's blocks.
    pub hot: SpaceStats,
    /// The cold store's blocks.
    pub cold: SpaceStats,
}

/// What `check` found walking the live set from the head (headers, tipset-key objects that
/// are stored, and state, messages and receipts inside the current boundaries).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct CheckReport {
    /// Live objects found in the hot store.
    pub hot: u64,
    /// Live objects found only in the cold store.
    pub cold: u64,
    /// Live DAG-CBOR objects in neither store.
    pub missing: u64,
    /// The first missing CIDs.
    #[serde(with = "crate::cid_serde")]
    #[cfg_attr(feature = "ts", tsify(type = "string[]"))]
    pub missing_cids: Vec<Cid>,
}

impl<K: Kv, C: Clock> SplitStore<K, C> {
    /// The store's state, estimated sizes and counters, in time independent of its size
    /// (the backends' own estimates and the store's running counters; nothing is scanned).
    pub async fn info(&self) -> Result<Info, Error> {
        self.usable()?;
        let hot = self.hot.estimate(Space::Blocks).await.map_err(|e| self.hot_err(e))?;
        let cold = self.cold.estimate(Space::Blocks).await.map_err(|e| self.cold_err(e))?;
        let metrics = self.counters.snapshot();
        let hot_key_list = self.hot_keys.lock().as_ref().map_or(0, |l| l.held());
        let written = self.written.lock().as_ref().map_or(0, |w| w.held());
        let s = self.shared.lock();
        let kept_graph = s.kept_graph.as_ref().map_or(0, |g| g.bytes()) + written;
        let held = HeldMemory { hot_key_list: hot_key_list as u64, kept_graph: kept_graph as u64 };
        Ok(Info {
            head: s.head.as_ref().map(|h| h.tipset.clone()),
            head_epoch: s.head.as_ref().map(|h| h.height),
            base_epoch: s.state.base_epoch,
            compactions: s.state.compactions,
            prunes: s.state.prunes,
            warmup_epoch: s.warmup_epoch,
            hot,
            cold,
            compacting: s.compacting,
            progress: s.progress,
            pending_recovery: s.purge_pending,
            recovery: s.recovery.clone(),
            last_compaction: s.last_report.clone(),
            last_prune: s.last_prune.clone(),
            last_error: s.last_error.clone(),
            metrics,
            held,
        })
    }

    /// Exact block counts and bytes of both stores: scans every value of each, so it takes
    /// time in proportion to the store (use [`SplitStore::info`] for a constant-time view).
    pub async fn count(&self) -> Result<Counts, Error> {
        self.usable()?;
        let hot = self.hot.stats(Space::Blocks).await.map_err(|e| self.hot_err(e))?;
        let cold = self.cold.stats(Space::Blocks).await.map_err(|e| self.cold_err(e))?;
        Ok(Counts { hot, cold })
    }

    /// Walks the live set from the head (headers to genesis; state, messages and receipts
    /// inside the current boundaries) and counts where each object is. Walk errors are
    /// returned, never ignored; missing DAG-CBOR objects are counted. Leaves (non-DAG-CBOR)
    /// are counted when present; links to absent leaves (actor code) are not errors.
    pub async fn check(&self) -> Result<CheckReport, Error> {
        self.usable()?;
        let head = self.shared.lock().head.clone().ok_or(Error::NoHead)?;
        let b = self.config.boundaries(head.height);
        let seen = Arc::new(Mutex::new(AnyMarks::new(MarkSetKind::Exact, 0, 0)));
        let mut report = CheckReport::default();
        let mut generation = head.tipset.clone();
        let mut tipset_keys = alloc::vec![header::tipset_key(&head.tipset).0];
        while !generation.is_empty() {
            self.yield_point().await?;
            generation.sort_unstable();
            generation.dedup();
            let mut roots = Vec::new();
            let mut next = Vec::new();
            let found = self.locate(&generation, &seen, &mut report).await?;
            for (cid, bytes) in generation.iter().zip(found) {
                let Some(bytes) = bytes else { continue };
                let h = header::decode(&bytes).map_err(|source| Error::BadHeader { cid: *cid, source })?;
                let keep = b.retention(h.height);
                if keep.messages {
                    roots.push(h.messages);
                    roots.push(h.parent_message_receipts);
                }
                if keep.state {
                    roots.push(h.parent_state_root);
                }
                if h.height > 0 {
                    next.extend_from_slice(&h.parents);
                    tipset_keys.push(header::tipset_key(&h.parents).0);
                }
            }
            // Tipset-key objects are counted where they are; chain exports omit them, so an
            // absent one is not missing.
            tipset_keys.sort_unstable();
            tipset_keys.dedup();
            let mut absent = CheckReport::default();
            self.locate(&core::mem::take(&mut tipset_keys), &seen, &mut absent).await?;
            report.hot += absent.hot;
            report.cold += absent.cold;
            let mut stack = roots;
            while !stack.is_empty() {
                let take = stack.len().min(WALK_BATCH);
                let chunk = stack.split_off(stack.len() - take);
                let found = self.locate(&chunk, &seen, &mut report).await?;
                for (_, bytes) in chunk.iter().zip(found) {
                    if let Some(bytes) = bytes {
                        let _ = crate::links::for_each_link(&bytes, |l| stack.push(l));
                    }
                }
                self.clock.yield_now().await;
            }
            generation = next;
        }
        Ok(report)
    }

    /// Counts each not-yet-seen CID of `cids` as hot, cold or missing; returns the bytes of
    /// the DAG-CBOR ones that were found (None for seen, leaf or missing).
    async fn locate(
        &self,
        cids: &[Cid],
        seen: &Arc<Mutex<AnyMarks>>,
        report: &mut CheckReport,
    ) -> Result<Vec<Option<Vec<u8>>>, Error> {
        let fresh: Vec<bool> = {
            let mut m = seen.lock();
            cids.iter().map(|c| !is_unitary(c) && m.mark(BlockKey::of(c).as_bytes())).collect()
        };
        let want: Vec<Cid> = cids.iter().zip(&fresh).filter(|(_, f)| **f).map(|(c, _)| *c).collect();
        let keys: Vec<Vec<u8>> = want.iter().map(|c| BlockKey::of(c).into_bytes()).collect();
        let hot = self.hot.get_many(Space::Blocks, &keys).await.map_err(|e| self.hot_err(e))?;
        let cold_keys: Vec<Vec<u8>> =
            keys.iter().zip(&hot).filter(|(_, v)| v.is_none()).map(|(k, _)| k.clone()).collect();
        let mut cold = self.cold.get_many(Space::Blocks, &cold_keys).await.map_err(|e| self.cold_err(e))?.into_iter();
        let mut by_want = Vec::with_capacity(want.len());
        for (cid, h) in want.iter().zip(hot) {
            let v = match h {
                Some(v) => {
                    report.hot += 1;
                    Some(v)
                }
                None => match cold.next().flatten() {
                    Some(v) => {
                        report.cold += 1;
                        Some(v)
                    }
                    None => {
                        if may_have_links(cid) {
                            report.missing += 1;
                            if report.missing_cids.len() < 256 {
                                report.missing_cids.push(*cid);
                            }
                        }
                        None
                    }
                },
            };
            by_want.push(if may_have_links(cid) { v } else { None });
        }
        let mut by_want = by_want.into_iter();
        Ok(fresh.into_iter().map(|f| if f { by_want.next().flatten() } else { None }).collect())
    }
}
