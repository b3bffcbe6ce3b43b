//! Operators' views of a store: the status record read by a second process while the first
//! holds the repo and compacts, the Prometheus exposition (parsed by a Prometheus text-format
//! parser), and the repairs `rollback` and `clear`.

mod common;

use std::{
    collections::HashMap,
    path::Path,
    sync::Mutex,
    time::{Duration, Instant},
};

use common::*;
use futures::executor::block_on;
use splitstore_core::{
    kv::{Kv, Space, WriteBatch},
    meta, Phase, Progress,
};
use splitstore_native::{
    ops::OpenStore,
    status::{self, HolderState, Status},
};

const CHAIN: &str = "kubo-lotus-testnet/lotus_testnet_export_128.car";

fn init_and_import(repo: &Path, mode: &str) {
    ok(repo, &["init", "--mode", mode, "--finality", "10"]);
    ok(repo, &["import", testdata(CHAIN).to_str().expect("path")]);
}

/// Samples by metric name and sorted labels.
type Samples = HashMap<(String, Vec<(String, String)>), f64>;

/// Every sample of a Prometheus text exposition, by metric name and labels.
fn parse_prometheus(text: &str) -> Samples {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("the exposition parses");
    assert!(!scrape.samples.is_empty(), "no samples in:\n{text}");
    let mut out = HashMap::new();
    for s in scrape.samples {
        let value = match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            other => panic!("{}: unexpected sample type {other:?}", s.metric),
        };
        let mut labels: Vec<(String, String)> = s.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        labels.sort();
        assert!(s.metric.starts_with("splitstore_"), "{} lacks the prefix", s.metric);
        assert!(out.insert((s.metric.clone(), labels), value).is_none(), "{} repeated", s.metric);
    }
    // Each family is typed, and every counter's samples end in `_total`.
    for line in text.lines().filter(|l| l.starts_with("# TYPE ")) {
        let mut parts = line.split_whitespace().skip(2);
        let (name, kind) = (parts.next().expect("name"), parts.next().expect("type"));
        assert!(kind == "counter" || kind == "gauge", "{line}");
        assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
    }
    out
}

fn sample(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut key: Vec<(String, String)> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    key.sort();
    *samples.get(&(name.to_string(), key)).unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
}

