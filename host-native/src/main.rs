//! `splitstore`: a hot/cold Filecoin block store with online compaction, on disk.
//!
//! Exit status: 0 on success, 1 on any error (and when `check` finds live objects missing),
//! 2 for a malformed command line.
// Errors carry the core's `Error`, which holds CIDs by value; errors are the cold path.
#![allow(clippy::result_large_err)]

use std::{
    io::Write,
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::{Parser, Subcommand, ValueEnum};
use futures::executor::block_on;
use splitstore_core::{config::Trigger, import::HeadPolicy, Mode, PendingCompaction};
use splitstore_native::{
    demo::{self, DemoOptions},
    errors::HostError,
    ops::{self, OpError, OpenStore, Which},
    output::{self, DiskUsage},
    progress,
    repo::{Repo, RepoConfig},
};
use tracing_subscriber::EnvFilter;

#[derive(Parser, Debug)]
#[command(name = "splitstore", version, about = "A hot/cold Filecoin block store with online compaction")]
struct Cli {
    /// The repo directory (config.toml, lock, hot/ and cold/ stores).
    #[arg(long, global = true, value_name = "DIR")]
    repo: Option<PathBuf>,
    /// More log output (-v info, -vv debug, -vvv trace); RUST_LOG overrides.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    verbose: u8,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum ModeArg {
    Discard,
    Universal,
    Messages,
}

impl From<ModeArg> for Mode {
    fn from(m: ModeArg) -> Mode {
        match m {
            ModeArg::Discard => Mode::Discard,
            ModeArg::Universal => Mode::Universal,
            ModeArg::Messages => Mode::Messages,
        }
    }
}

/// What `import` does with roots that are block headers.
#[derive(Clone, Copy, Debug, ValueEnum)]
enum HeadArg {
    /// Move the head when the store has none, or when the roots extend the current head.
    Extend,
    /// Move the head whatever the current one is: the file is trusted.
    Apply,
    /// Never move the head: the file is not trusted.
    Keep,
}

impl From<HeadArg> for HeadPolicy {
    fn from(h: HeadArg) -> HeadPolicy {
        match h {
            HeadArg::Extend => HeadPolicy::Extend,
            HeadArg::Apply => HeadPolicy::Apply,
            HeadArg::Keep => HeadPolicy::Keep,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum StoreArg {
    Hot,
    Cold,
    All,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a repo and write DIR/config.toml.
    Init {
        /// What compaction does with blocks leaving the hot store.
        #[arg(long, value_enum, default_value = "discard")]
        mode: ModeArg,
        /// Finality F, in epochs.
        #[arg(long, default_value_t = 900)]
        finality: i64,
        /// Messages and receipts stay hot this many finalities below the boundary.
        #[arg(long, default_value_t = 0)]
        message_retention: i64,
        /// Compact when the head is this many finalities past the base epoch.
        #[arg(long, default_value_t = 5)]
        threshold_finalities: i64,
        /// State younger than this many finalities stays hot.
        #[arg(long, default_value_t = 4)]
        boundary_finalities: i64,
        /// Heads older than this many seconds are out of sync (0 = no check).
        #[arg(long, default_value_t = 60)]
        sync_gap_secs: u64,
    },
    /// Stream a CARv1 or CARv2 file into the hot store; block-header roots become the head
    /// when they extend the current one (see --head).
    Import {
        /// The CAR file.
        file: PathBuf,
        /// When the roots become the head.
        #[arg(long, value_enum, default_value = "extend")]
        head: HeadArg,
    },
    /// Apply a head change: the tipset of these header CIDs becomes the head.
    Head {
        /// Header CIDs of the new head tipset.
        #[arg(required = true)]
        cids: Vec<String>,
    },
    /// Compact now against the current head.
    Compact,
    /// Head, base epoch, compactions, hot and cold sizes, compaction state.
    Info {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Walk the live set from the head and count hot, cold and missing objects.
    Check {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write every block of a store to a CARv1 file.
    Export {
        /// The file to write (replaced only once complete).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Which store.
        #[arg(long, value_enum, default_value = "all")]
        store: StoreArg,
    },
    /// Write a block's bytes to stdout.
    Get {
        /// The block's CID.
        cid: String,
    },
    /// Grow a synthetic chain and watch compactions keep the hot store bounded.
    Demo {
        /// Epochs to generate.
        #[arg(long, default_value_t = DemoOptions::default().epochs)]
        epochs: u64,
        /// Compaction mode.
        #[arg(long, value_enum, default_value = "universal")]
        mode: ModeArg,
        /// Finality F, in epochs.
        #[arg(long, default_value_t = DemoOptions::default().finality)]
        finality: i64,
        /// Actors in the synthetic state tree.
        #[arg(long, default_value_t = DemoOptions::default().state_objects)]
        state_objects: usize,
        /// Generator seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Minimum milliseconds per epoch (0 = as fast as possible).
        #[arg(long, default_value_t = DemoOptions::default().epoch_ms)]
        epoch_ms: u64,
    },
    /// Add a synthetic chain to an empty repo without compacting (for tests and benchmarks).
    Generate {
        /// Epochs to generate.
        #[arg(long)]
        epochs: u64,
        /// Actors in the synthetic state tree.
        #[arg(long, default_value_t = 2000)]
        state_objects: usize,
        /// Generator seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
}

/// A command's failure, or `check`'s verdict.
enum Failure {
    Op(OpError),
    Missing(u64),
    Usage(String),
}

impl From<OpError> for Failure {
    fn from(e: OpError) -> Self {
        Failure::Op(e)
    }
}

impl From<HostError> for Failure {
    fn from(e: HostError) -> Self {
        Failure::Op(OpError::Host(e))
    }
}

impl From<splitstore_core::Error> for Failure {
    fn from(e: splitstore_core::Error) -> Self {
        Failure::Op(OpError::Store(e))
    }
}

fn io_failure(e: std::io::Error) -> Failure {
    HostError::io("write", "stdout", e).into()
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).try_init();
}

fn repo_dir(cli: &Cli) -> Result<&Path, Failure> {
    cli.repo.as_deref().ok_or_else(|| Failure::Usage("this command needs --repo DIR".into()))
}

fn disk_usage(open: &OpenStore) -> Result<DiskUsage, Failure> {
    let kv = |store: &'static str, e| Failure::Op(OpError::Host(HostError::Kv { store, source: e }));
    Ok(DiskUsage {
        hot_disk: open.store.hot().disk_bytes().map_err(|e| kv("hot", e))?,
        hot_journal: open.store.hot().journal_bytes().map_err(|e| kv("hot", e))?,
        cold_disk: open.store.cold().disk_bytes().map_err(|e| kv("cold", e))?,
    })
}

/// Runs a compaction in the foreground with a bar per phase, and prints its report. The
/// repository lock keeps every other process out, so no node computes state meanwhile and no
/// later head will come: the purge does not wait for one.
fn run_compaction(open: &OpenStore, pending: PendingCompaction, out: &mut dyn Write) -> Result<(), Failure> {
    let mp = progress::multi();
    let bars = progress::PhaseBars::new(&mp);
    let result = block_on(open.store.run_compaction(pending.without_head_wait(), &bars));
    bars.finish();
    let report = result?;
    write!(out, "{}", output::compaction_text(&report)).map_err(io_failure)
}

fn run(cli: &Cli, out: &mut dyn Write) -> Result<(), Failure> {
    match &cli.command {
        Command::Init {
            mode,
            finality,
            message_retention,
            threshold_finalities,
            boundary_finalities,
            sync_gap_secs,
        } => {
            let dir = repo_dir(cli)?;
            let config = RepoConfig {
                mode: Mode::from(*mode).as_str().into(),
                finality: *finality,
                message_retention: *message_retention,
                threshold_finalities: *threshold_finalities,
                boundary_finalities: *boundary_finalities,
                sync_gap_secs: *sync_gap_secs,
                ..RepoConfig::default()
            };
            Repo::init(dir, config)?;
            writeln!(out, "initialised {}", Repo::config_path(dir).display()).map_err(io_failure)
        }
        Command::Import { file, head } => {
            let open = OpenStore::open(repo_dir(cli)?)?;
            let mp = progress::multi();
            let bar = progress::bytes_bar(&mp, 0, "import");
            let result = ops::import_file(&open.store, file, (*head).into(), Some(&bar));
            bar.finish_and_clear();
            let report = match result {
                Ok(r) => r,
                Err(e) => {
                    open.close()?;
                    return Err(e.into());
                }
            };
            writeln!(
                out,
                "imported {} blocks ({}) from {}",
                report.blocks,
                output::human_bytes(report.bytes),
                file.display()
            )
            .map_err(io_failure)?;
            if report.head_applied {
                let info = block_on(open.store.info())?;
                writeln!(out, "head is now epoch {}", info.head_epoch.unwrap_or_default()).map_err(io_failure)?;
            } else if let Some(why) = &report.head_skipped {
                writeln!(out, "the head is unchanged: {why}").map_err(io_failure)?;
            }
            if let Some(p) = report.compaction {
                run_compaction(&open, p, out)?;
            }
            open.close()?;
            Ok(())
        }
        Command::Head { cids } => {
            let cids = cids.iter().map(|c| ops::parse_cid(c)).collect::<Result<Vec<_>, _>>()?;
            let open = OpenStore::open(repo_dir(cli)?)?;
            let outcome = block_on(open.store.head_change_outcome(&[], &[cids]))?;
            let info = block_on(open.store.info())?;
            writeln!(out, "head is now epoch {}", info.head_epoch.unwrap_or_default()).map_err(io_failure)?;
            let why = match outcome.trigger {
                Trigger::Compact(_) => "compaction due",
                Trigger::Busy => "no compaction: one is already running",
                Trigger::OutOfSync => "no compaction: the head is older than the sync gap",
                Trigger::NearUpgrade => "no compaction: within one finality of a network upgrade",
                Trigger::NotDue => "no compaction: the threshold is not reached",
            };
            writeln!(out, "{why}").map_err(io_failure)?;
            if let Some(p) = outcome.compaction {
                run_compaction(&open, p, out)?;
            }
            open.close()?;
            Ok(())
        }
        Command::Compact => {
            let open = OpenStore::open(repo_dir(cli)?)?;
            let pending = open.store.begin_compaction()?;
            run_compaction(&open, pending, out)?;
            open.close()?;
            Ok(())
        }
        Command::Info { json } => {
            let open = OpenStore::open(repo_dir(cli)?)?;
            let info = block_on(open.store.info())?;
            let disk = disk_usage(&open)?;
            if *json {
                writeln!(out, "{}", output::info_json(&info, &disk)).map_err(io_failure)?;
            } else {
                write!(out, "{}", output::info_text(&info, &disk)).map_err(io_failure)?;
            }
            open.close()?;
            Ok(())
        }
        Command::Check { json } => {
            let open = OpenStore::open(repo_dir(cli)?)?;
            let report = block_on(open.store.check())?;
            if *json {
                writeln!(out, "{}", output::check_json(&report)).map_err(io_failure)?;
            } else {
                write!(out, "{}", output::check_text(&report)).map_err(io_failure)?;
            }
            open.close()?;
            if report.missing > 0 {
                return Err(Failure::Missing(report.missing));
            }
            Ok(())
        }
        Command::Export { out: file, store } => {
            let open = OpenStore::open(repo_dir(cli)?)?;
            let which = match store {
                StoreArg::Hot => Which::Hot,
                StoreArg::Cold => Which::Cold,
                StoreArg::All => Which::All,
            };
            let mp = progress::multi();
            let bar = progress::count_bar(&mp, None, "export");
            let report = ops::export_car(&open.store, which, file, Some(&bar));
            bar.finish_and_clear();
            let report = report?;
            writeln!(
                out,
                "exported {} blocks ({}) to {}",
                report.blocks,
                output::human_bytes(report.bytes),
                file.display()
            )
            .map_err(io_failure)?;
            open.close()?;
            Ok(())
        }
        Command::Get { cid } => {
            let cid = ops::parse_cid(cid)?;
            let open = OpenStore::open(repo_dir(cli)?)?;
            let bytes = ops::get_block(&open.store, &cid);
            open.close()?;
            out.write_all(&bytes?).map_err(io_failure)
        }
        Command::Demo { epochs, mode, finality, state_objects, seed, epoch_ms } => {
            let opts = DemoOptions {
                dir: cli.repo.clone().unwrap_or_else(demo::default_demo_dir),
                epochs: *epochs,
                mode: (*mode).into(),
                finality: *finality,
                state_objects: *state_objects,
                seed: *seed,
                epoch_ms: *epoch_ms,
            };
            let summary = demo::run_demo(&opts, out)?;
            if summary.missing > 0 {
                return Err(Failure::Missing(summary.missing));
            }
            Ok(())
        }
        Command::Generate { epochs, state_objects, seed } => {
            let open = OpenStore::open(repo_dir(cli)?)?;
            let mp = progress::multi();
            let bar = progress::count_bar(&mp, Some(*epochs), "epochs");
            let report = demo::generate(&open.store, demo::synth_config(*seed, *state_objects), *epochs, Some(&bar));
            bar.finish_and_clear();
            let report = report?;
            open.close()?;
            writeln!(
                out,
                "generated {} epochs, {} blocks ({}); head is epoch {}",
                report.epochs,
                report.blocks,
                output::human_bytes(report.bytes),
                report.head_epoch
            )
            .map_err(io_failure)
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let result = run(&cli, &mut out);
    let _ = out.flush();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Missing(n)) => {
            eprintln!("error: {n} live objects are missing");
            ExitCode::from(1)
        }
        Err(Failure::Usage(msg)) => {
            eprintln!("error: {msg}");
            ExitCode::from(2)
        }
        Err(Failure::Op(e)) => {
            eprintln!("error: {e}");
            let mut source = std::error::Error::source(&e);
            let shown = e.to_string();
            while let Some(s) = source {
                let text = s.to_string();
                if !shown.contains(&text) {
                    eprintln!("  caused by: {text}");
                }
                source = s.source();
            }
            ExitCode::from(1)
        }
    }
}
