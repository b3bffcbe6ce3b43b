//! The repo directory: one place for everything a store keeps on disk.
//!
//! ```text
//! DIR/config.toml   settings (written once by `init`, read on every open)
//! DIR/lock          held with an exclusive advisory lock while a process uses the repo
//! DIR/hot/          the hot store (fjall), including its metadata and durable lists
//! DIR/cold/         the cold store (fjall)
//! ```
//!
//! The lock is taken before anything else is read, and released by the operating system when
//! the process ends, however it ends: a killed process never leaves a stale lock.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
};

use serde::{Deserialize, Serialize};
use splitstore_core::{config::Config, Mode};

use crate::{
    backend::NativeKv,
    errors::HostError,
    kv::{FjallKv, KvOptions},
    space::DiskSpace,
};

/// The settings in `config.toml`. Every field is optional in the file; missing ones take the
/// reference defaults. Unknown fields are rejected (a typo must not be silently ignored).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RepoConfig {
    /// `discard`, `universal` or `messages`.
    pub mode: String,
    /// Finality F in epochs.
    pub finality: i64,
    /// Compact when the head is this many finalities past the base epoch.
    pub threshold_finalities: i64,
    /// State younger than this many finalities stays hot.
    pub boundary_finalities: i64,
    /// Messages and receipts stay hot this many finalities below the boundary.
    pub message_retention: i64,
    /// A head older than this many seconds is out of sync; 0 disables the check.
    pub sync_gap_secs: u64,
    /// A head younger than this many seconds is back in sync.
    pub sync_wait_secs: u64,
    /// No automatic compaction within ±F of these epochs.
    pub upgrade_epochs: Vec<i64>,
    /// Record missing state inside the boundary instead of failing the compaction.
    pub lenient_state: bool,
    /// Objects per compaction batch.
    pub batch_size: usize,
    /// Check every block's hash when it is written.
    pub verify_puts: bool,
    /// Block cache of the hot store, MiB.
    pub hot_cache_mb: u64,
    /// Block cache of the cold store, MiB.
    pub cold_cache_mb: u64,
    /// Memtable size of each store, MiB: writes are gathered in memory up to this size before
    /// they are written out as a table. Every write leaves twice this (and a MiB) free on the
    /// disk. Applies to stores created after it is set.
    pub memtable_mb: u64,
    /// Disk space held in `DIR/reserve` for compaction and recovery alone, MiB: when the disk
    /// fills, other writes are refused before it and a compaction releases it (0: none).
    pub reserve_mb: u64,
    /// Compact early (once a tenth of a finality has passed since the last compaction's head)
    /// when the hot store's blocks take this many MiB on disk (0: no limit).
    pub hot_limit_mb: u64,
    /// Prune the cold store after every this many compactions (0: only `splitstore prune`).
    pub prune_every: u64,
    /// The state retention of automatic prunes, in finalities beyond the compaction boundary
    /// (negative: keep all state).
    pub prune_retention: i64,
    /// Reify (reads through `SplitStore::hot_view`): the most objects the cold part of a DAG
    /// may have to be copied into hot (0: reify off).
    pub reify_limit: usize,
    /// Reify: the most DAG roots waiting to be copied.
    pub reify_queue: usize,
    /// The most memory, MiB, the kept graph may hold between compactions: the links of the
    /// blocks a compaction's walk loaded and of those written since, so that the next one
    /// marks them without reading them (about 60 bytes per object; 0, the default: off).
    pub kept_graph_mb: usize,
    /// The most memory, MiB, the hot key list may hold between compactions: the keys of the
    /// hot blocks but final headers, so that collect visits them instead of scanning the hot
    /// store (32 bytes per key; 0, the default: off).
    pub hot_key_list_mb: usize,
    /// Where the cold store is: empty for `DIR/cold` (fjall), or `s3://BUCKET/PREFIX?endpoint=URL`
    /// for an S3 service (the `s3` feature; credentials from `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY`; the locator in `DIR/cold`).
    pub cold: String,
}

