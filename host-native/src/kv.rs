//! The on-disk [`Kv`]: one fjall database per store, every [`Space`] in one fjall keyspace.
//!
//! # Layout
//!
//! All four spaces live in the keyspace `data`, each under a one-byte tag
//! ([`space_tag`]): a key of space `s` is stored as `tag(s) ++ key`. Scans of a space are
//! ranges over its tag, so each space keeps the bytewise order the contract requires. A
//! private keyspace `reclaim` exists so that [`Kv::reclaim`] can make fjall collect its
//! garbage, and holds the counts of deletions since the last full merge; nothing the core
//! writes goes there.
//!
//! # Durability
//!
//! Every batch is one fjall write batch over the one keyspace. fjall applies a batch to a
//! keyspace's memtable under its journal lock, so a batch is never split between two
//! memtables, and it writes the batch to its journal as one checksummed record that recovery
//! replays whole or not at all.
//!
//! One keyspace is what keeps a batch whole under **power loss**. fjall's flush worker fsyncs
//! the journal, releases the journal lock and only then chooses the sealed memtables to write
//! as tables, so a memtable sealed in between (by a size rotation or by `reclaim`) reaches a
//! fsynced table while its journal bytes are still only in the operating system's cache.
//! With one keyspace per space, a power cut then kept one keyspace's half of a batch and lost
//! the other's (`tests/power_loss.rs` shows it on a filesystem that keeps only what was
//! fsynced). With one keyspace the tables always hold a prefix of the batches (a table holds
//! every batch up to the newest it holds) and the journal replays the batches after it, so a
//! power cut loses a suffix of the writes that were not yet durable: exactly the crash model
//! of [`splitstore_core::kv`].
//!
//! [`Durability::Relaxed`] batches are handed to the operating system before `write` returns
//! (they survive the process being killed, not a power loss); [`Durability::Strict`] batches
//! and [`Kv::flush`] fsync the journal, which makes them and every earlier batch durable.
//!
//! A store written by an earlier version, with one keyspace per space, is copied into `data`
//! when it is opened ([`FjallKv::open`]): the copy is made durable and marked done (the key
//! [`LAYOUT_KEY`]) before the old keyspaces are deleted, so a crash at any point either
//! repeats the whole copy from the untouched old keyspaces or finds it done.
//!
//! # Blocking
//!
//! fjall's calls block. The async methods call them directly, so they complete on the first
//! poll, except a large `get_many`, whose future waits for the threads that read it: the
//! native host drives the store from its own threads (the compaction runs on a dedicated
//! one) with a blocking executor, never from an async reactor where blocking would stall
//! other tasks.
//!
//! # Space reclaim
//!
//! Deletes write tombstones; [`Kv::reclaim`] flushes the memtable, runs a major compaction
//! (rewriting the live entries and dropping deleted ones) and then lets fjall release the
//! superseded table files and fully flushed journals. A major compaction rewrites the whole
//! store, so its cost grows with the store, not with what was deleted: it runs only once the
//! blocks deleted since the last one reach [`KvOptions::merge_ratio`] of the entries left (1 by
//! default, the rule by which the browser rotates its databases), or when the disk is short of
//! space ([`DiskSpace::is_tight`]); fjall's own compactions drop deleted entries in between.
//! Only deleted blocks count as what a merge gives back: the dead and cold lists' entries are
//! keys without values, written and deleted within one compaction, and counting them too would
//! make every compaction that purges half as many blocks as it keeps rewrite the whole store.
//! Every deletion still counts toward the estimate of the entries left (see `merge_due`). The
//! counts are kept in the `reclaim` keyspace, so one-shot processes (`splitstore compact`)
//! count toward them too. Each step installs its result by
//! atomically replacing fjall's version manifest, and files are deleted only after no version
//! refers to them, so a crash at any point leaves either the old or the new tables. Waiting
//! for a flush is bounded: if fjall's flush worker has failed (a full disk while writing a
//! table), `reclaim` returns the error instead of waiting for a flush that never comes.

