//! The cold store on a real S3 service (`S3Kv` against SeaweedFS, which `scripts/test-s3.sh`
//! starts): the KV contract, compactions in universal and messages mode with cold on S3, a
//! sample of the crash matrix, a crash between a segment's PUT and its locator batch, and the
//! service's refusals as typed errors.
//!
//! The service comes from the environment: `SPLITSTORE_S3_URL` (`s3://BUCKET?endpoint=URL`)
//! and `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY`. Without them every test fails and says
//! how to run it.
#![cfg(feature = "s3")]

mod common;

use std::sync::{
    atomic::{AtomicU32, Ordering},
    Mutex,
};

use futures::executor::block_on;
use splitstore_conformance::{crash, kv_contract, prune, scenarios};
use splitstore_core::{key::dag_cbor_blake2b_cid, BlockKey, Kv, KvError, Mode, Space, WriteBatch};
use splitstore_native::{
    s3::{Loc, S3Credentials, S3Kv, S3Location, S3Options},
    FjallKv, KvOptions, NativeKv,
};

/// The service the tests run against, and a prefix no other test (or run) uses.
fn service() -> (S3Location, S3Credentials) {
    let url = std::env::var("SPLITSTORE_S3_URL").unwrap_or_else(|_| {
        panic!("SPLITSTORE_S3_URL is not set: run these tests with scripts/test-s3.sh, which starts SeaweedFS")
    });
    let mut location = S3Location::parse(&url).expect("SPLITSTORE_S3_URL is an s3:// URL");
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let run = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos();
    location.prefix = format!("t{run:x}{n:04x}");
    (location, S3Credentials::from_env().expect("credentials in the environment"))
}

fn locator_options() -> KvOptions {
    KvOptions { cache_bytes: 4 << 20, read_threads: 1, ..KvOptions::default() }
}

/// Fresh stores: local fjall stores and S3 stores (each with its locator), removed (locally)
/// when dropped.
struct Stores(Mutex<Vec<tempfile::TempDir>>, Mutex<Vec<S3Kv>>);

impl Stores {
    fn new() -> Self {
        Stores(Mutex::new(Vec::new()), Mutex::new(Vec::new()))
    }
    fn dir(&self) -> std::path::PathBuf {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().to_path_buf();
        self.0.lock().unwrap().push(d);
        p
    }
    fn s3(&self) -> S3Kv {
        let (location, credentials) = service();
        S3Kv::open(&location, &credentials, &S3Options::default(), &self.dir(), &locator_options()).expect("open S3")
    }
    fn fjall(&self) -> FjallKv {
        FjallKv::open(&self.dir(), &locator_options()).expect("open fjall")
    }
    /// Alternately a local hot store and an S3 cold store: the suites open a store as
    /// `SplitStore::open(make(), make(), ..)`, hot first. Every S3 store is kept, to count
    /// what reached the bucket.
    fn split(&self) -> impl Fn() -> NativeKv + '_ {
        let calls = AtomicU32::new(0);
        move || match calls.fetch_add(1, Ordering::SeqCst) % 2 {
            0 => self.fjall().into(),
            _ => {
                let kv = self.s3();
                self.1.lock().unwrap().push(kv.clone());
                kv.into()
            }
        }
    }

    /// Segments written to the bucket by the S3 stores made so far.
    fn segments(&self) -> u64 {
        self.1.lock().unwrap().iter().map(S3Kv::next_seq).sum()
    }
}

#[test]
fn the_kv_contract_holds_on_s3() {
    let stores = Stores::new();
    block_on(async {
        kv_contract::kv_contract_get_has(stores.s3()).await;
        kv_contract::kv_contract_batch_across_spaces(stores.s3()).await;
        kv_contract::kv_contract_spaces_independent(stores.s3()).await;
        kv_contract::kv_contract_scan_order_and_limits(stores.s3()).await;
        kv_contract::kv_contract_scan_with_changes_between_pages(stores.s3()).await;
        kv_contract::kv_contract_delete_idempotent(stores.s3()).await;
        kv_contract::kv_contract_overwrite(stores.s3()).await;
        kv_contract::kv_contract_empty_values(stores.s3()).await;
        kv_contract::kv_contract_large_values(stores.s3()).await;
        kv_contract::kv_contract_flush(stores.s3()).await;
        kv_contract::kv_contract_stats(stores.s3()).await;
        kv_contract::kv_contract_bulk(stores.s3()).await;
    });
}

