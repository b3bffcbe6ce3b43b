//! [`S3Kv`]: a cold store on an S3 service (`docs/scale-out.md`).
//!
//! Blocks live in the bucket, in **segments**: each write batch's block puts become one
//! immutable CARv1 object `PREFIX/seg/<seq>.car` (`seq` as 16 lowercase hex digits, so listing
//! order is numeric order), and one `PutObject` is atomic, so a batch lands whole or not at
//! all. A local fjall store (the **locator**) maps each block's key to its segment, offset and
//! length, and holds the other keyspaces whole. A batch is committed by one locator batch,
//! written after its segment's PUT returned, which also advances the next segment number: so
//! a block the locator names is always in the bucket (copy before delete holds once `flush`
//! makes the locator durable), and a crash between the PUT and the locator batch leaves an
//! **orphan** segment numbered at or above the next number, which the next open deletes.
//!
//! Beside each segment, and for every batch without one, the batch's **index**
//! (`PREFIX/idx/<seq>.idx` or `.log`, module `index`) records what the batch did to the locator,
//! and is PUT before the locator batch: the locator is a cache of the bucket, rebuilt by
//! replaying the indexes in order when a store opens with an empty one.
//!
//! Reads of bytes are ranged GETs (batched per segment, adjacent ranges merged by
//! `object_store`); `has`, scans of keys and counts are local. Deleting a block removes its
//! locator entry; its bytes stay in the segment until a reclaim drops or rewrites it.
//!
//! The S3 client is `object_store`'s, on a small tokio runtime the store owns, so the store can
//! be driven from any executor. Requests are retried with backoff (every one is idempotent:
//! a segment number is never reused while the locator names it); what still fails is a typed
//! [`KvError`] naming the request.

mod index;
mod segment;

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{
        atomic::{AtomicU64, AtomicU8, Ordering},
        Arc,
    },
    time::Duration,
};

use futures::{lock::Mutex, StreamExt};
use object_store::{
    aws::{AmazonS3, AmazonS3Builder},
    BackoffConfig, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
};
use splitstore_core::{
    kv::{Capabilities, Op, SpaceEstimate, SpaceStats},
    Kv, KvError, Space, WriteBatch,
};

pub use object_store::path::Path as ObjectPath;

pub use self::segment::Loc;
use crate::kv::{FjallKv, KvOptions};

/// The locator's private record holding the next batch number.
const NEXT_SEQ: &[u8] = b"s3-next-seq";
/// The locator's private record naming the bucket and prefix it locates blocks in.
const LOCATION: &[u8] = b"s3-location";
/// Index objects read at once while a locator is rebuilt.
const REBUILD_READS: usize = 16;
/// Locator entries read per page when a scan or a count walks them.
const PAGE: usize = 4096;

/// Where the cold store lives on S3, and how to reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Location {
    /// The bucket.
    pub bucket: String,
    /// The key prefix of the store's objects (no leading or trailing `/`; may be empty).
    pub prefix: String,
    /// The service's URL (`None`: AWS).
    pub endpoint: Option<String>,
    /// The region (default `us-east-1`, which S3-compatible services accept).
    pub region: String,
}

impl S3Location {
    /// Parses `s3://BUCKET/PREFIX?endpoint=URL&region=REGION`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let rest = url.strip_prefix("s3://").ok_or_else(|| format!("{url:?} is not an s3:// URL"))?;
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (bucket, prefix) = path.split_once('/').unwrap_or((path, ""));
        if bucket.is_empty() {
            return Err(format!("{url:?} names no bucket"));
        }
        let mut loc = Self {
            bucket: bucket.to_owned(),
            prefix: prefix.trim_matches('/').to_owned(),
            endpoint: None,
            region: "us-east-1".to_owned(),
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("endpoint", v)) if !v.is_empty() => loc.endpoint = Some(v.to_owned()),
                Some(("region", v)) if !v.is_empty() => loc.region = v.to_owned(),
                _ => return Err(format!("{url:?}: unknown or empty parameter {pair:?} (endpoint, region)")),
            }
        }
        Ok(loc)
    }

    /// The URL [`S3Location::parse`] reads back.
    pub fn url(&self) -> String {
        let mut url = format!("s3://{}/{}?region={}", self.bucket, self.prefix, self.region);
        if let Some(e) = &self.endpoint {
            url.push_str(&format!("&endpoint={e}"));
        }
        url
    }
}