use std::{
    path::{Path, PathBuf},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use fjall::{
    config::{HashRatioPolicy, PinningPolicy},
    Database, Keyspace, KeyspaceCreateOptions, PersistMode,
};
use splitstore_core::{
    error::KvError,
    kv::{Capabilities, Durability, Kv, Op, Space, SpaceEstimate, SpaceStats, WriteBatch},
};

use crate::{errors::fjall_error, space::DiskSpace};

/// A `get_many` of at least this many keys is split across threads.
const PARALLEL_READ_MIN: usize = 4096;

/// The keyspace holding every space.
const DATA_KEYSPACE: &str = "data";

/// The keyspace `reclaim` writes to.
const RECLAIM_KEYSPACE: &str = "reclaim";
/// Key in the `reclaim` keyspace of the entries deleted since the last full merge (`u64` LE).
const DELETED_SINCE_MERGE: &str = "deleted-since-merge";
/// Key in the `reclaim` keyspace of the blocks deleted since the last full merge (`u64` LE).
const BLOCKS_DELETED_SINCE_MERGE: &str = "blocks-deleted-since-merge";

/// The record saying `data` holds the whole store: written once the spaces of an earlier
/// layout have been copied (or at creation), before any old keyspace is deleted. Its first
/// byte is no space's tag.
pub const LAYOUT_KEY: &[u8] = b"\0layout";

/// The tag of the private records ([`FjallKv::write_with_private`]): no space's.
const PRIVATE_TAG: u8 = b'p';

/// Value of [`LAYOUT_KEY`]: layout version 2 (one keyspace, tagged spaces).
const LAYOUT_V2: &[u8] = &[2];

/// Entries copied per batch when an earlier layout is migrated.
const MIGRATE_BATCH: usize = 16_384;

/// How long `reclaim` waits for fjall to flush a memtable before it gives up.
const FLUSH_WAIT: Duration = Duration::from_secs(600);

/// The longest [`Kv::catch_up`] waits for fjall's flushes before letting the caller go on.
const CATCH_UP_WAIT: Duration = Duration::from_secs(30);
/// How often [`Kv::catch_up`] looks again.
const CATCH_UP_POLL: Duration = Duration::from_millis(1);

/// Settings of one on-disk store.
#[derive(Clone, Debug)]
pub struct KvOptions {
    /// Block cache size in bytes.
    pub cache_bytes: u64,
    /// Threads a large `get_many` may use (1 = read on the calling thread only).
    pub read_threads: usize,
    /// Size at which a memtable is sealed and written to a table. Applies when the store is
    /// created; an existing store keeps the size it was created with.
    pub memtable_bytes: u64,
    /// The free-space policy shared with the repo's other store; `None`: a policy of this
    /// store's own, with no reserve and [`KvOptions::headroom`] kept free.
    pub disk: Option<Arc<DiskSpace>>,
    /// A reclaim merges every table (rewriting the whole store) once the blocks deleted since
    /// the last merge reach this fraction of the store's entries left, or when the disk is
    /// short of space; 0 merges at every reclaim. Default 1.
    pub merge_ratio: f64,
}

impl KvOptions {
    /// Bytes every write must leave free: room to write out two full memtables (fjall's
    /// flush worker writes a sealed memtable as a table while its journal is still on disk),
    /// and a MiB more.
    pub fn headroom(&self) -> u64 {
        2 * self.memtable_bytes.max(1 << 20) + (1 << 20)
    }
}

impl Default for KvOptions {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(4);
        Self { cache_bytes: 256 << 20, read_threads: threads, memtable_bytes: 64 << 20, disk: None, merge_ratio: 1.0 }
    }
}

struct Inner {
    db: Database,
    /// Every space, under its tag.
    data: Keyspace,
    /// Written by `reclaim` so that a memtable rotation runs fjall's file garbage collection.
    gc: Keyspace,
    path: PathBuf,
    read_threads: usize,
    /// Serialises `reclaim` calls.
    reclaiming: Mutex<()>,
    /// Which writes the disk has room for.
    disk: Arc<DiskSpace>,
    /// Entries deleted since the last full merge (persisted by each reclaim).
    deleted: AtomicU64,
    /// Of those, entries of [`Space::Blocks`] (persisted by each reclaim).
    blocks_deleted: AtomicU64,
    /// [`KvOptions::merge_ratio`].
    merge_ratio: f64,
    /// Full merges run since the store was opened.
    merges: AtomicU64,
}

