//! CAR import into a store: the one path the CLI, the npm package and the fuzzers use.
//!
//! [`Importer`] streams a file through [`CarDecoder`] in chunks of any size, verifies each
//! block against its CID and writes with `put_many` in batches, as a syncing node writes; a
//! file that fails part-way leaves the blocks before the failure (valid, verified blocks that
//! do no harm), so a host streaming an untrusted file validates it first (the CLI reads it
//! twice). [`SplitStore::import_car_with`] holds the whole file and decodes all of it before
//! its first write: a file that fails writes nothing. Either way the head changes only after
//! the whole file decoded without error, only when the roots are the headers of one tipset,
//! and only as the [`HeadPolicy`] allows (by default, when they extend the current head).

mod head_policy;

use alloc::vec::Vec;

use cid::Cid;

use crate::{
    car::{CarBlocks, CarDecoder, CarError, CarLimits, Step},
    clock::Clock,
    compact::PendingCompaction,
    error::Error,
    kv::Kv,
    store::SplitStore,
};

pub use self::head_policy::{HeadPolicy, HeadSkip};

/// Blocks per `put_many` during an import, at most.
const IMPORT_BATCH: usize = 1024;

/// Block bytes per `put_many` during an import, at most (a batch closes at either bound, so
/// a streaming import holds at most this much beside the decoder's one section).
const IMPORT_BATCH_BYTES: usize = 8 << 20;

/// What an import did.
#[derive(Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ImportReport {
    /// Blocks read from the file (identity blocks included).
    pub blocks: u64,
    /// Block bytes read.
    pub bytes: u64,
    /// The header's roots.
    #[serde(with = "crate::cid_serde")]
    pub roots: Vec<Cid>,
    /// The roots became the head.
    pub head_applied: bool,
    /// Why the roots did not become the head, when they did not.
    #[serde(serialize_with = "display")]
    pub head_skipped: Option<HeadSkip>,
    /// The compaction the new head decided, for the caller to run.
    #[serde(skip)]
    pub compaction: Option<PendingCompaction>,
}

/// Why an import failed.
#[derive(Debug)]
pub enum ImportError {
    /// The file is not a valid CAR (the error names the problem and the byte offset).
    Car(CarError),
    /// The store failed.
    Store(Error),
}

impl core::fmt::Display for ImportError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ImportError::Car(e) => write!(f, "invalid CAR file: {e}"),
            ImportError::Store(e) => write!(f, "store error during import: {e}"),
        }
    }
}

impl core::error::Error for ImportError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            ImportError::Car(e) => Some(e),
            ImportError::Store(e) => Some(e),
        }
    }
}

impl From<Error> for ImportError {
    fn from(e: Error) -> Self {
        ImportError::Store(e)
    }
}

/// An import in progress: feed it the file's bytes in order, then [`Importer::finish`].
#[derive(Debug)]
pub struct Importer<'s, K: Kv, C: Clock> {
    store: &'s SplitStore<K, C>,
    decoder: CarDecoder,
    batch: Vec<(Cid, Vec<u8>)>,
    batch_bytes: usize,
    report: ImportReport,
    ended: bool,
    policy: HeadPolicy,
}

impl<'s, K: Kv, C: Clock> Importer<'s, K, C> {
    /// Starts an import into `store` under the default [`HeadPolicy`].
    pub fn new(store: &'s SplitStore<K, C>, limits: CarLimits) -> Self {
        Self {
            store,
            decoder: CarDecoder::new(limits),
            batch: Vec::new(),
            batch_bytes: 0,
            report: ImportReport::default(),
            ended: false,
            policy: HeadPolicy::default(),
        }
    }

