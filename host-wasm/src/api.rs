//! The JS API: class `SplitStore`, every method returning a Promise.
//!
//! A store named `n` is the IndexedDB databases `n-hot` and `n-cold`, each held under a Web
//! Lock while open. Methods clone a handle to the open core store into their future, so the
//! JS object can be used while earlier calls are still running; `close` stops a running
//! compaction at its next yield, flushes, and closes both databases.

use std::{cell::RefCell, collections::HashSet, rc::Rc};

use js_sys::{Array, Function, Promise, Uint8Array};
use splitstore_core::{
    car::{encode_header_v1, encode_section, CarError},
    import::{HeadPolicy, ImportError},
    key::{DAG_CBOR, RAW},
    links::for_each_link,
    Cid, Error, Kv, NoProgress, PendingCompaction, Progress, Space, SplitStore,
};
use wasm_bindgen::{prelude::wasm_bindgen, JsValue};

use crate::{
    clock::JsClock,
    convert::{self, parse_cid, store_error, type_error},
    guard::{check_usable, spawn_promise},
    idb_kv::{db_name, IdbKv, Role},
    js::object,
};

type Store = SplitStore<IdbKv, JsClock>;

/// Entries per scan page while exporting.
const EXPORT_PAGE: usize = 2048;

/// A Filecoin hot/cold block store with online compaction, kept in IndexedDB.
#[wasm_bindgen(js_name = SplitStore)]
pub struct JsSplitStore {
    name: String,
    store: Rc<RefCell<Option<Rc<Store>>>>,
}

impl JsSplitStore {
    fn current(&self) -> Result<Rc<Store>, JsValue> {
        check_usable()?;
        self.store.borrow().clone().ok_or_else(|| store_error(&Error::Closed))
    }

    /// Runs `f` on the open store as a Promise.
    fn call<F, Fut>(&self, f: F) -> Promise
    where
        F: FnOnce(Rc<Store>) -> Fut + 'static,
        Fut: std::future::Future<Output = Result<JsValue, JsValue>> + 'static,
    {
        let store = self.current();
        spawn_promise(async move { f(store?).await })
    }
}

#[wasm_bindgen(js_class = SplitStore)]
impl JsSplitStore {
    /// Opens (creating if needed) the store `name`, finishing any compaction an earlier
    /// session left interrupted before it resolves.
    #[wasm_bindgen(unchecked_return_type = "Promise<SplitStore>")]
    pub fn open(
        name: String,
        #[wasm_bindgen(unchecked_optional_param_type = "SplitStoreConfig")] config: Option<JsValue>,
    ) -> Promise {
        spawn_promise(async move {
            if name.is_empty() {
                return Err(type_error("the store name must not be empty"));
            }
            let (config, policy) = convert::parse_config(&config.unwrap_or(JsValue::UNDEFINED))?;
            let hot = IdbKv::open(&db_name(&name, Role::Hot), policy).await.map_err(|e| convert::kv_error(&e))?;
            let cold = IdbKv::open(&db_name(&name, Role::Cold), policy).await.map_err(|e| convert::kv_error(&e))?;
            let store = match SplitStore::open(hot.clone(), cold.clone(), JsClock::new(), config).await {
                Ok(s) => s,
                Err(e) => {
                    hot.close().await;
                    cold.close().await;
                    return Err(store_error(&e));
                }
            };
            Ok(JsSplitStore { name, store: Rc::new(RefCell::new(Some(Rc::new(store)))) }.into())
        })
    }

