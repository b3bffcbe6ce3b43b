//! Issuing many IndexedDB requests in one transaction without one long task.
//!
//! Issuing a request costs the page's thread tens of microseconds (key conversion, structured
//! clone, IPC), so a 4096-operation batch issued in one go is a task of well over 100 ms. A
//! transaction accepts new requests only while it is *active*: in the task that created it
//! and inside its requests' event handlers. So the requests are issued a chunk at a time, each
//! chunk from the `success` handler of the previous chunk's last request, in a JS-owned
//! callback. This never depends on when (or whether) an executor polls the Rust future that
//! started the chain: the chain runs to the end even if that future is dropped, which only
//! means the caller stops waiting for a transaction that commits whole or not at all.

use std::{cell::RefCell, rc::Rc};

use splitstore_core::KvError;
use wasm_bindgen::{prelude::Closure, JsCast};
use web_sys::{IdbRequest, IdbTransaction};

/// Issues the next chunk; returns the chunk's last request while more chunks remain, `None`
/// when everything is issued.
pub type Step = Box<dyn FnMut() -> Result<Option<IdbRequest>, KvError>>;

/// Requests issued per task.
pub const ISSUE_CHUNK: usize = 128;

struct State {
    tx: IdbTransaction,
    step: RefCell<Step>,
    error: RefCell<Option<KvError>>,
}

/// A running chain of chunks over one transaction.
pub struct Chain {
    state: Rc<State>,
}

impl core::fmt::Debug for Chain {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Chain").finish_non_exhaustive()
    }
}

impl Chain {
    /// Runs `step` now (call right after creating `tx`, while it is active) and then from the
    /// success event of each returned request until it returns `None`. A step error aborts
    /// the transaction and is kept for [`Chain::take_error`], as is the refusal of a module that
    /// has failed ([`crate::guard`]).
    pub fn start(tx: &IdbTransaction, step: Step) -> Chain {
        let state = Rc::new(State { tx: tx.clone(), step: RefCell::new(step), error: RefCell::new(None) });
        run(state.clone());
        Chain { state }
    }

    /// The error a step failed with, if one did (the transaction was then aborted).
    pub fn take_error(&self) -> Option<KvError> {
        self.state.error.borrow_mut().take()
    }
}

fn run(state: Rc<State>) {
    // Once the module has failed, no further request is issued: the transaction is aborted
    // and applies nothing.
    let next = match crate::guard::check_running() {
        Ok(()) => (state.step.borrow_mut())(),
        Err(e) => Err(e),
    };
    match next {
        Ok(Some(last)) => {
            let again = state.clone();
            // Called once by whichever event fires; JS owns it until then. On `error` the
            // transaction is aborting: issue nothing more.
            let callback = Closure::once_into_js(move |event: web_sys::Event| {
                if event.type_() == "success" {
                    run(again);
                }
            });
            last.set_onsuccess(Some(callback.unchecked_ref()));
            last.set_onerror(Some(callback.unchecked_ref()));
        }
        Ok(None) => {}
        Err(e) => {
            *state.error.borrow_mut() = Some(e);
            let _ = state.tx.abort();
        }
    }
}