    /// This import, deciding about the head under `policy`.
    pub fn head_policy(mut self, policy: HeadPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// Blocks decoded so far.
    pub fn blocks(&self) -> u64 {
        self.report.blocks
    }

    /// Bytes of the file consumed so far.
    pub fn consumed(&self) -> u64 {
        self.decoder.consumed()
    }

    /// Decodes `chunk` and writes every complete block.
    pub async fn feed(&mut self, chunk: &[u8]) -> Result<(), ImportError> {
        let mut rest = chunk;
        while !self.ended {
            let (used, step) = self.decoder.decode(rest).map_err(ImportError::Car)?;
            rest = &rest[used..];
            match step {
                Step::NeedMore => break,
                Step::Header => {}
                Step::End => self.ended = true,
                Step::Block(b) => {
                    self.report.blocks += 1;
                    self.report.bytes += b.data.len() as u64;
                    self.batch_bytes += b.data.len();
                    self.batch.push((b.cid, b.data.to_vec()));
                    if self.batch.len() >= IMPORT_BATCH || self.batch_bytes >= IMPORT_BATCH_BYTES {
                        self.batch_bytes = 0;
                        self.store.put_many(core::mem::take(&mut self.batch)).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Ends the import: fails if the file stopped inside an item; otherwise writes the last
    /// blocks and, when the roots are the headers of one tipset and the [`HeadPolicy`] allows,
    /// applies them as the new head.
    pub async fn finish(mut self) -> Result<ImportReport, ImportError> {
        self.decoder.finish().map_err(ImportError::Car)?;
        self.store.put_many(core::mem::take(&mut self.batch)).await?;
        self.report.roots = self.decoder.roots().map(<[Cid]>::to_vec).unwrap_or_default();
        self.store.import_head(&mut self.report, self.policy).await?;
        Ok(self.report)
    }
}

impl<K: Kv, C: Clock> SplitStore<K, C> {
    /// Imports a whole in-memory CAR file under the default [`HeadPolicy`] (see [`Importer`]
    /// for streaming).
    pub async fn import_car(&self, bytes: &[u8]) -> Result<ImportReport, ImportError> {
        self.import_car_with(bytes, HeadPolicy::default()).await
    }

    /// [`SplitStore::import_car`] deciding about the head under `policy`. The whole file is
    /// decoded and every block checked against its CID before the first write, so a file that
    /// fails writes nothing (a store failure during the writes may leave some of its verified
    /// blocks, never the head).
    pub async fn import_car_with(&self, bytes: &[u8], policy: HeadPolicy) -> Result<ImportReport, ImportError> {
        let mut it = CarBlocks::new(bytes, CarLimits::default()).map_err(ImportError::Car)?;
        let mut report = ImportReport { roots: it.roots().to_vec(), ..ImportReport::default() };
        let mut blocks = Vec::new();
        for b in it.by_ref() {
            let b = b.map_err(ImportError::Car)?;
            report.blocks += 1;
            report.bytes += b.data.len() as u64;
            blocks.push((b.cid, b.data));
        }
        for chunk in blocks.chunks(IMPORT_BATCH) {
            self.put_many(chunk.iter().map(|(c, d)| (*c, d.to_vec())).collect()).await?;
        }
        self.import_head(&mut report, policy).await?;
        Ok(report)
    }

    /// Applies an import's roots as the head when `policy` allows, recording the verdict.
    async fn import_head(&self, report: &mut ImportReport, policy: HeadPolicy) -> Result<(), Error> {
        // No other head change between the verdict and the change it allows.
        let _one_at_a_time = self.head_lock.lock().await;
        match self.head_verdict(&report.roots, policy).await? {
            Ok(()) => {
                let roots = core::slice::from_ref(&report.roots);
                report.compaction = self.head_change_locked(&[], roots).await?.compaction;
                report.head_applied = true;
            }
            Err(skip) => report.head_skipped = Some(skip),
        }
        Ok(())
    }
}

/// A value as its `Display` text.
fn display<T: core::fmt::Display, S: serde::Serializer>(v: &Option<T>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(v) => s.collect_str(v),
        None => s.serialize_none(),
    }
}
