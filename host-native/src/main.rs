//! `splitstore`: a hot/cold Filecoin block store with online compaction, on disk.
//!
//! Exit status: see [`EXIT_CODES`].
// Errors carry the core's `Error`, which holds CIDs by value; errors are the cold path.
#![allow(clippy::result_large_err)]

use std::{
    io::{IsTerminal, Write},
    path::{Path, PathBuf},
    process::ExitCode,
};

use clap::{Parser, Subcommand, ValueEnum};
use futures::executor::block_on;
use serde::Serialize;
use splitstore_core::{config::Trigger, error::KvError, import::HeadPolicy, CompactionReport, Mode, PendingCompaction};
#[cfg(feature = "demo")]
use splitstore_native::demo::{self, DemoOptions};
use splitstore_native::{
    admin,
    errors::HostError,
    ops::{self, OpError, OpenStore, Which},
    output::{self, DiskUsage},
    progress, prometheus,
    repo::{Repo, RepoConfig},
    status::{self, HolderState},
};
use tracing_subscriber::EnvFilter;

/// The exit statuses, as `--help` prints them.
const EXIT_CODES: &str = "Exit status:
  0  success
  1  the operation failed (the error and its causes are printed)
  2  the command line is malformed, or a confirmation was refused
  3  check found live objects missing
  4  another process holds the repo (and has no status record to read)";

