//! The cold store on a real S3 service (`S3Kv` against SeaweedFS, which `scripts/test-s3.sh`
//! starts): the KV contract, compactions in universal and messages mode with cold on S3, a
//! sample of the crash matrix and of the prune's, crashes between a batch's PUTs and its
//! locator batch, the locator rebuilt from the bucket, and the service's refusals and cut
//! bodies as typed errors.
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

    /// Batches written to the bucket by the S3 stores made so far.
    fn segments(&self) -> u64 {
        self.1.lock().unwrap().iter().map(S3Kv::next_seq).sum()
    }

    /// Every S3 store made so far has a locator that a rebuild from its bucket reproduces.
    fn all_rebuild_the_same(&self) {
        let all = self.1.lock().unwrap().clone();
        for kv in &all {
            assert_same_as_rebuilt(kv, &format!("{kv:?}"));
        }
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
    stores.all_rebuild_the_same();
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
    stores.all_rebuild_the_same();
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
    // After prunes and their reclaims (segments dropped and rewritten, indexes trimmed), each
    // bucket still rebuilds its locator exactly.
    stores.all_rebuild_the_same();
}

fn block(i: u32) -> (Vec<u8>, Vec<u8>) {
    let bytes = [&[0x82u8][..], &i.to_be_bytes()].concat();
    (BlockKey::of(&dag_cbor_blake2b_cid(&bytes)).into_bytes(), bytes)
}

/// A crash between a segment's PUT and its locator batch (after the segment, or after the
/// segment and its index): the write did not return, so either outcome is allowed; the
/// reopened store holds exactly what it held before, the orphan objects are deleted, and
/// their number is used again.
#[test]
fn a_crash_between_the_put_and_the_locator_leaves_an_orphan_the_next_open_deletes() {
    a_crash_leaves_an_orphan(S3Kv::crash_after_next_segment_put);
    a_crash_leaves_an_orphan(S3Kv::crash_after_next_put);
}

fn a_crash_leaves_an_orphan(crash: fn(&S3Kv)) {
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

    crash(&kv);
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
    // The orphan is gone from the bucket, and so is its index.
    let err = block_on(kv.read_at(Loc { seq: 1, offset: 0, len: 1 })).expect_err("the orphan segment was deleted");
    assert!(matches!(err, KvError::Corrupt { .. }), "{err}");
    assert_eq!(objects(&kv, "idx"), vec![kv.index_path(0, false)], "only the first batch's index is left");
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
    // The locator is a cache of the bucket: without it, the command rebuilds it and finds
    // every cold block again.
    std::fs::remove_dir_all(repo.join("cold")).expect("remove the locator");
    let rebuilt = info(&repo);
    assert_eq!(rebuilt["counts"]["cold"]["keys"].as_u64(), Some(cold), "{rebuilt}");
    let check: serde_json::Value = serde_json::from_str(&ok(&repo, &["check", "--json"])).unwrap();
    assert_eq!(check["missing"], 0);
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

    // Segment 0 is dropped, then a crash right after segment 1's rewrite PUTs: segment 1 is
    // still named, the copy is an orphan. (Batch 4 is the deletions': an index alone.)
    kv.crash_after_next_put();
    assert!(matches!(block_on(kv.rewrite_segments()), Err(KvError::Crashed)));
    drop(kv);
    let kv = open().expect("reopen");
    all_live(&kv, "after a crash in a rewrite");
    assert_eq!(kv.next_seq(), 5, "the copy was an orphan");
    assert_same_as_rebuilt(&kv, "after a crash in a rewrite");

    let done = block_on(kv.rewrite_segments()).expect("rewrite");
    assert_eq!((done.dropped, done.rewritten, done.moved), (0, 1, 10), "{done:?}");
    // Segment 1's index goes with it, and the deletions' index forgets the records of
    // segments 0 and 1 (those of segment 2, still there, stay).
    assert_eq!(done.indexes_trimmed, 2, "{done:?}");
    assert!(done.freed_bytes > 0);
    all_live(&kv, "after the rewrite");
    for seq in [0, 1] {
        let err = block_on(kv.read_at(Loc { seq, offset: 0, len: 1 })).expect_err("the segment is gone");
        assert!(matches!(err, KvError::Corrupt { .. }), "segment {seq}: {err}");
    }
    assert_eq!(kv.next_seq(), 6, "the ten blocks were copied into segment 5");
    assert_eq!(block_on(kv.locate(&live[0].0)).unwrap().map(|l| l.seq), Some(5));
    assert_eq!(
        objects(&kv, "idx"),
        vec![kv.index_path(2, true), kv.index_path(3, true), kv.index_path(4, false), kv.index_path(5, true)]
    );
    assert_same_as_rebuilt(&kv, "after the rewrite");
    // Nothing more to do; the deleted blocks stay deleted.
    assert_eq!(block_on(kv.rewrite_segments()).unwrap(), Rewritten::default());
    assert_eq!(block_on(kv.get(Space::Blocks, &batch(1)[20].0)).unwrap(), None);
    drop(kv);
    all_live(&open().expect("reopen"), "after a reopen");
}

