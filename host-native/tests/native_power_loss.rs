//! Power loss on the on-disk store, on a filesystem that keeps only what was fsynced
//! (`splitstore-powerfs`, a FUSE filesystem in the test process; needs root and /dev/fuse, and
//! fails loudly without them).
//!
//! The store's crash model says a power cut loses a suffix of the writes that were not yet
//! durable, and never part of a batch. The workload writes batches that each touch every space
//! (as a critical-section put writes a block and deletes its dead-list entry), with memtable
//! rotations (by size and by `reclaim`) racing fjall's flush worker, whose table writes are
//! slowed down to widen the race. At every moment a table becomes durable (each fsync of a file
//! that is not a journal) the filesystem's durable image is written out, reopened and checked:
//! batch `i` is either whole in every space or absent from all, and the batches present are
//! exactly `0..n` for some `n`.
//!
//! The same workload over fjall with one keyspace per space (the store's earlier layout) shows
//! the split the one-keyspace layout exists to prevent.

use std::{
    collections::BTreeSet,
    path::Path,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use fjall::{Database, KeyspaceCreateOptions, PersistMode};
use futures::executor::block_on;
use splitstore_core::kv::{Kv, Space, WriteBatch};
use splitstore_native::{FjallKv, KvOptions};
use splitstore_powerfs::{Held, PowerFs};

const SPACES: [Space; 3] = [Space::Blocks, Space::Dead, Space::ColdList];

fn key(i: u32) -> Vec<u8> {
    let mut k = b"k".to_vec();
    k.extend_from_slice(&i.to_be_bytes());
    k
}

fn index(k: &[u8]) -> u32 {
    u32::from_be_bytes(k[k.len() - 4..].try_into().expect("four bytes"))
}

/// Value of batch `i`'s block: large enough that a few hundred batches fill a memtable.
fn value(i: u32) -> Vec<u8> {
    vec![(i % 251) as u8; 3_000]
}

/// What an image holds: the batch indices present in each space.
type Presence = Vec<BTreeSet<u32>>;

/// The first violation of the crash model in `p`, if any.
fn violation(p: &Presence) -> Option<String> {
    let union: BTreeSet<u32> = p.iter().flatten().copied().collect();
    for (space, set) in SPACES.iter().zip(p) {
        if let Some(i) = union.difference(set).next() {
            return Some(format!("batch {i} is in another space but not in {space:?} (a split batch)"));
        }
    }
    let n = union.len() as u32;
    if let Some(last) = union.last() {
        if *last + 1 != n {
            return Some(format!("{n} batches present but batch {last} is among them (not a prefix)"));
        }
    }
    None
}

fn mount() -> (tempfile::TempDir, PowerFs) {
    let mnt = tempfile::tempdir().expect("mountpoint");
    let fs = PowerFs::mount(mnt.path()).unwrap_or_else(|e| panic!("the power-loss tests need a FUSE mount: {e}"));
    (mnt, fs)
}

/// Table and version files (not journals) under the store: when one of them is fsynced, data
/// may have reached a table.
fn is_table_side(p: &Path) -> bool {
    p.extension().is_none_or(|e| e != "jnl")
}

/// The images checked so far and the violations found among them.
#[derive(Default)]
struct Checked {
    images: AtomicU64,
    violations: Mutex<Vec<String>>,
}

impl Checked {
    fn violations(&self) -> Vec<String> {
        self.violations.lock().expect("lock").clone()
    }
}

/// From now on, at every fsync of a table-side file under the store at `rel` (relative to
/// the mount), writes out the durable image and checks what `read` says it holds.
fn check_images(fs: &PowerFs, rel: &Path, read: impl Fn(&Path) -> Presence + Send + Sync + 'static) -> Arc<Checked> {
    let checked = Arc::new(Checked::default());
    let scratch = tempfile::tempdir().expect("scratch");
    let (store, under, seen) = (rel.to_path_buf(), rel.to_path_buf(), checked.clone());
    fs.after_fsync(
        move |p| p.starts_with(&under) && is_table_side(p),
        move |image| {
            let n = seen.images.fetch_add(1, Ordering::Relaxed);
            let dest = scratch.path().join(n.to_string());
            image.write_to(&dest).expect("write image");
            if let Some(v) = violation(&read(&dest.join(&store))) {
                seen.violations.lock().expect("lock").push(format!("image {n}: {v}"));
            }
            let _ = std::fs::remove_dir_all(&dest);
        },
    );
    checked
}

/// Runs the workload on the store at `rel`: `write(i)` commits batch `i` for `i` in
/// `0..BATCHES`, `rotate()` (called every few milliseconds from another thread) seals
/// memtables, and `flush()` makes everything durable; every image is checked meanwhile.
fn run(
    fs: &PowerFs,
    rel: &Path,
    write: impl Fn(u32) + Sync,
    rotate: impl Fn() + Sync,
    flush: impl Fn(),
    read: impl Fn(&Path) -> Presence + Send + Sync + 'static,
) -> Arc<Checked> {
    let checked = check_images(fs, rel, read);
    // Slow table writes down: a flush that waits for another one's lock gives the race room.
    fs.delay_writes(is_table_side, Duration::from_micros(500));
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !done.load(Ordering::Relaxed) {
                rotate();
                std::thread::sleep(Duration::from_millis(3));
            }
        });
        for i in 0..BATCHES {
            write(i);
            if i % 500 == 499 {
                flush();
            }
        }
        done.store(true, Ordering::Relaxed);
    });
    flush();
    fs.clear_after_fsync();
    fs.clear_faults();
    checked
}

