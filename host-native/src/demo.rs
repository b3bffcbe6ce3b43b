//! `splitstore demo` and `splitstore generate`: grow the core's synthetic Filecoin-like chain
//! into a store, epoch by epoch, as a syncing node would.
//!
//! In the demo, head changes decide compactions on their own and each one runs on a
//! background thread while the main thread keeps writing new epochs; a row is printed per
//! compaction showing the hot store staying bounded while the chain grows.

use std::{
    io::Write,
    path::{Path, PathBuf},
    sync::{mpsc, Arc},
    time::Instant,
};

use futures::executor::block_on;
use indicatif::MultiProgress;
use splitstore_core::{
    synth::{ChainGen, SynthConfig},
    CompactionReport, Counts, Mode, PendingCompaction, Phase,
};

use crate::{
    errors::HostError,
    ops::{NativeStore, OpError, OpenStore},
    output::{human_bytes, DiskUsage},
    progress::{count_bar, PhaseBars},
    repo::{Repo, RepoConfig},
};

/// A file the demo leaves in its repo, so a later run may replace that repo (and only that).
pub const DEMO_MARKER: &str = "DEMO-REPO";

/// The repo `demo` uses when none is given: `splitstore-demo` in the system's temp directory.
pub fn default_demo_dir() -> PathBuf {
    std::env::temp_dir().join("splitstore-demo")
}

/// Settings of a demo run.
#[derive(Clone, Debug)]
pub struct DemoOptions {
    /// The repo directory (replaced if it holds an earlier demo; refused if it holds anything else).
    pub dir: PathBuf,
    /// Epochs to generate.
    pub epochs: u64,
    /// Compaction mode.
    pub mode: Mode,
    /// Finality F in epochs (small so that compactions come often).
    pub finality: i64,
    /// Actors in the synthetic state tree.
    pub state_objects: usize,
    /// Generator seed.
    pub seed: u64,
    /// Each epoch takes at least this long (ms): the chain grows at a steady pace, as a
    /// node's does, instead of as fast as the disk allows.
    pub epoch_ms: u64,
    /// Prune the cold store after every this many compactions (0: never, and cold grows with
    /// the chain).
    pub prune_every: u64,
    /// The state retention of those prunes.
    pub prune_retention: i64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            dir: default_demo_dir(),
            epochs: 1200,
            mode: Mode::Universal,
            finality: 30,
            state_objects: 5_000,
            seed: 1,
            epoch_ms: 40,
            prune_every: 0,
            prune_retention: 0,
        }
    }
}

/// The synthetic chain's settings for `seed` and `state_objects`: every link resolves (actor
/// code blocks are generated too), so `check` can demand a complete live set.
pub fn synth_config(seed: u64, state_objects: usize) -> SynthConfig {
    SynthConfig { seed, state_objects, dangling_code_links: false, ..SynthConfig::default() }
}

/// What a demo run did.
#[derive(Clone, Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DemoSummary {
    /// Epochs generated.
    pub epochs: u64,
    /// Blocks the chain generator produced in total.
    pub chain_blocks: u64,
    /// Bytes of those blocks.
    pub chain_bytes: u64,
    /// Every compaction's report with the stores' counts and file sizes right after it (and
    /// after the prune that followed it, if one did).
    pub compactions: Vec<DemoRow>,
    /// Cold prunes run.
    pub prunes: u64,
    /// The stores' counts at the end.
    pub final_counts: Counts,
    /// Live objects missing at the end (0 when all is well).
    pub missing: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// One compaction of the demo: its report, and the stores right after it.
#[derive(Clone, Debug, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DemoRow {
    /// The compaction's report.
    pub report: CompactionReport,
    /// Exact counts of both stores.
    pub counts: Counts,
    /// The stores' files on disk.
    pub disk: DiskUsage,
}

/// Creates a fresh repo for the demo in `dir`, replacing an earlier demo repo there.
pub fn prepare_demo_repo(dir: &Path, config: RepoConfig) -> Result<Repo, HostError> {
    if dir.join(DEMO_MARKER).exists() {
        std::fs::remove_dir_all(dir).map_err(|e| HostError::io("remove the earlier demo repo", dir, e))?;
    } else if std::fs::read_dir(dir).map(|mut d| d.next().is_some()).unwrap_or(false) {
        return Err(HostError::AlreadyInitialised { path: dir.to_path_buf() });
    }
    let repo = Repo::init(dir, config)?;
    let marker = dir.join(DEMO_MARKER);
    std::fs::write(&marker, b"Created by `splitstore demo`; the next demo run replaces this directory.\n")
        .map_err(|e| HostError::io("write", &marker, e))?;
    Ok(repo)
}

