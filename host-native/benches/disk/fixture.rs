//! The benchmark's store: a synthetic mainnet-shaped chain written once into a repo on disk,
//! then copied for every run so that each run starts from the same files.

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
    time::Instant,
};

use futures::executor::block_on;
use splitstore_core::{
    kv::{Kv, Space},
    synth::ChainGen,
    BlockKey, CompactionReport, Config, Mode, NoProgress, SplitStore,
};
use splitstore_native::{
    demo::synth_config,
    ops::{NativeStore, OpenStore},
    FjallKv, KvOptions, Repo, RepoConfig, SystemClock,
};

use super::{
    stats::{copy_dir, dir_bytes, Rng},
    BenchResult,
};

/// Finality of the bench chain: the live state is that of the last 4F epochs.
pub const FINALITY: i64 = 20;
/// Hot blocks per actor of the synthetic state tree. With 2% of the actors rewritten every
/// epoch the chain then runs to about 800 epochs whatever its size, so about three quarters of
/// it is dead at the head (40,000 actors for a million blocks, as in the in-memory bench).
pub const BLOCKS_PER_ACTOR: u64 = 25;
/// Generator seed.
pub const SEED: u64 = 7;
/// Block caches, as in the repo's default configuration.
pub const HOT_CACHE: u64 = 256 << 20;
/// Cold store block cache.
pub const COLD_CACHE: u64 = 64 << 20;
/// Keys per page of a scan, as the compaction's (`Config::batch_size`).
pub const PAGE: usize = 16_384;
/// Codec of raw blocks: marked by the walk, never loaded.
const RAW_CODEC: u64 = 0x55;

/// The repo configuration of every bench store (read by `splitstore compact`).
pub fn repo_config() -> RepoConfig {
    RepoConfig {
        mode: Mode::Discard.as_str().into(),
        finality: FINALITY,
        sync_gap_secs: 0,
        verify_puts: false,
        ..RepoConfig::default()
    }
}

/// The core configuration the repo gives, in `mode`, with purge pacing on or off.
pub fn engine_config(mode: Mode, paced: bool) -> BenchResult<Config> {
    let mut c = repo_config().to_core()?;
    c.mode = mode;
    if !paced {
        c.purge_pace_after_ms = u64::MAX;
    }
    Ok(c)
}

/// Read threads of the repo's stores (`KvOptions::default`).
pub fn default_read_threads() -> usize {
    KvOptions::default().read_threads
}

/// The stores of a repo opened directly, each reading with `read_threads` threads.
pub fn open_kvs(repo: &Path, read_threads: usize) -> BenchResult<(FjallKv, FjallKv)> {
    let hot =
        FjallKv::open(&repo.join("hot"), &KvOptions { cache_bytes: HOT_CACHE, read_threads, ..KvOptions::default() })?;
    let cold = FjallKv::open(
        &repo.join("cold"),
        &KvOptions { cache_bytes: COLD_CACHE, read_threads, ..KvOptions::default() },
    )?;
    Ok((hot, cold))
}

/// The store of a repo under `cfg` (recovery runs here, as in every open).
pub fn open_store(repo: &Path, cfg: Config, read_threads: usize) -> BenchResult<NativeStore> {
    let (hot, cold) = open_kvs(repo, read_threads)?;
    Ok(block_on(SplitStore::open(hot.into(), cold.into(), SystemClock, cfg))?)
}

/// Every key of `space`, ascending, read in compaction-sized pages.
pub fn all_keys(kv: &impl Kv, space: Space) -> BenchResult<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = block_on(kv.scan_keys(space, after.as_deref(), PAGE))?;
        let Some(last) = page.last().cloned() else { return Ok(out) };
        out.extend(page);
        after = Some(last);
    }
}

/// The bench chain in a closed repo, and what was written.
#[derive(Debug)]
pub struct Fixture {
    root: PathBuf,
    base: PathBuf,
    copies: AtomicU64,
    /// Blocks written.
    pub blocks: u64,
    /// Bytes of those blocks.
    pub bytes: u64,
    /// Epochs generated.
    pub epochs: u64,
    /// Height of the head.
    pub head_height: i64,
    /// Actors of the state tree.
    pub actors: usize,
    /// Keys a compaction marks without loading them: raw leaves and tipset-key objects.
    pub unloaded: HashSet<Vec<u8>>,
    /// Size of the repo on disk.
    pub disk_bytes: u64,
    /// Seconds spent generating and writing the chain.
    pub build_secs: f64,
}