/// The object keys under `dir/` of the store's prefix.
fn objects(kv: &S3Kv, dir: &str) -> Vec<splitstore_native::s3::ObjectPath> {
    let mut found = block_on(kv.list_objects(dir)).expect("list");
    found.sort();
    found
}

/// A keyspace's entries.
type Entries = Vec<(Vec<u8>, Vec<u8>)>;

/// Everything a locator holds: every keyspace's entries (blocks as their locations).
fn locator_contents(kv: &S3Kv) -> Vec<(Space, Entries)> {
    Space::ALL
        .iter()
        .map(|&space| (space, block_on(kv.locator().scan(space, None, usize::MAX)).expect("scan the locator")))
        .collect()
}

/// A locator rebuilt from the bucket alone (opened in an empty directory) holds exactly what
/// `kv`'s holds, and its next number is past every segment it names (it may be lower than
/// `kv`'s when the last batches' objects are all gone: those numbers are free again).
fn assert_same_as_rebuilt(kv: &S3Kv, when: &str) {
    let dir = tempfile::tempdir().unwrap();
    let credentials = S3Credentials::from_env().unwrap();
    let rebuilt = S3Kv::open(kv.location(), &credentials, &S3Options::default(), dir.path(), &locator_options())
        .expect("open with an empty locator");
    let contents = locator_contents(&rebuilt);
    assert_eq!(contents, locator_contents(kv), "{when}: the rebuilt locator differs");
    assert!(rebuilt.next_seq() <= kv.next_seq(), "{when}: the next number");
    for (_, loc) in &contents[0].1 {
        let seq = Loc::decode(loc).expect("a location").seq;
        assert!(seq < rebuilt.next_seq(), "{when}: segment {seq} is named, the next number is {}", rebuilt.next_seq());
    }
}

