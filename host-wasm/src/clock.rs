//! The browser's clock and scheduler for the core.

use std::{cell::Cell, rc::Rc};

use splitstore_core::Clock;

use crate::js;

/// Wall time from `Date.now()`, sleeps on `setTimeout`, and yields that return to the event
/// loop (so rendering and input run between compaction steps).
///
/// Optionally measures the longest stretch between two yields (an upper bound on the longest
/// task the compaction causes, since IndexedDB awaits in between also return to the loop).
#[derive(Clone, Debug, Default)]
pub struct JsClock {
    meter: Option<Rc<GapMeter>>,
}

/// Yield statistics collected by a metered [`JsClock`].
#[derive(Debug, Default)]
pub struct GapMeter {
    last: Cell<Option<f64>>,
    max_gap_ms: Cell<f64>,
    yields: Cell<u64>,
}

impl GapMeter {
    /// The longest time between two consecutive yields, in milliseconds.
    pub fn max_gap_ms(&self) -> f64 {
        self.max_gap_ms.get()
    }

    /// Number of yields so far.
    pub fn yields(&self) -> u64 {
        self.yields.get()
    }

    /// Forgets everything measured so far.
    pub fn reset(&self) {
        self.last.set(None);
        self.max_gap_ms.set(0.0);
        self.yields.set(0);
    }

    fn before_yield(&self) {
        let now = js::perf_now();
        if let Some(last) = self.last.get() {
            self.max_gap_ms.set(self.max_gap_ms.get().max(now - last));
        }
        self.yields.set(self.yields.get() + 1);
    }

    fn after_yield(&self) {
        self.last.set(Some(js::perf_now()));
    }
}

impl JsClock {
    /// A clock without measurement.
    pub fn new() -> Self {
        Self::default()
    }

    /// A clock that records the gaps between yields in the returned meter.
    pub fn metered() -> (Self, Rc<GapMeter>) {
        let meter = Rc::new(GapMeter::default());
        (Self { meter: Some(meter.clone()) }, meter)
    }
}

#[async_trait::async_trait(?Send)]
impl Clock for JsClock {
    fn now_millis(&self) -> u64 {
        js::now_millis()
    }

    async fn sleep(&self, millis: u64) {
        if let Some(m) = &self.meter {
            m.before_yield();
        }
        js::sleep_ms(millis as f64).await;
        if let Some(m) = &self.meter {
            m.after_yield();
        }
    }

    async fn yield_now(&self) {
        if let Some(m) = &self.meter {
            m.before_yield();
        }
        js::yield_to_event_loop().await;
        if let Some(m) = &self.meter {
            m.after_yield();
        }
    }

    /// Web Crypto randomness keys each compaction's mark set.
    fn random_seed(&self) -> u128 {
        js::random_u128()
    }
}
