//! Conversions between the core's types and the JS API's plain objects, and the TypeScript
//! declarations of those objects.

use js_sys::{Array, Reflect};
use splitstore_core::{
    import::HeadPolicy,
    store::{BlockPage, ListCursor},
    CheckReport, Cid, CompactionReport, Config, Error, Info, KvError, Mode, Progress,
};
use wasm_bindgen::{prelude::wasm_bindgen, JsCast, JsValue};

use crate::{identity::IdentityError, lock::LockPolicy};

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** What a compaction does with blocks it removes from the hot store. */
export type Mode = "discard" | "universal" | "messages";

/** Options of `SplitStore.open`. Epoch counts are chain epochs. */
export interface SplitStoreConfig {
  /** Default "discard". */
  mode?: Mode;
  /** Finality F in epochs (default 900). */
  finality?: number;
  /** Messages and receipts stay hot this many finalities below the boundary (default 0). */
  messageRetention?: number;
  /** Compact when head - baseEpoch > thresholdFinalities * F (default 5). */
  thresholdFinalities?: number;
  /** State younger than head - boundaryFinalities * F stays hot (default 4). */
  boundaryFinalities?: number;
  /** A head older than this is out of sync (default 60); null disables sync checks. */
  syncGapSecs?: number | null;
  /** A head younger than this is back in sync (default 30). */
  syncWaitSecs?: number;
  /** Network-upgrade epochs: no automatic compaction within ±F of one. */
  upgradeEpochs?: number[];
  /** Record missing state inside the boundary instead of failing the compaction. */
  lenientState?: boolean;
  /** Objects per purge / move / collect batch (default 4096 in the browser). */
  batchSize?: number;
  /** Objects visited between yields to the event loop (default 256 in the browser). */
  yieldEvery?: number;
  /** The purge's first this many ms of work never pause (default 1000). */
  purgePaceAfterMs?: number;
  /**
   * The most the purge pauses after a page of deletions, as a multiple of the page's time
   * (default 4): while more than one in a hundred of the calls completed during the page
   * took `paceSlowCallMs` or longer. It halves after each page of fast calls and is none
   * after a page with no calls. 0: never pause.
   */
  purgeSleepFactor?: number;
  /** A call that takes this many ms or longer counts as slowed down, for the purge's pacing (default 10). */
  paceSlowCallMs?: number;
  /**
   * Dead blocks the purge deletes per transaction under the store's exclusive lock (default
   * 32): a read or write waits at most one such transaction. Smaller: shorter waits, more
   * transactions.
   */
  purgeLockedDeletes?: number;
  /** Check every block's hash on put (default false). */
  verifyPuts?: boolean;
  /** When another tab has the store open: fail at once (default) or wait for it. */
  lock?: "fail" | "wait";
  /**
   * Ask the browser to keep the origin's storage under pressure (`navigator.storage.persist()`)
   * once the store is open, without waiting for the answer (default true; `info().persisted`
   * reports it).
   */
  persist?: boolean;
  /**
   * The store must already exist (default false): when nothing of it is there (both databases
   * absent, or present without a completed store), the open rejects with `StoreEvicted` instead
   * of creating an empty store. For an embedder that knows it created the store before.
   */
  mustExist?: boolean;
  /**
   * Bytes the origin's storage may use (`navigator.storage.estimate().usage`, which counts
   * every database of the origin) before the store refuses writes other than a compaction's
   * with `QuotaExceeded`, keeping `storageReserve` of them for compactions so that a full
   * store can always compact. Default: 9/10 of the quota the browser reports when the store
   * opens (Chromium reports a quota that need not be the one it enforces: set the limit when
   * you know better); null: no limit (the browser's quota is the only bound, and a store that
   * fills it may be unable to compact).
   */
  storageLimit?: number | null;
  /**
   * Bytes below `storageLimit` kept for compactions (default: a quarter of the limit). A
   * compaction's own writes (its dead list above all) took 4.3 MB to compact a full store of
   * 18.6 MB in Chromium, a quarter of it; a smaller reserve may leave a full store unable to
   * compact.
   */
  storageReserve?: number;
  /**
   * Compact early, before the epoch threshold, once usage reaches this share of
   * `storageLimit` (default 0.75; null: only the epoch threshold triggers). The report says
   * so (`overSizeLimit`).
   */
  compactAtShare?: number | null;
  /**
   * Prune the cold store after every this many compactions (default null: only `prune()`).
   * Not in discard mode.
   */
  pruneEvery?: number | null;
  /** The state retention of automatic prunes (see `PruneOptions.retention`; default 0). */
  pruneRetention?: number;
  /**
   * Reify (`ReadOptions.inUse`): the most objects the cold part of a DAG may have to be
   * copied into hot (default 16384; 0 turns reify off).
   */
  reifyLimit?: number;
  /** Reify: the most DAGs waiting to be copied (default 1024); reads beyond it copy nothing. */
  reifyQueue?: number;
  /**
   * The most bytes of memory the kept graph may hold between compactions: the links of the
   * blocks a compaction loaded, so that the next one marks them without reading them (about
   * 60 bytes per object; default 0, off).
   */
  keptGraphBytes?: number;
  /**
   * The most bytes of memory the hot key list may hold between compactions: the keys of the
   * hot blocks but final headers, so that collect visits them instead of reading every key of
   * the hot database (32 bytes per key; default 0, off).
   */
  hotKeyListBytes?: number;
  /**
   * Give deleted blocks' space back: after a compaction (hot) or a prune (cold), copy the
   * database's live entries into a new database and delete the old one, once the blocks
   * deleted since its last rotation reach this multiple of the live entries (default 1; 0: every
   * time; false: never). Deleting entries does not shrink IndexedDB's files; deleting a
   * database does, once the origin's databases are opened again (the next `open` after a
   * `close`, or a reload). A rotation needs room for a second copy of the live entries;
   * refused by the quota, it waits for the next time.
   */
  rotation?: number | false;
}

