//! Pins (`SplitStore::protect`) on the in-memory backend, whose calls yield so that the
//! compaction and the foreground can be polled by hand (`splitstore_conformance::drive`):
//!
//! * a pinned DAG no chain names stays hot through compactions in every mode, while its
//!   unpinned twin goes where the mode sends dead blocks;
//! * `protect` at every await of a compaction, with the DAG written in the orders real nodes
//!   write (parents first, children once the walk passed, blocks landing after the call):
//!   what the DAG held when the call returned, and everything that lands later, stays;
//! * a crash at every await after `protect` returned (mark, collect, move, purge), then
//!   recovery at open and another compaction: the DAG is intact; a crash during `protect`
//!   leaves the pin whole or absent and loses nothing else;
//! * `unprotect`, then a compaction drops the DAG; pins persist across a reopen; a pinned
//!   block can still be deleted; a pin of absent blocks protects them once they land.

use std::{
    collections::HashSet,
    future::Future,
    pin::{pin, Pin},
    sync::OnceLock,
};

use splitstore_conformance::{
    chain::{hot_holes, node, small_chain, small_config, universe_of},
    drive::{self, finish, poll_times, poll_until, PhaseLog},
    executor::block_on,
    liveness::Events,
    oracle::{key_of, Universe},
    pins::{assert_kept, dag, held, pins_keep_their_dags},
    wrap::{DeletesKv, SteppedWritesKv, WriteSteps, YieldKv},
};
use splitstore_core::{
    kv::{Kv, Space, WriteBatch},
    mem::{ManualClock, MemKv},
    meta,
    synth::ChainGen,
    Cid, CompactionReport, Error, Mode, NoProgress, Phase, SplitStore,
};

const MODES: [Mode; 3] = [Mode::Discard, Mode::Universal, Mode::Messages];
/// Polls after which a future that has not finished is taken to be waiting for something.
const MANY: usize = 200_000;

type Store = SplitStore<DeletesKv<YieldKv<SteppedWritesKv<MemKv>>>, ManualClock>;
type Blocks = Vec<(Cid, Vec<u8>)>;

fn open(mode: Mode, hot: &MemKv, cold: &MemKv) -> Store {
    open_stepped(mode, hot, cold, WriteSteps::Never, &Events::default())
}

/// A store whose backends give up the thread before every call and, per `steps`, during
/// writes (`AfterApplying`: a write lands before its future completes, as IndexedDB commits),
/// logging on `events` the blocks each write deletes as it is issued (a purge batch's
/// deletion is decided then, though its write lands later: see `docs/design.md`, I10).
fn open_stepped(mode: Mode, hot: &MemKv, cold: &MemKv, steps: WriteSteps, events: &Events) -> Store {
    let kv = |m: &MemKv| DeletesKv::new(YieldKv(SteppedWritesKv(m.clone(), steps)), events.clone());
    block_on(SplitStore::open(kv(hot), kv(cold), ManualClock::new(0), small_config(mode))).expect("open")
}

/// Applies `n` epochs of `chain`, dropping the compactions they decide.
fn grow(store: &Store, chain: &mut ChainGen, n: usize) {
    for _ in 0..n {
        let e = chain.next_epoch();
        block_on(store.put_many(e.blocks.clone())).expect("put");
        drop(block_on(store.head_change(&[], std::slice::from_ref(&e.tipset))).expect("head"));
    }
}

struct Setup {
    store: Store,
    hot: MemKv,
    cold: MemKv,
    /// The blocks the store deleted, as the deletions were issued.
    events: Events,
}

/// The chain every setup starts from, as applied to a store in `mode` (built once per mode).
fn base(mode: Mode) -> &'static (MemKv, MemKv) {
    static BASES: [OnceLock<(MemKv, MemKv)>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let i = MODES.iter().position(|m| *m == mode).expect("a mode");
    BASES[i].get_or_init(|| {
        let (hot, cold) = (MemKv::with_crash_tracking(), MemKv::with_crash_tracking());
        let store = open(mode, &hot, &cold);
        grow(&store, &mut small_chain(7), 20);
        block_on(store.close()).expect("close");
        (hot, cold)
    })
}

/// The chain of [`base`], to grow it further.
fn base_chain() -> ChainGen {
    let mut chain = small_chain(7);
    for _ in 0..20 {
        chain.next_epoch();
    }
    chain
}

/// A store with 20 epochs of the small chain (no compaction run yet) and `blocks`, all
/// durable.
fn setup(mode: Mode, blocks: &[(Cid, Vec<u8>)]) -> Setup {
    setup_stepped(mode, blocks, WriteSteps::Never)
}

