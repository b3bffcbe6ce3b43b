//! Target `ops`: arbitrary operation sequences against the store, checked against a reference
//! model (see [`model`]).
//!
//! The input's first bytes choose the compaction mode, the chain and the batch sizes; the rest
//! is decoded as operations: apply the next epoch as head (and run, hold or drop the
//! compaction it decides), put new blocks linking earlier ones, get and has (of written and of
//! never-written blocks), reads in use through the hot view and reify drains, cold prunes,
//! manual compactions, a compaction interleaved with foreground
//! operations on the seeded executor, arming a fault fuse that makes every backend call from
//! the k-th on fail as if the process died, and reopening (cleanly, or from a crash image
//! keeping none, some or all of the writes that were not yet durable).
//!
//! Invariants, checked after every compaction and reopen and at the end:
//! - `get` returns exactly the bytes written, and finds every required block (model docs);
//! - every required block is present with its whole DAG;
//! - `check()` finds no live block missing, and neither does the independent oracle (after a
//!   reopen and at the end);
//! - in universal mode no block ever disappears except writes a crash lost;
//! - no operation fails unless the fuse has blown; a reopen after any crash succeeds.

mod model;

use std::{cell::RefCell, sync::OnceLock};

use splitstore_conformance::{
    executor::{block_on, SeededExecutor},
    fault::{Fault, FaultKv},
    oracle::key_of,
    wrap::{SteppedWritesKv, WriteSteps, YieldKv},
};
use splitstore_core::{
    mem::{ManualClock, MemKv},
    synth::{ChainGen, SynthConfig},
    Cid, Clock, Config, Error, Mode, NoProgress, PendingCompaction, SplitStore,
};

use self::model::{Chain, Model};
use super::input::Bytes;

type Store = SplitStore<FaultKv<YieldKv<SteppedWritesKv<MemKv>>>, ManualClock>;

/// Operations before the run stops.
const MAX_OPS: usize = 48;
/// Epochs of each precomputed chain.
const EPOCHS: usize = 40;
/// Executor steps an interleaving may take before it counts as a hang.
const MAX_STEPS: u64 = 20_000_000;

/// One decoded operation.
#[derive(Clone, Copy, Debug)]
enum Op {
    /// Put the next epoch's blocks and apply it as head; `then` picks what happens to a
    /// compaction it decides (run now, hold, drop).
    Apply { then: u8 },
    /// Put one new block linking up to three written blocks.
    Put { links: [u8; 3], count: u8 },
    /// Put several new blocks in one batch.
    PutMany { count: u8, sel: u8 },
    /// Get a written block.
    Get { sel: u8 },
    /// `has` of a written block.
    Has { sel: u8 },
    /// Get a block that was never written.
    GetAbsent { nonce: u16 },
    /// Run the held compaction, or a new manual one.
    Compact,
    /// Open a compaction's transaction and hold it without running.
    Hold,
    /// Drop the held compaction unrun.
    DropHeld,
    /// Run the held (or a new) compaction interleaved with the next `count` operations.
    Interleave { seed: u16, count: u8 },
    /// Make the `k`-th backend call from now, and every later one, fail.
    Arm { k: u16 },
    /// Reopen: 0 = close cleanly, 1 = crash keeping what was durable, 2 = crash keeping
    /// everything written, 3 = crash keeping `n` of the batches not yet durable.
    Reopen { kind: u8, n: u8 },
    /// Sync the next epoch header first: write its headers and the state they name (and the
    /// part of its messages and receipts `keep` picks), apply it as head; the rest of its
    /// messages and receipts become pending (`then` as for [`Op::Apply`]).
    ApplyHeaderFirst { then: u8, keep: u8 },
    /// Write the next epoch's state, messages and receipts before its headers (a node computed
    /// the state before any header names it).
    Prefetch,
    /// Put a new block linking a block not written yet (pending).
    PutParentFirst { links: [u8; 3], count: u8 },
    /// Write a pending block.
    WritePending { sel: u8 },
    /// Get or `has` of a pending block: absent, until it is written.
    ReadPending { sel: u8, how: u8 },
    /// Put a new block, dropping the write's future after `polls` polls.
    PutDropped { links: [u8; 3], polls: u8 },
    /// Delete a block written by a put (not a chain block): it must never be readable again,
    /// and nothing else may go.
    Delete { sel: u8 },
    /// Get (`how` even) or `has` of a written block through the hot view (a read in use): a
    /// cold hit queues its DAG to be copied into hot.
    ReadInUse { sel: u8, how: u8 },
    /// Drain the reify queue: copy the cold DAGs read in use into hot.
    Reify,
    /// Prune cold keeping `retention` finalities of state (`retention % 4 - 1`: all, only the
    /// boundary's, one or two more).
    Prune { retention: u8 },
}

