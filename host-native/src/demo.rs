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
    output::human_bytes,
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
    /// Every compaction's report with the stores' counts right after it.
    pub compactions: Vec<(CompactionReport, Counts)>,
    /// The stores' counts at the end.
    pub final_counts: Counts,
    /// Live objects missing at the end (0 when all is well).
    pub missing: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
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
        "{:>6} {:>9} {:>10} {:>9} {:>10} {:>10} {:>8} {:>6} {:>7} {:>6} {:>6} {:>7}",
        "epoch",
        "hot objs",
        "hot size",
        "cold objs",
        "cold size",
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
pub fn table_row(r: &CompactionReport, i: &Counts, chain_blocks: u64) -> String {
    format!(
        "{:>6} {:>9} {:>10} {:>9} {:>10} {:>10} {:>8} {:>6} {:>7} {:>6} {:>6} {:>7}",
        r.head_epoch,
        i.hot.keys,
        human_bytes(i.hot.bytes),
        i.cold.keys,
        human_bytes(i.cold.bytes),
        chain_blocks,
        r.total_ms,
        phase_ms(r, Phase::Mark),
        phase_ms(r, Phase::Collect),
        phase_ms(r, Phase::Move),
        phase_ms(r, Phase::Purge),
        phase_ms(r, Phase::Reclaim),
    )
}

type Finished = Result<(CompactionReport, Counts), splitstore_core::Error>;

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
        let result = result.and_then(|r| block_on(store.count()).map(|c| (r, c)));
        // The receiver outlives every compaction thread (the demo joins them).
        let _ = tx.send(result);
    })
}

/// Runs the demo, writing the table to `out`.
pub fn run_demo(opts: &DemoOptions, out: &mut dyn Write) -> Result<DemoSummary, OpError> {
    let start = Instant::now();
    let repo = prepare_demo_repo(&opts.dir, demo_config(opts.mode, opts.finality))?;
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
    writeln!(out, "{}", table_header()).map_err(io)?;

    let mp = crate::progress::multi();
    let bar = count_bar(&mp, Some(opts.epochs), "epochs");
    let mut gen = ChainGen::new(synth_config(opts.seed, opts.state_objects));
    let (tx, rx) = mpsc::channel::<Finished>();
    let mut summary = DemoSummary { epochs: opts.epochs, ..DemoSummary::default() };
    let mut running: Option<std::thread::JoinHandle<()>> = None;
    let mut first_error: Option<splitstore_core::Error> = None;

    let mut record =
        |res: Finished, summary: &mut DemoSummary, chain_blocks: u64, out: &mut dyn Write| -> Result<(), OpError> {
            match res {
                Ok((r, i)) => {
                    let row = table_row(&r, &i, chain_blocks);
                    mp.suspend(|| writeln!(out, "{row}")).map_err(io)?;
                    summary.compactions.push((r, i));
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
    open.close()?;
    summary.seconds = start.elapsed().as_secs_f64();
    let i = &summary.final_counts;
    writeln!(
        out,
        "\nchain: {} objects ({}) written over {} epochs; {} compactions\n\
         hot store at the end: {} objects ({}); cold store: {} objects ({})\n\
         live objects missing: {}; {:.1} s",
        summary.chain_blocks,
        human_bytes(summary.chain_bytes),
        summary.epochs,
        summary.compactions.len(),
        i.hot.keys,
        human_bytes(i.hot.bytes),
        i.cold.keys,
        human_bytes(i.cold.bytes),
        summary.missing,
        summary.seconds,
    )
    .map_err(io)?;
    match first_error {
        Some(e) => Err(OpError::Store(e)),
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
