//! The store's storage limit in the browser: writes other than a compaction's are refused
//! before the origin's usage reaches the limit, so that a full store can still compact.
//!
//! # Why a limit of the store's own
//!
//! A compaction must write before it frees anything: its dead list, its purge record, the
//! metadata that finishes it. If every write were allowed up to the browser's quota, a store
//! that filled the quota could not compact. So the store keeps `reserve` bytes below its
//! `limit` for those writes: a write not marked as upkeep
//! ([`WriteBatch::is_maintenance`]) is refused when it would take the origin's usage past
//! `limit − reserve`; an upkeep write is always let through (the browser's own quota is its
//! only bound).
//!
//! The browser's reported quota cannot be the limit by itself: Chromium reports a figure that
//! is not the one it enforces. The limit defaults to a share of the reported quota and an
//! embedder that knows better sets it (`storageLimit` in the `open` options).
//!
//! # Invariants
//!
//! - Usage is `navigator.storage.estimate().usage`, read at most once a second, or sooner once
//!   the bytes admitted since the last reading could have used half the room left. Between
//!   readings, each admitted batch counts twice its payload (IndexedDB writes a log, then a
//!   table).
//! - A refusal is decided on a reading taken for it when the last one is older than
//!   `FRESH_MS`, so a compaction that freed space is seen at once.
//! - A refused write is a write that did not happen: nothing is issued to IndexedDB.

use std::cell::Cell;

use splitstore_core::{KvError, WriteBatch};

use crate::{
    js::perf_now,
    storage::{self, Estimate},
};

/// Longest a usage reading is trusted for a write that fits.
const STALE_MS: f64 = 1000.0;
/// Longest a usage reading is trusted for a refusal.
const FRESH_MS: f64 = 50.0;

/// A store's storage limit, shared by its hot and cold databases (they share the origin).
#[derive(Debug)]
pub struct StorageLimit {
    limit: u64,
    reserve: u64,
    /// The last usage reading and when it was taken (`perf_now` ms).
    usage: Cell<Option<(u64, f64)>>,
    /// Bytes admitted since the last reading (twice each batch's payload).
    admitted: Cell<u64>,
}

/// What [`StorageLimit::status`] reports (and `info().storage` shows).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, tsify::Tsify)]
#[serde(rename_all = "camelCase")]
pub struct LimitStatus {
    /// The origin's usage at the last reading, in bytes.
    pub usage: Option<u64>,
    /// Writes other than a compaction's are refused past `limit - reserve`.
    pub limit: u64,
    /// Bytes below the limit kept for compactions.
    pub reserve: u64,
}

impl StorageLimit {
    /// A limit of `limit` bytes keeping `reserve` of them for compactions (`reserve < limit`).
    pub fn new(limit: u64, reserve: u64) -> Self {
        Self { limit, reserve: reserve.min(limit), usage: Cell::new(None), admitted: Cell::new(0) }
    }

    /// Where usage would put foreground writes to a stop.
    fn ceiling(&self) -> u64 {
        self.limit - self.reserve
    }

    async fn read(&self) -> Option<u64> {
        let Estimate { usage, .. } = storage::estimate().await?;
        self.usage.set(Some((usage, perf_now())));
        self.admitted.set(0);
        Some(usage)
    }

    /// Admits `batch` to database `db`, or refuses it with [`KvError::QuotaExceeded`].
    pub async fn admit(&self, db: &str, batch: &WriteBatch) -> Result<(), KvError> {
        let cost = batch.payload_bytes().saturating_mul(2);
        if !batch.is_maintenance() {
            let (now, admitted) = (perf_now(), self.admitted.get());
            let usage = match self.usage.get() {
                Some((u, at))
                    if now - at < FRESH_MS
                        || (now - at < STALE_MS && admitted < self.ceiling().saturating_sub(u) / 2) =>
                {
                    Some(u.saturating_add(admitted))
                }
                _ => self.read().await,
            };
            if let Some(usage) = usage {
                if usage.saturating_add(cost) > self.ceiling() {
                    let fresh = matches!(self.usage.get(), Some((_, at)) if perf_now() - at < FRESH_MS);
                    let usage = if fresh { usage } else { self.read().await.unwrap_or(usage) };
                    if usage.saturating_add(cost) > self.ceiling() {
                        return Err(self.refusal(db, usage));
                    }
                }
            }
        }
        self.admitted.set(self.admitted.get().saturating_add(cost));
        Ok(())
    }

    fn refusal(&self, db: &str, usage: u64) -> KvError {
        KvError::QuotaExceeded {
            detail: format!(
                "{db}: the store's storage limit is reached (the origin uses {usage} bytes; the limit is {} \
                 bytes, of which {} are kept for compactions); compact() frees space",
                self.limit, self.reserve
            ),
        }
    }

    /// The limit, the reserve and the last usage reading.
    pub fn status(&self) -> LimitStatus {
        LimitStatus { usage: self.usage.get().map(|(u, _)| u), limit: self.limit, reserve: self.reserve }
    }

    /// The origin's usage now, read afresh (the footprint the hot size limit compares).
    pub async fn usage_now(&self) -> Option<u64> {
        self.read().await
    }
}