#[test]
fn compactions_move_to_s3_in_universal_and_messages_mode() {
    let stores = Stores::new();
    for (i, mode) in [Mode::Universal, Mode::Messages].into_iter().enumerate() {
        let before = stores.segments();
        let n = block_on(scenarios::grow_and_compact(&stores.split(), mode, 21 + i as u64, 60));
        assert!(n >= 3, "{mode:?}: only {n} compactions in 60 epochs");
        assert!(stores.segments() > before, "{mode:?}: nothing reached the bucket");
    }
}

/// A sample of the crash matrix (every sixth call) with cold on S3: reopened, the store is
/// consistent and lost nothing live.
#[test]
fn crash_matrix_sample_with_cold_on_s3() {
    let stores = Stores::new();
    for (i, mode) in [Mode::Universal, Mode::Messages].into_iter().enumerate() {
        let s = block_on(crash::crash_matrix_on(&stores.split(), mode, 61 + i as u64, 16, 6));
        println!(
            "crash matrix, cold on S3, {mode:?}: {} calls, {} crash points, {} purges recovered",
            s.calls, s.crash_points, s.recovered_purges
        );
        assert!(s.crash_points > 3 && s.recovered_purges > 0);
    }
    assert!(stores.segments() > 0, "nothing reached the bucket");
}

/// A sample of the cold prune's crash matrix (every sixth call) with cold on S3: the prune
/// deletes from the locator and its reclaim drops and rewrites segments.
#[test]
fn prune_crash_matrix_sample_with_cold_on_s3() {
    let stores = Stores::new();
    let base = block_on(prune::base(Mode::Universal, 51, 30));
    let s = block_on(prune::prune_crash_matrix_on(&stores.split(), Mode::Universal, &base, 0, 6));
    println!(
        "prune crash matrix, cold on S3: {} calls, {} crash points, {} purges recovered",
        s.calls, s.crash_points, s.recovered
    );
    assert!(s.crash_points > 3 && s.recovered > 0);
    assert!(stores.segments() > 0, "nothing reached the bucket");
}

fn block(i: u32) -> (Vec<u8>, Vec<u8>) {
    let bytes = [&[0x82u8][..], &i.to_be_bytes()].concat();
    (BlockKey::of(&dag_cbor_blake2b_cid(&bytes)).into_bytes(), bytes)
}

/// A crash between a segment's PUT and its locator batch: the write did not return, so
/// either outcome is allowed; the reopened store holds exactly what it held before, the
/// orphan segment is deleted, and its number is used again.
#[test]
fn a_crash_between_the_put_and_the_locator_leaves_an_orphan_the_next_open_deletes() {
    let (location, credentials) = service();
    let dir = tempfile::tempdir().unwrap();
    let open = || S3Kv::open(&location, &credentials, &S3Options::default(), dir.path(), &locator_options());
    let kv = open().expect("open");
    let mut b = WriteBatch::new();
    for i in 0..100 {
        let (k, v) = block(i);
        b.put(Space::Blocks, k, v);
    }
    b.put(Space::Meta, b"m".to_vec(), b"1".to_vec());
    block_on(kv.write(b)).expect("first batch");
    assert_eq!(kv.next_seq(), 1);

    kv.crash_after_next_put();
    let mut b = WriteBatch::new();
    for i in 100..200 {
        let (k, v) = block(i);
        b.put(Space::Blocks, k, v);
    }
    b.put(Space::Meta, b"m".to_vec(), b"2".to_vec());
    assert!(matches!(block_on(kv.write(b)), Err(KvError::Crashed)));
    drop(kv);

    let kv = open().expect("reopen");
    assert_eq!(kv.next_seq(), 1, "the orphan's number is free again");
    assert_eq!(block_on(kv.get(Space::Meta, b"m")).unwrap().as_deref(), Some(&b"1"[..]));
    for i in 0..200 {
        let (k, v) = block(i);
        let want = (i < 100).then_some(v);
        assert_eq!(block_on(kv.get(Space::Blocks, &k)).unwrap(), want, "block {i}");
    }
    assert_eq!(block_on(kv.stats(Space::Blocks)).unwrap().keys, 100);
    // The orphan is gone from the bucket.
    let err = block_on(kv.read_at(Loc { seq: 1, offset: 0, len: 1 })).expect_err("the orphan segment was deleted");
    assert!(matches!(err, KvError::Corrupt { .. }), "{err}");
    let mut b = WriteBatch::new();
    let (k, v) = block(300);
    b.put(Space::Blocks, k.clone(), v.clone());
    block_on(kv.write(b)).expect("a batch after the reopen");
    assert_eq!(kv.next_seq(), 2);
    assert_eq!(block_on(kv.get(Space::Blocks, &k)).unwrap(), Some(v));
}