#[test]
fn a_second_process_reads_the_status_of_a_running_compaction() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    init_and_import(&repo, "universal");

    let open = OpenStore::open(&repo).expect("open");
    // The holder's own check, which a second process reads back from the record.
    let check = block_on(open.store.check()).expect("check");
    open.status.record_check(&check);

    let seen: Mutex<Option<(String, String, String, String)>> = Mutex::new(None);
    let sink = |p: &Progress| {
        if p.phase != Phase::Mark || seen.lock().unwrap().is_some() {
            return;
        }
        // The keeper writes the record on its own thread: wait for it to show this phase.
        let start = Instant::now();
        loop {
            let s: Option<Status> = status::read(&repo).expect("read status");
            let shows_mark = s
                .as_ref()
                .and_then(|s| s.snapshot.as_ref())
                .is_some_and(|snap| snap.info.compacting && snap.info.progress.is_some_and(|p| p.phase == Phase::Mark));
            if shows_mark {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "the record never showed the mark phase: {s:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
        let json = ok(&repo, &["info", "--json"]);
        let text = ok(&repo, &["info"]);
        let prom = ok(&repo, &["info", "--format", "prometheus"]);
        let checked = ok(&repo, &["check", "--from-status", "--json"]);
        *seen.lock().unwrap() = Some((json, text, prom, checked));
    };
    let pending = open.store.begin_compaction().expect("begin");
    let report = block_on(open.store.run_compaction(pending.without_head_wait(), &open.status.progress(&sink)))
        .expect("compaction");
    let (json, text, prom, checked) = seen.into_inner().unwrap().expect("the second process ran during the mark phase");

    let json: serde_json::Value = serde_json::from_str(&json).expect("info --json");
    assert_eq!(json["holder"]["pid"], std::process::id(), "the record names the holder");
    assert_eq!(json["holder"]["state"], "open");
    let snap: splitstore_core::Info = serde_json::from_value(json.clone()).expect("the same Info object");
    assert!(snap.compacting);
    assert_eq!(snap.head_epoch, Some(128));
    assert_eq!(snap.metrics.compactions_started, 1);
    assert!(json["disk"]["hot"].as_u64().unwrap() > 0);
    assert!(text.contains(&format!("status record of process {}", std::process::id())), "{text}");
    assert!(text.contains("compacting:       yes, mark"), "{text}");
    let samples = parse_prometheus(&prom);
    assert_eq!(sample(&samples, "splitstore_compacting", &[]), 1.0);
    assert_eq!(sample(&samples, "splitstore_head_epoch", &[]), 128.0);
    assert!(samples.keys().any(|(n, l)| n == "splitstore_compaction_phase_done" && l[0].1 == "mark"), "{prom}");
    let checked: serde_json::Value = serde_json::from_str(&checked).expect("check json");
    assert_eq!(checked["hot"].as_u64(), Some(check.hot));
    assert_eq!(checked["missing"], 0);

    // After the run the record says so; once the holder closes, a second process opens the
    // store itself (the record is only read while the lock is held).
    open.status.poke();
    let start = Instant::now();
    while status::read(&repo).unwrap().and_then(|s| s.snapshot).is_none_or(|s| s.info.compacting) {
        assert!(start.elapsed() < Duration::from_secs(20), "the record still shows a compaction");
        std::thread::sleep(Duration::from_millis(10));
    }
    open.close().expect("close");
    drop(open);
    assert_eq!(status::read(&repo).unwrap().expect("record").state, HolderState::Closed);
    let after = info(&repo);
    assert_eq!(after["compactions"], 1);
    assert!(after.get("holder").is_none(), "read from the store itself, not the record");
    assert_eq!(after["lastCompaction"]["purged"].as_u64(), Some(report.purged));
}

#[test]
fn prometheus_exposition_matches_the_store() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    init_and_import(&repo, "universal");
    ok(&repo, &["compact"]);
    let prom = ok(&repo, &["info", "--format", "prometheus"]);
    let samples = parse_prometheus(&prom);
    let i = info(&repo);
    assert_eq!(sample(&samples, "splitstore_base_epoch", &[]), i["baseEpoch"].as_f64().unwrap());
    assert_eq!(sample(&samples, "splitstore_completed_compactions", &[]), 1.0);
    assert_eq!(sample(&samples, "splitstore_compacting", &[]), 0.0);
    let purged = i["lastCompaction"]["purged"].as_f64().unwrap();
    assert!(purged > 0.0);
    assert_eq!(sample(&samples, "splitstore_last_compaction_objects", &[("action", "purged")]), purged);
    assert_eq!(sample(&samples, "splitstore_last_compaction_objects", &[("action", "moved")]), purged);
    // Counters count since this process opened the store: nothing read or written yet.
    assert_eq!(sample(&samples, "splitstore_written_blocks_total", &[]), 0.0);
    assert_eq!(sample(&samples, "splitstore_lookups_total", &[("result", "hot")]), 0.0);
    let cold_objects = sample(&samples, "splitstore_objects", &[("store", "cold")]);
    assert_eq!(cold_objects, i["counts"]["cold"]["keys"].as_f64().unwrap(), "fjall's count is exact after a flush");
    assert!(sample(&samples, "splitstore_disk_bytes", &[("store", "hot")]) > 0.0);
    let phases: Vec<&str> = samples
        .keys()
        .filter(|(n, _)| n == "splitstore_last_compaction_phase_seconds")
        .map(|(_, l)| l[0].1.as_str())
        .collect();
    for p in ["mark", "collect", "purge"] {
        assert!(phases.contains(&p), "{p} missing from {phases:?}");
    }
}