/// Credentials: an access key and its secret (from `AWS_ACCESS_KEY_ID` and
/// `AWS_SECRET_ACCESS_KEY`, never from a file of the repo).
#[derive(Clone)]
pub struct S3Credentials {
    /// The access key id.
    pub access_key_id: String,
    /// The secret.
    pub secret_access_key: String,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Credentials").field("access_key_id", &self.access_key_id).finish_non_exhaustive()
    }
}

impl S3Credentials {
    /// From `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`.
    pub fn from_env() -> Result<Self, String> {
        let get = |name: &str| std::env::var(name).map_err(|_| format!("{name} is not set"));
        Ok(Self { access_key_id: get("AWS_ACCESS_KEY_ID")?, secret_access_key: get("AWS_SECRET_ACCESS_KEY")? })
    }
}

/// How the store talks to the service.
#[derive(Clone, Debug)]
pub struct S3Options {
    /// Retries of a failed request (5xx, timeouts, resets) before it is an error.
    pub max_retries: usize,
    /// The longest a request and its retries may take.
    pub retry_timeout: Duration,
}

impl Default for S3Options {
    fn default() -> Self {
        Self { max_retries: 4, retry_timeout: Duration::from_secs(30) }
    }
}

/// A cold store on S3 (module docs). Cloning shares it.
#[derive(Clone)]
pub struct S3Kv {
    inner: Arc<Inner>,
}

struct Inner {
    client: Arc<AmazonS3>,
    location: S3Location,
    /// The locator and the keyspaces other than blocks.
    local: FjallKv,
    /// Runs the client's requests (`object_store` needs tokio).
    runtime: Option<tokio::runtime::Runtime>,
    next_seq: AtomicU64,
    /// Serialises batch commits, so segment numbers are committed in order.
    committing: Mutex<()>,
    /// Test hook: the next batch stops after this many of its PUTs (0: never), as a crash
    /// there would.
    crash_after_puts: AtomicU8,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

impl std::fmt::Debug for S3Kv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Kv").field("location", &self.inner.location.url()).finish_non_exhaustive()
    }
}

/// The S3 error codes of a refused key or signature.
const CREDENTIAL_CODES: [&str; 4] = ["InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403 Forbidden"];

/// A request's failure as the contract's error: refused credentials at once, the rest after
/// the client's retries.
fn s3_error(op: &str, path: &ObjectPath, e: object_store::Error) -> KvError {
    match e {
        object_store::Error::NotFound { .. } => {
            KvError::Corrupt { detail: format!("{op} {path}: the object the locator names is not in the bucket ({e})") }
        }
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
            KvError::Unavailable { detail: format!("{op} {path}: the service refused the credentials ({e})") }
        }
        // S3 services answer a bad key or signature with 403 and one of these codes, which the
        // client reports as a generic error.
        other if CREDENTIAL_CODES.iter().any(|c| other.to_string().contains(c)) => KvError::Unavailable {
            detail: format!(
                "{op} {path}: the service refused the credentials (check AWS_ACCESS_KEY_ID and \
                 AWS_SECRET_ACCESS_KEY): {other}"
            ),
        },
        other => KvError::Unavailable { detail: format!("{op} {path}: {other}") },
    }
}