fn presence_of(mut scan: impl FnMut(usize) -> Vec<Vec<u8>>) -> Presence {
    (0..SPACES.len()).map(|s| scan(s).iter().map(|k| index(k)).collect()).collect()
}

const BATCHES: u32 = 3_000;

/// Linux's errno for a full device.
const ENOSPC: i32 = 28;

fn kv_options() -> KvOptions {
    KvOptions { cache_bytes: 4 << 20, read_threads: 1, memtable_bytes: 1 << 20, ..KvOptions::default() }
}

fn read_store(dir: &Path) -> Presence {
    let kv = FjallKv::open(dir, &kv_options()).expect("open the image");
    presence_of(|s| block_on(kv.scan_keys(SPACES[s], None, usize::MAX)).expect("scan"))
}

#[test]
fn a_power_cut_keeps_whole_batches_in_order() {
    let (_mnt, fs) = mount();
    let rel = Path::new("store");
    let kv = FjallKv::open(&fs.mountpoint().join(rel), &kv_options()).expect("open");
    let started = Instant::now();
    let write = |i: u32| {
        let mut b = WriteBatch::new();
        b.put(Space::Blocks, key(i), value(i));
        b.put(Space::Dead, key(i), Vec::new());
        b.put(Space::ColdList, key(i), Vec::new());
        block_on(kv.write(b)).expect("write");
    };
    let last_reclaim = Mutex::new(Instant::now());
    let rotate = || {
        // `reclaim` seals the memtable (and compacts) as a compaction's last phase does.
        let mut last = last_reclaim.lock().expect("lock");
        if last.elapsed() > Duration::from_millis(15) {
            block_on(kv.reclaim()).expect("reclaim");
            *last = Instant::now();
        }
    };
    let flush = || block_on(kv.flush()).expect("flush");
    let run = run(&fs, rel, write, rotate, flush, read_store);
    assert!(run.violations().is_empty(), "{:#?}", run.violations());
    let images = run.images.load(Ordering::Relaxed);
    assert!(images >= 10, "only {images} images were checked");
    drop(kv);
    let end = tempfile::tempdir().expect("end");
    fs.write_durable_image(end.path()).expect("image");
    let all: BTreeSet<u32> = (0..BATCHES).collect();
    assert_eq!(read_store(&end.path().join(rel)), vec![all; SPACES.len()], "everything flushed is durable");
    eprintln!("{images} images checked in {:?}", started.elapsed());
}

/// The earlier layout: one keyspace per space, and two flush workers (what a 2-core machine
/// gets by default).
fn legacy_open(dir: &Path) -> (Database, Vec<fjall::Keyspace>) {
    let db = Database::builder(dir).manual_journal_persist(true).worker_threads_unchecked(2).open().expect("open");
    let spaces = SPACES
        .iter()
        .map(|s| {
            db.keyspace(s.name(), || KeyspaceCreateOptions::default().max_memtable_size(1 << 20)).expect("keyspace")
        })
        .collect();
    (db, spaces)
}

