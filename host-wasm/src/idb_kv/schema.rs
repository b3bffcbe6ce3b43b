//! The database schema: its version, its object stores, and opening with upgrade.

use std::{cell::Cell, future::IntoFuture, rc::Rc};

use futures::future::{select, Either};
use idb::{DatabaseEvent, Event, Factory, ObjectStoreParams, Request};
use js_sys::Array;
use splitstore_core::{KvError, Space};
use wasm_bindgen::{prelude::wasm_bindgen, JsValue};
use web_sys::{IdbDatabase, IdbTransaction};

use super::bytes::unavailable;

/// Schema version of every database this crate creates.
pub(super) const VERSION: u32 = 1;
/// The private object store, which the core never sees: [`IdbKv::flush`] writes a counter
/// under the key `"seq"` to force a durable commit, and the store identity record lives under
/// `"store-id"` (module `identity`).
pub(super) const SYNC_STORE: &str = "sync";

#[wasm_bindgen]
extern "C" {
    /// An `IDBDatabase`, for the options overload of `transaction` (web-sys gates it behind
    /// unstable APIs).
    pub(super) type DatabaseWithOptions;

    /// `IDBDatabase.transaction(names, mode, { durability })`.
    #[wasm_bindgen(method, catch, js_name = transaction)]
    pub(super) fn transaction_with_options(
        this: &DatabaseWithOptions,
        names: &Array,
        mode: &str,
        options: &JsValue,
    ) -> Result<IdbTransaction, JsValue>;
}

/// Opens `name` at [`VERSION`], creating the object stores on first use. The flag is true
/// when this open created the database: the upgrade started from version 0, which IndexedDB
/// reports only for a database that did not exist.
pub(super) async fn open_database(name: &str) -> Result<(IdbDatabase, bool), KvError> {
    let factory = Factory::new().map_err(|e| unavailable("indexedDB is not available", e))?;
    let mut req = factory.open(name, Some(VERSION)).map_err(|e| unavailable("open failed", e))?;
    let created = Rc::new(Cell::new(false));
    let seen = created.clone();
    req.on_upgrade_needed(move |event| {
        seen.set(event.old_version().is_ok_and(|v| v == 0));
        // A module that failed since the open was asked for creates nothing: the aborted
        // upgrade fails the open.
        if crate::guard::failed() {
            if let Some(tx) = event.target().ok().and_then(|r| r.transaction()) {
                let _ = tx.abort();
            }
            return;
        }
        // Failures here abort the upgrade; the open then fails and reports why.
        if let Ok(db) = event.database() {
            let existing = db.store_names();
            for store in Space::ALL.iter().map(|s| s.name()).chain([SYNC_STORE]) {
                if !existing.iter().any(|e| e == store) {
                    let _ = db.create_object_store(store, ObjectStoreParams::new());
                }
            }
        }
    });
    let (tx, rx) = futures::channel::oneshot::channel::<()>();
    req.on_blocked(move |_| {
        let _ = tx.send(());
    });
    let opened = match select(req.into_future(), rx).await {
        Either::Left((r, _)) => r,
        // The sender went away without a `blocked` event: just wait for the open.
        Either::Right((Err(_), pending)) => pending.await,
        Either::Right((Ok(()), pending)) => {
            // Close the connection if it opens after all, so it blocks nobody.
            wasm_bindgen_futures::spawn_local(async move {
                if let Ok(db) = pending.await {
                    db.close();
                }
            });
            return Err(KvError::Unavailable {
                detail: format!("opening {name} is blocked: another page keeps an older version open"),
            });
        }
    };
    let db = opened.map_err(|e| match e {
        idb::Error::DomException(ref d) if d.name() == "VersionError" => KvError::Unavailable {
            detail: format!("{name} was created by a newer version of splitstore-wasm (schema > {VERSION})"),
        },
        other => unavailable("open failed", other),
    })?;
    let raw: IdbDatabase = db.into();
    let names = raw.object_store_names();
    for store in Space::ALL.iter().map(|s| s.name()).chain([SYNC_STORE]) {
        if !names.contains(store) {
            raw.close();
            return Err(KvError::Corrupt { detail: format!("{name} has no object store {store:?}") });
        }
    }
    Ok((raw, created.get()))
}
