//! Rotation: how a role's database gives its space back to the browser.
//!
//! Deleting entries from an IndexedDB object store does not shrink Chromium's files much:
//! LevelDB keeps the deleted entries' tables until its own compaction reaches them, and a copy
//! into a new object store of the same database only adds tombstones. A database that is
//! deleted does give its files back, once the origin's connections are opened again
//! (`BENCHMARKS.md`, "Does IndexedDB give space back after a compaction?"). So a rotation
//! copies the live entries into a new database and deletes the old one.
//!
//! # Generations
//!
//! A role database `n` (such as `store-hot`) is generation 0; generation `g > 0` is the
//! database `n.g`. The Web Lock is always the one of `n`, so one holder sees every generation.
//! A generation `g > 0` is **complete** once its private store holds [`GENERATION_KEY`] = `g`:
//! that strict write, made after every copied and replayed entry committed, is the rotation's
//! commit point. An open takes the highest complete generation (generation 0 needs no mark),
//! deletes every higher one (a copy a crash interrupted) and every lower one (superseded).
//!
//! # While the copy runs
//!
//! Reads and writes go on to the current database. A write holds the gate shared; the
//! rotation takes it exclusively twice: to start recording (so every write that completes
//! during the copy is recorded, whether the copy met its keys before or after it), and to
//! finish: replay what was recorded into the new database in order, mark it complete, and
//! make it current. A read that began on the old database ends there; closing the old
//! connection waits for it. The old database is deleted last; a crash before that leaves it
//! to the next open.
//!
//! A rotation needs room for a second copy of the live entries: refused by the quota, it is
//! abandoned (the new database deleted) and the store goes on in the old one.

use std::{
    cell::{Cell, RefCell},
    sync::Arc,
};