/// Decodes one operation. `orders` (chosen by the setup byte) adds the operations of the
/// orders real nodes produce to the alphabet, `deletes` deletions, `reify` reads in use and
/// reify drains, and `prunes` cold prunes; without them every input decodes as it did before
/// they existed, so the recorded findings replay unchanged.
fn decode(b: &mut Bytes<'_>, a: Alphabet) -> Op {
    let Alphabet { orders, deletes, reify, prunes } = a;
    let v = b.u8();
    if prunes && v % 48 >= 45 {
        return Op::Prune { retention: b.u8() };
    }
    if reify && v % 40 >= 34 {
        return match v % 40 {
            34..=37 => Op::ReadInUse { sel: b.u8(), how: b.u8() },
            _ => Op::Reify,
        };
    }
    if deletes && v % 32 >= 29 {
        return Op::Delete { sel: b.u8() };
    }
    if orders && v % 24 >= 16 {
        return match v % 24 {
            16 | 17 => Op::ApplyHeaderFirst { then: b.u8(), keep: b.u8() },
            18 => Op::Prefetch,
            19 => Op::PutParentFirst { links: [b.u8(), b.u8(), b.u8()], count: b.u8() },
            20 | 21 => Op::WritePending { sel: b.u8() },
            22 => Op::ReadPending { sel: b.u8(), how: b.u8() },
            _ => Op::PutDropped { links: [b.u8(), b.u8(), b.u8()], polls: b.u8() },
        };
    }
    match v % 16 {
        0..=3 => Op::Apply { then: b.u8() },
        4 | 5 => Op::Put { links: [b.u8(), b.u8(), b.u8()], count: b.u8() },
        6 => Op::PutMany { count: b.u8(), sel: b.u8() },
        7 | 8 => Op::Get { sel: b.u8() },
        9 => Op::Has { sel: b.u8() },
        10 => Op::GetAbsent { nonce: b.u16() },
        11 => Op::Compact,
        12 => match b.u8() % 2 {
            0 => Op::Hold,
            _ => Op::DropHeld,
        },
        13 => Op::Interleave { seed: b.u16(), count: b.u8() },
        14 => Op::Arm { k: b.u16() },
        _ => Op::Reopen { kind: b.u8(), n: b.u8() },
    }
}

/// Which operations the input's alphabet holds beyond the first ones (see [`decode`]).
#[derive(Clone, Copy, Debug)]
struct Alphabet {
    orders: bool,
    deletes: bool,
    reify: bool,
    prunes: bool,
}

/// True for operations a foreground task may run while a compaction runs.
fn foreground(op: &Op) -> bool {
    !matches!(
        op,
        Op::Compact
            | Op::Hold
            | Op::DropHeld
            | Op::Interleave { .. }
            | Op::Arm { .. }
            | Op::Reopen { .. }
            | Op::Prune { .. }
    )
}

/// Two precomputed tiny chains.
fn chains() -> &'static [Chain; 2] {
    static CHAINS: OnceLock<[Chain; 2]> = OnceLock::new();
    CHAINS.get_or_init(|| {
        [11, 12].map(|seed| {
            let mut g = ChainGen::new(SynthConfig {
                seed,
                state_objects: 16,
                churn_percent: 10,
                max_blocks_per_tipset: 2,
                messages_per_block: 1,
                null_round_per_mille: 100,
                ..SynthConfig::default()
            });
            Chain::new((0..EPOCHS).map(|_| g.next_epoch()).collect())
        })
    })
}

/// True when `SPLITSTORE_FUZZ_TRACE` is set: every operation is printed to stderr (for
/// reading a failing input).
fn tracing() -> bool {
    static ON: OnceLock<bool> = OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("SPLITSTORE_FUZZ_TRACE").is_some())
}

macro_rules! trace {
    ($($arg:tt)*) => {
        if tracing() {
            eprintln!($($arg)*);
        }
    };
}

mod foreground;

use self::foreground::{fg, store_fuse_blown};

/// Runs the operation sequence `data` encodes; panics on a violated invariant.
pub fn check(data: &[u8]) {
    block_on(run(data));
}

