//! The foreground of the interleaving suites: what a Filecoin node does to its store while a
//! compaction runs, in the orders real nodes produce, each chosen by a seed:
//!
//! * tipsets synced children first, header first (the head names messages and state still
//!   being fetched), or parents first (a block before everything it links);
//! * new blocks written before and after the blocks they link, singly, in batches, and by
//!   several writers at once, linking blocks read, written, or merely known from before;
//! * reads and `has` of blocks that are written later;
//! * writes whose futures are dropped after a few polls (their outcome unknown: a backend
//!   such as IndexedDB may still commit them).
//!
//! Every touch is recorded in a [`Record`] with the ticks it began and ended at, for
//! [`crate::liveness`].

use std::{
    cell::{Cell, RefCell},
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use cid::Cid;
use splitstore_core::{
    kv::Kv, mem::ManualClock, synth::Epoch, Clock, Error, PendingCompaction, Phase, ProgressSink, SplitStore,
};

use crate::{
    chain::node,
    drive::PhaseLog,
    executor::Rng,
    liveness::{short, trace, Events, Read, Record, Span, Written},
    oracle::key_of,
};

/// Blocks with their bytes.
pub type Blocks = Vec<(Cid, Vec<u8>)>;

/// Epochs a node syncs during one compaction at most (a compaction that needs more has hung).
const MAX_SYNCED: usize = 400;

/// Polls a future at most `polls` times, then drops it: `None` when it had not completed.
pub struct PollLimit<F> {
    fut: Option<Pin<Box<F>>>,
    left: usize,
}

impl<F> PollLimit<F> {
    /// `fut`, given at most `polls` polls.
    pub fn new(fut: F, polls: usize) -> Self {
        PollLimit { fut: Some(Box::pin(fut)), left: polls }
    }
}

impl<F: Future> Future for PollLimit<F> {
    type Output = Option<F::Output>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if this.left == 0 {
            this.fut = None;
        }
        let Some(fut) = this.fut.as_mut() else { return Poll::Ready(None) };
        this.left -= 1;
        match fut.as_mut().poll(cx) {
            Poll::Ready(out) => {
                this.fut = None;
                Poll::Ready(Some(out))
            }
            Poll::Pending => {
                if this.left == 0 {
                    // Dropped at this await: the caller learns it on the next poll.
                    this.fut = None;
                    cx.waker().wake_by_ref();
                }
                Poll::Pending
            }
        }
    }
}

/// An epoch's blocks split as a node that fetched the headers first holds them: the headers,
/// the tipset-key object and the state the headers name (a node applies a tipset only once
/// it has computed its parent state), then the messages and receipts, still being fetched.
pub fn header_first(e: &Epoch) -> (Blocks, Blocks) {
    let mut own = crate::oracle::Universe::default();
    own.extend(e.blocks.iter().map(|(c, b)| (key_of(c), b.clone())));
    let mut roots: Vec<Cid> = e.parent_key.into_iter().collect();
    for h in &e.tipset {
        roots.push(crate::oracle::header(&own.blocks[&key_of(h)]).expect("a header of the epoch").state_root);
    }
    let mut first = own.closure(&roots).present;
    first.extend(e.tipset.iter().map(key_of));
    e.blocks.iter().cloned().partition(|(c, _)| first.contains(&key_of(c)))
}

/// A node's view of its store during one compaction.
pub struct Foreground<'a, K: Kv> {
    /// The store.
    pub store: &'a SplitStore<K, ManualClock>,
    /// The clock of touches and deletions.
    pub events: &'a Events,
    /// Phases the compaction reported.
    pub log: &'a PhaseLog,
    /// What was done.
    pub rec: &'a RefCell<Record>,
    /// Sync checks are on: a head is applied with the clock at its own time.
    pub sync: bool,
    /// A crash is expected: a failed call ends the task instead of failing the test.
    pub fallible: bool,
    /// Blocks any task may link without reading them: non-header blocks of the base, and
    /// every block whose write has begun.
    pub pool: &'a RefCell<Vec<Cid>>,
    /// A few blocks of the base that every writer favours, as a node keeps touching the same
    /// data: several writers link the same blocks at once.
    pub focus: &'a [Cid],
    /// Set once the compaction has ended (or will never run): the foreground stops.
    pub done: &'a Cell<bool>,
}

