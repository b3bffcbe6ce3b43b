//! The store identity record: how an open tells a store that was evicted (wholly or in part)
//! from one that never existed.
//!
//! A store is two IndexedDB databases, `n-hot` and `n-cold`, and the browser may drop them
//! (eviction under storage pressure drops every database of the origin; a user or a devtools
//! panel may delete one). IndexedDB re-creates a missing database empty on the next open, so
//! without a record an evicted store would silently start again from nothing, and half an
//! evicted store would run with a hot store whose cold half is gone, or the reverse.
//!
//! # The record
//!
//! Each database holds, in its private `sync` object store (which the core never reads) under
//! the key `"store-id"`, an 18-byte value: format `1`, a state byte (`0` creating, `1`
//! complete), and a random 128-bit store id, the same in both databases. Hot's record is
//! always written complete.
//!
//! # Creating it
//!
//! Three strict writes, in this order: cold's record *creating*, hot's record, cold's record
//! *complete*. So a complete cold record means hot's record was durable before it: a hot
//! database without a record beside a complete cold one was deleted (or re-created empty)
//! after the store existed, however it was re-created. A crash between the writes leaves
//! cold *creating*, which the next open finishes with the same id ([`Verdict::Resume`],
//! [`Verdict::Complete`]). Stores created before the record existed (both databases present,
//! neither with a record) get one the same way the first time they are opened.
//!
//! # The rules at open
//!
//! [`decide`] reads both databases as found: created by this open (IndexedDB upgraded it
//! from version 0), empty or not (the core's keyspaces), and the record. It refuses with
//! [`StoreGone`] when:
//!
//! * one database has a record and the other has none, except a hot database without one
//!   beside a cold record still *creating* (creation interrupted before hot's write) — but
//!   that exception does not hold when hot was created by this open and cold holds data (a
//!   store from before the record, whose hot database vanished during its first upgrade);
//! * the two ids differ;
//! * neither has a record and one database was created by this open while the other holds
//!   data (a store from before the record, half gone: such stores always had both
//!   databases before they held any data);
//! * `mustExist` is set and nothing of the store is there: no complete record and no data.
//!
//! A refused open deletes the databases it created itself and changes nothing else.

use core::fmt;

use splitstore_core::KvError;

use crate::idb_kv::{IdbKv, Role};

/// The key of the record in each database's private store.
pub const RECORD_KEY: &str = "store-id";
/// The record's format byte.
const FORMAT: u8 = 1;

/// One database's identity record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoreRecord {
    /// The store's random id, the same in both databases.
    pub id: u128,
    /// False only in cold's record while the store is being created.
    pub complete: bool,
}

impl StoreRecord {
    fn encode(self) -> [u8; 18] {
        let mut out = [0u8; 18];
        out[0] = FORMAT;
        out[1] = u8::from(self.complete);
        out[2..].copy_from_slice(&self.id.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, KvError> {
        let corrupt = || KvError::Corrupt { detail: format!("the store identity record {bytes:02x?} does not decode") };
        let [FORMAT, state, id @ ..] = bytes else { return Err(corrupt()) };
        let id: [u8; 16] = id.try_into().map_err(|_| corrupt())?;
        let complete = match state {
            0 => false,
            1 => true,
            _ => return Err(corrupt()),
        };
        Ok(Self { id: u128::from_le_bytes(id), complete })
    }
}

/// The identity record of a database, if it has one.
pub async fn read_record(kv: &IdbKv) -> Result<Option<StoreRecord>, KvError> {
    kv.get_private(RECORD_KEY).await?.map(|b| StoreRecord::decode(&b)).transpose()
}

async fn write_record(kv: &IdbKv, record: StoreRecord) -> Result<(), KvError> {
    kv.put_private(RECORD_KEY, &record.encode()).await
}

/// One database as an open found it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Found {
    /// This open created it: it did not exist.
    pub created: bool,
    /// None of the core's keyspaces holds a key.
    pub empty: bool,
    /// Its identity record.
    pub record: Option<StoreRecord>,
}

/// What an open does about the identity records (see the module docs for the rules).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Both records are there, complete, with the same id.
    Ready,
    /// Neither database has a record: a new store, or one from before the record.
    Create,
    /// Cold's record is still *creating* and hot has none: write hot's, then complete cold's.
    Resume(u128),
    /// Hot's record is written and cold's is still *creating*: complete cold's.
    Complete(u128),
    /// Refuse: this database is missing.
    Missing(Role),
    /// Refuse: the two databases carry different ids.
    Mismatch,
    /// Refuse (`mustExist`): nothing of the store is there.
    Absent,
}

