//! An in-memory [`Kv`] and a manual [`Clock`], always built: the reference backend for the
//! conformance suites and the substrate of the crash tests.
//!
//! `MemKv` can model the crash contract of [`crate::kv`] exactly: with crash tracking on it
//! keeps, beside the live state, the *durable image* — the state as of the last strict write or
//! flush. [`MemKv::crash_image`] returns a fresh store holding only that image, which is what a
//! process would find after a power loss at that instant.
//!
//! It can also model a full disk or browser quota ([`MemKv::set_quota`]): writes are refused
//! once the bytes stored would pass a limit, and a reserve below that limit is kept for the
//! store's own upkeep ([`WriteBatch::maintenance`]).

use alloc::{boxed::Box, collections::BTreeMap, sync::Arc, vec::Vec};
use core::task::Poll;

use crate::sync::Mutex;

use crate::{
    clock::Clock,
    error::KvError,
    kv::{Capabilities, Durability, Kv, Op, Space, SpaceEstimate, SpaceStats, WriteBatch},
};

type Tables = [BTreeMap<Vec<u8>, Vec<u8>>; 4];

fn idx(space: Space) -> usize {
    match space {
        Space::Blocks => 0,
        Space::Meta => 1,
        Space::Dead => 2,
        Space::ColdList => 3,
    }
}

#[derive(Debug, Default)]
struct Inner {
    live: Tables,
    /// `Some` when crash tracking is on: the state as of the last durable point.
    durable: Option<Tables>,
    /// Batches applied to `live` but not yet to `durable`.
    pending: Vec<Vec<Op>>,
    /// Set by [`MemKv::crash`]: every later call fails.
    crashed: bool,
    /// The modelled capacity, if any.
    quota: Option<Quota>,
    /// Bytes of keys and values held now, per space.
    used: [u64; 4],
    /// The most bytes held at once since the last [`MemKv::take_peak`].
    peak: u64,
}

/// A modelled capacity: the store holds at most `limit` bytes of keys and values, and
/// writes other than the store's upkeep are refused once they would leave less than
/// `reserve` of it free.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Quota {
    /// Bytes of keys and values the store can hold.
    pub limit: u64,
    /// Bytes of that limit only upkeep writes may use.
    pub reserve: u64,
}

fn entry_bytes(key: &[u8], value: &[u8]) -> u64 {
    (key.len() + value.len()) as u64
}

fn usage(tables: &Tables) -> [u64; 4] {
    let mut used = [0; 4];
    for (u, t) in used.iter_mut().zip(tables) {
        *u = t.iter().map(|(k, v)| entry_bytes(k, v)).sum();
    }
    used
}

/// The change in bytes held if `ops` were applied to `tables`, in order.
fn usage_delta(tables: &Tables, ops: &[Op]) -> i64 {
    let mut now: BTreeMap<(usize, &[u8]), u64> = BTreeMap::new();
    let mut delta = 0i64;
    for op in ops {
        let (space, key, new) = match op {
            Op::Put { space, key, value } => (idx(*space), key.as_slice(), entry_bytes(key, value)),
            Op::Delete { space, key } => (idx(*space), key.as_slice(), 0),
        };
        let old = *now.entry((space, key)).or_insert_with(|| tables[space].get(key).map_or(0, |v| entry_bytes(key, v)));
        delta += new as i64 - old as i64;
        now.insert((space, key), new);
    }
    delta
}

fn apply(tables: &mut Tables, ops: &[Op]) {
    for op in ops {
        match op {
            Op::Put { space, key, value } => {
                tables[idx(*space)].insert(key.clone(), value.clone());
            }
            Op::Delete { space, key } => {
                tables[idx(*space)].remove(key);
            }
        }
    }
}

/// An ordered in-memory key-value store. Cloning shares the same data.
#[derive(Clone, Debug, Default)]
pub struct MemKv {
    inner: Arc<Mutex<Inner>>,
}

impl MemKv {
    /// A store where every completed write counts as durable.
    pub fn new() -> Self {
        Self::default()
    }

    /// A store that tracks which writes are durable, for [`MemKv::crash_image`].
    pub fn with_crash_tracking() -> Self {
        let kv = Self::default();
        kv.inner.lock().durable = Some(Tables::default());
        kv
    }

