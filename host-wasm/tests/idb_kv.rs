//! The IndexedDB backend in headless Chromium: ordering, paging, atomicity of aborted
//! batches, durability (every write strict), Web Lock exclusivity, deletion and the JS clock.
#![cfg(target_arch = "wasm32")]

use std::{cell::Cell, rc::Rc};

use splitstore_core::{Clock, Kv, KvError, Space, WriteBatch};
use splitstore_wasm::{
    idb_kv::{Fault, IdbKv},
    js, JsClock, LockPolicy,
};
use wasm_bindgen::{prelude::Closure, JsCast};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

fn unique(prefix: &str) -> String {
    thread_local!(static N: Cell<u32> = const { Cell::new(0) });
    let n = N.with(|n| {
        n.set(n.get() + 1);
        n.get()
    });
    format!("{prefix}-{}-{n}", js::now_millis())
}

async fn fresh(prefix: &str) -> (IdbKv, String) {
    let name = unique(prefix);
    let kv = IdbKv::open(&name, LockPolicy::Fail).await.expect("open a fresh database");
    (kv, name)
}

async fn dispose(kv: IdbKv, name: &str) {
    kv.close().await;
    drop(kv);
    IdbKv::destroy(name).await.expect("destroy after close");
}

#[wasm_bindgen_test]
async fn keys_are_ordered_bytewise() {
    let (kv, name) = fresh("order").await;
    // Deliberately includes the empty key, 0x00 prefixes, and bytes >= 0x80 (which a signed
    // or UTF-16 comparison would put first).
    let keys: Vec<Vec<u8>> = vec![
        vec![0xff, 0x00],
        vec![0x80],
        vec![],
        vec![0x00, 0x00],
        vec![0x7f, 0xff],
        vec![0x00],
        vec![0xff],
        vec![0x01, 0x02, 0x03],
        vec![0x81, 0x00, 0x00, 0x00],
    ];
    let mut b = WriteBatch::new();
    for (i, k) in keys.iter().enumerate() {
        b.put(Space::Blocks, k.clone(), vec![i as u8]);
    }
    kv.write(b).await.unwrap();

    let mut expected = keys.clone();
    expected.sort();
    let scanned = kv.scan_keys(Space::Blocks, None, 100).await.unwrap();
    assert_eq!(scanned, expected, "IndexedDB binary keys must sort bytewise");

    let entries = kv.scan(Space::Blocks, None, 100).await.unwrap();
    for (k, v) in &entries {
        let i = keys.iter().position(|x| x == k).unwrap();
        assert_eq!(v, &vec![i as u8], "scan pairs each key with its own value");
    }
    dispose(kv, &name).await;
}

#[wasm_bindgen_test]
async fn paged_scans_resume_strictly_after_a_key() {
    let (kv, name) = fresh("paging").await;
    let mut b = WriteBatch::new();
    for i in 0u16..1000 {
        b.put(Space::Dead, i.to_be_bytes().to_vec(), vec![]);
    }
    kv.write(b).await.unwrap();

    let mut all = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    let mut pages = 0;
    loop {
        let page = kv.scan_keys(Space::Dead, after.as_deref(), 64).await.unwrap();
        if page.is_empty() {
            break;
        }
        assert!(page.len() <= 64);
        pages += 1;
        after = page.last().cloned();
        all.extend(page);
    }
    assert_eq!(pages, 16);
    let expected: Vec<Vec<u8>> = (0u16..1000).map(|i| i.to_be_bytes().to_vec()).collect();
    assert_eq!(all, expected);
    // A resume key that is not stored still resumes at the next key.
    let page = kv.scan(Space::Dead, Some(&[0x01, 0x00, 0x00]), 2).await.unwrap();
    assert_eq!(page[0].0, 257u16.to_be_bytes().to_vec());
    assert!(kv.scan_keys(Space::Dead, None, 0).await.unwrap().is_empty(), "limit 0 is not 'all'");
    // Other spaces are untouched.
    assert!(kv.scan_keys(Space::Blocks, None, 10).await.unwrap().is_empty());
    dispose(kv, &name).await;
}