fn read_legacy(dir: &Path) -> Presence {
    let (_db, spaces) = legacy_open(dir);
    presence_of(|s| spaces[s].iter().map(|g| g.key().expect("key").to_vec()).collect())
}

/// The same check over fjall with one keyspace per space (the store's earlier layout) finds
/// the split that layout allows, with the race that causes it forced step by step. A flush
/// syncs the journal and then waits for its keyspace's flush lock; the memtables sealed while
/// it waits are written to the same table, although the journal holds their batches only
/// unsynced, and the other keyspaces have those batches in no table at all.
#[test]
fn a_power_cut_splits_batches_across_fjall_keyspaces() {
    const WAIT: Duration = Duration::from_secs(20);
    let (_mnt, fs) = mount();
    let rel = Path::new("legacy");
    let (db, spaces) = legacy_open(&fs.mountpoint().join(rel));
    let write = |batches: std::ops::Range<u32>| {
        for i in batches {
            let mut b = db.batch();
            b.insert(&spaces[0], key(i), value(i));
            b.insert(&spaces[1], key(i), []);
            b.insert(&spaces[2], key(i), []);
            b.durability(Some(PersistMode::Buffer)).commit().expect("commit");
        }
    };
    let checked = check_images(&fs, rel, read_legacy);
    let under = rel.to_path_buf();
    let in_store = move |p: &Path| p.starts_with(&under);

    write(0..50);
    let store = in_store.clone();
    let tables = fs.hold(Held::Writes, move |p| store(p) && is_table_side(p));
    spaces[0].rotate_memtable().expect("rotate");
    assert!(tables.wait_for(1, WAIT), "the first flush never wrote its table");
    // The first flush holds the blocks keyspace's flush lock, inside its table write.
    let fsyncs = fs.counters().fsyncs;
    write(50..100);
    spaces[0].rotate_memtable().expect("rotate");
    let started = Instant::now();
    while fs.counters().fsyncs == fsyncs {
        assert!(started.elapsed() < WAIT, "the second flush never synced the journal");
        std::thread::sleep(Duration::from_millis(1));
    }
    // The second flush synced the journal through batch 99 and waits for the flush lock (a
    // write takes the journal's lock, so the next batches cannot land before that sync). No
    // other journal sync may happen until its table is durable.
    let journal = fs.hold(Held::Fsyncs, move |p| in_store(p) && !is_table_side(p));
    write(100..150);
    spaces[0].rotate_memtable().expect("rotate");
    tables.release();
    let started = Instant::now();
    while checked.violations().is_empty() {
        assert!(started.elapsed() < WAIT, "no image split a batch");
        std::thread::sleep(Duration::from_millis(5));
    }
    journal.release();
    db.persist(PersistMode::SyncAll).expect("persist");
    fs.clear_after_fsync();
    let first = checked.violations()[0].clone();
    assert!(first.contains("batch 100 is in another space"), "{first}");
    eprintln!("{first}");
}

/// A flush worker that fails (a full disk while it writes a table) poisons fjall; `reclaim`,
/// which waits for its memtable to be flushed, then returns an error instead of waiting for
/// ever, and the store closes.
#[test]
fn reclaim_returns_when_the_flush_worker_fails() {
    let (_mnt, fs) = mount();
    let kv = FjallKv::open(&fs.mountpoint().join("store"), &kv_options()).expect("open");
    for i in 0..200 {
        let mut b = WriteBatch::new();
        b.put(Space::Blocks, key(i), value(i));
        block_on(kv.write(b)).expect("write");
    }
    fs.fail_writes(|p| p.components().any(|c| c.as_os_str() == "tables"), ENOSPC);
    let (tx, rx) = std::sync::mpsc::channel();
    let worker = kv.clone();
    std::thread::spawn(move || {
        let _ = tx.send(block_on(worker.reclaim()));
    });
    let result = rx.recv_timeout(Duration::from_secs(60)).expect("reclaim hung after its flush failed");
    let err = result.expect_err("a reclaim whose flush failed is an error");
    assert!(fs.counters().faults_injected > 0, "the table write was refused");
    eprintln!("reclaim: {err}");
    let err = block_on(kv.flush()).expect_err("the store is poisoned: later writes fail too");
    eprintln!("flush: {err}");
    fs.clear_faults();
    drop(kv);
}
