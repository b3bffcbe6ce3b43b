//! Turning Rust futures into JS Promises that always settle, even when the code panics.
//!
//! `wasm32-unknown-unknown` aborts on panic: no destructor runs and the call traps. The panic
//! hook installed here runs *before* the trap. It logs the panic, rejects the Promise of the
//! API call that was being polled (each call is polled inside a wrapper future that records its
//! `reject` function while it runs), marks the module as failed, closes every IndexedDB
//! connection the module holds, and only then releases the Web Locks this page holds (so
//! other tabs can open the stores). The trapped call may have left Rust state half-updated,
//! so every later call rejects with a clear error instead of touching it. The page itself
//! keeps running.
//!
//! # Nothing of the store runs once the locks are released
//!
//! Other tasks of the module (a compaction running in the background, other calls awaiting
//! IndexedDB) are still scheduled after the trap, and a second tab may take the locks and
//! write. So, once the module has failed:
//!
//! * every task spawned through this module ([`spawn_promise`], [`spawn`]) checks the flag
//!   before each poll and, once it is set, never polls its future again (nor drops it: its
//!   state may be half-updated);
//! * every IndexedDB entry point ([`crate::idb_kv::IdbKv`], the request chains of
//!   `crate::chunked`) refuses before touching the database ([`check_running`]);
//! * every connection is closed before the locks are released: `transaction()` on it throws
//!   from then on, and a transaction it created earlier finishes before any overlapping
//!   transaction another connection creates later starts (IndexedDB orders transactions by
//!   creation), so the second tab sees it as committed (or aborted) before its own work, as
//!   after a crash.

use std::{
    cell::{Cell, RefCell},
    future::Future,
    pin::Pin,
    sync::Once,
    task::{Context, Poll},
};

use js_sys::{Function, Promise};
use splitstore_core::KvError;
use wasm_bindgen::JsValue;
use web_sys::IdbDatabase;

thread_local! {
    /// The `reject` of the API call being polled right now.
    static CURRENT: RefCell<Option<Function>> = const { RefCell::new(None) };
    /// Set by the panic hook; every later call is refused.
    static FAILED: Cell<bool> = const { Cell::new(false) };
    /// Release functions of the Web Locks this module holds, by registration id.
    static LOCKS: RefCell<Vec<(u64, Function)>> = const { RefCell::new(Vec::new()) };
    /// The IndexedDB connections this module holds open, by registration id.
    static CONNECTIONS: RefCell<Vec<(u64, IdbDatabase)>> = const { RefCell::new(Vec::new()) };
    static NEXT_ID: Cell<u64> = const { Cell::new(0) };
}

const FAILED_MESSAGE: &str =
    "splitstore-wasm stopped after an internal error (a panic, logged to the console); reload the page";

/// Installs the panic hook once. Later hooks installed by others still see the panic: the
/// previous hook is called after ours.
pub fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            FAILED.with(|f| f.set(true));
            let message = format!("splitstore-wasm panicked: {info}");
            if let Some(reject) = CURRENT.with(|c| c.borrow_mut().take()) {
                let err = js_sys::Error::new(&message);
                let _ = reject.call1(&JsValue::UNDEFINED, &err);
            }
            // Connections first: once they are closed no store task can start a transaction,
            // and only then may another tab take the locks.
            let connections = CONNECTIONS.with(|c| std::mem::take(&mut *c.borrow_mut()));
            for (_, db) in connections {
                db.close();
            }
            let locks = LOCKS.with(|l| std::mem::take(&mut *l.borrow_mut()));
            for (_, release) in locks {
                let _ = release.call0(&JsValue::UNDEFINED);
            }
            console_error_panic_hook::hook(info);
            previous(info);
        }));
    });
}

/// True once a panic has stopped the module.
pub fn failed() -> bool {
    FAILED.with(Cell::get)
}

/// Refuses IndexedDB work once the module has failed, with [`KvError::Unavailable`].
pub fn check_running() -> Result<(), KvError> {
    if failed() {
        Err(KvError::Unavailable { detail: FAILED_MESSAGE.into() })
    } else {
        Ok(())
    }
}

fn next_id() -> u64 {
    NEXT_ID.with(|n| {
        let id = n.get();
        n.set(id + 1);
        id
    })
}

