//! `Kv` wrappers for the suites: backends that give up the thread where a test needs the
//! executor to switch, one that logs the blocks a store deletes, and one that runs a hook at a
//! chosen write.

use splitstore_core::{
    kv::{Capabilities, Kv, Space, SpaceEstimate, SpaceStats, WriteBatch},
    mem::YieldOnce,
    KvError,
};

use crate::liveness::Events;

/// Implements [`Kv`] for a wrapper `$ty<K>` over its field `$field`: every call is passed
/// through, after `call` (the data calls and `flush`/`reclaim`) or `info` (`stats`,
/// `estimate`, `footprint`), `write` is the wrapper's own, and `caps`, if given, turns the
/// wrapped backend's capabilities into the wrapper's. One definition, so that no
/// wrapper forgets a call (a `reclaim` not passed on is a reclaim that never runs).
macro_rules! kv_wrapper {
    (
        $ty:ident . $field:tt,
        call: |$c:ident| $call:block,
        info: |$i:ident| $info:block,
        write: |$w:ident, $batch:ident| $write:block
        $(, caps: |$cw:ident, $caps:ident| $capsel:block)? $(,)?
    ) => {
        #[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
        #[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
        impl<K: Kv> Kv for $ty<K> {
            async fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
                let $c = self;
                $call;
                self.$field.get(space, key).await
            }
            async fn get_many(&self, space: Space, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
                let $c = self;
                $call;
                self.$field.get_many(space, keys).await
            }
            async fn has(&self, space: Space, key: &[u8]) -> Result<bool, KvError> {
                let $c = self;
                $call;
                self.$field.has(space, key).await
            }
            async fn write(&self, $batch: WriteBatch) -> Result<(), KvError> {
                let $w = self;
                $write
            }
            async fn scan_keys(
                &self,
                space: Space,
                after: Option<&[u8]>,
                limit: usize,
            ) -> Result<Vec<Vec<u8>>, KvError> {
                let $c = self;
                $call;
                self.$field.scan_keys(space, after, limit).await
            }
            async fn scan(
                &self,
                space: Space,
                after: Option<&[u8]>,
                limit: usize,
            ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, KvError> {
                let $c = self;
                $call;
                self.$field.scan(space, after, limit).await
            }
            async fn flush(&self) -> Result<(), KvError> {
                let $c = self;
                $call;
                self.$field.flush().await
            }
            async fn reclaim(&self) -> Result<(), KvError> {
                let $c = self;
                $call;
                self.$field.reclaim().await
            }
            async fn stats(&self, space: Space) -> Result<SpaceStats, KvError> {
                let $i = self;
                $info;
                self.$field.stats(space).await
            }
            async fn estimate(&self, space: Space) -> Result<Option<SpaceEstimate>, KvError> {
                let $i = self;
                $info;
                self.$field.estimate(space).await
            }
            async fn footprint(&self) -> Result<Option<u64>, KvError> {
                let $i = self;
                $info;
                self.$field.footprint().await
            }
            fn capabilities(&self) -> Capabilities {
                let caps = self.$field.capabilities();
                $(let ($cw, $caps) = (self, caps); let caps = $capsel;)?
                caps
            }
        }
    };
}
pub(crate) use kv_wrapper;

/// Where a [`SteppedWritesKv`] gives up the thread during a write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteSteps {
    /// Once, after applying the write and before returning: the write is applied before its
    /// caller learns it completed, and others run between the two.
    AfterApplying,
    /// Once per entry of the batch but one, before applying it: a large write costs as many
    /// scheduling steps as it has entries.
    PerEntry,
    /// Never: a write is applied and returns in one step.
    Never,
}

/// A backend whose writes give up the thread as its [`WriteSteps`] say; every other call is
/// passed through (wrap it in [`YieldKv`] to switch before every call as well).
#[derive(Clone, Debug)]
pub struct SteppedWritesKv<K>(pub K, pub WriteSteps);

kv_wrapper!(SteppedWritesKv.0, call: |_w| {}, info: |_w| {}, write: |w, batch| {
    match w.1 {
        WriteSteps::AfterApplying => {
            let applied = w.0.write(batch).await;
            YieldOnce::default().await;
            applied
        }
        WriteSteps::PerEntry => {
            for _ in 1..batch.len() {
                YieldOnce::default().await;
            }
            w.0.write(batch).await
        }
        WriteSteps::Never => w.0.write(batch).await,
    }
});

/// A backend that gives up the thread before every call, so the executor can switch there.
#[derive(Clone, Debug)]
pub struct YieldKv<K>(pub K);

kv_wrapper!(YieldKv.0, call: |_w| { YieldOnce::default().await }, info: |_w| {}, write: |w, batch| {
    YieldOnce::default().await;
    w.0.write(batch).await
});

/// A backend that asks walks for reads of `.1` blocks at a time
/// ([`Capabilities::read_batch`]); every call is passed through.
#[derive(Clone, Debug)]
pub struct ReadBatchKv<K>(pub K, pub usize);

kv_wrapper!(
    ReadBatchKv.0,
    call: |_w| {},
    info: |_w| {},
    write: |w, batch| {
        let inner = &w.0;
        inner.write(batch).await
    },
    caps: |w, caps| { Capabilities { read_batch: w.1, ..caps } },
);

/// A backend that logs every block a write deletes (the compaction's purges and recovery's)
/// on an [`Events`] clock as the write is issued, so a test can tell a block the store
/// deleted from one that was never written or that a crash lost, and order the deletion
/// against the foreground's touches. Wrap it outside any wrapper that gives up the thread:
/// the purge issues its write in the same step as it releases its lock, and the log must
/// not fall after steps the foreground took meanwhile.
#[derive(Clone, Debug)]
pub struct DeletesKv<K> {
    /// The wrapped backend.
    pub inner: K,
    /// The clock and log shared with the test.
    pub events: Events,
}