fn setup_stepped(mode: Mode, blocks: &[(Cid, Vec<u8>)], steps: WriteSteps) -> Setup {
    let (hot, cold) = (base(mode).0.crash_image(0), base(mode).1.crash_image(0));
    let events = Events::default();
    let store = open_stepped(mode, &hot, &cold, steps, &events);
    for b in blocks {
        block_on(store.put(&b.0, b.1.clone())).expect("put");
    }
    block_on(hot.flush()).expect("flush");
    block_on(cold.flush()).expect("flush");
    Setup { store, hot, cold, events }
}

fn hot_keys(hot: &MemKv) -> HashSet<Vec<u8>> {
    hot.keys(Space::Blocks).into_iter().collect()
}

fn keys_of(blocks: &[(Cid, Vec<u8>)]) -> HashSet<Vec<u8>> {
    blocks.iter().map(|(c, _)| key_of(c)).collect()
}

/// The keys of the DAG of `root` in either store now, as a walk finds them (through present
/// blocks only).
fn reachable(hot: &MemKv, cold: &MemKv, root: &Cid) -> HashSet<Vec<u8>> {
    block_on(universe_of(hot, cold)).closure(&[*root]).present
}

/// [`reachable`], counting of the hot store's blocks only those in `kept`.
fn reachable_beside(hot: &MemKv, kept: &HashSet<Vec<u8>>, cold: &MemKv, root: &Cid) -> HashSet<Vec<u8>> {
    let mut u = block_on(universe_of(hot, cold));
    let in_cold = hot_keys(cold);
    u.blocks.retain(|k, _| kept.contains(k) || in_cold.contains(k));
    u.closure(&[*root]).present
}

fn assert_in_hot(hot: &MemKv, want: &HashSet<Vec<u8>>, at: &str) {
    let h = hot_keys(hot);
    let lost: Vec<_> = want.iter().filter(|k| !h.contains(*k)).take(3).collect();
    assert!(lost.is_empty(), "{at}: pinned blocks left the hot store: {lost:02x?}");
}

/// The chain's live set is whole, and no hot block lost a DAG-CBOR child, but for children
/// in `allowed` (blocks of a DAG the purge had begun to delete before it was pinned).
fn assert_consistent<K: Kv>(store: &SplitStore<K, ManualClock>, hot: &MemKv, cold: &MemKv, allowed: &[Cid], at: &str) {
    let info = block_on(store.info()).expect("info");
    let head = info.head.expect("head");
    let b = store.config().boundaries(info.head_epoch.expect("height"));
    let live = block_on(universe_of(hot, cold)).live_set(&head, b.boundary, b.include_messages);
    assert!(live.missing.is_empty(), "{at}: live blocks lost: {:?}", &live.missing[..live.missing.len().min(3)]);
    let holes: Vec<_> = block_on(hot_holes(hot, cold)).into_iter().filter(|(_, c)| !allowed.contains(c)).collect();
    assert!(holes.is_empty(), "{at}: hot blocks lost children {:02x?}", &holes[..holes.len().min(3)]);
}

fn beside<O, R>(op: Pin<&mut O>, run: Pin<&mut R>, done: &mut bool) -> O::Output
where
    O: Future + ?Sized,
    R: Future<Output = Result<CompactionReport, Error>> + ?Sized,
{
    drive::beside(op, run, done, MANY)
}

/// Steps `run` once unless done; records completion.
fn step<R>(run: Pin<&mut R>, done: &mut bool, polls: &mut usize)
where
    R: Future<Output = Result<CompactionReport, Error>> + ?Sized,
{
    if *done {
        return;
    }
    match poll_times(run, 1) {
        Some(r) => {
            r.expect("compaction");
            *done = true;
        }
        None => *polls += 1,
    }
}

#[test]
fn a_pinned_dag_stays_hot_in_every_mode_and_its_unpinned_twin_goes() {
    for mode in MODES {
        let (pinned, twin) = (dag(1), dag(2));
        let all: Blocks = pinned.iter().chain(&twin).cloned().collect();
        let Setup { store, hot, cold, .. } = setup(mode, &all);
        let mut chain = base_chain();
        block_on(store.protect(&[pinned[0].0])).expect("protect");
        for round in 0..3 {
            let report = block_on(store.compact(&NoProgress)).expect("compaction");
            assert!(report.purged > 0, "{mode:?}: the compaction purged nothing");
            block_on(assert_kept(&hot, &cold, mode, &pinned, &twin));
            for (c, b) in &pinned {
                assert_eq!(block_on(store.get(c)).expect("get").as_ref(), Some(b), "{mode:?}, round {round}");
            }
            assert_consistent(&store, &hot, &cold, &[], &format!("{mode:?}, round {round}"));
            grow(&store, &mut chain, 6);
        }
    }
}

