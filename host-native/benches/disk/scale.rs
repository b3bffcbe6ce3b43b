//! Section 6: one `splitstore compact` of the whole fixture per mode, run as the command a
//! user runs, with the peak resident memory of its process: how far the store scales on this
//! machine, and how each phase grows with it (run the section at several `--objects`).

use std::{
    path::Path,
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use splitstore_core::{CompactionReport, Mode, Phase};
use splitstore_native::{Repo, RepoConfig};

use super::{
    fixture::{repo_config, Fixture, COLD_CACHE, HOT_CACHE},
    phases::ROWS,
    stats::{mib, phase_secs},
    BenchResult,
};

/// How often the child's peak resident set is read.
const RSS_SAMPLE: Duration = Duration::from_millis(10);

/// One compaction of the fixture by the `splitstore` command.
#[derive(Clone, Debug)]
pub struct ScaleRun {
    /// The command's report.
    pub report: CompactionReport,
    /// Wall seconds of the whole command (open, compaction, close).
    pub command_secs: f64,
    /// The process's peak resident set (`VmHWM`), bytes, as last read before it exited.
    pub peak_rss: u64,
}

/// `VmHWM` of process `pid`, bytes; `None` once the process has exited.
fn peak_rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Runs `splitstore --repo DIR --json compact` on a copy of the fixture set to `mode`.
fn compact_copy(fx: &Fixture, mode: Mode) -> BenchResult<ScaleRun> {
    let dir = fx.copy(&format!("scale-{}", mode.as_str()))?;
    set_mode(&dir, mode)?;
    let start = Instant::now();
    let child = Command::new(env!("CARGO_BIN_EXE_splitstore"))
        .arg("--repo")
        .arg(&dir)
        .args(["--json", "compact"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let (pid, peak, done) = (child.id(), Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
    let sampler = {
        let (peak, done) = (Arc::clone(&peak), Arc::clone(&done));
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Some(rss) = peak_rss_of(pid) {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(RSS_SAMPLE);
            }
        })
    };
    let out = child.wait_with_output();
    done.store(true, Ordering::Relaxed);
    sampler.join().map_err(|_| "the RSS sampler panicked")?;
    let out = out?;
    let command_secs = start.elapsed().as_secs_f64();
    if !out.status.success() {
        return Err(format!("`splitstore compact` failed: {}", out.status).into());
    }
    let report: CompactionReport = serde_json::from_slice(&out.stdout)?;
    fx.remove(&dir)?;
    Ok(ScaleRun { report, command_secs, peak_rss: peak.load(Ordering::Relaxed) })
}

/// Rewrites the repo's configuration with `mode`.
fn set_mode(dir: &Path, mode: Mode) -> BenchResult<()> {
    let config = RepoConfig { mode: mode.as_str().into(), ..repo_config() };
    std::fs::write(Repo::config_path(dir), config.to_toml())?;
    Ok(())
}

/// Compacts the fixture once in discard and once in universal mode, each in its own process.
pub fn section_scale(fx: &Fixture, summary: &mut Vec<String>) -> BenchResult<()> {
    println!("\n== 6. scale: `splitstore compact` of the whole store, peak resident memory ==");
    let caches = mib(HOT_CACHE + COLD_CACHE);
    summary.push(String::new());
    summary.push(format!(
        "| {} blocks | mode | marked | mark set, B/object | peak RSS (MiB) | mark | collect | move | purge | finish + \
         reclaim | compaction | command |",
        fx.blocks
    ));
    summary.push("|---|---|---|---|---|---|---|---|---|---|---|---|".into());
    for mode in [Mode::Discard, Mode::Universal] {
        let run = compact_copy(fx, mode)?;
        let r = &run.report;
        let rows = ROWS.map(|(_, phases)| phase_secs(r, phases));
        let row = [rows[0], rows[1], rows[2], rows[3], phase_secs(r, &[Phase::Reclaim])];
        let rss = mib(run.peak_rss);
        println!(
            "{}: marked {} (mark set {:.1} MiB, {:.1} B/object), dead {}, moved {}, purged {}; phases {:?}; \
             compaction {:.2} s, command {:.2} s; peak RSS {rss:.0} MiB (block caches configured {caches:.0} MiB)",
            mode.as_str(),
            r.marked,
            mib(r.markset_bytes),
            r.markset_bytes_per_object,
            r.dead,
            r.moved,
            r.purged,
            r.phases,
            r.total_ms as f64 / 1000.0,
            run.command_secs,
        );
        summary.push(format!(
            "| | {} | {} | {:.1} | {rss:.0} | {:.2} s | {:.2} s | {:.2} s | {:.2} s | {:.2} s | {:.2} s | {:.2} s |",
            mode.as_str(),
            r.marked,
            r.markset_bytes_per_object,
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            r.total_ms as f64 / 1000.0,
            run.command_secs,
        ));
    }
    Ok(())
}
