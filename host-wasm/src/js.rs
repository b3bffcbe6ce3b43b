//! Small bridges between browser callbacks and Rust futures, and typed JS errors.
//!
//! Every wait goes through a JS `Promise` whose `resolve`/`reject` functions are installed
//! directly as the event handlers: no Rust closure is registered with the browser, so dropping
//! a future at any await (how a crash is modelled) leaves nothing behind that could be called
//! after it was freed.

use core::fmt;

use js_sys::{Function, Object, Promise, Reflect};
use splitstore_core::KvError;
use wasm_bindgen::{prelude::wasm_bindgen, JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{DomException, IdbRequest, IdbTransaction};

#[wasm_bindgen]
extern "C" {
    /// `setTimeout(fn, ms)` on whatever the global object is (window or worker).
    #[wasm_bindgen(js_name = setTimeout)]
    fn set_timeout(f: &Function, ms: f64) -> JsValue;
}

/// A JS exception or `DOMException`, reduced to its name and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsError {
    /// `DOMException.name` or `Error.name` ("QuotaExceededError", "TypeError", ...).
    pub name: String,
    /// The message the browser gave.
    pub message: String,
}

impl JsError {
    /// Reads `name` and `message` from any thrown value.
    pub fn from_js(v: &JsValue) -> Self {
        if let Some(e) = v.dyn_ref::<DomException>() {
            return Self { name: e.name(), message: e.message() };
        }
        if let Some(e) = v.dyn_ref::<js_sys::Error>() {
            return Self { name: String::from(e.name()), message: String::from(e.message()) };
        }
        if let Some(e) = v.dyn_ref::<web_sys::Event>() {
            return Self { name: e.type_(), message: String::from("event without an error") };
        }
        let message = v.as_string().unwrap_or_else(|| format!("{v:?}"));
        Self { name: String::from("Error"), message }
    }
}

impl fmt::Display for JsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

impl std::error::Error for JsError {}

/// Maps a browser error to the KV error kinds the core distinguishes.
///
/// `QuotaExceededError` is the only error a caller can act on (free space, then retry); a
/// closed or deleted connection means the store must be reopened; everything else keeps its
/// browser name and message as the cause.
pub fn kv_error(op: &'static str, err: JsError) -> KvError {
    match err.name.as_str() {
        "QuotaExceededError" => KvError::QuotaExceeded { detail: format!("IndexedDB {op}: {}", err.message) },
        "InvalidStateError" | "VersionError" => {
            KvError::Unavailable { detail: format!("IndexedDB {op}: {} ({})", err.message, err.name) }
        }
        _ => KvError::Backend { backend: "indexeddb", op, source: Box::new(err) },
    }
}

/// Maps a thrown JS value (see [`kv_error`]).
pub fn kv_error_js(op: &'static str, v: &JsValue) -> KvError {
    kv_error(op, JsError::from_js(v))
}

/// An IndexedDB request whose outcome is being watched.
///
/// The handlers are installed when the watch is created, so a request issued and watched in
/// the same synchronous step can never complete unobserved, however late it is awaited.
#[derive(Debug)]
pub struct Request {
    req: IdbRequest,
    done: JsFuture,
    op: &'static str,
}

impl Request {
    /// Starts watching `req`. The request's `error` event is not cancelled, so a failed
    /// request aborts its transaction.
    pub fn watch(req: IdbRequest, op: &'static str) -> Self {
        let p = Promise::new(&mut |resolve, reject| {
            req.set_onsuccess(Some(&resolve));
            req.set_onerror(Some(&reject));
        });
        Self { req, done: JsFuture::from(p), op }
    }

    /// Waits for the request and returns its `result`.
    pub async fn result(self) -> Result<JsValue, KvError> {
        let Self { req, done, op } = self;
        match done.await {
            Ok(_) => req.result().map_err(|e| kv_error_js(op, &e)),
            Err(_) => Err(match req.error() {
                Ok(Some(e)) => kv_error_js(op, &e),
                _ => kv_error(op, JsError { name: "UnknownError".into(), message: "request failed".into() }),
            }),
        }
    }
}

