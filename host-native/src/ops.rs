//! The operations behind the `splitstore` command, usable from other programs and tests:
//! open a repo's store, import and export CAR files, read blocks.
//!
//! Store futures are driven with `futures::executor::block_on` on the calling thread (see
//! [`crate::kv`] on blocking); the demo runs each compaction on a thread of its own.

use std::{
    fs::File,
    io::{BufWriter, Read, Write},
    path::{Path, PathBuf},
    sync::Arc,
};

use futures::executor::block_on;
use indicatif::ProgressBar;
use splitstore_core::{
    car::{encode_header_v1, encode_section, export_cid, CarDecoder, CarError, CarLimits, Step},
    import::{HeadPolicy, ImportError, ImportReport, Importer},
    kv::{Kv, Space},
    Cid, SplitStore,
};

use crate::{
    backend::NativeKv,
    clock::SystemClock,
    errors::HostError,
    repo::{sync_dir, Repo},
    status::{self, StatusKeeper},
};

/// The store the native host runs.
pub type NativeStore = SplitStore<NativeKv, SystemClock>;

/// Bytes read from a CAR file per call: imports stream through this fixed buffer.
pub const IMPORT_BUFFER: usize = 1 << 20;

/// Blocks per page when exporting.
const EXPORT_PAGE: usize = 4096;

/// Why an operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum OpError {
    /// The repo, its files or its lock.
    Host(HostError),
    /// The store.
    Store(splitstore_core::Error),
    /// A CAR import failed; the head is unchanged.
    Import {
        /// The file.
        path: PathBuf,
        /// Why.
        source: ImportError,
    },
    /// A command-line argument is not a CID.
    BadCid {
        /// The text given.
        text: String,
        /// Why it was rejected.
        detail: String,
    },
    /// No block has this CID in either store.
    NotFound {
        /// The CID asked for.
        cid: Cid,
    },
    /// A key stored in the block space is not a multihash.
    CorruptKey {
        /// Which store.
        store: &'static str,
    },
}

impl std::fmt::Display for OpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OpError::Host(e) => e.fmt(f),
            OpError::Store(e) => e.fmt(f),
            OpError::Import { path, source } => {
                write!(f, "import {} failed, the head is unchanged: {source}", path.display())
            }
            OpError::BadCid { text, detail } => write!(f, "{text:?} is not a CID: {detail}"),
            OpError::NotFound { cid } => write!(f, "block {cid} is in neither the hot nor the cold store"),
            OpError::CorruptKey { store } => write!(f, "the {store} store holds a block key that is not a multihash"),
        }
    }
}

impl std::error::Error for OpError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            OpError::Host(e) => Some(e),
            OpError::Store(e) => Some(e),
            OpError::Import { source, .. } => Some(source),
            _ => None,
        }
    }
}

impl From<HostError> for OpError {
    fn from(e: HostError) -> Self {
        OpError::Host(e)
    }
}

impl From<splitstore_core::Error> for OpError {
    fn from(e: splitstore_core::Error) -> Self {
        OpError::Store(e)
    }
}

/// A repo opened for use: the lock is held while this lives, and its status record
/// ([`crate::status`]) is kept current for other processes.
#[derive(Debug)]
pub struct OpenStore {
    /// The repo (holds the lock).
    pub repo: Repo,
    /// The store, shareable with a compaction thread.
    pub store: Arc<NativeStore>,
    /// Keeps `DIR/status.json` current.
    pub status: StatusKeeper,
}

impl OpenStore {
    /// Opens the repo in `dir` and its store, running crash recovery first.
    pub fn open(dir: &Path) -> Result<Self, OpError> {
        Self::from_repo(Repo::open(dir)?)
    }

    /// Opens the store of a repo already opened (and locked).
    pub fn from_repo(repo: Repo) -> Result<Self, OpError> {
        let config = repo.core_config()?;
        status::write_opening(repo.dir())?;
        let (hot, cold) = repo.open_stores()?;
        let store = Arc::new(block_on(SplitStore::open(hot, cold, SystemClock, config))?);
        let status = StatusKeeper::start(repo.dir(), Arc::clone(&store), status::INTERVAL)?;
        Ok(Self { repo, store, status })
    }

