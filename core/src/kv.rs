//! The key-value contract every backend (memory, on-disk, IndexedDB) implements.
//!
//! Shaped for IndexedDB's worst case: no cursor or transaction outlives one call, scans are
//! paged and resume *after* a key, and a [`WriteBatch`] spanning several keyspaces is applied
//! atomically (all of it or none of it survives any crash).
//!
//! # Crash model
//!
//! Writes are applied in the order their futures complete. A crash loses a *suffix* of the
//! writes that were not yet durable: a [`Durability::Strict`] write, or a [`Kv::flush`], makes
//! itself and every earlier write durable before it returns. A batch is never partly applied.
//! The compaction's safety argument (see `docs/design.md`) rests on exactly these two rules.

use alloc::{boxed::Box, vec::Vec};

use crate::{error::KvError, send::MaybeSendSync};

/// A keyspace. Backends keep each in its own table / partition / object store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Space {
    /// Block bytes keyed by multihash bytes ([`crate::BlockKey`]).
    Blocks,
    /// Store metadata: base epoch, head, compaction index, purge state.
    Meta,
    /// The durable dead list: multihashes of hot blocks the running compaction will purge.
    Dead,
    /// The durable cold list: multihashes of hot blocks to copy to the cold store.
    ColdList,
}

impl Space {
    /// Every keyspace, in a fixed order.
    pub const ALL: [Space; 4] = [Space::Blocks, Space::Meta, Space::Dead, Space::ColdList];

    /// A stable name, used for table / object-store names.
    pub fn name(self) -> &'static str {
        match self {
            Space::Blocks => "blocks",
            Space::Meta => "meta",
            Space::Dead => "dead",
            Space::ColdList => "coldlist",
        }
    }
}

/// How durable a write must be when its future completes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Durability {
    /// May be lost by a crash (together with every later write).
    #[default]
    Relaxed,
    /// Durable, with every earlier write, when the call returns.
    Strict,
}

/// One operation of a [`WriteBatch`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    /// Insert or overwrite.
    Put {
        /// Keyspace.
        space: Space,
        /// Key bytes.
        key: Vec<u8>,
        /// Value bytes.
        value: Vec<u8>,
    },
    /// Remove; removing an absent key is not an error.
    Delete {
        /// Keyspace.
        space: Space,
        /// Key bytes.
        key: Vec<u8>,
    },
}

impl Op {
    /// The keyspace this operation touches.
    pub fn space(&self) -> Space {
        match self {
            Op::Put { space, .. } | Op::Delete { space, .. } => *space,
        }
    }
}

/// Puts and deletes over any keyspaces, applied atomically and in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteBatch {
    ops: Vec<Op>,
    durability: Durability,
    maintenance: bool,
}

impl WriteBatch {
    /// An empty, relaxed batch.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty batch with room for `n` operations.
    pub fn with_capacity(n: usize) -> Self {
        Self { ops: Vec::with_capacity(n), durability: Durability::Relaxed, maintenance: false }
    }

    /// Adds an insert.
    pub fn put(&mut self, space: Space, key: impl Into<Vec<u8>>, value: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(Op::Put { space, key: key.into(), value: value.into() });
        self
    }

    /// Adds a delete.
    pub fn delete(&mut self, space: Space, key: impl Into<Vec<u8>>) -> &mut Self {
        self.ops.push(Op::Delete { space, key: key.into() });
        self
    }

    /// Requires the batch to be durable when the write returns.
    pub fn strict(&mut self) -> &mut Self {
        self.durability = Durability::Strict;
        self
    }

    /// Marks the batch as the store's own upkeep: a write of a compaction or of recovery,
    /// whose purpose is to free space. A backend that keeps space in reserve (a full disk, a
    /// browser quota) lets such a write use it and refuses every other write before the
    /// reserve, so that a full store can still compact itself back.
    pub fn maintenance(&mut self) -> &mut Self {
        self.maintenance = true;
        self
    }