#[derive(Parser, Debug)]
#[command(
    name = "splitstore",
    version,
    about = "A hot/cold Filecoin block store with online compaction",
    after_help = EXIT_CODES
)]
struct Cli {
    /// The repo directory (config.toml, lock, hot/ and cold/ stores).
    #[arg(long, global = true, value_name = "DIR")]
    repo: Option<PathBuf>,
    /// Print the result as JSON (one object) instead of text.
    #[arg(long, global = true)]
    json: bool,
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

#[derive(Subcommand, Debug)]
enum PinAction {
    /// Pin these roots: their whole DAGs stay hot through every compaction, from now on.
    Add {
        /// Root CIDs.
        #[arg(required = true)]
        cids: Vec<String>,
    },
    /// Unpin these roots: the next compaction may drop what nothing else keeps.
    Rm {
        /// Root CIDs.
        #[arg(required = true)]
        cids: Vec<String>,
    },
    /// List the pinned roots.
    Ls,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum FormatArg {
    /// For people.
    Text,
    /// One JSON object.
    Json,
    /// Prometheus text exposition (for node_exporter's textfile collector).
    Prometheus,
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
        /// Disk space kept in DIR/reserve for compaction and recovery alone, MiB (0 = none).
        #[arg(long, default_value_t = 64)]
        reserve_mb: u64,
        /// Memtable size of each store, MiB; every write leaves twice this free on the disk.
        #[arg(long, default_value_t = 64)]
        memtable_mb: u64,
        /// Compact early when the hot store's blocks take this many MiB (0 = no limit).
        #[arg(long, default_value_t = 0)]
        hot_limit_mb: u64,
        /// Prune the cold store after every this many compactions (0 = only `prune`).
        #[arg(long, default_value_t = 0)]
        prune_every: u64,
        /// State retention of automatic prunes (see `prune --retention`).
        #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
        prune_retention: i64,
        /// The cold store on an S3 service, `s3://BUCKET/PREFIX?endpoint=URL` (feature `s3`;
        /// credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY). Default: DIR/cold.
        #[arg(long, value_name = "URL")]
        cold: Option<String>,
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
    /// Prune the cold store: delete old state it no longer needs to keep (universal and
    /// messages mode). Headers back to genesis, everything hot blocks link and pinned DAGs
    /// stay; then the cold store's space is returned.
    Prune {
        /// State to keep: -1 all, 0 only what the compaction boundary needs, N that and N more
        /// finalities of state roots (with their messages and receipts; messages mode keeps
        /// every message).
        #[arg(long, allow_hyphen_values = true)]
        retention: i64,
    },
    /// Head, base epoch, compactions, estimated sizes, compaction state and counters, in
    /// constant time. While another process holds the repo, its status record is shown.
    Info {
        /// Also count every block of both stores exactly (reads every value).
        #[arg(long)]
        count: bool,
        /// Output format (`--json` is `--format json`).
        #[arg(long, value_enum, default_value = "text")]
        format: FormatArg,
    },
    /// Walk the live set from the head and count hot, cold and missing objects.
    Check {
        /// Show the last check of the process holding the repo, from its status record.
        #[arg(long)]
        from_status: bool,
    },
    /// Undo the split: copy every hot block into the cold store, then delete the hot store.
    /// The cold store (DIR/cold, a fjall database) then holds every block and the repo no
    /// longer opens. Crash-safe; run it again to finish an interrupted one.
    Rollback {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
    /// Protect DAGs from every compaction (pins, kept in the hot store's metadata).
    Pin {
        #[command(subcommand)]
        action: PinAction,
    },
    /// Drop the dead list, cold list and purge record of an interrupted compaction, without
    /// opening the store (for when recovery fails). The blocks they name stay hot.
    Clear {
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
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
    #[cfg(feature = "demo")]
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
        /// Prune the cold store after every this many compactions (0 = never).
        #[arg(long, default_value_t = DemoOptions::default().prune_every)]
        prune_every: u64,
        /// State retention of those prunes (see `prune --retention`).
        #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
        prune_retention: i64,
    },
    #[cfg(feature = "demo")]
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

/// Writes `value` as one line of JSON.
fn print_json(out: &mut dyn Write, value: &impl Serialize) -> Result<(), Failure> {
    let text = serde_json::to_string(value).expect("reports serialise");
    writeln!(out, "{text}").map_err(io_failure)
}

/// Asks on the terminal; refuses when stdin is not one.
fn confirm(question: &str) -> Result<(), Failure> {
    if !std::io::stdin().is_terminal() {
        return Err(Failure::Usage(format!("{question}: pass --yes to confirm (stdin is not a terminal)")));
    }
    eprint!("{question} Type yes to go on: ");
    let mut answer = String::new();
    std::io::stdin().read_line(&mut answer).map_err(|e| HostError::io("read", "stdin", e))?;
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(Failure::Usage("not confirmed; nothing was changed".into()))
    }
}

/// Runs a compaction in the foreground with a bar per phase, and returns its report. The
/// repository lock keeps every other process out, so no node computes state meanwhile and no
/// later head will come: the purge does not wait for one.
fn run_compaction(open: &OpenStore, pending: PendingCompaction) -> Result<CompactionReport, Failure> {
    let mp = progress::multi();
    let bars = progress::PhaseBars::new(&mp);
    let result = block_on(open.store.run_compaction(pending.without_head_wait(), &open.status.progress(&bars)));
    bars.finish();
    Ok(result?)
}

/// `info` about a repo another process holds, from its status record.
fn info_from_status(dir: &Path, format: FormatArg, out: &mut dyn Write) -> Result<bool, Failure> {
    let Some(status) = status::read(dir)? else { return Ok(false) };
    let Some(snapshot) = status.snapshot.as_ref().filter(|_| status.state != HolderState::Closed) else {
        if status.state == HolderState::Opening {
            eprintln!("process {} is opening the store (recovery may be running)", status.pid);
        }
        return Ok(false);
    };
    match format {
        FormatArg::Json => {
            // The same object as from an open store, plus who wrote it and when.
            let mut v = output::info_json(&snapshot.info, &snapshot.disk.unwrap_or_default(), None);
            v["holder"] = serde_json::json!({
                "pid": status.pid,
                "state": status.state,
                "updatedMs": status.updated_ms,
                "ageMs": status.age_ms(),
            });
            writeln!(out, "{v}").map_err(io_failure)?;
        }
        FormatArg::Prometheus => write!(out, "{}", prometheus::text(snapshot)).map_err(io_failure)?,
        FormatArg::Text => {
            writeln!(
                out,
                "from the status record of process {}, updated {:.1} s ago:",
                status.pid,
                status.age_ms() as f64 / 1000.0
            )
            .map_err(io_failure)?;
            write!(out, "{}", output::info_text(&snapshot.info, &snapshot.disk.unwrap_or_default(), None))
                .map_err(io_failure)?;
        }
    }
    Ok(true)
}

fn run(cli: &Cli, out: &mut dyn Write) -> Result<(), Failure> {
    let json = cli.json;
    match &cli.command {
        Command::Init {
            mode,
            finality,
            message_retention,
            threshold_finalities,
            boundary_finalities,
            sync_gap_secs,
            reserve_mb,
            memtable_mb,
            hot_limit_mb,
            prune_every,
            prune_retention,
            cold,
        } => {
            let dir = repo_dir(cli)?;
            let config = RepoConfig {
                mode: Mode::from(*mode).as_str().into(),
                finality: *finality,
                message_retention: *message_retention,
                threshold_finalities: *threshold_finalities,
                boundary_finalities: *boundary_finalities,
                sync_gap_secs: *sync_gap_secs,
                reserve_mb: *reserve_mb,
                memtable_mb: *memtable_mb,
                hot_limit_mb: *hot_limit_mb,
                prune_every: *prune_every,
                prune_retention: *prune_retention,
                cold: cold.clone().unwrap_or_default(),
                ..RepoConfig::default()
            };
            Repo::init(dir, config)?;
            let path = Repo::config_path(dir);
            if json {
                print_json(out, &serde_json::json!({ "config": path }))
            } else {
                writeln!(out, "initialised {}", path.display()).map_err(io_failure)
            }
        }
        Command::Import { file, head } => {
            let open = OpenStore::open(repo_dir(cli)?)?;
            let mp = progress::multi();
            let bar = progress::bytes_bar(&mp, 0, "import");
            let result = ops::import_file(&open.store, file, (*head).into(), Some(&bar));
            bar.finish_and_clear();
            let mut report = match result {
                Ok(r) => r,
                Err(e) => {
                    open.close()?;
                    return Err(e.into());
                }
            };
            let head_epoch = block_on(open.store.info())?.head_epoch;
            let compaction = match report.compaction.take() {
                Some(p) => Some(run_compaction(&open, p)?),
                None => None,
            };
            open.close()?;
            if json {
                return print_json(
                    out,
                    &serde_json::json!({ "import": report, "headEpoch": head_epoch, "compaction": compaction }),
                );
            }
            writeln!(
                out,
                "imported {} blocks ({}) from {}",
                report.blocks,
                output::human_bytes(report.bytes),
                file.display()
            )
            .map_err(io_failure)?;
            if report.head_applied {
                writeln!(out, "head is now epoch {}", head_epoch.unwrap_or_default()).map_err(io_failure)?;
            } else if let Some(why) = &report.head_skipped {
                writeln!(out, "the head is unchanged: {why}").map_err(io_failure)?;
            }
            if let Some(r) = &compaction {
                write!(out, "{}", output::compaction_text(r)).map_err(io_failure)?;
            }
            Ok(())
        }
        Command::Head { cids } => {
            let cids = cids.iter().map(|c| ops::parse_cid(c)).collect::<Result<Vec<_>, _>>()?;
            let open = OpenStore::open(repo_dir(cli)?)?;
            let outcome = block_on(open.store.head_change_outcome(&[], &[cids]))?;
            let head_epoch = block_on(open.store.info())?.head_epoch;
            let why = match outcome.trigger {
                Trigger::Compact(_) => "compaction due",
                Trigger::OverSizeLimit(_) => "compaction due early: the hot store passed its size limit",
                Trigger::Busy => "no compaction: one is already running",
                Trigger::OutOfSync => "no compaction: the head is older than the sync gap",
                Trigger::NearUpgrade => "no compaction: within one finality of a network upgrade",
                Trigger::NotDue => "no compaction: the threshold is not reached",
                Trigger::Warmup => "warmup due: the hot store is empty beside a cold one",
            };
            let compaction = match outcome.compaction {
                Some(p) => Some(run_compaction(&open, p)?),
                None => None,
            };
            open.close()?;
            if json {
                return print_json(
                    out,
                    &serde_json::json!({ "headEpoch": head_epoch, "trigger": why, "compaction": compaction }),
                );
            }
            writeln!(out, "head is now epoch {}", head_epoch.unwrap_or_default()).map_err(io_failure)?;
            writeln!(out, "{why}").map_err(io_failure)?;
            if let Some(r) = &compaction {
                write!(out, "{}", output::compaction_text(r)).map_err(io_failure)?;
            }
            Ok(())
        }
        Command::Compact => {
            let open = OpenStore::open(repo_dir(cli)?)?;
            let pending = open.store.begin_compaction()?;
            let report = run_compaction(&open, pending)?;
            open.close()?;
            if json {
                print_json(out, &report)
            } else {
                write!(out, "{}", output::compaction_text(&report)).map_err(io_failure)
            }
        }
        Command::Prune { retention } => {
            let open = OpenStore::open(repo_dir(cli)?)?;
            let mp = progress::multi();
            let bars = progress::PhaseBars::new(&mp);
            let result = block_on(open.store.prune(*retention, &open.status.progress(&bars)));
            bars.finish();
            open.close()?;
            let report = result?;
            if json {
                print_json(out, &report)
            } else {
                write!(out, "{}", output::prune_text(&report)).map_err(io_failure)
            }
        }
        Command::Info { count, format } => {
            let format = if json { FormatArg::Json } else { *format };
            let dir = repo_dir(cli)?;
            let open = match OpenStore::open(dir) {
                Ok(open) => open,
                Err(OpError::Host(HostError::InUse { path })) => {
                    if *count {
                        return Err(Failure::Usage("--count needs the repo: another process holds it".into()));
                    }
                    if info_from_status(dir, format, out)? {
                        return Ok(());
                    }
                    return Err(HostError::InUse { path }.into());
                }
                Err(e) => return Err(e.into()),
            };
            let info = block_on(open.store.info())?;
            let disk = DiskUsage::of(&open.store)?;
            let counts = if *count { Some(block_on(open.store.count())?) } else { None };
            open.close()?;
            match format {
                FormatArg::Json => {
                    writeln!(out, "{}", output::info_json(&info, &disk, counts.as_ref())).map_err(io_failure)
                }
                FormatArg::Prometheus => {
                    let snapshot = prometheus::Snapshot { info, disk: Some(disk) };
                    write!(out, "{}", prometheus::text(&snapshot)).map_err(io_failure)
                }
                FormatArg::Text => {
                    write!(out, "{}", output::info_text(&info, &disk, counts.as_ref())).map_err(io_failure)
                }
            }
        }
        Command::Check { from_status } => {
            let dir = repo_dir(cli)?;
            let report = if *from_status {
                let record = status::read(dir)?.and_then(|s| s.last_check.map(|c| (s.pid, c)));
                let Some((pid, record)) = record else {
                    return Err(Failure::Usage("no check is recorded in the repo's status record".into()));
                };
                if !json {
                    let age = status::now_ms().saturating_sub(record.at_ms) as f64 / 1000.0;
                    writeln!(out, "the last check of process {pid}, {age:.1} s ago:").map_err(io_failure)?;
                }
                record.report
            } else {
                let open = OpenStore::open(dir)?;
                let report = block_on(open.store.check());
                if let Ok(r) = &report {
                    open.status.record_check(r);
                }
                open.close()?;
                report?
            };
            if json {
                writeln!(out, "{}", output::check_json(&report)).map_err(io_failure)?;
            } else {
                write!(out, "{}", output::check_text(&report)).map_err(io_failure)?;
            }
            if report.missing > 0 {
                return Err(Failure::Missing(report.missing));
            }
            Ok(())
        }
        Command::Rollback { yes } => {
            let dir = repo_dir(cli)?;
            if !*yes {
                confirm(&format!(
                    "Rollback copies every hot block of {} into its cold store and deletes the hot store; \
                     the repo will no longer open as a split store.",
                    dir.display()
                ))?;
            }
            let mp = progress::multi();
            let bar = progress::count_bar(&mp, None, "copy");
            let report = admin::rollback(dir, |n| bar.set_position(n));
            bar.finish_and_clear();
            let report = report?;
            if json {
                return print_json(out, &report);
            }
            writeln!(
                out,
                "copied {} hot blocks ({}); every block is now in {}",
                report.copied,
                output::human_bytes(report.bytes),
                report.store
            )
            .map_err(io_failure)
        }
        Command::Clear { yes } => {
            let dir = repo_dir(cli)?;
            let found = admin::clear(dir, true)?;
            if found.is_empty() {
                return if json {
                    print_json(out, &found)
                } else {
                    writeln!(out, "no interrupted compaction: nothing to clear").map_err(io_failure)
                };
            }
            if !*yes {
                confirm(&format!(
                    "Drop {} dead-list and {} cold-list entries{}? The blocks they name stay in the hot store.",
                    found.dead_entries,
                    found.cold_list_entries,
                    if found.purge_record { " and the record of an interrupted purge" } else { "" }
                ))?;
            }
            let report = admin::clear(dir, false)?;
            if json {
                return print_json(out, &report);
            }
            writeln!(
                out,
                "cleared {} dead-list and {} cold-list entries{}",
                report.dead_entries,
                report.cold_list_entries,
                if report.purge_record { " and the purge record" } else { "" }
            )
            .map_err(io_failure)
        }
        Command::Pin { action } => {
            let parse = |cids: &[String]| cids.iter().map(|c| ops::parse_cid(c)).collect::<Result<Vec<_>, _>>();
            let open = OpenStore::open(repo_dir(cli)?)?;
            let done = match action {
                PinAction::Add { cids } => {
                    block_on(open.store.protect(&parse(cids)?)).map(|()| Some(("pinned", cids.len())))
                }
                PinAction::Rm { cids } => {
                    block_on(open.store.unprotect(&parse(cids)?)).map(|()| Some(("unpinned", cids.len())))
                }
                PinAction::Ls => Ok(None),
            };
            let pinned: Vec<String> = open.store.protected().iter().map(ToString::to_string).collect();
            open.close()?;
            let done = done?;
            if json {
                return print_json(out, &serde_json::json!({ "pinned": pinned }));
            }
            match done {
                Some((what, n)) => writeln!(out, "{what} {n}; {} roots pinned", pinned.len()).map_err(io_failure),
                None => pinned.iter().try_for_each(|c| writeln!(out, "{c}").map_err(io_failure)),
            }
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
            open.close()?;
            let report = report?;
            if json {
                return print_json(out, &report);
            }
            writeln!(
                out,
                "exported {} blocks ({}) to {}",
                report.blocks,
                output::human_bytes(report.bytes),
                file.display()
            )
            .map_err(io_failure)
        }
        Command::Get { cid } => {
            if json {
                return Err(Failure::Usage("get writes the block's raw bytes; --json does not apply".into()));
            }
            let cid = ops::parse_cid(cid)?;
            let open = OpenStore::open(repo_dir(cli)?)?;
            let bytes = ops::get_block(&open.store, &cid);
            open.close()?;
            out.write_all(&bytes?).map_err(io_failure)
        }
        #[cfg(feature = "demo")]
        Command::Demo { epochs, mode, finality, state_objects, seed, epoch_ms, prune_every, prune_retention } => {
            let opts = DemoOptions {
                dir: cli.repo.clone().unwrap_or_else(demo::default_demo_dir),
                epochs: *epochs,
                mode: (*mode).into(),
                finality: *finality,
                state_objects: *state_objects,
                seed: *seed,
                epoch_ms: *epoch_ms,
                prune_every: *prune_every,
                prune_retention: *prune_retention,
            };
            let summary = if json {
                let summary = demo::run_demo(&opts, &mut std::io::sink())?;
                print_json(out, &summary)?;
                summary
            } else {
                demo::run_demo(&opts, out)?
            };
            if summary.missing > 0 {
                return Err(Failure::Missing(summary.missing));
            }
            Ok(())
        }
        #[cfg(feature = "demo")]
        Command::Generate { epochs, state_objects, seed } => {
            let open = OpenStore::open(repo_dir(cli)?)?;
            let mp = progress::multi();
            let bar = progress::count_bar(&mp, Some(*epochs), "epochs");
            let report = demo::generate(&open.store, demo::synth_config(*seed, *state_objects), *epochs, Some(&bar));
            bar.finish_and_clear();
            let report = report?;
            open.close()?;
            if json {
                return print_json(out, &report);
            }
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

/// True when a full disk is the cause of `e`, at any depth.
fn is_disk_full(e: &OpError) -> bool {
    let mut next: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = next {
        if matches!(err.downcast_ref::<KvError>(), Some(KvError::QuotaExceeded { .. }))
            || err.downcast_ref::<std::io::Error>().is_some_and(splitstore_native::errors::is_disk_full)
        {
            return true;
        }
        next = err.source();
    }
    false
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
            ExitCode::from(3)
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
            if is_disk_full(&e) {
                let repo = cli.repo.as_deref().map_or_else(|| "DIR".into(), |p| p.display().to_string());
                eprintln!(
                    "next step: `splitstore --repo {repo} compact` frees space; it may use the space kept in \
                     {repo}/reserve. If it cannot, free space on the disk (or raise reserve_mb in \
                     {repo}/config.toml for next time) and run it again"
                );
            }
            match e {
                OpError::Host(HostError::InUse { .. }) => ExitCode::from(4),
                _ => ExitCode::from(1),
            }
        }
    }
}