impl Default for RepoConfig {
    fn default() -> Self {
        let c = Config::default();
        Self {
            mode: c.mode.as_str().into(),
            finality: c.finality,
            threshold_finalities: c.threshold_finalities,
            boundary_finalities: c.boundary_finalities,
            message_retention: c.message_retention,
            sync_gap_secs: c.sync_gap_secs.unwrap_or(0),
            sync_wait_secs: c.sync_wait_secs,
            upgrade_epochs: c.upgrade_epochs,
            lenient_state: c.lenient_state,
            batch_size: c.batch_size,
            verify_puts: true,
            hot_cache_mb: 256,
            cold_cache_mb: 64,
            memtable_mb: 64,
            reserve_mb: 64,
            hot_limit_mb: 0,
            prune_every: 0,
            prune_retention: c.prune_retention,
            reify_limit: c.reify_limit,
            reify_queue: c.reify_queue,
            kept_graph_mb: c.kept_graph_bytes >> 20,
            hot_key_list_mb: c.hot_key_list_bytes >> 20,
            cold: String::new(),
        }
    }
}

impl RepoConfig {
    /// The core's configuration, validated. `detail` of the error names the bad field.
    pub fn to_core(&self) -> Result<Config, String> {
        let mode = Mode::parse(&self.mode)
            .ok_or_else(|| format!("mode {:?} is not one of discard, universal, messages", self.mode))?;
        let c = Config {
            mode,
            finality: self.finality,
            threshold_finalities: self.threshold_finalities,
            boundary_finalities: self.boundary_finalities,
            message_retention: self.message_retention,
            sync_gap_secs: (self.sync_gap_secs > 0).then_some(self.sync_gap_secs),
            sync_wait_secs: self.sync_wait_secs,
            upgrade_epochs: self.upgrade_epochs.clone(),
            lenient_state: self.lenient_state,
            batch_size: self.batch_size,
            verify_puts: self.verify_puts,
            hot_size_limit: (self.hot_limit_mb > 0).then_some(self.hot_limit_mb << 20),
            prune_every: (self.prune_every > 0).then_some(self.prune_every),
            prune_retention: self.prune_retention,
            reify_limit: self.reify_limit,
            reify_queue: self.reify_queue,
            kept_graph_bytes: self.kept_graph_mb.saturating_mul(1 << 20),
            hot_key_list_bytes: self.hot_key_list_mb.saturating_mul(1 << 20),
            ..Config::default()
        };
        c.validate().map_err(|e| e.to_string())?;
        if self.hot_cache_mb == 0 || self.cold_cache_mb == 0 {
            return Err("cache sizes must be at least 1 MiB".into());
        }
        if self.memtable_mb == 0 {
            return Err("memtable_mb must be at least 1".into());
        }
        self.cold_location()?;
        Ok(c)
    }

    /// The S3 location of the cold store, if it is on S3 (`cold`).
    #[cfg(feature = "s3")]
    pub fn cold_location(&self) -> Result<Option<crate::s3::S3Location>, String> {
        match self.cold.as_str() {
            "" => Ok(None),
            url => crate::s3::S3Location::parse(url).map(Some).map_err(|e| format!("cold: {e}")),
        }
    }

    /// Without the `s3` feature a cold store is always `DIR/cold`.
    #[cfg(not(feature = "s3"))]
    pub fn cold_location(&self) -> Result<Option<std::convert::Infallible>, String> {
        match self.cold.as_str() {
            "" => Ok(None),
            url => Err(format!("cold = {url:?} needs splitstore built with the s3 feature")),
        }
    }

    /// Parses `config.toml` text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let c: RepoConfig = toml::from_str(text).map_err(|e| e.to_string().trim_end().to_string())?;
        c.to_core()?;
        Ok(c)
    }

    /// The text `init` writes.
    pub fn to_toml(&self) -> String {
        let body = toml::to_string_pretty(self).unwrap_or_default();
        format!(
            "# splitstore repo configuration. Epoch counts are chain epochs; sync_gap_secs = 0\n\
             # disables the out-of-sync check. Changes take effect on the next open.\n{body}"
        )
    }
}

