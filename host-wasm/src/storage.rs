//! The origin's storage (`navigator.storage`): whether the browser keeps it (without that it
//! may evict every IndexedDB database of the origin under storage pressure), and how much of
//! it is used.
//!
//! `persist()` is exposed to windows only; workers have `persisted()`. Where a function is
//! missing, nothing is asked and the answer is unknown (`None`).

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// `navigator.storage`, when the global object has it.
fn storage_manager() -> Option<JsValue> {
    let navigator = Reflect::get(&js_sys::global(), &"navigator".into()).ok()?;
    if navigator.is_undefined() || navigator.is_null() {
        return None;
    }
    let storage = Reflect::get(&navigator, &"storage".into()).ok()?;
    (!storage.is_undefined() && !storage.is_null()).then_some(storage)
}

/// Calls `navigator.storage[method]()` and returns its Promise, if there is such a method.
fn call(method: &str) -> Option<Promise> {
    let storage = storage_manager()?;
    let f = Reflect::get(&storage, &method.into()).ok()?.dyn_into::<Function>().ok()?;
    f.call0(&storage).ok()?.dyn_into::<Promise>().ok()
}

/// Asks the browser to keep the origin's storage (`navigator.storage.persist()`), without
/// waiting for the answer: a browser may ask the user, who may take any time to reply. The
/// answer is what [`persisted`] reports from then on; a failure is ignored.
pub fn request_persistence() {
    if let Some(p) = call("persist") {
        // Awaited only so that a rejection is handled (else the page reports it as an error).
        crate::guard::spawn(async move {
            let _ = JsFuture::from(p).await;
        });
    }
}

/// Whether the browser keeps the origin's storage under pressure
/// (`navigator.storage.persisted()`), or `None` when it cannot say.
pub async fn persisted() -> Option<bool> {
    JsFuture::from(call("persisted")?).await.ok()?.as_bool()
}

/// What `navigator.storage.estimate()` reports for the origin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Estimate {
    /// Bytes the origin's storage uses (every database of the origin, and other storage).
    pub usage: u64,
    /// The quota the browser reports. Chromium reports a figure that need not be the one it
    /// enforces (a quota set through the DevTools protocol is enforced but not reported).
    pub quota: u64,
}

/// `navigator.storage.estimate()`, or `None` when the browser cannot say.
pub async fn estimate() -> Option<Estimate> {
    let v = JsFuture::from(call("estimate")?).await.ok()?;
    let field = |name: &str| Reflect::get(&v, &name.into()).ok()?.as_f64().filter(|f| f.is_finite() && *f >= 0.0);
    Some(Estimate { usage: field("usage")? as u64, quota: field("quota")? as u64 })
}