#[wasm_bindgen_test]
async fn get_many_has_and_deletes() {
    let (kv, name) = fresh("getmany").await;
    let mut b = WriteBatch::new();
    b.put(Space::Blocks, b"a".to_vec(), b"1".to_vec()).put(Space::Blocks, b"b".to_vec(), b"2".to_vec());
    b.put(Space::Meta, b"a".to_vec(), b"meta".to_vec());
    kv.write(b).await.unwrap();
    let got = kv.get_many(Space::Blocks, &[b"b".to_vec(), b"x".to_vec(), b"a".to_vec()]).await.unwrap();
    assert_eq!(got, vec![Some(b"2".to_vec()), None, Some(b"1".to_vec())]);
    assert!(kv.has(Space::Meta, b"a").await.unwrap());
    assert!(!kv.has(Space::Meta, b"b").await.unwrap());

    let mut d = WriteBatch::new();
    d.delete(Space::Blocks, b"a".to_vec()).delete(Space::Blocks, b"never".to_vec());
    kv.write(d).await.unwrap();
    assert_eq!(kv.get(Space::Blocks, b"a").await.unwrap(), None);
    assert_eq!(kv.get(Space::Meta, b"a").await.unwrap(), Some(b"meta".to_vec()), "spaces are separate");
    let stats = kv.stats(Space::Blocks).await.unwrap();
    assert_eq!((stats.keys, stats.bytes), (1, 1));
    dispose(kv, &name).await;
}

/// A batch over three spaces whose transaction is aborted half-way applies nothing, whether
/// the failure is thrown synchronously or reported asynchronously after earlier requests ran.
#[wasm_bindgen_test]
async fn an_aborted_cross_space_batch_applies_nothing() {
    let (kv, name) = fresh("atomic").await;
    let mut seed = WriteBatch::new();
    seed.put(Space::Blocks, b"keep".to_vec(), b"old".to_vec());
    seed.put(Space::Meta, b"checkpoint".to_vec(), b"7".to_vec());
    kv.write(seed).await.unwrap();

    let batch = || {
        let mut b = WriteBatch::new();
        b.put(Space::Blocks, b"new-1".to_vec(), b"x".to_vec());
        b.delete(Space::Blocks, b"keep".to_vec());
        b.put(Space::Meta, b"checkpoint".to_vec(), b"8".to_vec());
        b.put(Space::Dead, b"d".to_vec(), vec![]);
        b.put(Space::Blocks, b"new-2".to_vec(), b"y".to_vec());
        b.strict();
        b
    };
    for fault in [Fault::InvalidKeyAt(3), Fault::ConstraintAt(4)] {
        let err = kv.write_with_fault(batch(), Some(fault)).await.expect_err("the broken batch must fail");
        let expected = match fault {
            Fault::InvalidKeyAt(_) => "DataError",
            Fault::ConstraintAt(_) => "ConstraintError",
        };
        assert!(format!("{err:?}").contains(expected), "{fault:?}: the browser's reason is kept: {err:?}");
        assert_eq!(kv.get(Space::Blocks, b"keep").await.unwrap(), Some(b"old".to_vec()), "{fault:?}");
        assert_eq!(kv.get(Space::Meta, b"checkpoint").await.unwrap(), Some(b"7".to_vec()), "{fault:?}");
        assert!(!kv.has(Space::Blocks, b"new-1").await.unwrap(), "{fault:?}");
        assert!(kv.scan_keys(Space::Dead, None, 10).await.unwrap().is_empty(), "{fault:?}");
    }
    // The same batch without a fault commits whole.
    kv.write(batch()).await.unwrap();
    assert_eq!(kv.get(Space::Meta, b"checkpoint").await.unwrap(), Some(b"8".to_vec()));
    assert!(!kv.has(Space::Blocks, b"keep").await.unwrap());
    assert_eq!(kv.scan_keys(Space::Blocks, None, 10).await.unwrap(), vec![b"new-1".to_vec(), b"new-2".to_vec()]);
    dispose(kv, &name).await;
}

