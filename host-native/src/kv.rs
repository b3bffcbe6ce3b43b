//! The on-disk [`Kv`]: one fjall database per store, one fjall keyspace per [`Space`].
//!
//! # Durability
//!
//! Every batch is one fjall write batch, so it is atomic across keyspaces: fjall writes it to
//! its journal as one checksummed record and recovery replays whole records only.
//! [`Durability::Relaxed`] batches are handed to the operating system before `write` returns
//! (they survive the process being killed, not a power loss); [`Durability::Strict`] batches
//! and [`Kv::flush`] fsync the journal, which makes them and every earlier batch durable. The
//! journal is sequential, so a power loss loses a suffix of the relaxed batches: exactly the
//! crash model of [`splitstore_core::kv`].
//!
//! # Blocking
//!
//! fjall's calls block. The async methods call them directly, so they complete on the first
//! poll: the native host drives the store from its own threads (the compaction runs on a
//! dedicated one), never from an async reactor where blocking would stall other tasks.
//!
//! # Space reclaim
//!
//! Deletes write tombstones; [`Kv::reclaim`] flushes the memtables, runs a major compaction of
//! every keyspace (rewriting the live entries and dropping deleted ones) and then lets fjall
//! release the superseded table files and fully flushed journals. Each step installs its
//! result by atomically replacing fjall's version manifest, and files are deleted only after
//! no version refers to them, so a crash at any point leaves either the old or the new tables.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
};

use fjall::{
    config::{HashRatioPolicy, PinningPolicy},
    Database, Keyspace, KeyspaceCreateOptions, PersistMode,
};
use splitstore_core::{
    error::KvError,
    kv::{Capabilities, Durability, Kv, Op, Space, SpaceEstimate, SpaceStats, WriteBatch},
};

use crate::errors::fjall_error;

/// A `get_many` of at least this many keys is split across threads.
const PARALLEL_READ_MIN: usize = 4096;

/// Settings of one on-disk store.
#[derive(Clone, Debug)]
pub struct KvOptions {
    /// Block cache size in bytes.
    pub cache_bytes: u64,
    /// Threads a large `get_many` may use (1 = read on the calling thread only).
    pub read_threads: usize,
}

impl Default for KvOptions {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
        Self { cache_bytes: 256 << 20, read_threads: threads }
    }
}

struct Inner {
    db: Database,
    /// Indexed by [`space_index`].
    spaces: [Keyspace; 4],
    /// Written by `reclaim` so that a memtable rotation runs fjall's file garbage collection.
    gc: Keyspace,
    path: PathBuf,
    read_threads: usize,
    /// Serialises `reclaim` calls.
    reclaiming: Mutex<()>,
}

/// An on-disk key-value store. Cloning shares the same database.
#[derive(Clone)]
pub struct FjallKv {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FjallKv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FjallKv").field("path", &self.inner.path).finish_non_exhaustive()
    }
}

fn space_index(space: Space) -> usize {
    match space {
        Space::Blocks => 0,
        Space::Meta => 1,
        Space::Dead => 2,
        Space::ColdList => 3,
    }
}

/// The longest key fjall holds.
const MAX_KEY: usize = u16::MAX as usize;

/// fjall refuses (by panicking) empty keys and keys over [`MAX_KEY`] bytes.
fn valid_key(key: &[u8]) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY
}

fn op_key(op: &Op) -> &[u8] {
    match op {
        Op::Put { key, .. } | Op::Delete { key, .. } => key,
    }
}

/// Options of the block keyspace: hashed data blocks (a point read skips the binary search),
/// index and filter blocks pinned in memory, and no filter probe on the last level (marking
/// reads are nearly all hits). Measured in `KV_CHOICE.md`.
fn block_options() -> KeyspaceCreateOptions {
    KeyspaceCreateOptions::default()
        .data_block_hash_ratio_policy(HashRatioPolicy::all(0.75))
        .index_block_pinning_policy(PinningPolicy::all(true))
        .filter_block_pinning_policy(PinningPolicy::all(true))
        .expect_point_read_hits(true)
}

