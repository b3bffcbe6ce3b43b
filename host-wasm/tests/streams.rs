//! CAR files as web streams: `importCarStream` reads a `ReadableStream` chunk by chunk with
//! bounded memory, and `exportCarStream` produces the same bytes as `exportCar`, page by page.
#![cfg(target_arch = "wasm32")]

mod support;

use futures::{stream, StreamExt};
use js_sys::{Reflect, Uint8Array};
use splitstore_core::{
    car::{encode_header_v1, encode_section},
    key::{dag_cbor_blake2b_cid, RAW},
    Cid,
};
use splitstore_wasm::JsSplitStore;
use support::{call, log, unique};
use wasm_bindgen::{convert::TryFromJsValue, JsCast, JsValue};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

const CHAIN_128: &[u8] = include_bytes!("../../../shared/testdata/kubo-lotus-testnet/lotus_testnet_export_128.car");

fn get(o: &JsValue, k: &str) -> JsValue {
    Reflect::get(o, &k.into()).unwrap()
}

async fn open(name: &str) -> JsSplitStore {
    let config: JsValue = splitstore_wasm::js::object(&[("mode", "universal".into())]).into();
    let v = call(JsSplitStore::open(name.to_owned(), Some(config), None)).await.expect("open");
    JsSplitStore::try_from_js_value(v).expect("a SplitStore")
}

/// A `ReadableStream` of `chunks`, produced lazily.
fn readable(chunks: impl futures::Stream<Item = Vec<u8>> + 'static) -> web_sys::ReadableStream {
    let js = chunks.map(|c| Ok(JsValue::from(Uint8Array::from(&c[..]))));
    wasm_streams::ReadableStream::from_stream(js).into_raw()
}

/// Every chunk of a `ReadableStream`, joined.
async fn drain(s: web_sys::ReadableStream) -> Result<Vec<u8>, JsValue> {
    let mut out = Vec::new();
    let mut chunks = wasm_streams::ReadableStream::from_raw(s).into_stream();
    let mut n = 0;
    while let Some(c) = chunks.next().await {
        out.extend_from_slice(&c?.dyn_into::<Uint8Array>().expect("a Uint8Array chunk").to_vec());
        n += 1;
    }
    log(&format!("{n} chunks, {} bytes", out.len()));
    Ok(out)
}

fn memory_bytes() -> f64 {
    wasm_bindgen::memory()
        .dyn_into::<js_sys::WebAssembly::Memory>()
        .unwrap()
        .buffer()
        .unchecked_into::<js_sys::ArrayBuffer>()
        .byte_length() as f64
}

#[wasm_bindgen_test]
async fn a_chain_streamed_in_small_chunks_imports_as_the_whole_file_does_and_exports_alike() {
    let (streamed, whole) = (unique("stream-in"), unique("whole-in"));
    let a = open(&streamed).await;
    let b = open(&whole).await;
    // 997-byte chunks: sections and varints split at every kind of place.
    let chunks: Vec<Vec<u8>> = CHAIN_128.chunks(997).map(<[u8]>::to_vec).collect();
    let res = call(a.import_car_stream(readable(stream::iter(chunks)), JsValue::UNDEFINED)).await.expect("stream");
    let want = call(b.import_car(CHAIN_128.to_vec(), JsValue::UNDEFINED)).await.expect("whole");
    for k in ["blocks", "head"] {
        assert_eq!(get(&res, k), get(&want, k), "{k}");
    }
    let (ia, ib) = (call(a.info()).await.unwrap(), call(b.info()).await.unwrap());
    assert_eq!(get(&ia, "headEpoch"), 128.0);
    assert_eq!(get(&get(&ia, "hot"), "keys"), get(&get(&ib, "hot"), "keys"));

    for which in ["hot", "all"] {
        let buffered = call(a.export_car(which.into())).await.unwrap().dyn_into::<Uint8Array>().unwrap().to_vec();
        let streamed = drain(a.export_car_stream(which.into()).expect("export stream")).await.expect("drain");
        assert!(streamed == buffered, "{which}: the stream's bytes differ from exportCar's");
        let other = drain(b.export_car_stream(which.into()).unwrap()).await.unwrap();
        assert!(other == streamed, "{which}: two stores with the same blocks export different bytes");
    }
    let err = a.export_car_stream("warm".into()).expect_err("a bad source");
    assert!(err.is_instance_of::<js_sys::TypeError>(), "{err:?}");
    for (s, n) in [(a, streamed), (b, whole)] {
        call(s.close()).await.unwrap();
        call(JsSplitStore::destroy(n)).await.unwrap();
    }
}

#[wasm_bindgen_test]
async fn a_truncated_stream_is_refused_and_the_head_stays() {
    let name = unique("stream-bad");
    let store = open(&name).await;
    let cut = CHAIN_128[..CHAIN_128.len() - 100].to_vec();
    let err = call(store.import_car_stream(readable(stream::iter(vec![cut])), JsValue::UNDEFINED))
        .await
        .expect_err("a truncated CAR");
    assert_eq!(get(&err, "code"), "BadCar");
    let info = call(store.info()).await.unwrap();
    assert!(get(&info, "head").is_null(), "a refused stream never moves the head");
    call(store.close()).await.unwrap();
    call(JsSplitStore::destroy(name)).await.unwrap();
}

/// 48 MiB of 64 KiB raw blocks, generated as the stream is read: the module's memory grows by
/// far less than the file (it never holds the file).
#[wasm_bindgen_test]
async fn a_large_stream_imports_in_bounded_memory() {
    const BLOCK: usize = 64 << 10;
    const BLOCKS: usize = 768;
    let name = unique("stream-big");
    let store = open(&name).await;
    let mut header = Vec::new();
    encode_header_v1(&[], &mut header);
    let sections = stream::iter(0..BLOCKS).map(|i| {
        let mut data: Vec<u8> = (0..BLOCK).map(|j| ((i * 7919 + j * 31) % 251) as u8).collect();
        data[..8].copy_from_slice(&(i as u64).to_le_bytes());
        let cid = Cid::new_v1(RAW, *dag_cbor_blake2b_cid(&data).hash());
        let mut out = Vec::with_capacity(BLOCK + 64);
        encode_section(&cid, &data, &mut out);
        out
    });
    let before = memory_bytes();
    let chunks = stream::iter(vec![header]).chain(sections);
    let res = call(store.import_car_stream(readable(chunks), JsValue::UNDEFINED)).await.expect("import");
    let grown = memory_bytes() - before;
    log(&format!(
        "imported {BLOCKS} blocks ({} MiB); module memory grew {:.1} MiB",
        (BLOCKS * BLOCK) >> 20,
        grown / 1048576.0
    ));
    assert_eq!(get(&res, "blocks"), BLOCKS as f64);
    assert!(grown < (BLOCKS * BLOCK) as f64 / 3.0, "memory grew {grown} bytes for a {} byte file", BLOCKS * BLOCK);
    let info = call(store.info()).await.unwrap();
    assert_eq!(get(&get(&info, "hot"), "keys"), BLOCKS as f64);
    call(store.close()).await.unwrap();
    call(JsSplitStore::destroy(name)).await.unwrap();
}