/** Options of `prune`. */
export interface PruneOptions {
  /**
   * State to keep in the cold store: -1 all, 0 only what the compaction boundary needs, n that
   * and n more finalities of state roots (with their messages and receipts; messages mode
   * keeps every message). Headers back to genesis, what hot blocks link and pinned DAGs stay.
   */
  retention: number;
  /** Receives `{ phase, done, total? }` events; an exception it throws is ignored. */
  onProgress?: (e: CompactionProgress) => void;
}

/** Options of `get`, `getMany` and `has`. */
export interface ReadOptions {
  /**
   * The read is for state being computed (the reference's "hot view"): a block found only in
   * the cold store is copied into the hot one in the background, with the part of its DAG
   * that is cold, unless that part exceeds `reifyLimit` objects. Default false.
   */
  inUse?: boolean;
}

/** Options of `importCar`. */
export interface ImportOptions {
  /**
   * When the roots become the head: "extend" (default: when the store has no head yet, or
   * when they extend the current head through headers the store holds), "apply" (a trusted
   * file: always), "keep" (a file from a peer that is not trusted: never; move the head with
   * `headChange` once your own validation accepts it).
   */
  head?: "extend" | "apply" | "keep";
}

/** Result of `importCar`. */
export interface ImportResult {
  /** Blocks stored (identity-hash blocks are counted but never stored). */
  blocks: number;
  /** The CAR header's roots. */
  roots: string[];
  /** True when the roots were applied as the new head tipset. */
  head: boolean;
  /** Why the roots did not become the head, when they did not. */
  headSkipped?: string;
}

/**
 * The report types (`StoreInfo`, `Info`, `Metrics`, `Progress`, `CompactionReport`,
 * `PruneReport`, `WarmupReport`, `ReifyReport`, `RecoveryReport`, `Counts`, `SpaceStats`, `SpaceEstimate`, `CheckReport`, `Phase`) and
 * `ErrorCode` are generated from their Rust definitions, the ones that serialise them.
 */
