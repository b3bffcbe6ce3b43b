//! Holds: operations on chosen files that wait, on their filesystem thread, until the test
//! releases them, so a test can stop a process exactly inside a write or an fsync.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The operation a hold stops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Held {
    /// A write as [`crate::PowerFs::fail_writes`] counts them, before it is applied.
    Writes,
    /// An `fsync` or `fdatasync`, before it makes anything durable.
    Fsyncs,
}

/// Where held operations wait.
#[derive(Default)]
pub(crate) struct Gate {
    state: Mutex<GateState>,
    changed: Condvar,
}

#[derive(Default)]
struct GateState {
    released: bool,
    /// Operations that have arrived at the gate since the hold began (waiting or let through).
    arrived: usize,
}

impl Gate {
    /// Blocks the calling filesystem thread until the gate is released.
    pub(crate) fn pass(&self) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.arrived += 1;
        self.changed.notify_all();
        while !st.released {
            st = self.changed.wait(st).unwrap_or_else(PoisonError::into_inner);
        }
    }

    pub(crate) fn release(&self) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).released = true;
        self.changed.notify_all();
    }

    /// Waits until `n` operations have arrived, or `timeout` passed; true if they did.
    pub(crate) fn wait_arrived(&self, n: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while st.arrived < n {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { return false };
            st = self.changed.wait_timeout(st, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        true
    }
}

/// A hold rule as the filesystem keeps it.
pub(crate) struct HoldRule {
    pub(crate) what: Held,
    pub(crate) pred: Box<dyn Fn(&Path) -> bool + Send + Sync>,
    pub(crate) gate: Arc<Gate>,
}