#[test]
fn the_shared_pin_scenario_holds_in_memory() {
    block_on(pins_keep_their_dags(&MemKv::new));
}

/// When each block of the DAG (indices into [`dag`]: root, a, b, g1, g2, leaf) is written.
#[derive(Clone, Copy, Debug)]
enum Order {
    /// The root, `a` and `b` stored before the compaction (dead for its chain walk), `g1` and
    /// `g2` once the walk passed, the leaf after `protect` returned.
    ParentsBeforeChildrenAfterWalk,
    /// The root, `a` and `b` written once the compaction's transaction is open, then as above.
    ParentsDuringChildrenAfterWalk,
    /// The leaf, `g2` and `g1` stored before the compaction, `b` and `a` once the walk passed,
    /// the root after `protect` returned (a node syncing children before parents).
    ChildrenFirst,
}

const ORDERS: [Order; 3] =
    [Order::ParentsBeforeChildrenAfterWalk, Order::ParentsDuringChildrenAfterWalk, Order::ChildrenFirst];

struct Plan {
    before: &'static [usize],
    in_txn: &'static [usize],
    after_walk: &'static [usize],
    after_protect: &'static [usize],
}

impl Order {
    fn plan(self) -> Plan {
        match self {
            Order::ParentsBeforeChildrenAfterWalk => {
                Plan { before: &[0, 1, 2], in_txn: &[], after_walk: &[3, 4], after_protect: &[5] }
            }
            Order::ParentsDuringChildrenAfterWalk => {
                Plan { before: &[], in_txn: &[0, 1, 2], after_walk: &[3, 4], after_protect: &[5] }
            }
            Order::ChildrenFirst => Plan { before: &[5, 4, 3], in_txn: &[], after_walk: &[2, 1], after_protect: &[0] },
        }
    }
}

/// What one run of [`protect_at`] saw.
struct Outcome {
    /// The compaction was still running when `protect` was issued.
    during: bool,
    /// Every block of the DAG written before `protect` returned was still stored when it
    /// returned (the purge had taken none of it).
    whole_at_return: bool,
}