    /// Deletes both databases of the store `name`. Fails while the store is open anywhere.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn destroy(name: String) -> Promise {
        spawn_promise(async move {
            for role in [Role::Hot, Role::Cold] {
                IdbKv::destroy(&db_name(&name, role)).await.map_err(|e| convert::kv_error(&e))?;
            }
            Ok(JsValue::UNDEFINED)
        })
    }

    /// The store's name.
    #[wasm_bindgen(getter)]
    pub fn name(&self) -> String {
        self.name.clone()
    }

    /// Stores a block under its CID (hot store). Identity-hash CIDs are never stored.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn put(&self, cid: String, #[wasm_bindgen(unchecked_param_type = "Uint8Array")] bytes: Vec<u8>) -> Promise {
        self.call(move |s| async move {
            let cid = parse_cid(&cid)?;
            s.put(&cid, bytes).await.map_err(|e| store_error(&e))?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// A block's bytes, or `undefined` when neither store has it.
    #[wasm_bindgen(unchecked_return_type = "Promise<Uint8Array | undefined>")]
    pub fn get(&self, cid: String) -> Promise {
        self.call(move |s| async move {
            let cid = parse_cid(&cid)?;
            Ok(match s.get(&cid).await.map_err(|e| store_error(&e))? {
                Some(b) => Uint8Array::from(&b[..]).into(),
                None => JsValue::UNDEFINED,
            })
        })
    }

    /// True when either store has the block.
    #[wasm_bindgen(unchecked_return_type = "Promise<boolean>")]
    pub fn has(&self, cid: String) -> Promise {
        self.call(move |s| async move {
            let cid = parse_cid(&cid)?;
            Ok(s.has(&cid).await.map_err(|e| store_error(&e))?.into())
        })
    }

    /// Imports a CAR (v1 or v2) into the hot store, checking every block against its CID;
    /// the header's roots then become the head tipset when `options.head` allows: `"extend"`
    /// (default: when the store has no head or they extend it), `"apply"` (a trusted file),
    /// `"keep"` (a file from a peer that is not trusted: never).
    #[wasm_bindgen(js_name = importCar, unchecked_return_type = "Promise<ImportResult>")]
    pub fn import_car(
        &self,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] bytes: Vec<u8>,
        #[wasm_bindgen(unchecked_param_type = "ImportOptions | undefined")] options: JsValue,
    ) -> Promise {
        self.call(move |s| async move {
            let policy = convert::parse_import_options(&options)?;
            import_car(s, bytes, policy).await
        })
    }

    /// Applies a new head tipset (its block-header CIDs). A compaction that the trigger rule
    /// decides runs in the background; `info().compacting` tells when it ends.
    #[wasm_bindgen(js_name = headChange, unchecked_return_type = "Promise<void>")]
    pub fn head_change(&self, #[wasm_bindgen(unchecked_param_type = "string[]")] cids: Array) -> Promise {
        self.call(move |s| async move {
            let tipset = cid_array(&cids, "headChange")?;
            if tipset.is_empty() {
                return Err(type_error("a tipset has at least one block"));
            }
            let pending = s.head_change(&[], &[tipset]).await.map_err(|e| store_error(&e))?;
            spawn_compaction(s, pending);
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Pins roots: their whole DAGs stay hot through every compaction, from the moment the
    /// promise resolves (durably: a crash afterwards does not undo it). Roots whose blocks are
    /// not stored yet are protected once they arrive.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn protect(&self, #[wasm_bindgen(unchecked_param_type = "string[]")] cids: Array) -> Promise {
        self.call(move |s| async move {
            let cids = cid_array(&cids, "protect")?;
            s.protect(&cids).await.map_err(|e| store_error(&e))?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Unpins roots: a compaction that starts afterwards may drop what nothing else keeps.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn unprotect(&self, #[wasm_bindgen(unchecked_param_type = "string[]")] cids: Array) -> Promise {
        self.call(move |s| async move {
            let cids = cid_array(&cids, "unprotect")?;
            s.unprotect(&cids).await.map_err(|e| store_error(&e))?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// The pinned roots, sorted.
    #[wasm_bindgen(unchecked_return_type = "Promise<string[]>")]
    pub fn protected(&self) -> Promise {
        self.call(move |s| async move { Ok(crate::convert::cids(&s.protected())) })
    }

    /// Runs a compaction now and resolves with its report. `onProgress` receives
    /// `{ phase, done, total? }` events; an exception it throws is ignored.
    #[wasm_bindgen(unchecked_return_type = "Promise<CompactionReport>")]
    pub fn compact(
        &self,
        #[wasm_bindgen(js_name = onProgress, unchecked_optional_param_type = "(e: CompactionProgress) => void")]
        on_progress: Option<Function>,
    ) -> Promise {
        self.call(move |s| async move {
            let sink = move |p: &Progress| {
                if let Some(f) = &on_progress {
                    if let Ok(event) = convert::progress(p) {
                        let _ = f.call1(&JsValue::UNDEFINED, &event);
                    }
                }
            };
            let report = s.compact(&sink).await.map_err(|e| store_error(&e))?;
            convert::report(&report)
        })
    }

    /// The store's state: head, base epoch, compactions, estimated sizes, compaction state and
    /// running counters, read in time independent of the store's size.
    #[wasm_bindgen(unchecked_return_type = "Promise<Info>")]
    pub fn info(&self) -> Promise {
        self.call(move |s| async move { convert::info(&s.info().await.map_err(|e| store_error(&e))?) })
    }

    /// Exact block counts and bytes of both stores: reads every block, so it takes time in
    /// proportion to the store.
    #[wasm_bindgen(unchecked_return_type = "Promise<Counts>")]
    pub fn count(&self) -> Promise {
        self.call(move |s| async move { convert::to_js(&s.count().await.map_err(|e| store_error(&e))?) })
    }

    /// Walks the live set from the head and counts where each object is.
    #[wasm_bindgen(unchecked_return_type = "Promise<CheckReport>")]
    pub fn check(&self) -> Promise {
        self.call(move |s| async move { convert::check(&s.check().await.map_err(|e| store_error(&e))?) })
    }

    /// A CARv1 of the hot store, the cold store, or both (a block in both is written once),
    /// rooted at the head. The store keys blocks by multihash and keeps no codec, so each
    /// section is named by a CIDv1 with the block's multihash and the DAG-CBOR codec when
    /// the bytes are one well-formed CBOR item, raw otherwise.
    #[wasm_bindgen(js_name = exportCar, unchecked_return_type = "Promise<Uint8Array>")]
    pub fn export_car(
        &self,
        #[wasm_bindgen(js_name = store, unchecked_param_type = "ExportSource")] which: String,
    ) -> Promise {
        self.call(move |s| async move {
            let (hot, cold) = match which.as_str() {
                "hot" => (true, false),
                "cold" => (false, true),
                "all" => (true, true),
                _ => return Err(type_error("exportCar takes \"hot\", \"cold\" or \"all\"")),
            };
            let car = export_car(&s, hot, cold).await?;
            Ok(Uint8Array::from(&car[..]).into())
        })
    }

    /// Stops a running compaction at its next yield (the next `open` finishes an interrupted
    /// purge), flushes both stores and closes them. Idempotent.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn close(&self) -> Promise {
        let slot = self.store.clone();
        spawn_promise(async move {
            let Some(store) = slot.borrow_mut().take() else { return Ok(JsValue::UNDEFINED) };
            let flushed = store.close().await;
            store.hot().close().await;
            store.cold().close().await;
            flushed.map_err(|e| store_error(&e))?;
            Ok(JsValue::UNDEFINED)
        })
    }
}

/// Runs a compaction decided by a head change on the page's executor.
fn spawn_compaction(store: Rc<Store>, pending: Option<PendingCompaction>) {
    let Some(pending) = pending else { return };
    wasm_bindgen_futures::spawn_local(async move {
        if let Err(e) = store.run_compaction(pending, &NoProgress).await {
            // The error is also kept for `info().lastError`.
            web_sys::console::warn_1(&format!("splitstore: background compaction failed: {e}").into());
        }
    });
}

fn car_error(e: &CarError) -> JsValue {
    convert::error_to_js(e, "BadCar")
}

async fn import_car(s: Rc<Store>, bytes: Vec<u8>, policy: HeadPolicy) -> Result<JsValue, JsValue> {
    let report = match s.import_car_with(&bytes, policy).await {
        Ok(r) => r,
        Err(ImportError::Car(e)) => return Err(car_error(&e)),
        Err(ImportError::Store(e)) => return Err(store_error(&e)),
    };
    let out = object(&[
        ("blocks", JsValue::from_f64(report.blocks as f64)),
        ("roots", convert::cids(&report.roots)),
        ("head", report.head_applied.into()),
    ]);
    if let Some(why) = &report.head_skipped {
        let _ = js_sys::Reflect::set(&out, &"headSkipped".into(), &why.to_string().into());
    }
    spawn_compaction(s, report.compaction);
    Ok(out.into())
}

/// The CID a stored block is exported under (see [`JsSplitStore::export_car`]).
fn export_cid(key: &[u8], bytes: &[u8]) -> Option<Cid> {
    let mh = cid::multihash::Multihash::<64>::from_bytes(key).ok()?;
    let codec = if for_each_link(bytes, |_| {}).is_ok() { DAG_CBOR } else { RAW };
    Some(Cid::new_v1(codec, mh))
}

async fn export_car(s: &Store, hot: bool, cold: bool) -> Result<Vec<u8>, JsValue> {
    let info = s.info().await.map_err(|e| store_error(&e))?;
    let mut out = Vec::new();
    encode_header_v1(info.head.as_deref().unwrap_or(&[]), &mut out);
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    let stores: [(bool, &IdbKv, &'static str); 2] = [(hot, s.hot(), "hot"), (cold, s.cold(), "cold")];
    for (wanted, kv, which) in stores {
        if !wanted {
            continue;
        }
        let dedupe = hot && cold;
        let mut after: Option<Vec<u8>> = None;
        loop {
            let page = kv
                .scan(Space::Blocks, after.as_deref(), EXPORT_PAGE)
                .await
                .map_err(|e| store_error(&Error::Kv { store: which, source: e }))?;
            let Some((last, _)) = page.last() else { break };
            after = Some(last.clone());
            for (k, v) in page {
                if dedupe && which == "cold" && seen.contains(&k) {
                    continue;
                }
                let cid = export_cid(&k, &v).ok_or_else(|| {
                    convert::error_to_js(
                        &splitstore_core::KvError::Corrupt {
                            detail: format!("{which} key {k:02x?} is not a multihash"),
                        },
                        "Corrupt",
                    )
                })?;
                encode_section(&cid, &v, &mut out);
                if dedupe && which == "hot" {
                    seen.insert(k);
                }
            }
            splitstore_core::Clock::yield_now(s.clock()).await;
        }
    }
    Ok(out)
}

/// An array of CID strings, for method `what`.
fn cid_array(cids: &Array, what: &str) -> Result<Vec<Cid>, JsValue> {
    cids.iter()
        .map(|c| c.as_string().ok_or_else(|| type_error(&format!("{what} takes an array of CID strings"))))
        .map(|c| c.and_then(|c| parse_cid(&c)))
        .collect()
}
