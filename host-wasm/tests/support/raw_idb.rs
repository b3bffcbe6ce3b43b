//! IndexedDB and Web Locks used directly from `raw_idb.js`, as another tab (or the browser
//! evicting data) would, with no splitstore-wasm code involved. Included by the suites that
//! need it with `#[path]`.
#![allow(dead_code)]

use js_sys::{Array, Function, Uint8Array};
use wasm_bindgen::{prelude::wasm_bindgen, JsCast, JsValue};

#[wasm_bindgen(module = "/tests/support/raw_idb.js")]
extern "C" {
    #[wasm_bindgen(js_name = databaseExists)]
    async fn database_exists_js(name: &str) -> JsValue;
    #[wasm_bindgen(catch, js_name = deleteDatabase)]
    async fn delete_database_js(name: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch, js_name = entries)]
    async fn entries_js(name: &str, stores: Array) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch, js_name = keysOf)]
    async fn keys_of_js(name: &str, store: &str) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch, js_name = getValue)]
    async fn get_value_js(name: &str, store: &str, key: &JsValue) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(catch, js_name = putValue)]
    async fn put_value_js(name: &str, store: &str, key: &JsValue, value: &JsValue) -> Result<JsValue, JsValue>;
    #[wasm_bindgen(js_name = takeLockIfFree)]
    async fn take_lock_if_free_js(name: &str) -> JsValue;

    /// A fake `navigator.storage` (see `fakeStorage` in `raw_idb.js`).
    pub type FakeStorage;
    #[wasm_bindgen(js_name = fakeStorage)]
    pub fn fake_storage(persist_answer: bool, missing: bool) -> FakeStorage;
    #[wasm_bindgen(method, js_name = persistCalls)]
    pub fn persist_calls(this: &FakeStorage) -> u32;
    #[wasm_bindgen(method, js_name = setPersisted)]
    pub fn set_persisted(this: &FakeStorage, v: bool);
    #[wasm_bindgen(method)]
    pub fn restore(this: &FakeStorage);

    #[wasm_bindgen(js_name = realPersist)]
    async fn real_persist_js() -> JsValue;
    #[wasm_bindgen(js_name = realPersisted)]
    async fn real_persisted_js() -> JsValue;
    #[wasm_bindgen(js_name = realEstimateQuota)]
    async fn real_estimate_quota_js() -> JsValue;
}

/// Whether the database exists.
pub async fn database_exists(name: &str) -> bool {
    database_exists_js(name).await.as_bool().expect("databaseExists answers a boolean")
}

/// Deletes a database (as eviction does).
pub async fn delete_database(name: &str) {
    delete_database_js(name).await.unwrap_or_else(|e| panic!("deleteDatabase({name}): {e:?}"));
}

/// Every entry of the named object stores (all of them when `stores` is empty), as sorted
/// lines `store key=value` in hex.
pub async fn entries(name: &str, stores: &[&str]) -> Vec<String> {
    let stores: Array = stores.iter().map(|s| JsValue::from_str(s)).collect();
    let lines = entries_js(name, stores).await.unwrap_or_else(|e| panic!("entries({name}): {e:?}"));
    lines.unchecked_into::<Array>().iter().map(|l| l.as_string().expect("a line")).collect()
}

/// The keys of one object store, in key order.
pub async fn keys_of(name: &str, store: &str) -> Vec<Vec<u8>> {
    let keys = keys_of_js(name, store).await.unwrap_or_else(|e| panic!("keys of {name}/{store}: {e:?}"));
    keys.unchecked_into::<Array>().iter().map(|k| k.unchecked_into::<Uint8Array>().to_vec()).collect()
}

/// A value stored under a binary key, or under a string key.
pub async fn get_value(name: &str, store: &str, key: &JsValue) -> Option<Vec<u8>> {
    let v = get_value_js(name, store, key).await.unwrap_or_else(|e| panic!("get from {name}/{store}: {e:?}"));
    if v.is_undefined() {
        None
    } else {
        Some(v.dyn_into::<Uint8Array>().expect("a binary value").to_vec())
    }
}

/// Writes a value durably.
pub async fn put_value(name: &str, store: &str, key: &JsValue, value: &[u8]) {
    put_value_js(name, store, key, &Uint8Array::from(value).into())
        .await
        .unwrap_or_else(|e| panic!("put into {name}/{store}: {e:?}"));
}

/// A binary key.
pub fn key(bytes: &[u8]) -> JsValue {
    Uint8Array::from(bytes).into()
}

/// Takes a Web Lock if it is free; `None` when another holder has it. Calling the function
/// releases it.
pub async fn take_lock_if_free(name: &str) -> Option<Function> {
    let release = take_lock_if_free_js(name).await;
    release.dyn_into::<Function>().ok()
}

/// The real `navigator.storage.persist()`.
pub async fn real_persist() -> Option<bool> {
    real_persist_js().await.as_bool()
}

/// The quota the real `navigator.storage.estimate()` reports.
pub async fn real_estimate_quota() -> f64 {
    real_estimate_quota_js().await.as_f64().expect("Chromium reports a quota")
}

/// The real `navigator.storage.persisted()`.
pub async fn real_persisted() -> Option<bool> {
    real_persisted_js().await.as_bool()
}