    /// True for the store's own upkeep ([`WriteBatch::maintenance`]).
    pub fn is_maintenance(&self) -> bool {
        self.maintenance
    }

    /// Bytes of keys and values the batch writes (a delete counts its key): what a backend
    /// compares with its free space before it writes.
    pub fn payload_bytes(&self) -> u64 {
        self.ops
            .iter()
            .map(|op| match op {
                Op::Put { key, value, .. } => key.len() + value.len(),
                Op::Delete { key, .. } => key.len(),
            } as u64)
            .sum()
    }

    /// Appends every operation of `other`; the result is strict if either was, and upkeep
    /// only if both were.
    pub fn extend(&mut self, other: WriteBatch) {
        self.ops.extend(other.ops);
        if other.durability == Durability::Strict {
            self.durability = Durability::Strict;
        }
        self.maintenance &= other.maintenance;
    }

    /// The requested durability.
    pub fn durability(&self) -> Durability {
        self.durability
    }

    /// The operations, in order.
    pub fn ops(&self) -> &[Op] {
        &self.ops
    }

    /// The keys the batch deletes in `space`, in the batch's order.
    pub fn deleted_keys(&self, space: Space) -> Vec<Vec<u8>> {
        self.ops
            .iter()
            .filter_map(|op| match op {
                Op::Delete { space: s, key } if *s == space => Some(key.clone()),
                _ => None,
            })
            .collect()
    }

    /// Takes the operations out.
    pub fn into_ops(self) -> Vec<Op> {
        self.ops
    }

    /// Number of operations.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }
}

/// What a backend can do, so the engine can adapt batch sizes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// Human-readable backend name (for reports).
    pub name: &'static str,
    /// Largest batch the backend handles well, in operations.
    pub preferred_batch: usize,
    /// Keys per [`Kv::get_many`] that read fastest: a compaction's walk loads this many blocks
    /// at a time. A backend that splits large reads over threads asks for enough to split.
    pub read_batch: usize,
    /// True when [`Kv::reclaim`] actually returns disk space.
    pub reclaims_space: bool,
}

impl Capabilities {
    /// [`Capabilities::read_batch`] of a backend that reads a batch on one thread: large
    /// enough that a call's own cost is small beside its reads.
    pub const DEFAULT_READ_BATCH: usize = 512;
}

/// Count and total value size of one keyspace.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct SpaceStats {
    /// Number of keys.
    pub keys: u64,
    /// Sum of value lengths in bytes.
    pub bytes: u64,
}

/// A backend's estimate of one keyspace, read without visiting its entries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[cfg_attr(feature = "ts", derive(tsify::Tsify))]
pub struct SpaceEstimate {
    /// Keys, approximately: a log-structured backend may still count entries overwritten or
    /// deleted since it last compacted its files.
    pub keys: u64,
    /// Bytes the keyspace occupies in the backend (on disk, or in memory), when known.
    pub bytes: Option<u64>,
}

/// An ordered key-value store with atomic multi-keyspace batches.
///
/// Keys within a space are ordered bytewise and are 1 to 65 535 bytes long (the engine's keys
/// are multihashes and short metadata names). Implementations must be safe to call
/// concurrently (on native) and must not hold any transaction or cursor between calls.
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
pub trait Kv: MaybeSendSync {
    /// The value under `key`, if any.
    async fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, KvError>;