impl S3Kv {
    /// Opens the store: the locator in `locator_dir` (created if needed) and the objects under
    /// `location`, deleting orphan segments (module docs). Blocks the calling thread on the
    /// service; call it outside an async runtime.
    pub fn open(
        location: &S3Location,
        credentials: &S3Credentials,
        options: &S3Options,
        locator_dir: &Path,
        locator: &KvOptions,
    ) -> Result<Self, KvError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("splitstore-s3")
            .enable_all()
            .build()
            .map_err(|e| KvError::Unavailable { detail: format!("starting the S3 client's runtime: {e}") })?;
        let mut builder = AmazonS3Builder::new()
            .with_bucket_name(&location.bucket)
            .with_region(&location.region)
            .with_access_key_id(&credentials.access_key_id)
            .with_secret_access_key(&credentials.secret_access_key)
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: options.max_retries,
                retry_timeout: options.retry_timeout,
            });
        if let Some(endpoint) = &location.endpoint {
            builder = builder.with_endpoint(endpoint).with_allow_http(endpoint.starts_with("http://"));
        }
        let client = builder
            .build()
            .map_err(|e| KvError::Unavailable { detail: format!("configuring S3 for {}: {e}", location.url()) })?;
        let local = FjallKv::open(locator_dir, locator)?;
        // A locator locates blocks in one bucket and prefix: another's would have its sweep
        // delete that store's segments.
        let here = format!("{}/{}", location.bucket, location.prefix);
        match local.get_private(LOCATION)? {
            Some(v) if v != here.as_bytes() => {
                return Err(KvError::Unavailable {
                    detail: format!(
                        "the locator in {} belongs to the store at s3://{}, not s3://{here}",
                        locator_dir.display(),
                        String::from_utf8_lossy(&v)
                    ),
                })
            }
            Some(_) => {}
            None => local.write_with_private(WriteBatch::new(), vec![(LOCATION.to_vec(), here.into_bytes())])?,
        }
        let next_seq = local.get_private(NEXT_SEQ)?;
        let fresh = next_seq.is_none();
        let next_seq = match next_seq {
            None => 0,
            Some(v) => u64::from_be_bytes(v.as_slice().try_into().map_err(|_| KvError::Corrupt {
                detail: format!("{}: the next segment number is not 8 bytes", locator_dir.display()),
            })?),
        };
        let kv = Self {
            inner: Arc::new(Inner {
                client: Arc::new(client),
                location: location.clone(),
                local,
                runtime: Some(runtime),
                next_seq: AtomicU64::new(next_seq),
                committing: Mutex::new(()),
                crash_after_puts: AtomicU8::new(0),
            }),
        };
        // The runtime's own `block_on`: an open may be called from inside another executor.
        if fresh {
            let replayed = kv.runtime().block_on(kv.rebuild_locator())?;
            if replayed > 0 {
                tracing::info!(replayed, next_seq = kv.next_seq(), "rebuilt the locator from the bucket's indexes");
            }
        }
        let swept = kv.runtime().block_on(kv.sweep_orphans())?;
        if swept > 0 {
            tracing::info!(swept, "deleted orphan segments (a batch a crash interrupted)");
        }
        Ok(kv)
    }

    /// The locator (and the other keyspaces), on this machine.
    pub fn locator(&self) -> &FjallKv {
        &self.inner.local
    }

    /// Where the store lives.
    pub fn location(&self) -> &S3Location {
        &self.inner.location
    }

    /// The number the next segment gets.
    pub fn next_seq(&self) -> u64 {
        self.inner.next_seq.load(Ordering::SeqCst)
    }

    /// The object key of segment `seq`.
    pub fn segment_path(&self, seq: u64) -> ObjectPath {
        self.object(&format!("seg/{seq:016x}.car"))
    }

    /// The object key of batch `seq`'s index (`puts_only`: an index of block puts alone).
    pub fn index_path(&self, seq: u64, puts_only: bool) -> ObjectPath {
        self.object(&format!("idx/{}", index::name(seq, puts_only)))
    }

    /// Where `key`'s bytes are, if the locator names it.
    pub async fn locate(&self, key: &[u8]) -> Result<Option<Loc>, KvError> {
        let entry = self.inner.local.get(Space::Blocks, key).await?;
        entry.map(|v| self.decode_loc(key, &v)).transpose()
    }

    /// The next batch stops after its last PUT (its index's), before its locator batch, as a
    /// crash there would (a test hook).
    #[doc(hidden)]
    pub fn crash_after_next_put(&self) {
        self.inner.crash_after_puts.store(2, Ordering::SeqCst);
    }

    /// The next batch stops after its segment's PUT, before its index's (a test hook).
    #[doc(hidden)]
    pub fn crash_after_next_segment_put(&self) {
        self.inner.crash_after_puts.store(1, Ordering::SeqCst);
    }

    /// A crash the test hooks asked for, after the `done`-th PUT of a batch.
    fn crash_here(&self, done: u8) -> Result<(), KvError> {
        match self.inner.crash_after_puts.compare_exchange(done, 0, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => Err(KvError::Crashed),
            Err(_) => Ok(()),
        }
    }

    fn object(&self, rest: &str) -> ObjectPath {
        match self.inner.location.prefix.as_str() {
            "" => ObjectPath::from(rest),
            p => ObjectPath::from(format!("{p}/{rest}")),
        }
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.inner.runtime.as_ref().expect("the runtime lives as long as the store")
    }

    /// Runs `f` on the store's runtime and waits for it from any executor.
    async fn on_runtime<T: Send + 'static>(
        &self,
        f: impl std::future::Future<Output = Result<T, KvError>> + Send + 'static,
    ) -> Result<T, KvError> {
        self.runtime()
            .spawn(f)
            .await
            .map_err(|e| KvError::Unavailable { detail: format!("an S3 request's task failed: {e}") })?
    }

    fn decode_loc(&self, key: &[u8], v: &[u8]) -> Result<Loc, KvError> {
        Loc::decode(v).ok_or_else(|| KvError::Corrupt {
            detail: format!("the locator entry of {} is {} bytes, not a location", hex(key), v.len()),
        })
    }

    /// The objects under `dir/` (after `offset`, if given), in key order, with their sizes.
    async fn list(&self, dir: &str, offset: Option<ObjectPath>) -> Result<Vec<(ObjectPath, u64)>, KvError> {
        let client = self.inner.client.clone();
        let prefix = self.object(dir);
        self.on_runtime(async move {
            let listing = match &offset {
                Some(o) => client.list_with_offset(Some(&prefix), o),
                None => client.list(Some(&prefix)),
            };
            let found: Vec<_> = listing.collect().await;
            found
                .into_iter()
                .map(|m| m.map(|m| (m.location, m.size)).map_err(|e| s3_error("list", &prefix, e)))
                .collect::<Result<Vec<_>, _>>()
        })
        .await
    }

    /// The keys of the store's objects under `dir/` (`seg`, `idx`).
    pub async fn list_objects(&self, dir: &str) -> Result<Vec<ObjectPath>, KvError> {
        Ok(self.list(dir, None).await?.into_iter().map(|(p, _)| p).collect())
    }

    async fn put_object(&self, path: ObjectPath, body: Vec<u8>) -> Result<(), KvError> {
        let client = self.inner.client.clone();
        self.on_runtime(async move {
            client.put(&path, PutPayload::from(body)).await.map(drop).map_err(|e| s3_error("put", &path, e))
        })
        .await
    }

    async fn get_object(&self, path: ObjectPath) -> Result<Vec<u8>, KvError> {
        let client = self.inner.client.clone();
        self.on_runtime(async move {
            let got = client.get(&path).await.map_err(|e| s3_error("get", &path, e))?;
            got.bytes().await.map(|b| b.to_vec()).map_err(|e| s3_error("get", &path, e))
        })
        .await
    }

    /// Deletes an object of the bucket (the store's own, or, in a test of lost data, behind
    /// its back). Deleting an absent object is not an error.
    #[doc(hidden)]
    pub async fn delete_object(&self, path: &ObjectPath) -> Result<(), KvError> {
        let (client, path) = (self.inner.client.clone(), path.clone());
        self.on_runtime(async move {
            match client.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(s3_error("delete", &path, e)),
            }
        })
        .await
    }

    /// A batch's index as the bucket holds it.
    async fn read_index(&self, seq: u64, puts_only: bool) -> Result<index::BatchIndex, KvError> {
        let path = self.index_path(seq, puts_only);
        let bytes = self.get_object(path.clone()).await?;
        let read =
            index::BatchIndex::decode(&bytes).map_err(|e| KvError::Corrupt { detail: format!("{path}: {e}") })?;
        if read.seq != seq {
            return Err(KvError::Corrupt { detail: format!("{path} is the index of batch {}", read.seq) });
        }
        Ok(read)
    }

    /// The segments or indexes (`dir` `seg` or `idx`) in the bucket, by number, with their
    /// paths, sizes and (for indexes) whether they hold puts alone.
    async fn numbered(&self, dir: &str, from: u64) -> Result<Vec<Numbered>, KvError> {
        let offset = from.checked_sub(1).map(|last| self.object(&format!("{dir}/{last:016x}")));
        let mut out = Vec::new();
        for (path, size) in self.list(dir, offset).await? {
            let parsed = path.filename().and_then(|f| match dir {
                "seg" => f.strip_suffix(".car").and_then(|h| u64::from_str_radix(h, 16).ok()).map(|s| (s, true)),
                _ => index::parse_name(f),
            });
            if let Some((seq, puts_only)) = parsed.filter(|(seq, _)| *seq >= from) {
                out.push(Numbered { seq, path, size, puts_only });
            }
        }
        Ok(out)
    }

    /// Deletes every index and segment numbered at or above the next number: batches whose
    /// locator batch a crash prevented (indexes first, so that no index names a segment that
    /// is gone). Returns how many objects.
    async fn sweep_orphans(&self) -> Result<u64, KvError> {
        let next = self.next_seq();
        let mut swept = 0;
        for dir in ["idx", "seg"] {
            for orphan in self.numbered(dir, next).await? {
                self.delete_object(&orphan.path).await?;
                swept += 1;
            }
        }
        Ok(swept)
    }

    /// Rebuilds an empty locator from the bucket: every index, in order, replayed; the next
    /// number after the last. A crash during a rebuild leaves the next number unwritten, so
    /// the next open replays again from the start (replaying is idempotent: the last
    /// operation on each key decides it). Returns the number of indexes replayed.
    async fn rebuild_locator(&self) -> Result<u64, KvError> {
        let found = self.numbered("idx", 0).await?;
        let Some(last) = found.last().map(|n| n.seq) else { return Ok(0) };
        let reads =
            futures::stream::iter(found.iter().map(|n| self.read_index(n.seq, n.puts_only))).buffered(REBUILD_READS);
        futures::pin_mut!(reads);
        let mut batch = WriteBatch::new();
        while let Some(read) = reads.next().await {
            let read = read?;
            for (key, loc) in read.puts {
                batch.put(Space::Blocks, key, loc.encode());
            }
            for (key, _) in read.deletes {
                batch.delete(Space::Blocks, key);
            }
            for op in read.others {
                match op {
                    Op::Put { space, key, value } => batch.put(space, key, value),
                    Op::Delete { space, key } => batch.delete(space, key),
                };
            }
            if batch.len() >= PAGE {
                self.inner.local.write(std::mem::take(&mut batch)).await?;
            }
        }
        batch.strict();
        self.inner.local.write_with_private(batch, vec![(NEXT_SEQ.to_vec(), (last + 1).to_be_bytes().to_vec())])?;
        self.inner.next_seq.store(last + 1, Ordering::SeqCst);
        Ok(found.len() as u64)
    }

    /// The bytes of `locs` (with their keys, for errors and checks), in order: one request per
    /// segment, all segments at once.
    async fn fetch(&self, wanted: Vec<(Vec<u8>, Loc)>) -> Result<Vec<Vec<u8>>, KvError> {
        let mut by_segment: BTreeMap<u64, Vec<usize>> = BTreeMap::new();
        // An empty block needs no request (and S3 has no empty range).
        for (i, (_, loc)) in wanted.iter().enumerate().filter(|(_, (_, loc))| loc.len > 0) {
            by_segment.entry(loc.seq).or_default().push(i);
        }
        let mut requests = Vec::with_capacity(by_segment.len());
        for (seq, idx) in by_segment {
            let client = self.inner.client.clone();
            let path = self.segment_path(seq);
            let ranges: Vec<_> = idx.iter().map(|&i| wanted[i].1.range()).collect();
            let task = self.on_runtime(async move {
                client.get_ranges(&path, &ranges).await.map_err(|e| s3_error("get", &path, e))
            });
            requests.push(async move { task.await.map(|parts| (idx, parts)) });
        }
        let mut out = vec![Vec::new(); wanted.len()];
        for result in futures::future::join_all(requests).await {
            let (idx, parts) = result?;
            for (i, bytes) in idx.into_iter().zip(parts) {
                out[i] = bytes.to_vec();
            }
        }
        for (i, (key, loc)) in wanted.iter().enumerate() {
            if !self.intact(key, loc, &out[i]) {
                // A truncated or damaged body: once more, then it is corrupt.
                let again = self.fetch_one(key, loc).await?;
                if !self.intact(key, loc, &again) {
                    return Err(KvError::Corrupt {
                        detail: format!(
                            "{} of {}: a body of {} bytes, {} expected",
                            hex(key),
                            self.segment_path(loc.seq),
                            again.len(),
                            loc.len
                        ),
                    });
                }
                out[i] = again;
            }
        }
        Ok(out)
    }

    /// The bytes at `loc` as the bucket holds them, unchecked.
    pub async fn read_at(&self, loc: Loc) -> Result<Vec<u8>, KvError> {
        self.fetch_one(&[], &loc).await
    }

    async fn fetch_one(&self, _key: &[u8], loc: &Loc) -> Result<Vec<u8>, KvError> {
        if loc.len == 0 {
            return Ok(Vec::new());
        }
        let client = self.inner.client.clone();
        let path = self.segment_path(loc.seq);
        let range = loc.range();
        let bytes = self
            .on_runtime(async move { client.get_range(&path, range).await.map_err(|e| s3_error("get", &path, e)) })
            .await?;
        Ok(bytes.to_vec())
    }

    /// The body has the block's length. (A value need not hash to its key under the `Kv`
    /// contract; the store checks hashes where it asks to, `Config::verify_puts`.)
    fn intact(&self, _key: &[u8], loc: &Loc, bytes: &[u8]) -> bool {
        bytes.len() == loc.len as usize
    }

    /// Commits a batch: the block puts `puts` as one segment, then the batch's index, then
    /// `rest` (the other operations) and the puts' locator entries as one locator batch.
    async fn commit(&self, puts: Vec<(Vec<u8>, Vec<u8>)>, rest: WriteBatch) -> Result<(), KvError> {
        let _order = self.inner.committing.lock().await;
        self.commit_locked(puts, rest).await
    }

    /// [`S3Kv::commit`] under the commit lock.
    async fn commit_locked(&self, puts: Vec<(Vec<u8>, Vec<u8>)>, mut rest: WriteBatch) -> Result<(), KvError> {
        let seq = self.next_seq();
        let mut record = index::BatchIndex { seq, ..Default::default() };
        // A block deletion is recorded with the segment its copy is in; deleting an absent
        // block changes nothing and is not recorded.
        let deleted = rest.deleted_keys(Space::Blocks);
        let present = self.inner.local.get_many(Space::Blocks, &deleted).await?;
        for (key, entry) in deleted.into_iter().zip(present) {
            if let Some(v) = entry {
                record.deletes.push((key.clone(), self.decode_loc(&key, &v)?.seq));
            }
        }
        record.others =
            rest.ops().iter().filter(|op| !matches!(op, Op::Delete { space: Space::Blocks, .. })).cloned().collect();
        if puts.is_empty() && record.is_empty() {
            return self.inner.local.write(rest).await;
        }
        if !puts.is_empty() {
            let (body, locs) = segment::encode(seq, &puts).map_err(|len| KvError::Backend {
                backend: "s3",
                op: "write",
                source: format!("a block of {len} bytes (a segment holds blocks of up to 4 GiB)").into(),
            })?;
            self.put_object(self.segment_path(seq), body).await?;
            self.crash_here(1)?;
            for ((key, _), loc) in puts.into_iter().zip(locs) {
                record.puts.push((key.clone(), loc));
                rest.put(Space::Blocks, key, loc.encode());
            }
        }
        let path = self.index_path(seq, record.puts_only());
        self.put_object(path, record.encode()).await?;
        self.crash_here(2)?;
        self.inner.local.write_with_private(rest, vec![(NEXT_SEQ.to_vec(), (seq + 1).to_be_bytes().to_vec())])?;
        self.inner.next_seq.store(seq + 1, Ordering::SeqCst);
        Ok(())
    }
}

