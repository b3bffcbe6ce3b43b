//! The JS API (`SplitStore`), called the way a page calls it: every method returns a Promise.
//! Real chain data is embedded at compile time from the shared test-data folder.
#![cfg(target_arch = "wasm32")]

mod support;

use std::collections::HashMap;

use js_sys::{Array, Function, Reflect, Uint8Array};
use splitstore_core::{
    car::{read_car, CarLimits},
    key::dag_cbor_blake2b_cid,
    Cid,
};
use splitstore_wasm::{js::object, JsSplitStore};
use support::{call, log, unique};
use wasm_bindgen::{convert::TryFromJsValue, prelude::Closure, JsCast, JsValue};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// 1049 blocks (6 of them identity-hash), 159 headers, heights 0..128, full state.
const CHAIN_128: &[u8] = include_bytes!("../../../shared/testdata/kubo-lotus-testnet/lotus_testnet_export_128.car");
const CHAIN_128_HEAD: &str = "bafy2bzaced4ueelaegfs5fqu4tzsh6ywbbpfk3cxppupmxfdhbpbhzawfw5oy";

fn get(o: &JsValue, k: &str) -> JsValue {
    Reflect::get(o, &k.into()).unwrap()
}

fn num(o: &JsValue, k: &str) -> f64 {
    get(o, k).as_f64().unwrap_or_else(|| panic!("{k} is not a number in {o:?}"))
}

fn code(e: &JsValue) -> String {
    get(e, "code").as_string().unwrap_or_default()
}

fn message(e: &JsValue) -> String {
    e.dyn_ref::<js_sys::Error>().map(|e| String::from(e.message())).unwrap_or_else(|| format!("{e:?}"))
}

async fn open(name: &str, config: JsValue) -> Result<JsSplitStore, JsValue> {
    let v = call(JsSplitStore::open(name.to_owned(), Some(config), None)).await?;
    Ok(JsSplitStore::try_from_js_value(v).expect("open resolves with a SplitStore"))
}

fn small_config(mode: &str) -> JsValue {
    object(&[
        ("mode", mode.into()),
        ("finality", 4.into()),
        ("thresholdFinalities", 5.into()),
        ("boundaryFinalities", 4.into()),
        ("messageRetention", 1.into()),
        ("batchSize", 64.into()),
    ])
    .into()
}

/// Every block of a CAR by multihash bytes.
fn blocks_by_multihash(car: &[u8]) -> (Vec<Cid>, HashMap<Vec<u8>, Vec<u8>>) {
    let (header, blocks) = read_car(car, CarLimits::default()).expect("a valid CAR");
    let map =
        blocks.into_iter().filter(|(c, _)| c.hash().code() != 0x00).map(|(c, b)| (c.hash().to_bytes(), b)).collect();
    (header.roots, map)
}

