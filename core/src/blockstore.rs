//! The `blockstore` crate's async [`blockstore::Blockstore`] for [`SplitStore`], on native
//! targets and on `wasm32` (whose futures need not be `Send`, as the crate's `CondSend` rule
//! says). Enabled by the `blockstore` feature (which needs `std`).
//!
//! The calls mean what the store's own calls mean: `get` and `has` look in hot and then cold;
//! `put_keyed` and `put_many_keyed` write to hot, checking each block against its CID when
//! [`Config::verify_puts`](crate::Config::verify_puts) is on; `remove` is
//! [`SplitStore::delete`]: the block leaves both stores, safely against a running compaction.
//! `put_many_keyed` writes atomic batches of [`PUT_MANY_CHUNK`] blocks.
//! A CID of any size `S` is accepted when its multihash fits the store's 64-byte digests
//! (otherwise [`blockstore::Error::CidTooLarge`]); CIDs naming the same multihash name the same
//! block, whatever their codec. `close` stops a running compaction at its next yield and
//! flushes both stores.
//!
//! Errors map onto the crate's: a block that does not match its CID, or a hash this build
//! cannot check, is a [`blockstore::block::CidError::InvalidCid`]; metadata that does not
//! decode is [`blockstore::Error::StoredDataError`]; everything else (a backend failure, a
//! closed or poisoned store) is [`blockstore::Error::FatalDatabaseError`], with the store's
//! message.

use alloc::{string::ToString, vec::Vec};

use blockstore::{
    block::CidError,
    cond_send::{CondSend, CondSync},
    Error as BsError,
};
use cid::{Cid, CidGeneric};
use multihash::Multihash;

use crate::{kv::Kv, store::PUT_MANY_CHUNK, Clock, Error, SplitStore};

/// The store's CID for `cid`: the same version, codec and multihash, in 64 bytes of digest.
fn to_cid<const S: usize>(cid: &CidGeneric<S>) -> Result<Cid, BsError> {
    let mh = Multihash::<64>::wrap(cid.hash().code(), cid.hash().digest()).map_err(|_| BsError::CidTooLarge)?;
    Cid::new(cid.version(), cid.codec(), mh).map_err(|e| BsError::CidError(CidError::InvalidCid(e.to_string())))
}

fn to_bs(e: Error) -> BsError {
    match e {
        Error::HashMismatch { .. } | Error::UnsupportedHash { .. } => {
            BsError::CidError(CidError::InvalidCid(e.to_string()))
        }
        Error::CorruptMeta { .. } => BsError::StoredDataError(e.to_string()),
        e => BsError::FatalDatabaseError(e.to_string()),
    }
}

impl<K: Kv, C: Clock> blockstore::Blockstore for SplitStore<K, C> {
    async fn get<const S: usize>(&self, cid: &CidGeneric<S>) -> Result<Option<Vec<u8>>, BsError> {
        SplitStore::get(self, &to_cid(cid)?).await.map_err(to_bs)
    }

    async fn put_keyed<const S: usize>(&self, cid: &CidGeneric<S>, data: &[u8]) -> Result<(), BsError> {
        SplitStore::put(self, &to_cid(cid)?, data.to_vec()).await.map_err(to_bs)
    }

    async fn put_many_keyed<const S: usize, D, I>(&self, blocks: I) -> Result<(), BsError>
    where
        D: AsRef<[u8]> + CondSync,
        I: IntoIterator<Item = (CidGeneric<S>, D)> + CondSend,
        <I as IntoIterator>::IntoIter: Send,
    {
        // Atomic batches of a bounded size: the copies stay bounded however long `blocks` is.
        let mut chunk = Vec::with_capacity(PUT_MANY_CHUNK);
        for (cid, data) in blocks {
            chunk.push((to_cid(&cid)?, data.as_ref().to_vec()));
            if chunk.len() == PUT_MANY_CHUNK {
                self.put_many(core::mem::take(&mut chunk)).await.map_err(to_bs)?;
            }
        }
        if !chunk.is_empty() {
            self.put_many(chunk).await.map_err(to_bs)?;
        }
        Ok(())
    }

    async fn remove<const S: usize>(&self, cid: &CidGeneric<S>) -> Result<(), BsError> {
        SplitStore::delete(self, &to_cid(cid)?).await.map_err(to_bs)
    }

    async fn has<const S: usize>(&self, cid: &CidGeneric<S>) -> Result<bool, BsError> {
        SplitStore::has(self, &to_cid(cid)?).await.map_err(to_bs)
    }

    async fn close(self) -> Result<(), BsError> {
        SplitStore::close(&self).await.map_err(to_bs)
    }
}