/// fjall's backlog of background work ([`FjallKv::pressure`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WritePressure {
    /// Memtables sealed and waiting to be written as tables.
    pub sealed_memtables: usize,
    /// Tables in the first level.
    pub l0_tables: usize,
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

/// The byte every key of `space` starts with in the `data` keyspace.
pub fn space_tag(space: Space) -> u8 {
    match space {
        Space::Blocks => b'b',
        Space::Meta => b'm',
        Space::Dead => b'd',
        Space::ColdList => b'c',
    }
}

/// The longest key of a space: fjall holds keys of up to `u16::MAX` bytes, one of which is
/// the tag.
const MAX_KEY: usize = u16::MAX as usize - 1;

/// fjall refuses (by panicking) keys over its limit; the contract has no empty keys.
fn valid_key(key: &[u8]) -> bool {
    !key.is_empty() && key.len() <= MAX_KEY
}

fn tagged(space: Space, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 1);
    k.push(space_tag(space));
    k.extend_from_slice(key);
    k
}

fn op_key(op: &Op) -> &[u8] {
    match op {
        Op::Put { key, .. } | Op::Delete { key, .. } => key,
    }
}

/// Options of the one keyspace: hashed data blocks (a point read skips the binary search),
/// index and filter blocks pinned in memory, and no filter probe on the last level (marking
/// reads, nearly all of the reads, are hits). Measured in `KV_CHOICE.md`.
fn data_options(memtable_bytes: u64) -> KeyspaceCreateOptions {
    KeyspaceCreateOptions::default()
        .max_memtable_size(memtable_bytes)
        .data_block_hash_ratio_policy(HashRatioPolicy::all(0.75))
        .index_block_pinning_policy(PinningPolicy::all(true))
        .filter_block_pinning_policy(PinningPolicy::all(true))
        .expect_point_read_hits(true)
}

