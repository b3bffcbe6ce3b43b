//! The `splitstore` command on real data: import, compact in each mode, export, and compare
//! with an independent walk; malformed files, a locked store, a corrupt configuration.

mod common;

use std::{collections::HashSet, path::Path};

use common::*;

const CHAIN: &str = "kubo-lotus-testnet/lotus_testnet_export_128.car";
const FINALITY: i64 = 10;

fn init(repo: &Path, mode: &str, retention: i64) {
    ok(
        repo,
        &["init", "--mode", mode, "--finality", &FINALITY.to_string(), "--message-retention", &retention.to_string()],
    );
}

fn export(repo: &Path, store: &str) -> Car {
    let out = repo.with_extension(format!("{store}.car"));
    let text = ok(repo, &["export", "--out", out.to_str().expect("utf-8 path"), "--store", store]);
    assert!(text.contains("exported"), "{text}");
    let car = read_car(&out);
    assert_eq!(car.sections, car.blocks.len(), "an export names each block once");
    car
}

/// Set equality, reporting sizes rather than contents.
fn same(what: &str, got: &HashSet<Vec<u8>>, want: &HashSet<Vec<u8>>) {
    let extra = got.difference(want).count();
    let missing = want.difference(got).count();
    assert!(
        extra == 0 && missing == 0,
        "{what}: {} found, {} expected, {extra} unexpected, {missing} missing",
        got.len(),
        want.len()
    );
}

fn compact_and_compare(mode: &str, retention: i64) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    init(&repo, mode, retention);
    let source = read_car(&testdata(CHAIN));
    let text = ok(&repo, &["import", testdata(CHAIN).to_str().expect("path")]);
    assert!(text.contains("head is now epoch 128"), "{text}");

    let before = info(&repo);
    assert_eq!(before["headEpoch"], 128);
    assert_eq!(before["counts"]["hot"]["keys"].as_u64(), Some(export(&repo, "hot").blocks.len() as u64));

    let text = ok(&repo, &["compact"]);
    assert!(text.contains("compaction at epoch 128"), "{text}");
    let after = info(&repo);
    let boundary = 128 - 4 * FINALITY;
    let include_messages = boundary - retention * FINALITY;
    assert_eq!(after["baseEpoch"], boundary);
    assert_eq!(after["compactions"], 1);

    // The oracle: the specification's live set, walked over every block of the file.
    let head = head_of(&after);
    assert_eq!(head, source.roots);
    let want = live_set(&source.blocks, &head, boundary, include_messages);
    // Identity-hash "blocks" are never stored.
    let all: HashSet<Vec<u8>> =
        source.blocks.iter().filter(|(_, (c, _))| c.hash().code() != 0).map(|(k, _)| k.clone()).collect();
    let hot = keys(&export(&repo, "hot"));
    let cold = keys(&export(&repo, "cold"));
    let all_car = export(&repo, "all");
    let both = keys(&all_car);
    // Each block is exported under the CID the chain gave it (DAG-CBOR objects as DAG-CBOR,
    // raw leaves as raw), the rule the browser's exportCar follows too.
    let renamed: Vec<_> = all_car.blocks.iter().filter(|(k, (c, _))| source.blocks[*k].0 != *c).take(3).collect();
    assert!(renamed.is_empty(), "{mode}: exported under another CID than the chain's: {renamed:?}");
    assert!(want.live.len() > 100 && want.live.len() < all.len(), "the walk keeps some and drops some");

    let lost: Vec<_> = want.live.difference(&hot).collect();
    assert!(lost.is_empty(), "{mode}: {} live blocks left the hot store", lost.len());
    let kept: HashSet<_> = hot.difference(&want.live).collect();
    assert!(kept.is_empty(), "{mode}: {} dead blocks stayed hot", kept.len());
    assert!(hot.is_subset(&all) && cold.is_subset(&all), "{mode}: nothing appears from nowhere");
    same("export --store all", &both, &hot.union(&cold).cloned().collect());
    let dead: HashSet<_> = all.difference(&want.live).cloned().collect();
    match mode {
        "discard" => assert!(cold.is_empty(), "discard mode writes nothing cold"),
        "universal" => same("universal mode moves every dead block to cold", &cold, &dead),
        "messages" => {
            assert!(!want.old_messages.is_empty(), "the test must have old messages to move");
            same("messages mode moves exactly the old messages and receipts", &cold, &want.old_messages);
        }
        _ => unreachable!(),
    }

    // The store's own check agrees, and a block is readable from where it went.
    let check: serde_json::Value = serde_json::from_str(&ok(&repo, &["check", "--json"])).expect("json");
    assert_eq!(check["missing"], 0);
    assert_eq!(check["hot"].as_u64(), Some(want.live.len() as u64), "{mode}: check counts the live set");
    let genesis_state = source.blocks.values().find(|(c, _)| c.codec() == 0x71).map(|(c, b)| (*c, b.clone()));
    let (cid, bytes) = genesis_state.expect("a DAG-CBOR block");
    let out = run(&repo, &["get", &cid.to_string()]);
    if hot.contains(&cid.hash().to_bytes()) || cold.contains(&cid.hash().to_bytes()) {
        assert!(out.status.success());
        assert_eq!(out.stdout, bytes, "get returns the block's bytes");
    } else {
        assert_eq!(out.status.code(), Some(1));
        assert!(String::from_utf8_lossy(&out.stderr).contains("neither the hot nor the cold store"));
    }

    // Re-importing the hot export into a fresh repo restores the head and the live set.
    let repo2 = tmp.path().join("again");
    init(&repo2, mode, retention);
    let hot_car = repo.with_extension("hot.car");
    let text = ok(&repo2, &["import", hot_car.to_str().expect("path")]);
    assert!(text.contains("head is now epoch 128"), "{text}");
    let check: serde_json::Value = serde_json::from_str(&ok(&repo2, &["check", "--json"])).expect("json");
    assert_eq!(check["missing"], 0, "the hot export alone holds the live set");
}

