//! kill -9 during `splitstore compact`: whenever the process dies, reopening the store (which
//! runs recovery) must leave every live block in place and nothing live dangling.
//!
//! `SPLITSTORE_KILL_TRIALS` sets the number of trials (default 20), `SPLITSTORE_KILL_SEED`
//! the seed of the kill times.

mod common;

use std::{
    collections::HashSet,
    path::Path,
    time::{Duration, Instant},
};

use common::*;

const FINALITY: i64 = 20;
const EPOCHS: &str = "260";
const ACTORS: &str = "6000";

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir").flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type().expect("type").is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).expect("copy");
        }
    }
}

fn set_mode(repo: &Path, mode: &str) {
    let cfg = repo.join("config.toml");
    let text = std::fs::read_to_string(&cfg).expect("config");
    let text: String = text
        .lines()
        .map(|l| if l.starts_with("mode =") { format!("mode = \"{mode}\"\n") } else { format!("{l}\n") })
        .collect();
    std::fs::write(&cfg, text).expect("config");
}

/// xorshift64*, seeded.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

#[test]
fn sigkill_during_compaction_never_loses_a_live_block() {
    let trials = env_u64("SPLITSTORE_KILL_TRIALS", 20);
    let mut rng = Rng(env_u64("SPLITSTORE_KILL_SEED", 0x5eed_c0de) | 1);
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = tmp.path().join("base");
    ok(&base, &["init", "--finality", &FINALITY.to_string(), "--threshold-finalities", "1000", "--sync-gap-secs", "0"]);
    let text = ok(&base, &["generate", "--epochs", EPOCHS, "--state-objects", ACTORS]);
    eprintln!("{text}");

    // The oracle: every block there is, and the live set of a compaction at this head.
    let all_car = base.with_extension("all.car");
    ok(&base, &["export", "--out", all_car.to_str().expect("path"), "--store", "all"]);
    let all = read_car(&all_car);
    let head_info = info(&base);
    let head = head_of(&head_info);
    let height = head_info["headEpoch"].as_i64().expect("height");
    let boundary = height - 4 * FINALITY;
    let live = live_set(&all.blocks, &head, boundary, boundary).live;
    assert!(live.len() * 3 < all.blocks.len() * 2, "a compaction must have much to purge");

    // How long an uninterrupted compaction takes; kills land anywhere in that window.
    let reference = tmp.path().join("reference");
    copy_dir(&base, &reference);
    let start = Instant::now();
    let text = ok(&reference, &["compact"]);
    let full = start.elapsed();
    eprintln!("uninterrupted compaction: {full:?}\n{text}");
    assert!(full > Duration::from_millis(500), "the store is too small to kill a compaction mid-way ({full:?})");

    let modes = ["discard", "universal", "messages"];
    let mut killed_running = 0;
    for trial in 0..trials {
        let mode = modes[trial as usize % modes.len()];
        let repo = tmp.path().join(format!("trial-{trial}"));
        copy_dir(&base, &repo);
        set_mode(&repo, mode);
        let delay = Duration::from_millis(rng.next() % (full.as_millis() as u64 + 1));
        let (running, status) = kill_compaction_after(&repo, delay);
        killed_running += u64::from(running);

        // Reopening runs recovery; the live set must be complete.
        let check: serde_json::Value = serde_json::from_str(&ok(&repo, &["check", "--json"])).expect("json");
        assert_eq!(check["missing"], 0, "trial {trial} ({mode}, killed after {delay:?}, {status}): {check}");
        let out = repo.with_extension("car");
        ok(&repo, &["export", "--out", out.to_str().expect("path"), "--store", "all"]);
        let exported: HashSet<Vec<u8>> = read_car(&out).blocks.into_keys().collect();
        let lost = live.difference(&exported).count();
        assert_eq!(lost, 0, "trial {trial} ({mode}, killed after {delay:?}): {lost} live blocks lost");
        let after = info(&repo);
        assert_eq!(after["head"], head_info["head"], "trial {trial}: the head survives");
        assert_eq!(after["pendingRecovery"], false, "trial {trial}: recovery finished on open");

        // Every few trials, the store also compacts to the end afterwards.
        if trial % 5 == 4 {
            ok(&repo, &["compact"]);
            let check: serde_json::Value = serde_json::from_str(&ok(&repo, &["check", "--json"])).expect("json");
            assert_eq!(check["missing"], 0, "trial {trial}: after a full compaction");
            let hot_car = repo.with_extension("hot.car");
            ok(&repo, &["export", "--out", hot_car.to_str().expect("path"), "--store", "hot"]);
            let hot: HashSet<Vec<u8>> = read_car(&hot_car).blocks.into_keys().collect();
            let cold_live = live.difference(&hot).count();
            assert_eq!(
                cold_live, 0,
                "trial {trial} ({mode}): {cold_live} live blocks are not hot after a full compaction"
            );
            let dead_hot = hot.difference(&live).count();
            assert_eq!(dead_hot, 0, "trial {trial} ({mode}): {dead_hot} dead blocks still hot after a full compaction");
            std::fs::remove_file(&hot_car).expect("cleanup");
        }
        std::fs::remove_dir_all(&repo).expect("cleanup");
        std::fs::remove_file(&out).expect("cleanup");
    }
    eprintln!("{trials} trials, {killed_running} killed while compacting");
    assert!(killed_running * 2 >= trials, "most kills must land while the compaction runs");
}
