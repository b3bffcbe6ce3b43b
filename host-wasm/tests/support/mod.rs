//! Helpers shared by the browser tests: unique database names, an IndexedDB backend that
//! opens on first use (the shared suites build backends with a synchronous constructor), and
//! deletion of every database a test created.
#![allow(dead_code)]

use std::cell::{Cell, RefCell};

use async_lock::OnceCell;
use js_sys::Promise;
use splitstore_core::{
    kv::{Capabilities, SpaceEstimate, SpaceStats},
    Kv, KvError, Space, WriteBatch,
};
use splitstore_wasm::{js, IdbKv, LockPolicy};
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;

thread_local! {
    static SEQ: Cell<u32> = const { Cell::new(0) };
    static ROTATIONS: Cell<u64> = const { Cell::new(0) };
    static CREATED: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// A database (or store) name no other test uses.
pub fn unique(prefix: &str) -> String {
    let n = SEQ.with(|s| {
        s.set(s.get() + 1);
        s.get()
    });
    format!("t-{prefix}-{}-{n}", js::now_millis())
}

/// Logs a line to the test output.
pub fn log(s: &str) {
    web_sys::console::log_1(&s.into());
}

/// Awaits a Promise returned by the JS API.
pub async fn call(p: Promise) -> Result<JsValue, JsValue> {
    JsFuture::from(p).await
}

/// An [`IdbKv`] on a fresh database that is opened by the first call.
#[derive(Debug)]
pub struct LazyIdb {
    name: String,
    kv: OnceCell<IdbKv>,
    /// Rotate at every reclaim (`IdbKv::set_rotation(Some(0.0))`).
    rotating: bool,
}

impl LazyIdb {
    /// A backend on a new, empty database; [`cleanup`] deletes it.
    pub fn fresh(prefix: &str) -> Self {
        let name = unique(prefix);
        CREATED.with(|c| c.borrow_mut().push(name.clone()));
        Self { name, kv: OnceCell::new(), rotating: false }
    }

    /// [`LazyIdb::fresh`], rotated to a new generation at every reclaim (after every
    /// compaction of a hot store); [`rotations`] counts them.
    pub fn rotating(prefix: &str) -> Self {
        Self { rotating: true, ..Self::fresh(prefix) }
    }

    async fn kv(&self) -> Result<&IdbKv, KvError> {
        self.kv
            .get_or_try_init(|| async {
                let kv = IdbKv::open(&self.name, LockPolicy::Fail).await?;
                if self.rotating {
                    kv.set_rotation(Some(0.0));
                }
                Ok(kv)
            })
            .await
    }
}

#[async_trait::async_trait(?Send)]
impl Kv for LazyIdb {
    async fn get(&self, space: Space, key: &[u8]) -> Result<Option<Vec<u8>>, KvError> {
        self.kv().await?.get(space, key).await
    }
    async fn get_many(&self, space: Space, keys: &[Vec<u8>]) -> Result<Vec<Option<Vec<u8>>>, KvError> {
        self.kv().await?.get_many(space, keys).await
    }
    async fn has(&self, space: Space, key: &[u8]) -> Result<bool, KvError> {
        self.kv().await?.has(space, key).await
    }
    async fn write(&self, batch: WriteBatch) -> Result<(), KvError> {
        self.kv().await?.write(batch).await
    }
    async fn scan_keys(&self, space: Space, after: Option<&[u8]>, limit: usize) -> Result<Vec<Vec<u8>>, KvError> {
        self.kv().await?.scan_keys(space, after, limit).await
    }
    async fn scan(&self, space: Space, after: Option<&[u8]>, limit: usize) -> Result<Vec<(Vec<u8>, Vec<u8>)>, KvError> {
        self.kv().await?.scan(space, after, limit).await
    }
    async fn flush(&self) -> Result<(), KvError> {
        self.kv().await?.flush().await
    }
    async fn reclaim(&self) -> Result<(), KvError> {
        let kv = self.kv().await?;
        let before = kv.generation();
        kv.reclaim().await?;
        ROTATIONS.with(|r| r.set(r.get() + kv.generation() - before));
        Ok(())
    }
    async fn stats(&self, space: Space) -> Result<SpaceStats, KvError> {
        self.kv().await?.stats(space).await
    }
    async fn estimate(&self, space: Space) -> Result<Option<SpaceEstimate>, KvError> {
        self.kv().await?.estimate(space).await
    }
    async fn footprint(&self) -> Result<Option<u64>, KvError> {
        self.kv().await?.footprint().await
    }
    fn capabilities(&self) -> Capabilities {
        match self.kv.get() {
            Some(kv) => kv.capabilities(),
            None => Capabilities {
                name: "indexeddb",
                preferred_batch: 4096,
                read_batch: Capabilities::DEFAULT_READ_BATCH,
                reclaims_space: false,
            },
        }
    }
}

/// Rotations of [`LazyIdb::rotating`] backends so far.
pub fn rotations() -> u64 {
    ROTATIONS.with(Cell::get)
}

/// Deletes every database [`LazyIdb::fresh`] created so far. Call once the backends are
/// dropped: a dropped connection releases its lock a moment later, so this waits briefly.
/// A database still held (by a test that failed before dropping its stores) is left alone
/// rather than failing the test that cleans up.
pub async fn cleanup() {
    js::sleep_ms(20.0).await;
    let names = CREATED.with(|c| std::mem::take(&mut *c.borrow_mut()));
    for name in names {
        match IdbKv::destroy(&name).await {
            Ok(()) => {}
            Err(KvError::InUse { .. }) => log(&format!("left {name} in place: still open")),
            Err(e) => panic!("destroy {name}: {e}"),
        }
    }
}