/// A numbered object of the bucket: a segment or an index.
struct Numbered {
    seq: u64,
    path: ObjectPath,
    size: u64,
    /// An index of puts alone (`.idx`); `true` for segments.
    puts_only: bool,
}

/// A segment's blocks the locator names: the bytes of their sections, and each key with its
/// location.
type Named = (u64, Vec<(Vec<u8>, Loc)>);

/// What [`S3Kv::rewrite_segments`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rewritten {
    /// Segments deleted because no locator entry named them.
    pub dropped: u64,
    /// Segments whose live blocks were copied into a new one before they were deleted.
    pub rewritten: u64,
    /// Blocks copied.
    pub moved: u64,
    /// Bytes of the deleted segments.
    pub freed_bytes: u64,
    /// Indexes rewritten or deleted because records in them were needed no more.
    pub indexes_trimmed: u64,
}

impl S3Kv {
    /// Gives the bucket's space back after deletions (a cold prune's): a committed segment
    /// that no locator entry names is deleted; one whose named blocks take less than half of
    /// it has them copied into a new segment (one PUT, one locator batch pointing them there)
    /// and is deleted after. Runs under the commit lock, so no write or deletion interleaves
    /// with a rewrite. A crash leaves either the old segment named (the new one an orphan the
    /// next open deletes) or the old one unnamed (deleted by the next reclaim): nothing named
    /// is ever missing. Walks the whole locator, once.
    ///
    /// Indexes follow: a segment's index forgets its puts before the segment is deleted, and
    /// then a deletion record naming a segment no longer in the bucket is forgotten (no index
    /// still puts what it deleted). A replay of the indexes therefore always ends where the
    /// locator is.
    pub async fn rewrite_segments(&self) -> Result<Rewritten, KvError> {
        let _order = self.inner.committing.lock().await;
        let next = self.next_seq();
        // Named bytes and entries per segment, from the locator.
        let mut named: BTreeMap<u64, Named> = BTreeMap::new();
        self.each_location(|k, loc| {
            let entry = named.entry(loc.seq).or_default();
            // The block's section: its bytes, its CID (about the key's length) and the
            // section's length prefix.
            entry.0 += u64::from(loc.len) + k.len() as u64 + 8;
            entry.1.push((k.to_vec(), loc));
        })
        .await?;
        // The committed segments and indexes in the bucket.
        let committed = |n: &Numbered| n.seq < next;
        let segments: Vec<Numbered> = self.numbered("seg", 0).await?.into_iter().filter(committed).collect();
        let mut indexes: BTreeMap<u64, Numbered> =
            self.numbered("idx", 0).await?.into_iter().filter(committed).map(|n| (n.seq, n)).collect();
        let mut done = Rewritten::default();
        let mut present = std::collections::BTreeSet::new();
        for segment in segments {
            let seq = segment.seq;
            match named.remove(&seq) {
                None => done.dropped += 1,
                Some((live, entries)) if live * 2 < segment.size => {
                    // The copy is committed (its locator batch names the new segment) before
                    // the old segment goes.
                    let bytes = self.fetch(entries.clone()).await?;
                    let puts: Vec<_> = entries.into_iter().map(|(k, _)| k).zip(bytes).collect();
                    done.moved += puts.len() as u64;
                    self.commit_locked(puts, WriteBatch::new()).await?;
                    done.rewritten += 1;
                }
                Some(_) => {
                    present.insert(seq);
                    continue;
                }
            }
            if let Some(idx) = indexes.get(&seq) {
                if self.trim_index(idx, &|s| s != seq).await? {
                    done.indexes_trimmed += 1;
                    if idx.puts_only {
                        indexes.remove(&seq);
                    }
                }
            }
            self.delete_object(&segment.path).await?;
            done.freed_bytes += segment.size;
        }
        for idx in indexes.values().filter(|i| !i.puts_only) {
            if self.trim_index(idx, &|s| present.contains(&s)).await? {
                done.indexes_trimmed += 1;
            }
        }
        Ok(done)
    }