#[test]
fn counters_follow_reads_writes_and_compactions() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    init_and_import(&repo, "universal");
    let open = OpenStore::open(&repo).expect("open");
    let registry = splitstore_native::prometheus::registry(open.store.clone());
    let head = block_on(open.store.info()).unwrap().head.unwrap()[0];
    let block = block_on(open.store.get(&head)).unwrap().expect("the head header");
    let data = b"fourteen bytes".to_vec();
    let digest = blake2b_simd::Params::new().hash_length(32).hash(&data);
    let absent =
        splitstore_core::Cid::new_v1(0x55, cid::multihash::Multihash::wrap(0xb220, digest.as_bytes()).unwrap());
    assert!(block_on(open.store.get(&absent)).unwrap().is_none());
    block_on(open.store.put(&absent, data)).unwrap();
    block_on(open.store.compact(&splitstore_core::NoProgress)).expect("compact");
    let m = block_on(open.store.info()).unwrap().metrics;
    assert_eq!((m.lookups, m.hot_hits, m.misses), (2, 1, 1));
    assert_eq!(m.hot_read_bytes, block.len() as u64);
    assert_eq!((m.blocks_written, m.bytes_written, m.write_batches), (1, 14, 1));
    assert_eq!((m.compactions_started, m.compactions_finished, m.compactions_failed), (1, 1, 0));
    assert_eq!(m.calls, 3, "two gets and a put");
    let samples = parse_prometheus(&splitstore_native::prometheus::encode_registry(&registry));
    let calls = |speed| sample(&samples, "splitstore_calls_total", &[("speed", speed)]);
    assert_eq!((calls("fast"), calls("slow")), ((m.calls - m.slow_calls) as f64, m.slow_calls as f64));
    assert_eq!(sample(&samples, "splitstore_lookups_total", &[("result", "miss")]), 1.0);
    assert_eq!(sample(&samples, "splitstore_compactions_total", &[("outcome", "finished")]), 1.0);
    assert_eq!(sample(&samples, "splitstore_compaction_objects_total", &[("action", "moved")]), m.moved as f64);
    // The hot key list is on by default: the compaction left one, and the gauge reports it.
    let held = block_on(open.store.info()).unwrap().held;
    assert!(held.hot_key_list > 0 && held.kept_graph == 0, "{held:?}");
    let holder = |h| sample(&samples, "splitstore_held_bytes", &[("holder", h)]);
    assert_eq!((holder("hot_key_list"), holder("kept_graph")), (held.hot_key_list as f64, 0.0));
    open.close().unwrap();
}

#[test]
fn rollback_puts_every_block_in_one_store_and_finishes_when_rerun() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    init_and_import(&repo, "universal");
    ok(&repo, &["compact"]);
    let before = info(&repo);
    let hot = before["counts"]["hot"]["keys"].as_u64().unwrap();
    let cold = before["counts"]["cold"]["keys"].as_u64().unwrap();
    assert!(hot > 0 && cold > 0, "both stores hold blocks");
    let all = std::env::temp_dir().join(format!("rollback-{}.car", std::process::id()));
    ok(&repo, &["export", "--out", all.to_str().unwrap()]);
    let want = read_car(&all);
    let _ = std::fs::remove_file(&all);

    // Without a terminal or --yes nothing happens.
    let out = run(&repo, &["rollback"]);
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(repo.join("hot").is_dir());

    let report: serde_json::Value = serde_json::from_str(&ok(&repo, &["rollback", "--yes", "--json"])).unwrap();
    assert_eq!(report["copied"].as_u64(), Some(hot));
    assert!(!repo.join("hot").exists(), "the hot store is gone");
    let out = run(&repo, &["info"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("undone by `rollback`"));
    // The cold store alone holds every block.
    let kv = splitstore_native::FjallKv::open(&repo.join("cold"), &Default::default()).expect("open cold");
    let mut keys = std::collections::HashSet::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = block_on(kv.scan_keys(Space::Blocks, after.as_deref(), 4096)).unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.clone());
        keys.extend(page);
    }
    drop(kv);
    let want_keys: std::collections::HashSet<Vec<u8>> = want.blocks.keys().cloned().collect();
    assert_eq!(keys, want_keys, "every block of both stores, nothing else");

    // An interrupted deletion (the marker written, the hot store still there) is finished by
    // running rollback again, which copies nothing.
    std::fs::create_dir_all(repo.join("hot/leftover")).unwrap();
    let again: serde_json::Value = serde_json::from_str(&ok(&repo, &["rollback", "--yes", "--json"])).unwrap();
    assert_eq!(again["copied"], 0);
    assert_eq!(again["headEpoch"], 128, "the marker keeps the head");
    assert!(!repo.join("hot").exists());
}