/// Runs a compaction with the DAG written in `order`, `protect` issued after `polls` polls of
/// it (or once it ended), then another compaction and a reopen. Checks that every block of
/// the DAG reachable when `protect` returned, and every block written after, stays hot; and,
/// when nothing written before the call had been purged by then, the whole DAG.
fn protect_at(mode: Mode, order: Order, polls: usize) -> Outcome {
    let d = dag(1);
    let root = d[0].0;
    let plan = order.plan();
    let pick = |ix: &[usize]| -> Blocks { ix.iter().map(|&i| d[i].clone()).collect() };
    let Setup { store, hot, cold, events } = setup(mode, &pick(plan.before));
    let at = format!("{mode:?}, {order:?}, protect after {polls} polls");
    let log = PhaseLog::default();
    let mut run = pin!(store.compact(&log));
    let (mut done, mut n) = (false, 0usize);
    let mut written: Blocks = pick(plan.before);
    let mut written_after: Blocks = Vec::new();
    let (mut in_txn, mut after_walk, mut protected, mut after_protect) = (false, false, false, false);
    let (mut at_return, mut hot_at_return) = (HashSet::new(), HashSet::new());
    let mut outcome = Outcome { during: false, whole_at_return: false };
    loop {
        // Each block in its own write, in the order given.
        macro_rules! write {
            ($ix:expr) => {
                for (c, b) in pick($ix) {
                    beside(pin!(store.put(&c, b.clone())), run.as_mut(), &mut done).expect("put");
                    if protected {
                        written_after.push((c, b.clone()));
                    }
                    written.push((c, b));
                }
            };
        }
        if !in_txn && (n >= 1 || done) {
            write!(plan.in_txn);
            in_txn = true;
        }
        if in_txn && !after_walk && (log.seen(Phase::Collect) || done) {
            write!(plan.after_walk);
            after_walk = true;
        }
        if !protected && (n >= polls || done) {
            outcome.during = !done;
            beside(pin!(store.protect(&[root])), run.as_mut(), &mut done).unwrap_or_else(|e| panic!("{at}: {e}"));
            // A block whose deletion was issued before the call returned is gone, though the
            // purge's write may not have landed yet.
            let gone = |k: &Vec<u8>| events.deleted_at(k).is_some();
            hot_at_return = hot_keys(&hot).into_iter().filter(|k| !gone(k)).collect();
            at_return = reachable_beside(&hot, &hot_at_return, &cold, &root);
            outcome.whole_at_return = written.iter().all(|(c, _)| hot_at_return.contains(&key_of(c)));
            protected = true;
        }
        if protected && !after_protect {
            write!(plan.after_protect);
            after_protect = true;
        }
        if done && in_txn && after_walk && after_protect {
            break;
        }
        step(run.as_mut(), &mut done, &mut n);
    }
    // What the pin keeps: the DAG as it was when the call returned (in hot or cold: a walk
    // reads both), grown by what landed after and is linked through it (a block whose only
    // parent the purge took before the call is unreachable, whenever it lands). Of that, what
    // was hot then or landed after stays hot; a block only in cold (universal mode, the purge
    // took its hot copy before the call) is not brought back, and stays in cold.
    let mut kept = Universe::default();
    kept.extend(d.iter().filter(|(c, _)| at_return.contains(&key_of(c))).map(|(c, b)| (key_of(c), b.clone())));
    kept.extend(written_after.iter().map(|(c, b)| (key_of(c), b.clone())));
    let stored = kept.closure(&[root]).present;
    let landed_after = keys_of(&written_after);
    let mut required: HashSet<Vec<u8>> =
        stored.iter().filter(|k| hot_at_return.contains(*k) || landed_after.contains(*k)).cloned().collect();
    // The orders that write a parent of every early block during the compaction keep the whole
    // DAG wherever the call falls; so does every order when the call came before any deletion.
    let whole = outcome.whole_at_return || !matches!(order, Order::ParentsBeforeChildrenAfterWalk);
    if whole {
        required.extend(keys_of(&d));
    }
    let allowed: Vec<Cid> = if whole { Vec::new() } else { d.iter().map(|(c, _)| *c).collect() };
    let check = |store: &Store, hot: &MemKv, cold: &MemKv, when: &str, whole_store: bool| {
        let at = format!("{at}, {when}");
        assert_eq!(store.protected(), vec![root], "{at}");
        assert_in_hot(hot, &required, &at);
        let (h, c) = (hot_keys(hot), cold.keys(Space::Blocks).into_iter().collect::<HashSet<_>>());
        let lost: Vec<_> = stored.iter().filter(|k| !h.contains(*k) && !c.contains(*k)).take(3).collect();
        assert!(lost.is_empty(), "{at}: pinned blocks lost: {lost:02x?}");
        if whole_store {
            assert_consistent(store, hot, cold, &allowed, &at);
        }
    };
    check(&store, &hot, &cold, "after the compaction", true);
    block_on(store.compact(&NoProgress)).unwrap_or_else(|e| panic!("{at}: the next compaction: {e}"));
    check(&store, &hot, &cold, "after the next compaction", false);
    let (h, c) = (hot.crash_image(usize::MAX), cold.crash_image(usize::MAX));
    let reopened = open(mode, &h, &c);
    block_on(reopened.compact(&NoProgress)).unwrap_or_else(|e| panic!("{at}: compaction after reopening: {e}"));
    check(&reopened, &h, &c, "reopened and compacted", true);
    outcome
}

#[test]
fn protect_at_every_await_of_a_discard_compaction_keeps_the_dag_in_every_write_order() {
    protect_at_every_await(Mode::Discard);
}

#[test]
fn protect_at_every_await_of_a_universal_compaction_keeps_the_dag_in_every_write_order() {
    protect_at_every_await(Mode::Universal);
}

#[test]
fn protect_at_every_await_of_a_messages_compaction_keeps_the_dag_in_every_write_order() {
    protect_at_every_await(Mode::Messages);
}

fn protect_at_every_await(mode: Mode) {
    for order in ORDERS {
        let (mut polls, mut points, mut whole) = (0, 0, 0);
        loop {
            let o = protect_at(mode, order, polls);
            if !o.during {
                break;
            }
            points += 1;
            whole += o.whole_at_return as usize;
            polls += 1;
        }
        println!("{mode:?}, {order:?}: protect at {points} awaits, DAG whole at return at {whole}");
        assert!(points > 50, "{mode:?}, {order:?}: only {points} awaits in the compaction");
        assert!(whole > points / 2, "{mode:?}, {order:?}: DAG whole at only {whole} of {points}");
    }
}