use async_lock::{Mutex, RwLock, RwLockReadGuardArc, RwLockWriteGuard};
use idb::{KeyRange, Query};
use js_sys::{Array, Promise, Reflect};
use splitstore_core::{kv::Op, Kv, KvError, Space};
use wasm_bindgen::{prelude::wasm_bindgen, JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::IdbDatabase;

use super::{
    bytes::{idb_error, value_bytes},
    connection::{ClosedWhy, Connection},
    delete_database, open_transaction, put_private_in, spaces_of, write_ops, IdbKv, TxMode, SYNC_STORE,
};
use crate::{
    chunked::{Chain, ISSUE_CHUNK},
    js::{kv_error_js, Request, TxDone},
};

/// The private key whose value `g` (8 bytes, little-endian) makes generation `g` complete.
pub(super) const GENERATION_KEY: &str = "generation";
/// The private key counting the blocks deleted since the last rotation (8 bytes, little-endian),
/// written at each [`Kv::reclaim`](splitstore_core::Kv::reclaim) that does not rotate.
pub(super) const GARBAGE_KEY: &str = "garbage";
/// Entries per copy transaction.
const COPY_CHUNK: u32 = 2048;

/// The database name of generation `g` of the role database `name`.
pub fn generation_name(name: &str, g: u64) -> String {
    match g {
        0 => name.to_owned(),
        g => format!("{name}.{g}"),
    }
}

/// The generation `physical` is of `name`, if it is one.
fn generation_of(name: &str, physical: &str) -> Option<u64> {
    if physical == name {
        return Some(0);
    }
    let digits = physical.strip_prefix(name)?.strip_prefix('.')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || digits.starts_with('0') {
        return None;
    }
    digits.parse().ok()
}

#[wasm_bindgen]
extern "C" {
    /// An `IDBFactory`, for `databases()` (which the `idb` crate does not bind).
    type FactoryWithList;

    #[wasm_bindgen(method, catch, js_name = databases)]
    fn databases(this: &FactoryWithList) -> Result<Promise, JsValue>;
}

/// The generations of `name` that exist, highest first; `None` when the browser cannot list
/// databases (`indexedDB.databases()`), where rotation is off and only generation 0 is used.
pub async fn existing_generations(name: &str) -> Result<Option<Vec<u64>>, KvError> {
    let factory = Reflect::get(&js_sys::global(), &"indexedDB".into()).unwrap_or(JsValue::UNDEFINED);
    let listing = Reflect::get(&factory, &"databases".into()).unwrap_or(JsValue::UNDEFINED);
    if factory.is_undefined() || !listing.is_function() {
        return Ok(None);
    }
    let promise = factory.unchecked_ref::<FactoryWithList>().databases().map_err(|e| kv_error_js("open", &e))?;
    let list: Array =
        JsFuture::from(promise).await.map_err(|e| kv_error_js("open", &e))?.dyn_into().unwrap_or_default();
    let mut gens: Vec<u64> = list
        .iter()
        .filter_map(|info| Reflect::get(&info, &"name".into()).ok()?.as_string())
        .filter_map(|physical| generation_of(name, &physical))
        .collect();
    gens.sort_unstable_by(|a, b| b.cmp(a));
    gens.dedup();
    Ok(Some(gens))
}

/// Deletes every generation of `name` (the caller holds its lock), lowest first: an
/// interrupted deletion never leaves a superseded generation without the one that
/// supersedes it, which the next open would take for current. A connection another page
/// keeps open blocks it: that fails at once.
pub(super) async fn delete_generations(name: &str) -> Result<(), KvError> {
    let mut listed = existing_generations(name).await?.unwrap_or_default();
    if !listed.contains(&0) {
        listed.push(0);
    }
    listed.sort_unstable();
    for g in listed {
        delete_database(&generation_name(name, g), false).await?;
    }
    Ok(())
}

/// A little-endian `u64` in `db`'s private store.
async fn private_u64(db: &IdbDatabase, name: &str, key: &str) -> Result<Option<u64>, KvError> {
    let tx = open_transaction(db, name, &[SYNC_STORE], TxMode::Read, "open")?;
    let store = idb::Transaction::from(tx).object_store(SYNC_STORE).map_err(|e| idb_error("open", e))?;
    let req = store.get(Query::Key(JsValue::from_str(key))).map_err(|e| idb_error("open", e))?;
    let value = value_bytes(Request::watch(req.into(), "open").result().await?)?;
    Ok(value.and_then(|v| <[u8; 8]>::try_from(v.as_slice()).ok()).map(u64::from_le_bytes))
}

/// Opens the current generation of `name` (the caller holds its lock) and deletes every other
/// one. The flag is true when this open created the database.
pub(super) async fn open_current(name: &str, closed: &ClosedWhy) -> Result<(Connection, bool, State), KvError> {
    let listed = existing_generations(name).await?;
    let mut current = None;
    for &g in listed.iter().flatten().take_while(|&&g| g > 0) {
        let physical = generation_name(name, g);
        let (conn, _) = Connection::open(&physical, closed).await?;
        if private_u64(&conn.db, name, GENERATION_KEY).await? == Some(g) {
            current = Some((g, conn));
            break;
        }
        drop(conn);
        delete_database(&physical, true).await?;
    }
    let (generation, conn, created) = match current {
        Some((g, conn)) => (g, conn, false),
        None => {
            let (conn, created) = Connection::open(name, closed).await?;
            (0, conn, created)
        }
    };
    for &older in listed.iter().flatten().filter(|&&g| g < generation) {
        delete_database(&generation_name(name, older), true).await?;
    }
    let garbage = private_u64(&conn.db, name, GARBAGE_KEY).await?.unwrap_or(0);
    let state = State {
        listable: listed.is_some(),
        generation: Cell::new(generation),
        gate: Arc::new(RwLock::new(())),
        recording: RefCell::new(None),
        rotating: Cell::new(false),
        run: Arc::new(Mutex::new(())),
        garbage: Cell::new(garbage),
        ratio: Cell::new(None),
    };
    Ok((conn, created, state))
}

/// A write that completed while a rotation copied, to be replayed into the new database.
#[derive(Debug)]
pub(crate) enum Recorded {
    /// A batch's operations.
    Ops(Vec<Op>),
    /// A private record (key, bytes).
    Private(String, Vec<u8>),
}

/// A role database's generations and what a rotation needs while it runs.
#[derive(Debug)]
pub(super) struct State {
    /// The browser lists databases, which finding generations needs.
    listable: bool,
    generation: Cell<u64>,
    /// Held shared by every write until it commits, exclusively by a rotation starting and
    /// finishing.
    gate: Arc<RwLock<()>>,
    /// While a rotation copies: the writes completed since it started, in order.
    recording: RefCell<Option<Vec<Recorded>>>,
    rotating: Cell<bool>,
    /// Held by a rotation's task from start to end; [`IdbKv::close`] waits for it.
    run: Arc<Mutex<()>>,
    /// Blocks deleted since the last rotation (the entries whose space LevelDB holds on to).
    /// The dead and cold lists' deletions do not count: their entries are keys without values,
    /// written and deleted within one compaction.
    garbage: Cell<u64>,
    /// Rotate once `garbage >= ratio × live entries`; `None`: never.
    ratio: Cell<Option<f64>>,
}

impl State {
    /// Waits while a rotation starts or finishes; the guard is held until the write commits.
    pub(super) async fn enter_write(&self) -> RwLockReadGuardArc<()> {
        self.gate.read_arc().await
    }

    /// True while a rotation records the writes that complete.
    pub(super) fn recording(&self) -> bool {
        self.recording.borrow().is_some()
    }

    /// A write that holds the gate completed with `deletes` deletions.
    pub(super) fn wrote(&self, deletes: u64, recorded: Option<Recorded>) {
        self.garbage.set(self.garbage.get().saturating_add(deletes));
        if let (Some(r), Some(log)) = (recorded, self.recording.borrow_mut().as_mut()) {
            log.push(r);
        }
    }

    /// The ratio when rotation can happen at all.
    pub(super) fn policy(&self) -> Option<f64> {
        self.ratio.get().filter(|_| self.listable)
    }
}

/// A rotation under way: however it ends, nothing is recorded any more and another may start.
struct Running<'a>(&'a State);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        self.0.recording.borrow_mut().take();
        self.0.rotating.set(false);
    }
}

