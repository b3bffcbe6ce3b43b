//! Room on disk: which writes the filesystem's free space admits, and the reserve only the
//! store's upkeep may use.
//!
//! fjall stops for good at the first write the disk refuses (its journal or a table write
//! fails, and the database is poisoned until reopened), so a write must be refused *before*
//! the disk is full, with a cause the user can act on. [`DiskSpace`] does that:
//!
//! * **Headroom.** Every write must leave free room for fjall's own work after the write
//!   returns: `headroom` bytes (sealed memtables written out as tables, the journal) and as
//!   many bytes as the stores' tables take, since a background compaction may rewrite them
//!   (blocks are keyed by hashes, so a merge into a level overlaps all of it) before it
//!   deletes the old ones. A disk refused there is full for this store: fjall stops for good
//!   at a failed background write too.
//! * **Reserve.** A further `reserve` bytes are kept for the store's upkeep
//!   ([`WriteBatch::maintenance`](splitstore_core::kv::WriteBatch::maintenance): compaction
//!   and recovery). They are held by a ballast file, so that no other program can take them
//!   either. Other writes are refused once they would eat into it. An upkeep write that finds
//!   too little room releases the ballast (deletes the file) and goes on; the ballast is
//!   written again once a reclaim has freed room for it ([`DiskSpace::restore`]). Upkeep
//!   leaves only the headroom: its merges rewrite the tables it is shrinking, and if one
//!   fails on a full disk, fjall stops with nothing lost and the next open recovers.
//!
//! Each admitted write costs twice its payload against the free space (journal, then table)
//! until the next look at the filesystem. Free space is asked of the filesystem when the
//! bytes admitted since the last look could have used half of what was spare then, or a
//! second has passed (another program may write too).

use std::{
    fs::File,
    io::{self, Write},
    path::{Path, PathBuf},
    sync::Mutex,
    time::{Duration, Instant},
};

use splitstore_core::error::KvError;

/// The file holding the reserve, in the repo directory.
pub const RESERVE_FILE: &str = "reserve";

/// How long a look at the free space is trusted.
const FRESH: Duration = Duration::from_secs(1);

/// Free bytes of the filesystem holding `dir`, for an unprivileged writer.
#[cfg(unix)]
pub fn free_bytes(dir: &Path) -> io::Result<u64> {
    let s = rustix::fs::statvfs(dir)?;
    Ok(s.f_bavail.saturating_mul(s.f_frsize))
}

/// Free bytes are unknown here: every write is admitted.
#[cfg(not(unix))]
pub fn free_bytes(_dir: &Path) -> io::Result<u64> {
    Ok(u64::MAX)
}

#[derive(Debug, Default)]
struct State {
    /// Bytes that may still be admitted without asking the filesystem.
    budget: u64,
    /// When the filesystem was last asked.
    asked: Option<Instant>,
    /// The ballast file exists.
    ballast: bool,
    /// The cause of the first write the disk itself refused.
    refused: Option<String>,
    /// Table bytes of each store, as last seen.
    tables: Vec<(PathBuf, u64)>,
}

impl State {
    fn set_tables(&mut self, store: &Path, bytes: u64) {
        match self.tables.iter_mut().find(|(p, _)| p == store) {
            Some(entry) => entry.1 = bytes,
            None => self.tables.push((store.to_path_buf(), bytes)),
        }
    }

    fn tables(&self) -> u64 {
        self.tables.iter().map(|(_, b)| b).sum()
    }
}

