//! The cold store on a SeaweedFS cluster that loses servers (`scripts/test-s3-cluster.sh`
//! starts it: three masters, three volume servers with two copies of every volume, a filer
//! and an S3 gateway): a volume server killed just before a compaction's second move page,
//! then the leader master killed while the store serves. The compaction finishes and matches
//! the oracle or fails cleanly with nothing lost; every write either returns (and its blocks
//! are read back, from the replicas) or fails with a typed error; the store keeps serving;
//! compactions with cold on the degraded cluster match the oracle.
//!
//! From the environment: `SPLITSTORE_S3_URL`, the credentials, `SPLITSTORE_S3_VOLUMES`
//! (the volume servers' pids) and `SPLITSTORE_S3_MASTERS` (`host:port=pid`, comma-separated).
#![cfg(feature = "s3")]

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicU32, Ordering},
    time::{Duration, Instant},
};

use futures::executor::block_on;
use splitstore_conformance::scenarios;
use splitstore_core::{key::dag_cbor_blake2b_cid, BlockKey, Kv, KvError, Mode, Space, WriteBatch};
use splitstore_native::{
    s3::{S3Credentials, S3Kv, S3Location, S3Options},
    FjallKv, KvOptions, NativeKv,
};

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set: run scripts/test-s3-cluster.sh"))
}

fn open(dir: &std::path::Path, prefix: &str) -> S3Kv {
    let mut location = S3Location::parse(&env("SPLITSTORE_S3_URL")).unwrap();
    location.prefix = prefix.to_owned();
    let credentials = S3Credentials::from_env().unwrap();
    let locator = KvOptions { cache_bytes: 4 << 20, read_threads: 1, ..KvOptions::default() };
    S3Kv::open(&location, &credentials, &S3Options::default(), dir, &locator).expect("open")
}

fn kill(pid: &str) {
    let status = std::process::Command::new("kill").args(["-9", pid]).status().expect("run kill");
    assert!(status.success(), "kill -9 {pid}");
}

fn block(batch: u32, i: u32) -> (Vec<u8>, Vec<u8>) {
    let mut bytes = vec![0x59, 0x02, 0x00];
    bytes.extend_from_slice(&batch.to_be_bytes());
    bytes.extend_from_slice(&i.to_be_bytes());
    bytes.resize(512, (i % 251) as u8);
    (BlockKey::of(&dag_cbor_blake2b_cid(&bytes)).into_bytes(), bytes)
}

/// Writes batch `n` (1,000 blocks); on success records them in `acked`.
fn write_batch(kv: &S3Kv, n: u32, acked: &mut BTreeMap<Vec<u8>, Vec<u8>>) -> Result<(), KvError> {
    let blocks: Vec<_> = (0..1000).map(|i| block(n, i)).collect();
    let mut b = WriteBatch::new();
    for (k, v) in &blocks {
        b.put(Space::Blocks, k.clone(), v.clone());
    }
    block_on(kv.write(b))?;
    acked.extend(blocks);
    Ok(())
}

/// Every acknowledged block reads back whole.
fn all_read_back(kv: &S3Kv, acked: &BTreeMap<Vec<u8>, Vec<u8>>, when: &str) {
    let keys: Vec<Vec<u8>> = acked.keys().cloned().collect();
    for chunk in keys.chunks(2000) {
        let got = block_on(kv.get_many(Space::Blocks, chunk)).unwrap_or_else(|e| panic!("{when}: {e}"));
        for (k, g) in chunk.iter().zip(got) {
            assert_eq!(g.as_ref(), acked.get(k), "{when}: an acknowledged block is missing or differs");
        }
    }
}