impl State {
    /// Waits until no rotation runs (one that sees the store closed stops at its next step).
    pub(super) async fn settled(&self) {
        drop(self.run.lock().await);
    }
}

/// Where [`IdbKv::rotate_until`] stops, as a crash there would.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RotationStep {
    /// The live entries are copied into the new generation; nothing is replayed or marked.
    Copied,
    /// The new generation is complete; the old one is still current.
    Marked,
    /// The new generation is current; the old one is not deleted yet.
    Swapped,
}

/// What a rotation did.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rotated {
    /// The generation now current.
    pub generation: u64,
    /// Entries copied (the private store's included).
    pub copied: u64,
    /// Writes replayed: those that completed while the copy ran.
    pub replayed: u64,
}

impl IdbKv {
    /// Rotates once blocks deleted since the last rotation reach `ratio` times the live entries
    /// (`0.0`: at every [`Kv::reclaim`](splitstore_core::Kv::reclaim)); `None` never rotates.
    pub fn set_rotation(&self, ratio: Option<f64>) {
        self.inner.rotation.ratio.set(ratio.filter(|r| r.is_finite() && *r >= 0.0));
    }

    /// The current generation (0 until the first rotation).
    pub fn generation(&self) -> u64 {
        self.inner.rotation.generation.get()
    }

    /// The current generation's database name.
    pub fn physical_name(&self) -> String {
        self.inner.conn.borrow().physical.clone()
    }

    /// Blocks deleted since the last rotation.
    pub fn garbage(&self) -> u64 {
        self.inner.rotation.garbage.get()
    }

    /// [`Kv::reclaim`](splitstore_core::Kv::reclaim): rotates when the policy says so,
    /// otherwise records the deletions counted so far. A rotation the quota refuses is given
    /// up with a console warning: nothing is lost, and the space stays as it was.
    pub(super) async fn reclaim_space(&self) -> Result<(), KvError> {
        let Some(ratio) = self.inner.rotation.policy() else { return Ok(()) };
        let garbage = self.garbage();
        let mut live = 0u64;
        for space in Space::ALL {
            live += Kv::estimate(self, space).await?.map_or(0, |e| e.keys);
        }
        if (garbage as f64) < ratio * live as f64 {
            return self.put_private(GARBAGE_KEY, &garbage.to_le_bytes()).await;
        }
        match self.rotate_until(None).await {
            Err(KvError::QuotaExceeded { detail }) => {
                let message = format!("splitstore: {} keeps its space for now: {detail}", self.inner.name);
                web_sys::console::warn_1(&message.into());
                Ok(())
            }
            other => other.map(drop),
        }
    }