    /// Models a capacity (`None`: unlimited). The bytes already held stay, even over it.
    pub fn set_quota(&self, quota: Option<Quota>) {
        self.inner.lock().quota = quota;
    }

    /// Bytes of keys and values held now, over every space.
    pub fn used_bytes(&self) -> u64 {
        self.inner.lock().used.iter().sum()
    }

    /// The most bytes held at once since the last call (or since the store was made), and
    /// starts the next period at the bytes held now.
    pub fn take_peak(&self) -> u64 {
        let mut inner = self.inner.lock();
        let now = inner.used.iter().sum();
        core::mem::replace(&mut inner.peak, now)
    }

    /// Makes every later call fail with [`KvError::Crashed`], as if the process died.
    pub fn crash(&self) {
        self.inner.lock().crashed = true;
    }

    /// A new, independent store holding what would survive a crash now: the durable image
    /// (with crash tracking) or everything (without).
    ///
    /// `keep_pending` of the not-yet-durable batches survive as well, oldest first, modelling a
    /// crash after the system happened to write some of them out. The new store tracks
    /// durability if this one does, and has the same quota.
    pub fn crash_image(&self, keep_pending: usize) -> MemKv {
        let inner = self.inner.lock();
        let mut tables = match &inner.durable {
            Some(d) => d.clone(),
            None => inner.live.clone(),
        };
        if inner.durable.is_some() {
            for ops in inner.pending.iter().take(keep_pending) {
                apply(&mut tables, ops);
            }
        }
        let tracking = inner.durable.is_some();
        let kv = MemKv::default();
        {
            let mut n = kv.inner.lock();
            n.durable = tracking.then(|| tables.clone());
            n.used = usage(&tables);
            n.peak = n.used.iter().sum();
            n.quota = inner.quota;
            n.live = tables;
        }
        kv
    }

    /// Number of batches written but not yet durable.
    pub fn pending_batches(&self) -> usize {
        self.inner.lock().pending.len()
    }

    /// Every key of `space` (test helper).
    pub fn keys(&self, space: Space) -> Vec<Vec<u8>> {
        self.inner.lock().live[idx(space)].keys().cloned().collect()
    }

    fn check(inner: &Inner) -> Result<(), KvError> {
        if inner.crashed {
            Err(KvError::Crashed)
        } else {
            Ok(())
        }
    }

    fn make_durable(inner: &mut Inner) {
        let pending = core::mem::take(&mut inner.pending);
        if let Some(d) = inner.durable.as_mut() {
            for ops in &pending {
                apply(d, ops);
            }
        }
    }
}

