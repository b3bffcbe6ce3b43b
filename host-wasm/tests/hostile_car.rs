//! Hostile CAR files given to `importCar` in the browser: every one either imports or rejects
//! with a JS `Error` whose `code` is `BadCar`; a rejected file leaves the head and the object
//! count as they were; the wasm instance keeps answering afterwards. The inputs are every CAR
//! fixture of the shared test data and seeded mutations of a real chain (truncations, flipped
//! bytes, huge varints), imported over a store whose head is that chain.
#![cfg(target_arch = "wasm32")]

mod support;

use js_sys::Reflect;
use splitstore_wasm::JsSplitStore;
use support::{call, log, unique};
use wasm_bindgen::{convert::TryFromJsValue, JsCast, JsValue};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

include!(concat!(env!("OUT_DIR"), "/car_fixtures.rs"));

const CHAIN_128: &[u8] = include_bytes!("../../../shared/testdata/kubo-lotus-testnet/lotus_testnet_export_128.car");
/// Mutations of the chain per run (each is one import into IndexedDB).
const MUTATIONS: u64 = 48;

fn get(o: &JsValue, k: &str) -> JsValue {
    Reflect::get(o, &k.into()).expect("an object")
}

/// What a rejected import must leave unchanged.
#[derive(Debug, PartialEq)]
struct Seen {
    head: String,
    objects: Option<f64>,
}

async fn seen(store: &JsSplitStore) -> Seen {
    let info = call(store.info()).await.expect("info answers after any import");
    let head = js_sys::JSON::stringify(&get(&info, "head")).map(String::from).unwrap_or_default();
    Seen { head, objects: get(&get(&info, "hot"), "keys").as_f64() }
}

/// Imports `bytes`; returns true when the file was accepted.
async fn hostile_import(store: &JsSplitStore, what: &str, bytes: Vec<u8>) -> bool {
    let before = seen(store).await;
    let result = call(store.import_car(bytes, JsValue::UNDEFINED)).await;
    let after = seen(store).await;
    match result {
        Ok(_) => true,
        Err(e) => {
            let err = e.dyn_ref::<js_sys::Error>().unwrap_or_else(|| panic!("{what}: rejected with a non-Error {e:?}"));
            assert_eq!(
                get(&e, "code").as_string().as_deref(),
                Some("BadCar"),
                "{what}: {}",
                String::from(err.message())
            );
            assert!(err.message().length() > 10, "{what}: unhelpful message");
            assert_eq!(before, after, "{what}: a rejected file changed the store");
            false
        }
    }
}

/// xorshift64*: the mutations are the same in every run.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

fn mutate(rng: &mut Rng, base: &[u8]) -> (String, Vec<u8>) {
    let mut b = base.to_vec();
    let at = rng.below(b.len() as u64) as usize;
    match rng.below(4) {
        0 => {
            b.truncate(at);
            (format!("truncated at {at}"), b)
        }
        1 => {
            let flip = 1 + rng.below(255) as u8;
            b[at] ^= flip;
            (format!("byte {at} ^ {flip:#x}"), b)
        }
        2 => {
            // A varint claiming an enormous length where a section length may start.
            let end = (at + 10).min(b.len());
            b.splice(at..end, [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
            (format!("huge varint at {at}"), b)
        }
        _ => {
            let len = 1 + rng.below(64) as usize;
            b.drain(at..(at + len).min(b.len()));
            (format!("{len} bytes cut at {at}"), b)
        }
    }
}

#[wasm_bindgen_test]
async fn hostile_cars_reject_cleanly_and_change_nothing() {
    assert!(
        CAR_FIXTURES.len() >= 30,
        "only {} CAR fixtures under {TESTDATA}: is the shared test data there?",
        CAR_FIXTURES.len()
    );
    let name = unique("hostile-car");
    let store = call(JsSplitStore::open(name.clone(), None, None)).await.expect("open");
    let store = JsSplitStore::try_from_js_value(store).expect("open resolves with a SplitStore");
    assert!(hostile_import(&store, "the base chain", CHAIN_128.to_vec()).await, "the base chain imports");

    let (mut accepted, mut rejected) = (0, 0);
    for (path, bytes) in CAR_FIXTURES {
        if hostile_import(&store, path, bytes.to_vec()).await {
            accepted += 1;
        } else {
            rejected += 1;
        }
    }
    log(&format!("fixtures: {accepted} imported, {rejected} rejected"));
    assert!(accepted >= 10 && rejected >= 5, "{accepted} imported, {rejected} rejected");

    let mut rng = Rng(0x5eed_cafe);
    let mut mutated_rejected = 0;
    for _ in 0..MUTATIONS {
        let (what, bytes) = mutate(&mut rng, CHAIN_128);
        if !hostile_import(&store, &what, bytes).await {
            mutated_rejected += 1;
        }
    }
    log(&format!("mutations: {mutated_rejected} of {MUTATIONS} rejected"));
    assert!(mutated_rejected >= MUTATIONS / 2, "most mutations of a verified chain must be rejected");
    let check = call(store.check()).await.expect("check");
    assert_eq!(get(&check, "missing").as_f64(), Some(0.0), "nothing live is missing after it all");
    call(store.close()).await.expect("close");
    call(JsSplitStore::destroy(name)).await.expect("destroy");
}
