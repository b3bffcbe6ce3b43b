//! Compaction on disk (fjall), on a synthetic mainnet-shaped chain of about `N` hot blocks:
//!
//! 1. `phases`: each phase of a compaction (universal and discard mode, purge pacing off)
//!    against the raw KV cost of the same I/O, measured in the same run on an identical copy
//!    of the store; finish + reclaim timed apart.
//! 2. `mark`: mark throughput from a warm store with one and two read threads, and the raw
//!    `get_many` rates behind it. The store is read as opened, its memtable refilled from the
//!    journal; with `--flush-memtable`, after its memtable was written out (`Kv::reclaim`,
//!    which merges nothing in a store without deletions). With `--kept-graph`, the store keeps
//!    the graph (`Config::kept_graph_bytes`): the first compaction records it and finishes, and
//!    a second from the same head marks from it.
//! 3. `foreground`: latency of a fixed-rate get/put mix while the purge runs with its default
//!    pacing, against the same mix on the same store when idle.
//! 4. `recovery`: `splitstore compact` killed early, midway and late in its purge; time to
//!    open the store (recovery finishes the purge) against the dead entries left.
//! 5. `info`: `info` (constant time: counters and the backends' estimates) against `count`
//!    (a scan of every value, what `info` cost before it kept counters).
//! 6. `scale`: `splitstore compact` of the whole store in discard and in universal mode, each in
//!    its own process: phase times, mark set size and the process's peak resident memory. Not
//!    part of `all`; run it at several `--objects` to see how each phase grows.
//!
//! `cargo bench -p splitstore-native --bench disk_compaction -- [--objects N] [--runs R]
//! [--section all|phases|mark|foreground|recovery|info|scale] [--flush-memtable] [--kept-graph]`
//! (defaults: 1,000,000 objects, 3 runs, all; `phases` also runs `mark`; a universal run costs about three discard runs, so section 1 runs
//! discard mode R times and universal mode ⌈R/3⌉ times). Stores live in a temporary directory under Cargo's target
//! directory (on disk, not tmpfs), deleted at the end. Prints medians of the runs, ratios, and
//! a markdown summary last.

// The compaction threads return the core's `Error`, which holds CIDs by value.
#![allow(clippy::result_large_err)]

mod disk;

use std::{process::ExitCode, time::Instant};

use disk::{
    fixture::{Fixture, LiveSet, FINALITY},
    scale::section_scale,
    sections::{section_foreground, section_info, section_mark, section_phases, section_recovery},
    stats::mib,
    BenchResult,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Section {
    All,
    Phases,
    Mark,
    Foreground,
    Recovery,
    Info,
    Scale,
}

#[derive(Debug)]
struct Args {
    objects: u64,
    runs: usize,
    section: Section,
    /// The mark section reads a store whose memtable was written out first.
    flush_memtable: bool,
    /// The mark section keeps the graph and times a second compaction's mark from it.
    kept_graph: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args =
        Args { objects: 1_000_000, runs: 3, section: Section::All, flush_memtable: false, kept_graph: false };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--objects" => args.objects = value("--objects")?.parse().map_err(|e| format!("--objects: {e}"))?,
            "--runs" => args.runs = value("--runs")?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--section" => {
                args.section = match value("--section")?.as_str() {
                    "all" => Section::All,
                    "phases" => Section::Phases,
                    "mark" => Section::Mark,
                    "foreground" => Section::Foreground,
                    "recovery" => Section::Recovery,
                    "info" => Section::Info,
                    "scale" => Section::Scale,
                    s => {
                        return Err(format!(
                            "--section {s:?}: expected all, phases, mark, foreground, recovery, info or scale"
                        ))
                    }
                }
            }
            "--flush-memtable" => args.flush_memtable = true,
            "--kept-graph" => args.kept_graph = true,
            // Cargo passes `--bench` to every bench binary.
            "--bench" => {}
            s => return Err(format!("unknown argument {s:?}")),
        }
    }
    if args.runs == 0 || args.objects == 0 {
        return Err("--objects and --runs must be positive".into());
    }
    Ok(args)
}

fn main() -> ExitCode {
    match parse_args().map_err(Into::into).and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> BenchResult<()> {
    let start = Instant::now();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "disk compaction bench: {} objects, {} runs, section {:?}; {cores} cores, load average {}",
        args.objects,
        args.runs,
        args.section,
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    let tmp = tempfile::Builder::new().prefix("disk-compaction-").tempdir_in(env!("CARGO_TARGET_TMPDIR"))?;
    let fx = Fixture::build(tmp.path(), args.objects)?;
    println!(
        "chain: {} epochs, {} blocks ({:.0} MiB), head epoch {}, {} actors, finality {}; repo {:.0} MiB on \
         disk under {}; built in {:.1} s\n",
        fx.epochs,
        fx.blocks,
        mib(fx.bytes),
        fx.head_height,
        fx.actors,
        FINALITY,
        mib(fx.disk_bytes),
        tmp.path().display(),
        fx.build_secs
    );
    let mut summary = vec![format!(
        "{} blocks ({:.0} MiB; {:.0} MiB on disk), {} epochs, finality {FINALITY}; {} runs; {cores} cores, \
         load average {}",
        fx.blocks,
        mib(fx.bytes),
        mib(fx.disk_bytes),
        fx.epochs,
        args.runs,
        load.split_whitespace().next().unwrap_or("?")
    )];
    let mut live: Option<LiveSet> = None;
    let mut cold_mark: Vec<f64> = Vec::new();
    let mut batch_secs = None;
    let s = args.section;
    if matches!(s, Section::All | Section::Phases) {
        batch_secs = Some(section_phases(&fx, args.runs, &mut live, &mut cold_mark, &mut summary)?);
    }
    if matches!(s, Section::All | Section::Phases | Section::Mark) {
        let live = live_set(&fx, &mut live)?;
        section_mark(&fx, live, &cold_mark, args.flush_memtable, args.kept_graph, &mut summary)?;
    }
    if matches!(s, Section::All | Section::Foreground) {
        let live = live_set(&fx, &mut live)?;
        section_foreground(&fx, live, batch_secs, &mut summary)?;
    }
    if matches!(s, Section::All | Section::Recovery) {
        section_recovery(&fx, &mut summary)?;
    }
    if matches!(s, Section::All | Section::Info) {
        section_info(&fx, &mut summary)?;
    }
    if s == Section::Scale {
        section_scale(&fx, &mut summary)?;
    }
    println!("\n== summary (markdown) ==\n");
    for line in &summary {
        println!("{line}");
    }
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "\nbench took {:.0} s; load average at the end {}",
        start.elapsed().as_secs_f64(),
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    Ok(())
}

fn live_set<'a>(fx: &Fixture, live: &'a mut Option<LiveSet>) -> BenchResult<&'a LiveSet> {
    if live.is_none() {
        *live = Some(LiveSet::compute(fx)?);
    }
    live.as_ref().ok_or_else(|| "no live set".into())
}
