//! [`SplitStore`]: the hot/cold block store and its public API.
//!
//! Reads try hot, then cold. Writes go to hot. While a compaction's transaction is open every
//! block touched is remembered; in its critical section the mark set decides what exists.

mod api;
mod delete;
mod head;
mod list;
mod pins;
mod reify;
mod report;
pub(crate) mod state;
mod txn_lock;

use alloc::{boxed::Box, sync::Arc, vec::Vec};

use crate::sync::Mutex;
use async_lock::Mutex as AsyncMutex;
use cid::Cid;

pub use self::head::HeadOutcome;
pub use self::list::{BlockPage, ListCursor};
pub use self::reify::{HotView, ReifyReport};
pub use self::report::{CheckReport, Counts, HeldMemory, Info};
use self::state::{Shared, SharedRef, Written};
use self::txn_lock::TxnLock;
use crate::{
    clock::Clock,
    config::Config,
    error::{Error, KvError},
    graph::GraphBuilder,
    hot_keys::HotKeys,
    kv::Kv,
    markset::MarkSetKind,
    metrics::Counters,
    send::MaybeSendSync,
};

/// Blocks per atomic batch when a blockstore interface's bulk write is split (`put_many_keyed`
/// of the `fvm` and `blockstore` features).
pub const PUT_MANY_CHUNK: usize = 1024;

/// Tries of the transaction lock, spinning, before an API call parks to wait for it (a few
/// hundred microseconds).
#[cfg(not(target_arch = "wasm32"))]
const SHARED_SPINS: u32 = 4096;

/// An API call's shared hold of the transaction lock ([`SplitStore::call_hold`]); dropping it
/// releases the lock and counts the call.
pub(crate) struct CallHold<'a, K: Kv, C: Clock> {
    store: &'a SplitStore<K, C>,
    /// When the call asked for the lock (store clock, ms).
    start: u64,
    _shared: async_lock::RwLockReadGuard<'a, ()>,
}

impl<K: Kv, C: Clock> Drop for CallHold<'_, K, C> {
    fn drop(&mut self) {
        let s = self.store;
        Counters::add(&s.counters.calls, 1);
        if s.clock.now_millis().saturating_sub(self.start) >= s.config.pace_slow_call_ms {
            Counters::add(&s.counters.slow_calls, 1);
        }
    }
}

/// Supplies CIDs that must stay hot through every compaction (e.g. a mempool's messages).
pub trait Protector: MaybeSendSync {
    /// The CIDs to protect now; called at the start of each compaction.
    fn protected(&self) -> Vec<Cid>;
}

/// A hot/cold block store with online compaction. See the crate docs and `docs/design.md`.
///
/// Shareable: every method takes `&self`; on native targets the store is `Send + Sync` and
/// its futures are `Send`, so a host can run a compaction on one thread while others read
/// and write.
pub struct SplitStore<K: Kv, C: Clock> {
    pub(crate) hot: K,
    pub(crate) cold: K,
    pub(crate) clock: C,
    pub(crate) config: Config,
    pub(crate) markset_kind: MarkSetKind,
    pub(crate) shared: SharedRef,
    /// Readers and writers of blocks hold it shared; each purge batch holds it exclusively
    /// while it decides what to delete, so a write's marks and a purge's liveness check never
    /// interleave.
    pub(crate) txn_lock: TxnLock,
    /// Held by the purge from a batch's decision until its write of hot deletions has
    /// returned; a writer of a block in that batch ([`crate::live`]'s `purging`) waits for it.
    pub(crate) purge_write: AsyncMutex<()>,
    /// Held through each head change, so head changes apply one at a time and the durable
    /// head record and the head in memory always name the same tipset; an import holds it
    /// from its head-policy verdict to the change.
    pub(crate) head_lock: AsyncMutex<()>,
    /// Held through each `protect` / `unprotect`, so pin records and the pins in memory change
    /// in the same order.
    pub(crate) pin_lock: AsyncMutex<()>,
    /// Held by the reify drain ([`SplitStore::reify_pending`]): one at a time.
    pub(crate) reify_lock: AsyncMutex<()>,
    pub(crate) protectors: Mutex<Vec<Box<dyn Protector>>>,
    /// Running counters ([`crate::metrics`]).
    pub(crate) counters: Counters,
    /// The blocks written since the last chain walk took them, with their links ([`Written`]).
    pub(crate) written: Written,
    /// The hot key list (`crate::hot_keys`): `None` where none is kept, or until the next
    /// collect starts one.
    pub(crate) hot_keys: Mutex<Option<HotKeys>>,
}

impl<K: Kv, C: Clock> core::fmt::Debug for SplitStore<K, C> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SplitStore").field("config", &self.config).finish_non_exhaustive()
    }
}

impl<K: Kv, C: Clock> SplitStore<K, C> {
    /// Opens a store over `hot` and `cold`, finishing any interrupted compaction first.
    ///
    /// Nothing is served before recovery completes: a purge that was under way when the
    /// process died is replayed from the durable dead list, and an unfinished compaction that
    /// had not yet started deleting is discarded.
    pub async fn open(hot: K, cold: K, clock: C, config: Config) -> Result<Self, Error> {
        Self::open_with(hot, cold, clock, config, MarkSetKind::default()).await
    }

