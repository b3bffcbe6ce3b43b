//! Building stores from the synthetic chain, and reading back what a store holds.

use std::collections::HashSet;

use splitstore_core::{
    kv::{Kv, Space},
    mem::ManualClock,
    synth::{ChainGen, Epoch, SynthConfig},
    Cid, Config, Mode, SplitStore,
};

use splitstore_core::key::dag_cbor_blake2b_cid;

use crate::oracle::{header, key_of, links, Universe};

/// Small epochs and batches so a few dozen epochs exercise every phase and many batches.
pub fn small_config(mode: Mode) -> Config {
    Config {
        mode,
        finality: 4,
        threshold_finalities: 3,
        boundary_finalities: 2,
        message_retention: 1,
        sync_gap_secs: None,
        batch_size: 64,
        yield_every: 32,
        missing_retries: 1,
        missing_retry_wait_ms: 5,
        purge_pace_after_ms: 0,
        purge_sleep_factor: 1,
        ..Config::default()
    }
}

/// A small synthetic chain.
pub fn small_chain(seed: u64) -> ChainGen {
    ChainGen::new(SynthConfig { seed, state_objects: 120, messages_per_block: 3, ..SynthConfig::default() })
}

/// Every key of `space`, by paged scan through the trait.
pub async fn keys<K: Kv>(kv: &K, space: Space) -> HashSet<Vec<u8>> {
    let mut out = HashSet::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = kv.scan_keys(space, after.as_deref(), 500).await.expect("scan");
        let Some(last) = page.last().cloned() else { return out };
        out.extend(page);
        after = Some(last);
    }
}

/// Every block of a store, by paged scan.
pub async fn blocks<K: Kv>(kv: &K) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = kv.scan(Space::Blocks, after.as_deref(), 500).await.expect("scan");
        let Some((last, _)) = page.last().cloned() else { return out };
        out.extend(page);
        after = Some(last);
    }
}

/// The blocks of one store.
pub async fn universe_in<K: Kv>(kv: &K) -> Universe {
    let mut u = Universe::default();
    u.extend(blocks(kv).await);
    u
}

/// The union of hot and cold.
pub async fn universe_of<K: Kv>(hot: &K, cold: &K) -> Universe {
    let mut u = Universe::default();
    u.extend(blocks(hot).await);
    u.extend(blocks(cold).await);
    u
}

/// Blocks linked, directly or not, from a block of `cold` that neither store holds. Empty in
/// every mode: cold is closed (invariants I2′ and I7 in docs/design.md).
pub async fn cold_holes<K: Kv>(hot: &K, cold: &K) -> Vec<Cid> {
    let u = universe_of(hot, cold).await;
    let children: Vec<Cid> = blocks(cold).await.iter().flat_map(|(_, b)| links(b).unwrap_or_default()).collect();
    u.closure(&children).missing
}

/// DAG-CBOR blocks linked from a non-header block of `hot` that neither store holds: a purge
/// that deleted below a block it kept, or a recovery that did. Headers are skipped: an old
/// header stays while its state and messages go, by design. Empty after every compaction and
/// recovery of a store whose blocks were written with their children.
pub async fn hot_holes<K: Kv>(hot: &K, cold: &K) -> Vec<(Vec<u8>, Cid)> {
    let u = universe_of(hot, cold).await;
    let mut out = Vec::new();
    for (key, bytes) in blocks(hot).await {
        if header(&bytes).is_some() {
            continue;
        }
        for l in links(&bytes).unwrap_or_default() {
            let unitary = l.hash().code() == 0 || matches!(l.codec(), 0xf101 | 0xf102);
            if l.codec() == 0x71 && !unitary && !u.blocks.contains_key(&key_of(&l)) {
                out.push((key.clone(), l));
            }
        }
    }
    out
}

/// Writes an epoch's blocks and applies it as the head; returns the compaction it triggered.
pub async fn apply_epoch<K: Kv>(
    store: &SplitStore<K, ManualClock>,
    epoch: &Epoch,
) -> Option<splitstore_core::PendingCompaction> {
    store.put_many(epoch.blocks.clone()).await.expect("put epoch");
    store.head_change(&[], std::slice::from_ref(&epoch.tipset)).await.expect("head change")
}

/// A 16-field block header (as the header decoder reads them) with the given parents, height,
/// timestamp, and `state` as its state root, receipts and messages; its CID and bytes. It
/// carries no valid ticket or signature: what an attacker can forge.
pub fn forged_header(parents: &[Cid], height: u64, timestamp: u64, state: &Cid) -> (Cid, Vec<u8>) {
    use splitstore_core::header::write_cbor_head;
    let link = |c: &Cid, out: &mut Vec<u8>| {
        let bytes = c.to_bytes();
        out.extend([0xd8, 0x2a]);
        write_cbor_head(out, 2, bytes.len() as u64 + 1);
        out.push(0);
        out.extend(bytes);
    };
    // Miner, Ticket, ElectionProof, BeaconEntries, WinPoStProof, Parents, ParentWeight,
    // Height, ParentStateRoot, ParentMessageReceipts, Messages, BLSAggregate, Timestamp,
    // BlockSig, ForkSignaling, ParentBaseFee.
    let mut out = vec![0x90, 0x40, 0x80, 0x80, 0x80, 0x80];
    write_cbor_head(&mut out, 4, parents.len() as u64);
    for p in parents {
        link(p, &mut out);
    }
    out.push(0x40);
    write_cbor_head(&mut out, 0, height);
    for _ in 0..3 {
        link(state, &mut out);
    }
    out.push(0x40);
    write_cbor_head(&mut out, 0, timestamp);
    out.extend([0x40, 0x00, 0x40]);
    (dag_cbor_blake2b_cid(&out), out)
}

/// A new DAG-CBOR block linking `children` (and a nonce, so every block is new).
pub fn node(children: &[Cid], nonce: u64) -> (Cid, Vec<u8>) {
    let mut b = vec![0x82];
    b.push(0x80 | children.len() as u8);
    for c in children {
        let bytes = c.to_bytes();
        b.extend_from_slice(&[0xd8, 0x2a, 0x58, bytes.len() as u8 + 1, 0x00]);
        b.extend_from_slice(&bytes);
    }
    b.push(0x1b);
    b.extend_from_slice(&nonce.to_be_bytes());
    (dag_cbor_blake2b_cid(&b), b)
}
