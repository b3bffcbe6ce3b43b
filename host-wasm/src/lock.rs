//! A Web Lock (`navigator.locks`) held for as long as a store is open, so two tabs (or two
//! opens in one tab) never write or compact the same database at once.
//!
//! The lock is held by a promise the lock callback returns; [`WebLock`] owns that promise's
//! `resolve` function and calls it on drop. The guard exists before the first await, so a
//! dropped `acquire` future releases a lock that is granted later, instead of leaking it.

use js_sys::{Function, Promise, Reflect};
use splitstore_core::KvError;
use wasm_bindgen::{prelude::wasm_bindgen, prelude::Closure, JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use crate::js::{kv_error_js, object};

#[wasm_bindgen]
extern "C" {
    /// The `LockManager` interface (`navigator.locks`).
    type LockManager;

    #[wasm_bindgen(method, catch, js_name = request)]
    fn request(this: &LockManager, name: &str, options: &JsValue, callback: &JsValue) -> Result<Promise, JsValue>;

    /// A `Promise`, for `catch` with a plain JS function.
    type AnyPromise;

    #[wasm_bindgen(method, js_name = catch)]
    fn catch_fn(this: &AnyPromise, on_rejected: &Function) -> JsValue;
}

/// What to do when another holder has the lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LockPolicy {
    /// Fail at once with [`KvError::InUse`].
    #[default]
    Fail,
    /// Wait until the holder releases it.
    Wait,
    /// Take no lock (tests that deliberately open one database twice).
    Skip,
}

/// An exclusive Web Lock, released on drop.
#[derive(Debug)]
pub struct WebLock {
    name: String,
    release: Function,
    /// The `locks.request` promise: settles once the lock is released.
    released: Option<Promise>,
    /// Registration with the panic hook, which releases every held lock.
    hook_id: u64,
}

impl WebLock {
    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Takes the exclusive lock `name`.
    ///
    /// Returns `Ok(None)` when the browser has no Web Locks (an insecure context): the store
    /// then works without cross-tab exclusion.
    pub async fn acquire(name: &str, policy: LockPolicy) -> Result<Option<WebLock>, KvError> {
        if policy == LockPolicy::Skip {
            return Ok(None);
        }
        let Some(locks) = lock_manager() else {
            web_sys::console::warn_1(
                &"splitstore: navigator.locks is unavailable; two tabs could open one store".into(),
            );
            return Ok(None);
        };

        let mut release = None;
        let held = Promise::new(&mut |resolve, _| release = Some(resolve));
        let mut fns = None;
        let granted = Promise::new(&mut |resolve, reject| fns = Some((resolve, reject)));
        let (Some(release), Some((grant, fail))) = (release, fns) else {
            return Err(KvError::Unavailable { detail: "Promise executor did not run".into() });
        };
        // From here on, dropping the guard releases the lock whenever it is granted.
        let hook_id = crate::guard::register_lock(&release);
        let mut guard = WebLock { name: name.to_owned(), release, released: None, hook_id };

        let callback = Closure::once_into_js(move |lock: JsValue| -> JsValue {
            let got = !(lock.is_null() || lock.is_undefined());
            let _ = grant.call1(&JsValue::UNDEFINED, &JsValue::from_bool(got));
            if got {
                held.into()
            } else {
                JsValue::UNDEFINED
            }
        });
        let options = object(&[("ifAvailable", JsValue::from_bool(policy == LockPolicy::Fail))]);
        let pending = locks.request(name, &options, &callback).map_err(|e| kv_error_js("lock request", &e))?;
        // A request that fails outright never calls the callback; surface its error instead.
        let _ = pending.unchecked_ref::<AnyPromise>().catch_fn(&fail);
        guard.released = Some(pending);

        let got = JsFuture::from(granted).await.map_err(|e| kv_error_js("lock request", &e))?;
        if got.as_bool() == Some(true) {
            Ok(Some(guard))
        } else {
            Err(KvError::InUse {
                detail: format!("{name} is held by another tab or an open store on this page; close it first"),
            })
        }
    }
}

impl WebLock {
    /// Releases the lock and waits until the browser has let it go, so an `acquire` that
    /// follows finds it free. (Dropping releases too, but the release completes later.)
    pub async fn release(mut self) {
        let _ = self.release.call0(&JsValue::UNDEFINED);
        crate::guard::forget_lock(self.hook_id);
        if let Some(p) = self.released.take() {
            let _ = JsFuture::from(p).await;
        }
    }
}

impl Drop for WebLock {
    fn drop(&mut self) {
        let _ = self.release.call0(&JsValue::UNDEFINED);
        crate::guard::forget_lock(self.hook_id);
    }
}

fn lock_manager() -> Option<LockManager> {
    let navigator = Reflect::get(&js_sys::global(), &"navigator".into()).ok()?;
    if navigator.is_undefined() {
        return None;
    }
    let locks = Reflect::get(&navigator, &"locks".into()).ok()?;
    if locks.is_undefined() || locks.is_null() {
        return None;
    }
    Some(locks.unchecked_into())
}
