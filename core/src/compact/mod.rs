//! The compaction: decide, mark, collect, move, purge — and recovery of an interrupted purge.
//!
//! Phase order (see `docs/design.md` for the diagram and the crash argument):
//!
//! ```text
//! begin txn ─▶ protect ─▶ mark ─▶ collect ─▶ retry-missing ─▶ move ─▶ critical ─▶ purge ─▶ finish ─▶ reclaim
//!  (refs tracked from here)          (dead list durable)        (purge record durable here)
//! ```
//!
//! Before the purge record is durable a crash (or a dropped future, or an error) discards the
//! compaction: nothing was deleted. After it, the durable dead list is exactly what remains to
//! delete, in every mode, and [`SplitStore::open`](crate::SplitStore::open) finishes it before serving.

mod chain_index;
mod collect;
mod driver;
mod mark;
pub mod pacing;
mod prune;
mod purge;
mod recover;
mod relocate;
mod warmup;

use alloc::{string::String, vec::Vec};

use serde::{Deserialize, Serialize};

use crate::{config::Boundaries, meta::Head, send::MaybeSendSync, store::state::SharedRef};

pub use self::driver::PendingCompaction;
pub use self::prune::PruneReport;
pub use self::warmup::WarmupReport;

/// The store a purge deletes from: the hot store for a compaction, the cold store for a prune.
/// The dead list naming the blocks is in the hot store either way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Target {
    /// A compaction's purge.
    #[default]
    Hot,
    /// A cold prune's purge.
    Cold,
}

/// A compaction phase, in order. Serialised as its lower-case name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Protectors' CIDs become transactional references.
    Protect,
    /// Walk the chain from the head and mark the live set.
    Mark,
    /// List every unmarked hot block in the durable dead (and cold) lists.
    Collect,
    /// Retry references that were missing while protecting.
    Retry,
    /// Copy cold-listed blocks to the cold store.
    Move,
    /// Enter the critical section: the mark set becomes the truth.
    Critical,
    /// Delete the dead list from the hot store in batches.
    Purge,
    /// Return the hot store's freed space.
    Reclaim,
    /// Copy headers and recent state from cold into an empty hot store.
    Warmup,
}

impl Phase {
    /// Every phase, in the order they are declared (a compaction's order; warmup, when it
    /// runs, comes last).
    pub const ALL: [Phase; 9] = [
        Phase::Protect,
        Phase::Mark,
        Phase::Collect,
        Phase::Retry,
        Phase::Move,
        Phase::Critical,
        Phase::Purge,
        Phase::Reclaim,
        Phase::Warmup,
    ];

    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Protect => "protect",
            Phase::Mark => "mark",
            Phase::Collect => "collect",
            Phase::Retry => "retry",
            Phase::Move => "move",
            Phase::Critical => "critical",
            Phase::Purge => "purge",
            Phase::Reclaim => "reclaim",
            Phase::Warmup => "warmup",
        }
    }
}

/// A progress event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[non_exhaustive]
pub struct Progress {
    /// Current phase.
    pub phase: Phase,
    /// Work done in this phase (objects).
    pub done: u64,
    /// Work in this phase, when known.
    pub total: Option<u64>,
}

/// Receives progress events. Implemented for closures.
pub trait ProgressSink: MaybeSendSync {
    /// Called at phase starts and every few thousand objects.
    fn report(&self, p: &Progress);
}

impl<F: Fn(&Progress) + MaybeSendSync> ProgressSink for F {
    fn report(&self, p: &Progress) {
        self(p)
    }
}

/// A sink that ignores every event.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoProgress;

impl ProgressSink for NoProgress {
    fn report(&self, _: &Progress) {}
}