    /// Closes the store ([`OpenStore::close`]) and returns the repo, its lock still held.
    pub fn into_repo(self) -> Result<Repo, OpError> {
        self.close()?;
        let OpenStore { repo, store, status } = self;
        drop(status);
        drop(store);
        Ok(repo)
    }

    /// Stops any compaction at its next yield, flushes both stores and marks the status
    /// record closed.
    pub fn close(&self) -> Result<(), OpError> {
        let closed = block_on(self.store.close());
        self.status.close()?;
        closed?;
        Ok(())
    }
}

/// Parses a CID given on the command line.
pub fn parse_cid(text: &str) -> Result<Cid, OpError> {
    Cid::try_from(text).map_err(|e| OpError::BadCid { text: text.into(), detail: e.to_string() })
}

/// Reads the file at `path` through the fixed buffer, handing each chunk to `feed`.
fn read_chunks(path: &Path, mut feed: impl FnMut(&[u8]) -> Result<(), OpError>) -> Result<(), OpError> {
    let mut file = File::open(path).map_err(|e| HostError::io("open", path, e))?;
    let mut buf = vec![0u8; IMPORT_BUFFER];
    loop {
        let n = match file.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(HostError::io("read", path, e).into()),
        };
        feed(&buf[..n])?;
    }
}

/// Decodes the whole CAR file at `path`, checking every section and hash, without writing
/// anything. Returns the number of blocks.
pub fn validate_car(path: &Path) -> Result<u64, OpError> {
    validate_car_with(path, |_| {})
}

/// [`validate_car`], calling `progress` with the length of each chunk read.
fn validate_car_with(path: &Path, mut progress: impl FnMut(u64)) -> Result<u64, OpError> {
    let fail = |e: CarError| OpError::Import { path: path.to_path_buf(), source: ImportError::Car(e) };
    let mut dec = CarDecoder::new(CarLimits::default());
    let mut blocks = 0u64;
    let mut ended = false;
    read_chunks(path, |chunk| {
        progress(chunk.len() as u64);
        let mut rest = chunk;
        while !ended {
            let (used, step) = dec.decode(rest).map_err(fail)?;
            rest = &rest[used..];
            match step {
                Step::NeedMore => break,
                Step::Header => {}
                Step::Block(_) => blocks += 1,
                Step::End => ended = true,
            }
        }
        Ok(())
    })?;
    dec.finish().map_err(fail)?;
    Ok(blocks)
}

/// Imports the CAR file at `path` in two passes through a fixed buffer: the first checks
/// every section and hash and writes nothing, the second streams the blocks into the hot
/// store in batches. So an invalid file writes no block and leaves the head unchanged. The
/// head changes only when the roots are the headers of one tipset and `policy` allows; a
/// compaction the new head decides is returned in the report, not run.
pub fn import_file(
    store: &NativeStore,
    path: &Path,
    policy: HeadPolicy,
    bar: Option<&ProgressBar>,
) -> Result<ImportReport, OpError> {
    let total = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    if let Some(b) = bar {
        b.set_length(total.saturating_mul(2));
        b.set_message("checking");
    }
    let mut checked = 0u64;
    let expected = validate_car_with(path, |len| {
        checked += len;
        if let Some(b) = bar {
            b.set_position(checked);
        }
    })?;
    let fail = |source| OpError::Import { path: path.to_path_buf(), source };
    let mut importer = Importer::new(store, CarLimits::default()).head_policy(policy);
    read_chunks(path, |chunk| {
        block_on(importer.feed(chunk)).map_err(fail)?;
        if let Some(b) = bar {
            b.set_position(total + importer.consumed());
            b.set_message(format!("{} of {expected} blocks", importer.blocks()));
        }
        Ok(())
    })?;
    block_on(importer.finish()).map_err(fail)
}

/// Which store an export reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// The hot store.
    Hot,
    /// The cold store.
    Cold,
    /// Both; a block held by both is written once.
    All,
}

/// What an export wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExportReport {
    /// Blocks written.
    pub blocks: u64,
    /// Bytes of the file.
    pub bytes: u64,
    /// The roots written (the head tipset, when there is one).
    #[serde(serialize_with = "cid_strings")]
    pub roots: Vec<Cid>,
}