/// The rules at open, over both databases as found.
pub fn decide(hot: Found, cold: Found, must_exist: bool) -> Verdict {
    let nothing = hot.empty && cold.empty;
    match (hot.record, cold.record) {
        (Some(h), Some(c)) if h.id != c.id => Verdict::Mismatch,
        (Some(_), Some(c)) if c.complete => Verdict::Ready,
        (Some(h), Some(_)) => Verdict::Complete(h.id),
        (Some(_), None) => Verdict::Missing(Role::Cold),
        (None, Some(c)) if c.complete => Verdict::Missing(Role::Hot),
        (None, _) if hot.created && !cold.empty => Verdict::Missing(Role::Hot),
        (None, None) if cold.created && !hot.empty => Verdict::Missing(Role::Cold),
        (None, _) if must_exist && nothing => Verdict::Absent,
        (None, Some(c)) => Verdict::Resume(c.id),
        (None, None) => Verdict::Create,
    }
}

/// Why an open refused a store that was evicted, in whole or in part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreGone {
    /// One database is missing (deleted or evicted, perhaps re-created empty since).
    Missing {
        /// The store's name.
        store: String,
        /// Which database.
        role: Role,
    },
    /// The two databases belong to different stores.
    Mismatch {
        /// The store's name.
        store: String,
    },
    /// `mustExist` was set and nothing of the store is there.
    Absent {
        /// The store's name.
        store: String,
    },
}

impl fmt::Display for StoreGone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreGone::Missing { store, role } => {
                let other = match role {
                    Role::Hot => Role::Cold,
                    Role::Cold => Role::Hot,
                };
                write!(
                    f,
                    "store {store:?} is half there: its database {missing:?} is gone (evicted by the browser or \
                     deleted) while {present:?} still holds the store; restore both databases from a backup, or \
                     delete the store with SplitStore.destroy({store:?}) and import the chain again",
                    missing = crate::idb_kv::db_name(store, *role),
                    present = crate::idb_kv::db_name(store, other),
                )
            }
            StoreGone::Mismatch { store } => write!(
                f,
                "store {store:?}: its databases {hot:?} and {cold:?} belong to different stores (one was replaced); \
                 restore both from the same backup, or delete the store with SplitStore.destroy({store:?}) and \
                 import the chain again",
                hot = crate::idb_kv::db_name(store, Role::Hot),
                cold = crate::idb_kv::db_name(store, Role::Cold),
            ),
            StoreGone::Absent { store } => write!(
                f,
                "store {store:?} does not exist (mustExist): neither {hot:?} nor {cold:?} holds any of it, so the \
                 browser evicted it, it was deleted, or it was never created here; open it without mustExist to \
                 create it empty, then import the chain again",
                hot = crate::idb_kv::db_name(store, Role::Hot),
                cold = crate::idb_kv::db_name(store, Role::Cold),
            ),
        }
    }
}

impl std::error::Error for StoreGone {}

/// Why [`establish`] failed.
#[derive(Debug)]
pub enum IdentityError {
    /// The store was evicted, in whole or in part.
    Gone(StoreGone),
    /// IndexedDB failed while reading or writing the records.
    Kv(KvError),
}

impl fmt::Display for IdentityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdentityError::Gone(e) => e.fmt(f),
            IdentityError::Kv(e) => write!(f, "reading or writing the store identity failed: {e}"),
        }
    }
}

