//! A panic inside an API call rejects that call's Promise and stops the module cleanly: later
//! calls reject with a clear error, IndexedDB is refused, and the Web Locks are released for
//! other tabs. (Its own test binary: the module stays stopped afterwards.)
#![cfg(target_arch = "wasm32")]

#[path = "support/raw_idb.rs"]
mod raw;
mod support;

use splitstore_core::{Kv, KvError, Space};
use splitstore_wasm::{guard, js, IdbKv, JsSplitStore, LockPolicy};
use support::{call, unique};
use wasm_bindgen::JsValue;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn a_panic_rejects_the_call_and_stops_the_module() {
    let name = unique("panic");
    let kv = IdbKv::open(&name, LockPolicy::Fail).await.expect("open");
    assert!(kv.holds_lock());
    kv.write({
        let mut b = splitstore_core::WriteBatch::new();
        b.put(Space::Meta, b"k".to_vec(), b"v".to_vec());
        b
    })
    .await
    .expect("a write before the panic");

    let p = guard::spawn_promise(async {
        js::sleep_ms(1.0).await;
        let v: Vec<u8> = Vec::new();
        // An out-of-bounds index: a bug, as a panic.
        Ok(JsValue::from(v[usize::from(v.is_empty())]))
    });
    let err = call(p).await.expect_err("the Promise of a panicking call rejects");
    let msg = js_sys::Error::from(err).message().as_string().unwrap_or_default();
    assert!(msg.contains("panicked") && msg.contains("index out of bounds"), "{msg}");
    assert!(guard::failed());

    // Later calls are refused with a clear message instead of running on broken state.
    let err = call(JsSplitStore::open(unique("panic-after"), None, None)).await.expect_err("stopped");
    let msg = js_sys::Error::from(err.clone()).message().as_string().unwrap_or_default();
    assert!(msg.contains("reload the page"), "{msg}");
    assert_eq!(js_sys::Reflect::get(&err, &"code".into()).unwrap(), "Poisoned");

    // IndexedDB is refused too, before it is touched: on the open connection, and for a new one.
    let stopped = |e: KvError| matches!(&e, KvError::Unavailable { detail } if detail.contains("reload the page"));
    let err = kv.get(Space::Meta, b"k").await.expect_err("a read after the panic");
    assert!(stopped(err), "refused as stopped");
    let err = IdbKv::open(&unique("panic-new"), LockPolicy::Fail).await.expect_err("an open after the panic");
    assert!(stopped(err), "refused as stopped");

    // The lock the page held was released, so another tab can open the database and finds the
    // data written before the panic.
    js::sleep_ms(20.0).await;
    let release =
        raw::take_lock_if_free(&format!("splitstore:{name}")).await.expect("the panic hook released the lock");
    assert_eq!(raw::get_value(&name, "meta", &raw::key(b"k")).await, Some(b"v".to_vec()));
    release.call0(&JsValue::UNDEFINED).unwrap();
    drop(kv);
}
