//! The store's transaction lock: every read and write of blocks holds it shared, and each
//! purge batch's decision (and the entry to the critical section) holds it exclusively, so a
//! write's marks and a purge's liveness check never interleave.
//!
//! It is `async_lock`'s `RwLock`, which stops admitting readers while a writer waits, plus a
//! count of the callers waiting for a shared hold. A release wakes those callers, but a
//! writer that asks again within microseconds (the purge, batch after batch) would take the
//! lock before they run; [`TxnLock::readers_waiting`] lets such a writer step aside until they
//! hold it, so a caller waits out at most the one exclusive hold in progress when it arrived.

use core::sync::atomic::{AtomicUsize, Ordering};

use async_lock::{RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The transaction lock (see the [module](self)).
#[derive(Debug, Default)]
pub(crate) struct TxnLock {
    lock: RwLock<()>,
    /// Callers between failing to take the lock shared at once and taking it.
    waiting: AtomicUsize,
}

/// Counts one waiting caller while alive (also when its future is dropped unfinished).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn enter(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl TxnLock {
    /// A shared hold, if one can be taken without waiting.
    pub(crate) fn try_read(&self) -> Option<RwLockReadGuard<'_, ()>> {
        self.lock.try_read()
    }

    /// A shared hold.
    pub(crate) async fn read(&self) -> RwLockReadGuard<'_, ()> {
        if let Some(g) = self.lock.try_read() {
            return g;
        }
        let _waiting = Waiting::enter(&self.waiting);
        self.lock.read().await
    }

    /// An exclusive hold.
    pub(crate) async fn write(&self) -> RwLockWriteGuard<'_, ()> {
        self.lock.write().await
    }

    /// True while some caller waits for a shared hold.
    pub(crate) fn readers_waiting(&self) -> bool {
        self.waiting.load(Ordering::SeqCst) > 0
    }
}

#[cfg(test)]
mod tests {
    use alloc::boxed::Box;

    use futures::{executor::block_on, FutureExt};

    use super::*;

    #[test]
    fn a_reader_that_cannot_enter_counts_as_waiting_until_it_enters_or_gives_up() {
        let l = TxnLock::default();
        let w = block_on(l.write());
        let mut r = Box::pin(l.read());
        assert!(r.as_mut().now_or_never().is_none(), "a reader entered beside an exclusive hold");
        assert!(l.readers_waiting());
        drop(w);
        let g = block_on(r);
        assert!(!l.readers_waiting());
        drop(g);

        let w = block_on(l.write());
        let mut r = Box::pin(l.read());
        assert!(r.as_mut().now_or_never().is_none());
        assert!(l.readers_waiting());
        drop(r);
        assert!(!l.readers_waiting(), "a reader given up on still counts");
        drop(w);
    }

    #[test]
    fn a_reader_that_enters_at_once_never_counts() {
        let l = TxnLock::default();
        let a = block_on(l.read());
        assert!(!l.readers_waiting());
        let b = block_on(l.read());
        assert!(!l.readers_waiting());
        drop((a, b));
    }
}
