//! Compares fjall and redb on the splitstore's own workload.
//!
//! `cargo bench -p splitstore-native --features kv-bench --bench kv_choice -- [N] [VALUE_BYTES]`
//!
//! Phases, each timed separately, on `N` blocks (default 200 000) of `VALUE_BYTES` (default 200)
//! pseudo-random bytes keyed by 36-byte multihashes (BLAKE2b-256 shape):
//! 1. ingest in relaxed batches of 1024 puts, then one fsync (a syncing node's writes);
//! 2. random `get_many` of every key in shuffled chunks of 1024 (marking);
//! 3. a full paged key scan, 16 384 keys a page, each page a fresh range "after" the last key
//!    (the collect phase; no iterator lives across pages);
//! 4. deleting every other key in strict (fsynced) batches of 16 384 (the purge);
//! 5. reclaiming space (fjall: major compaction of the keyspace; redb: `compact`).
//!
//! Disk use is the allocated size (`st_blocks * 512`) of every file under the store directory.

use std::{
    path::Path,
    time::{Duration, Instant},
};

const INGEST_BATCH: usize = 1024;
const READ_CHUNK: usize = 1024;
const SCAN_PAGE: usize = 16_384;
const DELETE_BATCH: usize = 16_384;

trait Engine: Sync {
    fn name(&self) -> &'static str;
    fn put_batch(&self, kvs: &[(Vec<u8>, Vec<u8>)], strict: bool);
    fn delete_batch(&self, keys: &[Vec<u8>], strict: bool);
    fn get_many(&self, keys: &[Vec<u8>]) -> usize;
    fn scan_keys(&self, after: Option<&[u8]>, limit: usize) -> Vec<Vec<u8>>;
    fn sync(&self);
    /// Moves freshly written data to its steady-state layout (fjall: flush the memtable).
    fn settle(&self);
    fn reclaim(&mut self);
}

struct Fjall {
    db: fjall::Database,
    blocks: fjall::Keyspace,
    /// Written once per reclaim so that a memtable rotation runs fjall's version and journal GC.
    gc: fjall::Keyspace,
}

/// The block keyspace's options: a hash index in data blocks (point reads skip the binary
/// search), pinned index and filter blocks, and the filter skipped on the last level (marking
/// reads are hits). `KV_CHOICE_FJALL_DEFAULTS=1` measures the library defaults instead.
fn block_options() -> fjall::KeyspaceCreateOptions {
    use fjall::config::{HashRatioPolicy, PinningPolicy};
    let o = fjall::KeyspaceCreateOptions::default();
    if std::env::var_os("KV_CHOICE_FJALL_DEFAULTS").is_some() {
        return o;
    }
    o.data_block_hash_ratio_policy(HashRatioPolicy::all(0.75))
        .index_block_pinning_policy(PinningPolicy::all(true))
        .filter_block_pinning_policy(PinningPolicy::all(true))
        .expect_point_read_hits(true)
}

impl Fjall {
    fn open(dir: &Path) -> Self {
        let db = fjall::Database::builder(dir)
            .cache_size(cache_bytes())
            .manual_journal_persist(true)
            .open()
            .expect("open fjall");
        let blocks = db.keyspace("blocks", block_options).expect("keyspace");
        let gc = db.keyspace("gc", fjall::KeyspaceCreateOptions::default).expect("keyspace");
        Self { db, blocks, gc }
    }
}

impl Engine for Fjall {
    fn name(&self) -> &'static str {
        "fjall 3.1"
    }
    fn put_batch(&self, kvs: &[(Vec<u8>, Vec<u8>)], strict: bool) {
        let mut b = self.db.batch();
        for (k, v) in kvs {
            b.insert(&self.blocks, k.as_slice(), v.as_slice());
        }
        let b = b.durability(Some(if strict { fjall::PersistMode::SyncAll } else { fjall::PersistMode::Buffer }));
        b.commit().expect("commit");
    }
    fn delete_batch(&self, keys: &[Vec<u8>], strict: bool) {
        let mut b = self.db.batch();
        for k in keys {
            b.remove(&self.blocks, k.as_slice());
        }
        let b = b.durability(Some(if strict { fjall::PersistMode::SyncAll } else { fjall::PersistMode::Buffer }));
        b.commit().expect("commit");
    }
    fn get_many(&self, keys: &[Vec<u8>]) -> usize {
        let snap = self.db.snapshot();
        let mut found = 0;
        for k in keys {
            use fjall::Readable;
            if snap.get(&self.blocks, k).expect("get").is_some() {
                found += 1;
            }
        }
        found
    }
    fn scan_keys(&self, after: Option<&[u8]>, limit: usize) -> Vec<Vec<u8>> {
        use std::ops::Bound;
        let lower = match after {
            Some(a) => Bound::Excluded(a.to_vec()),
            None => Bound::Unbounded,
        };
        self.blocks
            .range::<Vec<u8>, _>((lower, Bound::Unbounded))
            .take(limit)
            .map(|g| g.key().expect("key").to_vec())
            .collect()
    }
    fn sync(&self) {
        self.db.persist(fjall::PersistMode::SyncAll).expect("persist");
    }
    fn settle(&self) {
        self.blocks.rotate_memtable_and_wait().expect("flush memtable");
    }
    fn reclaim(&mut self) {
        self.blocks.rotate_memtable_and_wait().expect("flush memtable");
        self.blocks.major_compact().expect("major compaction");
        self.gc.insert("n", "1").expect("insert");
        self.gc.rotate_memtable_and_wait().expect("flush gc memtable");
    }
}