#[wasm_bindgen_test]
async fn put_get_has_and_argument_errors() {
    let name = unique("api-basic");
    let store = open(&name, JsValue::UNDEFINED).await.expect("open");
    assert_eq!(store.name(), name);
    let bytes = b"\x82\x01\x02".to_vec();
    let cid = dag_cbor_blake2b_cid(&bytes).to_string();
    assert_eq!(call(store.has(cid.clone().into(), None)).await.unwrap(), JsValue::FALSE);
    assert!(call(store.get(cid.clone().into(), None)).await.unwrap().is_undefined());
    call(store.put(cid.clone().into(), bytes.clone())).await.expect("put");
    assert_eq!(call(store.has(cid.clone().into(), None)).await.unwrap(), JsValue::TRUE);
    let got = call(store.get(cid.clone().into(), None)).await.unwrap();
    assert_eq!(got.dyn_into::<Uint8Array>().expect("a Uint8Array").to_vec(), bytes);

    let err = call(store.get("not-a-cid".into(), None)).await.expect_err("bad CID");
    assert!(err.is_instance_of::<js_sys::TypeError>(), "{err:?}");
    assert_eq!(code(&err), "InvalidArgument");
    let err = call(store.head_change(Array::of1(&"bafyfake".into()))).await.expect_err("bad tipset");
    assert_eq!(code(&err), "InvalidArgument");
    // A well-formed CID of a block the store does not have.
    let err = call(store.head_change(Array::of1(&cid.as_str().into()))).await.expect_err("not a header");
    assert_eq!(code(&err), "BadHeader", "{}", message(&err));

    let bad = object(&[("mode", "hotcold".into())]);
    let err = call(JsSplitStore::open(unique("api-cfg"), Some(bad.into()), None)).await.expect_err("bad mode");
    assert!(message(&err).contains("mode"), "{}", message(&err));
    let typo = object(&[("finallity", 4.into())]);
    let err = call(JsSplitStore::open(unique("api-cfg"), Some(typo.into()), None)).await.expect_err("unknown key");
    assert!(message(&err).contains("finallity"), "{}", message(&err));
    for (bad, what) in [
        (object(&[("storageLimit", 1000.into()), ("storageReserve", 1000.into())]), "storageReserve"),
        (object(&[("compactAtShare", 1.5.into())]), "compactAtShare"),
        (object(&[("compactAtShare", 0.into())]), "compactAtShare"),
        (object(&[("storageLimit", (-1).into())]), "storageLimit"),
        (object(&[("storageLimit", 0.into())]), "storageLimit"),
        (object(&[("keptGraphBytes", (-1).into())]), "keptGraphBytes"),
        (object(&[("hotKeyListBytes", (-1).into())]), "hotKeyListBytes"),
    ] {
        let err = call(JsSplitStore::open(unique("api-cfg"), Some(bad.into()), None)).await.expect_err(what);
        assert_eq!(code(&err), "InvalidArgument");
        assert!(message(&err).contains(what), "{}", message(&err));
    }
    let none = object(&[("purgeLockedDeletes", 0.into())]);
    let err = call(JsSplitStore::open(unique("api-cfg"), Some(none.into()), None)).await.expect_err("no deletions");
    assert_eq!(code(&err), "InvalidConfig");
    assert!(message(&err).contains("locked deletions"), "{}", message(&err));

    call(store.close()).await.expect("close");
    let err = call(store.put(cid.clone().into(), bytes)).await.expect_err("closed");
    assert_eq!(code(&err), "Closed");
    call(store.close()).await.expect("close is idempotent");
    call(JsSplitStore::destroy(name)).await.expect("destroy");
}

#[wasm_bindgen_test]
async fn a_second_open_is_refused_with_in_use_and_destroy_waits_for_close() {
    let name = unique("api-lock");
    let first = open(&name, JsValue::UNDEFINED).await.expect("open");
    let err = open(&name, JsValue::UNDEFINED).await.err().expect("second open must fail");
    assert_eq!(code(&err), "InUse", "{}", message(&err));
    assert!(message(&err).contains("in use"), "{}", message(&err));
    let err = call(JsSplitStore::destroy(name.clone())).await.expect_err("destroy while open");
    assert_eq!(code(&err), "InUse");

    let bytes = b"\x01".to_vec();
    let cid = dag_cbor_blake2b_cid(&bytes).to_string();
    call(first.put(cid.clone().into(), bytes)).await.unwrap();
    call(first.close()).await.unwrap();
    // Reopening sees the data; destroying deletes it.
    let again = open(&name, JsValue::UNDEFINED).await.expect("reopen after close");
    assert_eq!(call(again.has(cid.clone().into(), None)).await.unwrap(), JsValue::TRUE);
    call(again.close()).await.unwrap();
    call(JsSplitStore::destroy(name.clone())).await.expect("destroy after close");
    let fresh = open(&name, JsValue::UNDEFINED).await.expect("open after destroy");
    assert_eq!(call(fresh.has(cid.into(), None)).await.unwrap(), JsValue::FALSE);
    call(fresh.close()).await.unwrap();
    call(JsSplitStore::destroy(name)).await.unwrap();
}

/// Errors are `Error`s with a message, a `code`, and the cause chain down to the browser's.
#[wasm_bindgen_test]
async fn errors_carry_a_code_and_a_cause_chain() {
    let name = unique("api-cause");
    let first = open(&name, JsValue::UNDEFINED).await.unwrap();
    let err = open(&name, JsValue::UNDEFINED).await.err().unwrap();
    assert!(err.is_instance_of::<js_sys::Error>());
    // A stored block that is not a block header, applied as the head: the store's error,
    // caused by the header decoder's.
    let bytes = b"\x82\x01\x02".to_vec();
    let cid = dag_cbor_blake2b_cid(&bytes).to_string();
    call(first.put(cid.clone().into(), bytes)).await.unwrap();
    let err = call(first.head_change(Array::of1(&cid.as_str().into()))).await.expect_err("not a header");
    assert_eq!(code(&err), "BadHeader");
    assert!(message(&err).contains(&cid), "the message names the block: {}", message(&err));
    let cause = get(&err, "cause");
    assert!(cause.is_instance_of::<js_sys::Error>(), "cause must be an Error: {cause:?}");
    assert!(!message(&cause).is_empty());
    call(first.close()).await.unwrap();

    // A block whose bytes do not match its CID, through importCar's hash check.
    let mut car = CHAIN_128.to_vec();
    let last = car.len() - 1;
    car[last] ^= 0xff;
    let store = open(&name, JsValue::UNDEFINED).await.unwrap();
    let objects = async || num(&get(&call(store.info()).await.unwrap(), "hot"), "keys");
    let before = objects().await;
    let err = call(store.import_car(car, JsValue::UNDEFINED)).await.expect_err("corrupt CAR");
    assert_eq!(code(&err), "BadCar", "{}", message(&err));
    assert!(!message(&err).is_empty());
    assert_eq!(objects().await, before, "a CAR that fails part-way writes nothing");
    call(store.close()).await.unwrap();
    call(JsSplitStore::destroy(name)).await.unwrap();
}