    /// The values under `keys`, in the same order (one round trip where the backend allows).
    async fn get_many(&self, space: Space, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, KvError>;

    /// True when `key` is present.
    async fn has(&self, space: Space, key: &[u8]) -> Result<bool, KvError>;

    /// Applies every operation of `batch` atomically, in order.
    async fn write(&self, batch: WriteBatch) -> Result<(), KvError>;

    /// Up to `limit` keys of `space` in ascending order, strictly greater than `after`.
    async fn scan_keys(&self, space: Space, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, KvError>;

    /// Up to `limit` entries of `space` in ascending key order, strictly after `after`.
    async fn scan(&self, space: Space, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>, KvError>;

    /// Makes every completed write durable.
    async fn flush(&self) -> Result<(), KvError>;

    /// Returns the disk space of deleted entries to the system, where the backend can.
    /// Must be crash-safe: a crash during reclaim loses nothing that was durable.
    async fn reclaim(&self) -> Result<(), KvError> {
        Ok(())
    }

    /// Returns once the backend has no pending background work that could make the next
    /// write wait (an LSM tree whose flush starts with fsyncs under the lock every write
    /// takes). While the store is in use, the purge calls it before it takes the exclusive
    /// lock for a write, so such a wait falls on the compaction and not on every reader.
    /// Must return in bounded time. The default returns at once.
    async fn catch_up(&self) -> Result<(), KvError> {
        Ok(())
    }

    /// Key count and value bytes of `space`. The default scans the space.
    async fn stats(&self, space: Space) -> Result<SpaceStats, KvError> {
        let mut stats = SpaceStats::default();
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self.scan(space, after.as_deref(), 1024).await?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (_, v) in &page {
                stats.keys += 1;
                stats.bytes += v.len() as u64;
            }
        }
        Ok(stats)
    }

    /// An estimate of `space` in time independent of its size, where the backend keeps one
    /// (`None` otherwise). [`crate::SplitStore::info`] reports it; [`Kv::stats`] counts exactly.
    async fn estimate(&self, space: Space) -> Result<Option<SpaceEstimate>, KvError> {
        let _ = space;
        Ok(None)
    }

    /// Bytes the store's storage occupies as its platform reports them, which
    /// [`Config::hot_size_limit`](crate::Config::hot_size_limit) is compared with; `None` when
    /// unknown. The default is [`Kv::estimate`]'s bytes for [`Space::Blocks`]. A platform that
    /// reports only a total it shares with other stores (a browser reports its origin's usage)
    /// returns that total.
    async fn footprint(&self) -> Result<Option<u64>, KvError> {
        Ok(self.estimate(Space::Blocks).await?.and_then(|e| e.bytes))
    }

    /// What this backend can do.
    fn capabilities(&self) -> Capabilities;
}

macro_rules! forward_kv {
    ($($ty:ty),*) => {$(
        #[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
        #[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
        impl<K: Kv + ?Sized> Kv for $ty {
            async fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
                (**self).get(space, key).await
            }
            async fn get_many(&self, space: Space, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
                (**self).get_many(space, keys).await
            }
            async fn has(&self, space: Space, key: &[u8]) -> Result<bool, KvError> {
                (**self).has(space, key).await
            }
            async fn write(&self, batch: WriteBatch) -> Result<(), KvError> {
                (**self).write(batch).await
            }
            async fn scan_keys(&self, space: Space, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, KvError> {
                (**self).scan_keys(space, after, limit).await
            }
            async fn scan(
                &self,
                space: Space,
                after: Option<&[u8]>,
                limit: usize,
            ) -> Result<Vec<(Vec<u8>, Vec<u8>)>, KvError> {
                (**self).scan(space, after, limit).await
            }
            async fn flush(&self) -> Result<(), KvError> {
                (**self).flush().await
            }
            async fn reclaim(&self) -> Result<(), KvError> {
                (**self).reclaim().await
            }
            async fn catch_up(&self) -> Result<(), KvError> {
                (**self).catch_up().await
            }
            async fn stats(&self, space: Space) -> Result<SpaceStats, KvError> {
                (**self).stats(space).await
            }
            async fn estimate(&self, space: Space) -> Result<Option<SpaceEstimate>, KvError> {
                (**self).estimate(space).await
            }
            async fn footprint(&self) -> Result<Option<u64>, KvError> {
                (**self).footprint().await
            }
            fn capabilities(&self) -> Capabilities {
                (**self).capabilities()
            }
        }
    )*};
}

// A shared or borrowed backend is a backend.
forward_kv!(&K, alloc::sync::Arc<K>);