/// The points of a compaction where a test pins: before its first poll, at the start of each
/// phase, once its purge record is written, and a few purge batches in.
const PROTECT_POINTS: [&str; 7] = ["before", "mark", "collect", "critical", "purge record", "purge", "purge batches"];

/// Polls `run` until the point named `point` (see [`PROTECT_POINTS`]); false if it finished.
fn run_until<R>(run: Pin<&mut R>, point: &str, log: &PhaseLog, hot: &MemKv) -> bool
where
    R: Future<Output = Result<CompactionReport, Error>> + ?Sized,
{
    let mut run = run;
    let purge_record = || hot.keys(Space::Meta).iter().any(|k| k.as_slice() == meta::PURGE);
    let stop = match point {
        "before" => return true,
        "mark" => poll_until(run.as_mut(), || log.seen(Phase::Mark), MANY),
        "collect" => poll_until(run.as_mut(), || log.seen(Phase::Collect), MANY),
        "critical" => poll_until(run.as_mut(), || log.seen(Phase::Critical), MANY),
        "purge record" => poll_until(run.as_mut(), purge_record, MANY),
        "purge" => poll_until(run.as_mut(), || log.seen(Phase::Purge), MANY),
        "purge batches" => match poll_until(run.as_mut(), || log.seen(Phase::Purge), MANY) {
            None => {
                let dead = hot.keys(Space::Dead).len();
                poll_until(run.as_mut(), || hot.keys(Space::Dead).len() * 2 < dead, MANY)
            }
            done => done,
        },
        other => panic!("no point {other}"),
    };
    match stop {
        Some(r) => {
            r.expect("compaction");
            false
        }
        None => true,
    }
}

/// The state of both stores, for telling whether an await wrote anything: the number of
/// writes not yet durable, the keys of every space (block values follow their keys, list
/// values are empty) and the metadata records. Equal after an await that wrote nothing, and
/// so are the crash images.
#[derive(Debug, PartialEq, Eq)]
struct StoresAt {
    pending: (usize, usize),
    keys: Vec<Vec<Vec<u8>>>,
    meta: Vec<(Vec<u8>, Vec<u8>)>,
}

impl StoresAt {
    fn of(hot: &MemKv, cold: &MemKv) -> Self {
        let spaces = [Space::Blocks, Space::Dead, Space::ColdList];
        let keys = spaces.iter().map(|s| hot.keys(*s)).chain(Space::ALL.iter().map(|s| cold.keys(*s))).collect();
        let meta = block_on(hot.scan(Space::Meta, None, usize::MAX)).expect("scan");
        StoresAt { pending: (hot.pending_batches(), cold.pending_batches()), keys, meta }
    }
}

/// Polls `run` until it holds the transaction lock in neither mode (a read of an absent block,
/// which touches nothing, completes without it).
fn until_unlocked<R>(mut run: Pin<&mut R>, store: &Store)
where
    R: Future<Output = Result<CompactionReport, Error>> + ?Sized,
{
    let absent = node(&[], 0xab5e).0;
    for _ in 0..MANY {
        let free = poll_times(pin!(store.has(&absent)), 8).is_some();
        if free {
            return;
        }
        assert!(poll_times(run.as_mut(), 1).is_none(), "the compaction finished");
    }
    panic!("the compaction never releases its lock");
}

/// What a pin made at one moment keeps: the blocks of its DAG in the hot store then and
/// reachable from the root through blocks stored in either store (as a walk finds them).
fn held_by_pin(hot: &MemKv, cold: &MemKv, root: &Cid) -> HashSet<Vec<u8>> {
    let h = hot_keys(hot);
    reachable(hot, cold, root).into_iter().filter(|k| h.contains(k)).collect()
}