/// The free-space policy of one repo's stores (shared by its hot and cold store).
#[derive(Debug)]
pub struct DiskSpace {
    dir: PathBuf,
    headroom: u64,
    reserve: u64,
    ballast: Option<PathBuf>,
    state: Mutex<State>,
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

impl DiskSpace {
    /// A policy for stores under `dir`, keeping `headroom` bytes free after every write and
    /// `reserve` more for upkeep, held by the ballast file `dir/reserve` (none if 0).
    pub fn new(dir: &Path, headroom: u64, reserve: u64) -> Self {
        let ballast = (reserve > 0).then(|| dir.join(RESERVE_FILE));
        let present = ballast.as_ref().is_some_and(|p| p.metadata().is_ok_and(|m| m.len() >= reserve));
        Self {
            dir: dir.to_path_buf(),
            headroom,
            reserve,
            ballast,
            state: Mutex::new(State { ballast: present, ..State::default() }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn free(&self) -> Result<u64, KvError> {
        free_bytes(&self.dir).map_err(|e| KvError::Backend { backend: "fjall", op: "statvfs", source: Box::new(e) })
    }

    /// Admits a write of `payload` bytes to the store in `store`, or refuses it with
    /// [`KvError::QuotaExceeded`] naming the disk and what to do. `tables` gives the store's
    /// table bytes (asked only when the filesystem is). An upkeep write may release the
    /// reserve.
    pub fn admit(&self, store: &Path, tables: impl FnOnce() -> u64, payload: u64, upkeep: bool) -> Result<(), KvError> {
        let cost = payload.saturating_mul(2);
        let mut s = self.lock();
        if !upkeep && s.budget >= cost && s.asked.is_some_and(|t| t.elapsed() < FRESH) {
            s.budget -= cost;
            return Ok(());
        }
        s.set_tables(store, tables());
        let mut free = self.free()?;
        // Upkeep may use everything but the headroom; other writes also leave room for a merge
        // of the tables, and the reserve as free space while the ballast does not hold it.
        let kept = |s: &State| match (upkeep, s.ballast) {
            (true, _) => 0,
            (false, true) => s.tables(),
            (false, false) => s.tables() + self.reserve,
        };
        let need = cost + self.headroom + kept(&s);
        if free < need && upkeep && s.ballast {
            self.release(&mut s);
            free = self.free()?;
        }
        s.asked = Some(Instant::now());
        let need = cost + self.headroom + kept(&s);
        if free < need {
            s.budget = 0;
            let detail = if upkeep {
                format!(
                    "the disk holding {} is full: {} free, and compacting needs {} more than its reserve; \
                     free space on the disk or give the store a larger reserve",
                    self.dir.display(),
                    mib(free),
                    mib(need - free)
                )
            } else {
                format!(
                    "the disk holding {} is full: {} free, {} needed for this write, the store's own work \
                     ({} of tables a merge may rewrite) and the {} reserve kept for compaction; compact \
                     the store to free space",
                    self.dir.display(),
                    mib(free),
                    mib(need),
                    mib(s.tables()),
                    mib(self.reserve)
                )
            };
            return Err(KvError::QuotaExceeded { detail });
        }
        s.budget = (free - need) / 2;
        Ok(())
    }

    fn release(&self, s: &mut State) {
        let Some(path) = &self.ballast else { return };
        match std::fs::remove_file(path) {
            Ok(()) => tracing::warn!(
                "disk full: released the {} reserve ({}) for compaction",
                mib(self.reserve),
                path.display()
            ),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!("could not release the reserve {}: {e}", path.display());
                return;
            }
        }
        s.ballast = false;
    }

    /// True when the disk is short of space for the stores' own work: the reserve was released
    /// for a compaction, or the free space is below the headroom and a merge of the tables.
    /// A failed `statvfs` counts as short.
    pub fn is_tight(&self) -> bool {
        let s = self.lock();
        if self.ballast.is_some() && !s.ballast {
            return true;
        }
        self.free().map_or(true, |free| free < self.headroom + s.tables())
    }

    /// Writes the ballast file if it is missing and the disk has room for it beside the
    /// headroom. Never fails: a reserve that cannot be written now is written later.
    pub fn restore(&self) {
        let Some(path) = &self.ballast else { return };
        let mut s = self.lock();
        if s.ballast {
            return;
        }
        match self.free() {
            Ok(free) if free >= self.reserve + self.headroom + s.tables() + self.reserve / 2 => {}
            _ => return,
        }
        match write_ballast(path, self.reserve) {
            Ok(()) => {
                s.ballast = true;
                s.asked = None;
            }
            Err(e) => tracing::warn!("could not write the reserve {}: {e}", path.display()),
        }
    }

    /// Records the cause of a write the disk itself refused; returns it.
    pub fn record_refusal(&self, detail: &str) -> String {
        let mut s = self.lock();
        s.budget = 0;
        s.refused.get_or_insert_with(|| detail.to_string()).clone()
    }

    /// Why the database stopped writing, when a full disk explains it: the first write the
    /// disk refused, or a disk now too full for the store's own work (a background write of
    /// fjall's failed on it).
    pub fn cause_of_stop(&self) -> Option<String> {
        let s = self.lock();
        if let Some(r) = s.refused.clone() {
            return Some(r);
        }
        let free = self.free().ok()?;
        (free < self.headroom + s.tables()).then(|| {
            format!(
                "the disk holding {} is full ({} free): a background write of the store failed",
                self.dir.display(),
                mib(free)
            )
        })
    }
}

/// Writes `bytes` of zeros to `path` (through a temporary file, so a crash leaves no short
/// ballast under the real name), allocated for real: a sparse file would reserve nothing.
fn write_ballast(path: &Path, bytes: u64) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let result = (|| {
        let mut f = File::create(&tmp)?;
        let chunk = vec![0u8; 1 << 20];
        let mut left = bytes;
        while left > 0 {
            let n = left.min(chunk.len() as u64) as usize;
            f.write_all(&chunk[..n])?;
            left -= n as u64;
        }
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}
