//! The cold store on S3 against the raw S3 requests of the same bytes, on the service
//! `scripts/test-s3.sh --bench` starts (SeaweedFS on 127.0.0.1):
//!
//! * moves: `S3Kv::write` of move-sized batches (16,384 blocks of 512 bytes, 8 MiB) against
//!   raw `PutObject`s of the same segment bytes;
//! * cold reads: `get` of one block (p50, p99) and `get_many` of 256 blocks spread over the
//!   segments, against a raw ranged GET of one block;
//! * recovery: opening the store (the locator, and the orphan sweep's listing), and opening it
//!   with an empty locator (rebuilt from the bucket's batch indexes).
//!
//! Medians of `--rounds` rounds (default 3), each round alternating store and raw.

use std::time::{Duration, Instant};

use futures::executor::block_on;
use object_store::{aws::AmazonS3Builder, path::Path as ObjectPath, ObjectStoreExt, PutPayload};
use splitstore_core::{key::dag_cbor_blake2b_cid, BlockKey, Kv, Space, WriteBatch};
use splitstore_native::{
    s3::{S3Credentials, S3Kv, S3Location, S3Options},
    KvOptions,
};

const BLOCKS: u32 = 16_384;
const BLOCK_BYTES: usize = 512;
const BATCHES: u32 = 8;

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == &format!("--{name}")).and_then(|i| args.get(i + 1)?.parse().ok()).unwrap_or(default)
}

fn block(batch: u32, i: u32) -> (Vec<u8>, Vec<u8>) {
    let mut bytes = vec![0x59, 0x01, 0xfc];
    bytes.extend_from_slice(&batch.to_be_bytes());
    bytes.extend_from_slice(&i.to_be_bytes());
    bytes.resize(BLOCK_BYTES, (i % 251) as u8);
    (BlockKey::of(&dag_cbor_blake2b_cid(&bytes)).into_bytes(), bytes)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn percentile(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize].as_secs_f64() * 1e3
}

