//! A store the browser may evict: persistent storage is asked for at open and reported by
//! `info()`, and an open tells an evicted store (in whole with `mustExist`, or in part) from a
//! new one through the store identity record, instead of starting again from nothing.
//! Eviction is simulated as the browser does it: `indexedDB.deleteDatabase` on a closed store.
#![cfg(target_arch = "wasm32")]

#[path = "support/raw_idb.rs"]
mod raw;
mod support;

use js_sys::Reflect;
use splitstore_core::{key::dag_cbor_blake2b_cid, Cid, Config, SplitStore};
use splitstore_wasm::{
    db_name,
    identity::{self, decide, establish_until, Found, Step, StoreRecord, Verdict},
    js::object,
    IdbKv, JsClock, JsSplitStore, LockPolicy, Role,
};
use support::{call, unique};
use wasm_bindgen::{convert::TryFromJsValue, JsCast, JsValue};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// The private object store that holds the identity record.
const PRIVATE: &str = "sync";

fn get(o: &JsValue, k: &str) -> JsValue {
    Reflect::get(o, &k.into()).unwrap()
}

fn code(e: &JsValue) -> String {
    get(e, "code").as_string().unwrap_or_default()
}

fn message(e: &JsValue) -> String {
    get(e, "message").as_string().unwrap_or_else(|| format!("{e:?}"))
}

async fn open(name: &str, config: JsValue) -> Result<JsSplitStore, JsValue> {
    let v = call(JsSplitStore::open(name.to_owned(), Some(config), None)).await?;
    Ok(JsSplitStore::try_from_js_value(v).expect("open resolves with a SplitStore"))
}

fn must_exist() -> JsValue {
    object(&[("mustExist", true.into())]).into()
}

fn block(n: u8) -> (String, Vec<u8>) {
    let bytes = vec![0x82, 0x01, n];
    (dag_cbor_blake2b_cid(&bytes).to_string(), bytes)
}

/// Creates the store `name` with one block in it, and closes it.
async fn create_with_block(name: &str) -> String {
    let store = open(name, JsValue::UNDEFINED).await.expect("open a new store");
    let (cid, bytes) = block(1);
    call(store.put(cid.clone().into(), bytes)).await.expect("put");
    call(store.close()).await.expect("close");
    cid
}

/// The identity record of one database, read directly.
async fn record(db: &str) -> Option<StoreRecord> {
    let bytes = raw::get_value(db, PRIVATE, &identity::RECORD_KEY.into()).await?;
    assert_eq!((bytes.len(), bytes[0]), (18, 1), "an 18-byte record of format 1: {bytes:02x?}");
    let id = u128::from_le_bytes(bytes[2..].try_into().unwrap());
    Some(StoreRecord { id, complete: bytes[1] == 1 })
}

/// Both databases carry the same complete record; returns the id.
async fn assert_same_id(name: &str) -> u128 {
    let hot = record(&db_name(name, Role::Hot)).await.expect("hot has a record");
    let cold = record(&db_name(name, Role::Cold)).await.expect("cold has a record");
    assert_eq!(hot.id, cold.id, "both databases carry the store's id");
    assert!(hot.complete && cold.complete, "{hot:?} {cold:?}");
    hot.id
}

async fn assert_refused(name: &str, config: JsValue, what: &[&str]) {
    let err = open(name, config).await.err().expect("the open must be refused");
    assert_eq!(code(&err), "StoreEvicted", "{}", message(&err));
    assert!(err.is_instance_of::<js_sys::Error>());
    for w in what {
        assert!(message(&err).contains(w), "the message names {w:?}: {}", message(&err));
    }
}

/// The store asks for persistent storage when it opens (unless `persist: false`), and
/// `info().persisted` is what `navigator.storage.persisted()` answers, `null` without the API.
#[wasm_bindgen_test]
async fn persistent_storage_is_asked_for_at_open_and_reported_by_info() {
    let name = unique("evict-persist");
    let fake = raw::fake_storage(true, false);
    let store = open(&name, JsValue::UNDEFINED).await.expect("open");
    assert_eq!(fake.persist_calls(), 1, "open asks for persistent storage");
    let info = call(store.info()).await.unwrap();
    assert_eq!(get(&info, "persisted"), JsValue::TRUE, "the granted request is reported");
    assert!(get(&info, "head").is_null(), "the core's fields are still there: {info:?}");
    // The answer is asked again at each call: a permission the user revoked shows.
    fake.set_persisted(false);
    assert_eq!(get(&call(store.info()).await.unwrap(), "persisted"), JsValue::FALSE);
    call(store.close()).await.unwrap();

    let store = open(&name, object(&[("persist", false.into())]).into()).await.expect("open, not asking");
    assert_eq!(fake.persist_calls(), 1, "persist: false asks nothing");
    assert_eq!(get(&call(store.info()).await.unwrap(), "persisted"), JsValue::FALSE);
    call(store.close()).await.unwrap();
    fake.restore();

    // Without the API (an old browser, or a context without navigator.storage): the open
    // works and the answer is unknown.
    let missing = raw::fake_storage(true, true);
    let store = open(&name, JsValue::UNDEFINED).await.expect("open without navigator.storage");
    assert!(get(&call(store.info()).await.unwrap(), "persisted").is_null());
    assert!(get(&call(store.info()).await.unwrap(), "storage").is_null(), "no quota reported, no default limit");
    call(store.close()).await.unwrap();
    missing.restore();

    let err = open(&name, object(&[("persist", "yes".into())]).into()).await.err().expect("not a boolean");
    assert_eq!(code(&err), "InvalidArgument");
    call(JsSplitStore::destroy(name)).await.unwrap();
}

