//! The [`Kv`] contract on IndexedDB.
//!
//! # Layout
//!
//! One IndexedDB database per store *role*: a store named `n` lives in the databases
//! `n-hot` and `n-cold` (see [`db_name`]). Each database has one object store per [`Space`]
//! (named by [`Space::name`]) plus a private `sync` store that the core never sees:
//! [`IdbKv::flush`] writes a counter there, and the store identity record lives there
//! ([`crate::identity`]).
//! Hot and cold are separate [`Kv`] instances in the core, so separate databases keep them
//! independent (a cold store can be deleted, exported or quota-managed on its own) and give
//! each one its own Web Lock. Keys and values are `Uint8Array`s; IndexedDB compares binary
//! keys bytewise, which is exactly the order the contract requires.
//!
//! A role database may be *rotated* ([`Kv::reclaim`], module `rotation`): its live entries
//! are copied into the database of the next generation (`n-hot.1`, `n-hot.2`, …) and the old
//! one is deleted, which is how IndexedDB gives space back. [`IdbKv::name`] stays the role's
//! name; the lock is always the one of that name.
//!
//! # Transactions
//!
//! Every trait call is one transaction, created and finished inside the call: nothing is held
//! across an await that belongs to anything else. A write is driven to its commit by a task of
//! its own, so it commits (or aborts) whole even when its caller stops waiting, as an
//! IndexedDB transaction would anyway; a rotation waits for it. A [`WriteBatch`] is one `readwrite`
//! transaction over every object store it touches, so it commits whole or not at all; a
//! failed request aborts it and the error is returned. Large batches and `get_many` issue
//! their requests in chunks from the transaction's own events (module `chunked`), so no single
//! task on the page's thread runs long.
//!
//! # Durability
//!
//! Every `readwrite` transaction asks for `durability: "strict"`, relaxed batches included:
//! in Chromium a relaxed commit does not meet the contract's crash model, which says a strict
//! write makes every earlier write durable too. Chromium keeps IndexedDB in LevelDB (the SQLite
//! backend is off by default), where `"strict"` syncs the log and `"relaxed"` does not, and
//! two things escape a later strict commit: a value over 64 KiB (after compression) goes to a
//! blob file that is fsynced only when its own transaction is strict; and when LevelDB starts
//! a new log it does not sync the old one, so until the old memtable is written out a strict
//! commit syncs only the new log and a power cut can keep it while losing relaxed commits
//! before it (a dead-list deletion behind the purge record, a block behind the head). A strict
//! transaction is durable by itself when it completes, so every batch is; what that costs is
//! measured in `BENCHMARKS.md`.
//!
//! The `idb` crate provides the typed handles and the open/upgrade/delete flow; waiting on a
//! request or a transaction goes through the Promise bridges of [`crate::js`], which register
//! no Rust closure with the browser: dropping any of these futures (how a crash is modelled)
//! leaves nothing behind that could be called after it was freed.
//!
//! # Storage limit
//!
//! With a [`StorageLimit`] set ([`IdbKv::set_storage_limit`], shared by a store's two
//! databases), a batch not marked as upkeep is admitted by it before any request is issued:
//! a refused batch reaches IndexedDB not at all. A `QuotaExceededError` from the browser itself
//! is returned naming this database and the next step.
//!
//! # Connection life
//!
//! The connection holds a Web Lock on its database name ([`crate::lock`]). If another page
//! deletes or upgrades the database, the `versionchange` event closes this connection at once
//! (so the other page is not blocked) and every later call returns [`KvError::Unavailable`].
//!
//! Every open connection is registered with the panic hook ([`crate::guard`]), which closes
//! it before it releases the Web Locks; once the module has failed, every entry point refuses
//! with [`KvError::Unavailable`] before it touches IndexedDB.

use std::{
    cell::{Cell, RefCell},
    future::{Future, IntoFuture},
    rc::Rc,
};

use async_lock::RwLockReadGuardArc;
use futures::future::{select, Either};
use idb::{Factory, KeyRange, Query};
use js_sys::Array;
use splitstore_core::{
    kv::{Capabilities, Op, SpaceEstimate},
    Kv, KvError, Space, WriteBatch,
};
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{IdbDatabase, IdbTransaction};

