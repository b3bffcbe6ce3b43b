//! Section 4: how long opening a store takes when `splitstore compact` was killed during its
//! purge, against the dead-list entries left for recovery to purge.

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc::{self, Receiver},
    time::{Duration, Instant},
};

use futures::executor::block_on;
use splitstore_core::{kv::Kv, meta, Mode, Space};
use splitstore_native::{ops::OpenStore, FjallKv, KvOptions};

use super::{
    fixture::{all_keys, default_read_threads, engine_config, open_store, Fixture, HOT_CACHE},
    stats::{copy_dir, process_cpu_secs},
    BenchResult,
};

/// Where in the purge (as a fraction of its uninterrupted length) each kill lands.
pub const FRACTIONS: [f64; 3] = [0.1, 0.5, 0.9];
/// The longest wait for a phase of the child's compaction to start.
const PHASE_TIMEOUT: Duration = Duration::from_secs(600);

/// `splitstore -v compact` on a repo, with the phase starts it logs.
struct Compaction {
    child: Child,
    phases: Receiver<(String, Instant)>,
}

/// The phase a `compaction phase` log line announces (`... compaction phase phase="purge" ...`).
fn phase_of(line: &str) -> Option<String> {
    let mut plain = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // An ANSI colour sequence: ESC [ ... m.
            for d in chars.by_ref() {
                if d == 'm' {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    let at = plain.find("compaction phase")?;
    let rest = &plain[at..];
    let value = &rest[rest.find("phase=")? + "phase=".len()..];
    let name: String = value.trim_start_matches('"').chars().take_while(char::is_ascii_alphabetic).collect();
    (!name.is_empty()).then_some(name)
}

impl Compaction {
    fn spawn(repo: &Path) -> BenchResult<Self> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_splitstore"))
            .arg("--repo")
            .arg(repo)
            .args(["-v", "compact"])
            .env_remove("RUST_LOG")
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take().ok_or("the child has no stderr")?;
        let (tx, phases) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(p) = phase_of(&line) {
                    if tx.send((p, Instant::now())).is_err() {
                        break;
                    }
                }
            }
        });
        Ok(Self { child, phases })
    }

    /// Waits until the child logs the start of `phase`.
    fn wait_for(&self, phase: &str) -> BenchResult<Instant> {
        loop {
            let (p, at) = self
                .phases
                .recv_timeout(PHASE_TIMEOUT)
                .map_err(|_| format!("`splitstore compact` never reached the {phase} phase"))?;
            if p == phase {
                return Ok(at);
            }
        }
    }
}

/// An uninterrupted `splitstore compact`.
#[derive(Clone, Debug, Default)]
pub struct Calibration {
    /// Its purge (default pacing), seconds.
    pub purge_secs: f64,
    /// The whole command, seconds.
    pub command_secs: f64,
}

/// One kill and the recovery after it.
#[derive(Clone, Debug, Default)]
pub struct KillPoint {
    /// Kill time as a fraction of the uninterrupted purge.
    pub fraction: f64,
    /// The purge record was durable at the kill (a purge to finish).
    pub record: bool,
    /// Dead-list entries left.
    pub remaining: u64,
    /// `OpenStore::open` (repo configuration: purge pacing on), seconds.
    pub open_secs: f64,
    /// Its recovery's own timing (from `info`), seconds.
    pub recovery_secs: f64,
    /// Entries its recovery purged.
    pub purged: u64,
    /// Opening a second copy of the killed repo with pacing off, seconds.
    pub unpaced_open_secs: f64,
    /// Its recovery's own timing, seconds.
    pub unpaced_recovery_secs: f64,
    /// Process CPU seconds of the unpaced open.
    pub unpaced_open_cpu: f64,
}

/// Times the purge of an uninterrupted `splitstore compact`.
fn calibrate(fx: &Fixture) -> BenchResult<Calibration> {
    let dir = fx.copy("recovery-full")?;
    let start = Instant::now();
    let mut full = Compaction::spawn(&dir)?;
    let purge_at = full.wait_for("purge")?;
    let reclaim_at = full.wait_for("reclaim")?;
    let status = full.child.wait()?;
    if !status.success() {
        return Err(format!("`splitstore compact` failed: {status}").into());
    }
    fx.remove(&dir)?;
    Ok(Calibration { purge_secs: (reclaim_at - purge_at).as_secs_f64(), command_secs: start.elapsed().as_secs_f64() })
}

/// Times the purge of an uninterrupted `splitstore compact`, then kills one at each of
/// [`FRACTIONS`] of that purge and opens the store.
pub fn recovery_run(fx: &Fixture) -> BenchResult<(Calibration, Vec<KillPoint>)> {
    let cal = calibrate(fx)?;
    let mut points = Vec::new();
    for fraction in FRACTIONS {
        let dir = fx.copy("recovery")?;
        let mut c = Compaction::spawn(&dir)?;
        let purge_at = c.wait_for("purge")?;
        let kill_at = purge_at + Duration::from_secs_f64(cal.purge_secs * fraction);
        if let Some(wait) = kill_at.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        // SIGKILL on Unix.
        c.child.kill()?;
        c.child.wait()?;
        points.push(recover_after_kill(fx, &dir, fraction)?);
    }
    Ok((cal, points))
}

/// Reads what the killed compaction left, then opens the repo as the command does, and a copy
/// of it with pacing off.
fn recover_after_kill(fx: &Fixture, dir: &Path, fraction: f64) -> BenchResult<KillPoint> {
    let unpaced: PathBuf = dir.with_extension("unpaced");
    copy_dir(dir, &unpaced)?;
    let (record, remaining) = {
        let hot = FjallKv::open(
            &dir.join("hot"),
            &KvOptions { cache_bytes: HOT_CACHE, read_threads: 1, ..KvOptions::default() },
        )?;
        let record = block_on(hot.get(Space::Meta, meta::PURGE))?.is_some();
        (record, all_keys(&hot, Space::Dead)?.len() as u64)
    };

    let start = Instant::now();
    let open = OpenStore::open(dir)?;
    let open_secs = start.elapsed().as_secs_f64();
    let info = block_on(open.store.info())?;
    open.close()?;
    drop(open);
    if info.pending_recovery {
        return Err("recovery did not finish at open".into());
    }
    let rec = info.recovery.unwrap_or_default();

    let (start, cpu) = (Instant::now(), process_cpu_secs());
    let store = open_store(&unpaced, engine_config(Mode::Discard, false)?, default_read_threads())?;
    let unpaced_open_secs = start.elapsed().as_secs_f64();
    let unpaced_open_cpu = process_cpu_secs() - cpu;
    let unpaced_rec = block_on(store.info())?.recovery.unwrap_or_default();
    block_on(store.close())?;
    drop(store);
    fx.remove(dir)?;
    fx.remove(&unpaced)?;
    Ok(KillPoint {
        fraction,
        record,
        remaining,
        open_secs,
        recovery_secs: rec.ms as f64 / 1000.0,
        purged: rec.purged,
        unpaced_open_secs,
        unpaced_recovery_secs: unpaced_rec.ms as f64 / 1000.0,
        unpaced_open_cpu,
    })
}