impl<K: Kv> Foreground<'_, K> {
    /// `Some` on success; on failure `None` when a crash is expected, else a panic.
    fn ok<T>(&self, r: Result<T, Error>, what: &str) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) if self.fallible => {
                let _ = e;
                None
            }
            Err(e) => panic!("{what} failed: {e}"),
        }
    }

    fn began_writing(&self, blocks: &[(Cid, Vec<u8>)]) -> u64 {
        self.pool.borrow_mut().extend(blocks.iter().map(|(c, _)| *c));
        self.events.tick()
    }

    fn span(&self, start: u64) -> Span {
        Span { start, end: self.events.tick() }
    }

    /// Writes `blocks` in one batch; `polls` limits the polls of the write (then it is
    /// dropped and its outcome unknown).
    pub async fn put(&self, blocks: Vec<(Cid, Vec<u8>)>, polls: Option<usize>) -> Option<bool> {
        let start = self.began_writing(&blocks);
        let result = match polls {
            None => Some(self.store.put_many(blocks.clone()).await),
            Some(n) => PollLimit::new(self.store.put_many(blocks.clone()), n).await,
        };
        let span = self.span(start);
        trace(|| {
            let cids: Vec<String> = blocks.iter().map(|(c, _)| short(&key_of(c))).collect();
            let links: Vec<Vec<String>> = blocks
                .iter()
                .map(|(_, b)| crate::oracle::links(b).unwrap_or_default().iter().map(|l| short(&key_of(l))).collect())
                .collect();
            let how = match &result {
                Some(Ok(())) => "done",
                None => "dropped",
                Some(Err(_)) => "failed",
            };
            format!("[{}..{}] put {cids:?} linking {links:?}: {how} ({:?})", span.start, span.end, self.log.last())
        });
        let mut rec = self.rec.borrow_mut();
        match result {
            Some(Ok(())) => {
                rec.written.extend(blocks.into_iter().map(|(cid, bytes)| Written { cid, bytes, span }));
                Some(true)
            }
            None => {
                rec.attempted.extend(blocks.into_iter().map(|(cid, bytes)| Written { cid, bytes, span }));
                Some(false)
            }
            Some(Err(e)) => {
                rec.attempted.extend(blocks.into_iter().map(|(cid, bytes)| Written { cid, bytes, span }));
                drop(rec);
                self.ok(Err(e), "put")
            }
        }
    }

    /// Reads `c` with `get`, `has` or `get_size` (by `how`); records a hit. Checks the bytes
    /// of a `get` against `expected`.
    pub async fn read(&self, c: Cid, how: usize, expected: Option<&[u8]>) -> Option<bool> {
        let start = self.events.tick();
        let critical = self.log.seen(Phase::Critical);
        let found = match how % 3 {
            0 => {
                let got = self.ok(self.store.get(&c).await, "get")?;
                if let (Some(got), Some(want)) = (&got, expected) {
                    assert_eq!(got.as_slice(), want, "get of {c} returned other bytes");
                }
                got.is_some()
            }
            1 => self.ok(self.store.has(&c).await, "has")?,
            _ => self.ok(self.store.get_size(&c).await, "get_size")?.is_some(),
        };
        trace(|| format!("[{start}..] read {}: {found} ({:?})", short(&key_of(&c)), self.log.last()));
        if found {
            let span = self.span(start);
            self.rec.borrow_mut().read.push(Read { cid: c, span, critical });
        }
        Some(found)
    }

    /// Applies `e` as head (at its own time when sync checks are on). A compaction it decides
    /// is dropped unrun.
    pub async fn apply(&self, e: &Epoch) -> Option<()> {
        if self.sync {
            self.store.clock().set(e.timestamp * 1000 + 1000);
        }
        let start = self.events.tick();
        let pending = self.ok(self.store.head_change(&[], std::slice::from_ref(&e.tipset)).await, "head change")?;
        drop(pending);
        let span = self.span(start);
        trace(|| format!("[{}..{}] applied height {} ({:?})", span.start, span.end, e.height, self.log.last()));
        self.rec.borrow_mut().applied.push((e.tipset.clone(), span));
        Some(())
    }

    async fn pause(&self, rng: &mut Rng, percent: u32) {
        if rng.percent(percent) {
            self.store.clock().yield_now().await;
        }
    }

    /// Waits, one time in `one_in`, until the compaction reaches a seeded phase (or ends): a
    /// node's fetches and writes land in every phase, and this makes each one likely. With
    /// `to_purge` false it never waits for the purge (which may wait for this task's head).
    async fn now_and_then(&self, rng: &mut Rng, one_in: usize, to_purge: bool) {
        if rng.below(one_in) != 0 {
            return;
        }
        let phases = [Phase::Mark, Phase::Collect, Phase::Critical, Phase::Purge];
        let phase = phases[rng.below(if to_purge { 4 } else { 3 })];
        while !self.log.seen(phase) && !self.done.get() {
            self.store.clock().yield_now().await;
        }
    }

    /// Writes `blocks` (listed children first) children first or parents first, in one to
    /// three batches, each maybe once the compaction has reached some phase.
    pub async fn put_in_order(&self, rng: &mut Rng, mut blocks: Vec<(Cid, Vec<u8>)>) -> Option<()> {
        if rng.percent(40) {
            blocks.reverse();
        }
        let parts = 1 + rng.below(3);
        let size = blocks.len().div_ceil(parts).max(1);
        for chunk in blocks.chunks(size) {
            self.now_and_then(rng, 2, !self.sync).await;
            if rng.percent(50) {
                // A fetch that takes a while: the walk meets what it brings absent.
                while !self.log.seen(Phase::Collect) && !self.done.get() {
                    self.store.clock().yield_now().await;
                }
            }
            self.put(chunk.to_vec(), None).await?;
            self.pause(rng, 50).await;
        }
        Some(())
    }

    /// Applies the compaction's head (writing `first`, what the node holds of its tipset, just
    /// before) and hands the compaction it decides to `slot`; then syncs the chain epoch by
    /// epoch, one every few dozen turns, until the compaction ends (with sync checks on, its
    /// purge waits for a fresh head, so a node that stopped syncing would hold it forever):
    /// children first, header first, or parents first.
    pub async fn head_and_sync(
        &self,
        rng: &mut Rng,
        head: &Epoch,
        first: Vec<(Cid, Vec<u8>)>,
        slot: &RefCell<Option<PendingCompaction>>,
        mut next: impl FnMut() -> Epoch,
    ) -> Option<()> {
        let decided = async {
            self.put(first, None).await?;
            if self.sync {
                self.store.clock().set(head.timestamp * 1000 + 1000);
            }
            let pending = self.ok(self.store.head_change(&[], std::slice::from_ref(&head.tipset)).await, "head")?;
            self.rec.borrow_mut().opened = self.events.tick();
            // A store poisoned by a crash decides nothing.
            assert!(pending.is_some() || self.fallible, "the head must decide a compaction");
            *slot.borrow_mut() = Some(pending?);
            Some(())
        };
        if decided.await.is_none() {
            self.done.set(true);
            return None;
        }
        for _ in 0..MAX_SYNCED {
            // Tipsets come every block time; now and then one is late (the compaction may be
            // well into its critical section by then).
            let wait = if rng.percent(20) { 300 + rng.below(1500) } else { rng.below(60) };
            for _ in 0..wait {
                if self.done.get() {
                    break;
                }
                self.store.clock().yield_now().await;
            }
            // The next tipset often arrives once the compaction is well under way.
            self.now_and_then(rng, 2, !self.sync).await;
            if self.done.get() {
                break;
            }
            let e = next();
            let (headers, body) = header_first(&e);
            match rng.below(3) {
                0 => {
                    self.put(e.blocks.clone(), None).await?;
                    self.apply(&e).await?;
                }
                1 => {
                    self.put(headers, None).await?;
                    self.apply(&e).await?;
                    self.pause(rng, 50).await;
                    self.put_in_order(rng, body).await?;
                }
                _ => {
                    // Parents first; the head is applied once its headers are in.
                    let n = e.tipset.len();
                    let mut rest: Vec<_> = e.blocks.iter().rev().cloned().collect();
                    rest.sort_by_key(|(c, _)| !e.tipset.contains(c));
                    let cut = n + rng.below(rest.len() - n + 1);
                    let tail = rest.split_off(cut);
                    self.put(rest, None).await?;
                    self.apply(&e).await?;
                    self.pause(rng, 50).await;
                    self.put(tail, None).await?;
                }
            }
        }
        Some(())
    }

    /// Runs the compaction `slot` receives, once it does; then ends the foreground.
    pub async fn compaction(
        &self,
        slot: &RefCell<Option<PendingCompaction>>,
        out: &RefCell<Option<Result<splitstore_core::CompactionReport, Error>>>,
    ) {
        loop {
            let pending = slot.borrow_mut().take();
            if let Some(p) = pending {
                let progress = |p: &splitstore_core::Progress| {
                    if self.log.last() != Some(p.phase) {
                        trace(|| format!("[{}] phase {:?}", self.events.now(), p.phase));
                    }
                    self.log.report(p);
                };
                *out.borrow_mut() = Some(self.store.run_compaction(p, &progress).await);
                break;
            }
            if self.done.get() {
                break;
            }
            self.store.clock().yield_now().await;
        }
        self.done.set(true);
    }

    /// Up to three blocks to link: mostly what this writer read or wrote, or the blocks every
    /// writer favours; else blocks others began writing lately, or any of the pool.
    fn pick(&self, rng: &mut Rng, known: &[Cid]) -> Vec<Cid> {
        let pool = self.pool.borrow();
        let mut out = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let c = match rng.below(20) {
                0..=7 if !known.is_empty() => known[rng.below(known.len())],
                8..=12 if !self.focus.is_empty() => self.focus[rng.below(self.focus.len())],
                13..=16 => pool[pool.len() - 1 - rng.below(pool.len().min(32))],
                _ => pool[rng.below(pool.len())],
            };
            if !out.contains(&c) {
                out.push(c);
            }
        }
        out
    }

    /// One writer: `ops` operations, or fewer if the compaction ends first.
    pub async fn writer(&self, rng: &mut Rng, id: u64, ops: u64) -> Option<()> {
        let mut known: Vec<Cid> = Vec::new();
        let mut later: Vec<(Cid, Vec<u8>)> = Vec::new();
        let nonce = |i: u64, k: u64| (id << 40) | (i << 4) | k;
        for i in 0..ops {
            if self.done.get() {
                break;
            }
            match rng.below(11) {
                0..=2 => {
                    let c = {
                        let pool = self.pool.borrow();
                        pool[rng.below(pool.len())]
                    };
                    let bytes = self.rec.borrow().base.blocks.get(&key_of(&c)).cloned();
                    if self.read(c, rng.below(3), bytes.as_deref()).await? {
                        known.push(c);
                    }
                }
                3 => {
                    // Asks for a block it will write later: absent now.
                    let links = self.pick(rng, &known);
                    let b = node(&links, nonce(i, 0));
                    assert!(!self.read(b.0, rng.below(3), None).await?, "a block never written was found");
                    later.push(b);
                }
                4 => {
                    if let Some(b) = later.pop() {
                        let c = b.0;
                        if self.put(vec![b], None).await? {
                            known.push(c);
                        }
                    }
                }
                5 => {
                    let b = node(&self.pick(rng, &known), nonce(i, 0));
                    let c = b.0;
                    if self.put(vec![b], None).await? {
                        known.push(c);
                    }
                }
                6 => {
                    // A parent before its child.
                    let child = node(&self.pick(rng, &known), nonce(i, 1));
                    let parent = node(&[child.0], nonce(i, 2));
                    let (c, p) = (child.0, parent.0);
                    self.put(vec![parent], None).await?;
                    self.pause(rng, 60).await;
                    self.put(vec![child], None).await?;
                    known.extend([c, p]);
                }
                7 => {
                    let mut batch: Vec<(Cid, Vec<u8>)> = Vec::new();
                    for k in 0..2 + rng.below(3) as u64 {
                        let mut links = self.pick(rng, &known);
                        if let Some((prev, _)) = batch.last() {
                            links.push(*prev);
                        }
                        batch.push(node(&links, nonce(i, k)));
                    }
                    let cids: Vec<Cid> = batch.iter().map(|(c, _)| *c).collect();
                    if self.put(batch, None).await? {
                        known.extend(cids);
                    }
                }
                8 | 9 => {
                    let b = node(&self.pick(rng, &known), nonce(i, 0));
                    let c = b.0;
                    if self.put(vec![b], Some(1 + rng.below(4))).await? {
                        known.push(c);
                    }
                }
                _ => self.now_and_then(rng, 1, true).await,
            }
            self.pause(rng, 40).await;
        }
        // What it announced, it writes: a node finishes what it fetched.
        while let Some(b) = later.pop() {
            self.put(vec![b], None).await?;
        }
        Some(())
    }
}
