//! Conversions between the core's types and the JS API's plain objects, and the TypeScript
//! declarations of those objects.

use js_sys::{Array, Reflect};
use splitstore_core::{
    import::HeadPolicy, kv::SpaceStats, CheckReport, Cid, CompactionReport, Config, Error, Info, KvError, Mode,
    Progress,
};
use wasm_bindgen::{prelude::wasm_bindgen, JsCast, JsValue};

use crate::{js::object, lock::LockPolicy};

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
  /** After this many ms of purge work the purge paces itself (default 1000). */
  purgePaceAfterMs?: number;
  /** Sleep/work ratio once the purge paces itself (default 4). */
  purgeSleepFactor?: number;
  /** Check every block's hash on put (default false). */
  verifyPuts?: boolean;
  /** When another tab has the store open: fail at once (default) or wait for it. */
  lock?: "fail" | "wait";
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

/** A compaction progress event. */
export interface CompactionProgress {
  phase: string;
  done: number;
  total?: number;
}

/** What a compaction did. */
export interface CompactionReport {
  headEpoch: number;
  boundaryEpoch: number;
  includeMessagesEpoch: number;
  marked: number;
  hotScanned: number;
  dead: number;
  moved: number;
  purged: number;
  rescued: number;
  protectedRefs: number;
  missing: number;
  unreadable: number;
  marksetBytes: number;
  marksetBytesPerObject: number;
  phases: { phase: string; ms: number }[];
  totalMs: number;
  resumed: boolean;
}

/** Object count and value bytes of one store. */
export interface StoreSize {
  objects: number;
  bytes: number;
}

/** Result of `info`. */
export interface Info {
  head: string[] | null;
  headEpoch: number | null;
  baseEpoch: number;
  compactions: number;
  hot: StoreSize;
  cold: StoreSize;
  compacting: boolean;
  pendingRecovery: boolean;
  /** True when opening the store finished an interrupted compaction. */
  recoveredOnOpen: boolean;
  lastCompaction?: CompactionReport;
  lastError?: string;
}

/** Result of `check`: the live set walked from the head. */
export interface CheckReport {
  hot: number;
  cold: number;
  missing: number;
  /** The first missing CIDs. */
  missingCids: string[];
}

/** Which store `exportCar` reads. */
export type ExportSource = "hot" | "cold" | "all";

/** Every rejection is an `Error` with a stable `code` and the underlying error as `cause`. */
export interface SplitStoreError extends Error {
  code: string;
  cause?: unknown;
}
"#;

/// Reads the options object of `importCar`; unknown keys are rejected.
pub fn parse_import_options(v: &JsValue) -> Result<HeadPolicy, JsValue> {
    let mut policy = HeadPolicy::default();
    if v.is_undefined() || v.is_null() {
        return Ok(policy);
    }
    if !v.is_object() {
        return Err(type_error("importCar options must be an object"));
    }
    let keys: Array = js_sys::Object::keys(v.unchecked_ref::<js_sys::Object>());
    for key in keys.iter() {
        let name = key.as_string().unwrap_or_default();
        let val = Reflect::get(v, &key)?;
        match name.as_str() {
            _ if val.is_undefined() => {}
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

/// Reads the options object of `SplitStore.open`. Unknown keys are rejected so that a typo
/// does not silently fall back to a default.
pub fn parse_config(v: &JsValue) -> Result<(Config, LockPolicy), JsValue> {
    // Browser defaults: smaller batches and more frequent yields than the native ones keep
    // every IndexedDB transaction and every task between yields short.
    let mut cfg = Config { batch_size: 4096, yield_every: 256, ..Config::default() };
    let mut policy = LockPolicy::Fail;
    if v.is_undefined() || v.is_null() {
        return Ok((cfg, policy));
    }
    if !v.is_object() {
        return Err(type_error("config must be an object"));
    }
    let keys: Array = js_sys::Object::keys(v.unchecked_ref::<js_sys::Object>());
    for key in keys.iter() {
        let name = key.as_string().unwrap_or_default();
        let val = Reflect::get(v, &key)?;
        if val.is_undefined() {
            continue;
        }
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
            "batchSize" => cfg.batch_size = usize::try_from(uint(&val, &name)?).unwrap_or(usize::MAX),
            "yieldEvery" => cfg.yield_every = usize::try_from(uint(&val, &name)?).unwrap_or(usize::MAX),
            "purgePaceAfterMs" => cfg.purge_pace_after_ms = uint(&val, &name)?,
            "purgeSleepFactor" => {
                cfg.purge_sleep_factor =
                    u32::try_from(uint(&val, &name)?).map_err(|_| type_error("config.purgeSleepFactor is too large"))?
            }
            "verifyPuts" => cfg.verify_puts = boolean(&val, &name)?,
            "lock" => {
                policy = match val.as_string().as_deref() {
                    Some("fail") => LockPolicy::Fail,
                    Some("wait") => LockPolicy::Wait,
                    _ => return Err(type_error("config.lock must be \"fail\" or \"wait\"")),
                }
            }
            other => return Err(type_error(&format!("unknown config option {other:?}"))),
        }
    }
    Ok((cfg, policy))
}

fn int(v: &JsValue, name: &str) -> Result<i64, JsValue> {
    match v.as_f64() {
        Some(f) if f.is_finite() && f.fract() == 0.0 && f.abs() <= 9_007_199_254_740_991.0 => Ok(f as i64),
        _ => Err(type_error(&format!("config.{name} must be an integer"))),
    }
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
    let _ = Reflect::set(&e, &"code".into(), &"InvalidArgument".into());
    e.into()
}

/// Parses a CID string argument.
pub fn parse_cid(s: &str) -> Result<Cid, JsValue> {
    Cid::try_from(s).map_err(|e| type_error(&format!("{s:?} is not a CID: {e}")))
}

/// A stable, machine-readable name for an error, set as the JS error's `code`.
pub fn error_code(e: &Error) -> &'static str {
    match e {
        Error::Kv { source, .. } => kv_error_code(source),
        Error::MissingBlock { .. } => "MissingBlock",
        Error::BadHeader { .. } => "BadHeader",
        Error::BadBlock { .. } => "BadBlock",
        Error::HashMismatch { .. } => "HashMismatch",
        Error::UnsupportedHash { .. } => "UnsupportedHash",
        Error::NoHead => "NoHead",
        Error::EmptyTipset => "EmptyTipset",
        Error::AlreadyCompacting => "AlreadyCompacting",
        Error::RecoveryPending => "RecoveryPending",
        Error::Closed => "Closed",
        Error::Poisoned => "Poisoned",
        Error::CorruptMeta { .. } => "CorruptMeta",
        Error::InvalidConfig { .. } => "InvalidConfig",
        _ => "Error",
    }
}

/// [`error_code`] for backend errors.
pub fn kv_error_code(e: &KvError) -> &'static str {
    match e {
        KvError::Crashed => "Crashed",
        KvError::QuotaExceeded { .. } => "QuotaExceeded",
        KvError::InUse { .. } => "InUse",
        KvError::Unavailable { .. } => "Unavailable",
        KvError::Corrupt { .. } => "Corrupt",
        _ => "Backend",
    }
}