/// The service's refusals are typed errors naming the request: wrong credentials at once,
/// a segment deleted behind the store's back as corruption (never as "absent").
#[test]
fn refusals_and_lost_segments_are_typed_errors() {
    let (location, _) = service();
    let dir = tempfile::tempdir().unwrap();
    let wrong = S3Credentials { access_key_id: "nobody".into(), secret_access_key: "not-the-secret".into() };
    let started = std::time::Instant::now();
    let kv = S3Kv::open(&location, &wrong, &S3Options::default(), dir.path(), &locator_options());
    let err = kv.expect_err("wrong credentials are refused at open (its sweep lists the bucket)");
    assert!(matches!(&err, KvError::Unavailable { detail } if detail.contains("credentials")), "{err}");
    assert!(started.elapsed().as_secs() < 10, "a refusal is not retried: {:?}", started.elapsed());

    let stores = Stores::new();
    let kv = stores.s3();
    let mut b = WriteBatch::new();
    let (k, v) = block(1);
    b.put(Space::Blocks, k.clone(), v);
    block_on(kv.write(b)).unwrap();
    let loc = block_on(kv.locate(&k)).unwrap().expect("located");
    block_on(kv.delete_object(&kv.segment_path(loc.seq))).unwrap();
    let err = block_on(kv.get(Space::Blocks, &k)).expect_err("the segment is gone");
    assert!(matches!(&err, KvError::Corrupt { detail } if detail.contains("not in the bucket")), "{err}");
    assert!(block_on(kv.has(Space::Blocks, &k)).unwrap(), "the locator still names it");
}

/// The `splitstore` command with `init --cold s3://…`: a real chain imported and compacted in
/// universal mode, its old blocks in the bucket, read back through the command; the store
/// reopened from the repo alone.
#[test]
fn the_command_keeps_a_repos_cold_store_on_s3() {
    use common::{info, ok, read_car, testdata};
    const CHAIN: &str = "kubo-lotus-testnet/lotus_testnet_export_128.car";
    let (location, _) = service();
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    ok(&repo, &["init", "--mode", "universal", "--finality", "10", "--sync-gap-secs", "0", "--cold", &location.url()]);
    ok(&repo, &["import", testdata(CHAIN).to_str().unwrap()]);
    ok(&repo, &["compact"]);
    let after = info(&repo);
    let cold = after["counts"]["cold"]["keys"].as_u64().expect("a cold count");
    assert!(cold > 100, "universal mode moves the old blocks to cold: {after}");
    let check: serde_json::Value = serde_json::from_str(&ok(&repo, &["check", "--json"])).unwrap();
    assert_eq!(check["missing"], 0);
    // Every cold block, read from the bucket by the command, is the chain's.
    let source = read_car(&testdata(CHAIN));
    let out = repo.with_extension("cold.car");
    ok(&repo, &["export", "--store", "cold", "--out", out.to_str().unwrap()]);
    let exported = read_car(&out);
    assert_eq!(exported.blocks.len() as u64, cold);
    for (key, (_, bytes)) in &exported.blocks {
        assert_eq!(&source.blocks[key].1, bytes, "a cold block differs from the chain's");
    }
    // The bucket holds them: segments the locator in DIR/cold counts.
    let kv = S3Kv::open(
        &location,
        &S3Credentials::from_env().unwrap(),
        &S3Options::default(),
        &repo.join("cold"),
        &locator_options(),
    )
    .expect("the locator reopens");
    assert!(kv.next_seq() > 0);
}