/** A compaction progress event. */
export type CompactionProgress = Progress;

/**
 * A CID: its string form, its binary form, or any object with a `bytes` property holding the
 * binary form (a `CID` of `multiformats`).
 */
export type CidLike = string | Uint8Array | { bytes: Uint8Array };

/** A block for `putMany`. */
export interface BlockInput {
  cid: CidLike;
  bytes: Uint8Array;
}

/** Where a listing stands (opaque: pass `next` back to `listBlocks`). */
export interface ListCursor {
  store: "hot" | "cold";
  after: Uint8Array | null;
}

/** A page of `listBlocks`: each block's multihash and bytes. */
export interface BlockPage {
  blocks: { multihash: Uint8Array; bytes: Uint8Array }[];
  /** Where the next page starts; null once the listing is complete. */
  next: ListCursor | null;
}

/** Which store `exportCar` reads. */
export type ExportSource = "hot" | "cold" | "all";

/** Every rejection is an `Error` with a stable `code` and the underlying error as `cause`. */
export interface SplitStoreError extends Error {
  code: ErrorCode;
  cause?: unknown;
}
"#;

/// The own keys of the options object `v` whose values are not `undefined` (an option set to
/// `undefined` is an option not given), with their values.
fn defined_entries(v: &JsValue) -> Result<Vec<(String, JsValue)>, JsValue> {
    let keys: Array = js_sys::Object::keys(v.unchecked_ref::<js_sys::Object>());
    let mut out = Vec::with_capacity(keys.length() as usize);
    for key in keys.iter() {
        let val = Reflect::get(v, &key)?;
        if !val.is_undefined() {
            out.push((key.as_string().unwrap_or_default(), val));
        }
    }
    Ok(out)
}

/// Reads the options object of `prune`: the retention and the progress callback; unknown
/// keys are rejected.
pub fn parse_prune_options(v: &JsValue) -> Result<(i64, Option<js_sys::Function>), JsValue> {
    if !v.is_object() {
        return Err(type_error("prune takes an options object: { retention }"));
    }
    let (mut retention, mut on_progress) = (None, None);
    for (name, val) in defined_entries(v)? {
        match name.as_str() {
            "retention" => retention = Some(integer(&val, "options.retention")?),
            "onProgress" => {
                on_progress = Some(val.dyn_into().map_err(|_| type_error("options.onProgress must be a function"))?)
            }
            _ => return Err(type_error(&format!("unknown prune option {name:?}"))),
        }
    }
    let retention = retention.ok_or_else(|| type_error("options.retention is required (-1 keeps all state)"))?;
    Ok((retention, on_progress))
}

/// Reads the options of a read (`get`, `getMany`, `has`, named `what`): whether it is in use.
/// Unknown keys are rejected.
pub fn parse_read_options(v: Option<&JsValue>, what: &str) -> Result<bool, JsValue> {
    let Some(v) = v.filter(|v| !v.is_undefined() && !v.is_null()) else { return Ok(false) };
    if !v.is_object() {
        return Err(type_error(&format!("{what} options must be an object")));
    }
    let mut in_use = false;
    for (name, val) in defined_entries(v)? {
        match name.as_str() {
            "inUse" => in_use = val.as_bool().ok_or_else(|| type_error("options.inUse must be a boolean"))?,
            _ => return Err(type_error(&format!("unknown {what} option {name:?}"))),
        }
    }
    Ok(in_use)
}

/// Reads the options object of `importCar`; unknown keys are rejected.
pub fn parse_import_options(v: &JsValue) -> Result<HeadPolicy, JsValue> {
    let mut policy = HeadPolicy::default();
    if v.is_undefined() || v.is_null() {
        return Ok(policy);
    }
    if !v.is_object() {
        return Err(type_error("importCar options must be an object"));
    }
    for (name, val) in defined_entries(v)? {
        match name.as_str() {
            "head" => {
                let s = val.as_string().ok_or_else(|| type_error("options.head must be a string"))?;
                policy = HeadPolicy::parse(&s).ok_or_else(|| {
                    type_error(&format!("options.head must be \"extend\", \"apply\" or \"keep\", not {s:?}"))
                })?;
            }
            _ => return Err(type_error(&format!("unknown importCar option {name:?}"))),
        }
    }
    Ok(policy)
}