    /// [`SplitStore::open`] with a chosen mark-set implementation.
    pub async fn open_with(
        hot: K,
        cold: K,
        clock: C,
        config: Config,
        markset_kind: MarkSetKind,
    ) -> Result<Self, Error> {
        config.validate()?;
        let written = config.keeps_graph().then(|| GraphBuilder::new(config.kept_graph_bytes, None));
        let store = SplitStore {
            hot,
            cold,
            clock,
            config,
            markset_kind,
            shared: Arc::new(Mutex::new(Shared::default())),
            txn_lock: TxnLock::default(),
            purge_write: AsyncMutex::new(()),
            head_lock: AsyncMutex::new(()),
            pin_lock: AsyncMutex::new(()),
            reify_lock: AsyncMutex::new(()),
            protectors: Mutex::new(Vec::new()),
            counters: Counters::default(),
            written: Mutex::new(written),
            hot_keys: Mutex::new(None),
        };
        store.load_meta().await?;
        store.recover().await?;
        store.apply_deletes().await?;
        Ok(store)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The hot backend.
    pub fn hot(&self) -> &K {
        &self.hot
    }

    /// The cold backend.
    pub fn cold(&self) -> &K {
        &self.cold
    }

    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }

    /// True while a compaction or a cold prune is running.
    pub fn is_compacting(&self) -> bool {
        self.shared.lock().compacting
    }

    /// What recovery did when the store was opened, if it had anything to do (also in
    /// [`SplitStore::info`]).
    pub fn recovery(&self) -> Option<crate::RecoveryReport> {
        self.shared.lock().recovery.clone()
    }

    /// Registers a protector, consulted at the start of every compaction.
    pub fn add_protector(&self, p: Box<dyn Protector>) {
        self.protectors.lock().push(p);
    }

    /// Takes the transaction lock shared for an API call, counting the wait if there is one
    /// ([`crate::Metrics::lock_waits`]).
    pub(crate) async fn shared_hold(&self) -> async_lock::RwLockReadGuard<'_, ()> {
        if let Some(g) = self.txn_lock.try_read() {
            return g;
        }
        // Where the exclusive holder runs on another thread, its hold (a purge batch's
        // decision) is usually over within microseconds: spin that long before parking, since
        // a parked thread's wakeup costs milliseconds on a busy machine. Not on a single
        // thread, where the holder cannot run while this spins.
        #[cfg(not(target_arch = "wasm32"))]
        for _ in 0..SHARED_SPINS {
            core::hint::spin_loop();
            if let Some(g) = self.txn_lock.try_read() {
                return g;
            }
        }
        let start = self.clock.now_millis();
        let g = self.txn_lock.read().await;
        self.waited_since(start);
        g
    }

    /// [`SplitStore::shared_hold`] for an API call, timed from here to the hold's drop: counted
    /// in [`crate::Metrics::calls`], and in [`crate::Metrics::slow_calls`] when it took
    /// [`Config::pace_slow_call_ms`] or longer (what the purge's pacing watches).
    pub(crate) async fn call_hold(&self) -> CallHold<'_, K, C> {
        let start = self.clock.now_millis();
        let _shared = self.shared_hold().await;
        CallHold { store: self, start, _shared }
    }

    /// Counts one API call's wait on a compaction that began at `start` (store clock, ms).
    pub(crate) fn waited_since(&self, start: u64) {
        Counters::add(&self.counters.lock_waits, 1);
        Counters::add(&self.counters.lock_wait_ms, self.clock.now_millis().saturating_sub(start));
    }

    /// Fails when the store is closed or poisoned.
    pub(crate) fn usable(&self) -> Result<(), Error> {
        let s = self.shared.lock();
        if s.poisoned {
            Err(Error::Poisoned)
        } else if s.closing {
            Err(Error::Closed)
        } else {
            Ok(())
        }
    }

    /// Maps a hot-store error, poisoning the store when the backend crashed.
    pub(crate) fn hot_err(&self, e: KvError) -> Error {
        if matches!(e, KvError::Crashed) {
            self.shared.lock().poisoned = true;
        }
        Error::hot(e)
    }

    /// Maps a cold-store error, poisoning the store when the backend crashed.
    pub(crate) fn cold_err(&self, e: KvError) -> Error {
        if matches!(e, KvError::Crashed) {
            self.shared.lock().poisoned = true;
        }
        Error::cold(e)
    }

    /// Stops any running compaction at its next yield, waits for it, and flushes both stores.
    /// An interrupted purge is finished by the next [`SplitStore::open`].
    pub async fn close(&self) -> Result<(), Error> {
        self.shared.lock().closing = true;
        while self.shared.lock().compacting {
            self.clock.sleep(5).await;
        }
        if self.shared.lock().poisoned {
            return Ok(());
        }
        self.hot.flush().await.map_err(|e| self.hot_err(e))?;
        self.cold.flush().await.map_err(|e| self.cold_err(e))?;
        Ok(())
    }
}

#[cfg(all(test, not(target_arch = "wasm32")))]
mod send_tests {
    use super::*;
    use crate::{
        compact::NoProgress,
        mem::{ManualClock, MemKv},
    };

    fn require_send<T: Send>(_: &T) {}

    /// The engine's futures are `Send` on native targets, so a host can run them on any thread.
    #[test]
    fn futures_are_send() {
        let store: Option<SplitStore<MemKv, ManualClock>> = None;
        if let Some(s) = store.as_ref() {
            let cid = crate::key::dag_cbor_blake2b_cid(b"x");
            require_send(&s.compact(&NoProgress));
            require_send(&s.put(&cid, alloc::vec::Vec::new()));
            require_send(&s.get(&cid));
            require_send(&s.head_change(&[], &[]));
            require_send(&s.check());
            require_send(&s.info());
            require_send(&s.close());
            require_send(&SplitStore::open(MemKv::new(), MemKv::new(), ManualClock::new(0), Config::default()));
        }
        fn send_sync<T: Send + Sync>() {}
        send_sync::<SplitStore<MemKv, ManualClock>>();
    }
}