/// Reopens what a crash keeping `keep` pending batches leaves (recovery runs), checks that the
/// pin of `root` is there (`pinned`: must be; otherwise whichever) with `required` in hot, that
/// nothing else was lost, then compacts and checks again: the unpinned `twin` is gone from hot
/// (in cold in universal mode). Returns whether the pin was there.
#[allow(clippy::too_many_arguments)]
fn check_crash(
    mode: Mode,
    hot: &MemKv,
    cold: &MemKv,
    keep: usize,
    root: Cid,
    pinned: bool,
    required: &HashSet<Vec<u8>>,
    twin: &Blocks,
    at: &str,
) -> bool {
    let at = format!("{at}, crash keeping {keep} batches");
    let (h, c) = (hot.crash_image(keep), cold.crash_image(keep));
    let store = open(mode, &h, &c);
    let pins = store.protected();
    let is_pinned = pins == vec![root];
    assert!(is_pinned || (!pinned && pins.is_empty()), "{at}: pins after reopening: {pins:?}");
    // A pin that survived keeps what its DAG held; a DAG the purge had begun on before the
    // pin may have lost children.
    let required: HashSet<Vec<u8>> = if is_pinned { required.clone() } else { HashSet::new() };
    let partial = required.len() < 6;
    let allowed: Vec<Cid> = if partial { dag(1).iter().map(|(c, _)| *c).collect() } else { Vec::new() };
    assert_in_hot(&h, &required, &format!("{at}, after recovery"));
    assert_consistent(&store, &h, &c, &allowed, &format!("{at}, after recovery"));
    block_on(store.compact(&NoProgress)).unwrap_or_else(|e| panic!("{at}: compaction after recovery: {e}"));
    assert_in_hot(&h, &required, &format!("{at}, compacted after recovery"));
    assert_consistent(&store, &h, &c, &allowed, &format!("{at}, compacted after recovery"));
    let (hk, ck) = (hot_keys(&h), c.keys(Space::Blocks).into_iter().collect::<HashSet<_>>());
    assert_eq!(held(&hk, twin), vec![false; twin.len()], "{at}: the unpinned twin stayed hot");
    if mode == Mode::Universal {
        assert_eq!(held(&ck, twin), vec![true; twin.len()], "{at}: the unpinned twin is not in cold");
    }
    is_pinned
}

/// A pin made at each point of [`PROTECT_POINTS`], then a crash at every await of the
/// compaction after `protect` returned, keeping none, half or all of the writes not yet
/// durable: recovery at open and another compaction keep what the pin held.
#[test]
fn a_crash_at_any_await_of_a_discard_compaction_after_protect_returned_keeps_the_pinned_dag() {
    crash_after_protect(Mode::Discard);
}

#[test]
fn a_crash_at_any_await_of_a_universal_compaction_after_protect_returned_keeps_the_pinned_dag() {
    crash_after_protect(Mode::Universal);
}

#[test]
fn a_crash_at_any_await_of_a_messages_compaction_after_protect_returned_keeps_the_pinned_dag() {
    crash_after_protect(Mode::Messages);
}

fn crash_after_protect(mode: Mode) {
    let (mut crashes, mut awaits) = (0, 0);
    for point in PROTECT_POINTS {
        let (d, twin) = (dag(1), dag(2));
        let all: Blocks = d.iter().chain(&twin).cloned().collect();
        let Setup { store, hot, cold, .. } = setup(mode, &all);
        let root = d[0].0;
        let log = PhaseLog::default();
        let mut run = pin!(store.compact(&log));
        assert!(run_until(run.as_mut(), point, &log, &hot), "{mode:?}: finished before {point}");
        let mut done = false;
        beside(pin!(store.protect(&[root])), run.as_mut(), &mut done).expect("protect");
        let required = held_by_pin(&hot, &cold, &root);
        if !matches!(point, "purge batches") {
            assert_eq!(required.len(), d.len(), "{mode:?}, {point}: the DAG was whole when pinned");
        }
        let (mut polls, mut last) = (0, None);
        loop {
            // An await after which nothing was written leaves the same images as the one
            // before it: checked once.
            let now = Some(StoresAt::of(&hot, &cold));
            if now != last {
                let at = format!("{mode:?}, pinned at {point}, crash after {polls} more polls");
                for keep in [0, hot.pending_batches() / 2, usize::MAX] {
                    check_crash(mode, &hot, &cold, keep, root, true, &required, &twin, &at);
                    crashes += 1;
                }
                last = now;
            }
            if done {
                break;
            }
            step(run.as_mut(), &mut done, &mut polls);
            awaits += 1;
        }
    }
    println!("{mode:?}: {crashes} crashes at {awaits} awaits after protect returned");
}