/// The demo repo's configuration: F = `finality`, the reference's 5F threshold and 4F
/// boundary, and no out-of-sync check (the synthetic timestamps do not follow the wall clock).
pub fn demo_config(mode: Mode, finality: i64) -> RepoConfig {
    RepoConfig {
        mode: mode.as_str().into(),
        finality,
        sync_gap_secs: 0,
        hot_cache_mb: 128,
        cold_cache_mb: 32,
        ..RepoConfig::default()
    }
}

fn phase_ms(r: &CompactionReport, phase: Phase) -> u64 {
    r.phases.iter().filter(|(p, _)| *p == phase).map(|(_, ms)| ms).sum()
}

/// The table's header line.
pub fn table_header() -> String {
    format!(
        "{:>6} {:>9} {:>10} {:>10} {:>9} {:>10} {:>10} {:>10} {:>8} {:>6} {:>7} {:>6} {:>6} {:>7}",
        "epoch",
        "hot objs",
        "hot size",
        "hot disk",
        "cold objs",
        "cold size",
        "cold disk",
        "chain objs",
        "total ms",
        "mark",
        "collect",
        "move",
        "purge",
        "reclaim"
    )
}

/// One table row.
pub fn table_row(row: &DemoRow, chain_blocks: u64) -> String {
    let (r, i, d) = (&row.report, &row.counts, &row.disk);
    format!(
        "{:>6} {:>9} {:>10} {:>10} {:>9} {:>10} {:>10} {:>10} {:>8} {:>6} {:>7} {:>6} {:>6} {:>7}",
        r.head_epoch,
        i.hot.keys,
        human_bytes(i.hot.bytes),
        human_bytes(d.hot),
        i.cold.keys,
        human_bytes(i.cold.bytes),
        human_bytes(d.cold),
        chain_blocks,
        r.total_ms,
        phase_ms(r, Phase::Mark),
        phase_ms(r, Phase::Collect),
        phase_ms(r, Phase::Move),
        phase_ms(r, Phase::Purge),
        phase_ms(r, Phase::Reclaim),
    )
}

type Finished = Result<DemoRow, OpError>;

fn spawn_compaction(
    store: &Arc<NativeStore>,
    pending: PendingCompaction,
    mp: &MultiProgress,
    tx: &mpsc::Sender<Finished>,
) -> std::thread::JoinHandle<()> {
    let store = Arc::clone(store);
    let tx = tx.clone();
    let bars = PhaseBars::new(mp);
    std::thread::spawn(move || {
        let result = block_on(store.run_compaction(pending, &bars));
        bars.finish();
        let result = result.and_then(|report| block_on(store.count()).map(|counts| (report, counts)));
        let result = result.map_err(OpError::Store).and_then(|(report, counts)| {
            Ok(DemoRow { report, counts, disk: DiskUsage::of(&store).map_err(OpError::Host)? })
        });
        // The receiver outlives every compaction thread (the demo joins them).
        let _ = tx.send(result);
    })
}

