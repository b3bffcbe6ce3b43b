//! Target `meta`: the store's metadata records and durable lists, decoded from arbitrary bytes,
//! and a store opened over hostile metadata.
//!
//! Properties:
//! - `Head`, `StoreState`, `PurgeRecord`, `PruneRecord`, `ChainIndex` and `ChainChunk` decoding
//!   never panics, and what decodes is canonical: encoding it gives back exactly the input;
//! - a dead-list / cold-list key (multihash bytes) that names a CID names it stably;
//! - with `data[0] >= 0xc0` the rest is a list of records `[kind, len, bytes...]` written into
//!   the metadata (the chain index's anchor and chunks among them) and list spaces of a small
//!   store, which is then opened: opening, `info`,
//!   `check` and a compaction return typed errors or succeed, and never panic or hang.

use std::sync::OnceLock;

use splitstore_conformance::executor::block_on;
use splitstore_core::{
    key::BlockKey,
    kv::{Kv, Space, WriteBatch},
    mem::{ManualClock, MemKv},
    meta::{self, ChainChunk, ChainIndex, Head, PruneRecord, PurgeRecord, StoreState},
    synth::SynthConfig,
    Config, NoProgress, SplitStore,
};

use super::{base::chain_store, input::Bytes};

/// Runs every property on `data`; panics on a violation.
pub fn check(data: &[u8]) {
    if let Ok(h) = Head::decode(data) {
        assert_eq!(h.encode(), data, "a head record that is not canonical decodes");
    }
    if let Ok(s) = StoreState::decode(data) {
        assert_eq!(s.encode(), data, "a state record that is not canonical decodes");
    }
    if let Ok(p) = PurgeRecord::decode(data) {
        assert_eq!(p.encode(), data, "a purge record that is not canonical decodes");
    }
    if let Ok(p) = PruneRecord::decode(data) {
        assert_eq!(p.encode(), data, "a prune record that is not canonical decodes");
    }
    if let Ok(c) = ChainIndex::decode(data) {
        assert_eq!(c.encode(), data, "a chain index anchor that is not canonical decodes");
    }
    if let Ok(c) = ChainChunk::decode(data) {
        assert_eq!(c.encode(), data, "a chain index chunk that is not canonical decodes");
    }
    if let Some(c) = BlockKey::from_bytes(data.to_vec()).to_raw_cid() {
        // Not byte-exact: the multihash crate reads a 10-byte code varint and drops the bits
        // past 64, so a damaged key may name a CID whose key differs. It must be stable.
        let key = BlockKey::of(&c);
        assert_eq!(key.to_raw_cid(), Some(c), "a list key's CID does not map back to itself");
        assert!(key.as_bytes().len() <= data.len(), "a list key grew");
    }
    if data.first().is_some_and(|&b| b >= 0xc0) {
        open_hostile(&data[1..]);
    }
}

/// A small store with a head, built once and copied per input.
fn base() -> &'static MemKv {
    static BASE: OnceLock<MemKv> = OnceLock::new();
    BASE.get_or_init(|| {
        let synth = SynthConfig { seed: 3, state_objects: 12, messages_per_block: 1, ..SynthConfig::default() };
        chain_store(config(), synth, 3)
    })
}

fn config() -> Config {
    Config { sync_gap_secs: None, finality: 1, batch_size: 4, yield_every: 4, ..Config::default() }
}

/// Writes the records in `data` over a copy of the base store, then opens and uses it.
fn open_hostile(data: &[u8]) {
    let hot = base().crash_image(usize::MAX);
    let mut input = Bytes::new(data);
    let mut batch = WriteBatch::new();
    while !input.is_empty() {
        let kind = input.u8();
        let len = usize::from(input.u8());
        let bytes = input.take(len).to_vec();
        match kind % 9 {
            0 => batch.put(Space::Meta, meta::HEAD, bytes),
            1 => batch.put(Space::Meta, meta::STATE, bytes),
            2 => batch.put(Space::Meta, meta::PURGE, bytes),
            3 => batch.put(Space::Meta, meta::CHECKPOINT, bytes),
            4 => batch.put(Space::Dead, bytes, Vec::new()),
            5 => batch.put(Space::ColdList, bytes, Vec::new()),
            6 => batch.put(Space::Meta, meta::CHAIN_INDEX, bytes),
            7 => batch.put(Space::Meta, meta::chain_chunk_key(u64::from(kind / 9)), bytes),
            _ => batch.put(Space::Meta, meta::PRUNE, bytes),
        };
    }
    block_on(hot.write(batch)).expect("write to memory");
    let Ok(store) = block_on(SplitStore::open(hot, MemKv::new(), ManualClock::new(0), config())) else {
        return;
    };
    drop(block_on(store.info()));
    drop(block_on(store.check()));
    drop(block_on(store.compact(&NoProgress)));
    drop(block_on(store.check()));
}