/// With the browser's own `navigator.storage`, `info().persisted` is its answer: the answer
/// `persist()` gives (the request the open made, made again here to learn its answer).
#[wasm_bindgen_test]
async fn info_reports_the_browsers_own_answer() {
    let name = unique("evict-persist-real");
    let store = open(&name, JsValue::UNDEFINED).await.expect("open");
    let answer = raw::real_persist().await.expect("Chromium answers persist()");
    let reported = get(&call(store.info()).await.unwrap(), "persisted");
    support::log(&format!("Chromium's persist(): {answer}; info().persisted: {reported:?}"));
    assert_eq!(reported, JsValue::from_bool(answer));
    assert_eq!(raw::real_persisted().await, Some(answer));
    // The default storage limit: 9/10 of the quota the browser reported at the open, a
    // quarter of it kept for compactions; the usage is the browser's figure.
    let storage = get(&call(store.info()).await.unwrap(), "storage");
    let field = |k: &str| get(&storage, k).as_f64().unwrap_or_else(|| panic!("storage.{k}: {storage:?}"));
    let quota = raw::real_estimate_quota().await;
    let (limit, reserve, usage) = (field("limit"), field("reserve"), field("usage"));
    assert!(limit > 0.0 && (limit - quota * 0.9).abs() < quota * 0.01, "limit {limit} of quota {quota}");
    assert_eq!(reserve, (limit / 4.0).floor());
    assert!(usage > 0.0 && usage < limit, "usage {usage}");
    call(store.close()).await.unwrap();
    call(JsSplitStore::destroy(name)).await.unwrap();
}

/// A new store carries one id in both databases, kept across opens; `destroy` removes both
/// databases, and the next open creates a new store with a new id.
#[wasm_bindgen_test]
async fn a_new_store_carries_one_id_in_both_databases() {
    let name = unique("evict-new");
    let cid = create_with_block(&name).await;
    let id = assert_same_id(&name).await;
    let store = open(&name, must_exist()).await.expect("mustExist opens a store that exists");
    assert_eq!(call(store.has(cid.clone().into(), None)).await.unwrap(), JsValue::TRUE);
    call(store.close()).await.unwrap();
    assert_eq!(assert_same_id(&name).await, id, "the id is kept");

    call(JsSplitStore::destroy(name.clone())).await.expect("destroy");
    for role in [Role::Hot, Role::Cold] {
        assert!(!raw::database_exists(&db_name(&name, role)).await, "destroy removes {role:?}");
    }
    let store = open(&name, JsValue::UNDEFINED).await.expect("a destroyed store is created again");
    assert_eq!(call(store.has(cid.into(), None)).await.unwrap(), JsValue::FALSE);
    call(store.close()).await.unwrap();
    assert_ne!(assert_same_id(&name).await, id, "a new store has a new id");
    call(JsSplitStore::destroy(name)).await.unwrap();
}

/// One database deleted while the store was closed: the open is refused, names the missing
/// database, leaves the other one as it was, and does not leave the missing one re-created.
async fn one_database_evicted(role: Role) {
    let name = unique(&format!("evict-{}", role.as_str()));
    create_with_block(&name).await;
    let (gone, kept) = (db_name(&name, role), db_name(&name, if role == Role::Hot { Role::Cold } else { Role::Hot }));
    let before = raw::entries(&kept, &[]).await;
    assert!(before.iter().any(|l| l.starts_with(PRIVATE)), "{kept} holds its record: {before:?}");
    raw::delete_database(&gone).await;

    for config in [JsValue::UNDEFINED, must_exist()] {
        assert_refused(&name, config, &[&gone, &kept, "SplitStore.destroy", "restore"]).await;
        assert!(!raw::database_exists(&gone).await, "the refused open leaves {gone} absent");
        assert_eq!(raw::entries(&kept, &[]).await, before, "the refused open leaves {kept} untouched");
    }

    // The way out: destroy, then a new store.
    call(JsSplitStore::destroy(name.clone())).await.expect("destroy what is left");
    let store = open(&name, JsValue::UNDEFINED).await.expect("a new store");
    call(store.close()).await.unwrap();
    assert_same_id(&name).await;
    call(JsSplitStore::destroy(name)).await.unwrap();
}