#[test]
fn discard_mode_keeps_exactly_the_live_set() {
    compact_and_compare("discard", 0);
}

#[test]
fn universal_mode_moves_every_dead_block_cold() {
    compact_and_compare("universal", 0);
}

#[test]
fn messages_mode_moves_only_old_messages() {
    compact_and_compare("messages", 2);
}

/// `prune` on the real chain in universal mode: with retention -1 nothing goes (every cold
/// block is old state or messages of a header), with 1 cold keeps exactly what the oracle's walk
/// keeps (state, messages and receipts from one finality below the boundary), with 0 nothing is
/// left cold (the boundary's state is all hot); the live set stays whole throughout.
#[test]
fn prune_keeps_what_the_retention_says() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    init(&repo, "universal", 0);
    let source = read_car(&testdata(CHAIN));
    ok(&repo, &["import", testdata(CHAIN).to_str().expect("path")]);
    ok(&repo, &["compact"]);
    let cold = keys(&export(&repo, "cold"));
    assert!(cold.len() > 100, "universal mode moved old state to cold");
    let head = head_of(&info(&repo));
    let prune = |retention: &str| -> serde_json::Value {
        serde_json::from_str(&ok(&repo, &["prune", "--retention", retention, "--json"])).expect("json")
    };

    let r = prune("-1");
    assert_eq!(r["purged"], 0, "{r}");
    assert!(r["retainStateFrom"].is_null());
    same("retention -1", &keys(&export(&repo, "cold")), &cold);

    let r = prune("1");
    let from = 128 - 5 * FINALITY;
    assert_eq!(r["retainStateFrom"], from);
    let kept = live_set(&source.blocks, &head, from, from).live;
    let want: HashSet<Vec<u8>> = cold.intersection(&kept).cloned().collect();
    assert!(!want.is_empty() && want.len() < cold.len(), "retention 1 keeps some and drops some");
    same("retention 1", &keys(&export(&repo, "cold")), &want);
    assert_eq!(r["purged"].as_u64(), Some((cold.len() - want.len()) as u64));

    let text = ok(&repo, &["prune", "--retention", "0"]);
    assert!(text.contains(&format!("state from epoch {}", 128 - 4 * FINALITY)), "{text}");
    assert!(keys(&export(&repo, "cold")).is_empty(), "retention 0 leaves nothing cold");
    let check: serde_json::Value = serde_json::from_str(&ok(&repo, &["check", "--json"])).expect("json");
    assert_eq!(check["missing"], 0);
    let after = info(&repo);
    assert_eq!(after["prunes"], 3);
    assert_eq!(after["lastPrune"]["retainStateFrom"], 128 - 4 * FINALITY);

    // Discard mode has nothing to prune, and says so.
    let repo = tmp.path().join("discard");
    init(&repo, "discard", 0);
    let out = run(&repo, &["prune", "--retention", "0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to prune"), "{out:?}");
}