impl Fixture {
    /// Writes a chain of at least `objects` blocks, one `put_many` per epoch as a syncing node
    /// does, into a new repo under `root`, and sets the head to the last epoch.
    pub fn build(root: &Path, objects: u64) -> BenchResult<Self> {
        let start = Instant::now();
        let base = root.join("base");
        let open = OpenStore::from_repo(Repo::init(&base, repo_config())?)?;
        let actors = usize::try_from(objects / BLOCKS_PER_ACTOR)?.max(1000);
        let mut gen = ChainGen::new(synth_config(SEED, actors));
        let mut unloaded = HashSet::new();
        let mut head = (Vec::new(), 0);
        while gen.emitted_blocks() < objects {
            let e = gen.next_epoch();
            for (c, _) in e.blocks.iter().filter(|(c, _)| c.codec() == RAW_CODEC) {
                unloaded.insert(BlockKey::of(c).into_bytes());
            }
            if let Some(k) = &e.parent_key {
                unloaded.insert(BlockKey::of(k).into_bytes());
            }
            block_on(open.store.put_many(e.blocks))?;
            head = (e.tipset, e.height);
        }
        // The trigger may decide a compaction at this head: dropping it leaves the store as is.
        drop(block_on(open.store.head_change(&[], &[head.0]))?);
        open.close()?;
        drop(open);
        Ok(Self {
            disk_bytes: dir_bytes(&base),
            root: root.to_path_buf(),
            base,
            copies: AtomicU64::new(0),
            blocks: gen.emitted_blocks(),
            bytes: gen.emitted_bytes(),
            epochs: gen.epochs(),
            head_height: head.1,
            actors,
            unloaded,
            build_secs: start.elapsed().as_secs_f64(),
        })
    }

    /// A fresh copy of the repo, named after `what`.
    pub fn copy(&self, what: &str) -> BenchResult<PathBuf> {
        let n = self.copies.fetch_add(1, Ordering::Relaxed);
        let dir = self.root.join(format!("{what}-{n}"));
        copy_dir(&self.base, &dir)?;
        Ok(dir)
    }

    /// Deletes a copy.
    pub fn remove(&self, dir: &Path) -> BenchResult<()> {
        Ok(std::fs::remove_dir_all(dir)?)
    }
}

/// The live set of the bench chain's compaction.
#[derive(Debug)]
pub struct LiveSet {
    /// Every live key.
    pub keys: HashSet<Vec<u8>>,
    /// The live keys the mark loads, in a fixed random order (the walk's order is random in
    /// key space too).
    pub loaded: Vec<Vec<u8>>,
    /// Objects the compaction marked (the live keys and the head's tipset-key object, which
    /// is not a block yet).
    pub marked: u64,
    /// Its mark set's bytes per object.
    pub markset_bytes_per_object: f64,
}

impl LiveSet {
    /// The live set from the keys left hot by the compaction that gave `report`.
    pub fn new(keys: Vec<Vec<u8>>, fx: &Fixture, report: &CompactionReport) -> Self {
        let mut loaded: Vec<Vec<u8>> = keys.iter().filter(|k| !fx.unloaded.contains(*k)).cloned().collect();
        Rng::new(SEED).shuffle(&mut loaded);
        Self {
            keys: keys.into_iter().collect(),
            loaded,
            marked: report.marked,
            markset_bytes_per_object: report.markset_bytes_per_object,
        }
    }

    /// Computes it with a compaction of a copy (discard mode: what stays hot is the live set).
    pub fn compute(fx: &Fixture) -> BenchResult<Self> {
        let dir = fx.copy("live")?;
        let store = open_store(&dir, engine_config(Mode::Discard, false)?, 1)?;
        let report = block_on(store.compact(&NoProgress))?;
        let keys = all_keys(store.hot(), Space::Blocks)?;
        block_on(store.close())?;
        drop(store);
        fx.remove(&dir)?;
        Ok(Self::new(keys, fx, &report))
    }
}
