//! The store's in-memory state shared between the API and a running compaction.
//!
//! Held behind the engine's short-section lock ([`crate::sync::Mutex`]), never across an `.await`: every critical region here
//! is a few field reads or writes.

use alloc::{collections::BTreeSet, string::String, sync::Arc, vec::Vec};
use core::hash::BuildHasherDefault;

use crate::sync::Mutex;
use cid::Cid;
use hashbrown::HashSet;
use siphasher::sip::SipHasher13;

use crate::{
    compact::{CompactionReport, Progress, PruneReport, RecoveryReport, Target},
    graph::{GraphBuilder, KeptGraph},
    live::LiveRef,
    meta::{Head, PruneRecord, PurgeRecord, StoreState},
};

/// A set of CIDs (transactional references).
pub(crate) type CidSet = HashSet<Cid, BuildHasherDefault<SipHasher13>>;
/// A set of block keys.
pub(crate) type KeySet = HashSet<Vec<u8>, BuildHasherDefault<SipHasher13>>;

/// A compaction's transaction: from the moment it is decided until it ends, every block the
/// API touches is remembered so it (and its DAG) stays live.
#[derive(Debug, Default)]
pub(crate) struct Txn {
    /// CIDs touched through the API (or applied as heads) not yet protected.
    pub refs: CidSet,
    /// The mark set, once marking has begun.
    pub marks: Option<LiveRef>,
    /// Collect has written the dead list: from now on every new mark must also remove its
    /// dead-list entry durably.
    pub collected: bool,
    /// The critical section: the mark set is the truth. Reads of unmarked hot blocks are
    /// answered from cold; writes mark their DAG (and drop its dead-list entries) in the same
    /// atomic batch as the block.
    pub critical: bool,
    /// Transactional references whose blocks were missing when protected.
    pub missing: Vec<Cid>,
    /// Blocks of writes made before the critical section whose futures were dropped (or
    /// failed): they may land at any time. The purge protects each one present before every
    /// batch of deletions.
    pub landing: Vec<Cid>,
    /// The purge record, from the moment its write is issued: a write may land without its
    /// future completing (IndexedDB commits unawaited transactions), so from then on a crash
    /// may finish this purge at open, and the store stays in its critical section until the
    /// purge is finished, however the run ends. A resumed run writes it again before purging.
    pub purge: Option<PurgeRecord>,
    /// Messages mode: the old message DAG roots this compaction copies to cold incomplete,
    /// recorded with its purge record for the next compactions to walk again.
    pub incomplete: Option<Vec<Cid>>,
    /// The store the dead list names blocks of: hot for a compaction, cold for a prune. In a
    /// prune's critical section the mark set decides what cold holds, and hot is left alone.
    pub target: Target,
    /// A prune's record, from the moment its write is issued (as [`Txn::purge`]).
    pub prune: Option<PruneRecord>,
}

/// Everything the store keeps in memory besides its backends.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub head: Option<Head>,
    pub state: StoreState,
    pub compacting: bool,
    pub closing: bool,
    /// A `KvError::Crashed` was seen: nothing more is served.
    pub poisoned: bool,
    /// The purge record may be durable (its write was issued): the purge must be finished
    /// before another compaction begins, by the next run or by recovery at open.
    pub purge_pending: bool,
    pub txn: Option<Txn>,
    /// Set by a stale head during a compaction; cleared by a fresh one.
    pub out_of_sync: bool,
    /// A head younger than the sync-wait time was marked inside the current transaction's
    /// critical section (so state computed from the compaction's own head is protected).
    pub fresh_head_seen: bool,
    /// Keys of blocks deleted through the API whose deletion records are not yet applied to
    /// the cold store: reads never answer them from cold ([`crate::store`]'s `delete`).
    pub deleted: KeySet,
    /// CIDs protected from compaction through the API ([`crate::SplitStore::protect`]), loaded
    /// from their records at open. A superset of the durable records: a pin is added before its
    /// record's write is issued and removed only once the removal's write returned, so a call
    /// that fails or is dropped leaves the CID pinned (the safe side) until the store reopens.
    pub pins: BTreeSet<Cid>,
    /// The running compaction's latest progress event.
    pub progress: Option<Progress>,
    pub last_error: Option<String>,
    pub last_report: Option<CompactionReport>,
    pub last_prune: Option<PruneReport>,
    pub recovery: Option<RecoveryReport>,
    /// The first head change warms the hot store from cold (found empty beside a non-empty
    /// cold store at open, or a warmup was under way when the process stopped).
    pub warmup_due: bool,
    /// Height of the head a completed warmup walked from.
    pub warmup_epoch: Option<i64>,
    /// Roots whose cold DAGs wait to be copied into hot ([`crate::SplitStore::hot_view`]).
    pub reify: super::reify::ReifyQueue,
    /// The links the last compaction's chain walk loaded (`crate::graph`), for the next one.
    pub kept_graph: Option<KeptGraph>,
    /// Times the kept graph was dropped because blocks were deleted: a walk that began before
    /// one keeps nothing it recorded.
    pub graph_drops: u64,
}

/// The DAG-CBOR blocks written since the last chain walk took them, with their links
/// (`crate::graph`): the next walk's graph holds them beside the kept one. `None` where no
/// graph is kept. Behind a lock of its own, so that a write recording its blocks (which may
/// grow the record) holds up no reader; taken and cleared only under [`Shared`]'s lock as
/// well (that lock first), so a walk takes the records and the drop count together.
pub(crate) type Written = Mutex<Option<GraphBuilder>>;

impl Shared {
    /// Drops the kept graph and the written blocks' records before blocks are deleted (through
    /// the API or by a cold prune).
    pub fn drop_kept_graph(&mut self, written: &Written) {
        self.kept_graph = None;
        if let Some(w) = written.lock().as_mut() {
            w.clear();
        }
        self.graph_drops += 1;
    }
}

pub(crate) type SharedRef = Arc<Mutex<Shared>>;