    /// Copies the live entries into a new generation and makes it current (module docs),
    /// stopping after `stop` as a crash there would: after a stop this handle must only be
    /// dropped or closed.
    ///
    /// The rotation runs in a task of its own: a caller that stops waiting does not stop it
    /// half-way (its requests would go on in the browser without it); closing the store does,
    /// at its next step, and [`IdbKv::close`] waits for that.
    #[doc(hidden)]
    pub async fn rotate_until(&self, stop: Option<RotationStep>) -> Result<Rotated, KvError> {
        let state = &self.inner.rotation;
        if !state.listable {
            return Err(KvError::Unavailable {
                detail: format!("{}: this browser cannot list databases, which rotation needs", self.inner.name),
            });
        }
        if state.rotating.replace(true) {
            return Err(KvError::InUse { detail: format!("{}: a rotation is already running", self.inner.name) });
        }
        let kv = self.clone();
        let run = Arc::clone(&state.run);
        let (sent, outcome) = futures::channel::oneshot::channel();
        // A task of the module's: after a panic it is never polled again (it would delete
        // databases another tab may hold by then), and the caller stops waiting for it.
        crate::guard::spawn(async move {
            let _run = run.lock_arc().await;
            let _running = Running(&kv.inner.rotation);
            let _ = sent.send(kv.rotate(stop).await);
        });
        let stopped = Box::pin(async {
            while !crate::guard::failed() {
                crate::js::sleep_ms(100.0).await;
            }
        });
        match futures::future::select(outcome, stopped).await {
            futures::future::Either::Left((Ok(result), _)) => result,
            _ => {
                crate::guard::check_running()?;
                Err(KvError::Unavailable {
                    detail: format!("{}: the rotation ended without an outcome", self.inner.name),
                })
            }
        }
    }

    async fn rotate(&self, stop: Option<RotationStep>) -> Result<Rotated, KvError> {
        self.check_open()?;
        let state = &self.inner.rotation;
        let next = state.generation.get() + 1;
        let physical = generation_name(&self.inner.name, next);
        // Left by a rotation that failed earlier in this session.
        delete_database(&physical, true).await?;
        let (new, _) = Connection::open(&physical, &self.inner.closed).await?;
        {
            let _exclusive = state.gate.write().await;
            *state.recording.borrow_mut() = Some(Vec::new());
        }
        let mut done = Rotated { generation: next, ..Rotated::default() };
        let finished = self.copy_and_mark(&new, stop, &mut done).await;
        let exclusive = match finished {
            Ok(Some(exclusive)) => exclusive,
            Ok(None) => return Ok(done),
            Err(e) => {
                state.recording.borrow_mut().take();
                drop(new);
                if let Err(cleanup) = delete_database(&physical, true).await {
                    let message = format!("splitstore: could not delete the abandoned {physical}: {cleanup}");
                    web_sys::console::warn_1(&message.into());
                }
                return Err(e);
            }
        };
        // Closed since the replay: the new generation is complete, and the next open takes it.
        self.check_open()?;
        let old = self.inner.conn.replace(std::rc::Rc::new(new));
        state.generation.set(next);
        state.garbage.set(0);
        drop(exclusive);
        let old_physical = old.physical.clone();
        drop(old);
        if stop == Some(RotationStep::Swapped) {
            return Ok(done);
        }
        delete_database(&old_physical, true).await?;
        Ok(done)
    }