impl FjallKv {
    /// Opens (creating if needed) the store in `dir`. A store already open, in this or another
    /// process, gives [`KvError::InUse`].
    pub fn open(dir: &Path, opts: &KvOptions) -> Result<Self, KvError> {
        std::fs::create_dir_all(dir).map_err(|e| fjall_error("open", fjall::Error::Io(e)))?;
        let db = Database::builder(dir)
            .cache_size(opts.cache_bytes)
            .manual_journal_persist(true)
            .open()
            .map_err(|e| fjall_error("open", e))?;
        let ks =
            |name: &str, o: fn() -> KeyspaceCreateOptions| db.keyspace(name, o).map_err(|e| fjall_error("open", e));
        let spaces = [
            ks(Space::Blocks.name(), block_options)?,
            ks(Space::Meta.name(), KeyspaceCreateOptions::default)?,
            ks(Space::Dead.name(), KeyspaceCreateOptions::default)?,
            ks(Space::ColdList.name(), KeyspaceCreateOptions::default)?,
        ];
        let gc = ks("reclaim", KeyspaceCreateOptions::default)?;
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                spaces,
                gc,
                path: dir.to_path_buf(),
                read_threads: opts.read_threads.max(1),
                reclaiming: Mutex::new(()),
            }),
        })
    }

    /// The store's directory.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Bytes the store occupies on disk (tables and journals).
    pub fn disk_bytes(&self) -> Result<u64, KvError> {
        self.inner.db.disk_space().map_err(|e| fjall_error("disk_space", e))
    }

    /// Bytes of the store's journals: a bounded cost (fjall starts a new journal after 64 MB
    /// and deletes old ones once their data is in tables), not reclaimed by [`Kv::reclaim`].
    pub fn journal_bytes(&self) -> Result<u64, KvError> {
        self.inner.db.journal_disk_space().map_err(|e| fjall_error("disk_space", e))
    }

    /// Bytes of the store's tables: what grows with the data and what reclaim shrinks.
    pub fn table_bytes(&self) -> Result<u64, KvError> {
        Ok(self.disk_bytes()?.saturating_sub(self.journal_bytes()?))
    }

    fn ks(&self, space: Space) -> &Keyspace {
        &self.inner.spaces[space_index(space)]
    }

    fn get_one(ks: &Keyspace, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        if !valid_key(key) {
            // No such key can have been written.
            return Ok(None);
        }
        Ok(ks.get(key).map_err(|e| fjall_error("get", e))?.map(|v| v.to_vec()))
    }

    fn get_sync(ks: &Keyspace, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        keys.iter().map(|k| Self::get_one(ks, k)).collect()
    }

    fn scan_sync<T>(
        &self,
        space: Space,
        after: Option<&[u8]>,
        limit: usize,
        mut f: impl FnMut(fjall::Guard) -> Result<T, fjall::Error>,
    ) -> Result<Vec<T>, KvError> {
        use std::ops::Bound;
        if limit == 0 {
            return Ok(Vec::new());
        }
        let lower = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut out = Vec::with_capacity(limit.min(16_384));
        for guard in self.ks(space).range::<&[u8], _>((lower, Bound::Unbounded)).take(limit) {
            out.push(f(guard).map_err(|e| fjall_error("scan", e))?);
        }
        Ok(out)
    }

    /// Keeps the last operation on each key: fjall gives every item of a batch the same
    /// sequence number, so two writes of one key in one batch would be ambiguous.
    fn last_op_per_key(ops: Vec<Op>) -> Vec<Op> {
        let mut seen = std::collections::HashSet::with_capacity(ops.len());
        let mut dup = false;
        for op in &ops {
            let k = match op {
                Op::Put { space, key, .. } | Op::Delete { space, key } => (space_index(*space), key.as_slice()),
            };
            if !seen.insert(k) {
                dup = true;
                break;
            }
        }
        if !dup {
            return ops;
        }
        let mut seen = std::collections::HashSet::with_capacity(ops.len());
        let mut kept: Vec<Op> = ops
            .into_iter()
            .rev()
            .filter(|op| match op {
                Op::Put { space, key, .. } | Op::Delete { space, key } => {
                    seen.insert((space_index(*space), key.clone()))
                }
            })
            .collect();
        kept.reverse();
        kept
    }
}