const REDB_BLOCKS: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("blocks");

struct Redb {
    db: redb::Database,
}

impl Redb {
    fn open(dir: &Path) -> Self {
        let db = redb::Builder::new()
            .set_cache_size(cache_bytes() as usize)
            .create(dir.join("store.redb"))
            .expect("open redb");
        Self { db }
    }
    fn txn(&self, strict: bool) -> redb::WriteTransaction {
        let mut t = self.db.begin_write().expect("begin");
        t.set_durability(if strict { redb::Durability::Immediate } else { redb::Durability::None })
            .expect("durability");
        t
    }
}

impl Engine for Redb {
    fn name(&self) -> &'static str {
        "redb 4.6"
    }
    fn put_batch(&self, kvs: &[(Vec<u8>, Vec<u8>)], strict: bool) {
        let t = self.txn(strict);
        {
            let mut table = t.open_table(REDB_BLOCKS).expect("table");
            for (k, v) in kvs {
                table.insert(k.as_slice(), v.as_slice()).expect("insert");
            }
        }
        t.commit().expect("commit");
    }
    fn delete_batch(&self, keys: &[Vec<u8>], strict: bool) {
        let t = self.txn(strict);
        {
            let mut table = t.open_table(REDB_BLOCKS).expect("table");
            for k in keys {
                table.remove(k.as_slice()).expect("remove");
            }
        }
        t.commit().expect("commit");
    }
    fn get_many(&self, keys: &[Vec<u8>]) -> usize {
        use redb::ReadableDatabase;
        let t = self.db.begin_read().expect("read");
        let table = t.open_table(REDB_BLOCKS).expect("table");
        keys.iter().filter(|k| table.get(k.as_slice()).expect("get").is_some()).count()
    }
    fn scan_keys(&self, after: Option<&[u8]>, limit: usize) -> Vec<Vec<u8>> {
        use redb::ReadableDatabase;
        use std::ops::Bound;
        let t = self.db.begin_read().expect("read");
        let table = t.open_table(REDB_BLOCKS).expect("table");
        let lower = match after {
            Some(a) => Bound::Excluded(a),
            None => Bound::Unbounded,
        };
        table
            .range::<&[u8]>((lower, Bound::Unbounded))
            .expect("range")
            .take(limit)
            .map(|r| r.expect("entry").0.value().to_vec())
            .collect()
    }
    fn sync(&self) {
        // An empty immediate commit makes every earlier non-durable commit durable.
        self.txn(true).commit().expect("commit");
    }
    fn settle(&self) {}
    fn reclaim(&mut self) {
        while self.db.compact().expect("compact") {}
    }
}

/// Block cache of each engine: `KV_CHOICE_CACHE_MB` (default 64 MiB).
fn cache_bytes() -> u64 {
    let mb: u64 = std::env::var("KV_CHOICE_CACHE_MB").ok().and_then(|s| s.parse().ok()).unwrap_or(64);
    mb << 20
}

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn fill(&mut self, out: &mut [u8]) {
        for chunk in out.chunks_mut(8) {
            let r = self.next().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
    }
    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

fn disk_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let m = e.metadata().expect("metadata");
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.blocks() * 512;
            }
        }
    }
    total
}

fn list(dir: &Path) {
    use std::os::unix::fs::MetadataExt;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let m = e.metadata().expect("metadata");
            if m.is_dir() {
                stack.push(e.path());
            } else {
                eprintln!("  {:>10} {:>10} {}", m.len(), m.blocks() * 512, e.path().display());
            }
        }
    }
}

struct Row {
    engine: &'static str,
    ingest: Duration,
    settle: Duration,
    read: Duration,
    read_warm: Duration,
    read2: Duration,
    scan: Duration,
    delete: Duration,
    reclaim: Duration,
    disk_ingested: u64,
    disk_deleted: u64,
    disk_reclaimed: u64,
}

