//! Errors of the native host, and the mapping of fjall's errors onto the core's [`KvError`].

use std::{fmt, io, path::PathBuf};

use splitstore_core::error::KvError;

/// True when an I/O error means the disk (or the user's quota) is full.
pub fn is_disk_full(e: &io::Error) -> bool {
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    e.kind() == io::ErrorKind::StorageFull
        || e.kind() == io::ErrorKind::QuotaExceeded
        || matches!(e.raw_os_error(), Some(ENOSPC | EDQUOT))
}

fn io_of(e: &fjall::Error) -> Option<&io::Error> {
    match e {
        fjall::Error::Io(io) => Some(io),
        fjall::Error::Storage(fjall::LsmError::Io(io)) => Some(io),
        _ => None,
    }
}

/// Maps a fjall error met during `op` onto [`KvError`], keeping it as the source where the
/// variant has room for one.
pub fn fjall_error(op: &'static str, e: fjall::Error) -> KvError {
    if io_of(&e).is_some_and(is_disk_full) {
        return KvError::QuotaExceeded { detail: format!("{op}: {e}") };
    }
    match e {
        fjall::Error::Poisoned => KvError::Crashed,
        fjall::Error::Locked => KvError::InUse { detail: "the database is open in another process or handle".into() },
        fjall::Error::KeyspaceDeleted => KvError::Unavailable { detail: format!("{op}: keyspace deleted") },
        other => KvError::Backend { backend: "fjall", op, source: Box::new(other) },
    }
}

/// Every failure of the native host's own work: the repo directory, its configuration and its
/// lock. Store failures are [`splitstore_core::Error`].
#[derive(Debug)]
#[non_exhaustive]
pub enum HostError {
    /// A file-system operation failed.
    Io {
        /// What was being done ("create", "write", "rename", ...).
        op: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// Another process holds the repo.
    InUse {
        /// The lock file.
        path: PathBuf,
    },
    /// The directory is not a splitstore repo.
    NotARepo {
        /// The directory.
        path: PathBuf,
    },
    /// The repo's split was undone by `rollback`: every block is in one store.
    RolledBack {
        /// The store holding every block.
        path: PathBuf,
    },
    /// `init` found an existing repo.
    AlreadyInitialised {
        /// The directory.
        path: PathBuf,
    },
    /// `config.toml` could not be parsed or holds unusable values.
    BadConfig {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// The on-disk store failed to open or answer.
    Kv {
        /// Which store ("hot" or "cold").
        store: &'static str,
        /// The cause.
        source: KvError,
    },
}

impl HostError {
    /// An I/O error with its context.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        HostError::Io { op, path: path.into(), source }
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HostError::Io { op, path, source } => {
                if is_disk_full(source) {
                    write!(f, "{op} {}: the disk is full", path.display())
                } else {
                    write!(f, "{op} {}: {source}", path.display())
                }
            }
            HostError::InUse { path } => {
                write!(f, "store is in use: another process holds the lock {}", path.display())
            }
            HostError::RolledBack { path } => write!(
                f,
                "the split of this repo was undone by `rollback`: every block is in the fjall database {}",
                path.display()
            ),
            HostError::NotARepo { path } => {
                write!(
                    f,
                    "{} is not a splitstore repo (no config.toml); run `splitstore --repo {} init` first",
                    path.display(),
                    path.display()
                )
            }
            HostError::AlreadyInitialised { path } => write!(f, "{} already holds a splitstore repo", path.display()),
            HostError::BadConfig { path, detail } => write!(f, "bad configuration in {}: {detail}", path.display()),
            HostError::Kv { store, source } => write!(f, "{store} store: {source}"),
        }
    }
}

impl std::error::Error for HostError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HostError::Io { source, .. } => Some(source),
            HostError::Kv { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_full_maps_to_quota_exceeded() {
        let e = fjall::Error::Io(io::Error::from_raw_os_error(28));
        assert!(matches!(fjall_error("write", e), KvError::QuotaExceeded { .. }));
        let e = fjall::Error::Storage(fjall::LsmError::Io(io::Error::from(io::ErrorKind::StorageFull)));
        assert!(matches!(fjall_error("write", e), KvError::QuotaExceeded { .. }));
    }

    #[test]
    fn other_errors_keep_their_source() {
        let e = fjall::Error::Io(io::Error::other("boom"));
        let k = fjall_error("get", e);
        assert!(matches!(k, KvError::Backend { backend: "fjall", op: "get", .. }));
        let src = std::error::Error::source(&k).expect("source kept");
        assert!(src.to_string().contains("boom"));
        assert!(matches!(fjall_error("write", fjall::Error::Poisoned), KvError::Crashed));
        assert!(matches!(fjall_error("open", fjall::Error::Locked), KvError::InUse { .. }));
    }
}
