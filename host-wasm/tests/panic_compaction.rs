//! After a panic, no task of the module touches IndexedDB again, and the Web Locks are released
//! only once that holds: compactions caught in their purge (one a head change started in the
//! background, one `compact()` is running) stop where they are, so a second tab that takes the
//! locks meanwhile finds its data left alone. (Its own test binary: the module stays stopped.)
#![cfg(target_arch = "wasm32")]

#[path = "support/raw_idb.rs"]
mod raw;
mod support;

use std::{cell::RefCell, rc::Rc};

use js_sys::{Array, Reflect, Uint8Array};
use splitstore_core::synth::{ChainGen, SynthConfig};
use splitstore_wasm::{db_name, guard, js, js::object, JsSplitStore, Role};
use support::{call, log, unique};
use wasm_bindgen::{convert::TryFromJsValue, prelude::Closure, JsCast, JsValue};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// The dead-list entry whose block the second tab writes: a few pages ahead of the purge.
const WRITTEN: usize = 100;

/// Epochs of the synthetic chain: every one rewrites a fifth of the state, so the compaction
/// has over a thousand dead blocks to purge.
const EPOCHS: usize = 24;

/// A paced purge: small pages, each followed by a sleep of 4 times its own time.
fn config(background: bool) -> JsValue {
    object(&[
        ("mode", "discard".into()),
        ("finality", 2.into()),
        // The background store compacts on its head change; the other only on `compact()`.
        ("thresholdFinalities", (if background { 5 } else { 1000 }).into()),
        ("boundaryFinalities", 2.into()),
        ("syncGapSecs", JsValue::NULL),
        ("batchSize", 32.into()),
        ("purgePaceAfterMs", 0.into()),
        ("purgeSleepFactor", 4.into()),
        ("persist", false.into()),
    ])
    .into()
}

/// The times (ms) and `done` counts of a store's purge progress events.
type PurgeLog = Rc<RefCell<Vec<(f64, f64)>>>;

/// Records the purge's progress events of `store`.
fn watch_purge(store: &JsSplitStore) -> (PurgeLog, Closure<dyn Fn(web_sys::CustomEvent)>) {
    let seen: PurgeLog = Rc::default();
    let sink = seen.clone();
    let listener = Closure::<dyn Fn(web_sys::CustomEvent)>::new(move |e: web_sys::CustomEvent| {
        let detail = e.detail();
        if Reflect::get(&detail, &"phase".into()).unwrap() == "purge" {
            let done = Reflect::get(&detail, &"done".into()).unwrap().as_f64().unwrap();
            sink.borrow_mut().push((js::perf_now(), done));
        }
    });
    store.events().add_event_listener_with_callback("compactionprogress", listener.as_ref().unchecked_ref()).unwrap();
    (seen, listener)
}

/// Opens a store and loads the synthetic chain into it; returns the head tipset.
async fn load(name: &str, background: bool) -> (JsSplitStore, Array) {
    let v = call(JsSplitStore::open(name.to_owned(), Some(config(background)), None)).await.expect("open");
    let store = JsSplitStore::try_from_js_value(v).unwrap();
    let mut chain =
        ChainGen::new(SynthConfig { seed: 11, state_objects: 400, churn_percent: 20, ..Default::default() });
    let mut tipset = Array::new();
    for _ in 0..EPOCHS {
        let epoch = chain.next_epoch();
        let blocks: Array = epoch
            .blocks
            .iter()
            .map(|(c, b)| {
                JsValue::from(object(&[("cid", c.to_string().into()), ("bytes", Uint8Array::from(&b[..]).into())]))
            })
            .collect();
        call(store.put_many(blocks)).await.expect("putMany");
        tipset = epoch.tipset.iter().map(|c| JsValue::from_str(&c.to_string())).collect();
    }
    (store, tipset)
}

/// Waits until the purge has reported `n` pages; returns the longest time between two.
async fn purge_running(seen: &PurgeLog, n: usize) -> f64 {
    for _ in 0..3000 {
        if seen.borrow().len() > n {
            break;
        }
        js::sleep_ms(10.0).await;
    }
    let seen = seen.borrow();
    assert!(seen.len() > n, "the purge is running: {} progress events", seen.len());
    assert!(seen.last().unwrap().1 > 0.0, "the purge has deleted blocks");
    seen.windows(2).map(|w| w[1].0 - w[0].0).fold(0.0, f64::max)
}

/// The keys of hot's `blocks` and `dead` object stores, read as another tab does.
async fn hot_keys(name: &str) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let hot = db_name(name, Role::Hot);
    (raw::keys_of(&hot, "blocks").await, raw::keys_of(&hot, "dead").await)
}