fn run(engine: &mut dyn Engine, dir: &Path, n: usize, value_bytes: usize) -> Row {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let keys: Vec<Vec<u8>> = (0..n)
        .map(|_| {
            let mut k = vec![0xa0, 0xe4, 0x02, 0x20];
            let mut d = [0u8; 32];
            rng.fill(&mut d);
            k.extend_from_slice(&d);
            k
        })
        .collect();

    let t = Instant::now();
    let mut batch = Vec::with_capacity(INGEST_BATCH);
    for k in &keys {
        let mut v = vec![0u8; value_bytes];
        rng.fill(&mut v);
        batch.push((k.clone(), v));
        if batch.len() == INGEST_BATCH {
            engine.put_batch(&batch, false);
            batch.clear();
        }
    }
    if !batch.is_empty() {
        engine.put_batch(&batch, false);
    }
    engine.sync();
    let ingest = t.elapsed();
    let t = Instant::now();
    engine.settle();
    let settle = t.elapsed();
    let disk_ingested = disk_bytes(dir);

    let mut order = keys.clone();
    rng.shuffle(&mut order);
    let t = Instant::now();
    let mut found = 0;
    for chunk in order.chunks(READ_CHUNK) {
        found += engine.get_many(chunk);
    }
    let read = t.elapsed();
    assert_eq!(found, n, "{}: every key must be found", engine.name());
    rng.shuffle(&mut order);
    let t = Instant::now();
    let found: usize = order.chunks(READ_CHUNK).map(|c| engine.get_many(c)).sum();
    let read_warm = t.elapsed();
    assert_eq!(found, n);

    let t = Instant::now();
    let found2: usize = std::thread::scope(|s| {
        let half = order.len() / 2;
        let (a, b) = order.split_at(half);
        let engine: &dyn Engine = engine;
        let ha = s.spawn(move || a.chunks(READ_CHUNK).map(|c| engine.get_many(c)).sum::<usize>());
        let hb = s.spawn(move || b.chunks(READ_CHUNK).map(|c| engine.get_many(c)).sum::<usize>());
        ha.join().expect("reader") + hb.join().expect("reader")
    });
    let read2 = t.elapsed();
    assert_eq!(found2, n);

    let t = Instant::now();
    let mut after: Option<Vec<u8>> = None;
    let mut scanned = 0;
    loop {
        let page = engine.scan_keys(after.as_deref(), SCAN_PAGE);
        let Some(last) = page.last() else { break };
        scanned += page.len();
        after = Some(last.clone());
    }
    let scan = t.elapsed();
    assert_eq!(scanned, n, "{}: the scan must see every key", engine.name());

    let dead: Vec<Vec<u8>> = keys.iter().step_by(2).cloned().collect();
    let t = Instant::now();
    for chunk in dead.chunks(DELETE_BATCH) {
        engine.delete_batch(chunk, true);
    }
    let delete = t.elapsed();
    let disk_deleted = disk_bytes(dir);

    let t = Instant::now();
    engine.reclaim();
    let reclaim = t.elapsed();
    let disk_reclaimed = disk_bytes(dir);
    if std::env::var_os("KV_CHOICE_LIST").is_some() {
        std::thread::sleep(Duration::from_secs(2));
        eprintln!("{}: {:.1} MiB two seconds after reclaim", engine.name(), disk_bytes(dir) as f64 / 1048576.0);
        list(dir);
    }
    assert_eq!(engine.get_many(&keys[1..2]), 1);
    assert_eq!(engine.get_many(&keys[0..1]), 0);

    Row {
        engine: engine.name(),
        ingest,
        settle,
        read,
        read_warm,
        read2,
        scan,
        delete,
        reclaim,
        disk_ingested,
        disk_deleted,
        disk_reclaimed,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    let n: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let value_bytes: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(200);
    println!("workload: {n} blocks of {value_bytes} bytes, 36-byte keys");

    let mut rows = Vec::new();
    let only = std::env::var("KV_CHOICE_ENGINES").unwrap_or_else(|_| "fjall,redb".into());
    for which in only.split(',') {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut engine: Box<dyn Engine> = match which {
            "fjall" => Box::new(Fjall::open(dir.path())),
            _ => Box::new(Redb::open(dir.path())),
        };
        rows.push(run(engine.as_mut(), dir.path(), n, value_bytes));
    }

    let rate = |d: Duration, count: usize| count as f64 / d.as_secs_f64() / 1000.0;
    let mib = |b: u64| b as f64 / (1 << 20) as f64;
    println!(
        "| engine | ingest (k puts/s) | memtable flush (s) | random get_many, first pass (k gets/s) | warm, 1 thread | warm, 2 threads | key scan (k keys/s) | strict delete half (k dels/s) | reclaim (s) | disk after ingest (MiB) | after delete | after reclaim |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for r in &rows {
        println!(
            "| {} | {:.0} | {:.2} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} | {:.1} | {:.1} | {:.1} |",
            r.engine,
            rate(r.ingest, n),
            r.settle.as_secs_f64(),
            rate(r.read, n),
            rate(r.read_warm, n),
            rate(r.read2, n),
            rate(r.scan, n),
            rate(r.delete, n / 2),
            r.reclaim.as_secs_f64(),
            mib(r.disk_ingested),
            mib(r.disk_deleted),
            mib(r.disk_reclaimed),
        );
    }
}