/// What a compaction did.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct CompactionReport {
    /// Height of the head it walked from.
    pub head_epoch: i64,
    /// State below this epoch left the hot store.
    pub boundary_epoch: i64,
    /// Messages and receipts below this epoch left the hot store.
    pub include_messages_epoch: i64,
    /// Objects in the mark set at the end.
    pub marked: u64,
    /// Hot objects scanned by collect.
    pub hot_scanned: u64,
    /// Collect visited the hot key list instead of scanning the hot store (see
    /// `docs/design.md`, "The hot key list").
    #[serde(default)]
    pub hot_keys_listed: bool,
    /// Collect kept a hot key list for the next compaction: false where the store keeps none,
    /// or where the list, or the walk's set of the keys the chain index marks, would pass
    /// `Config::hot_key_list_bytes` (the next collect scans).
    #[serde(default)]
    pub hot_keys_kept: bool,
    /// Objects collect listed as dead.
    pub dead: u64,
    /// Objects copied to the cold store.
    pub moved: u64,
    /// Objects deleted from the hot store.
    pub purged: u64,
    /// Dead-listed objects marked live again before they could be purged.
    pub rescued: u64,
    /// Transactional references protected.
    pub protected_refs: u64,
    /// Missing blocks met in lenient parts of the walk (messages, receipts).
    pub missing: u64,
    /// Blocks whose links could not be fully read.
    pub unreadable: u64,
    /// Keys marked from the chain index instead of by walking headers (0 when the walk went
    /// back to genesis; see `docs/design.md`, "The chain index").
    #[serde(default)]
    pub chain_index_keys: u64,
    /// Blocks the chain walk read below the headers (states, messages, receipts) to find their
    /// links: the part of the mark the kept graph spares.
    #[serde(default)]
    pub loaded_below_headers: u64,
    /// Objects marked from the kept graph instead of by reading their blocks (see
    /// `docs/design.md`, "The kept graph").
    #[serde(default)]
    pub graph_marked: u64,
    /// Blocks recorded as they were written since the last compaction, which the graph this
    /// one marked from held.
    #[serde(default)]
    pub graph_written: u64,
    /// Nodes of the kept graph this compaction's walk left for the next one (0: none kept).
    #[serde(default)]
    pub graph_objects: u64,
    /// Heap bytes of that graph.
    #[serde(default)]
    pub graph_bytes: u64,
    /// Heap bytes of the mark set.
    pub markset_bytes: u64,
    /// `markset_bytes / marked`.
    pub markset_bytes_per_object: f64,
    /// Milliseconds per phase, in order (serialised as `[{"phase", "ms"}]`).
    #[serde(with = "phase_times")]
    #[cfg_attr(feature = "ts", tsify(type = "{ phase: Phase; ms: number }[]"))]
    pub phases: Vec<(Phase, u64)>,
    /// Milliseconds from start to end.
    pub total_ms: u64,
    /// Milliseconds of the purge phase spent pausing for a slowed foreground (`pacing`).
    #[serde(default)]
    pub purge_paused_ms: u64,
    /// True when this run finished a purge left by an interrupted one.
    pub resumed: bool,
    /// True when the hot store's size limit decided this run early
    /// ([`Config::hot_size_limit`](crate::Config::hot_size_limit)).
    pub over_size_limit: bool,
    /// Set when this run warmed an empty hot store from cold instead of compacting (the first
    /// head change of a store opened on a cold archive): what it copied.
    pub warmup: Option<WarmupReport>,
}

/// What recovery at open did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct RecoveryReport {
    /// An interrupted purge was finished.
    pub finished_purge: bool,
    /// Dead-list entries purged by recovery.
    pub purged: u64,
    /// Leftover list entries of a compaction interrupted before its purge, discarded.
    pub discarded_entries: u64,
    /// Milliseconds taken.
    pub ms: u64,
}

/// A compaction's plan: fixed when it is decided.
#[derive(Clone, Debug)]
pub(crate) struct Plan {
    pub head: Head,
    pub boundaries: Boundaries,
    /// With sync checks on, the purge waits until a fresh head has been marked in the critical
    /// section (a compaction decided by a head change on a live node).
    pub wait_for_head: bool,
    /// Decided early by the hot store's size limit.
    pub over_size_limit: bool,
    /// Warm the hot store from cold instead of compacting.
    pub warmup: bool,
}

/// Resets the store's compaction state when a run ends in any way (including a dropped
/// future). When the purge record is durable the mark set and critical section are kept, so
/// writes keep rescuing their DAGs until the purge is finished.
pub(crate) struct RunGuard {
    pub shared: SharedRef,
}

impl Drop for RunGuard {
    fn drop(&mut self) {
        let mut s = self.shared.lock();
        s.compacting = false;
        s.out_of_sync = false;
        s.progress = None;
        if !s.purge_pending {
            s.txn = None;
        }
    }
}

/// Times a run's phases into its report, one after the other.
pub(crate) struct Laps {
    /// When the current phase began (ms).
    pub since: u64,
}

impl Laps {
    /// Ends `phase` at `now` and starts the next.
    pub fn lap(&mut self, report: &mut CompactionReport, phase: Phase, now: u64) {
        report.phases.push((phase, now.saturating_sub(self.since)));
        self.since = now;
    }
}

pub(crate) fn error_text(e: &crate::Error) -> String {
    alloc::format!("{e}")
}

impl Progress {
    /// An event: `done` of `total` objects in `phase`.
    pub fn new(phase: Phase, done: u64, total: Option<u64>) -> Self {
        Progress { phase, done, total }
    }
}

/// `(phase, ms)` pairs as `{"phase": "mark", "ms": 12}` objects.
mod phase_times {
    use alloc::vec::Vec;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Phase;

    #[derive(Serialize, Deserialize)]
    struct PhaseTime {
        phase: Phase,
        ms: u64,
    }

    pub fn serialize<S: Serializer>(v: &[(Phase, u64)], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|&(phase, ms)| PhaseTime { phase, ms }))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<(Phase, u64)>, D::Error> {
        Ok(Vec::<PhaseTime>::deserialize(d)?.into_iter().map(|t| (t.phase, t.ms)).collect())
    }
}