#[test]
fn clear_drops_an_interrupted_compaction_and_loses_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    init_and_import(&repo, "discard");
    let counts = info(&repo)["counts"]["hot"]["keys"].as_u64().unwrap();
    assert_eq!(run(&repo, &["clear", "--yes"]).status.code(), Some(0));
    assert!(ok(&repo, &["clear"]).contains("nothing to clear"));

    // A purge interrupted with a corrupt record: open fails, clear repairs.
    {
        let (hot, _cold) = splitstore_native::Repo::open(&repo).unwrap().open_stores().unwrap();
        let mut b = WriteBatch::new();
        b.put(Space::Meta, meta::PURGE.to_vec(), vec![0xff]);
        b.put(Space::Dead, b"not-a-block-key".to_vec(), Vec::new());
        b.strict();
        block_on(hot.write(b)).unwrap();
    }
    let out = run(&repo, &["info"]);
    assert_eq!(out.status.code(), Some(1), "a corrupt purge record stops the open");
    let out = run(&repo, &["clear"]);
    assert_eq!(out.status.code(), Some(2), "no terminal, no --yes: refused");
    let report: serde_json::Value = serde_json::from_str(&ok(&repo, &["clear", "--yes", "--json"])).unwrap();
    assert_eq!(report["purgeRecord"], true);
    assert_eq!(report["deadEntries"], 1);
    assert_eq!(report["cleared"], true);
    let after = info(&repo);
    assert_eq!(after["counts"]["hot"]["keys"].as_u64(), Some(counts), "every block is still there");
    let check: serde_json::Value = serde_json::from_str(&ok(&repo, &["check", "--json"])).unwrap();
    assert_eq!(check["missing"], 0);
}

/// The stored DAG under `root` in `blocks` (absent links and identity CIDs, which are never
/// stored, skipped), by the tests' own link reader.
fn dag(blocks: &HashMap<Vec<u8>, (splitstore_core::Cid, Vec<u8>)>, root: splitstore_core::Cid) -> Vec<Vec<u8>> {
    let mut seen = std::collections::HashSet::new();
    let mut stack = vec![root];
    while let Some(c) = stack.pop() {
        if c.hash().code() == 0 {
            continue;
        }
        let k = c.hash().to_bytes();
        let Some((_, bytes)) = blocks.get(&k) else { continue };
        if seen.insert(k) {
            stack.extend(links(&c, bytes));
        }
    }
    seen.into_iter().collect()
}

#[test]
fn pins_from_the_command_line_keep_a_dead_dag_hot_until_unpinned() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    init_and_import(&repo, "discard");
    let all = read_car(&testdata(CHAIN));
    let head = head_of(&info(&repo));
    // The oracle's live set at this head (finality 10: the state boundary is 128 - 40).
    let live = live_set(&all.blocks, &head, 88, 88).live;
    // The largest DAG-CBOR object the compaction would drop, whole DAG and all.
    let (root, pinned) = all
        .blocks
        .values()
        .filter(|(c, _)| c.codec() == 0x71 && !live.contains(&c.hash().to_bytes()))
        .map(|(c, _)| (*c, dag(&all.blocks, *c)))
        .max_by_key(|(c, d)| (d.iter().filter(|k| !live.contains(*k)).count(), c.to_bytes()))
        .expect("a dead object");
    let dead_in_dag = pinned.iter().filter(|k| !live.contains(*k)).count();
    assert!(dead_in_dag > 1, "the pinned DAG holds dead blocks besides its root");

    let text = ok(&repo, &["pin", "add", &root.to_string()]);
    assert!(text.contains("1 roots pinned"), "{text}");
    let listed: serde_json::Value = serde_json::from_str(&ok(&repo, &["pin", "ls", "--json"])).unwrap();
    assert_eq!(listed["pinned"], serde_json::json!([root.to_string()]));
    ok(&repo, &["compact"]);
    let hot_car = tmp.path().join("hot.car");
    ok(&repo, &["export", "--out", hot_car.to_str().unwrap(), "--store", "hot"]);
    let hot = keys(&read_car(&hot_car));
    let kept = pinned.iter().filter(|k| hot.contains(*k)).count();
    assert_eq!(kept, pinned.len(), "every block of the pinned DAG stays hot");
    assert_eq!(hot.len(), live.union(&pinned.iter().cloned().collect()).count(), "and nothing else dead");

    ok(&repo, &["pin", "rm", &root.to_string()]);
    assert_eq!(ok(&repo, &["pin", "ls"]), "");
    ok(&repo, &["compact"]);
    ok(&repo, &["export", "--out", hot_car.to_str().unwrap(), "--store", "hot"]);
    let hot = keys(&read_car(&hot_car));
    assert_eq!(hot, live, "unpinned, the dead part goes with the next compaction");
    let out = run(&repo, &["get", &root.to_string()]);
    assert_eq!(out.status.code(), Some(1), "discard mode dropped the unpinned root");
}
