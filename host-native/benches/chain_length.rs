//! Compaction cost against chain length, on disk (fjall): two stores with the same state size,
//! one holding a chain `--factor` times longer, each grown as a node grows it (a compaction
//! whenever a head decides one). Then, `--runs` times: both get the same number of new epochs
//! (one compaction interval) and compact once. After those, the long store does `--runs` more
//! with its chain index removed before each (its walk goes back to genesis, as every walk did
//! without the index, and records the index again). Each series is consecutive compactions of
//! one store, so work a store does every few compactions (a full merge of its tables) shows
//! in its own series at its own pace. Prints the medians and means of the compactions' times,
//! the medians of their phases, the ratios, and a markdown summary last. The mean is the cost
//! per compaction when some do the periodic work and others not.
//!
//! `cargo bench -p splitstore-native --bench chain_length -- [--epochs N] [--factor F]
//! [--runs R] [--state S] [--kept-graph] [--hot-key-list]` (defaults: 1,000 epochs, 10×, 10 runs,
//! 2,000 actors). Stores live in a temporary directory under Cargo's target directory, deleted
//! at the end.

// The compaction returns the core's `Error`, which holds CIDs by value.
#![allow(clippy::result_large_err)]

use std::{path::Path, process::ExitCode, time::Instant};

use futures::executor::block_on;
use splitstore_core::{
    kv::{Kv, Space, WriteBatch},
    meta,
    synth::ChainGen,
    CompactionReport, Config, Mode, NoProgress, Phase, SplitStore,
};
use splitstore_native::{demo::synth_config, ops::NativeStore, FjallKv, KvOptions, SystemClock};

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Finality of the bench chains: a compaction keeps the state of the last 2F epochs and the
/// messages of the last 3F, and one is decided every 3F epochs.
const FINALITY: i64 = 20;

struct Args {
    epochs: u64,
    factor: u64,
    runs: usize,
    state: usize,
    /// Keep the graph between compactions (`Config::kept_graph_bytes`).
    kept_graph: bool,
    /// Keep the hot key list between compactions (`Config::hot_key_list_bytes`).
    hot_key_list: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args { epochs: 1000, factor: 10, runs: 10, state: 2000, kept_graph: false, hot_key_list: false };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            it.next().ok_or(format!("{name} needs a value"))?.parse().map_err(|e| format!("{name}: {e}"))
        };
        match arg.as_str() {
            "--epochs" => a.epochs = value("--epochs")?,
            "--factor" => a.factor = value("--factor")?,
            "--runs" => a.runs = value("--runs")? as usize,
            "--state" => a.state = value("--state")? as usize,
            "--kept-graph" => a.kept_graph = true,
            "--hot-key-list" => a.hot_key_list = true,
            // Cargo passes `--bench` to every bench target.
            "--bench" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.epochs == 0 || a.factor == 0 || a.runs == 0 {
        return Err("--epochs, --factor and --runs must be positive".into());
    }
    Ok(a)
}

fn config(a: &Args) -> Config {
    Config {
        kept_graph_bytes: if a.kept_graph { 256 << 20 } else { 0 },
        hot_key_list_bytes: if a.hot_key_list { 256 << 20 } else { 0 },
        mode: Mode::Discard,
        finality: FINALITY,
        threshold_finalities: 3,
        boundary_finalities: 2,
        message_retention: 1,
        sync_gap_secs: None,
        // Unpaced: the figures are the compaction's own work.
        purge_pace_after_ms: u64::MAX,
        ..Config::default()
    }
}

/// A store and the chain growing it.
struct Grown {
    store: NativeStore,
    chain: ChainGen,
    compactions: u64,
}

impl Grown {
    /// A store under `dir` grown for `epochs` epochs, running every compaction a head decides.
    fn new(dir: &Path, epochs: u64, a: &Args) -> BenchResult<Self> {
        let opts = KvOptions { cache_bytes: 64 << 20, read_threads: 1, ..KvOptions::default() };
        let hot = FjallKv::open(&dir.join("hot"), &opts)?;
        let cold = FjallKv::open(&dir.join("cold"), &opts)?;
        let store = block_on(SplitStore::open(hot.into(), cold.into(), SystemClock, config(a)))?;
        let mut g = Grown { store, chain: ChainGen::new(synth_config(11, a.state)), compactions: 0 };
        g.grow(epochs, true)?;
        Ok(g)
    }

    /// Adds `epochs` epochs; runs the compactions heads decide when `compact`, else drops them.
    fn grow(&mut self, epochs: u64, compact: bool) -> BenchResult<()> {
        for _ in 0..epochs {
            let e = self.chain.next_epoch();
            block_on(self.store.put_many(e.blocks))?;
            if let Some(pending) = block_on(self.store.head_change(&[], std::slice::from_ref(&e.tipset)))? {
                if compact {
                    block_on(self.store.run_compaction(pending, &NoProgress))?;
                    self.compactions += 1;
                }
            }
        }
        Ok(())
    }

    /// One interval of new epochs, then one compaction (without its chain index when `full`).
    fn measure(&mut self, interval: u64, full: bool) -> BenchResult<CompactionReport> {
        self.grow(interval, false)?;
        if full {
            let mut b = WriteBatch::new();
            b.delete(Space::Meta, meta::CHAIN_INDEX);
            block_on(self.store.hot().write(b))?;
        }
        Ok(block_on(self.store.compact(&NoProgress))?)
    }