    /// Copies, then (holding the gate, which the caller keeps until the swap) replays and
    /// marks. `None`: stopped as asked.
    async fn copy_and_mark(
        &self,
        new: &Connection,
        stop: Option<RotationStep>,
        done: &mut Rotated,
    ) -> Result<Option<RwLockWriteGuard<'_, ()>>, KvError> {
        let state = &self.inner.rotation;
        for store in Space::ALL.iter().map(|s| s.name()).chain([SYNC_STORE]) {
            done.copied += self.copy_store(new, store).await?;
        }
        if stop == Some(RotationStep::Copied) {
            state.recording.borrow_mut().take();
            return Ok(None);
        }
        let exclusive = state.gate.write().await;
        self.check_open()?;
        let recorded = state.recording.borrow_mut().take().unwrap_or_default();
        done.replayed = recorded.len() as u64;
        let mut ops = Vec::new();
        let mut private = Vec::new();
        for r in recorded {
            match r {
                Recorded::Ops(o) => ops.extend(o),
                Recorded::Private(k, v) => private.push((k, v)),
            }
        }
        if !ops.is_empty() {
            let tx = open_transaction(&new.db, &self.inner.name, &spaces_of(&ops), TxMode::Write, "reclaim")?;
            write_ops(tx, ops, None).await?;
        }
        for (key, value) in private {
            let tx = open_transaction(&new.db, &self.inner.name, &[SYNC_STORE], TxMode::Write, "reclaim")?;
            put_private_in(tx, &key, &super::bytes::bytes(&value)).await?;
        }
        let tx = open_transaction(&new.db, &self.inner.name, &[SYNC_STORE], TxMode::Write, "reclaim")?;
        put_private_in(tx, GENERATION_KEY, &super::bytes::bytes(&done.generation.to_le_bytes())).await?;
        if stop == Some(RotationStep::Marked) {
            return Ok(None);
        }
        Ok(Some(exclusive))
    }

    /// Copies every entry of the object store `store` of the current database into `new`, a
    /// chunk per pair of transactions; the private records of the rotation itself stay behind.
    async fn copy_store(&self, new: &Connection, store: &str) -> Result<u64, KvError> {
        let mut after: Option<JsValue> = None;
        let mut copied = 0u64;
        loop {
            let tx = self.transaction(&[store], TxMode::Read, "reclaim")?;
            let from = idb::Transaction::from(tx).object_store(store).map_err(|e| idb_error("reclaim", e))?;
            let range = match &after {
                None => None,
                Some(k) => {
                    Some(Query::KeyRange(KeyRange::lower_bound(k, Some(true)).map_err(|e| idb_error("reclaim", e))?))
                }
            };
            let kreq = from.get_all_keys(range.clone(), Some(COPY_CHUNK)).map_err(|e| idb_error("reclaim", e))?;
            let vreq = from.get_all(range, Some(COPY_CHUNK)).map_err(|e| idb_error("reclaim", e))?;
            let (kreq, vreq) = (Request::watch(kreq.into(), "reclaim"), Request::watch(vreq.into(), "reclaim"));
            let keys: Array = kreq.result().await?.dyn_into().unwrap_or_default();
            let values: Array = vreq.result().await?.dyn_into().unwrap_or_default();
            if keys.length() != values.length() {
                return Err(KvError::Corrupt {
                    detail: format!("a copy read {} keys but {} values", keys.length(), values.length()),
                });
            }
            if keys.length() == 0 {
                return Ok(copied);
            }
            let pairs: Vec<(JsValue, JsValue)> = keys
                .iter()
                .zip(values.iter())
                .filter(|(key, _)| {
                    !(store == SYNC_STORE && matches!(key.as_string().as_deref(), Some(GENERATION_KEY | GARBAGE_KEY)))
                })
                .collect();
            let count = pairs.len() as u64;
            let tx = open_transaction(&new.db, &self.inner.name, &[store], TxMode::Write, "reclaim")?;
            let committed = TxDone::watch(&tx, "reclaim");
            let to = idb::Transaction::from(tx.clone()).object_store(store).map_err(|e| idb_error("reclaim", e))?;
            // The puts go out a chunk per task, as a write's do.
            let mut issued = 0;
            let chain = Chain::start(
                &tx,
                Box::new(move || {
                    let end = (issued + ISSUE_CHUNK).min(pairs.len());
                    let mut last = None;
                    for (key, value) in &pairs[issued..end] {
                        last = Some(to.put(value, Some(key)).map_err(|e| idb_error("reclaim", e))?.into());
                    }
                    issued = end;
                    Ok(if issued < pairs.len() { last } else { None })
                }),
            );
            let done = committed.wait().await;
            if let Some(e) = chain.take_error() {
                return Err(e);
            }
            done?;
            copied += count;
            let last = keys.length() - 1;
            if last + 1 < COPY_CHUNK {
                return Ok(copied);
            }
            after = Some(keys.get(last));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_are_named_and_found_back() {
        assert_eq!(generation_name("s-hot", 0), "s-hot");
        assert_eq!(generation_name("s-hot", 12), "s-hot.12");
        for g in [0, 1, 9, 10, 12_345] {
            assert_eq!(generation_of("s-hot", &generation_name("s-hot", g)), Some(g));
        }
        // Another store's databases, and names no rotation makes, are not generations.
        for other in ["s-hot.", "s-hot.01", "s-hot.1x", "s-hot.1-hot", "s-hotter", "s-cold", "s-hot.1.2", "x-s-hot"] {
            assert_eq!(generation_of("s-hot", other), None, "{other}");
        }
    }
}
