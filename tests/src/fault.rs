//! A fault-injecting [`Kv`] wrapper: every call counts down a counter shared by all wrappers
//! of one "process"; the call that reaches zero, and every call after it, fails with
//! [`KvError::Crashed`] and changes nothing, as if the process died at that instant.

use std::sync::{
    atomic::{AtomicI64, AtomicU64, Ordering},
    Arc,
};

use splitstore_core::{
    kv::{Capabilities, Kv, Space, SpaceEstimate, SpaceStats, WriteBatch},
    KvError,
};

/// The shared countdown of one simulated process.
#[derive(Clone, Debug, Default)]
pub struct Fault {
    remaining: Arc<AtomicI64>,
    ops: Arc<AtomicU64>,
}

impl Fault {
    /// A fuse that never blows.
    pub fn new() -> Self {
        let f = Self::default();
        f.remaining.store(i64::MAX, Ordering::SeqCst);
        f
    }
    /// Blow on the call `k` calls from now (0 = the next call).
    pub fn arm(&self, k: u64) {
        self.remaining.store(k as i64, Ordering::SeqCst);
    }
    /// Never blow.
    pub fn disarm(&self) {
        self.remaining.store(i64::MAX, Ordering::SeqCst);
    }
    /// Calls made through this fuse.
    pub fn ops(&self) -> u64 {
        self.ops.load(Ordering::SeqCst)
    }
    /// Resets the call counter.
    pub fn reset_ops(&self) {
        self.ops.store(0, Ordering::SeqCst);
    }
    /// True once blown.
    pub fn blown(&self) -> bool {
        self.remaining.load(Ordering::SeqCst) < 0
    }
    fn tick(&self) -> Result<(), KvError> {
        self.ops.fetch_add(1, Ordering::SeqCst);
        if self.remaining.fetch_sub(1, Ordering::SeqCst) <= 0 {
            self.remaining.store(-1, Ordering::SeqCst);
            Err(KvError::Crashed)
        } else {
            Ok(())
        }
    }
}

/// A [`Kv`] that fails from the fuse's chosen call on.
#[derive(Clone, Debug)]
pub struct FaultKv<K> {
    /// The wrapped backend.
    pub inner: K,
    /// The shared countdown.
    pub fuse: Fault,
}

impl<K> FaultKv<K> {
    /// Wraps `inner` on `fuse`.
    pub fn new(inner: K, fuse: Fault) -> Self {
        Self { inner, fuse }
    }
}

crate::wrap::kv_wrapper!(FaultKv.inner, call: |w| { w.fuse.tick()? }, info: |w| { w.fuse.tick()? }, write: |w, batch| {
    w.fuse.tick()?;
    w.inner.write(batch).await
});
