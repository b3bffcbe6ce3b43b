//! Turning Rust futures into JS Promises that always settle, even when the code panics.
//!
//! `wasm32-unknown-unknown` aborts on panic: no destructor runs and the call traps. The panic
//! hook installed here runs *before* the trap. It logs the panic, rejects the Promise of the
//! API call that was being polled (each call is polled inside a wrapper future that records its
//! `reject` function while it runs), releases the Web Locks this page holds (so other tabs
//! can open the stores), and marks the module as failed: the trapped call may have left
//! Rust state half-updated, so every later call rejects with a clear error instead of
//! touching it. The page itself keeps running.

use std::{
    cell::{Cell, RefCell},
    future::Future,
    pin::Pin,
    sync::Once,
    task::{Context, Poll},
};

use js_sys::{Function, Promise};
use wasm_bindgen::JsValue;

thread_local! {
    /// The `reject` of the API call being polled right now.
    static CURRENT: RefCell<Option<Function>> = const { RefCell::new(None) };
    /// Set by the panic hook; every later call is refused.
    static FAILED: Cell<bool> = const { Cell::new(false) };
    /// Release functions of the Web Locks this module holds, by registration id.
    static LOCKS: RefCell<Vec<(u64, Function)>> = const { RefCell::new(Vec::new()) };
    static NEXT_LOCK: Cell<u64> = const { Cell::new(0) };
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

/// Registers a lock's release function so the panic hook can release it; returns the id
/// for [`forget_lock`].
pub fn register_lock(release: &Function) -> u64 {
    let id = NEXT_LOCK.with(|n| {
        let id = n.get();
        n.set(id + 1);
        id
    });
    LOCKS.with(|l| l.borrow_mut().push((id, release.clone())));
    id
}

/// Forgets a released lock.
pub fn forget_lock(id: u64) {
    LOCKS.with(|l| l.borrow_mut().retain(|(i, _)| *i != id));
}

/// A rejected Promise with a plain `Error`.
pub fn rejected(message: &str) -> Promise {
    Promise::reject(&js_sys::Error::new(message).into())
}

/// Runs `fut` on the page's executor and returns a Promise of its result. The Promise
/// rejects if the future fails, and also if it panics (see the module docs).
pub fn spawn_promise<F>(fut: F) -> Promise
where
    F: Future<Output = Result<JsValue, JsValue>> + 'static,
{
    install_panic_hook();
    if failed() {
        return rejected(FAILED_MESSAGE);
    }
    let mut fns = None;
    let promise = Promise::new(&mut |resolve, reject| fns = Some((resolve, reject)));
    let Some((resolve, reject)) = fns else {
        return rejected("the Promise executor did not run");
    };
    wasm_bindgen_futures::spawn_local(Guarded { fut: Box::pin(fut), resolve, reject });
    promise
}

/// Refuses work once the module has failed.
pub fn check_usable() -> Result<(), JsValue> {
    if failed() {
        Err(js_sys::Error::new(FAILED_MESSAGE).into())
    } else {
        Ok(())
    }
}

struct Guarded {
    fut: Pin<Box<dyn Future<Output = Result<JsValue, JsValue>>>>,
    resolve: Function,
    reject: Function,
}

impl Future for Guarded {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let previous = CURRENT.with(|c| c.borrow_mut().replace(self.reject.clone()));
        let out = self.fut.as_mut().poll(cx);
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