/// A transaction whose completion is being watched (handlers installed at creation).
#[derive(Debug)]
pub struct TxDone {
    tx: IdbTransaction,
    done: JsFuture,
    op: &'static str,
}

impl TxDone {
    /// Starts watching `tx`; call before the first await after creating the transaction.
    pub fn watch(tx: &IdbTransaction, op: &'static str) -> Self {
        let p = Promise::new(&mut |resolve, reject| {
            tx.set_oncomplete(Some(&resolve));
            tx.set_onabort(Some(&reject));
        });
        Self { tx: tx.clone(), done: JsFuture::from(p), op }
    }

    /// Waits until the transaction commits. An aborted transaction applied nothing; its
    /// error says why.
    pub async fn wait(self) -> Result<(), KvError> {
        let Self { tx, done, op } = self;
        match done.await {
            Ok(_) => Ok(()),
            Err(_) => Err(match tx.error() {
                Some(e) => kv_error_js(op, &e),
                None => kv_error(
                    op,
                    JsError {
                        name: "AbortError".into(),
                        message: "the transaction was aborted; nothing was applied".into(),
                    },
                ),
            }),
        }
    }
}

/// Completes after at least `ms` milliseconds (a `setTimeout` timer).
pub async fn sleep_ms(ms: f64) {
    let p = Promise::new(&mut |resolve, _| {
        set_timeout(&resolve, ms);
    });
    // A timer promise never rejects.
    let _ = JsFuture::from(p).await;
}

/// Returns to the event loop once, so rendering, input and other tasks run before the caller
/// continues.
///
/// Posts a `MessageChannel` message: a real task (unlike a microtask), queued fairly behind
/// tasks already waiting (unlike `scheduler.yield()`, whose continuation jumps ahead of
/// them), and not clamped to 4 ms like a nested `setTimeout(0)`.
pub async fn yield_to_event_loop() {
    match web_sys::MessageChannel::new() {
        Ok(ch) => {
            let p = Promise::new(&mut |resolve, _| {
                ch.port1().set_onmessage(Some(&resolve));
            });
            if ch.port2().post_message(&JsValue::UNDEFINED).is_ok() {
                let _ = JsFuture::from(p).await;
            } else {
                sleep_ms(0.0).await;
            }
            ch.port1().close();
        }
        Err(_) => sleep_ms(0.0).await,
    }
}

/// `Date.now()` in whole milliseconds.
pub fn now_millis() -> u64 {
    js_sys::Date::now() as u64
}

/// `performance.now()` where available, else `Date.now()`.
pub fn perf_now() -> f64 {
    let perf = Reflect::get(&js_sys::global(), &"performance".into()).ok();
    let now =
        perf.as_ref().and_then(|p| Reflect::get(p, &"now".into()).ok()).and_then(|f| f.dyn_into::<Function>().ok());
    match (perf, now) {
        (Some(p), Some(f)) => f.call0(&p).ok().and_then(|v| v.as_f64()).unwrap_or_else(js_sys::Date::now),
        _ => js_sys::Date::now(),
    }
}

/// A plain JS object with the given string-keyed properties.
pub fn object(props: &[(&str, JsValue)]) -> Object {
    let o = Object::new();
    for (k, v) in props {
        // Setting a property on a fresh plain object cannot fail.
        let _ = Reflect::set(&o, &JsValue::from_str(k), v);
    }
    o
}

/// 128 random bits from `crypto.getRandomValues` (Web Crypto), or `Math.random` where the
/// page has no Web Crypto.
pub fn random_u128() -> u128 {
    let buf = js_sys::Uint8Array::new_with_length(16);
    let crypto = Reflect::get(&js_sys::global(), &"crypto".into()).ok();
    let get = crypto
        .as_ref()
        .and_then(|c| Reflect::get(c, &"getRandomValues".into()).ok())
        .and_then(|f| f.dyn_into::<Function>().ok());
    let filled = match (crypto, get) {
        (Some(c), Some(f)) => f.call1(&c, &buf).is_ok(),
        _ => false,
    };
    let mut bytes = [0u8; 16];
    if filled {
        buf.copy_to(&mut bytes);
    } else {
        for b in &mut bytes {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
    u128::from_le_bytes(bytes)
}