#[async_trait::async_trait]
impl Kv for FjallKv {
    async fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        Self::get_one(self.ks(space), key)
    }

    async fn get_many(&self, space: Space, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        let ks = self.ks(space);
        let threads = self.inner.read_threads;
        if threads < 2 || keys.len() < PARALLEL_READ_MIN {
            return Self::get_sync(ks, keys);
        }
        // Point reads are CPU-bound once the data is cached; split large requests.
        let chunk = keys.len().div_ceil(threads);
        let parts: Vec<Result<Vec<Option<Vec<u8>>>, KvError>> = std::thread::scope(|s| {
            let handles: Vec<_> = keys.chunks(chunk).map(|part| s.spawn(move || Self::get_sync(ks, part))).collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| Err(KvError::Unavailable { detail: "a read thread panicked".into() }))
                })
                .collect()
        });
        let mut out = Vec::with_capacity(keys.len());
        for p in parts {
            out.extend(p?);
        }
        Ok(out)
    }

    async fn has(&self, space: Space, key: &[u8]) -> Result<bool, KvError> {
        if !valid_key(key) {
            return Ok(false);
        }
        self.ks(space).contains_key(key).map_err(|e| fjall_error("has", e))
    }

    async fn write(&self, batch: WriteBatch) -> Result<(), KvError> {
        let strict = batch.durability() == Durability::Strict;
        let ops = Self::last_op_per_key(batch.into_ops());
        if let Some(op) = ops.iter().find(|op| !valid_key(op_key(op))) {
            let detail = format!("key of {} bytes (fjall holds keys of 1 to {MAX_KEY} bytes)", op_key(op).len());
            let source = std::io::Error::new(std::io::ErrorKind::InvalidInput, detail);
            return Err(KvError::Backend { backend: "fjall", op: "write", source: Box::new(source) });
        }
        if ops.is_empty() {
            if strict {
                self.inner.db.persist(PersistMode::SyncAll).map_err(|e| fjall_error("write", e))?;
            }
            return Ok(());
        }
        let mut b = self.inner.db.batch();
        for op in ops {
            match op {
                Op::Put { space, key, value } => b.insert(self.ks(space), key, value),
                Op::Delete { space, key } => b.remove(self.ks(space), key),
            }
        }
        let mode = if strict { PersistMode::SyncAll } else { PersistMode::Buffer };
        b.durability(Some(mode)).commit().map_err(|e| fjall_error("write", e))
    }

    async fn scan_keys(&self, space: Space, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, KvError> {
        self.scan_sync(space, after, limit, |g| g.key().map(|k| k.to_vec()))
    }

    async fn scan(&self, space: Space, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>, KvError> {
        self.scan_sync(space, after, limit, |g| g.into_inner().map(|(k, v)| (k.to_vec(), v.to_vec())))
    }

    async fn flush(&self) -> Result<(), KvError> {
        self.inner.db.persist(PersistMode::SyncAll).map_err(|e| fjall_error("flush", e))
    }

    async fn reclaim(&self) -> Result<(), KvError> {
        let _one_at_a_time = self.inner.reclaiming.lock().map_err(|_| KvError::Crashed)?;
        let err = |e| fjall_error("reclaim", e);
        for ks in &self.inner.spaces {
            ks.rotate_memtable_and_wait().map_err(err)?;
        }
        for ks in &self.inner.spaces {
            ks.major_compact().map_err(err)?;
        }
        // A memtable rotation raises fjall's garbage-collection watermark and deletes the table
        // files and journals that no version refers to any more.
        self.inner.gc.insert("reclaims", [1u8]).map_err(err)?;
        self.inner.gc.rotate_memtable_and_wait().map_err(err)?;
        self.inner.db.persist(PersistMode::SyncAll).map_err(err)
    }

    async fn stats(&self, space: Space) -> Result<SpaceStats, KvError> {
        let mut stats = SpaceStats::default();
        for guard in self.ks(space).iter() {
            let (_, v) = guard.into_inner().map_err(|e| fjall_error("stats", e))?;
            stats.keys += 1;
            stats.bytes += v.len() as u64;
        }
        Ok(stats)
    }

    /// fjall's item count (which counts an overwritten or deleted key until its tables are
    /// compacted) and the bytes of the keyspace's table files (writes still only in the
    /// journal are not counted).
    async fn estimate(&self, space: Space) -> Result<Option<SpaceEstimate>, KvError> {
        let ks = self.ks(space);
        Ok(Some(SpaceEstimate { keys: ks.approximate_len() as u64, bytes: Some(ks.disk_space()) }))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { name: "fjall", preferred_batch: 16_384, reclaims_space: true }
    }
}
