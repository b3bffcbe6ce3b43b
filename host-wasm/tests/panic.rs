//! A panic inside an API call rejects that call's Promise and stops the module cleanly: later
//! calls reject with a clear error, and the Web Locks are released for other tabs. (Its own
//! test binary: the module stays stopped afterwards.)
#![cfg(target_arch = "wasm32")]

mod support;

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
    let msg = js_sys::Error::from(err).message().as_string().unwrap_or_default();
    assert!(msg.contains("reload the page"), "{msg}");

    // The lock the page held was released, so another tab could open the database.
    js::sleep_ms(20.0).await;
    let other = IdbKv::open(&name, LockPolicy::Fail).await.expect("the lock was released by the panic hook");
    other.close().await;
    drop(kv);
}