mod bytes;
mod connection;
mod rotation;
mod schema;

pub use self::rotation::{existing_generations, generation_name};
#[doc(hidden)]
pub use self::rotation::{Rotated, RotationStep};

use self::{
    bytes::{array_of_bytes, bytes, idb_error, unavailable, value_bytes, BACKEND},
    connection::{ClosedWhy, Connection},
    rotation::Recorded,
    schema::{DatabaseWithOptions, SYNC_STORE},
};
use crate::{
    chunked::{Chain, ISSUE_CHUNK},
    guard,
    js::{kv_error, kv_error_js, object, JsError, Request, TxDone},
    limit::StorageLimit,
    lock::{LockPolicy, WebLock},
};

/// Which of a store's two databases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Where writes go and reads try first.
    Hot,
    /// Where compaction moves old blocks (per mode).
    Cold,
}

impl Role {
    /// `"hot"` or `"cold"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Hot => "hot",
            Role::Cold => "cold",
        }
    }
}

/// The IndexedDB database name of `store`'s `role` database.
pub fn db_name(store: &str, role: Role) -> String {
    format!("{store}-{}", role.as_str())
}

/// What a transaction does; every `Write` is committed with `durability: "strict"` (see
/// "Durability" above).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum TxMode {
    Read,
    Write,
}

/// Where a batch is deliberately broken, to prove that an aborted transaction applies nothing.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Before operation `n`, issue a request with an invalid key: it throws synchronously.
    InvalidKeyAt(usize),
    /// Before operation `n`, `add` a key that operation 0 already put: the request fails
    /// asynchronously, after the earlier requests were executed, and aborts the transaction.
    ConstraintAt(usize),
}

/// A [`Kv`] backed by one IndexedDB database. Clones share the connection, which closes
/// (and releases its lock) when the last clone is dropped or [`IdbKv::close`] is called.
#[derive(Clone, Debug)]
pub struct IdbKv {
    inner: Rc<Inner>,
}

#[derive(Debug)]
struct Inner {
    /// The database of the current generation (module `rotation`).
    conn: RefCell<Rc<Connection>>,
    /// The role's database name (its generation 0), which errors and the lock name.
    name: String,
    /// This open created the database (it did not exist before).
    created: bool,
    /// Why the connection is closed, once it is.
    closed: ClosedWhy,
    lock: RefCell<Option<WebLock>>,
    flushes: Cell<u64>,
    /// The store's storage limit, which writes other than upkeep must fit under.
    limit: RefCell<Option<Rc<StorageLimit>>>,
    /// Generations, the write gate and what a rotation records.
    rotation: rotation::State,
}