/// A JS `Error` whose message is `e`'s and whose `cause` chain follows
/// [`std::error::Error::source`], with `code` on the outermost error.
pub fn error_to_js(e: &(dyn std::error::Error + 'static), code: &str) -> JsValue {
    let outer = chain_to_js(e);
    let _ = Reflect::set(&outer, &"code".into(), &code.into());
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

fn num(n: impl Into<f64>) -> JsValue {
    JsValue::from_f64(n.into())
}

fn num64(n: u64) -> JsValue {
    JsValue::from_f64(n as f64)
}

fn inum64(n: i64) -> JsValue {
    JsValue::from_f64(n as f64)
}

/// CIDs as an array of strings.
pub fn cids(list: &[Cid]) -> JsValue {
    list.iter().map(|c| JsValue::from_str(&c.to_string())).collect::<Array>().into()
}

/// A progress event object.
pub fn progress(p: &Progress) -> JsValue {
    let o = object(&[("phase", p.phase.as_str().into()), ("done", num64(p.done))]);
    if let Some(t) = p.total {
        let _ = Reflect::set(&o, &"total".into(), &num64(t));
    }
    o.into()
}

/// A compaction report object.
pub fn report(r: &CompactionReport) -> JsValue {
    let phases: Array = r
        .phases
        .iter()
        .map(|(p, ms)| JsValue::from(object(&[("phase", p.as_str().into()), ("ms", num64(*ms))])))
        .collect();
    object(&[
        ("headEpoch", inum64(r.head_epoch)),
        ("boundaryEpoch", inum64(r.boundary_epoch)),
        ("includeMessagesEpoch", inum64(r.include_messages_epoch)),
        ("marked", num64(r.marked)),
        ("hotScanned", num64(r.hot_scanned)),
        ("dead", num64(r.dead)),
        ("moved", num64(r.moved)),
        ("purged", num64(r.purged)),
        ("rescued", num64(r.rescued)),
        ("protectedRefs", num64(r.protected_refs)),
        ("missing", num64(r.missing)),
        ("unreadable", num64(r.unreadable)),
        ("marksetBytes", num64(r.markset_bytes)),
        ("marksetBytesPerObject", num(r.markset_bytes_per_object)),
        ("phases", phases.into()),
        ("totalMs", num64(r.total_ms)),
        ("resumed", r.resumed.into()),
    ])
    .into()
}

fn size(s: &SpaceStats) -> JsValue {
    object(&[("objects", num64(s.keys)), ("bytes", num64(s.bytes))]).into()
}

/// An info object.
pub fn info(i: &Info) -> JsValue {
    let o = object(&[
        ("head", i.head.as_deref().map_or(JsValue::NULL, cids)),
        ("headEpoch", i.head_epoch.map_or(JsValue::NULL, inum64)),
        ("baseEpoch", inum64(i.base_epoch)),
        ("compactions", num64(i.compactions)),
        ("hot", size(&i.hot)),
        ("cold", size(&i.cold)),
        ("compacting", i.compacting.into()),
        ("pendingRecovery", i.pending_recovery.into()),
        ("recoveredOnOpen", i.recovery.as_ref().is_some_and(|r| r.finished_purge).into()),
    ]);
    if let Some(r) = &i.last_compaction {
        let _ = Reflect::set(&o, &"lastCompaction".into(), &report(r));
    }
    if let Some(e) = &i.last_error {
        let _ = Reflect::set(&o, &"lastError".into(), &e.as_str().into());
    }
    o.into()
}

/// A check report object.
pub fn check(c: &CheckReport) -> JsValue {
    object(&[
        ("hot", num64(c.hot)),
        ("cold", num64(c.cold)),
        ("missing", num64(c.missing)),
        ("missingCids", cids(&c.missing_cids)),
    ])
    .into()
}