#[wasm_bindgen_test]
async fn an_evicted_hot_database_is_refused_and_cold_left_alone() {
    one_database_evicted(Role::Hot).await;
}

#[wasm_bindgen_test]
async fn an_evicted_cold_database_is_refused_and_hot_left_alone() {
    one_database_evicted(Role::Cold).await;
}

/// Both databases deleted: with `mustExist` the open is refused and creates nothing; without
/// it, a new empty store.
#[wasm_bindgen_test]
async fn a_wholly_evicted_store_is_refused_with_must_exist_else_created_anew() {
    let name = unique("evict-both");
    let cid = create_with_block(&name).await;
    let id = assert_same_id(&name).await;
    for role in [Role::Hot, Role::Cold] {
        raw::delete_database(&db_name(&name, role)).await;
    }
    assert_refused(&name, must_exist(), &["does not exist", &db_name(&name, Role::Hot)]).await;
    for role in [Role::Hot, Role::Cold] {
        assert!(!raw::database_exists(&db_name(&name, role)).await, "a refused open creates nothing");
    }

    let store = open(&name, JsValue::UNDEFINED).await.expect("without mustExist: a new store");
    assert_eq!(call(store.has(cid.into(), None)).await.unwrap(), JsValue::FALSE);
    call(store.close()).await.unwrap();
    assert_ne!(assert_same_id(&name).await, id);
    call(JsSplitStore::destroy(name.clone())).await.unwrap();

    // A name never used is refused the same way.
    assert_refused(&unique("evict-never"), must_exist(), &["does not exist"]).await;
}

/// Two databases that belong to different stores (one restored from elsewhere) are refused.
#[wasm_bindgen_test]
async fn databases_of_two_stores_are_refused() {
    let (a, b) = (unique("evict-mix-a"), unique("evict-mix-b"));
    create_with_block(&a).await;
    create_with_block(&b).await;
    let key: JsValue = identity::RECORD_KEY.into();
    let b_cold = raw::get_value(&db_name(&b, Role::Cold), PRIVATE, &key).await.unwrap();
    raw::put_value(&db_name(&a, Role::Cold), PRIVATE, &key, &b_cold).await;
    assert_refused(&a, JsValue::UNDEFINED, &["different stores", "SplitStore.destroy"]).await;
    call(JsSplitStore::destroy(a)).await.unwrap();
    call(JsSplitStore::destroy(b)).await.unwrap();
}

/// A store as this package created it before the identity record: both databases, no record.
async fn create_without_record(name: &str) -> String {
    let hot = IdbKv::open(&db_name(name, Role::Hot), LockPolicy::Fail).await.unwrap();
    let cold = IdbKv::open(&db_name(name, Role::Cold), LockPolicy::Fail).await.unwrap();
    let store = SplitStore::open(hot.clone(), cold.clone(), JsClock::new(), Config::default()).await.unwrap();
    let (cid, bytes) = block(2);
    store.put(&Cid::try_from(cid.as_str()).unwrap(), bytes).await.unwrap();
    store.close().await.unwrap();
    drop(store);
    hot.close().await;
    cold.close().await;
    for role in [Role::Hot, Role::Cold] {
        assert_eq!(record(&db_name(name, role)).await, None);
    }
    cid
}

#[wasm_bindgen_test]
async fn a_store_from_before_the_record_opens_and_gets_one() {
    let name = unique("evict-legacy");
    let cid = create_without_record(&name).await;
    let store = open(&name, must_exist()).await.expect("a store without records opens");
    assert_eq!(call(store.has(cid.into(), None)).await.unwrap(), JsValue::TRUE);
    call(store.close()).await.unwrap();
    assert_same_id(&name).await;
    call(JsSplitStore::destroy(name)).await.unwrap();
}

/// Before the record, a store always had both databases before it held data: one that holds
/// data beside a database this open had to create lost that database.
#[wasm_bindgen_test]
async fn a_store_from_before_the_record_with_a_database_gone_is_refused() {
    let name = unique("evict-legacy-half");
    create_without_record(&name).await;
    let (hot, cold) = (db_name(&name, Role::Hot), db_name(&name, Role::Cold));
    raw::delete_database(&cold).await;
    let before = raw::entries(&hot, &[]).await;
    assert_refused(&name, JsValue::UNDEFINED, &[&cold]).await;
    assert!(!raw::database_exists(&cold).await);
    assert_eq!(raw::entries(&hot, &[]).await, before, "hot is left untouched");
    call(JsSplitStore::destroy(name)).await.unwrap();
}

