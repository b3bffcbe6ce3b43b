//! Where generated blocks go: the current epoch's block list, with the two kinds of
//! de-duplication the generator needs and running totals.

use alloc::vec::Vec;
use core::hash::{BuildHasher, Hasher};

use cid::Cid;
use hashbrown::HashSet;

use super::cbor::blake2b_cid;
use crate::key::{dag_cbor_blake2b_cid, RAW};

/// Hashes a BLAKE2b digest by folding its first bytes: the input is already uniformly random,
/// so no further mixing is needed. Only used for the per-epoch duplicate check.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 = (self.0 ^ u64::from_le_bytes(word)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

impl BuildHasher for DigestHasher {
    type Hasher = DigestHasher;

    fn build_hasher(&self) -> DigestHasher {
        DigestHasher(0)
    }
}

/// A block as emitted: its CID and bytes.
pub(crate) type Block = (Cid, Vec<u8>);

/// Collects the blocks of one epoch.
///
/// Invariant: a block enters `blocks` at most once per epoch. `put_new` callers guarantee
/// novelty by construction (the bytes embed a serial or a version); `put_dedup` covers objects
/// that can repeat, inside one epoch (message AMTs and TxMeta of blocks that share messages)
/// or across epochs (the empty AMT, the empty TxMeta): a node writes those again whenever it
/// builds them, as a syncing node does with every block's message AMTs, so an epoch that uses
/// one emits it even if an earlier epoch did (a compaction may have discarded it since).
#[derive(Debug, Default)]
pub(crate) struct Sink {
    blocks: Vec<Block>,
    epoch_seen: HashSet<[u8; 32], DigestHasher>,
    /// Every block `put_dedup` emitted, any epoch: to count the epoch's repeats.
    ever_deduped: HashSet<[u8; 32], DigestHasher>,
    /// Blocks and bytes of this epoch that an earlier epoch emitted too.
    repeated: (usize, u64),
    total_blocks: u64,
    total_bytes: u64,
}

impl Sink {
    /// Emits a DAG-CBOR block the caller knows is new.
    pub(crate) fn put_new(&mut self, bytes: Vec<u8>) -> Cid {
        let cid = dag_cbor_blake2b_cid(&bytes);
        self.push(cid, bytes);
        cid
    }

    /// Emits a raw block the caller knows is new.
    pub(crate) fn put_raw_new(&mut self, bytes: Vec<u8>) -> Cid {
        let cid = blake2b_cid(RAW, &bytes);
        self.push(cid, bytes);
        cid
    }

    /// Emits a DAG-CBOR block unless this epoch already emitted it.
    pub(crate) fn put_dedup(&mut self, bytes: Vec<u8>) -> Cid {
        let cid = dag_cbor_blake2b_cid(&bytes);
        let mut digest = [0u8; 32];
        digest.copy_from_slice(cid.hash().digest());
        if self.epoch_seen.insert(digest) {
            if !self.ever_deduped.insert(digest) {
                self.repeated.0 += 1;
                self.repeated.1 += bytes.len() as u64;
            }
            self.push(cid, bytes);
        }
        cid
    }

    fn push(&mut self, cid: Cid, bytes: Vec<u8>) {
        self.total_blocks += 1;
        self.total_bytes += bytes.len() as u64;
        self.blocks.push((cid, bytes));
    }

    /// Hands over the epoch's blocks, with the count and bytes of those an earlier epoch
    /// emitted too, and starts the next epoch.
    pub(crate) fn take_epoch(&mut self) -> (Vec<Block>, (usize, u64)) {
        self.epoch_seen.clear();
        (core::mem::take(&mut self.blocks), core::mem::take(&mut self.repeated))
    }

    /// Blocks emitted so far, all epochs.
    pub(crate) fn total_blocks(&self) -> u64 {
        self.total_blocks
    }

    /// Bytes emitted so far, all epochs.
    pub(crate) fn total_bytes(&self) -> u64 {
        self.total_bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_is_per_epoch() {
        let mut s = Sink::default();
        let a = s.put_dedup(alloc::vec![0x80]);
        assert_eq!(s.put_dedup(alloc::vec![0x80]), a);
        assert_eq!(s.take_epoch().0.len(), 1);
        assert_eq!(s.put_dedup(alloc::vec![0x80]), a);
        assert_eq!(s.take_epoch(), (alloc::vec![(a, alloc::vec![0x80])], (1, 1)), "a later epoch emits it again");
        assert_eq!(s.total_blocks(), 2);
        assert_eq!(s.total_bytes(), 2);
    }

    #[test]
    fn raw_blocks_get_raw_cids() {
        let mut s = Sink::default();
        let cid = s.put_raw_new(alloc::vec![1, 2, 3]);
        assert_eq!(cid.codec(), RAW);
        assert!(crate::key::verify(&cid, &[1, 2, 3]).is_ok());
    }
}
