//! One open IndexedDB connection: the database of one generation, registered with the panic
//! hook and closed when another page deletes or upgrades it.

use std::{
    cell::{Cell, RefCell},
    rc::Rc,
};

use splitstore_core::KvError;
use wasm_bindgen::{prelude::Closure, JsCast, JsValue};
use web_sys::IdbDatabase;

use super::schema::open_database;
use crate::guard;

/// The `versionchange` handler a connection keeps alive while it is open.
type VersionChangeHandler = Closure<dyn FnMut(JsValue)>;

/// Why a store's connection is closed, once it is; shared by the store and its connections.
pub(super) type ClosedWhy = Rc<Cell<Option<&'static str>>>;

/// An open database. Dropping it closes the connection (after its running transactions
/// finish, as `IDBDatabase.close` does).
#[derive(Debug)]
pub(super) struct Connection {
    pub(super) db: IdbDatabase,
    /// The database's own name (the store's role name, with a generation suffix after a
    /// rotation: see module `rotation`).
    pub(super) physical: String,
    /// Registration with the panic hook, which closes every open connection.
    hook_id: Cell<Option<u64>>,
    on_version_change: RefCell<Option<VersionChangeHandler>>,
}

impl Connection {
    /// Opens (creating if needed) the database `physical`; the flag is true when this open
    /// created it. Another page deleting or upgrading it closes it and records why in `closed`.
    pub(super) async fn open(physical: &str, closed: &ClosedWhy) -> Result<(Self, bool), KvError> {
        let (db, created) = open_database(physical).await?;
        if let Err(e) = guard::check_running() {
            db.close();
            return Err(e);
        }
        let hook_id = guard::register_connection(&db);
        let on_version_change = {
            let closed = closed.clone();
            let db = db.clone();
            Closure::<dyn FnMut(JsValue)>::new(move |_event: JsValue| {
                db.close();
                closed.set(Some("another page deleted or upgraded this database; reopen the store"));
            })
        };
        db.set_onversionchange(Some(on_version_change.as_ref().unchecked_ref()));
        let conn = Self {
            db,
            physical: physical.to_owned(),
            hook_id: Cell::new(Some(hook_id)),
            on_version_change: RefCell::new(Some(on_version_change)),
        };
        Ok((conn, created))
    }

    /// Closes the connection once its running transactions finish; later transactions fail.
    /// Idempotent.
    pub(super) fn close(&self) {
        self.db.set_onversionchange(None);
        self.db.close();
        if let Some(id) = self.hook_id.take() {
            guard::forget_connection(id);
        }
        self.on_version_change.borrow_mut().take();
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.close();
    }
}
