//! The JS API: class `SplitStore`, every method returning a Promise.
//!
//! A store named `n` is the IndexedDB databases `n-hot` and `n-cold`, each held under a Web
//! Lock while open, and both carrying the store's identity record (module `identity`), by
//! which an open refuses a store the browser evicted in whole or in part. Methods clone a
//! handle to the open core store into their future, so the JS object can be used while
//! earlier calls are still running; `close` stops a running compaction at its next yield,
//! flushes, and closes both databases.

use std::{cell::RefCell, rc::Rc};

use js_sys::{Array, Function, Promise, Uint8Array};
use splitstore_core::{
    import::{HeadPolicy, ImportReport},
    Cid, CompactionReport, Error, PendingCompaction, Progress, ProgressSink, SplitStore,
};
use wasm_bindgen::{prelude::wasm_bindgen, JsCast, JsValue};

use futures::StreamExt;

use crate::{
    car_stream,
    clock::JsClock,
    convert::{self, cid_of, store_error, type_error},
    events::Events,
    guard::{self, check_usable, spawn_promise},
    idb_kv::{db_name, IdbKv, Role},
    identity,
    js::object,
    limit::StorageLimit,
    storage,
};

type Store = SplitStore<IdbKv, JsClock>;

/// Blocks per `listBlocks` page when the caller names no limit.
const LIST_PAGE: usize = 256;

/// A Filecoin hot/cold block store with online compaction, kept in IndexedDB.
#[wasm_bindgen(js_name = SplitStore)]
pub struct JsSplitStore {
    name: String,
    store: Rc<RefCell<Option<Rc<Store>>>>,
    events: Events,
    limit: Option<Rc<StorageLimit>>,
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

    /// [`Self::call`] with the store's events.
    fn call_with_events<F, Fut>(&self, f: F) -> Promise
    where
        F: FnOnce(Rc<Store>, Events) -> Fut + 'static,
        Fut: std::future::Future<Output = Result<JsValue, JsValue>> + 'static,
    {
        let events = self.events.clone();
        self.call(move |s| f(s, events))
    }
}