/// After deletions (a cold prune's), reclaim drops the segments nothing names and rewrites
/// those less than half named; a crash in the middle of a rewrite leaves every named block
/// readable, and deleted blocks stay deleted.
#[test]
fn reclaim_drops_and_rewrites_segments_and_survives_a_crash_in_a_rewrite() {
    use splitstore_native::s3::Rewritten;
    let (location, credentials) = service();
    let dir = tempfile::tempdir().unwrap();
    let open = || S3Kv::open(&location, &credentials, &S3Options::default(), dir.path(), &locator_options());
    let kv = open().expect("open");
    let batch = |n: u32| -> Vec<(Vec<u8>, Vec<u8>)> { (0..200).map(|i| block(n * 1000 + i)).collect() };
    for n in 0..4 {
        let mut b = WriteBatch::new();
        for (k, v) in batch(n) {
            b.put(Space::Blocks, k, v);
        }
        block_on(kv.write(b)).unwrap();
    }
    // Segment 0 loses every block, segment 1 all but ten, segment 2 a quarter, 3 none.
    let mut d = WriteBatch::new();
    for (k, _) in batch(0).into_iter().chain(batch(1).into_iter().skip(10)).chain(batch(2).into_iter().take(50)) {
        d.delete(Space::Blocks, k);
    }
    block_on(kv.write(d)).unwrap();
    let live: Vec<(Vec<u8>, Vec<u8>)> =
        batch(1).into_iter().take(10).chain(batch(2).into_iter().skip(50)).chain(batch(3)).collect();
    let all_live = |kv: &S3Kv, when: &str| {
        for (k, v) in &live {
            assert_eq!(block_on(kv.get(Space::Blocks, k)).unwrap().as_ref(), Some(v), "{when}");
        }
        assert_eq!(block_on(kv.stats(Space::Blocks)).unwrap().keys, live.len() as u64, "{when}");
    };

    // Segment 0 is dropped, then a crash right after segment 1's rewrite PUT: segment 1 is
    // still named, the copy is an orphan.
    kv.crash_after_next_put();
    assert!(matches!(block_on(kv.rewrite_segments()), Err(KvError::Crashed)));
    drop(kv);
    let kv = open().expect("reopen");
    all_live(&kv, "after a crash in a rewrite");
    assert_eq!(kv.next_seq(), 4, "the copy was an orphan");

    let done = block_on(kv.rewrite_segments()).expect("rewrite");
    assert_eq!((done.dropped, done.rewritten, done.moved), (0, 1, 10), "{done:?}");
    assert!(done.freed_bytes > 0);
    all_live(&kv, "after the rewrite");
    for seq in [0, 1] {
        let err = block_on(kv.read_at(Loc { seq, offset: 0, len: 1 })).expect_err("the segment is gone");
        assert!(matches!(err, KvError::Corrupt { .. }), "segment {seq}: {err}");
    }
    assert_eq!(kv.next_seq(), 5, "the ten blocks were copied into segment 4");
    assert_eq!(block_on(kv.locate(&live[0].0)).unwrap().map(|l| l.seq), Some(4));
    // Nothing more to do; the deleted blocks stay deleted.
    assert_eq!(block_on(kv.rewrite_segments()).unwrap(), Rewritten::default());
    assert_eq!(block_on(kv.get(Space::Blocks, &batch(1)[20].0)).unwrap(), None);
    drop(kv);
    all_live(&open().expect("reopen"), "after a reopen");
}

/// A proxy in front of the service that answers the first `fail` connections with `503 Slow
/// Down` and closes them, and passes every other connection through byte for byte (the
/// client's signature names the proxy's address, which is what the service then sees).
struct FlakyProxy {
    addr: std::net::SocketAddr,
    fail: std::sync::Arc<std::sync::atomic::AtomicI64>,
    refused: std::sync::Arc<AtomicU32>,
    /// The connections passed through, which [`FlakyProxy::fail_next`] cuts.
    open: std::sync::Arc<Mutex<Vec<std::net::TcpStream>>>,
}