#[wasm_bindgen_test]
async fn import_head_policies() {
    let name = unique("api-head-policy");
    let store = open(&name, small_config("universal")).await.expect("open");
    let keep = object(&[("head", "keep".into())]).into();
    let res = call(store.import_car(CHAIN_128.to_vec(), keep)).await.expect("importCar");
    assert_eq!(get(&res, "head"), JsValue::FALSE);
    assert!(get(&res, "headSkipped").as_string().unwrap_or_default().contains("keep the head"), "{res:?}");
    assert_eq!(get(&call(store.info()).await.unwrap(), "headEpoch"), JsValue::NULL, "no head yet");
    // An empty store takes its first head from the default policy.
    let res = call(store.import_car(CHAIN_128.to_vec(), JsValue::UNDEFINED)).await.expect("importCar");
    assert_eq!(get(&res, "head"), JsValue::TRUE, "{:?}", get(&res, "headSkipped"));
    assert_eq!(get(&res, "headSkipped"), JsValue::UNDEFINED);
    for bad in [object(&[("head", "trust".into())]), object(&[("heads", "keep".into())])] {
        let err = call(store.import_car(CHAIN_128.to_vec(), bad.into())).await.expect_err("bad option");
        assert!(err.is_instance_of::<js_sys::TypeError>(), "{err:?}");
    }
    call(store.close()).await.unwrap();
    call(JsSplitStore::destroy(name)).await.unwrap();
}