impl IdbKv {
    /// Opens (creating if needed) the database `name`, holding its Web Lock per `policy`.
    ///
    /// Errors: [`KvError::InUse`] when another holder has the lock; [`KvError::Unavailable`]
    /// when IndexedDB is missing, the database was created by a newer schema, the open is
    /// blocked by another page that keeps an older connection open, or the module has
    /// stopped after a panic.
    pub async fn open(name: &str, policy: LockPolicy) -> Result<Self, KvError> {
        guard::check_running()?;
        let lock = WebLock::acquire(&format!("splitstore:{name}"), policy).await?;
        let closed: ClosedWhy = Rc::new(Cell::new(None));
        let (conn, created, state) = rotation::open_current(name, &closed).await?;
        Ok(Self {
            inner: Rc::new(Inner {
                conn: RefCell::new(Rc::new(conn)),
                name: name.to_owned(),
                created,
                closed,
                lock: RefCell::new(lock),
                flushes: Cell::new(0),
                limit: RefCell::new(None),
                rotation: state,
            }),
        })
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Makes every later write other than upkeep fit under `limit` (shared by a store's
    /// databases, which share the origin's storage); `None` lifts it.
    pub fn set_storage_limit(&self, limit: Option<Rc<StorageLimit>>) {
        *self.inner.limit.borrow_mut() = limit;
    }

    /// The storage limit writes fit under, if one is set.
    pub fn storage_limit(&self) -> Option<Rc<StorageLimit>> {
        self.inner.limit.borrow().clone()
    }

    /// Names this database in a refusal: the browser's `QuotaExceededError` says nothing of
    /// which store or what to do.
    fn named(&self, e: KvError) -> KvError {
        match e {
            KvError::QuotaExceeded { detail } if !detail.starts_with(self.inner.name.as_str()) => {
                KvError::QuotaExceeded {
                    detail: format!(
                        "{}: the browser refused the write, the origin's storage quota is full ({detail}); \
                         compact() frees space",
                        self.inner.name
                    ),
                }
            }
            other => other,
        }
    }

    /// True while the lock is held by this connection.
    pub fn holds_lock(&self) -> bool {
        self.inner.lock.borrow().is_some()
    }

    /// True when this open created the database: it did not exist before (never created, or
    /// deleted or evicted since).
    pub fn created(&self) -> bool {
        self.inner.created
    }

    /// True when none of the core's keyspaces holds a key (the private store is not counted).
    pub async fn holds_nothing(&self) -> Result<bool, KvError> {
        // One key at most per space: `count()` would walk a whole object store.
        for space in Space::ALL {
            if !self.scan_keys(space, None, 1).await?.is_empty() {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The value of `key` in the private store.
    pub(crate) async fn get_private(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        let tx = self.transaction(&[SYNC_STORE], TxMode::Read, "get")?;
        let store = idb::Transaction::from(tx).object_store(SYNC_STORE).map_err(|e| idb_error("get", e))?;
        let req = store.get(Query::Key(JsValue::from_str(key))).map_err(|e| idb_error("get", e))?;
        let v = Request::watch(req.into(), "get").result().await?;
        value_bytes(v)
    }

    /// Writes `value` under `key` in the private store, durably (`"strict"`).
    pub(crate) async fn put_private(&self, key: &str, value: &[u8]) -> Result<(), KvError> {
        let writing = self.inner.rotation.enter_write().await;
        let tx = self.transaction(&[SYNC_STORE], TxMode::Write, "write")?;
        let recorded = self.inner.rotation.recording().then(|| Recorded::Private(key.to_owned(), value.to_vec()));
        let (key, value) = (key.to_owned(), bytes(value));
        let write = async move { put_private_in(tx, &key, &value).await };
        self.commit_gated(writing, write, 0, recorded).await
    }

    /// Closes the connection and deletes the database while still holding its lock (so no
    /// other open can slip in between), then releases the lock. The deletion waits for this
    /// connection's last transactions to finish (IndexedDB reports that wait as `blocked`).
    pub(crate) async fn close_and_delete(&self) -> Result<(), KvError> {
        let lock = self.inner.close_now();
        self.inner.rotation.settled().await;
        let physical = self.inner.conn.borrow().physical.clone();
        let result = delete_database(&physical, true).await;
        if let Some(lock) = lock {
            lock.release().await;
        }
        result
    }

    /// Closes the connection (after its running transactions finish) and releases the lock,
    /// returning once another open of this database can take it (a rotation under way stops
    /// first). Later calls return
    /// [`KvError::Unavailable`]. Idempotent.
    pub async fn close(&self) {
        let lock = self.inner.close_now();
        self.inner.rotation.settled().await;
        if let Some(lock) = lock {
            lock.release().await;
        }
    }

    /// Deletes the database `name`, every generation of it (module `rotation`).
    ///
    /// Fails with [`KvError::InUse`] while any page holds its lock (an open store), and with
    /// [`KvError::Unavailable`] if a connection outside this crate's control blocks it.
    pub async fn destroy(name: &str) -> Result<(), KvError> {
        guard::check_running()?;
        let lock = WebLock::acquire(&format!("splitstore:{name}"), LockPolicy::Fail).await?;
        let result = rotation::delete_generations(name).await;
        if let Some(lock) = lock {
            lock.release().await;
        }
        result
    }

    fn check_open(&self) -> Result<(), KvError> {
        guard::check_running()?;
        match self.inner.closed.get() {
            Some(why) => Err(KvError::Unavailable { detail: format!("{}: {why}", self.inner.name) }),
            None => Ok(()),
        }
    }

    /// A transaction on the current generation's database.
    fn transaction(&self, stores: &[&str], mode: TxMode, op: &'static str) -> Result<IdbTransaction, KvError> {
        self.check_open()?;
        let conn = self.inner.conn.borrow().clone();
        open_transaction(&conn.db, &self.inner.name, stores, mode, op)
    }

    /// Issues `ops` (the batch's operations `first..first + ops.len()`) in `tx` and returns
    /// the last request. On a synchronous failure the caller aborts the transaction.
    fn issue(
        stores: &mut Vec<(Space, idb::ObjectStore)>,
        tx: &idb::Transaction,
        ops: &[Op],
        first: usize,
        first_key: &[u8],
        fault: Option<Fault>,
    ) -> Result<Option<web_sys::IdbRequest>, KvError> {
        let mut last = None;
        for (i, op) in (first..).zip(ops) {
            let space = op.space();
            let store = match stores.iter().find(|(s, _)| *s == space) {
                Some((_, st)) => st.clone(),
                None => {
                    let st = tx.object_store(space.name()).map_err(|e| idb_error("write", e))?;
                    stores.push((space, st.clone()));
                    st
                }
            };
            match fault {
                Some(Fault::InvalidKeyAt(n)) if n == i => {
                    store.put(&JsValue::NULL, Some(&JsValue::NULL)).map_err(|e| idb_error("write", e))?;
                }
                Some(Fault::ConstraintAt(n)) if n == i => {
                    store.add(&bytes(b"dup"), Some(&bytes(first_key))).map_err(|e| idb_error("write", e))?;
                }
                _ => {}
            }
            last = Some(match op {
                Op::Put { key, value, .. } => {
                    store.put(&bytes(value), Some(&bytes(key))).map_err(|e| idb_error("write", e))?.into()
                }
                Op::Delete { key, .. } => {
                    store.delete(Query::Key(bytes(key))).map_err(|e| idb_error("write", e))?.into()
                }
            });
        }
        Ok(last)
    }

    /// [`Kv::write`] with an injected failure; the batch must leave no trace.
    #[doc(hidden)]
    pub async fn write_with_fault(&self, batch: WriteBatch, fault: Option<Fault>) -> Result<(), KvError> {
        self.write_batch(batch, fault).await.map_err(|e| self.named(e))
    }

    async fn write_batch(&self, batch: WriteBatch, fault: Option<Fault>) -> Result<(), KvError> {
        if batch.is_empty() {
            return if batch.durability() == splitstore_core::Durability::Strict { self.flush().await } else { Ok(()) };
        }
        let limit = self.storage_limit();
        if let Some(limit) = limit {
            self.check_open()?;
            limit.admit(&self.inner.name, &batch).await?;
        }
        let writing = self.inner.rotation.enter_write().await;
        let ops = batch.into_ops();
        // Only deleted blocks are garbage a rotation is for (module `rotation`).
        let deletes = ops.iter().filter(|op| matches!(op, Op::Delete { space: Space::Blocks, .. })).count() as u64;
        let recorded = self.inner.rotation.recording().then(|| Recorded::Ops(ops.clone()));
        let tx = self.transaction(&spaces_of(&ops), TxMode::Write, "write")?;
        self.commit_gated(writing, write_ops(tx, ops, fault), deletes, recorded).await
    }

    /// Drives `write` (issued on the current database) to its commit in a task of its own,
    /// holding the rotation gate until then, and records it for the rotation that copies, if
    /// one does. A write whose caller stops waiting still commits: holding the gate to the end
    /// keeps a rotation from starting or finishing around it, which could lose it.
    async fn commit_gated(
        &self,
        writing: RwLockReadGuardArc<()>,
        write: impl Future<Output = Result<(), KvError>> + 'static,
        deletes: u64,
        recorded: Option<Recorded>,
    ) -> Result<(), KvError> {
        let inner = Rc::clone(&self.inner);
        let (sent, outcome) = futures::channel::oneshot::channel();
        wasm_bindgen_futures::spawn_local(async move {
            // The transaction's requests are issued by chains that refuse once the module has
            // failed; this task only waits for it.
            let result = write.await;
            if guard::failed() {
                // Nothing of the store's is touched (or dropped) after a panic: the outcome
                // only wakes the caller, whose own task then stops.
                std::mem::forget((inner, writing, recorded));
                let _ = sent.send(result);
                return;
            }
            if result.is_ok() {
                inner.rotation.wrote(deletes, recorded);
            }
            drop(writing);
            let _ = sent.send(result);
        });
        outcome.await.unwrap_or_else(|_| {
            guard::check_running()?;
            Err(KvError::Unavailable {
                detail: format!("{}: the write's task ended without an outcome", self.inner.name),
            })
        })
    }

    /// Writes the next flush counter, strictly: [`Kv::flush`].
    async fn write_counter(&self) -> Result<(), KvError> {
        // A strict commit is written through the same log as every earlier commit, so it is
        // durable only after they are: writing one counter makes everything before it durable.
        let tx = self.transaction(&[SYNC_STORE], TxMode::Write, "flush")?;
        let done = TxDone::watch(&tx, "flush");
        let n = self.inner.flushes.get().wrapping_add(1);
        self.inner.flushes.set(n);
        let store = idb::Transaction::from(tx.clone()).object_store(SYNC_STORE).map_err(|e| idb_error("flush", e))?;
        if let Err(e) = store.put(&JsValue::from_f64(n as f64), Some(&JsValue::from_str("seq"))) {
            let _ = tx.abort();
            return Err(idb_error("flush", e));
        }
        done.wait().await
    }

    fn range_after(after: Option<&[u8]>) -> Result<Option<Query>, KvError> {
        match after {
            None => Ok(None),
            Some(k) => KeyRange::lower_bound(&bytes(k), Some(true))
                .map(|r| Some(Query::KeyRange(r)))
                .map_err(|e| idb_error("scan", e)),
        }
    }

    fn store_of(tx: &IdbTransaction, space: Space, op: &'static str) -> Result<idb::ObjectStore, KvError> {
        idb::Transaction::from(tx.clone()).object_store(space.name()).map_err(|e| idb_error(op, e))
    }
}

/// A transaction on `db` (of the role database `name`, for errors); every `Write` is strict.
fn open_transaction(
    db: &IdbDatabase,
    name: &str,
    stores: &[&str],
    mode: TxMode,
    op: &'static str,
) -> Result<IdbTransaction, KvError> {
    let names: Array = stores.iter().map(|s| JsValue::from_str(s)).collect();
    let (mode, durability) = match mode {
        TxMode::Write => ("readwrite", "strict"),
        TxMode::Read => ("readonly", "default"),
    };
    let options = object(&[("durability", JsValue::from_str(durability))]);
    db.unchecked_ref::<DatabaseWithOptions>().transaction_with_options(&names, mode, &options).map_err(|e| {
        let err = JsError::from_js(&e);
        if err.name == "InvalidStateError" {
            KvError::Unavailable { detail: format!("{name}: the connection is closed ({})", err.message) }
        } else {
            kv_error(op, err)
        }
    })
}

/// Puts `value` under `key` in the private store in `tx` (a `readwrite` transaction over it)
/// and waits for the commit.
async fn put_private_in(tx: IdbTransaction, key: &str, value: &JsValue) -> Result<(), KvError> {
    let done = TxDone::watch(&tx, "write");
    let store = idb::Transaction::from(tx.clone()).object_store(SYNC_STORE).map_err(|e| idb_error("write", e))?;
    if let Err(e) = store.put(value, Some(&JsValue::from_str(key))) {
        let _ = tx.abort();
        return Err(idb_error("write", e));
    }
    done.wait().await
}

/// The object stores `ops` touch, each once.
fn spaces_of(ops: &[Op]) -> Vec<&'static str> {
    let mut spaces: Vec<Space> = ops.iter().map(Op::space).collect();
    spaces.sort();
    spaces.dedup();
    spaces.iter().map(|s| s.name()).collect()
}

/// Issues `ops` in `tx` (a `readwrite` transaction over [`spaces_of`] them), in chunks from
/// the transaction's own events, and waits for the commit: all of them or, on any failure,
/// none.
async fn write_ops(tx: IdbTransaction, ops: Vec<Op>, fault: Option<Fault>) -> Result<(), KvError> {
    let done = TxDone::watch(&tx, "write");
    let itx = idb::Transaction::from(tx.clone());
    let first_key = match ops.first() {
        Some(Op::Put { key, .. } | Op::Delete { key, .. }) => key.clone(),
        None => Vec::new(),
    };
    let mut stores = Vec::with_capacity(4);
    let mut issued = 0;
    let chain = Chain::start(
        &tx,
        Box::new(move || {
            let end = (issued + ISSUE_CHUNK).min(ops.len());
            let last = IdbKv::issue(&mut stores, &itx, &ops[issued..end], issued, &first_key, fault)?;
            issued = end;
            Ok(if issued < ops.len() { last } else { None })
        }),
    );
    let committed = done.wait().await;
    match chain.take_error() {
        Some(e) => Err(e),
        None => committed,
    }
}

/// Deletes the database `name`; the caller holds its lock. A connection still open blocks
/// the deletion: unless `wait_when_blocked`, that fails at once (it belongs to another page).
pub(super) async fn delete_database(name: &str, wait_when_blocked: bool) -> Result<(), KvError> {
    let factory = Factory::new().map_err(|e| unavailable("indexedDB is not available", e))?;
    let mut req = factory.delete(name).map_err(|e| unavailable("deleteDatabase failed", e))?;
    if wait_when_blocked {
        return req.into_future().await.map_err(|e| unavailable("deleteDatabase failed", e));
    }
    let (tx, rx) = futures::channel::oneshot::channel::<()>();
    req.on_blocked(move |_| {
        let _ = tx.send(());
    });
    match select(req.into_future(), rx).await {
        Either::Left((r, _)) => r.map_err(|e| unavailable("deleteDatabase failed", e)),
        Either::Right(_) => Err(KvError::Unavailable {
            detail: format!("deleting {name} is blocked by a connection another page keeps open"),
        }),
    }
}

impl Inner {
    /// The synchronous part of [`IdbKv::close`]: the lock is released a moment later.
    fn close_now(&self) -> Option<WebLock> {
        if self.closed.get().is_none() {
            self.closed.set(Some("the store was closed"));
        }
        self.conn.borrow().close();
        self.lock.borrow_mut().take()
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        drop(self.close_now());
    }
}

#[async_trait::async_trait(?Send)]
impl Kv for IdbKv {
    async fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        let tx = self.transaction(&[space.name()], TxMode::Read, "get")?;
        let store = Self::store_of(&tx, space, "get")?;
        let req = store.get(Query::Key(bytes(key))).map_err(|e| idb_error("get", e))?;
        let v = Request::watch(req.into(), "get").result().await?;
        value_bytes(v)
    }

    async fn get_many(&self, space: Space, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let tx = self.transaction(&[space.name()], TxMode::Read, "get_many")?;
        let store = Self::store_of(&tx, space, "get_many")?;
        let done = TxDone::watch(&tx, "get_many");
        let reqs: Rc<RefCell<Vec<web_sys::IdbRequest>>> = Rc::new(RefCell::new(Vec::with_capacity(keys.len())));
        let (sink, keys_owned) = (reqs.clone(), keys.to_vec());
        let mut issued = 0;
        let chain = Chain::start(
            &tx,
            Box::new(move || {
                let end = (issued + ISSUE_CHUNK).min(keys_owned.len());
                let mut sink = sink.borrow_mut();
                for k in &keys_owned[issued..end] {
                    sink.push(store.get(Query::Key(bytes(k))).map_err(|e| idb_error("get_many", e))?.into());
                }
                issued = end;
                Ok(if issued < keys_owned.len() { sink.last().cloned() } else { None })
            }),
        );
        let completed = done.wait().await;
        if let Some(e) = chain.take_error() {
            return Err(e);
        }
        completed?;
        // Every request succeeded (else the transaction would have aborted): read the results.
        let reqs = reqs.borrow();
        let mut out = Vec::with_capacity(reqs.len());
        for r in reqs.iter() {
            out.push(value_bytes(r.result().map_err(|e| kv_error_js("get_many", &e))?)?);
        }
        Ok(out)
    }

    async fn has(&self, space: Space, key: &[u8]) -> Result<bool, KvError> {
        let tx = self.transaction(&[space.name()], TxMode::Read, "has")?;
        let store = Self::store_of(&tx, space, "has")?;
        let req = store.count(Some(Query::Key(bytes(key)))).map_err(|e| idb_error("has", e))?;
        let n = Request::watch(req.into(), "has").result().await?;
        Ok(n.as_f64().unwrap_or(0.0) > 0.0)
    }

    async fn write(&self, batch: WriteBatch) -> Result<(), KvError> {
        self.write_with_fault(batch, None).await
    }

    async fn scan_keys(&self, space: Space, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, KvError> {
        // IndexedDB reads a limit of 0 as "no limit".
        if limit == 0 {
            return Ok(Vec::new());
        }
        let tx = self.transaction(&[space.name()], TxMode::Read, "scan")?;
        let store = Self::store_of(&tx, space, "scan")?;
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        let req = store.get_all_keys(Self::range_after(after)?, Some(limit)).map_err(|e| idb_error("scan", e))?;
        let keys = Request::watch(req.into(), "scan").result().await?;
        array_of_bytes(keys, "key")
    }

    async fn scan(&self, space: Space, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>, KvError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let tx = self.transaction(&[space.name()], TxMode::Read, "scan")?;
        let store = Self::store_of(&tx, space, "scan")?;
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        // Both requests run in one read transaction, so they see the same snapshot and
        // return the same keys in the same order.
        let kreq = store.get_all_keys(Self::range_after(after)?, Some(limit)).map_err(|e| idb_error("scan", e))?;
        let vreq = store.get_all(Self::range_after(after)?, Some(limit)).map_err(|e| idb_error("scan", e))?;
        let kreq = Request::watch(kreq.into(), "scan");
        let vreq = Request::watch(vreq.into(), "scan");
        let keys = array_of_bytes(kreq.result().await?, "key")?;
        let values = array_of_bytes(vreq.result().await?, "value")?;
        if keys.len() != values.len() {
            return Err(KvError::Corrupt {
                detail: format!("scan returned {} keys but {} values", keys.len(), values.len()),
            });
        }
        Ok(keys.into_iter().zip(values).collect())
    }

    async fn flush(&self) -> Result<(), KvError> {
        self.write_counter().await.map_err(|e| self.named(e))
    }

    /// IndexedDB's own count of the object store (no value crosses into the page); the
    /// bytes are unknown (`navigator.storage.estimate()` covers the whole origin).
    async fn estimate(&self, space: Space) -> Result<Option<SpaceEstimate>, KvError> {
        let tx = self.transaction(&[space.name()], TxMode::Read, "estimate")?;
        let store = Self::store_of(&tx, space, "estimate")?;
        let req = store.count(None).map_err(|e| idb_error("estimate", e))?;
        let n = Request::watch(req.into(), "estimate").result().await?;
        Ok(Some(SpaceEstimate { keys: n.as_f64().unwrap_or(0.0) as u64, bytes: None }))
    }

    /// With a storage limit, the origin's usage (`navigator.storage.estimate()`): the browser
    /// reports nothing finer than the origin. Without one, unknown.
    async fn footprint(&self) -> Result<Option<u64>, KvError> {
        match self.storage_limit() {
            Some(limit) => Ok(limit.usage_now().await),
            None => Ok(None),
        }
    }

    /// Rotates the database when blocks deleted since the last rotation reach the policy's share
    /// of the live entries (module `rotation`); the space comes back once the origin's
    /// connections are opened again.
    async fn reclaim(&self) -> Result<(), KvError> {
        self.reclaim_space().await.map_err(|e| self.named(e))
    }

    fn capabilities(&self) -> Capabilities {
        let reclaims_space = self.inner.rotation.policy().is_some();
        Capabilities {
            name: BACKEND,
            preferred_batch: 4096,
            read_batch: Capabilities::DEFAULT_READ_BATCH,
            reclaims_space,
        }
    }
}
