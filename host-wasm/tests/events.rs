//! The store's events (`store.events`, an `EventTarget`): a page learns of compactions and
//! recovery without polling `info()`.
#![cfg(target_arch = "wasm32")]

mod support;

use std::{cell::RefCell, rc::Rc};

use js_sys::{Promise, Reflect};
use splitstore_wasm::{js::object, JsSplitStore};
use support::{call, unique};
use wasm_bindgen::{convert::TryFromJsValue, prelude::Closure, JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};
use web_sys::{CustomEvent, EventTarget};

wasm_bindgen_test_configure!(run_in_browser);

const CHAIN_128: &[u8] = include_bytes!("../../../shared/testdata/kubo-lotus-testnet/lotus_testnet_export_128.car");
const TYPES: [&str; 5] = ["recovery", "compactionstart", "compactionprogress", "compactionend", "compactionerror"];

fn get(o: &JsValue, k: &str) -> JsValue {
    Reflect::get(o, &k.into()).unwrap()
}

/// Records every event of `target` as `(type, detail)`, and resolves `first(type)` promises.
struct Recorder {
    seen: Rc<RefCell<Vec<(String, JsValue)>>>,
    waiting: Rc<RefCell<Vec<(String, js_sys::Function)>>>,
    _listeners: Vec<Closure<dyn Fn(web_sys::Event)>>,
}

impl Recorder {
    fn on(target: &EventTarget) -> Self {
        let seen: Rc<RefCell<Vec<(String, JsValue)>>> = Rc::default();
        let waiting: Rc<RefCell<Vec<(String, js_sys::Function)>>> = Rc::default();
        let listeners = TYPES
            .iter()
            .map(|t| {
                let (seen, waiting) = (seen.clone(), waiting.clone());
                let l = Closure::<dyn Fn(web_sys::Event)>::new(move |e: web_sys::Event| {
                    let detail = e.dyn_ref::<CustomEvent>().map(|c| c.detail()).unwrap_or(JsValue::UNDEFINED);
                    let kind = e.type_();
                    seen.borrow_mut().push((kind.clone(), detail.clone()));
                    waiting.borrow_mut().retain(|(want, resolve)| {
                        let matched = *want == kind
                            || (want == "purge" && kind == "compactionprogress" && get(&detail, "phase") == "purge");
                        if matched {
                            let _ = resolve.call1(&JsValue::UNDEFINED, &detail);
                        }
                        !matched
                    });
                });
                target.add_event_listener_with_callback(t, l.as_ref().unchecked_ref()).unwrap();
                l
            })
            .collect();
        Recorder { seen, waiting, _listeners: listeners }
    }

    /// Resolves with the detail of the next event of `kind` ("purge": the purge's first
    /// progress event) dispatched after this call (which registers at once).
    fn next(&self, kind: &str) -> impl std::future::Future<Output = JsValue> {
        let mut resolve = None;
        let p = Promise::new(&mut |ok, _| resolve = Some(ok));
        self.waiting.borrow_mut().push((kind.to_owned(), resolve.unwrap()));
        async move { JsFuture::from(p).await.unwrap() }
    }

    fn kinds(&self) -> Vec<String> {
        let mut k: Vec<String> = self.seen.borrow().iter().map(|(t, _)| t.clone()).collect();
        k.dedup();
        k
    }
}

fn config() -> JsValue {
    object(&[
        ("mode", "discard".into()),
        ("finality", 4.into()),
        ("thresholdFinalities", 5.into()),
        ("boundaryFinalities", 4.into()),
        ("batchSize", 16.into()),
        ("syncGapSecs", JsValue::NULL),
    ])
    .into()
}

async fn open(name: &str, target: Option<EventTarget>) -> JsSplitStore {
    let v = call(JsSplitStore::open(name.to_owned(), Some(config()), target)).await.expect("open");
    JsSplitStore::try_from_js_value(v).expect("a SplitStore")
}

/// An import whose head meets the trigger rule compacts in the background: the page hears
/// `compactionstart` (background), progress, then `compactionend` with the report `info()`
/// keeps.
#[wasm_bindgen_test]
async fn a_background_compaction_is_announced_from_start_to_end() {
    let name = unique("events-bg");
    let store = open(&name, None).await;
    let rec = Recorder::on(&store.events());
    let end = rec.next("compactionend");
    call(store.import_car(CHAIN_128.to_vec(), JsValue::UNDEFINED)).await.expect("importCar");
    let report = end.await;
    assert!(get(&report, "purged").as_f64().unwrap() > 0.0);
    assert_eq!(rec.kinds(), ["compactionstart", "compactionprogress", "compactionend"]);
    assert_eq!(get(&rec.seen.borrow()[0].1, "background"), JsValue::TRUE);
    let info = call(store.info()).await.unwrap();
    assert_eq!(get(&get(&info, "lastCompaction"), "purged"), get(&report, "purged"));

    // compact() announces itself too (not in the background), and a compact() refused while
    // another runs announces nothing.
    let rec = Recorder::on(&store.events());
    let running = store.compact(None);
    let refused = call(store.compact(None)).await.expect_err("a second compaction");
    assert_eq!(get(&refused, "code"), "AlreadyCompacting");
    let report = call(running).await.expect("compact");
    let seen = rec.seen.borrow().clone();
    assert_eq!(rec.kinds(), ["compactionstart", "compactionprogress", "compactionend"]);
    assert_eq!(seen.iter().filter(|(t, _)| t == "compactionstart").count(), 1);
    assert_eq!(get(&seen[0].1, "background"), JsValue::FALSE);
    assert_eq!(get(&seen.last().unwrap().1, "totalMs"), get(&report, "totalMs"));
    call(store.close()).await.unwrap();
    call(JsSplitStore::destroy(name)).await.unwrap();
}

/// A store closed during a purge: the next open finishes it, and a listener attached to the
/// target passed to `open` hears `recovery` with the report `info().recovery` keeps. The
/// stopped compaction was announced as failed.
#[wasm_bindgen_test]
async fn recovery_at_open_is_announced_to_the_target_given_to_open() {
    let name = unique("events-recovery");
    let store = open(&name, None).await;
    let rec = Recorder::on(&store.events());
    let failed = rec.next("compactionerror");
    let purging = rec.next("purge");
    call(store.import_car(CHAIN_128.to_vec(), JsValue::UNDEFINED)).await.expect("importCar");
    purging.await;
    call(store.close()).await.expect("close");
    let err = failed.await;
    assert_eq!(get(&err, "code"), "Closed", "{err:?}");

    let target = EventTarget::new().unwrap();
    let rec = Recorder::on(&target);
    let reopened = open(&name, Some(target.clone())).await;
    let seen = rec.seen.borrow().clone();
    assert_eq!(rec.kinds(), ["recovery"], "the open's events");
    assert_eq!(get(&seen[0].1, "finishedPurge"), JsValue::TRUE);
    assert_eq!(reopened.events(), target, "store.events is the target given");
    let info = call(reopened.info()).await.unwrap();
    assert_eq!(get(&get(&info, "recovery"), "purged"), get(&seen[0].1, "purged"));
    call(reopened.close()).await.unwrap();
    call(JsSplitStore::destroy(name)).await.unwrap();
}