/// Registers a lock's release function so the panic hook can release it; returns the id
/// for [`forget_lock`].
pub fn register_lock(release: &Function) -> u64 {
    let id = next_id();
    LOCKS.with(|l| l.borrow_mut().push((id, release.clone())));
    id
}

/// Registers an open connection so the panic hook can close it; returns the id for
/// [`forget_connection`].
pub fn register_connection(db: &IdbDatabase) -> u64 {
    let id = next_id();
    CONNECTIONS.with(|c| c.borrow_mut().push((id, db.clone())));
    id
}

/// Forgets a closed connection.
pub fn forget_connection(id: u64) {
    CONNECTIONS.with(|c| c.borrow_mut().retain(|(i, _)| *i != id));
}

/// Forgets a released lock.
pub fn forget_lock(id: u64) {
    LOCKS.with(|l| l.borrow_mut().retain(|(i, _)| *i != id));
}

/// The `Error` every call gets once the module has failed, with `code: "Poisoned"`.
fn failed_error() -> JsValue {
    let e = js_sys::Error::new(FAILED_MESSAGE);
    let _ = js_sys::Reflect::set(&e, &"code".into(), &crate::convert::ErrorCode::Poisoned.as_str().into());
    e.into()
}

/// Runs `fut` on the page's executor and returns a Promise of its result. The Promise
/// rejects if the future fails, and also if it panics (see the module docs).
pub fn spawn_promise<F>(fut: F) -> Promise
where
    F: Future<Output = Result<JsValue, JsValue>> + 'static,
{
    install_panic_hook();
    if failed() {
        return Promise::reject(&failed_error());
    }
    let mut fns = None;
    let promise = Promise::new(&mut |resolve, reject| fns = Some((resolve, reject)));
    let Some((resolve, reject)) = fns else {
        return Promise::reject(&js_sys::Error::new("the Promise executor did not run").into());
    };
    wasm_bindgen_futures::spawn_local(Guarded { fut: Some(Box::pin(fut)), resolve, reject });
    promise
}

/// Runs `fut` on the page's executor as a background task that is never polled again once
/// the module has failed.
pub fn spawn<F>(fut: F)
where
    F: Future<Output = ()> + 'static,
{
    install_panic_hook();
    if failed() {
        return;
    }
    wasm_bindgen_futures::spawn_local(Stoppable { fut: Some(Box::pin(fut)) });
}

/// Gives up a future without dropping it: after a panic its state may be half-updated (a
/// lock flag left set, a borrow never returned), so none of its destructors may run.
fn abandon<T: ?Sized>(fut: Option<Pin<Box<T>>>) {
    if let Some(fut) = fut {
        std::mem::forget(fut);
    }
}

/// A background task, polled only while the module runs.
struct Stoppable {
    fut: Option<Pin<Box<dyn Future<Output = ()>>>>,
}

impl Future for Stoppable {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if failed() {
            abandon(self.fut.take());
            return Poll::Ready(());
        }
        match self.fut.as_mut() {
            Some(fut) => fut.as_mut().poll(cx),
            None => Poll::Ready(()),
        }
    }
}

/// Refuses work once the module has failed.
pub fn check_usable() -> Result<(), JsValue> {
    if failed() {
        Err(failed_error())
    } else {
        Ok(())
    }
}

/// The future of an API call.
type CallFuture = dyn Future<Output = Result<JsValue, JsValue>>;

/// An API call, polled only while the module runs; once it has failed the call rejects
/// with [`FAILED_MESSAGE`] at its next wake-up.
struct Guarded {
    fut: Option<Pin<Box<CallFuture>>>,
    resolve: Function,
    reject: Function,
}

impl Future for Guarded {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if failed() {
            abandon(self.fut.take());
            let _ = self.reject.call1(&JsValue::UNDEFINED, &failed_error());
            return Poll::Ready(());
        }
        let reject = self.reject.clone();
        let Some(fut) = self.fut.as_mut() else { return Poll::Ready(()) };
        let previous = CURRENT.with(|c| c.borrow_mut().replace(reject));
        let out = fut.as_mut().poll(cx);
        CURRENT.with(|c| *c.borrow_mut() = previous);
        match out {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(v)) => {
                let _ = self.resolve.call1(&JsValue::UNDEFINED, &v);
                Poll::Ready(())
            }
            Poll::Ready(Err(e)) => {
                let _ = self.reject.call1(&JsValue::UNDEFINED, &e);
                Poll::Ready(())
            }
        }
    }
}