/// Writes until one returns or `limit` passes; the failures on the way must be typed
/// errors of the service, never a corrupt or missing answer.
fn write_until_served(kv: &S3Kv, n: u32, acked: &mut BTreeMap<Vec<u8>, Vec<u8>>, limit: Duration) -> Duration {
    let start = Instant::now();
    loop {
        match write_batch(kv, n, acked) {
            Ok(()) => return start.elapsed(),
            Err(KvError::Unavailable { detail }) => {
                assert!(start.elapsed() < limit, "still failing after {limit:?}: {detail}");
                println!("  batch {n} refused ({:.1} s): {detail}", start.elapsed().as_secs_f64());
                std::thread::sleep(Duration::from_millis(500));
            }
            Err(other) => panic!("batch {n}: not a service error: {other}"),
        }
    }
}

#[test]
fn the_store_keeps_serving_as_the_cluster_loses_a_volume_server_and_its_leader_master() {
    let dir = tempfile::tempdir().unwrap();
    let kv = open(dir.path(), "cluster");
    let mut acked = BTreeMap::new();
    for n in 0..10 {
        write_batch(&kv, n, &mut acked).expect("a healthy cluster takes every batch");
    }

    // A volume server dies in the middle of a compaction's move, then batches are written.
    let volumes = env("SPLITSTORE_S3_VOLUMES");
    let victim = volumes.split(',').next().unwrap().to_owned();
    a_compaction_loses_a_volume_server_before_its_second_move_page(&victim);
    let mut writer = 0;
    for n in 10..40 {
        match write_batch(&kv, n, &mut acked) {
            Ok(()) => {}
            Err(KvError::Unavailable { detail }) => {
                writer += 1;
                println!("  batch {n} refused after the kill: {detail}");
            }
            Err(other) => panic!("batch {n}: not a service error: {other}"),
        }
    }
    let took = write_until_served(&kv, 40, &mut acked, Duration::from_secs(90));
    println!(
        "volume server {victim} killed: {writer} of the next 30 batches refused, served again after {:.1} s; {} blocks acknowledged",
        took.as_secs_f64(),
        acked.len()
    );
    all_read_back(&kv, &acked, "after a volume server was killed");

    // The leader master dies; the store serves again once another is elected.
    let masters: Vec<(String, String)> = env("SPLITSTORE_S3_MASTERS")
        .split(',')
        .map(|m| m.split_once('=').map(|(a, p)| (a.to_owned(), p.to_owned())).unwrap())
        .collect();
    let leader = leader_of(&masters[0].0);
    let pid = &masters.iter().find(|(a, _)| *a == leader).expect("the leader is one of ours").1;
    kill(pid);
    let killed = Instant::now();
    let took = write_until_served(&kv, 41, &mut acked, Duration::from_secs(90));
    let others: Vec<_> = masters.iter().filter(|(a, _)| *a != leader).collect();
    let new_leader = leader_of(&others[0].0);
    assert_ne!(new_leader, leader, "a new leader was elected");
    println!(
        "leader master {leader} killed: served again after {:.1} s (new leader {new_leader})",
        took.max(killed.elapsed()).as_secs_f64()
    );
    for n in 42..45 {
        write_batch(&kv, n, &mut acked).expect("a batch after the re-election");
    }
    all_read_back(&kv, &acked, "after the leader master was killed");
    drop(kv);
    let kv = open(dir.path(), "cluster");
    all_read_back(&kv, &acked, "after a reopen");

    // Compactions with cold on the degraded cluster match the oracle.
    let made = AtomicU32::new(0);
    let dirs = std::sync::Mutex::new(Vec::new());
    let make = || -> NativeKv {
        let d = tempfile::tempdir().unwrap();
        let n = made.fetch_add(1, Ordering::SeqCst);
        let kv: NativeKv = if n.is_multiple_of(2) {
            FjallKv::open(d.path(), &KvOptions { cache_bytes: 4 << 20, read_threads: 1, ..KvOptions::default() })
                .unwrap()
                .into()
        } else {
            open(d.path(), &format!("degraded{n}")).into()
        };
        dirs.lock().unwrap().push(d);
        kv
    };
    let compactions = block_on(scenarios::grow_and_compact(&make, Mode::Universal, 71, 40));
    assert!(compactions >= 2, "only {compactions} compactions");
}

