//! Enumerating every stored block, one bounded page at a time.
//!
//! A listing walks the hot store's blocks in key order, then the cold store's. A block counts
//! once: a cold entry is skipped when a read would answer it from hot. What a read could not
//! return is not listed either (a hot block the running compaction's critical section counts
//! as purged, a cold copy of a block deleted through the API).
//!
//! Pages hold the store's shared lock only while they read, so a listing never blocks a
//! compaction between pages. A listing that spans a compaction sees every block that was
//! stored throughout it exactly once or, when a move copied it to cold after the listing
//! passed its hot key, twice; a block written or deleted meanwhile may or may not be seen.

use alloc::vec::Vec;

use super::SplitStore;
use crate::{
    clock::Clock,
    error::Error,
    kv::{Kv, Space},
};

/// Where a listing stands: after `after` (a block key, which is the block's multihash) in
/// the hot or the cold store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ListCursor {
    /// In the hot store, after this key (from its first block when `None`).
    Hot(Option<Vec<u8>>),
    /// In the cold store, after this key (from its first block when `None`).
    Cold(Option<Vec<u8>>),
}

/// One page of a listing.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct BlockPage {
    /// `(multihash, bytes)` of each block of the page.
    pub blocks: Vec<(Vec<u8>, Vec<u8>)>,
    /// Where the next page starts; `None` when the listing is complete.
    pub next: Option<ListCursor>,
}

impl<K: Kv, C: Clock> SplitStore<K, C> {
    /// A page of at most `limit` blocks (at least one) of the listing of every stored block,
    /// starting at `from` (the start when `None`). A page may hold fewer blocks than `limit`
    /// while the listing goes on; it ends when `next` is `None`. See the module docs for
    /// what a listing sees while the store changes.
    pub async fn list_blocks(&self, from: Option<ListCursor>, limit: usize) -> Result<BlockPage, Error> {
        self.usable()?;
        let limit = limit.max(1);
        let from = from.unwrap_or(ListCursor::Hot(None));
        let _shared = self.call_hold().await;
        match from {
            ListCursor::Hot(after) => {
                let page = self.hot.scan(Space::Blocks, after.as_deref(), limit).await.map_err(|e| self.hot_err(e))?;
                let next = match page.last() {
                    Some((k, _)) if page.len() == limit => ListCursor::Hot(Some(k.clone())),
                    _ => ListCursor::Cold(None),
                };
                let blocks = page.into_iter().filter(|(k, _)| self.hot_visible(k)).collect();
                Ok(BlockPage { blocks, next: Some(next) })
            }
            ListCursor::Cold(after) => {
                let page =
                    self.cold.scan(Space::Blocks, after.as_deref(), limit).await.map_err(|e| self.cold_err(e))?;
                let next = match page.last() {
                    Some((k, _)) if page.len() == limit => Some(ListCursor::Cold(Some(k.clone()))),
                    _ => None,
                };
                let page: Vec<(Vec<u8>, Vec<u8>)> = page.into_iter().filter(|(k, _)| self.cold_visible(k)).collect();
                // A cold entry a read would answer from hot was listed with the hot store.
                let in_hot: Vec<Vec<u8>> =
                    page.iter().map(|(k, _)| k.clone()).filter(|k| self.hot_visible(k)).collect();
                let hot_has = if in_hot.is_empty() {
                    Vec::new()
                } else {
                    self.hot.get_many(Space::Blocks, &in_hot).await.map_err(|e| self.hot_err(e))?
                };
                // Sorted, as the page is.
                let shadowed: Vec<&Vec<u8>> =
                    in_hot.iter().zip(&hot_has).filter(|(_, v)| v.is_some()).map(|(k, _)| k).collect();
                let blocks = page.into_iter().filter(|(k, _)| shadowed.binary_search(&k).is_err()).collect();
                Ok(BlockPage { blocks, next })
            }
        }
    }
}