impl FlakyProxy {
    fn start(upstream: &str) -> Self {
        use std::{io::Write, net::TcpListener, sync::Arc};
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let fail = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let refused = Arc::new(AtomicU32::new(0));
        let open: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::default();
        let (f, r, o) = (fail.clone(), refused.clone(), open.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut client) = conn else { continue };
                if f.fetch_sub(1, Ordering::SeqCst) > 0 {
                    r.fetch_add(1, Ordering::SeqCst);
                    let _ = client.write_all(
                        b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/xml\r\nContent-Length: 54\r\n\
                          Connection: close\r\n\r\n<Error><Code>SlowDown</Code><Message/></Error>\n\n\n\n\n\n\n\n",
                    );
                    let _ = client.shutdown(std::net::Shutdown::Both);
                    continue;
                }
                f.fetch_add(1, Ordering::SeqCst);
                let Ok(server) = std::net::TcpStream::connect(&upstream) else { continue };
                o.lock().unwrap().push(client.try_clone().unwrap());
                let (mut c2, mut s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut c1, mut s1) = (client, server);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c1, &mut s1);
                    let _ = s1.shutdown(std::net::Shutdown::Write);
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s2, &mut c2);
                    let _ = c2.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Self { addr, fail, refused, open }
    }

    /// The next `n` connections are refused, and the ones open now are cut (the client keeps
    /// connections alive, so its next request would otherwise go through one of them).
    fn fail_next(&self, n: i64) {
        self.fail.store(n, Ordering::SeqCst);
        for conn in self.open.lock().unwrap().drain(..) {
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Service errors: a few 503s are retried away; a service that keeps failing gives a typed
/// error within the retry budget, and the batch it refused left nothing behind.
#[test]
fn a_failing_service_is_retried_then_a_typed_error_and_leaves_nothing_half_written() {
    let (mut location, credentials) = service();
    let proxy = FlakyProxy::start(location.endpoint.as_deref().expect("an endpoint"));
    location.endpoint = Some(format!("http://{}", proxy.addr));
    let dir = tempfile::tempdir().unwrap();
    let options = S3Options { max_retries: 3, retry_timeout: std::time::Duration::from_secs(10) };
    let kv = S3Kv::open(&location, &credentials, &options, dir.path(), &locator_options()).expect("open");
    let put = |from: u32| {
        let mut b = WriteBatch::new();
        for i in from..from + 50 {
            let (k, v) = block(i);
            b.put(Space::Blocks, k, v);
        }
        block_on(kv.write(b))
    };

    // Two refusals: the client's retries take the batch past them, or, when a refusal cuts the
    // request while its body is still being sent (which the client does not retry), the
    // write fails with a typed error, having written nothing, and lands when written again.
    proxy.fail_next(2);
    match put(0) {
        Ok(()) => {}
        Err(KvError::Unavailable { detail }) => {
            assert_eq!(kv.next_seq(), 0, "a failed batch took a segment number: {detail}");
            assert!(!block_on(kv.has(Space::Blocks, &block(7).0)).unwrap(), "{detail}");
            put(0).expect("written again");
        }
        Err(other) => panic!("not a service error: {other}"),
    }
    assert!(proxy.refused.load(Ordering::SeqCst) >= 1, "the proxy refused nothing");
    assert_eq!(block_on(kv.get(Space::Blocks, &block(7).0)).unwrap(), Some(block(7).1));

    // A service that keeps refusing: a typed error, in time, and nothing of the batch.
    proxy.fail_next(i64::MAX / 2);
    let started = std::time::Instant::now();
    let err = put(100).expect_err("the service refuses everything");
    assert!(matches!(&err, KvError::Unavailable { detail } if detail.contains("put")), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "{:?}", started.elapsed());
    proxy.fail_next(0);
    assert!(!block_on(kv.has(Space::Blocks, &block(100).0)).unwrap(), "a refused batch left a block behind");
    assert_eq!(kv.next_seq(), 1, "a refused batch took no segment number");
    put(200).expect("the service is back");
    assert_eq!(block_on(kv.get(Space::Blocks, &block(220).0)).unwrap(), Some(block(220).1));
    assert_eq!(block_on(kv.stats(Space::Blocks)).unwrap().keys, 100);
}