/// Large batches are issued in several chunks, each from an event of the same transaction:
/// a failure in a late chunk still rolls back the early ones, and a clean batch commits whole.
#[wasm_bindgen_test]
async fn a_batch_spanning_many_issue_chunks_is_still_atomic() {
    let (kv, name) = fresh("bigbatch").await;
    let batch = || {
        let mut b = WriteBatch::new();
        for i in 0u32..1500 {
            let space = [Space::Blocks, Space::Dead, Space::ColdList][i as usize % 3];
            b.put(space, i.to_be_bytes().to_vec(), vec![7; 100]);
        }
        b.put(Space::Meta, b"checkpoint".to_vec(), b"done".to_vec());
        b
    };
    // A constraint fault re-adds operation 0's key, so it must hit a Blocks operation (i % 3 == 0).
    for fault in [Fault::InvalidKeyAt(1300), Fault::ConstraintAt(999), Fault::ConstraintAt(129)] {
        kv.write_with_fault(batch(), Some(fault)).await.expect_err("the broken batch must fail");
        for space in Space::ALL {
            assert!(kv.scan_keys(space, None, 10).await.unwrap().is_empty(), "{fault:?}: {space:?} has entries");
        }
    }
    kv.write(batch()).await.unwrap();
    for space in [Space::Blocks, Space::Dead, Space::ColdList] {
        assert_eq!(kv.stats(space).await.unwrap().keys, 500, "{space:?}");
    }
    assert_eq!(kv.get(Space::Meta, b"checkpoint").await.unwrap(), Some(b"done".to_vec()));
    let got = kv
        .get_many(Space::Blocks, &(0u32..1500).step_by(3).map(|i| i.to_be_bytes().to_vec()).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(got.len(), 500);
    assert!(got.iter().all(|v| v.as_deref() == Some(&[7u8; 100][..])), "get_many across issue chunks");
    dispose(kv, &name).await;
}

#[wasm_bindgen_test]
async fn strict_writes_and_flush_commit() {
    let (kv, name) = fresh("strict").await;
    let mut b = WriteBatch::new();
    b.put(Space::Meta, b"k".to_vec(), b"v".to_vec()).strict();
    kv.write(b).await.unwrap();
    kv.flush().await.unwrap();
    let mut empty = WriteBatch::new();
    empty.strict();
    kv.write(empty).await.unwrap();
    // The flush counter lives outside the keyspaces.
    for space in Space::ALL {
        let keys = kv.scan_keys(space, None, 10).await.unwrap();
        assert_eq!(keys.len(), usize::from(space == Space::Meta), "{space:?}");
    }
    // Data survives closing and reopening the connection.
    kv.close().await;
    drop(kv);
    let kv = IdbKv::open(&name, LockPolicy::Fail).await.unwrap();
    assert_eq!(kv.get(Space::Meta, b"k").await.unwrap(), Some(b"v".to_vec()));
    dispose(kv, &name).await;
}

/// Records the mode and durability of every transaction the page opens, until `restore`.
fn spy_on_transactions() -> js_sys::Object {
    let install = js_sys::Function::new_no_args(
        r#"
        const proto = IDBDatabase.prototype;
        const original = proto.transaction;
        const seen = [];
        proto.transaction = function (names, mode, options) {
            seen.push([mode || "readonly", (options && options.durability) || "default"]);
            return original.call(this, names, mode, options);
        };
        return { seen, restore: () => { proto.transaction = original; } };
        "#,
    );
    install.call0(&wasm_bindgen::JsValue::UNDEFINED).expect("install the spy").unchecked_into()
}

/// In Chromium a relaxed commit can be lost in a power cut even after a later strict one (blob
/// files of large values, LevelDB's previous log), so every readwrite transaction is strict.
#[wasm_bindgen_test]
async fn every_write_is_committed_strict_relaxed_batches_included() {
    let (kv, name) = fresh("durability").await;
    let spy = spy_on_transactions();
    let mut small = WriteBatch::new();
    small.put(Space::Blocks, b"small".to_vec(), vec![1; 100]).delete(Space::Dead, b"small".to_vec());
    kv.write(small).await.unwrap();
    let mut large = WriteBatch::new();
    large.put(Space::Blocks, b"large".to_vec(), vec![2; 200 << 10]);
    kv.write(large).await.unwrap();
    let mut strict = WriteBatch::new();
    strict.put(Space::Meta, b"m".to_vec(), b"v".to_vec()).strict();
    kv.write(strict).await.unwrap();
    kv.flush().await.unwrap();
    assert_eq!(kv.get(Space::Blocks, b"large").await.unwrap().map(|v| v.len()), Some(200 << 10));
    let restore: js_sys::Function = js_sys::Reflect::get(&spy, &"restore".into()).unwrap().unchecked_into();
    restore.call0(&spy).unwrap();

    let seen: js_sys::Array = js_sys::Reflect::get(&spy, &"seen".into()).unwrap().unchecked_into();
    let seen: Vec<(String, String)> = seen
        .iter()
        .map(|e| {
            let e: js_sys::Array = e.unchecked_into();
            (e.get(0).as_string().unwrap_or_default(), e.get(1).as_string().unwrap_or_default())
        })
        .collect();
    let writes: Vec<&(String, String)> = seen.iter().filter(|(mode, _)| mode == "readwrite").collect();
    assert_eq!(writes.len(), 4, "three batches and a flush: {seen:?}");
    assert!(writes.iter().all(|(_, d)| d == "strict"), "{seen:?}");
    assert!(seen.iter().any(|(mode, _)| mode == "readonly"), "the read was seen too: {seen:?}");
    dispose(kv, &name).await;
}

#[wasm_bindgen_test]
async fn a_second_open_of_one_database_is_refused_while_the_first_holds_the_lock() {
    let (kv, name) = fresh("lock").await;
    assert!(kv.holds_lock(), "Web Locks exist in Chromium; the store must hold one");
    let err = IdbKv::open(&name, LockPolicy::Fail).await.expect_err("second open must fail");
    assert!(matches!(err, KvError::InUse { .. }), "got {err}");
    assert!(err.to_string().contains("in use"), "message must say so: {err}");
    let err = IdbKv::destroy(&name).await.expect_err("destroy of an open store must fail");
    assert!(matches!(err, KvError::InUse { .. }), "got {err}");

    // A waiting open is granted once the first store closes.
    let waiter = IdbKv::open(&name, LockPolicy::Wait);
    let closer = async {
        js::sleep_ms(30.0).await;
        kv.close().await;
    };
    let (second, ()) = futures::join!(waiter, closer);
    let second = second.expect("granted after close");
    assert!(second.holds_lock());
    // The first connection no longer works, and says why.
    let err = kv.get(Space::Blocks, b"x").await.expect_err("closed");
    assert!(matches!(err, KvError::Unavailable { .. }), "got {err}");
    drop(kv);
    dispose(second, &name).await;
}

#[wasm_bindgen_test]
async fn deleting_the_database_elsewhere_closes_this_connection() {
    let name = unique("vchange");
    let kv = IdbKv::open(&name, LockPolicy::Skip).await.unwrap();
    let mut b = WriteBatch::new();
    b.put(Space::Blocks, b"k".to_vec(), b"v".to_vec());
    kv.write(b).await.unwrap();
    // Another page's deleteDatabase: our versionchange handler must close, not block it.
    let factory = idb::Factory::new().unwrap();
    factory.delete(&name).unwrap().await.expect("delete is not blocked by our connection");
    let err = kv.get(Space::Blocks, b"k").await.expect_err("closed by versionchange");
    assert!(matches!(err, KvError::Unavailable { .. }), "got {err}");
    assert!(err.to_string().contains("another page"), "message must say why: {err}");
}

#[wasm_bindgen_test]
async fn yield_now_returns_to_the_event_loop_and_sleep_waits() {
    // A message posted before the yield is a task queued ahead of the yield's own task: it
    // has run when the yield returns. A microtask-only yield would return before it.
    let ran = Rc::new(Cell::new(false));
    let ch = web_sys::MessageChannel::new().unwrap();
    let flag = ran.clone();
    let on_message = Closure::<dyn FnMut()>::new(move || flag.set(true));
    ch.port1().set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    ch.port2().post_message(&wasm_bindgen::JsValue::UNDEFINED).unwrap();
    let clock = JsClock::new();
    clock.yield_now().await;
    assert!(ran.get(), "yield_now must run queued tasks");

    let t0 = clock.now_millis();
    clock.sleep(25).await;
    let elapsed = clock.now_millis() - t0;
    assert!(elapsed >= 24, "slept only {elapsed} ms");
    assert!(t0 > 1_600_000_000_000, "now_millis is Unix time in ms");
}

/// Browser errors map to the kinds the core acts on; the browser's name and message survive.
#[wasm_bindgen_test]
fn browser_errors_map_to_typed_kv_errors() {
    let err = |name: &str| js::JsError { name: name.into(), message: "m".into() };
    let quota = js::kv_error("write", err("QuotaExceededError"));
    assert!(matches!(&quota, KvError::QuotaExceeded { detail } if detail.contains("write")), "{quota:?}");
    for name in ["InvalidStateError", "VersionError"] {
        assert!(matches!(js::kv_error("get", err(name)), KvError::Unavailable { .. }), "{name}");
    }
    let other = js::kv_error("scan", err("DataError"));
    match &other {
        KvError::Backend { backend: "indexeddb", op: "scan", source } => {
            assert_eq!(source.to_string(), "DataError: m");
        }
        _ => panic!("{other:?}"),
    }
    // A real DOMException thrown by the browser keeps its name.
    let thrown = web_sys::DomException::new_with_message_and_name("full", "QuotaExceededError").unwrap();
    assert!(matches!(js::kv_error_js("write", &thrown.into()), KvError::QuotaExceeded { .. }));
}