    fn hot_keys(&self) -> BenchResult<u64> {
        Ok(block_on(self.store.hot().stats(Space::Blocks))?.keys)
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

fn phase_ms(r: &CompactionReport, phase: Phase) -> f64 {
    r.phases.iter().filter(|(p, _)| *p == phase).map(|(_, ms)| *ms as f64).sum()
}

#[derive(Default)]
struct Series {
    total: Vec<f64>,
    mark: Vec<f64>,
    indexed_keys: Vec<f64>,
    phases: Vec<Vec<f64>>,
    scanned: Vec<f64>,
}

impl Series {
    fn push(&mut self, r: &CompactionReport) {
        self.total.push(r.total_ms as f64);
        self.mark.push(phase_ms(r, Phase::Mark));
        self.indexed_keys.push(r.chain_index_keys as f64);
        self.phases.push(Phase::ALL.iter().map(|p| phase_ms(r, *p)).collect());
        self.scanned.push(r.hot_scanned as f64);
    }

    /// Median ms of each phase.
    fn phase_medians(&self) -> Vec<f64> {
        (0..Phase::ALL.len()).map(|i| median(self.phases.iter().map(|p| p[i]).collect())).collect()
    }
}

fn run(a: &Args) -> BenchResult<()> {
    let root = tempfile::Builder::new().prefix("chain-length").tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let interval = (config(a).threshold_finalities * FINALITY) as u64;
    let long_epochs = a.epochs * a.factor;
    println!("building: {} and {long_epochs} epochs, {} actors, finality {FINALITY}", a.epochs, a.state);
    let t = Instant::now();
    let mut short = Grown::new(&root.path().join("short"), a.epochs, a)?;
    let short_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let mut long = Grown::new(&root.path().join("long"), long_epochs, a)?;
    let long_secs = t.elapsed().as_secs_f64();
    println!(
        "short: {} hot blocks after {} compactions ({short_secs:.1} s); long: {} hot blocks after {} compactions \
         ({long_secs:.1} s)",
        short.hot_keys()?,
        short.compactions,
        long.hot_keys()?,
        long.compactions
    );
    let (mut s, mut l, mut f) = (Series::default(), Series::default(), Series::default());
    for run in 0..a.runs {
        let rs = short.measure(interval, false)?;
        let rl = long.measure(interval, false)?;
        println!(
            "run {run}: short {} ms (mark {} ms, reclaim {} ms), long {} ms (mark {} ms, reclaim {} ms, {} keys \
             from the index)",
            rs.total_ms,
            phase_ms(&rs, Phase::Mark),
            phase_ms(&rs, Phase::Reclaim),
            rl.total_ms,
            phase_ms(&rl, Phase::Mark),
            phase_ms(&rl, Phase::Reclaim),
            rl.chain_index_keys,
        );
        s.push(&rs);
        l.push(&rl);
    }
    for run in 0..a.runs {
        let rf = long.measure(interval, true)?;
        println!(
            "run {run}: long without the index {} ms (mark {} ms, reclaim {} ms)",
            rf.total_ms,
            phase_ms(&rf, Phase::Mark),
            phase_ms(&rf, Phase::Reclaim)
        );
        f.push(&rf);
    }
    println!();
    let names: Vec<&str> = Phase::ALL.iter().map(|p| p.as_str()).collect();
    println!("| store (median ms per phase) | hot keys scanned | {} |", names.join(" | "));
    println!("|---|---|{}", "---|".repeat(Phase::ALL.len()));
    for (label, series) in [("short", &s), ("long", &l), ("long, index removed", &f)] {
        let cells: Vec<String> = series.phase_medians().iter().map(|ms| format!("{ms:.0}")).collect();
        println!("| {label} | {:.0} | {} |", median(series.scanned.clone()), cells.join(" | "));
    }
    let (st, lt, ft) = (median(s.total.clone()), median(l.total.clone()), median(f.total.clone()));
    let (sa, la, fa) = (mean(&s.total), mean(&l.total), mean(&f.total));
    let (sm, lm, fm) = (median(s.mark), median(l.mark), median(f.mark));
    println!();
    println!("| store | compaction (median ms) | compaction (mean ms) | mark (median ms) | keys from the index |");
    println!("|---|---|---|---|---|");
    println!("| {} epochs | {st:.0} | {sa:.0} | {sm:.0} | {:.0} |", a.epochs, median(s.indexed_keys));
    println!("| {long_epochs} epochs | {lt:.0} | {la:.0} | {lm:.0} | {:.0} |", median(l.indexed_keys));
    println!("| {long_epochs} epochs, index removed | {ft:.0} | {fa:.0} | {fm:.0} | 0 |");
    println!();
    println!(
        "long / short: compaction {:.2}× (median), {:.2}× (mean), mark {:.2}×; long without / with the index: \
         compaction {:.2}× (median), {:.2}× (mean), mark {:.2}×",
        lt / st,
        la / sa,
        lm / sm.max(1.0),
        ft / lt,
        fa / la,
        fm / lm.max(1.0)
    );
    Ok(())
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("chain_length: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("chain_length: {e}");
            ExitCode::FAILURE
        }
    }
}