impl FjallKv {
    /// Opens (creating if needed) the store in `dir`, first moving a store of the earlier
    /// layout (one keyspace per space) into the current one. A store already open, in this or
    /// another process, gives [`KvError::InUse`].
    pub fn open(dir: &Path, opts: &KvOptions) -> Result<Self, KvError> {
        std::fs::create_dir_all(dir).map_err(|e| fjall_error("open", fjall::Error::Io(e)))?;
        let db = Database::builder(dir)
            .cache_size(opts.cache_bytes)
            .manual_journal_persist(true)
            .open()
            .map_err(|e| fjall_error("open", e))?;
        let memtable_bytes = opts.memtable_bytes.max(1 << 20);
        let data = db.keyspace(DATA_KEYSPACE, || data_options(memtable_bytes)).map_err(|e| fjall_error("open", e))?;
        let gc = db.keyspace(RECLAIM_KEYSPACE, KeyspaceCreateOptions::default).map_err(|e| fjall_error("open", e))?;
        migrate_layout(&db, &data)?;
        let disk = opts.disk.clone().unwrap_or_else(|| Arc::new(DiskSpace::new(dir, opts.headroom(), 0)));
        disk.restore();
        // A damaged or missing count only moves the next merge: it is read as none.
        let count = |key: &str| -> Result<u64, KvError> {
            Ok(gc
                .get(key)
                .map_err(|e| fjall_error("open", e))?
                .and_then(|v| <[u8; 8]>::try_from(&v[..]).ok())
                .map_or(0, u64::from_le_bytes))
        };
        let (deleted, blocks_deleted) = (count(DELETED_SINCE_MERGE)?, count(BLOCKS_DELETED_SINCE_MERGE)?);
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                data,
                gc,
                path: dir.to_path_buf(),
                read_threads: opts.read_threads.max(1),
                reclaiming: Mutex::new(()),
                disk,
                deleted: AtomicU64::new(deleted),
                blocks_deleted: AtomicU64::new(blocks_deleted),
                merge_ratio: opts.merge_ratio,
                merges: AtomicU64::new(0),
            }),
        })
    }

    /// Maps a fjall error of a write (or flush) to [`KvError`], naming a full disk as the cause
    /// of this and of every later failure: fjall stops writing at the first write the disk
    /// refuses and reports only that it is poisoned from then on.
    fn write_error(&self, op: &'static str, e: fjall::Error) -> KvError {
        match fjall_error(op, e) {
            KvError::QuotaExceeded { detail } => {
                let detail = format!("the disk holding {} is full ({detail})", self.inner.path.display());
                KvError::QuotaExceeded { detail: self.inner.disk.record_refusal(&detail) }
            }
            KvError::Crashed => match self.inner.disk.cause_of_stop() {
                Some(cause) => KvError::QuotaExceeded {
                    detail: format!("{cause}; the store stopped writing there: reopen it, then compact it"),
                },
                None => KvError::Crashed,
            },
            other => other,
        }
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

    /// How far fjall's background work is behind the writes: memtables sealed but not yet
    /// written as tables, and tables in the first level (fjall slows writers from 20 and stops
    /// them from 30 first-level runs, and stops them while 4 sealed memtables wait).
    pub fn pressure(&self) -> WritePressure {
        WritePressure {
            sealed_memtables: self.inner.data.sealed_memtable_count(),
            l0_tables: self.inner.data.l0_table_count(),
        }
    }

    /// Full merges of the tables [`Kv::reclaim`] has run since the store was opened.
    pub fn merges(&self) -> u64 {
        self.inner.merges.load(Ordering::Relaxed)
    }

    /// Bytes of the store's tables: what grows with the data and what reclaim shrinks.
    pub fn table_bytes(&self) -> Result<u64, KvError> {
        Ok(self.disk_bytes()?.saturating_sub(self.journal_bytes()?))
    }

    fn get_one(ks: &Keyspace, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        if !valid_key(key) {
            // No such key can have been written.
            return Ok(None);
        }
        Ok(ks.get(tagged(space, key)).map_err(|e| fjall_error("get", e))?.map(|v| v.to_vec()))
    }

    fn get_sync(ks: &Keyspace, space: Space, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        keys.iter().map(|k| Self::get_one(ks, space, k)).collect()
    }

    /// The entries of `space` strictly after `after`, at most `limit`, each passed through
    /// `f` with its tag removed from the key.
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
        let tag = space_tag(space);
        let lower = after.map_or(Bound::Included(vec![tag]), |a| Bound::Excluded(tagged(space, a)));
        let upper = Bound::Excluded(vec![tag + 1]);
        let mut out = Vec::with_capacity(limit.min(16_384));
        for guard in self.inner.data.range::<Vec<u8>, _>((lower, upper)).take(limit) {
            out.push(f(guard).map_err(|e| fjall_error("scan", e))?);
        }
        Ok(out)
    }

    /// Keeps the last operation on each key: fjall gives every item of a batch the same
    /// sequence number, so two writes of one key in one batch would be ambiguous.
    pub(crate) fn last_op_per_key(ops: Vec<Op>) -> Vec<Op> {
        fn key_of(op: &Op) -> (u8, &[u8]) {
            match op {
                Op::Put { space, key, .. } | Op::Delete { space, key } => (space_tag(*space), key),
            }
        }
        let keep: Vec<bool> = {
            let mut seen = std::collections::HashSet::with_capacity(ops.len());
            if ops.iter().all(|op| seen.insert(key_of(op))) {
                return ops;
            }
            seen.clear();
            let mut keep: Vec<bool> = ops.iter().rev().map(|op| seen.insert(key_of(op))).collect();
            keep.reverse();
            keep
        };
        ops.into_iter().zip(keep).filter_map(|(op, k)| k.then_some(op)).collect()
    }

    /// Waits until the one keyspace `ks` has no sealed memtable left, failing if fjall's
    /// flush worker has stopped (the database is poisoned) or after `limit`.
    fn wait_flushed(&self, ks: &Keyspace, limit: Duration) -> Result<(), KvError> {
        let start = Instant::now();
        while ks.sealed_memtable_count() > 0 {
            // `persist(Buffer)` costs a buffer flush and fails once a worker has died.
            self.inner.db.persist(PersistMode::Buffer).map_err(|e| self.write_error("reclaim", e))?;
            if start.elapsed() > limit {
                return Err(KvError::Unavailable {
                    detail: format!("reclaim: no memtable flush completed in {} s", limit.as_secs()),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Seals `ks`'s memtable and waits (bounded) until it is written to a table.
    fn flush_memtable(&self, ks: &Keyspace, limit: Duration) -> Result<(), KvError> {
        ks.rotate_memtable().map_err(|e| self.write_error("reclaim", e))?;
        self.wait_flushed(ks, limit)
    }

    /// [`Kv::reclaim`] with the flush wait bounded by `flush_wait`.
    fn reclaim_within(&self, flush_wait: Duration) -> Result<(), KvError> {
        let _one_at_a_time = self.inner.reclaiming.lock().map_err(|_| KvError::Crashed)?;
        let err = |e| self.write_error("reclaim", e);
        self.flush_memtable(&self.inner.data, flush_wait)?;
        let deleted = self.inner.deleted.load(Ordering::Relaxed);
        let blocks_deleted = self.inner.blocks_deleted.load(Ordering::Relaxed);
        let entries = self.inner.data.approximate_len() as u64;
        if merge_due(blocks_deleted, deleted, entries, self.inner.merge_ratio, self.inner.disk.is_tight()) {
            self.inner.data.major_compact().map_err(err)?;
            // Deletions that landed during the merge count toward the next one.
            self.inner.deleted.fetch_sub(deleted, Ordering::Relaxed);
            self.inner.blocks_deleted.fetch_sub(blocks_deleted, Ordering::Relaxed);
            self.inner.merges.fetch_add(1, Ordering::Relaxed);
        }
        for (key, count) in
            [(DELETED_SINCE_MERGE, &self.inner.deleted), (BLOCKS_DELETED_SINCE_MERGE, &self.inner.blocks_deleted)]
        {
            self.inner.gc.insert(key, count.load(Ordering::Relaxed).to_le_bytes()).map_err(err)?;
        }
        // A memtable rotation raises fjall's garbage-collection watermark and deletes the table
        // files and journals that no version refers to any more.
        self.inner.gc.insert("reclaims", [1u8]).map_err(err)?;
        self.flush_memtable(&self.inner.gc, flush_wait)?;
        self.inner.db.persist(PersistMode::SyncAll).map_err(err)
    }
}

/// True when a reclaim should merge every table: the disk is short of space, `ratio` is 0, or
/// the `blocks_deleted` since the last merge reach `ratio` times the entries left.
///
/// The entries left are estimated from `entries`, fjall's approximate count, which holds a
/// deleted block twice (the entry and its deletion marker) until a compaction merges them
/// away, and a deleted bookkeeping entry once: the dead and cold lists' entries are written
/// and deleted within one compaction, and a memtable written out as a table keeps only the
/// marker of a key written and deleted in it. So the estimate takes two entries off for each
/// deleted block and one for each other deletion of the `deleted`. When fjall has merged some
/// already, the entries left are underestimated and the merge comes sooner; a bookkeeping
/// entry flushed before its deletion leaves one entry too many, and the merge comes that much
/// later.
fn merge_due(blocks_deleted: u64, deleted: u64, entries: u64, ratio: f64, tight: bool) -> bool {
    if tight || ratio <= 0.0 {
        return true;
    }
    let others = deleted.saturating_sub(blocks_deleted);
    let left = entries.saturating_sub(blocks_deleted.saturating_mul(2)).saturating_sub(others).max(1);
    blocks_deleted > 0 && blocks_deleted as f64 >= ratio * left as f64
}

/// Moves a store of the earlier layout (keyspaces named by [`Space::name`]) into `data`, then
/// records the current layout; a store with no record gets it. Crash-safe: the old keyspaces
/// are deleted only after the copy and the record are durable, and an interrupted copy is
/// made again from them (overwriting the same values: nothing else writes before `open`
/// returns).
fn migrate_layout(db: &Database, data: &Keyspace) -> Result<(), KvError> {
    let err = |e| fjall_error("open", e);
    let done = data.get(LAYOUT_KEY).map_err(err)?.is_some();
    let old: Vec<(Space, Keyspace)> = Space::ALL
        .iter()
        .filter(|s| db.keyspace_exists(s.name()))
        .map(|s| Ok((*s, db.keyspace(s.name(), KeyspaceCreateOptions::default).map_err(err)?)))
        .collect::<Result<_, KvError>>()?;
    if !done {
        for (space, ks) in &old {
            let mut batch = db.batch();
            let mut n = 0;
            for guard in ks.iter() {
                let (k, v) = guard.into_inner().map_err(err)?;
                batch.insert(data, tagged(*space, &k), v);
                n += 1;
                if n == MIGRATE_BATCH {
                    std::mem::replace(&mut batch, db.batch()).commit().map_err(err)?;
                    n = 0;
                }
            }
            batch.commit().map_err(err)?;
        }
        let mut record = db.batch();
        record.insert(data, LAYOUT_KEY, LAYOUT_V2);
        record.durability(Some(PersistMode::SyncAll)).commit().map_err(err)?;
    }
    for (_, ks) in old {
        db.delete_keyspace(ks).map_err(err)?;
    }
    Ok(())
}

#[async_trait::async_trait]
impl Kv for FjallKv {
    async fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        Self::get_one(&self.inner.data, space, key)
    }

    async fn get_many(&self, space: Space, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        let threads = self.inner.read_threads;
        if threads < 2 || keys.len() < PARALLEL_READ_MIN {
            return Self::get_sync(&self.inner.data, space, keys);
        }
        // Point reads are CPU-bound once the data is cached: a large request is read on
        // threads of its own, and the caller's thread is free until they answer (a walk
        // works on the previous batch meanwhile). A future dropped before then leaves its
        // threads to finish their part and drop the answer.
        let chunk = keys.len().div_ceil(threads);
        let parts: Vec<_> = keys
            .chunks(chunk)
            .map(|part| {
                let (tx, rx) = futures::channel::oneshot::channel();
                let (ks, part) = (self.inner.data.clone(), part.to_vec());
                std::thread::spawn(move || {
                    let _ = tx.send(Self::get_sync(&ks, space, &part));
                });
                rx
            })
            .collect();
        let mut out = Vec::with_capacity(keys.len());
        for rx in parts {
            let part = rx.await.map_err(|_| KvError::Unavailable { detail: "a read thread panicked".into() })?;
            out.extend(part?);
        }
        Ok(out)
    }

    async fn has(&self, space: Space, key: &[u8]) -> Result<bool, KvError> {
        if !valid_key(key) {
            return Ok(false);
        }
        self.inner.data.contains_key(tagged(space, key)).map_err(|e| fjall_error("has", e))
    }

    async fn write(&self, batch: WriteBatch) -> Result<(), KvError> {
        self.write_with_private(batch, Vec::new())
    }

    async fn scan_keys(&self, space: Space, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, KvError> {
        self.scan_sync(space, after, limit, |g| g.key().map(|k| k[1..].to_vec()))
    }

    async fn scan(&self, space: Space, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>, KvError> {
        self.scan_sync(space, after, limit, |g| g.into_inner().map(|(k, v)| (k[1..].to_vec(), v.to_vec())))
    }

    async fn flush(&self) -> Result<(), KvError> {
        self.inner.db.persist(PersistMode::SyncAll).map_err(|e| self.write_error("flush", e))
    }

    /// Waits (at most 30 s) while a memtable is sealed, that is while a flush
    /// is pending or running: a flush starts by fsyncing the journal, or by sealing it and
    /// starting a new one (three fsyncs), under fjall's journal lock, which every batch takes,
    /// and each of those fsyncs takes tens of milliseconds while tables are being written. A
    /// batch written under the store's exclusive lock during one would hold up every reader.
    /// Fails if fjall's flush worker has stopped (the database is poisoned).
    async fn catch_up(&self) -> Result<(), KvError> {
        let start = Instant::now();
        while self.inner.data.sealed_memtable_count() > 0 && start.elapsed() < CATCH_UP_WAIT {
            // `persist(Buffer)` fails once a worker has died.
            self.inner.db.persist(PersistMode::Buffer).map_err(|e| self.write_error("catch_up", e))?;
            std::thread::sleep(CATCH_UP_POLL);
        }
        Ok(())
    }

    /// Also writes the reserve again if a compaction released it and there is room now.
    async fn reclaim(&self) -> Result<(), KvError> {
        self.reclaim_within(FLUSH_WAIT)?;
        self.inner.disk.restore();
        Ok(())
    }

    async fn stats(&self, space: Space) -> Result<SpaceStats, KvError> {
        let mut stats = SpaceStats::default();
        for guard in self.inner.data.prefix([space_tag(space)]) {
            let (_, v) = guard.into_inner().map_err(|e| fjall_error("stats", e))?;
            stats.keys += 1;
            stats.bytes += v.len() as u64;
        }
        Ok(stats)
    }

    /// For [`Space::Blocks`] only: fjall's item count of the one keyspace less the layout
    /// record, and its table bytes. It counts the store's bookkeeping entries too (metadata,
    /// and the dead and cold lists while a compaction runs), and an overwritten or deleted
    /// key until its tables are compacted; writes still only in the journal are not in the
    /// bytes. For a cold store, which holds only blocks, the count is exact after a reclaim
    /// that merged the tables ([`FjallKv::merges`]).
    async fn estimate(&self, space: Space) -> Result<Option<SpaceEstimate>, KvError> {
        if space != Space::Blocks {
            return Ok(None);
        }
        let ks = &self.inner.data;
        let keys = (ks.approximate_len() as u64).saturating_sub(1);
        Ok(Some(SpaceEstimate { keys, bytes: Some(ks.disk_space()) }))
    }

    fn capabilities(&self) -> Capabilities {
        // With several read threads, a batch large enough to be split over all of them.
        let threads = self.inner.read_threads;
        let read_batch =
            if threads < 2 { Capabilities::DEFAULT_READ_BATCH } else { PARALLEL_READ_MIN.saturating_mul(threads) };
        Capabilities { name: "fjall", preferred_batch: 16_384, read_batch, reclaims_space: true }
    }
}

impl FjallKv {
    /// A private record (see [`FjallKv::write_with_private`]).
    pub fn get_private(&self, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        let k = [&[PRIVATE_TAG][..], key].concat();
        Ok(self.inner.data.get(k).map_err(|e| fjall_error("get", e))?.map(|v| v.to_vec()))
    }

    /// [`Kv::write`], with `private` records (key, value) put in the same atomic batch: the
    /// records a store built on this one keeps beside the spaces (the S3 cold store's next
    /// segment number), which no call on a space sees.
    pub fn write_with_private(&self, batch: WriteBatch, private: Vec<(Vec<u8>, Vec<u8>)>) -> Result<(), KvError> {
        let strict = batch.durability() == Durability::Strict;
        let (payload, upkeep) = (batch.payload_bytes(), batch.is_maintenance());
        let ops = Self::last_op_per_key(batch.into_ops());
        let (mut deletes, mut block_deletes) = (0u64, 0u64);
        for op in &ops {
            if let Op::Delete { space, .. } = op {
                deletes += 1;
                block_deletes += u64::from(*space == Space::Blocks);
            }
        }
        if let Some(op) = ops.iter().find(|op| !valid_key(op_key(op))) {
            let detail = format!("key of {} bytes (this store holds keys of 1 to {MAX_KEY} bytes)", op_key(op).len());
            let source = std::io::Error::new(std::io::ErrorKind::InvalidInput, detail);
            return Err(KvError::Backend { backend: "fjall", op: "write", source: Box::new(source) });
        }
        if ops.is_empty() && private.is_empty() {
            if strict {
                self.inner.db.persist(PersistMode::SyncAll).map_err(|e| self.write_error("write", e))?;
            }
            return Ok(());
        }
        let tables = || self.table_bytes().unwrap_or(0);
        self.inner.disk.admit(&self.inner.path, tables, payload, upkeep)?;
        let data = &self.inner.data;
        let mut b = self.inner.db.batch();
        for op in ops {
            match op {
                Op::Put { space, key, value } => b.insert(data, tagged(space, &key), value),
                Op::Delete { space, key } => b.remove(data, tagged(space, &key)),
            }
        }
        for (key, value) in private {
            b.insert(data, [&[PRIVATE_TAG][..], &key].concat(), value);
        }
        let mode = if strict { PersistMode::SyncAll } else { PersistMode::Buffer };
        b.durability(Some(mode)).commit().map_err(|e| self.write_error("write", e))?;
        self.inner.deleted.fetch_add(deletes, Ordering::Relaxed);
        self.inner.blocks_deleted.fetch_add(block_deletes, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catch_up_returns_once_no_memtable_waits_for_its_flush() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kv = FjallKv::open(dir.path(), &KvOptions::default()).expect("open");
        // Enough data that writing the memtable out takes milliseconds, not microseconds.
        for round in 0..4u32 {
            let mut b = WriteBatch::new();
            for i in 0..5_000u32 {
                b.put(Space::Blocks, [round.to_be_bytes(), i.to_be_bytes()].concat(), vec![i as u8; 256]);
            }
            futures::executor::block_on(kv.write(b)).expect("write");
        }
        assert!(kv.inner.data.rotate_memtable().expect("rotate"), "nothing to seal");
        futures::executor::block_on(kv.catch_up()).expect("catch_up");
        assert_eq!(kv.pressure().sealed_memtables, 0, "catch_up returned while a flush was pending");
    }

    #[test]
    fn a_full_merge_waits_for_deleted_blocks_to_reach_the_ratio() {
        // 1,000 entries left, 400 blocks deleted since the last merge (each counted twice by fjall).
        assert!(!merge_due(400, 400, 1800, 1.0, false));
        assert!(merge_due(400, 400, 1800, 0.4, false));
        assert!(merge_due(1000, 1000, 3000, 1.0, false), "as many blocks deleted as left");
        assert!(merge_due(1, 1, 1_000_000, 0.0, false), "ratio 0 merges every time");
        assert!(merge_due(0, 0, 10, 0.0, false));
        assert!(!merge_due(0, 0, 10, 1.0, false), "nothing deleted, nothing to merge");
        assert!(merge_due(0, 0, 10, 1.0, true), "a disk short of space merges");
        // fjall merged the deletions already: the estimate is low, and the merge comes sooner.
        assert!(merge_due(400, 400, 1000, 1.0, false));
        // A compaction's purge: 1,000 entries left, 500 blocks deleted with their 500 dead-list
        // entries (one marker each in fjall's count): the list's deletions are not what a merge
        // gives back.
        assert!(!merge_due(500, 1000, 2500, 1.0, false), "half as many blocks deleted as left");
        assert!(merge_due(1000, 2000, 4000, 1.0, false), "as many blocks deleted as left");
        assert!(!merge_due(0, 5000, 6000, 1.0, false), "only bookkeeping deleted");
    }

    #[test]
    fn tags_are_distinct_and_not_internal() {
        let mut tags: Vec<u8> = Space::ALL.iter().map(|s| space_tag(*s)).collect();
        tags.push(LAYOUT_KEY[0]);
        tags.push(PRIVATE_TAG);
        tags.sort_unstable();
        tags.dedup();
        assert_eq!(tags.len(), Space::ALL.len() + 2);
        // A scan's upper bound is the next tag value: no tag may be 0xff.
        assert!(Space::ALL.iter().all(|s| space_tag(*s) < u8::MAX));
    }
}