fn main() {
    let rounds = arg("rounds", 3);
    let url = std::env::var("SPLITSTORE_S3_URL").expect("SPLITSTORE_S3_URL: run scripts/test-s3.sh --bench");
    let base = S3Location::parse(&url).expect("an s3:// URL");
    let credentials = S3Credentials::from_env().expect("credentials");
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let raw = AmazonS3Builder::new()
        .with_bucket_name(&base.bucket)
        .with_region(&base.region)
        .with_endpoint(base.endpoint.clone().unwrap_or_default())
        .with_allow_http(true)
        .with_access_key_id(&credentials.access_key_id)
        .with_secret_access_key(&credentials.secret_access_key)
        .build()
        .unwrap();

    let (mut store_mbs, mut raw_mbs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let (mut p50s, mut p99s, mut raw_p50s, mut many_ms, mut open_ms) = (vec![], vec![], vec![], vec![], vec![]);
    let mut rebuild_ms = Vec::new();
    for round in 0..rounds {
        let dir = tempfile::tempdir().unwrap();
        let location = S3Location { prefix: format!("bench{}-{round}", std::process::id()), ..base.clone() };
        let locator = KvOptions { cache_bytes: 16 << 20, ..KvOptions::default() };
        let kv = S3Kv::open(&location, &credentials, &S3Options::default(), dir.path(), &locator).unwrap();

        // Moves: the store's batches, then the raw PUTs of the same segment bytes.
        let batches: Vec<Vec<(Vec<u8>, Vec<u8>)>> =
            (0..BATCHES).map(|b| (0..BLOCKS).map(|i| block(b, i)).collect()).collect();
        let bytes = (BATCHES as usize * BLOCKS as usize * BLOCK_BYTES) as f64;
        let t = Instant::now();
        for batch in &batches {
            let mut w = WriteBatch::with_capacity(batch.len());
            for (k, v) in batch {
                w.put(Space::Blocks, k.clone(), v.clone());
            }
            block_on(kv.write(w)).unwrap();
        }
        block_on(kv.flush()).unwrap();
        let store_s = t.elapsed().as_secs_f64();
        let segments: Vec<Vec<u8>> = (0..BATCHES)
            .map(|seq| runtime.block_on(raw.get(&kv.segment_path(u64::from(seq)))).unwrap())
            .map(|r| runtime.block_on(r.bytes()).unwrap().to_vec())
            .collect();
        let t = Instant::now();
        for (i, body) in segments.iter().enumerate() {
            let path = ObjectPath::from(format!("{}/raw/{i:016x}.car", location.prefix));
            runtime.block_on(raw.put(&path, PutPayload::from(body.clone()))).unwrap();
        }
        let raw_s = t.elapsed().as_secs_f64();
        store_mbs.push(bytes / store_s / 1e6);
        raw_mbs.push(bytes / raw_s / 1e6);
        ratios.push(store_s / raw_s);

        // Cold reads: single gets, then a get_many over every segment; the raw ranged GET.
        let mut lat = Vec::new();
        let mut raw_lat = Vec::new();
        for n in 0..200u32 {
            let (k, v) = &batches[(n % BATCHES) as usize][(n * 7919 % BLOCKS) as usize];
            let t = Instant::now();
            assert_eq!(block_on(kv.get(Space::Blocks, k)).unwrap().as_ref(), Some(v));
            lat.push(t.elapsed());
            let loc = block_on(kv.locate(k)).unwrap().unwrap();
            let t = Instant::now();
            let got = runtime.block_on(raw.get_range(&kv.segment_path(loc.seq), loc.range())).unwrap();
            raw_lat.push(t.elapsed());
            assert_eq!(&got[..], &v[..]);
        }
        let keys: Vec<Vec<u8>> =
            (0..256u32).map(|n| batches[(n % BATCHES) as usize][(n * 104_729 % BLOCKS) as usize].0.clone()).collect();
        let t = Instant::now();
        let got = block_on(kv.get_many(Space::Blocks, &keys)).unwrap();
        many_ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert!(got.iter().all(Option::is_some));
        p50s.push(percentile(&mut lat, 0.5));
        p99s.push(percentile(&mut lat, 0.99));
        raw_p50s.push(percentile(&mut raw_lat, 0.5));

        // Recovery: an open of the store (locator, orphan sweep).
        drop(kv);
        let t = Instant::now();
        let kv = S3Kv::open(&location, &credentials, &S3Options::default(), dir.path(), &locator).unwrap();
        open_ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(kv.next_seq(), u64::from(BATCHES));

        // Recovery of a lost locator: an open with an empty one, rebuilt from the indexes.
        let empty = tempfile::tempdir().unwrap();
        let t = Instant::now();
        let rebuilt = S3Kv::open(&location, &credentials, &S3Options::default(), empty.path(), &locator).unwrap();
        rebuild_ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(rebuilt.next_seq(), u64::from(BATCHES));
        let (k, v) = &batches[3][777];
        assert_eq!(block_on(rebuilt.get(Space::Blocks, k)).unwrap().as_ref(), Some(v));
    }
    println!("S3 cold store on {} ({rounds} rounds, medians):", base.endpoint.as_deref().unwrap_or("AWS"));
    println!(
        "  moves: {:.1} MB/s through S3Kv, {:.1} MB/s raw PUTs of the same segments; time ratio {:.2}x",
        median(store_mbs),
        median(raw_mbs),
        median(ratios)
    );
    println!(
        "  cold get: p50 {:.2} ms, p99 {:.2} ms (raw ranged GET p50 {:.2} ms); get_many of 256 over {BATCHES} segments: {:.1} ms",
        median(p50s),
        median(p99s),
        median(raw_p50s),
        median(many_ms)
    );
    println!("  open (recovery: locator and orphan sweep): {:.1} ms", median(open_ms));
    println!(
        "  open with an empty locator (rebuilt from {BATCHES} indexes, {} blocks): {:.1} ms",
        BATCHES * BLOCKS,
        median(rebuild_ms)
    );
}
