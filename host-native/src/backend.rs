//! [`NativeKv`]: the backend of a native store, one type for its hot and cold sides (the
//! store takes one backend type for both): fjall on disk, or, with the `s3` feature, a cold
//! store on an S3 service.

use splitstore_core::{
    kv::{Capabilities, SpaceEstimate, SpaceStats},
    Kv, KvError, Space, WriteBatch,
};

use crate::kv::FjallKv;
#[cfg(feature = "s3")]
use crate::s3::S3Kv;

/// A native store's backend.
#[derive(Clone, Debug)]
pub enum NativeKv {
    /// fjall, in a directory.
    Disk(FjallKv),
    /// An S3 service, with its locator on disk (`crate::s3`).
    #[cfg(feature = "s3")]
    S3(S3Kv),
}

impl From<FjallKv> for NativeKv {
    fn from(kv: FjallKv) -> Self {
        NativeKv::Disk(kv)
    }
}

#[cfg(feature = "s3")]
impl From<S3Kv> for NativeKv {
    fn from(kv: S3Kv) -> Self {
        NativeKv::S3(kv)
    }
}

/// `$e` with `$k` bound to the backend, whichever it is.
macro_rules! each {
    ($s:expr, $k:ident => $e:expr) => {
        match $s {
            NativeKv::Disk($k) => $e,
            #[cfg(feature = "s3")]
            NativeKv::S3($k) => $e,
        }
    };
}

impl NativeKv {
    /// The files on this machine: fjall's, or the S3 store's locator.
    pub fn local(&self) -> &FjallKv {
        match self {
            NativeKv::Disk(k) => k,
            #[cfg(feature = "s3")]
            NativeKv::S3(k) => k.locator(),
        }
    }

    /// Bytes of [`NativeKv::local`] on disk.
    pub fn disk_bytes(&self) -> Result<u64, KvError> {
        self.local().disk_bytes()
    }

    /// Bytes of [`NativeKv::local`]'s journals.
    pub fn journal_bytes(&self) -> Result<u64, KvError> {
        self.local().journal_bytes()
    }
}

#[async_trait::async_trait]
impl Kv for NativeKv {
    async fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        each!(self, k => k.get(space, key).await)
    }
    async fn get_many(&self, space: Space, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        each!(self, k => k.get_many(space, keys).await)
    }
    async fn has(&self, space: Space, key: &[u8]) -> Result<bool, KvError> {
        each!(self, k => k.has(space, key).await)
    }
    async fn write(&self, batch: WriteBatch) -> Result<(), KvError> {
        each!(self, k => k.write(batch).await)
    }
    async fn scan_keys(&self, space: Space, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, KvError> {
        each!(self, k => k.scan_keys(space, after, limit).await)
    }
    async fn scan(&self, space: Space, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>, KvError> {
        each!(self, k => k.scan(space, after, limit).await)
    }
    async fn flush(&self) -> Result<(), KvError> {
        each!(self, k => k.flush().await)
    }
    async fn reclaim(&self) -> Result<(), KvError> {
        each!(self, k => k.reclaim().await)
    }
    async fn catch_up(&self) -> Result<(), KvError> {
        each!(self, k => k.catch_up().await)
    }
    async fn stats(&self, space: Space) -> Result<SpaceStats, KvError> {
        each!(self, k => k.stats(space).await)
    }
    async fn estimate(&self, space: Space) -> Result<Option<SpaceEstimate>, KvError> {
        each!(self, k => k.estimate(space).await)
    }
    async fn footprint(&self) -> Result<Option<u64>, KvError> {
        each!(self, k => k.footprint().await)
    }
    fn capabilities(&self) -> Capabilities {
        each!(self, k => k.capabilities())
    }
}