struct CountingWriter<W: Write> {
    inner: W,
    written: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes every block of one store (or both) to a CARv1 file at `out`.
///
/// The store keeps blocks by multihash only, so each section is named by the CIDv1 of its
/// multihash with the codec [`export_cid`] infers (DAG-CBOR or raw), as the browser's export
/// names it; the roots are the head tipset's header CIDs, so importing the file again restores
/// the head. The file appears at `out` only when complete (it is written
/// beside it, fsynced, then renamed).
pub fn export_car(
    store: &NativeStore,
    which: Which,
    out: &Path,
    bar: Option<&ProgressBar>,
) -> Result<ExportReport, OpError> {
    let info = block_on(store.info())?;
    let roots = info.head.clone().unwrap_or_default();
    let mut tmp_name = out.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    tmp_name.push(".partial");
    let tmp = out.with_file_name(tmp_name);
    let result = write_export(store, which, &roots, &tmp, bar);
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            // Nothing half-written is left under either name.
            let _ = std::fs::remove_file(&tmp);
            return Err(e);
        }
    };
    std::fs::rename(&tmp, out).map_err(|e| HostError::io("rename", out, e))?;
    let dir = out.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    sync_dir(dir)?;
    Ok(report)
}

fn write_export(
    store: &NativeStore,
    which: Which,
    roots: &[Cid],
    tmp: &Path,
    bar: Option<&ProgressBar>,
) -> Result<ExportReport, OpError> {
    let file = File::create(tmp).map_err(|e| HostError::io("create", tmp, e))?;
    let mut w = CountingWriter { inner: BufWriter::with_capacity(1 << 20, file), written: 0 };
    let io = |e| OpError::Host(HostError::io("write", tmp, e));
    let mut buf = Vec::new();
    encode_header_v1(roots, &mut buf);
    w.write_all(&buf).map_err(io)?;
    let mut blocks = 0u64;
    let sources: &[(&'static str, &NativeKv)] = match which {
        Which::Hot => &[("hot", store.hot())],
        Which::Cold => &[("cold", store.cold())],
        Which::All => &[("hot", store.hot()), ("cold", store.cold())],
    };
    for (i, (name, kv)) in sources.iter().enumerate() {
        let store_err = |source| OpError::Store(splitstore_core::Error::Kv { store: name, source });
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = block_on(kv.scan(Space::Blocks, after.as_deref(), EXPORT_PAGE)).map_err(store_err)?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            // In an export of both stores, cold copies of blocks still hot were written already.
            let skip: Vec<bool> = if i > 0 {
                let keys: Vec<Vec<u8>> = page.iter().map(|(k, _)| k.clone()).collect();
                let hot = block_on(store.hot().get_many(Space::Blocks, &keys))
                    .map_err(|source| OpError::Store(splitstore_core::Error::Kv { store: "hot", source }))?;
                hot.iter().map(Option::is_some).collect()
            } else {
                vec![false; page.len()]
            };
            buf.clear();
            for ((k, v), skip) in page.into_iter().zip(skip) {
                if skip {
                    continue;
                }
                let cid = export_cid(&k, &v).ok_or(OpError::CorruptKey { store: name })?;
                encode_section(&cid, &v, &mut buf);
                blocks += 1;
            }
            w.write_all(&buf).map_err(io)?;
            if let Some(b) = bar {
                b.set_position(blocks);
            }
        }
    }
    w.flush().map_err(io)?;
    let bytes = w.written;
    let file = w.inner.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(|e| HostError::io("fsync", tmp, e))?;
    Ok(ExportReport { blocks, bytes, roots: roots.to_vec() })
}

/// The bytes of the block `cid` from either store.
pub fn get_block(store: &NativeStore, cid: &Cid) -> Result<Vec<u8>, OpError> {
    block_on(store.get(cid))?.ok_or(OpError::NotFound { cid: *cid })
}

/// CIDs as strings, in serialised reports.
fn cid_strings<S: serde::Serializer>(v: &[Cid], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(v.iter().map(ToString::to_string))
}