/// A crash while a store is created: before any record, between cold's *creating* record and
/// hot's, and before cold's record is completed. The next open finishes the creation with the
/// same id instead of reporting an eviction; `mustExist` refuses a store that never finished
/// being created and holds nothing.
#[wasm_bindgen_test]
async fn a_crash_between_the_record_writes_is_finished_by_the_next_open() {
    for stop in [None, Some(Step::ColdCreating), Some(Step::Hot)] {
        let name = unique("evict-crash");
        let hot = IdbKv::open(&db_name(&name, Role::Hot), LockPolicy::Fail).await.unwrap();
        let cold = IdbKv::open(&db_name(&name, Role::Cold), LockPolicy::Fail).await.unwrap();
        if let Some(step) = stop {
            establish_until(&name, &hot, &cold, false, Some(step)).await.expect("the records until the crash");
        }
        // The crash: the connections go away with nothing more written.
        hot.close().await;
        cold.close().await;
        let written = record(&db_name(&name, Role::Cold)).await;
        assert_eq!(written.is_some(), stop.is_some(), "{stop:?}");
        assert_eq!(record(&db_name(&name, Role::Hot)).await.is_some(), stop == Some(Step::Hot));

        if stop != Some(Step::Hot) {
            assert_refused(&name, must_exist(), &["does not exist"]).await;
        }
        let store = open(&name, JsValue::UNDEFINED).await.unwrap_or_else(|e| panic!("{stop:?}: {}", message(&e)));
        call(store.close()).await.unwrap();
        let id = assert_same_id(&name).await;
        if let Some(w) = written {
            assert_eq!(id, w.id, "{stop:?}: the creation finished with the id it began with");
        }
        call(JsSplitStore::destroy(name)).await.unwrap();
    }
}

/// The rules of `identity::decide`, case by case.
#[wasm_bindgen_test]
fn the_rules_at_open() {
    let rec = |id, complete| Some(StoreRecord { id, complete });
    let db = |created, empty, record| Found { created, empty, record };
    let new = db(true, true, None);
    let bare_empty = db(false, true, None);
    let bare_data = db(false, false, None);
    let cases = [
        // (hot, cold, mustExist, verdict)
        (db(false, false, rec(7, true)), db(false, true, rec(7, true)), true, Verdict::Ready),
        (db(false, false, rec(7, true)), db(false, true, rec(8, true)), false, Verdict::Mismatch),
        (db(false, false, rec(7, true)), db(false, true, rec(8, false)), false, Verdict::Mismatch),
        (db(false, true, rec(7, true)), db(false, true, rec(7, false)), true, Verdict::Complete(7)),
        (db(false, false, rec(7, true)), new, false, Verdict::Missing(Role::Cold)),
        (db(false, false, rec(7, true)), bare_empty, false, Verdict::Missing(Role::Cold)),
        (new, db(false, true, rec(7, true)), false, Verdict::Missing(Role::Hot)),
        // Hot re-created (by anything) after the store was complete.
        (bare_empty, db(false, true, rec(7, true)), false, Verdict::Missing(Role::Hot)),
        (bare_data, db(false, true, rec(7, true)), false, Verdict::Missing(Role::Hot)),
        // Creation, or the first upgrade of a store from before the record, interrupted.
        (bare_empty, db(false, true, rec(7, false)), false, Verdict::Resume(7)),
        (bare_data, db(false, false, rec(7, false)), true, Verdict::Resume(7)),
        (new, db(false, true, rec(7, false)), false, Verdict::Resume(7)),
        (new, db(false, false, rec(7, false)), false, Verdict::Missing(Role::Hot)),
        (bare_empty, db(false, true, rec(7, false)), true, Verdict::Absent),
        // No record anywhere.
        (new, new, false, Verdict::Create),
        (new, new, true, Verdict::Absent),
        (bare_empty, bare_empty, true, Verdict::Absent),
        (bare_empty, new, false, Verdict::Create),
        (bare_data, bare_data, true, Verdict::Create),
        (bare_data, bare_empty, true, Verdict::Create),
        (bare_data, new, false, Verdict::Missing(Role::Cold)),
        (new, bare_data, true, Verdict::Missing(Role::Hot)),
    ];
    for (hot, cold, must_exist, want) in cases {
        assert_eq!(decide(hot, cold, must_exist), want, "hot {hot:?}, cold {cold:?}, mustExist {must_exist}");
    }
}
