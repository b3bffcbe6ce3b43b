//! Bytes between Rust and IndexedDB (`Uint8Array` keys and values), and error mapping.

use js_sys::{Array, Uint8Array};
use splitstore_core::KvError;
use wasm_bindgen::{JsCast, JsValue};

use crate::js::{kv_error, kv_error_js, JsError};

/// The backend name in errors and capabilities.
pub(super) const BACKEND: &str = "indexeddb";

pub(super) fn bytes(b: &[u8]) -> JsValue {
    Uint8Array::from(b).into()
}

pub(super) fn to_vec(v: &JsValue) -> Option<Vec<u8>> {
    if let Some(a) = v.dyn_ref::<Uint8Array>() {
        return Some(a.to_vec());
    }
    v.dyn_ref::<js_sys::ArrayBuffer>().map(|b| Uint8Array::new(b).to_vec())
}

pub(super) fn value_bytes(v: JsValue) -> Result<Option<Vec<u8>>, KvError> {
    if v.is_undefined() {
        return Ok(None);
    }
    to_vec(&v).map(Some).ok_or_else(|| KvError::Corrupt { detail: "a stored value is not a byte array".into() })
}

pub(super) fn array_of_bytes(v: JsValue, what: &str) -> Result<Vec<Vec<u8>>, KvError> {
    let arr: Array =
        v.dyn_into().map_err(|_| KvError::Corrupt { detail: format!("a {what} scan did not return an array") })?;
    let mut out = Vec::with_capacity(arr.length() as usize);
    for item in arr.iter() {
        out.push(to_vec(&item).ok_or_else(|| KvError::Corrupt { detail: format!("a stored {what} is not binary") })?);
    }
    Ok(out)
}

pub(super) fn idb_error(op: &'static str, e: idb::Error) -> KvError {
    match &e {
        idb::Error::DomException(d) => kv_error(op, JsError { name: d.name(), message: d.message() }),
        idb::Error::TransactionOpenFailed(v)
        | idb::Error::UpdateFailed(v)
        | idb::Error::AddFailed(v)
        | idb::Error::DeleteFailed(v)
        | idb::Error::GetFailed(v)
        | idb::Error::GetAllFailed(v)
        | idb::Error::GetAllKeysFailed(v)
        | idb::Error::CountFailed(v)
        | idb::Error::ObjectStoreNotFound(v)
        | idb::Error::KeyRangeCreateFailed(v) => kv_error_js(op, v),
        _ => KvError::Backend { backend: BACKEND, op, source: Box::new(e) },
    }
}

pub(super) fn unavailable(what: &str, e: idb::Error) -> KvError {
    KvError::Unavailable { detail: format!("{what}: {e}") }
}