/// What `SplitStore.open` takes: the core's settings and the browser host's own.
#[derive(Clone, Debug)]
pub struct OpenOptions {
    /// The core's settings.
    pub config: Config,
    /// What to do when another tab holds the store.
    pub lock: LockPolicy,
    /// Ask for persistent storage once open.
    pub persist: bool,
    /// Refuse to create a store of which nothing is there.
    pub must_exist: bool,
    /// The storage limit and when to compact early.
    pub storage: StorageOptions,
    /// `rotation`: when a database is rotated to give its space back (`None`: never).
    pub rotation: Option<f64>,
}

/// `storageLimit`, `storageReserve` and `compactAtShare` as given.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StorageOptions {
    /// `None`: the default (a share of the reported quota); `Some(None)`: no limit.
    pub limit: Option<Option<u64>>,
    /// `None`: the default (a quarter of the limit).
    pub reserve: Option<u64>,
    /// Share of the limit at which to compact early; `None`: never early.
    pub compact_at: Option<f64>,
}

impl Default for StorageOptions {
    fn default() -> Self {
        Self { limit: None, reserve: None, compact_at: Some(0.75) }
    }
}

impl StorageOptions {
    /// The limit and reserve in bytes, given the quota the browser reports (`None`: no
    /// limit); a reserve given that is not below the limit is refused with a `TypeError`.
    pub fn resolve(&self, reported_quota: Option<u64>) -> Result<Option<(u64, u64)>, JsValue> {
        let limit = match (self.limit, reported_quota) {
            (Some(None), _) | (None, None) => return Ok(None),
            (Some(Some(given)), _) => given,
            (None, Some(quota)) => quota / 10 * 9,
        };
        let reserve = self.reserve.unwrap_or(limit / 4);
        if reserve >= limit {
            return Err(type_error(&format!(
                "config.storageReserve ({reserve} bytes) must be below the storage limit ({limit} bytes)"
            )));
        }
        Ok(Some((limit, reserve)))
    }
}