struct Run {
    cfg: Config,
    steps: WriteSteps,
    clock: ManualClock,
    fuse: Fault,
    /// True while the fuse is armed and has not blown (checks through the store would tick it).
    armed: bool,
    store: Store,
    held: Option<PendingCompaction>,
    m: RefCell<Model>,
}

async fn open(
    hot: &MemKv,
    cold: &MemKv,
    steps: WriteSteps,
    fuse: &Fault,
    clock: &ManualClock,
    cfg: &Config,
) -> Result<Store, Error> {
    let kv = |m: &MemKv| FaultKv::new(YieldKv(SteppedWritesKv(m.clone(), steps)), fuse.clone());
    SplitStore::open(kv(hot), kv(cold), clock.clone(), cfg.clone()).await
}

async fn run(data: &[u8]) {
    let mut b = Bytes::new(data);
    let setup = b.u8();
    let mode = [Mode::Discard, Mode::Universal, Mode::Messages][usize::from(setup % 3)];
    let chain = &chains()[usize::from(setup / 3 % 2)];
    let mut cfg = splitstore_conformance::chain::small_config(mode);
    cfg.finality = 2;
    cfg.batch_size = 1 + usize::from(b.u8() % 32);
    let yield_byte = b.u8();
    cfg.yield_every = 1 + usize::from(yield_byte % 16);
    // The orders real nodes produce, and backends whose writes take steps or land before
    // their future completes, for half of the setups (the others decode as before them).
    let orders = setup / 6 % 2 == 1;
    let deletes = setup / 36 % 2 == 1;
    let reify = setup / 72 % 2 == 1;
    // Cold prunes for inputs whose third byte has bit 4 set (no recorded finding has it).
    let prunes = yield_byte & 0x10 != 0;
    // A hot key list for those with bit 5 set (collects after the first visit it); the
    // others scan.
    cfg.hot_key_list_bytes = if yield_byte & 0x20 != 0 { 1 << 20 } else { 0 };
    let alphabet = Alphabet { orders, deletes, reify, prunes };
    let steps = if orders {
        [WriteSteps::Never, WriteSteps::PerEntry, WriteSteps::AfterApplying][usize::from(setup / 12 % 3)]
    } else {
        WriteSteps::Never
    };
    let (hot, cold) = (MemKv::with_crash_tracking(), MemKv::with_crash_tracking());
    let clock = ManualClock::new(0);
    let fuse = Fault::new();
    let store = open(&hot, &cold, steps, &fuse, &clock, &cfg).await.expect("open an empty store");
    let m = RefCell::new(Model::new(chain, mode, hot, cold));
    let mut r = Run { cfg, steps, clock, fuse, armed: false, store, held: None, m };
    let mut ops = 0;
    while !b.is_empty() && ops < MAX_OPS {
        ops += 1;
        let op = decode(&mut b, alphabet);
        trace!("op {ops}: {op:?} (applied {}, generation {})", r.m.borrow().applied, r.m.borrow().generation);
        match op {
            Op::Compact => r.compact().await,
            Op::Hold => {
                if r.held.is_none() {
                    r.hold();
                }
            }
            Op::DropHeld => drop(r.held.take()),
            Op::Interleave { seed, count } => {
                let sub: Vec<Op> = (0..1 + count % 8).map(|_| decode(&mut b, alphabet)).filter(foreground).collect();
                r.interleave(u64::from(seed), &sub, orders).await;
            }
            Op::Arm { k } => {
                r.fuse.arm(u64::from(k % 512));
                r.armed = true;
            }
            Op::Reopen { kind, n } => r.reopen(kind, n).await,
            Op::Prune { retention } => r.prune(i64::from(retention % 4) - 1).await,
            Op::Apply { then } | Op::ApplyHeaderFirst { then, .. } => {
                if let Some(pending) = fg(&r.store, &r.m, op).await {
                    match then % 3 {
                        0 => r.run_pending(pending).await,
                        1 if r.held.is_none() => r.held = Some(pending),
                        _ => drop(pending),
                    }
                }
            }
            _ => drop(fg(&r.store, &r.m, op).await),
        }
        if r.fuse.blown() {
            trace!("the fuse blew");
            r.reopen(1 + b.u8() % 3, b.u8()).await;
        }
    }
    drop(r.held.take());
    if !r.fuse.blown() {
        r.fuse.disarm();
        r.armed = false;
        r.verify("at the end", true).await;
    }
}