fn range_after<'a>(
    t: &'a BTreeMap<Vec<u8>, Vec<u8>>,
    after: Option<&[u8]>,
) -> impl Iterator<Item = (&'a Vec<u8>, &'a Vec<u8>)> + 'a {
    use core::ops::Bound;
    let lower = match after {
        Some(a) => Bound::Excluded(a.to_vec()),
        None => Bound::Unbounded,
    };
    t.range((lower, Bound::Unbounded))
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl Kv for MemKv {
    async fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        let inner = self.inner.lock();
        Self::check(&inner)?;
        Ok(inner.live[idx(space)].get(key).cloned())
    }

    async fn get_many(&self, space: Space, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        let inner = self.inner.lock();
        Self::check(&inner)?;
        let t = &inner.live[idx(space)];
        Ok(keys.iter().map(|k| t.get(k).cloned()).collect())
    }

    async fn has(&self, space: Space, key: &[u8]) -> Result<bool, KvError> {
        let inner = self.inner.lock();
        Self::check(&inner)?;
        Ok(inner.live[idx(space)].contains_key(key))
    }

    async fn write(&self, batch: WriteBatch) -> Result<(), KvError> {
        let mut inner = self.inner.lock();
        Self::check(&inner)?;
        let strict = batch.durability() == Durability::Strict;
        let maintenance = batch.is_maintenance();
        let ops = batch.into_ops();
        let delta = usage_delta(&inner.live, &ops);
        let held: u64 = inner.used.iter().sum();
        let after = held.saturating_add_signed(delta);
        if let Some(q) = inner.quota {
            let allowed = if maintenance { q.limit } else { q.limit.saturating_sub(q.reserve) };
            if delta > 0 && after > allowed {
                let whose = if maintenance { "" } else { " beside the reserve kept for compaction" };
                return Err(KvError::QuotaExceeded {
                    detail: alloc::format!(
                        "memory store: {held} of {} bytes used, no room for {delta} more{whose}",
                        q.limit
                    ),
                });
            }
        }
        for op in &ops {
            let (space, key) = match op {
                Op::Put { space, key, .. } | Op::Delete { space, key } => (idx(*space), key),
            };
            let old = inner.live[space].get(key).map_or(0, |v| entry_bytes(key, v));
            inner.used[space] -= old;
            if let Op::Put { value, .. } = op {
                inner.used[space] += entry_bytes(key, value);
            }
            apply(&mut inner.live, core::slice::from_ref(op));
        }
        inner.peak = inner.peak.max(after);
        if inner.durable.is_some() {
            inner.pending.push(ops);
            if strict {
                Self::make_durable(&mut inner);
            }
        }
        Ok(())
    }

    async fn scan_keys(&self, space: Space, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, KvError> {
        let inner = self.inner.lock();
        Self::check(&inner)?;
        Ok(range_after(&inner.live[idx(space)], after).take(limit).map(|(k, _)| k.clone()).collect())
    }

    async fn scan(&self, space: Space, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>, KvError> {
        let inner = self.inner.lock();
        Self::check(&inner)?;
        Ok(range_after(&inner.live[idx(space)], after).take(limit).map(|(k, v)| (k.clone(), v.clone())).collect())
    }

    async fn flush(&self) -> Result<(), KvError> {
        let mut inner = self.inner.lock();
        Self::check(&inner)?;
        Self::make_durable(&mut inner);
        Ok(())
    }

    async fn stats(&self, space: Space) -> Result<SpaceStats, KvError> {
        let inner = self.inner.lock();
        Self::check(&inner)?;
        let t = &inner.live[idx(space)];
        Ok(SpaceStats { keys: t.len() as u64, bytes: t.values().map(|v| v.len() as u64).sum() })
    }

    /// Exact key count and bytes of keys and values.
    async fn estimate(&self, space: Space) -> Result<Option<SpaceEstimate>, KvError> {
        let inner = self.inner.lock();
        Self::check(&inner)?;
        let i = idx(space);
        Ok(Some(SpaceEstimate { keys: inner.live[i].len() as u64, bytes: Some(inner.used[i]) }))
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            name: "memory",
            preferred_batch: 16384,
            read_batch: Capabilities::DEFAULT_READ_BATCH,
            reclaims_space: false,
        }
    }
}

/// A clock that moves only when told to. `sleep` advances it by the requested time and
/// returns at once; `yield_now` returns `Pending` once so a test executor can switch tasks.
#[derive(Clone, Debug, Default)]
pub struct ManualClock {
    now: Arc<Mutex<u64>>,
    /// `sleep` leaves the time as it is (see [`ManualClock::stopped`]).
    stopped: bool,
}

impl ManualClock {
    /// A clock reading `millis`.
    pub fn new(millis: u64) -> Self {
        Self { now: Arc::new(Mutex::new(millis)), stopped: false }
    }

    /// A clock reading `millis` whose `sleep` only gives other tasks a turn: its time moves
    /// only when set or advanced, for a test whose own tasks say what time it is (a node
    /// applying each head at its timestamp), however often the code under test sleeps.
    pub fn stopped(millis: u64) -> Self {
        Self { now: Arc::new(Mutex::new(millis)), stopped: true }
    }

    /// Moves the clock forward.
    pub fn advance(&self, millis: u64) {
        *self.now.lock() += millis;
    }

    /// Sets the clock.
    pub fn set(&self, millis: u64) {
        *self.now.lock() = millis;
    }
}

/// A future that is pending exactly once (and wakes itself), then ready.
#[derive(Debug, Default)]
pub struct YieldOnce(bool);

impl core::future::Future for YieldOnce {
    type Output = ();
    fn poll(mut self: core::pin::Pin<&mut Self>, cx: &mut core::task::Context<'_>) -> Poll<()> {
        if self.0 {
            Poll::Ready(())
        } else {
            self.0 = true;
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl Clock for ManualClock {
    fn now_millis(&self) -> u64 {
        *self.now.lock()
    }

    async fn sleep(&self, millis: u64) {
        if !self.stopped {
            self.advance(millis);
        }
        YieldOnce::default().await;
    }

    async fn yield_now(&self) {
        YieldOnce::default().await;
    }
}