#[wasm_bindgen_test]
async fn a_panic_stops_every_compaction_before_the_locks_are_released() {
    let (bg_name, fg_name) = (unique("panic-bg"), unique("panic-fg"));
    let t = js::perf_now();
    let (bg, bg_head) = load(&bg_name, true).await;
    let (fg, fg_head) = load(&fg_name, false).await;
    log(&format!("loaded two stores of {EPOCHS} epochs in {:.0} ms", js::perf_now() - t));

    // One compaction started by a head change, in the background; one by `compact()`.
    let (bg_purge, _bg_listener) = watch_purge(&bg);
    let (fg_purge, _fg_listener) = watch_purge(&fg);
    call(bg.head_change(bg_head)).await.expect("headChange");
    call(fg.head_change(fg_head)).await.expect("headChange");
    let fg_outcome: Rc<RefCell<Option<Result<JsValue, JsValue>>>> = Rc::default();
    {
        let (compacting, outcome) = (fg.compact(None), fg_outcome.clone());
        wasm_bindgen_futures::spawn_local(async move {
            *outcome.borrow_mut() = Some(call(compacting).await);
        });
    }
    let pace = purge_running(&bg_purge, 3).await.max(purge_running(&fg_purge, 3).await);
    assert!(fg_outcome.borrow().is_none(), "compact() is still running");

    // Another call panics.
    let err = call(guard::spawn_promise(async {
        let v: Vec<u8> = Vec::new();
        Ok(JsValue::from(v[usize::from(v.is_empty())]))
    }))
    .await
    .expect_err("the panicking call rejects");
    assert!(js_sys::Error::from(err).message().as_string().unwrap_or_default().contains("panicked"));
    let pages = (bg_purge.borrow().len(), fg_purge.borrow().len());

    // Another tab takes the locks (they are free), reads the stores, and writes a block that
    // the purge would reach within a few pages: a dead-listed one.
    js::sleep_ms(20.0).await;
    let mut held = Vec::new();
    for name in [&bg_name, &fg_name] {
        for role in [Role::Hot, Role::Cold] {
            let lock = format!("splitstore:{}", db_name(name, role));
            held.push(raw::take_lock_if_free(&lock).await.unwrap_or_else(|| panic!("{lock} was released")));
        }
    }
    let mut before = Vec::new();
    for name in [&bg_name, &fg_name] {
        let (blocks, dead) = hot_keys(name).await;
        assert!(dead.len() > 1000, "{name}: the purge is far from done ({} dead entries left)", dead.len());
        let written = dead[WRITTEN].clone();
        let hot = db_name(name, Role::Hot);
        let bytes = raw::get_value(&hot, "blocks", &raw::key(&written)).await.expect("a dead-listed block is stored");
        raw::put_value(&hot, "blocks", &raw::key(&written), &bytes).await;
        before.push((blocks, dead, written));
    }

    // Long enough for many of the purge's pages: nothing changes.
    let wait = (5.0 * pace).clamp(1500.0, 5000.0);
    log(&format!("dead entries left: {}, {}", before[0].1.len(), before[1].1.len()));
    log(&format!("purge pages at most {pace:.0} ms apart; waiting {wait:.0} ms"));
    js::sleep_ms(wait).await;
    for (name, (blocks, dead, written)) in [&bg_name, &fg_name].into_iter().zip(&before) {
        let (blocks_after, dead_after) = hot_keys(name).await;
        assert_eq!(dead_after.len(), dead.len(), "{name}: the dead list did not change");
        assert_eq!(&dead_after, dead, "{name}: the dead list did not change");
        assert_eq!(blocks_after.len(), blocks.len(), "{name}: no block was purged after the panic");
        assert_eq!(&blocks_after, blocks, "{name}: no block was purged after the panic");
        assert!(blocks_after.contains(written), "{name}: the block the other tab wrote survives");
    }
    assert_eq!((bg_purge.borrow().len(), fg_purge.borrow().len()), pages, "no purge progress after the panic");

    // The compaction `compact()` ran was stopped and its call rejected as the module's is.
    let outcome = fg_outcome.borrow_mut().take().expect("compact() settled once the module stopped");
    let err = outcome.expect_err("compact() rejects");
    assert_eq!(Reflect::get(&err, &"code".into()).unwrap(), "Poisoned", "{err:?}");
    for release in held {
        release.call0(&JsValue::UNDEFINED).unwrap();
    }
}