#[wasm_bindgen(js_class = SplitStore)]
impl JsSplitStore {
    /// Opens (creating if needed) the store `name`, finishing any compaction an earlier
    /// session left interrupted before it resolves. The store's events go to `events` when
    /// given (so a `recovery` listener can be attached before the open), else to a new
    /// target; either way `store.events` is that target.
    ///
    /// Rejects with `StoreEvicted` when the store was evicted or deleted in part (one of its
    /// databases is gone), or, with `mustExist`, in whole. Once open, asks the browser for
    /// persistent storage unless `persist` is false.
    #[wasm_bindgen(unchecked_return_type = "Promise<SplitStore>")]
    pub fn open(
        name: String,
        #[wasm_bindgen(unchecked_optional_param_type = "SplitStoreConfig")] config: Option<JsValue>,
        #[wasm_bindgen(unchecked_optional_param_type = "EventTarget")] events: Option<web_sys::EventTarget>,
    ) -> Promise {
        spawn_promise(async move {
            let events = Events::new(events)?;
            if name.is_empty() {
                return Err(type_error("the store name must not be empty"));
            }
            let mut options = convert::parse_config(&config.unwrap_or(JsValue::UNDEFINED))?;
            let policy = options.lock;
            let hot = IdbKv::open(&db_name(&name, Role::Hot), policy).await.map_err(|e| convert::kv_error(&e))?;
            let cold = IdbKv::open(&db_name(&name, Role::Cold), policy).await.map_err(|e| convert::kv_error(&e))?;
            if let Err(e) = identity::establish(&name, &hot, &cold, options.must_exist).await {
                hot.close().await;
                cold.close().await;
                return Err(convert::identity_error(&e));
            }
            // Set before the core opens: its recovery writes are upkeep, which the limit lets through.
            let reported_quota = match options.storage.limit {
                None => storage::estimate().await.map(|e| e.quota),
                Some(_) => None,
            };
            let resolved = match options.storage.resolve(reported_quota) {
                Ok(r) => r,
                Err(e) => {
                    hot.close().await;
                    cold.close().await;
                    return Err(e);
                }
            };
            let limit = resolved.map(|(limit, reserve)| {
                options.config.hot_size_limit = options.storage.compact_at.map(|share| (limit as f64 * share) as u64);
                Rc::new(StorageLimit::new(limit, reserve))
            });
            hot.set_storage_limit(limit.clone());
            hot.set_rotation(options.rotation);
            cold.set_rotation(options.rotation);
            cold.set_storage_limit(limit.clone());
            let store = match SplitStore::open(hot.clone(), cold.clone(), JsClock::new(), options.config).await {
                Ok(s) => s,
                Err(e) => {
                    hot.close().await;
                    cold.close().await;
                    return Err(store_error(&e));
                }
            };
            if options.persist {
                storage::request_persistence();
            }
            if let Some(report) = store.recovery() {
                events.recovery(&report);
            }
            Ok(JsSplitStore { name, store: Rc::new(RefCell::new(Some(Rc::new(store)))), events, limit }.into())
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

    /// The `EventTarget` the store dispatches its events on (`recovery`, `compactionstart`,
    /// `compactionprogress`, `compactionend`, `compactionerror`; see `SplitStoreEventMap`).
    #[wasm_bindgen(getter)]
    pub fn events(&self) -> web_sys::EventTarget {
        self.events.target().clone()
    }

    /// Stores a block under its CID (hot store). Identity-hash CIDs are never stored.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn put(
        &self,
        #[wasm_bindgen(unchecked_param_type = "CidLike")] cid: JsValue,
        #[wasm_bindgen(unchecked_param_type = "Uint8Array")] bytes: Vec<u8>,
    ) -> Promise {
        let cid = cid_of(&cid);
        self.call(move |s| async move {
            let cid = cid?;
            s.put(&cid, bytes).await.map_err(|e| store_error(&e))?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// A block's bytes, or `undefined` when neither store has it. With `{ inUse: true }` (a
    /// read for state being computed), a block found only in the cold store is copied into
    /// the hot one in the background, with the cold part of its DAG (see `reifyend`).
    #[wasm_bindgen(unchecked_return_type = "Promise<Uint8Array | undefined>")]
    pub fn get(
        &self,
        #[wasm_bindgen(unchecked_param_type = "CidLike")] cid: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "ReadOptions")] options: Option<JsValue>,
    ) -> Promise {
        let cid = cid_of(&cid);
        let in_use = convert::parse_read_options(options.as_ref(), "get");
        self.call_with_events(move |s, events| async move {
            let (cid, in_use) = (cid?, in_use?);
            let found = match in_use {
                true => s.hot_view().get(&cid).await,
                false => s.get(&cid).await,
            };
            let found = found.map_err(|e| store_error(&e))?;
            spawn_reify(&s, &events);
            Ok(match found {
                Some(b) => Uint8Array::from(&b[..]).into(),
                None => JsValue::UNDEFINED,
            })
        })
    }

    /// True when either store has the block; `options` as for `get`.
    #[wasm_bindgen(unchecked_return_type = "Promise<boolean>")]
    pub fn has(
        &self,
        #[wasm_bindgen(unchecked_param_type = "CidLike")] cid: JsValue,
        #[wasm_bindgen(unchecked_optional_param_type = "ReadOptions")] options: Option<JsValue>,
    ) -> Promise {
        let cid = cid_of(&cid);
        let in_use = convert::parse_read_options(options.as_ref(), "has");
        self.call_with_events(move |s, events| async move {
            let (cid, in_use) = (cid?, in_use?);
            let found = match in_use {
                true => s.hot_view().has(&cid).await,
                false => s.has(&cid).await,
            };
            let found = found.map_err(|e| store_error(&e))?;
            spawn_reify(&s, &events);
            Ok(found.into())
        })
    }

    /// Stores blocks in one atomic write: all land or none do.
    #[wasm_bindgen(js_name = putMany, unchecked_return_type = "Promise<void>")]
    pub fn put_many(&self, #[wasm_bindgen(unchecked_param_type = "BlockInput[]")] blocks: Array) -> Promise {
        let blocks = block_inputs(&blocks);
        self.call(move |s| async move {
            s.put_many(blocks?).await.map_err(|e| store_error(&e))?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Many blocks' bytes, in the order asked (`undefined` for an absent block), read with
    /// one IndexedDB transaction per store; `options` as for `get`.
    #[wasm_bindgen(js_name = getMany, unchecked_return_type = "Promise<(Uint8Array | undefined)[]>")]
    pub fn get_many(
        &self,
        #[wasm_bindgen(unchecked_param_type = "CidLike[]")] cids: Array,
        #[wasm_bindgen(unchecked_optional_param_type = "ReadOptions")] options: Option<JsValue>,
    ) -> Promise {
        let cids = cid_array(&cids, "getMany");
        let in_use = convert::parse_read_options(options.as_ref(), "getMany");
        self.call_with_events(move |s, events| async move {
            let (cids, in_use) = (cids?, in_use?);
            let found = match in_use {
                true => s.hot_view().get_many(&cids).await,
                false => s.get_many(&cids).await,
            };
            let found = found.map_err(|e| store_error(&e))?;
            spawn_reify(&s, &events);
            Ok(found
                .into_iter()
                .map(|b| b.map_or(JsValue::UNDEFINED, |b| Uint8Array::from(&b[..]).into()))
                .collect::<Array>()
                .into())
        })
    }

    /// Deletes a block from both stores, safely against a running compaction: no read finds
    /// it once the promise resolves, and no compaction brings it back. A DAG that links it is
    /// left incomplete, as in any block store.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn delete(&self, #[wasm_bindgen(unchecked_param_type = "CidLike")] cid: JsValue) -> Promise {
        let cid = cid_of(&cid);
        self.call(move |s| async move {
            s.delete(&cid?).await.map_err(|e| store_error(&e))?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Deletes blocks from both stores in one write (see `delete`).
    #[wasm_bindgen(js_name = deleteMany, unchecked_return_type = "Promise<void>")]
    pub fn delete_many(&self, #[wasm_bindgen(unchecked_param_type = "CidLike[]")] cids: Array) -> Promise {
        let cids = cid_array(&cids, "deleteMany");
        self.call(move |s| async move {
            s.delete_many(&cids?).await.map_err(|e| store_error(&e))?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// A page of the listing of every stored block (hot, then cold; a block in both once),
    /// starting at `cursor` (the start when absent), at most `limit` blocks (default 256).
    /// A page may be short while the listing goes on: it ends when `next` is null.
    #[wasm_bindgen(js_name = listBlocks, unchecked_return_type = "Promise<BlockPage>")]
    pub fn list_blocks(
        &self,
        #[wasm_bindgen(unchecked_param_type = "ListCursor | null | undefined")] cursor: JsValue,
        limit: Option<u32>,
    ) -> Promise {
        let cursor = convert::parse_list_cursor(&cursor);
        self.call(move |s| async move {
            let limit = limit.map_or(LIST_PAGE, |l| l as usize);
            let page = s.list_blocks(cursor?, limit).await.map_err(|e| store_error(&e))?;
            Ok(convert::block_page(page).into())
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
        self.call_with_events(move |s, events| async move {
            let policy = convert::parse_import_options(&options)?;
            import_car(s, bytes, policy, events).await
        })
    }

    /// Applies a new head tipset (its block-header CIDs). A compaction that the trigger rule
    /// decides runs in the background; `info().compacting` tells when it ends.
    #[wasm_bindgen(js_name = headChange, unchecked_return_type = "Promise<void>")]
    pub fn head_change(&self, #[wasm_bindgen(unchecked_param_type = "CidLike[]")] cids: Array) -> Promise {
        self.call_with_events(move |s, events| async move {
            let tipset = cid_array(&cids, "headChange")?;
            if tipset.is_empty() {
                return Err(type_error("a tipset has at least one block"));
            }
            let pending = s.head_change(&[], &[tipset]).await.map_err(|e| store_error(&e))?;
            spawn_compaction(s, pending, events);
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Pins roots: their whole DAGs stay hot through every compaction, from the moment the
    /// promise resolves (durably: a crash afterwards does not undo it). Roots whose blocks are
    /// not stored yet are protected once they arrive.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn protect(&self, #[wasm_bindgen(unchecked_param_type = "CidLike[]")] cids: Array) -> Promise {
        self.call(move |s| async move {
            let cids = cid_array(&cids, "protect")?;
            s.protect(&cids).await.map_err(|e| store_error(&e))?;
            Ok(JsValue::UNDEFINED)
        })
    }

    /// Unpins roots: a compaction that starts afterwards may drop what nothing else keeps.
    #[wasm_bindgen(unchecked_return_type = "Promise<void>")]
    pub fn unprotect(&self, #[wasm_bindgen(unchecked_param_type = "CidLike[]")] cids: Array) -> Promise {
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
    /// `{ phase, done, total? }` events, as `compactionprogress` listeners do; an exception it
    /// throws is ignored.
    #[wasm_bindgen(unchecked_return_type = "Promise<CompactionReport>")]
    pub fn compact(
        &self,
        #[wasm_bindgen(js_name = onProgress, unchecked_optional_param_type = "(e: CompactionProgress) => void")]
        on_progress: Option<Function>,
    ) -> Promise {
        self.call_with_events(move |s, events| async move {
            let report = run_with_events(&s, &events, on_progress, Run::Now).await;
            convert::report(&report.map_err(|e| store_error(&e))?)
        })
    }

    /// Prunes the cold store (universal and messages mode): deletes the state `retention` no
    /// longer keeps and resolves with the report. The store keeps serving meanwhile; a
    /// compaction waits for it.
    #[wasm_bindgen(unchecked_return_type = "Promise<PruneReport>")]
    pub fn prune(&self, #[wasm_bindgen(unchecked_param_type = "PruneOptions")] options: JsValue) -> Promise {
        self.call(move |s| async move {
            let (retention, on_progress) = convert::parse_prune_options(&options)?;
            let sink = CallbackSink(on_progress);
            convert::to_js(&s.prune(retention, &sink).await.map_err(|e| store_error(&e))?)
        })
    }

    /// The store's state: head, base epoch, compactions, estimated sizes, compaction state,
    /// running counters, whether the browser keeps the storage persistently, and the storage
    /// limit with the origin's usage, read in time independent of the store's size.
    #[wasm_bindgen(unchecked_return_type = "Promise<StoreInfo>")]
    pub fn info(&self) -> Promise {
        let limit = self.limit.clone();
        self.call(move |s| async move {
            let info = s.info().await.map_err(|e| store_error(&e))?;
            let storage = match limit {
                Some(l) => {
                    l.usage_now().await;
                    Some(l.status())
                }
                None => None,
            };
            convert::info(&convert::StoreInfo { info, persisted: storage::persisted().await, storage })
        })
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
            let source = car_stream::Source::parse(&which)?;
            let mut car = Vec::new();
            let mut chunks = std::pin::pin!(car_stream::chunks(s, source));
            while let Some(chunk) = chunks.next().await {
                car.extend_from_slice(&chunk?);
            }
            Ok(Uint8Array::from(&car[..]).into())
        })
    }

    /// `exportCar` as a `ReadableStream<Uint8Array>`: the header, then one chunk per page of
    /// blocks, each read when the consumer pulls, so an export of any size needs memory for
    /// one page. Errors (a closed store, a bad argument) arrive through the stream.
    #[wasm_bindgen(js_name = exportCarStream, unchecked_return_type = "ReadableStream<Uint8Array>")]
    pub fn export_car_stream(
        &self,
        #[wasm_bindgen(js_name = store, unchecked_param_type = "ExportSource")] which: String,
    ) -> Result<web_sys::ReadableStream, JsValue> {
        let source = car_stream::Source::parse(&which)?;
        Ok(car_stream::export(self.current()?, source))
    }

    /// `importCar` reading a `ReadableStream<Uint8Array>` (a `fetch` body, a `File` stream)
    /// chunk by chunk, so a file of any size needs memory for one chunk and one batch. Blocks
    /// are checked and written as they arrive: a stream that turns out malformed rejects with
    /// `BadCar`, leaves the verified blocks before the damage (unreferenced) and never moves
    /// the head.
    #[wasm_bindgen(js_name = importCarStream, unchecked_return_type = "Promise<ImportResult>")]
    pub fn import_car_stream(
        &self,
        #[wasm_bindgen(unchecked_param_type = "ReadableStream<Uint8Array>")] stream: web_sys::ReadableStream,
        #[wasm_bindgen(unchecked_param_type = "ImportOptions | undefined")] options: JsValue,
    ) -> Promise {
        self.call_with_events(move |s, events| async move {
            let policy = convert::parse_import_options(&options)?;
            let report = car_stream::import(&s, stream, policy).await?;
            Ok(import_result(s, report, events))
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

/// Runs a compaction decided by a head change on the page's executor, as a task that stops
/// with the module ([`guard::spawn`]).
fn spawn_compaction(store: Rc<Store>, pending: Option<PendingCompaction>, events: Events) {
    let Some(pending) = pending else { return };
    guard::spawn(async move {
        if let Err(e) = run_with_events(&store, &events, None, Run::Decided(pending)).await {
            // The error is also kept for `info().lastError` and sent as `compactionerror`.
            web_sys::console::warn_1(&format!("splitstore: background compaction failed: {e}").into());
        }
    });
}

/// Copies the cold DAGs that reads in use queued into hot, as a background task, when any
/// wait; `reifyend` (or `reifyerror`) reports it. Drains run one at a time: a second one
/// waits for the first and finds what was queued since.
fn spawn_reify(store: &Rc<Store>, events: &Events) {
    if store.reify_waiting() == 0 {
        return;
    }
    let (store, events) = (store.clone(), events.clone());
    guard::spawn(async move {
        let outcome = store.reify_pending().await;
        // Nothing left to report: another drain took the queue, or the store closed.
        if matches!(&outcome, Ok(r) if r.roots == 0) || matches!(outcome, Err(Error::Closed)) {
            return;
        }
        events.reify_end(&outcome);
    });
}

/// Which compaction [`run_with_events`] runs.
enum Run {
    /// One `compact()` asked for.
    Now,
    /// One a head change decided (it runs in the background).
    Decided(PendingCompaction),
}

/// Forwards progress to `compactionprogress` listeners and the `onProgress` callback.
struct EventSink {
    events: Events,
    on_progress: CallbackSink,
}

impl ProgressSink for EventSink {
    fn report(&self, p: &Progress) {
        self.events.progress(p);
        self.on_progress.report(p);
    }
}

/// Progress to an optional callback alone (a prune's: it dispatches no events).
struct CallbackSink(Option<Function>);

impl ProgressSink for CallbackSink {
    fn report(&self, p: &Progress) {
        if let (Some(f), Ok(event)) = (&self.0, convert::progress(p)) {
            let _ = f.call1(&JsValue::UNDEFINED, &event);
        }
    }
}

/// Runs a compaction with its events: `compactionstart`, every progress event, then
/// `compactionend` or `compactionerror`. A `compact()` while another compaction runs is
/// refused before anything is dispatched.
async fn run_with_events(
    store: &Store,
    events: &Events,
    on_progress: Option<Function>,
    run: Run,
) -> Result<CompactionReport, Error> {
    if matches!(run, Run::Now) && store.is_compacting() {
        return Err(Error::AlreadyCompacting);
    }
    let sink = EventSink { events: events.clone(), on_progress: CallbackSink(on_progress) };
    events.start(matches!(run, Run::Decided(_)));
    let outcome = match run {
        Run::Now => store.compact(&sink).await,
        Run::Decided(pending) => store.run_compaction(pending, &sink).await,
    };
    events.end(&outcome);
    outcome
}

async fn import_car(s: Rc<Store>, bytes: Vec<u8>, policy: HeadPolicy, events: Events) -> Result<JsValue, JsValue> {
    let report = s.import_car_with(&bytes, policy).await.map_err(|e| car_stream::import_error(&e))?;
    Ok(import_result(s, report, events))
}

/// The `ImportResult` object; starts the compaction the new head decided, if any.
fn import_result(s: Rc<Store>, report: ImportReport, events: Events) -> JsValue {
    let out = object(&[
        ("blocks", JsValue::from_f64(report.blocks as f64)),
        ("roots", convert::cids(&report.roots)),
        ("head", report.head_applied.into()),
    ]);
    if let Some(why) = &report.head_skipped {
        let _ = js_sys::Reflect::set(&out, &"headSkipped".into(), &why.to_string().into());
    }
    spawn_compaction(s, report.compaction, events);
    out.into()
}

/// An array of CIDs (see [`cid_of`]), for method `what`.
fn cid_array(cids: &JsValue, what: &str) -> Result<Vec<Cid>, JsValue> {
    let Some(cids) = cids.dyn_ref::<Array>() else {
        return Err(type_error(&format!("{what} takes an array of CIDs")));
    };
    cids.iter().map(|c| cid_of(&c).map_err(|_| type_error(&format!("{what}: every entry must be a CID")))).collect()
}

/// The `{ cid, bytes }` objects of `putMany`.
fn block_inputs(blocks: &JsValue) -> Result<Vec<(Cid, Vec<u8>)>, JsValue> {
    let bad = || type_error("putMany takes an array of { cid, bytes: Uint8Array }");
    let blocks = blocks.dyn_ref::<Array>().ok_or_else(bad)?;
    blocks
        .iter()
        .map(|b| {
            let cid = cid_of(&js_sys::Reflect::get(&b, &"cid".into()).map_err(|_| bad())?)?;
            let bytes = js_sys::Reflect::get(&b, &"bytes".into()).map_err(|_| bad())?;
            let bytes = bytes.dyn_into::<Uint8Array>().map_err(|_| bad())?;
            Ok((cid, bytes.to_vec()))
        })
        .collect()
}