impl Run {
    /// Opens a transaction and holds it.
    fn hold(&mut self) {
        match self.store.begin_compaction() {
            Ok(p) => {
                let m = self.m.get_mut();
                let head = m.chain.epochs[m.applied - 1].tipset.clone();
                m.transaction_opened(&head);
                self.held = Some(p);
            }
            Err(Error::NoHead) => assert_eq!(self.m.get_mut().applied, 0, "NoHead with a head applied"),
            Err(e) => panic!("begin_compaction failed: {e}"),
        }
    }

    /// Runs the held compaction, or a new manual one.
    async fn compact(&mut self) {
        if self.held.is_none() {
            self.hold();
        }
        if let Some(p) = self.held.take() {
            self.run_pending(p).await;
        }
    }

    async fn run_pending(&mut self, p: PendingCompaction) {
        let txn = self.m.get_mut().txn.clone();
        let res = self.store.run_compaction(p, &NoProgress).await;
        trace!("compaction: {res:?}");
        match res {
            Ok(report) => {
                self.verify("after a compaction", false).await;
                if let Some(txn) = txn {
                    self.m.get_mut().check_retention(&txn, &report, "after a compaction").await;
                }
            }
            Err(e) => assert!(store_fuse_blown(&e), "a compaction failed without a crash: {e}"),
        }
    }

    /// Prunes cold. A held compaction is dropped first (a prune waits for none). The prune
    /// opens a transaction of its own, so what was touched before it is no longer required,
    /// and in universal mode it may remove blocks: the floor is what is present after it
    /// (after the recovery that finishes it, when a crash stops it).
    async fn prune(&mut self, retention: i64) {
        drop(self.held.take());
        let m = self.m.get_mut();
        if m.applied > 0 && m.mode != Mode::Discard {
            m.prune_began();
        }
        let res = self.store.prune(retention, &NoProgress).await;
        trace!("prune (retention {retention}): {res:?}");
        match res {
            Ok(_) => {
                self.m.get_mut().prune_ended();
                self.verify("after a prune", true).await;
            }
            Err(Error::PruneInDiscardMode) => {
                assert_eq!(self.cfg.mode, Mode::Discard, "a prune refused in {:?} mode", self.cfg.mode)
            }
            Err(Error::NoHead) => assert_eq!(self.m.get_mut().applied, 0, "NoHead with a head applied"),
            Err(e) => assert!(store_fuse_blown(&e), "a prune failed without a crash: {e}"),
        }
    }

    /// Runs a compaction on the seeded executor while `ops` run beside it: in one task, or
    /// (with `orders`, seed permitting) shared between two writers.
    async fn interleave(&mut self, seed: u64, ops: &[Op], orders: bool) {
        if self.held.is_none() {
            self.hold();
        }
        let Some(pending) = self.held.take() else { return };
        let txn = self.m.get_mut().txn.clone();
        let result = RefCell::new(None);
        {
            let (store, m) = (&self.store, &self.m);
            let mut ex = SeededExecutor::new(seed);
            ex.spawn(async {
                let progress =
                    |p: &splitstore_core::Progress| trace!("  compaction phase {} ({} done)", p.phase.as_str(), p.done);
                *result.borrow_mut() = Some(store.run_compaction(pending, &progress).await);
            });
            // A second writer takes every other operation but those that follow the chain,
            // which apply epochs in order and stay with the first.
            let writers = if orders && seed & 1 == 1 { 2 } else { 1 };
            let writer_of = move |i: usize, op: &Op| match op {
                Op::Apply { .. } | Op::ApplyHeaderFirst { .. } | Op::Prefetch => 0,
                _ => i % writers,
            };
            for w in 0..writers {
                ex.spawn(async move {
                    for (i, op) in ops.iter().enumerate().filter(|(i, op)| writer_of(*i, op) == w) {
                        // A compaction decided here (none can be while one runs) is dropped.
                        trace!("  foreground {w} {op:?}");
                        drop(fg(store, m, *op).await);
                        if i % 2 == 0 {
                            store.clock().yield_now().await;
                        }
                    }
                });
            }
            ex.run(MAX_STEPS);
        }
        let report = match result.into_inner() {
            Some(Ok(report)) => Some(report),
            Some(Err(e)) => {
                assert!(store_fuse_blown(&e), "an interleaved compaction failed without a crash: {e}");
                None
            }
            None => panic!("the interleaved compaction never finished"),
        };
        if !self.fuse.blown() {
            self.verify("after an interleaved compaction", false).await;
            if let (Some(report), Some(txn)) = (report, txn) {
                self.m.get_mut().check_retention(&txn, &report, "after an interleaved compaction").await;
            }
        }
    }