/// A compaction in universal mode with cold on the cluster, and a volume server killed just
/// before the move's second page is written: the compaction finishes (its writes retried onto
/// the replicas) and matches the oracle, or fails with a typed error, and then every block the
/// stores held before is still in hot or cold after a reopen, and the next compaction
/// finishes.
fn a_compaction_loses_a_volume_server_before_its_second_move_page(victim: &str) {
    use splitstore_conformance::{
        chain::{apply_epoch, keys, small_chain, small_config, universe_of},
        scenarios::verify_compaction,
        wrap::HookedWritesKv,
    };
    use splitstore_core::{mem::ManualClock, NoProgress, SplitStore};
    let (hot_dir, cold_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let locator = KvOptions { cache_bytes: 4 << 20, read_threads: 1, ..KvOptions::default() };
    let hot = HookedWritesKv::new(NativeKv::from(FjallKv::open(hot_dir.path(), &locator).unwrap()));
    let cold = HookedWritesKv::new(NativeKv::from(open(cold_dir.path(), "move-kill")));
    let config = small_config(Mode::Universal);
    block_on(async {
        let mut store = SplitStore::open(&hot, &cold, ManualClock::new(1_000_000), config.clone()).await.expect("open");
        let mut chain = small_chain(83);
        let mut compactions = 0;
        let mut killed_in = None;
        let started = Instant::now();
        while compactions < 3 {
            assert!(started.elapsed() < Duration::from_secs(300), "no compaction finished after the kill");
            let epoch = chain.next_epoch();
            let Some(pending) = apply_epoch(&store, &epoch).await else { continue };
            if compactions == 1 && killed_in.is_none() {
                let victim = victim.to_owned();
                cold.before_write(2, move || kill(&victim));
                killed_in = Some(epoch.height);
            }
            let hot_before = keys(store.hot(), Space::Blocks).await;
            let cold_before = keys(store.cold(), Space::Blocks).await;
            let before = universe_of(store.hot(), store.cold()).await;
            match store.run_compaction(pending, &NoProgress).await {
                Ok(report) => {
                    verify_compaction(&store, &report, &hot_before, &cold_before, &before).await;
                    compactions += 1;
                    if killed_in == Some(epoch.height) {
                        assert!(cold.fired(), "the move had no second page: the kill never happened");
                        println!("  a compaction with a volume server killed before its second move page finished: {report:?}");
                    }
                }
                Err(e) => {
                    assert!(cold.fired(), "a compaction failed before the kill: {e}");
                    assert!(
                        matches!(&e, splitstore_core::Error::Kv { store: "cold", source: KvError::Unavailable { .. } }),
                        "not a typed cold-store error: {e}"
                    );
                    println!("  the compaction failed cleanly beside the kill: {e}");
                    drop(store);
                    store = SplitStore::open(&hot, &cold, ManualClock::new(1_000_000), config.clone())
                        .await
                        .expect("reopen after the failed compaction");
                    let after = universe_of(store.hot(), store.cold()).await;
                    let lost: Vec<_> =
                        before.blocks.keys().filter(|k| !after.blocks.contains_key(*k)).take(3).collect();
                    assert!(lost.is_empty(), "blocks lost by the failed compaction: {lost:?}");
                }
            }
        }
        assert!(killed_in.is_some() && cold.fired());
    });
}

/// The leader the master at `addr` names (`/cluster/status`), as `host:port`.
fn leader_of(addr: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(body) = http_get(addr, "/cluster/status") {
            if let Some(leader) = body.split("\"Leader\":\"").nth(1).and_then(|r| r.split('"').next()) {
                // "host:port.grpcport"
                let leader = leader.rsplit_once('.').map_or(leader, |(a, _)| a);
                if !leader.is_empty() {
                    return leader.to_owned();
                }
            }
        }
        assert!(Instant::now() < deadline, "no leader named by {addr}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A plain HTTP/1.0 GET (the masters' status page), without a client library.
fn http_get(addr: &str, path: &str) -> std::io::Result<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}
