//! The status record: what the process holding a repo tells every other process.
//!
//! Only one process can hold a repo (its lock). The holder keeps `DIR/status.json` current:
//! a [`StatusKeeper`] thread rewrites it every [`INTERVAL`] and at once when poked (each
//! compaction phase, each check). Each write replaces the file atomically (a temporary file
//! renamed over it), so a reader sees one whole record, never a torn one. `splitstore info`
//! in a second process reads it instead of failing with "store is in use", and `check
//! --from-status` reads the holder's last check.
//!
//! The record is advisory: it is not synced to disk, and a holder that was killed leaves a
//! stale one behind. Readers therefore trust it only while the repo's lock is held by someone
//! else, and show its age and the holder's process id.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Condvar, Mutex},
    thread::JoinHandle,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Serialize};
use splitstore_core::{CheckReport, Phase, Progress, ProgressSink};

use crate::{errors::HostError, ops::NativeStore, prometheus::Snapshot};

/// The record's file name in the repo directory.
pub const STATUS_FILE: &str = "status.json";

/// How often the keeper rewrites the record when nothing pokes it.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Where the holder is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HolderState {
    /// Opening the store (recovery of an interrupted compaction may be running).
    Opening,
    /// The store is open.
    Open,
    /// The holder closed the store and released the lock.
    Closed,
}

/// A check the holder ran, with when it finished.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckRecord {
    /// Unix time in milliseconds when it finished.
    pub at_ms: u64,
    /// What it found.
    pub report: CheckReport,
}

/// The status record.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Status {
    /// The holder's process id.
    pub pid: u32,
    /// Unix time in milliseconds of this write.
    pub updated_ms: u64,
    /// Where the holder is.
    pub state: HolderState,
    /// The store's state and counters, once it is open.
    pub snapshot: Option<Snapshot>,
    /// The holder's last check, if it ran one.
    pub last_check: Option<CheckRecord>,
}

impl Status {
    /// Milliseconds between this write and now (0 if the clock went back).
    pub fn age_ms(&self) -> u64 {
        now_ms().saturating_sub(self.updated_ms)
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

/// The record's path in repo `dir`.
pub fn path(dir: &Path) -> PathBuf {
    dir.join(STATUS_FILE)
}

/// Reads the record of repo `dir`; `None` when there is none.
pub fn read(dir: &Path) -> Result<Option<Status>, HostError> {
    let p = path(dir);
    let bytes = match std::fs::read(&p) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(HostError::io("read", &p, e)),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| HostError::io("parse", &p, std::io::Error::new(std::io::ErrorKind::InvalidData, e)))
}

/// Replaces the record of repo `dir` with `status`, atomically for readers. On a full disk
/// the record is left as it was (it is advisory, and a full store must still open to be
/// compacted); readers then see an older record.
pub fn write(dir: &Path, status: &Status) -> Result<(), HostError> {
    let p = path(dir);
    let tmp = dir.join(format!("{STATUS_FILE}.tmp"));
    let bytes = serde_json::to_vec(status).expect("status records serialise");
    let written = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, &p));
    match written {
        Ok(()) => Ok(()),
        Err(e) if crate::errors::is_disk_full(&e) => {
            let _ = std::fs::remove_file(&tmp);
            tracing::warn!("status record not updated: the disk holding {} is full", dir.display());
            Ok(())
        }
        Err(e) => Err(HostError::io("write", &tmp, e)),
    }
}

#[derive(Debug, Default)]
struct Signal {
    poked: bool,
    stop: bool,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    store: Arc<NativeStore>,
    signal: Mutex<Signal>,
    wake: Condvar,
    last_check: Mutex<Option<CheckRecord>>,
    /// Serialises writers (the thread and [`StatusKeeper::stop`]).
    writing: Mutex<()>,
}