    /// Drops the store and opens a new one: after a clean close (`kind % 4 == 0`) over the same
    /// data, otherwise over a crash image keeping none, all, or `n % 8` of the pending batches.
    async fn reopen(&mut self, kind: u8, n: u8) {
        drop(self.held.take());
        let mut clean = kind & 3 == 0 && !self.fuse.blown();
        if clean {
            if let Err(e) = self.store.close().await {
                // The fuse blew while closing: the process died there.
                assert!(store_fuse_blown(&e), "close failed without a crash: {e}");
                clean = false;
            }
        }
        let m = self.m.get_mut();
        // The reify queue lives in memory: what was read in use before is copied by no drain.
        m.in_use.clear();
        if !clean {
            let keep = match kind % 4 {
                1 | 0 => 0,
                2 => usize::MAX,
                _ => usize::from(n % 8),
            };
            trace!("crash image keeping {keep} pending batches");
            let before = model::present_keys(&m.hot, &m.cold);
            m.hot = m.hot.crash_image(keep);
            m.cold = m.cold.crash_image(keep);
            // What a crash lost was never durable: it stops being required, and a node that
            // needs it again fetches it again.
            let present = model::present_keys(&m.hot, &m.cold);
            m.touched.retain(|k, _| present.contains(k));
            m.excused.extend(before.difference(&present).cloned());
            m.deletions_after_crash(&present);
            if m.mode == Mode::Universal {
                m.floor = present.into_iter().filter(|k| !m.deleted.contains_key(k)).collect();
            }
        }
        // A prune the crash stopped is finished by the open's recovery: what it removes is
        // no loss, and the floor is taken after the open.
        if m.pruning {
            m.prune_ended();
        }
        self.fuse = Fault::new();
        self.armed = false;
        let (hot, cold) = (m.hot.clone(), m.cold.clone());
        self.store = open(&hot, &cold, self.steps, &self.fuse, &self.clock, &self.cfg)
            .await
            .unwrap_or_else(|e| panic!("reopen after {} failed: {e}", if clean { "a clean close" } else { "a crash" }));
        let info = self.store.info().await.expect("info");
        trace!(
            "reopened ({}): head epoch {:?}, recovery {:?}",
            if clean { "clean" } else { "crash" },
            info.head_epoch,
            info.recovery
        );
        let head = info.head;
        let m = self.m.get_mut();
        m.applied = match head {
            None => 0,
            Some(h) => {
                1 + m.chain.epochs.iter().position(|e| e.tipset == h).expect("the head is a tipset of the chain")
            }
        };
        // The oracle's live set (a full decode of every block) after crashes and at the end.
        self.verify(if clean { "after a clean reopen" } else { "after a crash and reopen" }, !clean).await;
    }

    /// Checks the store against the model; `full` adds the oracle's live set.
    async fn verify(&mut self, when: &str, full: bool) {
        self.m.get_mut().check_required(when).await;
        if self.armed {
            return;
        }
        match self.store.check().await {
            Ok(check) => {
                // What a node never wrote, or linked once it was gone, is missing by no loss.
                let m = self.m.get_mut();
                let lost: Vec<_> = check.missing_cids.iter().filter(|c| m.lost(c)).collect();
                assert!(lost.is_empty(), "{when}: check() finds live blocks missing: {lost:?}")
            }
            Err(Error::NoHead) => assert_eq!(self.m.get_mut().applied, 0, "{when}: check() finds no head"),
            Err(e) => panic!("{when}: check() failed: {e}"),
        }
        let info = self.store.info().await.expect("info");
        let m = self.m.get_mut();
        for c in m.touched_now() {
            let got = self.store.get(&c).await.expect("get");
            assert_eq!(got.as_deref(), m.bytes_of(&c), "{when}: get of required block {c} ({:02x?})", key_of(&c));
        }
        let deleted: Vec<Cid> = m.deleted.values().map(|(c, _)| *c).collect();
        for c in deleted {
            assert_eq!(self.store.get(&c).await.expect("get"), None, "{when}: deleted block {c} is readable");
        }
        if full {
            if let (Some(head), Some(epoch)) = (info.head, info.head_epoch) {
                let b = self.cfg.boundaries(epoch);
                m.check_live(&head, b.boundary, b.include_messages, when).await;
            }
        }
    }
}