/// A crash at every await of `protect` itself, issued at each point of [`PROTECT_POINTS`]:
/// reopened, the pin is there with its DAG whole, or not there; nothing else is lost and no
/// kept block lost a child. Then the same, with the call's future dropped there instead: the
/// store keeps serving, finishes its compaction and loses nothing.
#[test]
fn a_crash_or_a_drop_during_protect_leaves_the_pin_whole_or_absent() {
    for (mode, steps) in MODES.into_iter().flat_map(|m| [(m, WriteSteps::Never), (m, WriteSteps::AfterApplying)]) {
        let (mut pinned, mut absent, mut landed_unreturned) = (0, 0, 0);
        for point in PROTECT_POINTS.iter().take(6) {
            let mut j = 0;
            loop {
                let (d, twin) = (dag(1), dag(2));
                let all: Blocks = d.iter().chain(&twin).cloned().collect();
                let Setup { store, hot, cold, .. } = setup_stepped(mode, &all, steps);
                let root = d[0].0;
                let log = PhaseLog::default();
                let mut run = pin!(store.compact(&log));
                assert!(run_until(run.as_mut(), point, &log, &hot), "{mode:?}: finished before {point}");
                // Stopped where it holds no lock, so the call runs alone, one await at a time.
                until_unlocked(run.as_mut(), &store);
                let required = held_by_pin(&hot, &cold, &root);
                assert_eq!(required.len(), d.len(), "{mode:?}, {point}: the DAG is whole");
                let at = format!("{mode:?}, {steps:?}, protect at {point}, stopped after {j} polls");
                assert!(j < 100, "{at}: the call does not complete alone");
                let roots = [root];
                let returned = {
                    let mut call = pin!(store.protect(&roots));
                    let returned = poll_times(call.as_mut(), j).map(|r| r.expect("protect")).is_some();
                    if !returned && hot.keys(Space::Meta).contains(&meta::pinned_key(&root)) {
                        landed_unreturned += 1;
                    }
                    for keep in [0, hot.pending_batches() / 2, usize::MAX] {
                        let is = check_crash(mode, &hot, &cold, keep, root, returned, &required, &twin, &at);
                        if is {
                            pinned += 1;
                        } else {
                            absent += 1;
                        }
                    }
                    returned
                };
                // The call's future is dropped here: the same store finishes its compaction.
                let at = format!("{at}, dropped");
                finish(run, MANY).unwrap_or_else(|e| panic!("{at}: compaction: {e}"));
                // The pins in memory are a superset of the records: a record that landed is in
                // force here too.
                let recorded = hot.keys(Space::Meta).contains(&meta::pinned_key(&root));
                if recorded || returned {
                    assert_eq!(store.protected(), vec![root], "{at}: the pin landed but is not in memory");
                }
                assert_consistent(&store, &hot, &cold, &[], &at);
                block_on(store.compact(&NoProgress)).unwrap_or_else(|e| panic!("{at}: compaction: {e}"));
                assert_consistent(&store, &hot, &cold, &[], &at);
                if returned {
                    assert_in_hot(&hot, &required, &at);
                    break;
                }
                j += 1;
            }
        }
        println!(
            "{mode:?}, {steps:?}: crashes during protect left the pin {pinned} times, none {absent} times; \
             {landed_unreturned} calls stopped after their write landed"
        );
        assert!(pinned > 0 && absent > 0, "{mode:?}: {pinned} pinned, {absent} absent");
        assert_eq!(landed_unreturned > 0, steps == WriteSteps::AfterApplying, "{mode:?}, {steps:?}");
    }
}

#[test]
fn unprotect_lets_the_next_compaction_drop_the_dag() {
    let mode = Mode::Discard;
    let d = dag(1);
    let root = d[0].0;
    let Setup { store, hot, cold, .. } = setup(mode, &d);
    block_on(store.protect(&[root])).expect("protect");
    block_on(store.compact(&NoProgress)).expect("compaction");
    assert_in_hot(&hot, &keys_of(&d), "pinned");
    // Unpinned while a compaction runs: that one, which took the pin when it started, keeps it.
    let log = PhaseLog::default();
    let mut run = pin!(store.compact(&log));
    assert!(run_until(run.as_mut(), "collect", &log, &hot));
    let mut done = false;
    beside(pin!(store.unprotect(&[root])), run.as_mut(), &mut done).expect("unprotect");
    assert!(store.protected().is_empty());
    if !done {
        finish(run, MANY).expect("compaction");
    }
    assert_in_hot(&hot, &keys_of(&d), "unpinned during a compaction that started pinned");
    block_on(store.compact(&NoProgress)).expect("compaction");
    let (h, c) = (hot_keys(&hot), cold.keys(Space::Blocks).into_iter().collect::<HashSet<_>>());
    assert_eq!(held(&h, &d), vec![false; d.len()], "unpinned, the DAG stayed hot");
    assert_eq!(held(&c, &d), vec![false; d.len()], "discard mode copied it to cold");
    assert_eq!(block_on(store.get(&root)).expect("get"), None);
    // Unpinning what is not pinned is a no-op.
    block_on(store.unprotect(&[root])).expect("unprotect again");
}