impl Shared {
    fn write(&self, state: HolderState) -> Result<(), HostError> {
        let _one = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let snapshot = Snapshot::of(&self.store).ok();
        let last_check = self.last_check.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let status = Status { pid: std::process::id(), updated_ms: now_ms(), state, snapshot, last_check };
        write(&self.dir, &status)
    }
}

/// Keeps the status record of an open store current, on a thread of its own, until stopped
/// or dropped.
#[derive(Debug)]
pub struct StatusKeeper {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl StatusKeeper {
    /// Writes the record of `store` (open, in repo `dir`) now, then every `interval` and
    /// whenever poked. Write failures after the first are logged, never fatal: the record
    /// is advisory.
    pub fn start(dir: &Path, store: Arc<NativeStore>, interval: Duration) -> Result<Self, HostError> {
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            store,
            signal: Mutex::new(Signal::default()),
            wake: Condvar::new(),
            last_check: Mutex::new(read(dir).ok().flatten().and_then(|s| s.last_check)),
            writing: Mutex::new(()),
        });
        shared.write(HolderState::Open)?;
        let worker = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("splitstore-status".into())
            .spawn(move || loop {
                let stop = {
                    let signal = worker.signal.lock().unwrap_or_else(|p| p.into_inner());
                    let (mut signal, _) = worker
                        .wake
                        .wait_timeout_while(signal, interval, |s| !s.poked && !s.stop)
                        .unwrap_or_else(|p| p.into_inner());
                    signal.poked = false;
                    signal.stop
                };
                if stop {
                    return;
                }
                if let Err(e) = worker.write(HolderState::Open) {
                    tracing::warn!("status record: {e}");
                }
            })
            .map_err(|e| HostError::io("spawn", dir, e))?;
        Ok(StatusKeeper { shared, thread: Mutex::new(Some(thread)) })
    }

    /// Asks for a write now (returns at once; the keeper's thread writes).
    pub fn poke(&self) {
        self.shared.signal.lock().unwrap_or_else(|p| p.into_inner()).poked = true;
        self.shared.wake.notify_one();
    }

    /// Records a check the holder ran, and writes the record.
    pub fn record_check(&self, report: &CheckReport) {
        *self.shared.last_check.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(CheckRecord { at_ms: now_ms(), report: report.clone() });
        self.poke();
    }

    /// A progress sink that forwards to `inner` and pokes the keeper at each new phase.
    pub fn progress<'a>(&'a self, inner: &'a dyn ProgressSink) -> impl ProgressSink + 'a {
        StatusProgress { keeper: self, inner, phase: Mutex::new(None) }
    }

    /// Stops the thread and writes the record one last time, marked closed.
    pub fn close(&self) -> Result<(), HostError> {
        self.halt();
        self.shared.write(HolderState::Closed)
    }

    fn halt(&self) {
        self.shared.signal.lock().unwrap_or_else(|p| p.into_inner()).stop = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.join();
        }
    }
}

impl Drop for StatusKeeper {
    fn drop(&mut self) {
        self.halt();
    }
}

/// Pokes a keeper whenever a compaction enters a new phase.
struct StatusProgress<'a> {
    keeper: &'a StatusKeeper,
    inner: &'a dyn ProgressSink,
    phase: Mutex<Option<Phase>>,
}

impl ProgressSink for StatusProgress<'_> {
    fn report(&self, p: &Progress) {
        self.inner.report(p);
        let mut last = self.phase.lock().unwrap_or_else(|e| e.into_inner());
        if *last != Some(p.phase) {
            *last = Some(p.phase);
            self.keeper.poke();
        }
    }
}

/// Writes a record saying a process is opening the store in `dir` (recovery may run before it
/// can say more). Called with the lock held, before the store is opened.
pub fn write_opening(dir: &Path) -> Result<(), HostError> {
    let last_check = read(dir).ok().flatten().and_then(|s| s.last_check);
    write(
        dir,
        &Status {
            pid: std::process::id(),
            updated_ms: now_ms(),
            state: HolderState::Opening,
            snapshot: None,
            last_check,
        },
    )
}