#[wasm_bindgen_test]
async fn import_compact_check_and_export_a_real_chain() {
    let name = unique("api-chain");
    let store = open(&name, small_config("universal")).await.expect("open");
    let res = call(store.import_car(CHAIN_128.to_vec(), JsValue::UNDEFINED)).await.expect("importCar");
    assert_eq!(num(&res, "blocks"), 1049.0);
    let roots: Vec<String> = Array::from(&get(&res, "roots")).iter().map(|v| v.as_string().unwrap()).collect();
    assert_eq!(roots, vec![CHAIN_128_HEAD.to_owned()]);
    assert_eq!(get(&res, "head"), JsValue::TRUE, "{:?}", get(&res, "headSkipped"));

    let info = call(store.info()).await.unwrap();
    assert_eq!(num(&info, "headEpoch"), 128.0);
    assert_eq!(num(&get(&info, "hot"), "keys"), 1043.0, "identity blocks are never stored");
    assert_eq!(get(&info, "compacting"), JsValue::FALSE, "a 2020 head is out of sync: no automatic run");
    let check = call(store.check()).await.unwrap();
    assert_eq!(num(&check, "missing"), 0.0);
    assert_eq!(num(&check, "cold"), 0.0);

    // The export of the hot store is the import, block for block (by multihash).
    let (want_roots, want) = blocks_by_multihash(CHAIN_128);
    let exported = call(store.export_car("hot".into())).await.unwrap().dyn_into::<Uint8Array>().unwrap().to_vec();
    let (roots, got) = blocks_by_multihash(&exported);
    assert_eq!(roots, want_roots);
    assert!(got == want, "hot export differs from the imported blocks ({} vs {})", got.len(), want.len());

    // A manual compaction with progress events.
    let events = Array::new();
    let sink = events.clone();
    let on_progress = Closure::<dyn Fn(JsValue)>::new(move |e: JsValue| {
        sink.push(&e);
    });
    let f: Function = on_progress.as_ref().unchecked_ref::<Function>().clone();
    let report = call(store.compact(Some(f))).await.expect("compact");
    let phases: Vec<String> = events.iter().map(|e| get(&e, "phase").as_string().unwrap()).collect();
    log(&format!("{} progress events, phases {:?}", phases.len(), {
        let mut p = phases.clone();
        p.dedup();
        p
    }));
    for phase in ["mark", "collect", "move", "purge"] {
        assert!(phases.iter().any(|p| p == phase), "no {phase} progress event in {phases:?}");
    }
    let purged = num(&report, "purged");
    assert!(purged > 0.0, "a 128-epoch chain with F=4 must purge");
    assert_eq!(num(&report, "boundaryEpoch"), 128.0 - 16.0);

    let info = call(store.info()).await.unwrap();
    assert_eq!(num(&info, "compactions"), 1.0);
    assert_eq!(num(&get(&info, "hot"), "keys"), 1043.0 - purged);
    assert_eq!(num(&get(&info, "cold"), "keys"), purged, "universal mode copies every purged block");
    // The same counters as natively, as one serde definition renders them.
    let metrics = get(&info, "metrics");
    assert_eq!(num(&metrics, "compactionsFinished"), 1.0);
    assert_eq!(num(&metrics, "purged"), purged);
    assert_eq!(num(&metrics, "moved"), purged);
    assert_eq!(num(&metrics, "blocksWritten"), 1043.0, "every stored block of the import, once");
    let last = get(&info, "lastCompaction");
    assert_eq!(num(&last, "purged"), purged);
    assert_eq!(get(&Array::from(&get(&last, "phases")).get(0), "phase"), JsValue::from_str("protect"));
    let counts = call(store.count()).await.unwrap();
    assert_eq!(num(&get(&counts, "hot"), "keys"), 1043.0 - purged, "the estimate is IndexedDB's exact count");
    let check = call(store.check()).await.unwrap();
    assert_eq!(num(&check, "missing"), 0.0, "nothing live was lost");

    // Hot and cold are disjoint now, and together still the whole import.
    let all = call(store.export_car("all".into())).await.unwrap().dyn_into::<Uint8Array>().unwrap().to_vec();
    let (_, got) = blocks_by_multihash(&all);
    assert!(got == want, "hot + cold export differs from the import");
    let cold = call(store.export_car("cold".into())).await.unwrap().dyn_into::<Uint8Array>().unwrap().to_vec();
    assert_eq!(blocks_by_multihash(&cold).1.len() as f64, purged);
    // Every block is still readable through the store.
    for k in want.keys().take(50) {
        let mh = cid::multihash::Multihash::<64>::from_bytes(k).unwrap();
        let c = Cid::new_v1(0x71, mh).to_string();
        assert_eq!(call(store.has(c.into(), None)).await.unwrap(), JsValue::TRUE);
    }
    call(store.close()).await.unwrap();
    call(JsSplitStore::destroy(name)).await.unwrap();
}

/// A head change that meets the trigger rule starts a compaction in the background.
#[wasm_bindgen_test]
async fn head_change_triggers_a_background_compaction() {
    let name = unique("api-auto");
    let config = small_config("discard");
    Reflect::set(&config, &"syncGapSecs".into(), &JsValue::NULL).unwrap();
    let store = open(&name, config).await.expect("open");
    let res = call(store.import_car(CHAIN_128.to_vec(), JsValue::UNDEFINED)).await.expect("importCar");
    assert_eq!(get(&res, "head"), JsValue::TRUE);
    let mut waited = 0;
    loop {
        let info = call(store.info()).await.unwrap();
        if num(&info, "compactions") >= 1.0 && get(&info, "compacting") == JsValue::FALSE {
            assert!(get(&info, "lastError").is_null(), "{:?}", get(&info, "lastError"));
            assert!(num(&get(&info, "hot"), "keys") < 1043.0);
            break;
        }
        assert!(waited < 300, "no background compaction finished within 30 s");
        splitstore_wasm::js::sleep_ms(100.0).await;
        waited += 1;
    }
    let check = call(store.check()).await.unwrap();
    assert_eq!(num(&check, "missing"), 0.0);
    // headChange with the same head is accepted and does not compact again.
    call(store.head_change(Array::of1(&CHAIN_128_HEAD.into()))).await.expect("headChange");
    call(store.close()).await.unwrap();
    call(JsSplitStore::destroy(name)).await.unwrap();
}

/// A DAG-CBOR pair outside the chain: a parent linking a child. Returns (parent, child).
fn pair(tag: &str) -> ((Cid, Vec<u8>), (Cid, Vec<u8>)) {
    let mut child = vec![0x60 + tag.len() as u8];
    child.extend_from_slice(tag.as_bytes());
    let child_cid = dag_cbor_blake2b_cid(&child);
    let link = child_cid.to_bytes();
    let mut parent = vec![0x81, 0xd8, 0x2a, 0x58, (link.len() + 1) as u8, 0x00];
    parent.extend_from_slice(&link);
    ((dag_cbor_blake2b_cid(&parent), parent), (child_cid, child))
}

