//! Head changes: protection of applied tipsets, sync tracking, and the compaction trigger.

use alloc::{sync::Arc, vec::Vec};

use cid::Cid;

use super::SplitStore;
use crate::{
    clock::Clock,
    compact::{PendingCompaction, Plan},
    config::{decide_trigger, Trigger},
    error::Error,
    header,
    kv::{Kv, Space, WriteBatch},
    meta::{self, Head},
    walk::WalkOpts,
};

/// What a head change did besides recording the head.
#[derive(Debug)]
pub struct HeadOutcome {
    /// The trigger rule's verdict.
    pub trigger: Trigger,
    /// The compaction to run, when one was decided.
    pub compaction: Option<PendingCompaction>,
}

impl<K: Kv, C: Clock> SplitStore<K, C> {
    /// Reads and decodes a header from either store.
    pub(crate) async fn read_header(&self, cid: &Cid) -> Result<header::BlockHeader, Error> {
        let bytes = self.load_many(core::slice::from_ref(cid)).await?.pop().flatten();
        let bytes = bytes.ok_or(Error::MissingBlock { cid: *cid, context: "head" })?;
        header::decode(&bytes).map_err(|source| Error::BadHeader { cid: *cid, source })
    }

    /// Applies a head change: `apply` lists tipsets (header CIDs), oldest first; the last is
    /// the new head. Returns a compaction to run when the trigger rule decides one.
    pub async fn head_change(
        &self,
        revert: &[Vec<Cid>],
        apply: &[Vec<Cid>],
    ) -> Result<Option<PendingCompaction>, Error> {
        Ok(self.head_change_outcome(revert, apply).await?.compaction)
    }

    /// [`SplitStore::head_change`], also reporting why no compaction was decided.
    pub async fn head_change_outcome(&self, revert: &[Vec<Cid>], apply: &[Vec<Cid>]) -> Result<HeadOutcome, Error> {
        let _one_at_a_time = self.head_lock.lock().await;
        self.head_change_locked(revert, apply).await
    }

    /// A head change; the caller holds `head_lock`.
    pub(crate) async fn head_change_locked(
        &self,
        _revert: &[Vec<Cid>],
        apply: &[Vec<Cid>],
    ) -> Result<HeadOutcome, Error> {
        self.usable()?;
        let Some(tipset) = apply.last() else {
            return Ok(HeadOutcome { trigger: Trigger::NotDue, compaction: None });
        };
        let first = tipset.first().ok_or(Error::EmptyTipset)?;
        let h = self.read_header(first).await?;
        let head = Head { tipset: tipset.clone(), height: h.height, timestamp: h.timestamp };
        let now = self.clock.now_millis();
        let age = self.config.head_age(head.timestamp, now);
        let fresh = age.fresh;
        // For the size limit; an estimate that fails is no estimate (the head change stands).
        let hot_bytes = match self.config.hot_size_limit {
            Some(_) => self.hot.footprint().await.ok().flatten(),
            None => None,
        };
        let _shared = self.call_hold().await;
        let critical = {
            let mut s = self.shared.lock();
            let compacting = s.compacting;
            let live = match s.txn.as_mut() {
                Some(t) if t.critical => t.marks.clone(),
                Some(t) => {
                    for ts in apply {
                        t.refs.extend(ts.iter().copied());
                    }
                    None
                }
                None => None,
            };
            if compacting {
                if age.stale {
                    s.out_of_sync = true;
                }
                if fresh {
                    s.out_of_sync = false;
                }
            }
            live
        };
        let mut batch = WriteBatch::new();
        let mut revived = Vec::new();
        if let Some(live) = &critical {
            let roots: Vec<Cid> = apply.iter().flatten().copied().collect();
            self.walk(&roots, live, WalkOpts::critical(&mut revived)).await?;
            for k in &revived {
                batch.delete(Space::Dead, k.as_bytes());
            }
        }
        batch.put(Space::Meta, meta::HEAD, head.encode());
        self.hot.write(batch).await.map_err(|e| self.hot_err(e))?;
        drop(_shared);

        let mut s = self.shared.lock();
        if let Some(live) = critical {
            live.lock().settle(&revived);
            // The purge may start once a fresh head is marked here: the state computed from
            // the compaction's own head is named by it (its parent state), or by an earlier
            // head protected before.
            let same_txn = s.txn.as_ref().and_then(|t| t.marks.as_ref()).is_some_and(|m| Arc::ptr_eq(m, &live));
            s.fresh_head_seen |= fresh && same_txn;
        }
        s.head = Some(head.clone());
        if s.warmup_due && !s.compacting && !s.closing && !s.poisoned {
            // No transaction: a warmup deletes nothing, so nothing the node does needs keeping.
            s.compacting = true;
            let plan = Plan {
                boundaries: self.config.boundaries(head.height),
                head,
                wait_for_head: false,
                over_size_limit: false,
                warmup: true,
            };
            let compaction = Some(PendingCompaction::new(plan, &self.shared));
            return Ok(HeadOutcome { trigger: Trigger::Warmup, compaction });
        }
        let trigger =
            decide_trigger(&self.config, s.compacting, head.height, head.timestamp, now, s.state.base_epoch, hot_bytes);
        let compaction = match trigger.boundaries() {
            Some(boundaries) if !s.closing && !s.poisoned => {
                let over_size_limit = matches!(trigger, Trigger::OverSizeLimit(_));
                let plan = Plan { head, boundaries, wait_for_head: true, over_size_limit, warmup: false };
                Some(Self::open_txn(&mut s, &self.shared, plan))
            }
            _ => None,
        };
        Ok(HeadOutcome { trigger, compaction })
    }
}