impl<K> DeletesKv<K> {
    /// Wraps `inner`, logging on `events`.
    pub fn new(inner: K, events: Events) -> Self {
        Self { inner, events }
    }
}

kv_wrapper!(DeletesKv.inner, call: |_w| {}, info: |_w| {}, write: |w, batch| {
    let deleted = batch.deleted_keys(Space::Blocks);
    if !deleted.is_empty() {
        w.events.deleting(deleted);
    }
    w.inner.write(batch).await
});

/// A backend whose writes of blocks take `write_ms` milliseconds of a [`ManualClock`] each
/// and whose other calls (gets, scans, flushes, reclaims; not the size queries) take
/// `read_ms` (the clock advances as the call is issued), so a compaction's phases have a cost a test can measure against the
/// time they took, and the foreground's calls a duration the store sees. Clones share
/// `read_ms`, which a test may change at any time.
///
/// [`ManualClock`]: splitstore_core::mem::ManualClock
#[derive(Clone, Debug)]
pub struct SlowKv<K> {
    /// The backend.
    pub inner: K,
    /// The clock the calls advance.
    pub clock: splitstore_core::mem::ManualClock,
    /// Milliseconds per write of blocks.
    pub write_ms: u64,
    /// Milliseconds per call other than a write or a size query.
    pub read_ms: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

kv_wrapper!(SlowKv.inner, call: |c| {
    c.clock.advance(c.read_ms.load(std::sync::atomic::Ordering::SeqCst));
}, info: |_w| {}, write: |w, batch| {
    if batch.ops().iter().any(|op| op.space() == Space::Blocks) {
        w.clock.advance(w.write_ms);
    }
    YieldOnce::default().await;
    w.inner.write(batch).await
});

/// What a [`HookedWritesKv`] runs, and before which of its writes.
type WriteHook = (u64, Box<dyn FnOnce() + Send>);

/// A backend that runs a hook just before its `n`-th write from now is passed on: a fault
/// outside the store (a server of the service behind it killed) at a chosen moment of a
/// compaction. Clones share the hook.
#[derive(Clone)]
pub struct HookedWritesKv<K> {
    /// The backend.
    pub inner: K,
    hook: std::sync::Arc<std::sync::Mutex<Option<WriteHook>>>,
    fired: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl<K> HookedWritesKv<K> {
    /// Wraps `inner`, with no hook.
    pub fn new(inner: K) -> Self {
        Self { inner, hook: Default::default(), fired: Default::default() }
    }

    /// Runs `hook` before the `n`-th write from now (1: the next).
    pub fn before_write(&self, n: u64, hook: impl FnOnce() + Send + 'static) {
        *self.hook.lock().expect("hook") = Some((n, Box::new(hook)));
        self.fired.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// Whether the hook has run.
    pub fn fired(&self) -> bool {
        self.fired.load(std::sync::atomic::Ordering::SeqCst)
    }
}

kv_wrapper!(HookedWritesKv.inner, call: |_w| {}, info: |_w| {}, write: |w, batch| {
    let due = {
        let mut slot = w.hook.lock().expect("hook");
        match slot.as_mut() {
            Some((n, _)) if *n > 1 => {
                *n -= 1;
                None
            }
            Some(_) => slot.take().map(|(_, hook)| hook),
            None => None,
        }
    };
    if let Some(hook) = due {
        hook();
        w.fired.store(true, std::sync::atomic::Ordering::SeqCst);
    }
    w.inner.write(batch).await
});

/// What a [`GatedDeletesKv`] holds: the first write that deletes blocks, until opened.
#[derive(Debug, Default)]
struct GateState {
    /// The held write's deleted block keys, while it waits.
    held: Option<Vec<Vec<u8>>>,
    /// A write that deletes blocks has been held (later ones pass).
    used: bool,
    open: bool,
}

/// The gate of a [`GatedDeletesKv`], shared by its clones and the test.
#[derive(Clone, Debug, Default)]
pub struct Gate(std::sync::Arc<std::sync::Mutex<GateState>>);

impl Gate {
    /// The block keys the held write deletes, while it is held.
    pub fn held(&self) -> Option<Vec<Vec<u8>>> {
        self.0.lock().expect("gate").held.clone()
    }

    /// Lets the held write (and every later one) through.
    pub fn open(&self) {
        self.0.lock().expect("gate").open = true;
    }
}

/// A backend that holds the first write deleting blocks (a compaction's first purge batch)
/// until the test opens its [`Gate`]: a deletion in flight for as long as the test needs.
/// The held write is pending; futures waiting on it must be polled again once it is open
/// (as [`crate::drive`] does).
#[derive(Clone, Debug)]
pub struct GatedDeletesKv<K> {
    /// The wrapped backend.
    pub inner: K,
    /// The gate shared with the test.
    pub gate: Gate,
}

kv_wrapper!(GatedDeletesKv.inner, call: |_w| {}, info: |_w| {}, write: |w, batch| {
    let deleted = batch.deleted_keys(Space::Blocks);
    let hold = {
        let mut g = w.gate.0.lock().expect("gate");
        let hold = !deleted.is_empty() && !g.used && !g.open;
        if hold {
            g.used = true;
            g.held = Some(deleted);
        }
        hold
    };
    if hold {
        std::future::poll_fn(|_| {
            if w.gate.0.lock().expect("gate").open {
                std::task::Poll::Ready(())
            } else {
                std::task::Poll::Pending
            }
        })
        .await;
        w.gate.0.lock().expect("gate").held = None;
    }
    w.inner.write(batch).await
});