#[wasm_bindgen_test]
async fn pins_keep_a_dag_hot_across_compactions_and_reopen() {
    let name = unique("api-pins");
    let store = open(&name, small_config("discard")).await.expect("open");
    call(store.import_car(CHAIN_128.to_vec(), JsValue::UNDEFINED)).await.expect("importCar");
    let (pinned, pinned_child) = pair("pinned");
    let (loose, loose_child) = pair("loose");
    for (c, b) in [&pinned, &pinned_child, &loose, &loose_child] {
        call(store.put(c.to_string().into(), b.clone())).await.expect("put");
    }
    // The root goes in the store's pins; the child is kept because the root links it.
    call(store.protect(Array::of1(&pinned.0.to_string().into()))).await.expect("protect");
    let listed = call(store.protected()).await.unwrap();
    assert_eq!(Array::from(&listed).to_vec(), vec![JsValue::from_str(&pinned.0.to_string())]);
    let bad = call(store.protect(Array::of1(&"not a cid".into()))).await.expect_err("a bad CID");
    assert!(bad.is_instance_of::<js_sys::TypeError>(), "{bad:?}");

    call(store.compact(None)).await.expect("compact");
    let has = async |s: &JsSplitStore, c: &Cid| call(s.has(c.to_string().into(), None)).await.unwrap() == JsValue::TRUE;
    assert!(has(&store, &pinned.0).await && has(&store, &pinned_child.0).await, "the pinned DAG stays");
    assert!(!has(&store, &loose.0).await && !has(&store, &loose_child.0).await, "discard mode drops the rest");
    call(store.close()).await.unwrap();

    // The pin is durable: a reopened store still has it and honours it.
    let store = open(&name, small_config("discard")).await.expect("reopen");
    let listed = call(store.protected()).await.unwrap();
    assert_eq!(Array::from(&listed).length(), 1);
    call(store.compact(None)).await.expect("compact again");
    assert!(has(&store, &pinned_child.0).await);
    call(store.unprotect(Array::of1(&pinned.0.to_string().into()))).await.expect("unprotect");
    assert_eq!(Array::from(&call(store.protected()).await.unwrap()).length(), 0);
    call(store.compact(None)).await.expect("compact unpinned");
    assert!(!has(&store, &pinned.0).await && !has(&store, &pinned_child.0).await, "unpinned, it goes");
    call(store.close()).await.unwrap();
    call(JsSplitStore::destroy(name)).await.unwrap();
}

#[wasm_bindgen_test]
async fn prune_drops_old_state_from_cold_and_checks_its_options() {
    let name = unique("api-prune");
    let store = open(&name, small_config("universal")).await.expect("open");
    call(store.import_car(CHAIN_128.to_vec(), JsValue::UNDEFINED)).await.expect("importCar");
    call(store.compact(None)).await.expect("compact");
    let cold_before = num(&get(&call(store.count()).await.unwrap(), "cold"), "keys");
    assert!(cold_before > 0.0, "universal mode moved nothing to cold");

    for bad in [JsValue::UNDEFINED, object(&[]).into(), object(&[("retention", "0".into())]).into()] {
        let e = call(store.prune(bad.clone())).await.expect_err("bad options");
        assert!(e.is_instance_of::<js_sys::TypeError>(), "{bad:?}: {e:?}");
    }
    let e = call(store.prune(object(&[("retention", 0.into()), ("retain", 1.into())]).into())).await.expect_err("typo");
    assert!(message(&e).contains("retain"), "{}", message(&e));

    let phases = Array::new();
    let sink = phases.clone();
    let on_progress = Closure::<dyn Fn(JsValue)>::new(move |e: JsValue| {
        sink.push(&get(&e, "phase"));
    });
    let f: &Function = on_progress.as_ref().unchecked_ref();
    let options = object(&[("retention", 0.into()), ("onProgress", f.clone().into())]);
    let report = call(store.prune(options.into())).await.expect("prune");
    let cold_after = num(&get(&call(store.count()).await.unwrap(), "cold"), "keys");
    assert!(num(&report, "purged") > 0.0 && cold_after < cold_before, "{report:?}");
    assert_eq!(cold_before - cold_after, num(&report, "purged"));
    assert_eq!(num(&report, "coldScanned"), cold_before);
    assert!(phases.includes(&"purge".into(), 0), "{phases:?}");
    assert_eq!(num(&call(store.check()).await.unwrap(), "missing"), 0.0);
    let info = call(store.info()).await.unwrap();
    assert_eq!(num(&info, "prunes"), 1.0);
    assert_eq!(num(&get(&info, "lastPrune"), "purged"), num(&report, "purged"));
    // Keeping all state purges what nothing links: here, nothing more.
    let all = call(store.prune(object(&[("retention", (-1).into())]).into())).await.expect("prune -1");
    assert_eq!(num(&all, "purged"), 0.0);
    assert!(get(&all, "retainStateFrom").is_null());
    call(store.close()).await.unwrap();
    call(JsSplitStore::destroy(name)).await.unwrap();

    let name = unique("api-prune-discard");
    let store = open(&name, small_config("discard")).await.expect("open");
    call(store.import_car(CHAIN_128.to_vec(), JsValue::UNDEFINED)).await.expect("importCar");
    let e = call(store.prune(object(&[("retention", 0.into())]).into())).await.expect_err("discard");
    assert_eq!(code(&e), "PruneInDiscardMode");
    call(store.close()).await.unwrap();
    call(JsSplitStore::destroy(name)).await.unwrap();
}