/// Writes `bytes` to `path` so that a crash leaves either the old file or the new one: write a
/// temporary file beside it, fsync it, rename it over `path`, fsync the directory.
pub fn write_file_atomic(path: &Path, bytes: &[u8]) -> Result<(), HostError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp_name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    tmp_name.push(".tmp");
    let tmp = dir.join(tmp_name);
    let mut f = File::create(&tmp).map_err(|e| HostError::io("create", &tmp, e))?;
    f.write_all(bytes).map_err(|e| HostError::io("write", &tmp, e))?;
    f.sync_all().map_err(|e| HostError::io("fsync", &tmp, e))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(|e| HostError::io("rename", path, e))?;
    sync_dir(dir)
}

/// Makes a directory's entries (creations, renames) durable.
pub fn sync_dir(dir: &Path) -> Result<(), HostError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| HostError::io("fsync directory", dir, e))
}

/// An open repo: its lock is held for as long as this value lives.
#[derive(Debug)]
pub struct Repo {
    dir: PathBuf,
    config: RepoConfig,
    _lock: File,
}

impl Repo {
    /// `DIR/config.toml`.
    pub fn config_path(dir: &Path) -> PathBuf {
        dir.join("config.toml")
    }

    fn lock(dir: &Path) -> Result<File, HostError> {
        let path = dir.join("lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| HostError::io("open", &path, e))?;
        match f.try_lock() {
            Ok(()) => Ok(f),
            Err(std::fs::TryLockError::WouldBlock) => Err(HostError::InUse { path }),
            Err(std::fs::TryLockError::Error(e)) => Err(HostError::io("lock", &path, e)),
        }
    }

    /// Creates a repo in `dir` (creating the directory if needed) and opens it.
    pub fn init(dir: &Path, config: RepoConfig) -> Result<Self, HostError> {
        let cfg_path = Self::config_path(dir);
        config.to_core().map_err(|detail| HostError::BadConfig { path: cfg_path.clone(), detail })?;
        std::fs::create_dir_all(dir).map_err(|e| HostError::io("create directory", dir, e))?;
        let lock = Self::lock(dir)?;
        if cfg_path.exists() {
            return Err(HostError::AlreadyInitialised { path: dir.to_path_buf() });
        }
        for sub in ["hot", "cold"] {
            let p = dir.join(sub);
            std::fs::create_dir_all(&p).map_err(|e| HostError::io("create directory", &p, e))?;
        }
        // config.toml is written last: its presence is what makes the directory a repo.
        write_file_atomic(&cfg_path, config.to_toml().as_bytes())?;
        Ok(Self { dir: dir.to_path_buf(), config, _lock: lock })
    }

    /// Opens the repo in `dir`, taking its lock and reading its configuration. A repo whose
    /// split was undone ([`crate::admin::rollback`]) is refused.
    pub fn open(dir: &Path) -> Result<Self, HostError> {
        let repo = Self::open_any(dir)?;
        if dir.join(crate::admin::ROLLED_BACK).exists() {
            return Err(HostError::RolledBack { path: dir.join("cold") });
        }
        Ok(repo)
    }

    /// [`Repo::open`], also for a rolled-back repo.
    pub(crate) fn open_any(dir: &Path) -> Result<Self, HostError> {
        let cfg_path = Self::config_path(dir);
        if !cfg_path.is_file() {
            return Err(HostError::NotARepo { path: dir.to_path_buf() });
        }
        let lock = Self::lock(dir)?;
        let text = std::fs::read(&cfg_path).map_err(|e| HostError::io("read", &cfg_path, e))?;
        let text = String::from_utf8(text)
            .map_err(|_| HostError::BadConfig { path: cfg_path.clone(), detail: "not UTF-8 text".into() })?;
        let config = RepoConfig::parse(&text).map_err(|detail| HostError::BadConfig { path: cfg_path, detail })?;
        Ok(Self { dir: dir.to_path_buf(), config, _lock: lock })
    }

    /// The repo directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The settings read at open.
    pub fn config(&self) -> &RepoConfig {
        &self.config
    }

    /// The core's configuration.
    pub fn core_config(&self) -> Result<Config, HostError> {
        self.config.to_core().map_err(|detail| HostError::BadConfig { path: Self::config_path(&self.dir), detail })
    }

    /// Opens the hot and cold stores, which share one free-space policy and one reserve (on
    /// S3, the cold store's locator takes part in them).
    pub fn open_stores(&self) -> Result<(NativeKv, NativeKv), HostError> {
        let mut base = KvOptions { memtable_bytes: self.config.memtable_mb << 20, ..KvOptions::default() };
        base.disk = Some(Arc::new(DiskSpace::new(&self.dir, base.headroom(), self.config.reserve_mb << 20)));
        let hot = FjallKv::open(
            &self.dir.join("hot"),
            &KvOptions { cache_bytes: self.config.hot_cache_mb << 20, ..base.clone() },
        )
        .map_err(|source| HostError::Kv { store: "hot", source })?;
        let cold_dir = self.dir.join("cold");
        let cold_options = KvOptions { cache_bytes: self.config.cold_cache_mb << 20, ..base };
        let location = self
            .config
            .cold_location()
            .map_err(|detail| HostError::BadConfig { path: Self::config_path(&self.dir), detail })?;
        let cold: NativeKv = match location {
            None => FjallKv::open(&cold_dir, &cold_options).map(Into::into),
            #[cfg(feature = "s3")]
            Some(location) => crate::s3::S3Credentials::from_env()
                .map_err(|detail| splitstore_core::KvError::Unavailable {
                    detail: format!("the cold store on S3: {detail}"),
                })
                .and_then(|credentials| {
                    let options = crate::s3::S3Options::default();
                    crate::s3::S3Kv::open(&location, &credentials, &options, &cold_dir, &cold_options)
                })
                .map(Into::into),
            #[cfg(not(feature = "s3"))]
            Some(never) => match never {},
        }
        .map_err(|source| HostError::Kv { store: "cold", source })?;
        Ok((hot.into(), cold))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trips_and_rejects_bad_values() {
        let c = RepoConfig { mode: "messages".into(), finality: 10, ..RepoConfig::default() };
        assert_eq!(RepoConfig::parse(&c.to_toml()).expect("parse"), c);
        assert_eq!(RepoConfig::parse("").expect("empty file means defaults"), RepoConfig::default());
        let e = RepoConfig::parse("mode = \"sometimes\"").expect_err("bad mode");
        assert!(e.contains("sometimes"), "{e}");
        let e = RepoConfig::parse("finalty = 3").expect_err("unknown field");
        assert!(e.contains("finalty"), "{e}");
        let e = RepoConfig::parse("finality = 0").expect_err("zero finality");
        assert!(e.contains("finality"), "{e}");
        let e = RepoConfig::parse("finality = [").expect_err("not toml");
        assert!(!e.is_empty());
        let core = RepoConfig { sync_gap_secs: 0, ..RepoConfig::default() }.to_core().expect("valid");
        assert_eq!(core.sync_gap_secs, None);
    }

    #[test]
    fn init_open_lock_and_errors() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("repo");
        assert!(matches!(Repo::open(&dir), Err(HostError::NotARepo { .. })));
        let repo = Repo::init(&dir, RepoConfig::default()).expect("init");
        assert!(dir.join("hot").is_dir() && dir.join("cold").is_dir());
        assert!(!dir.join("config.toml.tmp").exists(), "no temporary file is left behind");
        // The lock is per open file description, so a second open in this process is refused.
        let e = Repo::open(&dir).expect_err("locked");
        assert!(matches!(e, HostError::InUse { .. }), "{e}");
        assert!(e.to_string().contains("store is in use"));
        drop(repo);
        assert!(matches!(Repo::init(&dir, RepoConfig::default()), Err(HostError::AlreadyInitialised { .. })));
        let repo = Repo::open(&dir).expect("reopen");
        assert_eq!(repo.config(), &RepoConfig::default());
        drop(repo);
        std::fs::write(dir.join("config.toml"), "mode = 3\n").expect("corrupt");
        let e = Repo::open(&dir).expect_err("corrupt config");
        assert!(matches!(e, HostError::BadConfig { .. }), "{e}");
        assert!(e.to_string().contains("config.toml"), "{e}");
    }
}