/// A lost locator is rebuilt from the bucket's indexes: puts, deletions, overwrites, the other
/// keyspaces and a crashed batch (whose write never returned: it may land or not, but whole);
/// a locator is refused by a store it does not belong to.
#[test]
fn a_lost_locator_is_rebuilt_from_the_bucket() {
    let (location, credentials) = service();
    let dir = tempfile::tempdir().unwrap();
    let kv = S3Kv::open(&location, &credentials, &S3Options::default(), dir.path(), &locator_options()).expect("open");
    let write = |b: WriteBatch| block_on(kv.write(b)).expect("write");
    let mut b = WriteBatch::new();
    for i in 0..300 {
        let (k, v) = block(i);
        b.put(Space::Blocks, k, v);
    }
    b.put(Space::Meta, b"m".to_vec(), b"1".to_vec());
    b.put(Space::Dead, b"d".to_vec(), b"x".to_vec());
    write(b);
    let mut b = WriteBatch::new();
    for i in (0..300).step_by(3) {
        b.delete(Space::Blocks, block(i).0);
    }
    b.delete(Space::Blocks, block(9999).0); // absent: nothing to record
    b.delete(Space::Dead, b"d".to_vec());
    write(b);
    let mut b = WriteBatch::new();
    for i in (0..300).step_by(6).chain(300..350) {
        let (k, v) = block(i);
        b.put(Space::Blocks, k, v); // some deleted blocks come back, in a new segment
    }
    b.put(Space::Meta, b"m".to_vec(), b"2".to_vec());
    write(b);
    assert_same_as_rebuilt(&kv, "after puts, deletions and puts again");

    // A batch that crashed after its index's PUT: a rebuild replays it whole.
    kv.crash_after_next_put();
    let mut b = WriteBatch::new();
    for i in 400..450 {
        let (k, v) = block(i);
        b.put(Space::Blocks, k, v);
    }
    b.delete(Space::Blocks, block(1).0);
    assert!(matches!(block_on(kv.write(b)), Err(KvError::Crashed)));
    let rebuilt_dir = tempfile::tempdir().unwrap();
    let rebuilt = S3Kv::open(&location, &credentials, &S3Options::default(), rebuilt_dir.path(), &locator_options())
        .expect("rebuild");
    assert_eq!(rebuilt.next_seq(), 4);
    for i in 0..450 {
        let (k, v) = block(i);
        let want = match i {
            1 => None,
            i if i < 300 => (i % 3 != 0 || i % 6 == 0).then_some(v),
            i if i < 350 => Some(v),
            i if i < 400 => None,
            _ => Some(v),
        };
        assert_eq!(block_on(rebuilt.get(Space::Blocks, &k)).unwrap(), want, "block {i}");
    }
    assert_eq!(block_on(rebuilt.get(Space::Meta, b"m")).unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(block_on(rebuilt.get(Space::Dead, b"d")).unwrap(), None);
    drop(rebuilt);
    // The original locator, which never committed that batch, sweeps it away instead.
    drop(kv);
    let kv =
        S3Kv::open(&location, &credentials, &S3Options::default(), dir.path(), &locator_options()).expect("reopen");
    assert_eq!(kv.next_seq(), 3);
    assert!(block_on(kv.has(Space::Blocks, &block(1).0)).unwrap());
    assert_same_as_rebuilt(&kv, "after the sweep");

    // A locator belongs to one bucket and prefix.
    let mut elsewhere = location.clone();
    elsewhere.prefix.push_str("-other");
    drop(kv);
    let err = S3Kv::open(&elsewhere, &credentials, &S3Options::default(), dir.path(), &locator_options())
        .expect_err("another store's locator");
    assert!(matches!(&err, KvError::Unavailable { detail } if detail.contains("belongs to")), "{err}");
}

/// A proxy in front of the service that answers the first `fail` connections with `503 Slow
/// Down` and closes them, cuts the first response of the next `cut` connections it passes
/// through halfway through its body (then closes them), and passes every other connection
/// through byte for byte (the client's signature names the proxy's address, which is what the
/// service then sees).
struct FlakyProxy {
    addr: std::net::SocketAddr,
    fail: std::sync::Arc<std::sync::atomic::AtomicI64>,
    refused: std::sync::Arc<AtomicU32>,
    cut: std::sync::Arc<std::sync::atomic::AtomicI64>,
    truncated: std::sync::Arc<AtomicU32>,
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
        let cut = Arc::new(std::sync::atomic::AtomicI64::new(0));
        let truncated = Arc::new(AtomicU32::new(0));
        let open: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::default();
        let (f, r, o, c, t) = (fail.clone(), refused.clone(), open.clone(), cut.clone(), truncated.clone());
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
                let cut_this = c.fetch_sub(1, Ordering::SeqCst) > 0;
                if !cut_this {
                    c.fetch_add(1, Ordering::SeqCst);
                }
                let t = t.clone();
                std::thread::spawn(move || {
                    if cut_this {
                        if let Some(n) = pass_half_a_response(&mut s2, &mut c2) {
                            t.fetch_add(1, Ordering::SeqCst);
                            let _ = n;
                        }
                        let _ = c2.shutdown(std::net::Shutdown::Both);
                        let _ = s2.shutdown(std::net::Shutdown::Both);
                        return;
                    }
                    let _ = std::io::copy(&mut s2, &mut c2);
                    let _ = c2.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        Self { addr, fail, refused, cut, truncated, open }
    }

    /// The next `n` connections have their first response cut halfway through its body; the
    /// ones open now are cut (as [`FlakyProxy::fail_next`] does).
    fn truncate_next(&self, n: i64) {
        self.cut.store(n, Ordering::SeqCst);
        for conn in self.open.lock().unwrap().drain(..) {
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
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

/// A store that reaches the service through a [`FlakyProxy`] (with its locator's directory),
/// with a short retry budget.
fn behind_a_proxy() -> (FlakyProxy, S3Kv, tempfile::TempDir) {
    let (mut location, credentials) = service();
    let proxy = FlakyProxy::start(location.endpoint.as_deref().expect("an endpoint"));
    location.endpoint = Some(format!("http://{}", proxy.addr));
    let dir = tempfile::tempdir().unwrap();
    let options = S3Options { max_retries: 3, retry_timeout: std::time::Duration::from_secs(10) };
    let kv = S3Kv::open(&location, &credentials, &options, dir.path(), &locator_options()).expect("open");
    (proxy, kv, dir)
}

/// Passes a response's head and the first half of its body from `server` to `client`; the
/// body's bytes passed, if the response had a body.
fn pass_half_a_response(server: &mut std::net::TcpStream, client: &mut std::net::TcpStream) -> Option<u64> {
    use std::io::{Read, Write};
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if server.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
    let len: u64 = text.lines().find_map(|l| l.strip_prefix("content-length:")).and_then(|v| v.trim().parse().ok())?;
    client.write_all(&head).ok()?;
    let half = len / 2;
    std::io::copy(&mut server.take(half), client).ok()?;
    (len > 0).then_some(half)
}

/// A body cut short by a connection that closes early: the read is retried, or fails with a
/// typed error; a block is never answered with fewer bytes than it has.
#[test]
fn a_truncated_body_is_retried_or_a_typed_error_never_a_short_block() {
    let (proxy, kv, _dir) = behind_a_proxy();
    // Blocks of 4 KiB, so that half a body is a real cut.
    let big = |i: u32| {
        let bytes = [&[0x82u8][..], &i.to_be_bytes(), &[i as u8; 4096]].concat();
        (BlockKey::of(&dag_cbor_blake2b_cid(&bytes)).into_bytes(), bytes)
    };
    let mut b = WriteBatch::new();
    for i in 0..20 {
        let (k, v) = big(i);
        b.put(Space::Blocks, k, v);
    }
    block_on(kv.write(b)).expect("write");
    let keys: Vec<Vec<u8>> = (0..20).map(|i| big(i).0).collect();

    // One cut: the client or the store reads again, or the read fails with a typed error.
    proxy.truncate_next(1);
    match block_on(kv.get(Space::Blocks, &keys[3])) {
        Ok(got) => assert_eq!(got, Some(big(3).1), "a cut body answered as a block"),
        Err(e @ (KvError::Unavailable { .. } | KvError::Corrupt { .. })) => println!("one cut: {e}"),
        Err(other) => panic!("not a typed service error: {other}"),
    }
    assert!(proxy.truncated.load(Ordering::SeqCst) >= 1, "the proxy cut nothing");

    // Every response cut: a typed error, in time, for one block and for many.
    proxy.truncate_next(i64::MAX / 2);
    let started = std::time::Instant::now();
    let err = block_on(kv.get(Space::Blocks, &keys[5])).expect_err("every body is cut");
    assert!(matches!(err, KvError::Unavailable { .. } | KvError::Corrupt { .. }), "{err}");
    let err = block_on(kv.get_many(Space::Blocks, &keys)).expect_err("every body is cut");
    assert!(matches!(err, KvError::Unavailable { .. } | KvError::Corrupt { .. }), "{err}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "{:?}", started.elapsed());
    println!("every body cut: {err}");

    // The service whole again: every block reads back whole.
    proxy.truncate_next(0);
    let all = block_on(kv.get_many(Space::Blocks, &keys)).expect("read");
    for (i, got) in all.into_iter().enumerate() {
        assert_eq!(got, Some(big(i as u32).1), "block {i}");
    }
}

/// Service errors: a few 503s are retried away; a service that keeps failing gives a typed
/// error within the retry budget, and the batch it refused left nothing behind.
#[test]
fn a_failing_service_is_retried_then_a_typed_error_and_leaves_nothing_half_written() {
    let (proxy, kv, _dir) = behind_a_proxy();
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
    // write fails with a typed error, having written nothing, and lands when written again
    // (each refusal can fail one attempt this way, so a third attempt always lands).
    proxy.fail_next(2);
    let mut attempts = 0;
    loop {
        attempts += 1;
        match put(0) {
            Ok(()) => break,
            Err(KvError::Unavailable { detail }) if attempts < 3 => {
                assert_eq!(kv.next_seq(), 0, "a failed batch took a segment number: {detail}");
                assert!(!block_on(kv.has(Space::Blocks, &block(7).0)).unwrap(), "{detail}");
            }
            Err(other) => panic!("attempt {attempts}: {other}"),
        }
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