/// Reads the options object of `SplitStore.open`. Unknown keys are rejected so that a typo
/// does not silently fall back to a default.
pub fn parse_config(v: &JsValue) -> Result<OpenOptions, JsValue> {
    // Browser defaults: smaller batches and more frequent yields than the native ones keep
    // every IndexedDB transaction and every task between yields short. A purge transaction
    // holds the store's lock while it commits (strict: 10-15 ms, plus about 0.25 ms per
    // deletion in Chromium), so it deletes few blocks at a time (`www/bench/idb-foreground.mjs`).
    let mut cfg = Config {
        batch_size: 4096,
        yield_every: 256,
        purge_locked_deletes: 32,
        purge_idle_locked_deletes: 32,
        ..Config::default()
    };
    let mut policy = LockPolicy::Fail;
    let (mut persist, mut must_exist) = (true, false);
    let mut storage = StorageOptions::default();
    let mut rotation = Some(1.0);
    if v.is_undefined() || v.is_null() {
        return Ok(OpenOptions { config: cfg, lock: policy, persist, must_exist, storage, rotation });
    }
    if !v.is_object() {
        return Err(type_error("config must be an object"));
    }
    for (name, val) in defined_entries(v)? {
        match name.as_str() {
            "mode" => {
                let s = val.as_string().ok_or_else(|| type_error("config.mode must be a string"))?;
                cfg.mode = Mode::parse(&s).ok_or_else(|| {
                    type_error(&format!("config.mode must be \"discard\", \"universal\" or \"messages\", not {s:?}"))
                })?;
            }
            "finality" => cfg.finality = int(&val, &name)?,
            "messageRetention" => cfg.message_retention = int(&val, &name)?,
            "thresholdFinalities" => cfg.threshold_finalities = int(&val, &name)?,
            "boundaryFinalities" => cfg.boundary_finalities = int(&val, &name)?,
            "syncGapSecs" => cfg.sync_gap_secs = if val.is_null() { None } else { Some(uint(&val, &name)?) },
            "syncWaitSecs" => cfg.sync_wait_secs = uint(&val, &name)?,
            "upgradeEpochs" => {
                let arr: Array =
                    val.dyn_into().map_err(|_| type_error("config.upgradeEpochs must be an array of numbers"))?;
                cfg.upgrade_epochs = arr.iter().map(|e| int(&e, "upgradeEpochs[]")).collect::<Result<_, _>>()?;
            }
            "lenientState" => cfg.lenient_state = boolean(&val, &name)?,
            "batchSize" => cfg.batch_size = usize_of(&val, &name)?,
            "yieldEvery" => cfg.yield_every = usize::try_from(uint(&val, &name)?).unwrap_or(usize::MAX),
            "purgePaceAfterMs" => cfg.purge_pace_after_ms = uint(&val, &name)?,
            "purgeSleepFactor" => {
                cfg.purge_sleep_factor =
                    u32::try_from(uint(&val, &name)?).map_err(|_| type_error("config.purgeSleepFactor is too large"))?
            }
            "paceSlowCallMs" => cfg.pace_slow_call_ms = uint(&val, &name)?,
            "verifyPuts" => cfg.verify_puts = boolean(&val, &name)?,
            "lock" => {
                policy = match val.as_string().as_deref() {
                    Some("fail") => LockPolicy::Fail,
                    Some("wait") => LockPolicy::Wait,
                    _ => return Err(type_error("config.lock must be \"fail\" or \"wait\"")),
                }
            }
            "persist" => persist = boolean(&val, &name)?,
            "mustExist" => must_exist = boolean(&val, &name)?,
            "storageLimit" => {
                storage.limit = match val.is_null() {
                    true => Some(None),
                    false => match uint(&val, &name)? {
                        0 => return Err(type_error("config.storageLimit must be above 0, or null")),
                        bytes => Some(Some(bytes)),
                    },
                }
            }
            "storageReserve" => storage.reserve = Some(uint(&val, &name)?),
            "compactAtShare" => {
                storage.compact_at = match val.as_f64() {
                    _ if val.is_null() => None,
                    Some(f) if f > 0.0 && f <= 1.0 => Some(f),
                    _ => {
                        return Err(type_error("config.compactAtShare must be a number above 0 and at most 1, or null"))
                    }
                }
            }
            "pruneEvery" => cfg.prune_every = if val.is_null() { None } else { Some(uint(&val, &name)?) },
            "pruneRetention" => cfg.prune_retention = int(&val, &name)?,
            "reifyLimit" => cfg.reify_limit = usize_of(&val, &name)?,
            "reifyQueue" => cfg.reify_queue = usize_of(&val, &name)?,
            "keptGraphBytes" => cfg.kept_graph_bytes = usize_of(&val, &name)?,
            "hotKeyListBytes" => cfg.hot_key_list_bytes = usize_of(&val, &name)?,
            // The browser's purge writes the same size whether or not the page is reading.
            "purgeLockedDeletes" => {
                cfg.purge_locked_deletes = usize_of(&val, &name)?;
                cfg.purge_idle_locked_deletes = cfg.purge_locked_deletes;
            }
            "rotation" => {
                rotation = match val.as_f64() {
                    _ if val.as_bool() == Some(false) => None,
                    Some(f) if f.is_finite() && f >= 0.0 => Some(f),
                    _ => return Err(type_error("config.rotation must be a number of at least 0, or false")),
                }
            }
            other => return Err(type_error(&format!("unknown config option {other:?}"))),
        }
    }
    // A limit given is checked against the reserve now; a default one once the quota is known.
    storage.resolve(None)?;
    Ok(OpenOptions { config: cfg, lock: policy, persist, must_exist, storage, rotation })
}