/// Runs the demo, writing the table to `out`.
pub fn run_demo(opts: &DemoOptions, out: &mut dyn Write) -> Result<DemoSummary, OpError> {
    let start = Instant::now();
    let config = RepoConfig {
        prune_every: opts.prune_every,
        prune_retention: opts.prune_retention,
        ..demo_config(opts.mode, opts.finality)
    };
    let repo = prepare_demo_repo(&opts.dir, config)?;
    let open = OpenStore::from_repo(repo)?;
    let store = Arc::clone(&open.store);
    let io = |e| OpError::Host(HostError::io("write", "stdout", e));
    writeln!(
        out,
        "splitstore demo: {} epochs of a synthetic chain ({} actors), mode {}, finality {} epochs\n\
         repo {}; a compaction starts each time the head passes base + {} epochs\n",
        opts.epochs,
        opts.state_objects,
        opts.mode.as_str(),
        opts.finality,
        opts.dir.display(),
        opts.finality * 5
    )
    .map_err(io)?;
    if opts.prune_every > 0 {
        writeln!(
            out,
            "the cold store is pruned after every {} compactions, keeping state {} finalities below the boundary\n",
            opts.prune_every, opts.prune_retention
        )
        .map_err(io)?;
    }
    writeln!(out, "{}", table_header()).map_err(io)?;

    let mp = crate::progress::multi();
    let bar = count_bar(&mp, Some(opts.epochs), "epochs");
    let mut gen = ChainGen::new(synth_config(opts.seed, opts.state_objects));
    let (tx, rx) = mpsc::channel::<Finished>();
    let mut summary = DemoSummary { epochs: opts.epochs, ..DemoSummary::default() };
    let mut running: Option<std::thread::JoinHandle<()>> = None;
    let mut first_error: Option<OpError> = None;

    let mut record =
        |res: Finished, summary: &mut DemoSummary, chain_blocks: u64, out: &mut dyn Write| -> Result<(), OpError> {
            match res {
                Ok(row) => {
                    let line = table_row(&row, chain_blocks);
                    mp.suspend(|| writeln!(out, "{line}")).map_err(io)?;
                    summary.compactions.push(row);
                }
                Err(e) => {
                    tracing::error!("compaction failed: {e}");
                    first_error.get_or_insert(e);
                }
            }
            Ok(())
        };

    for _ in 0..opts.epochs {
        let epoch_start = Instant::now();
        let epoch = gen.next_epoch();
        block_on(store.put_many(epoch.blocks))?;
        if let Some(pending) = block_on(store.head_change(&[], &[epoch.tipset]))? {
            if let Some(h) = running.take() {
                let _ = h.join();
            }
            running = Some(spawn_compaction(&store, pending, &mp, &tx));
        }
        while let Ok(res) = rx.try_recv() {
            record(res, &mut summary, gen.emitted_blocks(), out)?;
        }
        bar.inc(1);
        bar.set_message(format!("chain {} objects", gen.emitted_blocks()));
        let spent = epoch_start.elapsed();
        let pace = std::time::Duration::from_millis(opts.epoch_ms);
        if spent < pace {
            std::thread::sleep(pace - spent);
        }
    }
    bar.finish_and_clear();
    if let Some(h) = running.take() {
        let _ = h.join();
    }
    drop(tx);
    while let Ok(res) = rx.recv() {
        record(res, &mut summary, gen.emitted_blocks(), out)?;
    }
    summary.chain_blocks = gen.emitted_blocks();
    summary.chain_bytes = gen.emitted_bytes();
    summary.final_counts = block_on(store.count())?;
    summary.missing = block_on(store.check())?.missing;
    summary.prunes = block_on(store.info())?.prunes;
    open.close()?;
    summary.seconds = start.elapsed().as_secs_f64();
    let i = &summary.final_counts;
    writeln!(
        out,
        "\nchain: {} objects ({}) written over {} epochs; {} compactions, {} cold prunes\n\
         hot store at the end: {} objects ({}); cold store: {} objects ({})\n\
         live objects missing: {}; {:.1} s",
        summary.chain_blocks,
        human_bytes(summary.chain_bytes),
        summary.epochs,
        summary.compactions.len(),
        summary.prunes,
        i.hot.keys,
        human_bytes(i.hot.bytes),
        i.cold.keys,
        human_bytes(i.cold.bytes),
        summary.missing,
        summary.seconds,
    )
    .map_err(io)?;
    match first_error {
        Some(e) => Err(e),
        None => Ok(summary),
    }
}

/// What [`generate`] wrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GenerateReport {
    /// Epochs added.
    pub epochs: u64,
    /// Blocks written.
    pub blocks: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Height of the new head.
    pub head_epoch: i64,
}

/// Grows a synthetic chain of `epochs` epochs into the store, applying each tipset as the
/// head. Compactions the head changes decide are not run (they are dropped, which leaves the
/// store as it was); run `compact` afterwards. Meant for a fresh store: the generator always
/// starts at genesis.
pub fn generate(
    store: &NativeStore,
    cfg: SynthConfig,
    epochs: u64,
    bar: Option<&indicatif::ProgressBar>,
) -> Result<GenerateReport, OpError> {
    let mut gen = ChainGen::new(cfg);
    let mut report = GenerateReport::default();
    for _ in 0..epochs {
        let epoch = gen.next_epoch();
        report.head_epoch = epoch.height;
        block_on(store.put_many(epoch.blocks))?;
        drop(block_on(store.head_change(&[], &[epoch.tipset]))?);
        report.epochs += 1;
        if let Some(b) = bar {
            b.inc(1);
        }
    }
    report.blocks = gen.emitted_blocks();
    report.bytes = gen.emitted_bytes();
    Ok(report)
}
