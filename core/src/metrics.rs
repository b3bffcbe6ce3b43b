//! Running counters kept by the store, read in constant time.
//!
//! Every counter counts since the store was opened in this process and only grows; a
//! monitoring system computes rates from successive snapshots. Counting is one relaxed atomic
//! add per event (a few instructions under a spin lock on targets without 64-bit atomics):
//! counters never order anything, they only sum.

use serde::{Deserialize, Serialize};

use crate::compact::{CompactionReport, RecoveryReport};

/// A snapshot of the store's counters since it was opened.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
#[serde(rename_all = "camelCase", default)]
#[non_exhaustive]
pub struct Metrics {
    /// Block lookups (`get`, `has`, `get_size`, `view`; identity CIDs excluded).
    pub lookups: u64,
    /// Lookups answered by the hot store.
    pub hot_hits: u64,
    /// Lookups answered by the cold store.
    pub cold_hits: u64,
    /// Lookups that found the block in neither store.
    pub misses: u64,
    /// Bytes returned by reads answered by the hot store.
    pub hot_read_bytes: u64,
    /// Bytes returned by reads answered by the cold store.
    pub cold_read_bytes: u64,
    /// Blocks written (every block of every write that returned, repeats included).
    pub blocks_written: u64,
    /// Bytes of the blocks written.
    pub bytes_written: u64,
    /// Atomic write batches that returned.
    pub write_batches: u64,
    /// Blocks deleted through the API.
    pub blocks_deleted: u64,
    /// Compactions started (including resumed purges).
    pub compactions_started: u64,
    /// Compactions that finished.
    pub compactions_finished: u64,
    /// Compactions that ended in an error (a dropped run counts as neither).
    pub compactions_failed: u64,
    /// Objects marked live, summed over finished compactions.
    pub marked: u64,
    /// Objects listed dead, summed over finished compactions.
    pub dead: u64,
    /// Objects copied to the cold store, summed over finished compactions.
    pub moved: u64,
    /// Objects deleted from the hot store by compactions and recovery.
    pub purged: u64,
    /// Milliseconds spent in finished compactions.
    pub compaction_ms: u64,
    /// Interrupted purges finished by recovery at open.
    pub recoveries: u64,
    /// Cold hits in use queued for reify ([`crate::SplitStore::hot_view`]).
    pub reify_queued: u64,
    /// Cold hits in use not queued because the reify queue was full.
    pub reify_dropped: u64,
    /// Blocks copied from cold into hot by reify.
    pub reified: u64,
    /// Queued DAGs not copied because their cold part exceeded [`crate::Config::reify_limit`].
    pub reify_aborted: u64,
    /// API calls that waited on a compaction: for the store's transaction lock, held
    /// exclusively by a compaction entering its critical section or deciding a purge batch,
    /// or, writing a block a purge batch deletes, for that batch's write. (Natively a call
    /// first spins briefly for the lock; a wait that ends within the spin is not counted.)
    pub lock_waits: u64,
    /// Milliseconds those calls waited, by the store's clock (each wait rounded down to the
    /// millisecond).
    pub lock_wait_ms: u64,
    /// API calls that read or wrote through the store's lock (reads, writes, pins, head
    /// changes, listings), counted when they return or are dropped.
    pub calls: u64,
    /// Of those, calls that took [`crate::Config::pace_slow_call_ms`] or longer by the store's
    /// clock, from asking for the lock to returning: the foreground slowed down, which the
    /// purge's pacing answers with pauses.
    pub slow_calls: u64,
}

/// One counter: an atomic where the target has 64-bit atomics.
#[cfg(target_has_atomic = "64")]
#[derive(Debug, Default)]
pub(crate) struct Counter(core::sync::atomic::AtomicU64);

#[cfg(target_has_atomic = "64")]
impl Counter {
    fn add(&self, n: u64) {
        self.0.fetch_add(n, core::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(core::sync::atomic::Ordering::Relaxed)
    }
}

/// One counter, under a spin lock held for one addition, where 64-bit atomics are missing.
#[cfg(not(target_has_atomic = "64"))]
#[derive(Debug, Default)]
pub(crate) struct Counter(crate::sync::Mutex<u64>);

#[cfg(not(target_has_atomic = "64"))]
impl Counter {
    fn add(&self, n: u64) {
        let mut v = self.0.lock();
        *v = v.wrapping_add(n);
    }

    pub(crate) fn get(&self) -> u64 {
        *self.0.lock()
    }
}

macro_rules! counters {
    ($($field:ident),* $(,)?) => {
        /// The live counters behind [`Metrics`].
        #[derive(Debug, Default)]
        pub(crate) struct Counters {
            $(pub $field: Counter,)*
        }

        impl Counters {
            /// Reads every counter. Each is exact; the set is not one instant (fields read
            /// while others change), which is what a scrape of running counters means.
            pub fn snapshot(&self) -> Metrics {
                Metrics { $($field: self.$field.get(),)* }
            }
        }
    };
}

counters!(
    lookups,
    hot_hits,
    cold_hits,
    misses,
    hot_read_bytes,
    cold_read_bytes,
    blocks_written,
    bytes_written,
    write_batches,
    blocks_deleted,
    compactions_started,
    compactions_finished,
    compactions_failed,
    marked,
    dead,
    moved,
    purged,
    compaction_ms,
    recoveries,
    reify_queued,
    reify_dropped,
    reified,
    reify_aborted,
    lock_waits,
    lock_wait_ms,
    calls,
    slow_calls,
);

/// Where a lookup was answered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Hit {
    Hot,
    Cold,
    Miss,
}

impl Counters {
    /// Adds `n` to `c`.
    pub fn add(c: &Counter, n: u64) {
        c.add(n);
    }

    /// One lookup, answered as `hit` with `bytes` bytes (0 for `has`).
    pub fn lookup(&self, hit: Hit, bytes: usize) {
        Self::add(&self.lookups, 1);
        let bytes = bytes as u64;
        match hit {
            Hit::Hot => {
                Self::add(&self.hot_hits, 1);
                Self::add(&self.hot_read_bytes, bytes);
            }
            Hit::Cold => {
                Self::add(&self.cold_hits, 1);
                Self::add(&self.cold_read_bytes, bytes);
            }
            Hit::Miss => Self::add(&self.misses, 1),
        }
    }

    /// A write batch of `blocks` blocks and `bytes` bytes returned.
    pub fn written(&self, blocks: usize, bytes: u64) {
        Self::add(&self.write_batches, 1);
        Self::add(&self.blocks_written, blocks as u64);
        Self::add(&self.bytes_written, bytes);
    }

    /// API operations completed so far (the calls through the lock, and deletions): a change
    /// between two readings means someone used the store meanwhile.
    pub fn foreground_ops(&self) -> u64 {
        self.calls.get() + self.blocks_deleted.get()
    }

    /// A compaction finished with `r`.
    pub fn compaction_finished(&self, r: &CompactionReport) {
        Self::add(&self.compactions_finished, 1);
        Self::add(&self.marked, r.marked);
        Self::add(&self.dead, r.dead);
        Self::add(&self.moved, r.moved);
        Self::add(&self.purged, r.purged);
        Self::add(&self.compaction_ms, r.total_ms);
    }

    /// Recovery at open did `r`.
    pub fn recovered(&self, r: &RecoveryReport) {
        if r.finished_purge {
            Self::add(&self.recoveries, 1);
        }
        Self::add(&self.purged, r.purged);
    }
}