fn int(v: &JsValue, name: &str) -> Result<i64, JsValue> {
    integer(v, &format!("config.{name}"))
}

/// A JS number that is an integer a double holds exactly; `what` names it in the error.
fn integer(v: &JsValue, what: &str) -> Result<i64, JsValue> {
    match v.as_f64() {
        Some(f) if f.is_finite() && f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_991.0 => Ok(f as i64),
        _ => Err(type_error(&format!("{what} must be an integer"))),
    }
}

/// [`uint`] as a `usize` (saturating: a count beyond the address space is no limit).
fn usize_of(v: &JsValue, name: &str) -> Result<usize, JsValue> {
    Ok(usize::try_from(uint(v, name)?).unwrap_or(usize::MAX))
}

fn uint(v: &JsValue, name: &str) -> Result<u64, JsValue> {
    let i = int(v, name)?;
    u64::try_from(i).map_err(|_| type_error(&format!("config.{name} must not be negative")))
}

fn boolean(v: &JsValue, name: &str) -> Result<bool, JsValue> {
    v.as_bool().ok_or_else(|| type_error(&format!("config.{name} must be a boolean")))
}

/// A JS `TypeError` with `code: "InvalidArgument"`.
pub fn type_error(message: &str) -> JsValue {
    let e = js_sys::TypeError::new(message);
    let _ = Reflect::set(&e, &"code".into(), &ErrorCode::InvalidArgument.as_str().into());
    e.into()
}

/// Parses a CID string argument.
pub fn parse_cid(s: &str) -> Result<Cid, JsValue> {
    Cid::try_from(s).map_err(|e| type_error(&format!("{s:?} is not a CID: {e}")))
}

/// A CID given as a string, as its binary form (`Uint8Array`), or as an object with a
/// `bytes` property holding that form (a `CID` of `multiformats`).
pub fn cid_of(v: &JsValue) -> Result<Cid, JsValue> {
    if let Some(s) = v.as_string() {
        return parse_cid(&s);
    }
    let bytes = if let Some(a) = v.dyn_ref::<js_sys::Uint8Array>() {
        a.to_vec()
    } else {
        match Reflect::get(v, &"bytes".into()).ok().and_then(|b| b.dyn_into::<js_sys::Uint8Array>().ok()) {
            Some(b) if v.is_object() => b.to_vec(),
            _ => return Err(type_error("a CID is a string, a Uint8Array or a multiformats CID")),
        }
    };
    Cid::try_from(bytes.as_slice()).map_err(|e| type_error(&format!("not a binary CID: {e}")))
}

/// Declares [`ErrorCode`] from one list: its variants, their names, and (through tsify) the
/// TypeScript union of those names.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $name:ident,)*) => {
        /// The `code` of every error the API rejects with: a stable, machine-readable name.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, tsify::Tsify)]
        pub enum ErrorCode {
            $($(#[$doc])* $name,)*
        }

        impl ErrorCode {
            /// The code as JS sees it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$name => stringify!($name),)*
                }
            }
        }
    };
}