impl std::error::Error for IdentityError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            IdentityError::Gone(_) => None,
            IdentityError::Kv(e) => Some(e),
        }
    }
}

impl From<KvError> for IdentityError {
    fn from(e: KvError) -> Self {
        IdentityError::Kv(e)
    }
}

/// Where [`establish_until`] stops, as a crash there would.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// After cold's record is written *creating*.
    ColdCreating,
    /// After hot's record is written.
    Hot,
}

/// Reads one database as this open found it.
pub async fn found(kv: &IdbKv) -> Result<Found, KvError> {
    Ok(Found { created: kv.created(), empty: kv.holds_nothing().await?, record: read_record(kv).await? })
}

/// Checks the identity records of a store whose databases were just opened, and writes them
/// where the rules say so. On refusal, deletes the databases this open created (see the
/// module docs); the caller closes the connections.
pub async fn establish(store: &str, hot: &IdbKv, cold: &IdbKv, must_exist: bool) -> Result<(), IdentityError> {
    establish_until(store, hot, cold, must_exist, None).await
}

/// [`establish`], stopping after `stop` as a crash there would.
#[doc(hidden)]
pub async fn establish_until(
    store: &str,
    hot: &IdbKv,
    cold: &IdbKv,
    must_exist: bool,
    stop: Option<Step>,
) -> Result<(), IdentityError> {
    let verdict = decide(found(hot).await?, found(cold).await?, must_exist);
    let written = match verdict {
        Verdict::Ready => Ok(()),
        Verdict::Create => write_records(hot, cold, crate::js::random_u128(), true, stop).await,
        Verdict::Resume(id) => write_records(hot, cold, id, false, stop).await,
        Verdict::Complete(id) => write_record(cold, StoreRecord { id, complete: true }).await.map_err(Into::into),
        Verdict::Missing(role) => return refuse(hot, cold, StoreGone::Missing { store: store.to_owned(), role }).await,
        Verdict::Mismatch => return refuse(hot, cold, StoreGone::Mismatch { store: store.to_owned() }).await,
        Verdict::Absent => return refuse(hot, cold, StoreGone::Absent { store: store.to_owned() }).await,
    };
    match written {
        // A full quota refuses the records: the store opens without them (a full store must
        // still open, to be compacted), as after a crash at that write, which the next open
        // with room finishes by the same rules.
        Err(IdentityError::Kv(KvError::QuotaExceeded { detail })) => {
            let message = format!("splitstore: the identity records of \"{store}\" wait for room: {detail}");
            web_sys::console::warn_1(&message.into());
            Ok(())
        }
        other => other,
    }
}

/// Refuses the open: deletes the databases this open created, and nothing else.
async fn refuse(hot: &IdbKv, cold: &IdbKv, gone: StoreGone) -> Result<(), IdentityError> {
    for kv in [hot, cold] {
        // The refusal stands either way: a database left behind is empty and has no record,
        // which the rules refuse again beside a complete record.
        if kv.created() {
            if let Err(e) = kv.close_and_delete().await {
                web_sys::console::warn_1(&format!("splitstore: could not delete {}: {e}", kv.name()).into());
            }
        }
    }
    Err(IdentityError::Gone(gone))
}

/// Writes cold's record *creating* (unless it already is), hot's, then cold's *complete*.
async fn write_records(
    hot: &IdbKv,
    cold: &IdbKv,
    id: u128,
    cold_first: bool,
    stop: Option<Step>,
) -> Result<(), IdentityError> {
    if cold_first {
        write_record(cold, StoreRecord { id, complete: false }).await?;
    }
    if stop == Some(Step::ColdCreating) {
        return Ok(());
    }
    write_record(hot, StoreRecord { id, complete: true }).await?;
    if stop == Some(Step::Hot) {
        return Ok(());
    }
    write_record(cold, StoreRecord { id, complete: true }).await?;
    Ok(())
}