#[wasm_bindgen_test]
async fn with_the_kept_graph_the_next_compaction_marks_the_same_without_reading() {
    let name = unique("api-graph");
    let config = small_config("discard");
    Reflect::set(&config, &"keptGraphBytes".into(), &(8 << 20).into()).unwrap();
    let store = open(&name, config).await.expect("open");
    call(store.import_car(CHAIN_128.to_vec(), JsValue::UNDEFINED)).await.expect("importCar");
    let first = call(store.compact(None)).await.expect("compact");
    assert!(num(&first, "graphObjects") > 0.0 && num(&first, "graphBytes") > 0.0, "{first:?}");
    // The imported blocks were recorded as they were written: the first compaction marks
    // from them.
    assert!(num(&first, "graphWritten") > 0.0 && num(&first, "graphMarked") > 0.0, "{first:?}");
    let second = call(store.compact(None)).await.expect("compact");
    assert!(num(&second, "graphMarked") > 0.0, "{second:?}");
    assert_eq!(num(&second, "graphWritten"), 0.0, "nothing written since: {second:?}");
    assert_eq!(num(&second, "marked"), num(&first, "marked"));
    assert_eq!(num(&call(store.check()).await.unwrap(), "missing"), 0.0);
    call(store.close()).await.unwrap();
    call(JsSplitStore::destroy(name)).await.unwrap();
    // A store that reads every block marks the same.
    let name = unique("api-graph-off");
    let store = open(&name, small_config("discard")).await.expect("open");
    call(store.import_car(CHAIN_128.to_vec(), JsValue::UNDEFINED)).await.expect("importCar");
    let reading = call(store.compact(None)).await.expect("compact");
    assert_eq!(num(&reading, "graphMarked"), 0.0);
    assert_eq!(num(&reading, "marked"), num(&first, "marked"));
    // What the reading store read below the headers, the other read or took from the graph.
    assert_eq!(
        num(&first, "loadedBelowHeaders") + num(&first, "graphMarked"),
        num(&reading, "loadedBelowHeaders"),
        "{first:?} {reading:?}"
    );
    assert!(num(&first, "loadedBelowHeaders") < num(&reading, "loadedBelowHeaders"));
    call(store.close()).await.unwrap();
    call(JsSplitStore::destroy(name)).await.unwrap();
}