    /// Calls `f` with every block the locator names and its location, in key order, a page
    /// at a time.
    async fn each_location(&self, mut f: impl FnMut(&[u8], Loc) + Send) -> Result<(), KvError> {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = self.inner.local.scan(Space::Blocks, after.as_deref(), PAGE).await?;
            for (k, v) in &page {
                f(k, self.decode_loc(k, v)?);
            }
            match page.last() {
                Some((k, _)) if page.len() == PAGE => after = Some(k.clone()),
                _ => return Ok(()),
            }
        }
    }

    /// Rewrites an index keeping only the puts (if `keep` its own segment) and deletion
    /// records whose segment `keep` says is still there; deletes it if nothing is left.
    /// Returns whether it changed.
    async fn trim_index(&self, idx: &Numbered, keep: &(dyn Fn(u64) -> bool + Sync)) -> Result<bool, KvError> {
        if idx.puts_only && !keep(idx.seq) {
            self.delete_object(&idx.path).await?;
            return Ok(true);
        }
        let mut read = self.read_index(idx.seq, idx.puts_only).await?;
        let before = (read.puts.len(), read.deletes.len());
        if !keep(read.seq) {
            read.puts.clear();
        }
        read.deletes.retain(|(_, seq)| keep(*seq));
        if (read.puts.len(), read.deletes.len()) == before {
            return Ok(false);
        }
        if read.is_empty() {
            self.delete_object(&idx.path).await?;
        } else {
            self.put_object(idx.path.clone(), read.encode()).await?;
        }
        Ok(true)
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[async_trait::async_trait]
impl Kv for S3Kv {
    async fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        let local = self.inner.local.get(space, key).await?;
        if space != Space::Blocks {
            return Ok(local);
        }
        let Some(entry) = local else { return Ok(None) };
        let loc = self.decode_loc(key, &entry)?;
        Ok(self.fetch(vec![(key.to_vec(), loc)]).await?.pop())
    }

    async fn get_many(&self, space: Space, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        let entries = self.inner.local.get_many(space, keys).await?;
        if space != Space::Blocks {
            return Ok(entries);
        }
        let mut wanted = Vec::new();
        let mut slots = Vec::new();
        for (i, (key, entry)) in keys.iter().zip(&entries).enumerate() {
            if let Some(v) = entry {
                wanted.push((key.clone(), self.decode_loc(key, v)?));
                slots.push(i);
            }
        }
        let mut out = vec![None; keys.len()];
        for (slot, bytes) in slots.into_iter().zip(self.fetch(wanted).await?) {
            out[slot] = Some(bytes);
        }
        Ok(out)
    }

    async fn has(&self, space: Space, key: &[u8]) -> Result<bool, KvError> {
        self.inner.local.has(space, key).await
    }

    async fn write(&self, batch: WriteBatch) -> Result<(), KvError> {
        let strict = batch.durability() == splitstore_core::Durability::Strict;
        let upkeep = batch.is_maintenance();
        let mut rest = WriteBatch::new();
        if strict {
            rest.strict();
        }
        if upkeep {
            rest.maintenance();
        }
        let mut puts = Vec::new();
        for op in FjallKv::last_op_per_key(batch.into_ops()) {
            match op {
                Op::Put { space: Space::Blocks, key, value } => puts.push((key, value)),
                Op::Put { space, key, value } => {
                    rest.put(space, key, value);
                }
                Op::Delete { space, key } => {
                    rest.delete(space, key);
                }
            }
        }
        // Deletions commit under the commit lock too: a segment rewrite must not move a block
        // that a deletion is removing.
        self.commit(puts, rest).await
    }

    async fn scan_keys(&self, space: Space, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, KvError> {
        self.inner.local.scan_keys(space, after, limit).await
    }

    async fn scan(&self, space: Space, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>, KvError> {
        let entries = self.inner.local.scan(space, after, limit).await?;
        if space != Space::Blocks {
            return Ok(entries);
        }
        let wanted = entries
            .into_iter()
            .map(|(k, v)| self.decode_loc(&k, &v).map(|loc| (k, loc)))
            .collect::<Result<Vec<_>, _>>()?;
        let keys: Vec<Vec<u8>> = wanted.iter().map(|(k, _)| k.clone()).collect();
        Ok(keys.into_iter().zip(self.fetch(wanted).await?).collect())
    }

    /// Segments are durable once their PUT returned; this makes the locator durable.
    async fn flush(&self) -> Result<(), KvError> {
        self.inner.local.flush().await
    }

    /// Drops the segments nothing names any more and rewrites those less than half live
    /// ([`S3Kv::rewrite_segments`]), then the locator's own space.
    async fn reclaim(&self) -> Result<(), KvError> {
        self.rewrite_segments().await?;
        self.inner.local.reclaim().await
    }

    /// Blocks: counted from the locator (no byte crosses the network).
    async fn stats(&self, space: Space) -> Result<SpaceStats, KvError> {
        if space != Space::Blocks {
            return self.inner.local.stats(space).await;
        }
        let mut stats = SpaceStats::default();
        self.each_location(|_, loc| {
            stats.keys += 1;
            stats.bytes += u64::from(loc.len);
        })
        .await?;
        Ok(stats)
    }

    /// Blocks: the locator's estimate of its entries; the bytes in the bucket are unknown.
    async fn estimate(&self, space: Space) -> Result<Option<SpaceEstimate>, KvError> {
        Ok(self.inner.local.estimate(space).await?.map(|e| SpaceEstimate { keys: e.keys, bytes: None }))
    }

    /// The bucket has no size the store could fill: nothing to report.
    async fn footprint(&self) -> Result<Option<u64>, KvError> {
        Ok(None)
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            name: "s3",
            preferred_batch: 16_384,
            read_batch: Capabilities::DEFAULT_READ_BATCH,
            reclaims_space: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_and_print_back() {
        let l = S3Location::parse("s3://bucket/a/b/?endpoint=http://127.0.0.1:8333&region=eu-west-1").unwrap();
        assert_eq!(l.bucket, "bucket");
        assert_eq!(l.prefix, "a/b");
        assert_eq!(l.endpoint.as_deref(), Some("http://127.0.0.1:8333"));
        assert_eq!(l.region, "eu-west-1");
        assert_eq!(S3Location::parse(&l.url()).unwrap(), l);
        let plain = S3Location::parse("s3://b").unwrap();
        assert_eq!((plain.prefix.as_str(), plain.endpoint, plain.region.as_str()), ("", None, "us-east-1"));
        for bad in ["http://b/p", "s3:///p", "s3://b/p?endpoint=", "s3://b/p?color=red"] {
            assert!(S3Location::parse(bad).is_err(), "{bad}");
        }
    }
}