error_codes! {
    /// Another tab or worker has the store open.
    InUse,
    /// A write was refused: the store's storage limit or the browser's quota is reached (a
    /// compaction can still run and free space).
    QuotaExceeded,
    /// An earlier write failed in a way that leaves the database unusable until reopened.
    Crashed,
    /// IndexedDB is not available here.
    Unavailable,
    /// Stored data that cannot be read back as written.
    Corrupt,
    /// Any other IndexedDB failure.
    Backend,
    /// A block the operation needs is in neither store.
    MissingBlock,
    /// A block header that does not decode.
    BadHeader,
    /// A block that does not decode.
    BadBlock,
    /// Bytes that do not hash to their CID.
    HashMismatch,
    /// A CID whose hash function the store cannot verify.
    UnsupportedHash,
    /// The operation needs a head and the store has none.
    NoHead,
    /// A tipset without blocks.
    EmptyTipset,
    /// A compaction is already running.
    AlreadyCompacting,
    /// An interrupted compaction must be finished first.
    RecoveryPending,
    /// A prune of a store in discard mode, whose cold store is only read.
    PruneInDiscardMode,
    /// The store was closed.
    Closed,
    /// An earlier failure stopped the store.
    Poisoned,
    /// The store's own records do not decode.
    CorruptMeta,
    /// A configuration the store refuses.
    InvalidConfig,
    /// The store was evicted by the browser or deleted, in whole or in part (one of its two
    /// databases is gone, or they belong to different stores), or, with `mustExist`, nothing
    /// of it is there. The message names what is missing.
    StoreEvicted,
    /// A CAR file that is malformed or whose blocks do not match their CIDs.
    BadCar,
    /// An argument of the wrong type or shape (a `TypeError`).
    InvalidArgument,
    /// Anything else.
    Error,
}

/// The code of a core error.
pub fn error_code(e: &Error) -> ErrorCode {
    match e {
        Error::Kv { source, .. } => kv_error_code(source),
        Error::MissingBlock { .. } => ErrorCode::MissingBlock,
        Error::BadHeader { .. } => ErrorCode::BadHeader,
        Error::BadBlock { .. } => ErrorCode::BadBlock,
        Error::HashMismatch { .. } => ErrorCode::HashMismatch,
        Error::UnsupportedHash { .. } => ErrorCode::UnsupportedHash,
        Error::NoHead => ErrorCode::NoHead,
        Error::EmptyTipset => ErrorCode::EmptyTipset,
        Error::AlreadyCompacting => ErrorCode::AlreadyCompacting,
        Error::RecoveryPending => ErrorCode::RecoveryPending,
        Error::PruneInDiscardMode => ErrorCode::PruneInDiscardMode,
        Error::Closed => ErrorCode::Closed,
        Error::Poisoned => ErrorCode::Poisoned,
        Error::CorruptMeta { .. } => ErrorCode::CorruptMeta,
        Error::InvalidConfig { .. } => ErrorCode::InvalidConfig,
        _ => ErrorCode::Error,
    }
}

/// The code of a backend error.
pub fn kv_error_code(e: &KvError) -> ErrorCode {
    match e {
        KvError::Crashed => ErrorCode::Crashed,
        KvError::QuotaExceeded { .. } => ErrorCode::QuotaExceeded,
        KvError::InUse { .. } => ErrorCode::InUse,
        KvError::Unavailable { .. } => ErrorCode::Unavailable,
        KvError::Corrupt { .. } => ErrorCode::Corrupt,
        _ => ErrorCode::Backend,
    }
}

