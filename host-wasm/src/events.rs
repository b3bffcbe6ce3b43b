//! The store's events, dispatched on an `EventTarget` as `CustomEvent`s, so a page need not
//! poll `info()`:
//!
//! | type | `detail` |
//! |---|---|
//! | `recovery` | the `RecoveryReport` of an open that finished or discarded an interrupted compaction |
//! | `compactionstart` | `{ background }`: false for `compact()`, true for one a head change started |
//! | `compactionprogress` | a `CompactionProgress` |
//! | `compactionend` | the `CompactionReport` |
//! | `compactionerror` | the `Error` it failed with (as `compact()` rejects) |
//! | `reifyend` | the `ReifyReport` of a background copy of cold DAGs read in use into hot |
//! | `reifyerror` | the `Error` that copy failed with |
//!
//! Listeners run synchronously inside the dispatch; an exception one throws is reported by
//! the browser and does not reach the store.

use splitstore_core::{CompactionReport, Error, Progress, RecoveryReport, ReifyReport};
use wasm_bindgen::{prelude::wasm_bindgen, JsValue};
use web_sys::{CustomEvent, CustomEventInit, EventTarget};

use crate::convert;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** The `detail` of each event a store dispatches on its `events` target. */
export interface SplitStoreEventMap {
  recovery: CustomEvent<RecoveryReport>;
  compactionstart: CustomEvent<{ background: boolean }>;
  compactionprogress: CustomEvent<CompactionProgress>;
  compactionend: CustomEvent<CompactionReport>;
  compactionerror: CustomEvent<SplitStoreError>;
  reifyend: CustomEvent<ReifyReport>;
  reifyerror: CustomEvent<SplitStoreError>;
}
"#;

/// Where a store's events go.
#[derive(Clone, Debug)]
pub struct Events {
    target: EventTarget,
}

impl Events {
    /// Events dispatched on `target`, or on a new `EventTarget` when it is `None`.
    pub fn new(target: Option<EventTarget>) -> Result<Self, JsValue> {
        let target = match target {
            Some(t) => t,
            None => EventTarget::new()?,
        };
        Ok(Events { target })
    }

    /// The target listeners attach to.
    pub fn target(&self) -> &EventTarget {
        &self.target
    }

    fn dispatch(&self, kind: &str, detail: &JsValue) {
        let init = CustomEventInit::new();
        init.set_detail(detail);
        if let Ok(event) = CustomEvent::new_with_event_init_dict(kind, &init) {
            let _ = self.target.dispatch_event(&event);
        }
    }

    /// An open's recovery finished (only when it had something to do).
    pub fn recovery(&self, report: &RecoveryReport) {
        if let Ok(detail) = convert::to_js(report) {
            self.dispatch("recovery", &detail);
        }
    }

    /// A compaction starts.
    pub fn start(&self, background: bool) {
        self.dispatch("compactionstart", &crate::js::object(&[("background", background.into())]).into());
    }

    /// A compaction reported progress.
    pub fn progress(&self, p: &Progress) {
        if let Ok(detail) = convert::progress(p) {
            self.dispatch("compactionprogress", &detail);
        }
    }

    /// A compaction ended: its report, or the error it failed with.
    pub fn end(&self, outcome: &Result<CompactionReport, Error>) {
        match outcome {
            Ok(report) => {
                if let Ok(detail) = convert::report(report) {
                    self.dispatch("compactionend", &detail);
                }
            }
            Err(e) => self.dispatch("compactionerror", &convert::store_error(e)),
        }
    }

    /// A background reify ended: its report, or the error it failed with.
    pub fn reify_end(&self, outcome: &Result<ReifyReport, Error>) {
        match outcome {
            Ok(report) => {
                if let Ok(detail) = convert::to_js(report) {
                    self.dispatch("reifyend", &detail);
                }
            }
            Err(e) => self.dispatch("reifyerror", &convert::store_error(e)),
        }
    }
}