/// The hot key list is on by default; `hotKeyListBytes: 0` turns it off.
#[wasm_bindgen_test]
async fn with_the_hot_key_list_the_next_collect_visits_fewer_keys_and_lists_the_same() {
    let mut reports = Vec::new();
    for limit in [None, Some(0)] {
        let name = unique("api-keys");
        let config = small_config("discard");
        if let Some(l) = limit {
            Reflect::set(&config, &"hotKeyListBytes".into(), &l.into()).unwrap();
        }
        let store = open(&name, config).await.expect("open");
        call(store.import_car(CHAIN_128.to_vec(), JsValue::UNDEFINED)).await.expect("importCar");
        let first = call(store.compact(None)).await.expect("compact");
        let second = call(store.compact(None)).await.expect("compact");
        assert_eq!(num(&call(store.check()).await.unwrap(), "missing"), 0.0);
        let held = get(&call(store.info()).await.unwrap(), "held");
        assert_eq!(num(&held, "hotKeyList") > 0.0, limit.is_none(), "{held:?}");
        assert_eq!(num(&held, "keptGraph"), 0.0, "{held:?}");
        call(store.close()).await.unwrap();
        call(JsSplitStore::destroy(name)).await.unwrap();
        reports.push((first, second));
    }
    let flag = |r: &JsValue, f: &str| Reflect::get(r, &f.into()).unwrap().as_bool();
    let [(first, second), (off_first, off_second)] = &reports[..] else { unreachable!() };
    assert_eq!(flag(first, "hotKeysListed"), Some(false), "a new store's collect scans");
    assert_eq!(flag(first, "hotKeysKept"), Some(true), "{first:?}");
    assert_eq!(flag(second, "hotKeysListed"), Some(true), "{second:?}");
    // The chain index marks the headers below the first compaction's boundary: the list
    // leaves them out, and nothing was dead.
    assert!(num(second, "hotScanned") < num(first, "hotScanned") - num(first, "dead"), "{first:?} {second:?}");
    assert_eq!((num(second, "dead"), num(second, "marked")), (0.0, num(first, "marked")));
    // Off: both collects scan, and the stores end the same.
    for r in [off_first, off_second] {
        assert_eq!((flag(r, "hotKeysListed"), flag(r, "hotKeysKept")), (Some(false), Some(false)), "{r:?}");
    }
    assert_eq!(num(off_second, "hotScanned"), num(first, "hotScanned") - num(first, "dead"));
    for f in ["marked", "dead", "purged"] {
        assert_eq!((num(off_first, f), num(off_second, f)), (num(first, f), num(second, f)), "{f}");
    }
}

/// Resolves with the `detail` of the next `kind` event on `target`.
fn next_event(target: &web_sys::EventTarget, kind: &str) -> js_sys::Promise {
    let target = target.clone();
    let kind = kind.to_owned();
    js_sys::Promise::new(&mut move |resolve: Function, _| {
        let once = Closure::once_into_js(move |e: web_sys::CustomEvent| {
            let _ = resolve.call1(&JsValue::UNDEFINED, &e.detail());
        });
        let options = web_sys::AddEventListenerOptions::new();
        options.set_once(true);
        target
            .add_event_listener_with_callback_and_add_event_listener_options(&kind, once.unchecked_ref(), &options)
            .unwrap();
    })
}

#[wasm_bindgen_test]
async fn reads_in_use_copy_cold_dags_into_hot_and_check_their_options() {
    let name = unique("api-reify");
    let config = small_config("universal");
    Reflect::set(&config, &"reifyQueue".into(), &100_000.into()).unwrap();
    let store = open(&name, config).await.expect("open");
    call(store.import_car(CHAIN_128.to_vec(), JsValue::UNDEFINED)).await.expect("importCar");
    call(store.compact(None)).await.expect("compact");
    let count = async |s: &JsSplitStore, which: &str| num(&get(&call(s.count()).await.unwrap(), which), "keys");
    let (hot, cold) = (count(&store, "hot").await, count(&store, "cold").await);
    assert!(cold > 0.0, "universal mode moved nothing to cold");

    let (cids, _) = blocks_by_multihash(CHAIN_128);
    let one: JsValue = cids[0].to_string().into();
    for (bad, what) in [(object(&[("inUse", 1.into())]), "boolean"), (object(&[("inuse", true.into())]), "inuse")] {
        let e = call(store.get(one.clone(), Some(bad.clone().into()))).await.expect_err("bad options");
        assert!(e.is_instance_of::<js_sys::TypeError>() && message(&e).contains(what), "{}", message(&e));
        let e = call(store.has(one.clone(), Some(bad.into()))).await.expect_err("bad options");
        assert!(e.is_instance_of::<js_sys::TypeError>(), "{}", message(&e));
    }
    let all: Array = read_car(CHAIN_128, CarLimits::default())
        .expect("CAR")
        .1
        .iter()
        .filter(|(c, _)| c.hash().code() != 0x00)
        .map(|(c, _)| JsValue::from(c.to_string()))
        .collect();
    let e = call(store.get_many(all.clone(), Some("yes".into()))).await.expect_err("bad options");
    assert!(e.is_instance_of::<js_sys::TypeError>(), "{}", message(&e));

    // Plain reads copy nothing; reads in use copy every cold block into hot, each once.
    call(store.get_many(all.clone(), None)).await.expect("getMany");
    assert_eq!(num(&get(&call(store.info()).await.unwrap(), "metrics"), "reifyQueued"), 0.0);
    let ended = next_event(&store.events(), "reifyend");
    let got =
        Array::from(&call(store.get_many(all.clone(), Some(object(&[("inUse", true.into())]).into()))).await.unwrap());
    assert!(got.iter().all(|b| !b.is_undefined()));
    let report = wasm_bindgen_futures::JsFuture::from(ended).await.unwrap();
    assert_eq!(num(&report, "copied"), cold, "{report:?}");
    assert_eq!((num(&report, "aborted"), num(&report, "missing")), (0.0, 0.0));
    assert_eq!(count(&store, "hot").await, hot + cold);
    assert_eq!(count(&store, "cold").await, cold, "reify only copies");
    let metrics = get(&call(store.info()).await.unwrap(), "metrics");
    assert_eq!(num(&metrics, "reified"), cold);
    // Now hot answers them all.
    let hits = num(&metrics, "hotHits");
    call(store.get_many(all.clone(), Some(object(&[("inUse", true.into())]).into()))).await.unwrap();
    let metrics = get(&call(store.info()).await.unwrap(), "metrics");
    assert_eq!(num(&metrics, "hotHits"), hits + all.length() as f64);
    assert_eq!(num(&call(store.check()).await.unwrap(), "missing"), 0.0);
    call(store.close()).await.unwrap();
    call(JsSplitStore::destroy(name)).await.unwrap();
}