#[test]
fn pins_persist_across_reopening_and_crashes() {
    let mode = Mode::Discard;
    let (d, other) = (dag(1), dag(3));
    let Setup { store, hot, cold, .. } = setup(mode, &d);
    let (root, absent) = (d[0].0, other[0].0);
    let mut sorted = vec![root, absent];
    sorted.sort();
    assert!(store.protected().is_empty());
    block_on(store.protect(&[absent, root, absent])).expect("protect");
    assert_eq!(store.protected(), sorted, "sorted, without duplicates");
    // Durable on return: a crash that keeps only what was durable keeps the pins.
    let reopened = open(mode, &hot.crash_image(0), &cold.crash_image(0));
    assert_eq!(reopened.protected(), sorted);
    block_on(store.close()).expect("close");
    drop(store);
    let store = open(mode, &hot, &cold);
    assert_eq!(store.protected(), sorted);
    block_on(store.compact(&NoProgress)).expect("compaction");
    assert_in_hot(&hot, &keys_of(&d), "pinned, reopened");
    block_on(store.unprotect(&[absent])).expect("unprotect");
    let reopened = open(mode, &hot.crash_image(0), &cold.crash_image(0));
    assert_eq!(reopened.protected(), vec![root]);
    // A damaged record is reported, not skipped.
    let mut b = WriteBatch::new();
    b.put(Space::Meta, [meta::PINNED_PREFIX, b"not a cid"].concat(), Vec::new());
    block_on(hot.write(b)).expect("write");
    let err = block_on(SplitStore::open(hot.clone(), cold.clone(), ManualClock::new(0), small_config(mode)));
    assert!(matches!(err, Err(Error::CorruptMeta { key: "pinned", .. })), "{err:?}");
}

/// A pinned block can still be deleted (the deletion is the caller's explicit request); the
/// pin stays, and protects the block again once it is written again.
#[test]
fn a_pinned_block_can_be_deleted_and_is_pinned_again_when_written_again() {
    let mode = Mode::Discard;
    let d = dag(1);
    let root = d[0].0;
    let Setup { store, hot, cold, .. } = setup(mode, &d);
    block_on(store.protect(&[root])).expect("protect");
    block_on(store.delete(&root)).expect("delete");
    assert_eq!(block_on(store.get(&root)).expect("get"), None);
    assert_eq!(store.protected(), vec![root], "the pin stays");
    block_on(store.compact(&NoProgress)).expect("compaction");
    let h = hot_keys(&hot);
    assert_eq!(held(&h, &d), vec![false; d.len()], "what only the deleted root linked is dropped");
    block_on(store.put_many(d.clone())).expect("put");
    block_on(store.compact(&NoProgress)).expect("compaction");
    assert_in_hot(&hot, &keys_of(&d), "written again");
    assert_consistent(&store, &hot, &cold, &[], "written again");
}

/// A pin of blocks that are not there yet: they are protected once they land, children first,
/// with no compaction running, or while one runs.
#[test]
fn a_pin_of_absent_blocks_protects_them_once_they_land() {
    for mode in MODES {
        for during in [false, true] {
            let at = format!("{mode:?}, written during a compaction: {during}");
            let (d, twin) = (dag(1), dag(2));
            let root = d[0].0;
            let Setup { store, hot, cold, .. } = setup(mode, &[]);
            block_on(store.protect(&[root])).expect("protect");
            block_on(store.compact(&NoProgress)).expect("compaction");
            let log = PhaseLog::default();
            let mut run = pin!(store.compact(&log));
            let mut done = !during;
            if during {
                assert!(run_until(run.as_mut(), "critical", &log, &hot));
            } else {
                finish(run.as_mut(), MANY).expect("compaction");
            }
            for (c, b) in d.iter().rev().chain(&twin) {
                beside(pin!(store.put(c, b.clone())), run.as_mut(), &mut done).expect("put");
            }
            if !done {
                finish(run, MANY).expect("compaction");
            }
            block_on(store.compact(&NoProgress)).expect("compaction");
            block_on(assert_kept(&hot, &cold, mode, &d, &twin));
            assert_consistent(&store, &hot, &cold, &[], &at);
        }
    }
}

/// The backend-generic crash proof of pins, at every call, on the in-memory backend (the
/// native and IndexedDB suites run it at a stride).
#[test]
fn a_pin_made_beside_a_compaction_survives_a_crash_at_every_call() {
    let points = block_on(splitstore_conformance::pins::pins_survive_a_crash_beside_a_compaction(&MemKv::new, 1));
    assert!(points > 150, "only {points} crash points");
}
