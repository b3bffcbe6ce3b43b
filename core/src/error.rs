//! Typed errors. Every fallible operation names what failed and keeps its cause.

use alloc::{boxed::Box, string::String};
use core::fmt;

use cid::Cid;

/// A boxed error cause that can cross threads on native targets.
#[cfg(not(target_arch = "wasm32"))]
pub type BoxError = Box<dyn core::error::Error + Send + Sync + 'static>;
/// A boxed error cause.
#[cfg(target_arch = "wasm32")]
pub type BoxError = Box<dyn core::error::Error + 'static>;

/// A failure of a key-value backend.
#[derive(Debug)]
#[non_exhaustive]
pub enum KvError {
    /// The backend crashed or was poisoned by an earlier fatal error; nothing more is written.
    Crashed,
    /// The backend is out of space (disk full, browser quota); the failed write left nothing.
    QuotaExceeded {
        /// What the backend said.
        detail: String,
    },
    /// The store is held by another process or tab.
    InUse {
        /// What the backend said.
        detail: String,
    },
    /// The backend is closed or could not be opened.
    Unavailable {
        /// What the backend said.
        detail: String,
    },
    /// Stored data could not be decoded.
    Corrupt {
        /// What was wrong.
        detail: String,
    },
    /// Any other backend failure, with its cause.
    Backend {
        /// Which backend.
        backend: &'static str,
        /// What it was doing.
        op: &'static str,
        /// The underlying error.
        source: BoxError,
    },
}

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KvError::Crashed => f.write_str("the store crashed or is poisoned by an earlier fatal error"),
            KvError::QuotaExceeded { detail } => write!(f, "storage quota exceeded: {detail}"),
            KvError::InUse { detail } => write!(f, "store is in use: {detail}"),
            KvError::Unavailable { detail } => write!(f, "store unavailable: {detail}"),
            KvError::Corrupt { detail } => write!(f, "stored data is corrupt: {detail}"),
            KvError::Backend { backend, op, .. } => write!(f, "{backend} failed during {op}"),
        }
    }
}

impl core::error::Error for KvError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            KvError::Backend { source, .. } => Some(source.as_ref()),
            _ => None,
        }
    }
}

/// Why a compaction phase was stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Interrupted {
    /// The store is closing.
    Closing,
}

/// Every error the store and its compaction return.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A backend call failed.
    Kv {
        /// Which store: "hot" or "cold".
        store: &'static str,
        /// The cause.
        source: KvError,
    },
    /// A block the strict part of the walk needs is in neither store.
    MissingBlock {
        /// The missing block.
        cid: Cid,
        /// What the walk was doing ("state", "header", ...).
        context: &'static str,
    },
    /// A block that should be a Filecoin block header is not one.
    BadHeader {
        /// The block.
        cid: Cid,
        /// Why it was rejected.
        source: crate::header::HeaderError,
    },
    /// A DAG-CBOR block's links could not be read.
    BadBlock {
        /// The block.
        cid: Cid,
        /// Why.
        source: crate::links::LinkError,
    },
    /// A block's bytes do not hash to its CID.
    HashMismatch {
        /// The CID given.
        cid: Cid,
    },
    /// The CID uses a hash function this build cannot verify.
    UnsupportedHash {
        /// The CID given.
        cid: Cid,
    },
    /// The store has no head yet; import or apply a tipset first.
    NoHead,
    /// A head change applied a tipset with no blocks.
    EmptyTipset,
    /// A compaction is already running.
    AlreadyCompacting,
    /// An interrupted compaction must be recovered (reopen the store) before compacting.
    RecoveryPending,
    /// A cold prune was asked of a store in discard mode, whose cold store is only read.
    PruneInDiscardMode,
    /// The store is closing or closed.
    Closed,
    /// An earlier fatal error left the store's state unknown; reopen it.
    Poisoned,
    /// Metadata in the store could not be decoded.
    CorruptMeta {
        /// The metadata key.
        key: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// The configuration is not usable.
    InvalidConfig {
        /// What was wrong.
        detail: String,
    },
}

impl Error {
    pub(crate) fn hot(source: KvError) -> Self {
        Error::Kv { store: "hot", source }
    }
    pub(crate) fn cold(source: KvError) -> Self {
        Error::Kv { store: "cold", source }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Kv { store, source } => write!(f, "{store} store: {source}"),
            Error::MissingBlock { cid, context } => write!(f, "missing block {cid} ({context})"),
            Error::BadHeader { cid, source } => write!(f, "block {cid} is not a valid block header: {source}"),
            Error::BadBlock { cid, source } => write!(f, "block {cid} is not valid DAG-CBOR: {source}"),
            Error::HashMismatch { cid } => write!(f, "block bytes do not hash to {cid}"),
            Error::UnsupportedHash { cid } => write!(f, "cannot verify the hash function of {cid}"),
            Error::NoHead => f.write_str("the store has no head tipset yet"),
            Error::EmptyTipset => f.write_str("a tipset must name at least one block header"),
            Error::AlreadyCompacting => f.write_str("a compaction is already running"),
            Error::RecoveryPending => {
                f.write_str("an interrupted compaction must be recovered first; reopen the store")
            }
            Error::PruneInDiscardMode => {
                f.write_str("discard mode never writes the cold store, so it has nothing to prune")
            }
            Error::Closed => f.write_str("the store is closed"),
            Error::Poisoned => f.write_str("an earlier fatal error left the store in an unknown state; reopen it"),
            Error::CorruptMeta { key, detail } => write!(f, "metadata {key:?} is corrupt: {detail}"),
            Error::InvalidConfig { detail } => write!(f, "invalid configuration: {detail}"),
        }
    }
}

impl core::error::Error for Error {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            Error::Kv { source, .. } => Some(source),
            Error::BadHeader { source, .. } => Some(source),
            Error::BadBlock { source, .. } => Some(source),
            _ => None,
        }
    }
}