/// Every CAR of the malformed-input corpora: valid ones import, invalid ones fail naming the
/// problem and change nothing (head, block count).
#[test]
fn malformed_cars_fail_cleanly_and_change_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    init(&repo, "discard", 0);
    ok(&repo, &["import", testdata(CHAIN).to_str().expect("path")]);
    let mut files = Vec::new();
    for dir in
        ["go-car/cmd-car-inputs", "go-car/fuzz-regressions", "go-car/v2-testdata", "js-car", "kubo-lotus-testnet"]
    {
        for e in std::fs::read_dir(testdata(dir)).expect("read_dir").flatten() {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "car" || x == "carv2") {
                files.push(p);
            }
        }
    }
    files.sort();
    assert!(files.len() >= 30, "found only {} CAR files", files.len());
    let mut failed = 0;
    for f in &files {
        let before = info(&repo);
        let out = run(&repo, &["import", f.to_str().expect("path")]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        let after = info(&repo);
        if out.status.success() {
            // A valid file: the head moves only to block-header roots of the file.
            if after["head"] != before["head"] {
                let roots: Vec<String> = read_car(f).roots.iter().map(ToString::to_string).collect();
                assert_eq!(
                    after["head"],
                    serde_json::json!(roots),
                    "{}: head must become the file's roots",
                    f.display()
                );
            }
            continue;
        }
        failed += 1;
        assert_eq!(out.status.code(), Some(1), "{}: {stderr}", f.display());
        assert!(stderr.contains("invalid CAR file"), "{}: {stderr}", f.display());
        let names_problem = ["byte", "version", "pragma", "hash", "header", "section", "varint", "offset"]
            .iter()
            .any(|w| stderr.contains(w));
        assert!(names_problem, "{}: the message must name the problem: {stderr}", f.display());
        assert!(stderr.contains("head is unchanged"), "{stderr}");
        assert_eq!(after["head"], before["head"], "{}: a failed import moved the head", f.display());
        assert_eq!(
            after["counts"]["hot"]["keys"],
            before["counts"]["hot"]["keys"],
            "{}: a failed import wrote blocks",
            f.display()
        );
    }
    // The corpora's known-bad files: version 42, corrupt pragma, truncated data, bad lengths.
    assert!(failed >= 8, "only {failed} files were rejected");
    let check: serde_json::Value = serde_json::from_str(&ok(&repo, &["check", "--json"])).expect("json");
    assert_eq!(check["missing"], 0);
}

#[test]
fn a_second_process_gets_store_in_use() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    init(&repo, "discard", 0);
    // A holder that keeps no status record (the bare lock): nothing to show.
    let held = splitstore_native::repo::Repo::open(&repo).expect("open");
    let out = run(&repo, &["info"]);
    assert_eq!(out.status.code(), Some(4), "exit status 4: in use");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("store is in use"), "{stderr}");
    let out = run(&repo, &["check"]);
    assert_eq!(out.status.code(), Some(4));
    drop(held);
    ok(&repo, &["info"]);
}

#[test]
fn bad_configuration_and_arguments_are_clear_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");

    let out = run(&repo, &["info"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a splitstore repo"));

    init(&repo, "discard", 0);
    let again = run(&repo, &["init"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("already holds a splitstore repo"));

    let cfg = repo.join("config.toml");
    let good = std::fs::read_to_string(&cfg).expect("config");
    for (bad, says) in
        [("mode = \"sideways\"\n", "sideways"), ("finality = [\n", "config.toml"), ("finalty = 3\n", "finalty")]
    {
        std::fs::write(&cfg, bad).expect("write");
        let out = run(&repo, &["info"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("bad configuration") && stderr.contains(says), "{stderr}");
    }
    std::fs::write(&cfg, good).expect("restore");

    let out = run(&repo, &["get", "not-a-cid"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a CID"));
    let unknown = "bafy2bzaceaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let out = run(&repo, &["head", unknown]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run(&repo, &["compact"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no head"));
    let out = run(&repo, &["import", "/nonexistent/file.car"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/file.car"));
    let out = run(&repo, &["export", "--out", "/nonexistent/dir/x.car"]);
    assert_eq!(out.status.code(), Some(1));
    let out = run(&repo, &["check"]);
    assert_eq!(out.status.code(), Some(1), "check without a head is an error");
    assert_eq!(info(&repo)["counts"]["hot"]["keys"], 0, "nothing was written");
}

#[test]
fn an_import_moves_the_head_only_forward_unless_told() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let repo = tmp.path().join("repo");
    init(&repo, "universal", 1);
    let newer = testdata("kubo-lotus-testnet/lotus_testnet_export_256_multiroot.car");
    let older = testdata(CHAIN);
    let text = ok(&repo, &["import", newer.to_str().expect("path")]);
    assert!(text.contains("head is now epoch 256"), "{text}");

    let text = ok(&repo, &["import", older.to_str().expect("path")]);
    assert!(text.contains("the head is unchanged") && text.contains("do not extend the current head"), "{text}");
    assert_eq!(info(&repo)["headEpoch"], 256);
    let text = ok(&repo, &["import", "--head", "keep", older.to_str().expect("path")]);
    assert!(text.contains("asked to keep the head"), "{text}");
    assert_eq!(info(&repo)["headEpoch"], 256);

    let text = ok(&repo, &["import", "--head", "apply", older.to_str().expect("path")]);
    assert!(text.contains("head is now epoch 128"), "{text}");
    assert_eq!(info(&repo)["headEpoch"], 128);
}