/// A JS `Error` whose message is `e`'s and whose `cause` chain follows
/// [`std::error::Error::source`], with `code` on the outermost error.
pub fn error_to_js(e: &(dyn std::error::Error + 'static), code: ErrorCode) -> JsValue {
    let outer = chain_to_js(e);
    let _ = Reflect::set(&outer, &"code".into(), &code.as_str().into());
    outer
}

fn chain_to_js(e: &(dyn std::error::Error + 'static)) -> JsValue {
    let err = js_sys::Error::new(&e.to_string());
    if let Some(source) = e.source() {
        let _ = Reflect::set(&err, &"cause".into(), &chain_to_js(source));
    }
    err.into()
}

/// A core error as a JS `Error`.
pub fn store_error(e: &Error) -> JsValue {
    error_to_js(e, error_code(e))
}

/// A backend error as a JS `Error`.
pub fn kv_error(e: &KvError) -> JsValue {
    error_to_js(e, kv_error_code(e))
}

/// CIDs as an array of strings.
pub fn cids(list: &[Cid]) -> JsValue {
    list.iter().map(|c| JsValue::from_str(&c.to_string())).collect::<Array>().into()
}

/// A report type as a plain JS object, through its one serde definition (camelCase fields,
/// `null` for absent values, CIDs as strings).
/// Fails only for a number beyond 2^53, which a JS number cannot hold exactly.
pub fn to_js<T: serde::Serialize + ?Sized>(v: &T) -> Result<JsValue, JsValue> {
    v.serialize(&serde_wasm_bindgen::Serializer::json_compatible()).map_err(|e| {
        let err = js_sys::Error::new(&format!("a report does not fit JS numbers: {e}"));
        let _ = Reflect::set(&err, &"code".into(), &ErrorCode::Error.as_str().into());
        err.into()
    })
}

/// A progress event object.
pub fn progress(p: &Progress) -> Result<JsValue, JsValue> {
    to_js(p)
}

/// A compaction report object.
pub fn report(r: &CompactionReport) -> Result<JsValue, JsValue> {
    to_js(r)
}

/// What `info()` answers: the core's [`Info`] and what the browser says about the storage.
#[derive(Clone, Debug, serde::Serialize, tsify::Tsify)]
pub struct StoreInfo {
    /// The store's state and counters.
    #[serde(flatten)]
    pub info: Info,
    /// Whether the browser keeps the origin's storage under storage pressure
    /// (`navigator.storage.persisted()`, asked when `info()` is called); `null` when the
    /// browser cannot say. Without it, the browser may evict the store.
    pub persisted: Option<bool>,
    /// The storage limit, its reserve and the origin's usage at the last reading; `null`
    /// without a limit.
    pub storage: Option<crate::limit::LimitStatus>,
}

/// An info object.
pub fn info(i: &StoreInfo) -> Result<JsValue, JsValue> {
    to_js(i)
}

/// A refused store identity as a JS `Error`.
pub fn identity_error(e: &IdentityError) -> JsValue {
    match e {
        IdentityError::Gone(gone) => error_to_js(gone, ErrorCode::StoreEvicted),
        IdentityError::Kv(kv) => error_to_js(e, kv_error_code(kv)),
    }
}

/// A check report object.
pub fn check(c: &CheckReport) -> Result<JsValue, JsValue> {
    to_js(c)
}

/// A `ListCursor` object (absent: the start of the listing).
pub fn parse_list_cursor(v: &JsValue) -> Result<Option<ListCursor>, JsValue> {
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    let bad = || type_error("a list cursor is the `next` of a page of listBlocks");
    let store = Reflect::get(v, &"store".into()).map_err(|_| bad())?.as_string().ok_or_else(bad)?;
    let after = Reflect::get(v, &"after".into()).map_err(|_| bad())?;
    let after = if after.is_null() || after.is_undefined() {
        None
    } else {
        Some(after.dyn_into::<js_sys::Uint8Array>().map_err(|_| bad())?.to_vec())
    };
    match store.as_str() {
        "hot" => Ok(Some(ListCursor::Hot(after))),
        "cold" => Ok(Some(ListCursor::Cold(after))),
        _ => Err(bad()),
    }
}

/// A `BlockPage` object.
pub fn block_page(page: BlockPage) -> js_sys::Object {
    let bytes = |b: &[u8]| JsValue::from(js_sys::Uint8Array::from(b));
    let blocks: Array = page
        .blocks
        .iter()
        .map(|(k, v)| JsValue::from(crate::js::object(&[("multihash", bytes(k)), ("bytes", bytes(v))])))
        .collect();
    let next = match &page.next {
        None => JsValue::NULL,
        Some(c) => {
            let (store, after) = match c {
                ListCursor::Hot(a) => ("hot", a),
                ListCursor::Cold(a) => ("cold", a),
            };
            crate::js::object(&[("store", store.into()), ("after", after.as_deref().map_or(JsValue::NULL, bytes))])
                .into()
        }
    };
    crate::js::object(&[("blocks", blocks.into()), ("next", next)])
}