/// `rotation: 0` rotates the hot database at every compaction and the cold one at every
/// prune: the store keeps serving from the new generations, reopens whole from them, and
/// `destroy` deletes every generation; `rotation: false` keeps the databases; a bad value is
/// refused.
#[wasm_bindgen_test]
async fn databases_rotate_after_a_compaction_and_a_prune_and_reopen_whole() {
    use splitstore_wasm::idb_kv::existing_generations;
    let generations = |name: String| async move { existing_generations(&name).await.unwrap().unwrap() };
    let with = |rotate: JsValue| {
        let config = small_config("universal");
        Reflect::set(&config, &"rotation".into(), &rotate).unwrap();
        config
    };

    let name = unique("api-rotate");
    let (hot, cold) = (format!("{name}-hot"), format!("{name}-cold"));
    let store = open(&name, with(0.into())).await.expect("open");
    call(store.import_car(CHAIN_128.to_vec(), JsValue::UNDEFINED)).await.expect("importCar");
    let report = call(store.compact(None)).await.expect("compact");
    let purged = num(&report, "purged");
    assert_eq!(generations(hot.clone()).await, vec![1], "the compaction rotated the hot database");
    assert_eq!(generations(cold.clone()).await, vec![0], "cold is rotated by prunes only");
    let options = object(&[("retention", 0.into())]);
    let pruned = call(store.prune(options.into())).await.expect("prune");
    assert!(num(&pruned, "purged") > 0.0, "the prune must drop old state");
    assert_eq!(generations(cold.clone()).await, vec![1], "the prune rotated the cold database");
    let check = call(store.check()).await.unwrap();
    assert_eq!(num(&check, "missing"), 0.0, "nothing live was lost");
    // Written after the rotation: into the new generation.
    let bytes = b"\x82\x03\x04".to_vec();
    let cid = dag_cbor_blake2b_cid(&bytes).to_string();
    call(store.put(cid.clone().into(), bytes)).await.expect("put");
    call(store.close()).await.unwrap();

    let store = open(&name, with(JsValue::FALSE)).await.expect("reopen");
    let info = call(store.info()).await.unwrap();
    assert_eq!(num(&get(&info, "hot"), "keys"), 1043.0 - purged + 1.0);
    assert_eq!(num(&get(&info, "cold"), "keys"), purged - num(&pruned, "purged"));
    assert_eq!(num(&call(store.check()).await.unwrap(), "missing"), 0.0);
    assert_eq!(call(store.has(cid.into(), None)).await.unwrap(), JsValue::TRUE);
    call(store.compact(None)).await.expect("compact again");
    assert_eq!(generations(hot.clone()).await, vec![1], "rotation: false keeps the database");
    call(store.close()).await.unwrap();
    call(JsSplitStore::destroy(name.clone())).await.unwrap();
    assert!(generations(hot).await.is_empty(), "destroy deletes every generation");
    assert!(generations(cold).await.is_empty(), "destroy deletes every generation");

    for bad in [JsValue::from(-1), JsValue::from(f64::NAN), JsValue::TRUE, "1".into()] {
        let e = open(&unique("api-rotate-bad"), with(bad.clone())).await.err().expect("refused");
        assert_eq!(code(&e), "InvalidArgument", "{bad:?}");
        assert!(message(&e).contains("rotation"), "{}", message(&e));
    }
}
