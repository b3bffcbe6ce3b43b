//! Every input the fuzz targets (`fuzz/`, see `docs/fuzzing.md`) found a problem with, kept
//! as inline bytes and replayed through the very property checks the targets run (compiled
//! from `fuzz/src`, so the two cannot drift apart), plus direct assertions of the behaviour.
//!
//! A finding that is not fixed yet is `#[ignore]`d with its name (see docs/fuzzing.md);
//! `cargo test -p splitstore-conformance --test fuzz_regressions -- --ignored` runs it.

#[allow(dead_code)]
#[path = "../../fuzz/src/lib.rs"]
mod fuzz;

use splitstore_conformance::executor::block_on;
use splitstore_core::{
    config::Boundaries,
    key::{dag_cbor_blake2b_cid, BlockKey},
    kv::{Kv, Space, WriteBatch},
    mem::{ManualClock, MemKv},
    meta::{self, Head, PurgeRecord, StoreState},
    synth::{ChainGen, SynthConfig},
    Config, NoProgress, SplitStore,
};

/// F3 (fixed in `core/src/meta.rs`): a head record whose second CID's length prefix (38)
/// covers a 6-byte CID and 32 more bytes. `Cid::try_from` ignores bytes after a CID, so the
/// record decoded, and re-encoded to other bytes.
const HEAD_CID_WITH_TRAILING_BYTES: &[u8] = &[
    0x01, 0xc8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x10, 0x5e, 0x5f, 0x00, 0x00, 0x00, 0x00, 0x02, 0x26,
    0x01, 0x71, 0xa0, 0xe4, 0x02, 0x20, 0x7d, 0xab, 0x0c, 0x8f, 0x71, 0x61, 0x4d, 0xf0, 0x05, 0x81, 0xc2, 0x26, 0xf0,
    0x1f, 0x4e, 0x51, 0x60, 0xae, 0x7a, 0x41, 0xfa, 0x73, 0xc2, 0x0c, 0xf6, 0x51, 0x31, 0xee, 0x0f, 0xc9, 0xc6, 0xfe,
    0x26, 0x01, 0x71, 0xa0, 0xe4, 0x60, 0x00, 0x00, 0x00, 0x8a, 0x4f, 0x67, 0x53, 0x01, 0x0e, 0x0f, 0x41, 0xf7, 0x99,
    0x84, 0x19, 0x9d, 0x7f, 0x8a, 0x37, 0x2a, 0x46, 0x0b, 0x0f, 0xd1, 0xff, 0xbb, 0x1c, 0xa7, 0xdc, 0x8c, 0xb1, 0xa9,
    0xda,
];

#[test]
fn head_record_cids_fill_their_length_exactly() {
    assert!(Head::decode(HEAD_CID_WITH_TRAILING_BYTES).is_err());
    fuzz::meta::check(HEAD_CID_WITH_TRAILING_BYTES);
    // The same record with the second CID's length prefix naming exactly its 6 bytes decodes,
    // and encodes back to itself.
    let mut exact = HEAD_CID_WITH_TRAILING_BYTES[..64].to_vec();
    exact[57] = 6;
    let head = Head::decode(&exact).expect("a well-formed record");
    assert_eq!(head.tipset.len(), 2);
    assert_eq!(head.encode(), exact);
}

/// A list key (dead or cold list) whose multihash code is a 10-byte varint with bits past 64.
/// The multihash crate reads it, dropping those bits; the key a CID names must be stable.
const LIST_KEY_OVERLONG_CODE: &[u8] = &[0xc0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x03, 0x02, 0x00, 0x5e];

#[test]
fn list_keys_name_cids_stably() {
    fuzz::meta::check(LIST_KEY_OVERLONG_CODE);
    let cid = BlockKey::from_bytes(LIST_KEY_OVERLONG_CODE.to_vec()).to_raw_cid().expect("a multihash");
    assert_eq!(BlockKey::of(&cid).to_raw_cid(), Some(cid));
}

/// F1 (fixed in `core/src/compact/driver.rs`): a state record whose `last_marked` is
/// 0x2000_0000_0000_000a. The next compaction sized its mark set from it (`last_marked * 5 / 4`
/// slots) and hashbrown panicked with "capacity overflow"; a smaller but still huge value would
/// abort on allocation instead. Pre-sizing is now bounded.
const STATE_HUGE_LAST_MARKED: &[u8] = &[
    0xe7, 0x01, 0x19, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20, 0x05, 0x24, 0xa0, 0xe4, 0x60, 0x20, 0x21, 0x02, 0x42, 0xf9,
    0x11, 0x8b, 0x2e, 0x96, 0x14, 0xe4, 0xf3, 0x23, 0xfb, 0x16, 0x08, 0x5e, 0x55, 0x6c, 0x57, 0x7b, 0xe8, 0xf6, 0x5c,
    0xa3, 0x38, 0x5e, 0x13, 0xe4, 0x16, 0x2d, 0xba, 0x5e,
];

/// F1 through recovery: a purge record whose `marked` is 0xa800_0000_0000_01f4. Recovery
/// finishes the purge and stores `marked` as `last_marked`, which sized the next mark set.
const PURGE_HUGE_MARKED: &[u8] = &[
    0xe7, 0x02, 0x29, 0x01, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x3c, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf4, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0xa8, 0x14, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];

/// F2 (fixed in `core/src/compact/purge.rs`): a state record whose compaction count is
/// `u64::MAX`; finishing the next compaction added one unchecked (a panic with overflow
/// checks, a silent wrap without). The count now saturates.
const STATE_MAX_COMPACTIONS: &[u8] = &[
    0xe7, 0x01, 0x19, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x7c, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05, 0x24, 0xa0, 0xe4, 0x02, 0x20, 0xf9, 0x42, 0x11, 0x60,
    0x21, 0x8b, 0x2e, 0x96, 0x14, 0xe4, 0xe4, 0x16, 0x26, 0xba, 0xec,
];

/// A store over a small synthetic chain with `records` written into its metadata space, if it
/// opens.
fn store_with_meta(records: &[(&[u8], Vec<u8>)]) -> Option<SplitStore<MemKv, ManualClock>> {
    let cfg = Config { sync_gap_secs: None, finality: 1, ..Config::default() };
    let hot = MemKv::new();
    {
        let store =
            block_on(SplitStore::open(hot.clone(), MemKv::new(), ManualClock::new(0), cfg.clone())).expect("open");
        let mut chain = ChainGen::new(SynthConfig { seed: 5, state_objects: 12, ..SynthConfig::default() });
        for _ in 0..3 {
            let e = chain.next_epoch();
            block_on(store.put_many(e.blocks)).expect("put");
            drop(block_on(store.head_change(&[], &[e.tipset])).expect("head"));
        }
    }
    let mut batch = WriteBatch::new();
    for (key, value) in records {
        batch.put(Space::Meta, *key, value.clone());
    }
    block_on(hot.write(batch)).expect("write");
    block_on(SplitStore::open(hot, MemKv::new(), ManualClock::new(0), cfg)).ok()
}

#[test]
fn stored_markset_size_is_bounded() {
    fuzz::meta::check(STATE_HUGE_LAST_MARKED);
    fuzz::meta::check(PURGE_HUGE_MARKED);
    let state = StoreState { base_epoch: 0, compactions: 1, last_marked: u64::MAX / 2 };
    let store = store_with_meta(&[(meta::STATE, state.encode())]).expect("open");
    let report = block_on(store.compact(&NoProgress)).expect("a compaction of a healthy store");
    assert!(report.marked > 0 && report.marked < 1000);
}

#[test]
fn stored_compaction_count_may_be_the_largest() {
    fuzz::meta::check(STATE_MAX_COMPACTIONS);
    let state = StoreState { base_epoch: 0, compactions: u64::MAX, last_marked: 10 };
    let purge =
        PurgeRecord { boundaries: Boundaries { head: 2, boundary: 1, include_messages: 1 }, marked: 10, dead: 0 };
    // Recovery finishes the recorded purge at open: it must not overflow either.
    let store = store_with_meta(&[(meta::STATE, state.encode()), (meta::PURGE, purge.encode())]);
    if let Some(store) = store {
        drop(block_on(store.compact(&NoProgress)));
    }
}

/// F4 (fixed in `core/src/compact/mark.rs`), found by the `ops` target. Universal mode; epoch 0
/// is applied, then a compaction runs interleaved with applying epochs 1 to 6, and the fault fuse blows during its move
/// phase; the crash image keeps 3 not-yet-durable batches of each store. Blocks of epoch 5 were
/// written during collect, so collect listed them as dead and cold, and the protection of the
/// transaction's references took them off the dead list but not the cold list; the move then
/// copied them to cold. The crash lost their (non-durable) hot writes and kept the first cold
/// batches: a block of epoch 5 survived in cold while its child, also of epoch 5, was gone.
/// A late mark now removes the cold-list entry with the dead-list entry.
const COLD_COPY_WITHOUT_DAG: &[u8] = &[
    0xa0, 0xe4, 0x02, 0x20, 0x47, 0xfe, 0x57, 0xa2, 0x2a, 0x6c, 0x30, 0x5d, 0xc1, 0x8e, 0x5d, 0xc1, 0x8e, 0x40, 0xe3,
    0xe3, 0xe3, 0xe3, 0xe3, 0xe3, 0xe3, 0xe3, 0xe3, 0xe3, 0xe3, 0xe3, 0xe3, 0xe3, 0xe3, 0xe3, 0xe3, 0xe3, 0xe3, 0xe3,
    0xe3, 0x0a, 0xd3, 0x03, 0xd0, 0x0e, 0xe3, 0xe3, 0xc3, 0x0b, 0xad, 0x02, 0xcf, 0x73, 0x86, 0x21, 0xf2, 0x80, 0x66,
    0x13,
];

#[test]
fn rescued_block_keeps_its_dag_through_a_crash() {
    fuzz::ops::check(COLD_COPY_WITHOUT_DAG);
}

/// F6 (fixed in `core/src/compact/relocate.rs`), found by the `ops` target. Universal mode; a
/// block Y and then a block X linking it are written and never made durable; a compaction
/// interleaved with the foreground lists both dead and copies X to cold (made durable), then
/// the fault fuse blows. The crash loses both hot writes and keeps X's cold copy: X is readable
/// without its child, a state no prefix of the writes had, and a later `get` of X hands out an
/// incomplete DAG. The move now makes hot durable before its first copy.
const COLD_COPY_OUTLIVES_ITS_HOT_WRITE: &[u8] = &[
    0xa0, 0xe4, 0x02, 0x20, 0x47, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xf6, 0xff, 0xff, 0x00, 0x00, 0xd6, 0x81, 0x36,
    0xe4, 0x02, 0x20, 0x47, 0xd6, 0x81, 0x36, 0xfe, 0x57, 0xa2, 0x2a, 0x6c, 0x30, 0x5d, 0xc1, 0x8e, 0x40, 0xa4, 0x27,
    0x6e, 0x0d, 0x48, 0x0b, 0xff, 0xff, 0xff, 0xff, 0x5a, 0x32, 0x00, 0x0b, 0x9a, 0x02, 0x67, 0x06, 0x0c, 0x39, 0x00,
    0x0d, 0x2e, 0x0a, 0xb1, 0x37, 0xa5, 0xa0, 0xe4, 0x02, 0x20, 0xa6, 0x2d, 0x4d, 0x24, 0x59, 0xc5, 0x64, 0x9f, 0x9f,
    0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0xa4, 0x9f, 0x5f, 0x00, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f,
    0xae, 0xdc, 0xdc, 0x00, 0x9f, 0x9f, 0x9f, 0x9f, 0x30, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f,
    0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f,
    0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x3a, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f, 0x9f,
    0x9f, 0xbc, 0x46, 0x30, 0x17, 0x3e, 0xfc, 0x3a, 0xe4, 0xe1, 0xc0, 0xdd, 0xf0, 0x00, 0x4e, 0x0d, 0x02, 0x81, 0x2e,
];

#[test]
fn a_cold_copy_never_outlives_the_hot_writes_before_it() {
    fuzz::ops::check(COLD_COPY_OUTLIVES_ITS_HOT_WRITE);
}

/// Found by the `ops` target; a model error, kept as a replay of crashes around compactions.
/// Discard mode; a compaction with the head at genesis removes genesis's receipts AMT (dead:
/// receipts are kept only above height 0), and the next epoch's header links it again. The
/// generator emits every block once, so the model now fetches such blocks again with the
/// epoch that links them, as a syncing node would.
const RELINKED_AFTER_PURGE: &[u8] = &[
    0x00, 0xf8, 0x01, 0x8d, 0x00, 0x9b, 0x01, 0xa2, 0x00, 0xe3, 0x00, 0xe4, 0x00, 0xc0, 0x0f, 0xf4, 0x04, 0x38, 0x00,
    0x76, 0x0f, 0x55, 0x00, 0x9e, 0x01, 0xb1, 0x0a, 0x2c, 0x0a, 0xb4, 0x04, 0xb5, 0x0a, 0x08, 0x0d, 0x4f, 0x02, 0x1d,
    0x0e, 0xb5, 0x0b, 0x7e, 0x0c, 0xee, 0x08, 0x55, 0x0f, 0x38, 0x08, 0x29, 0x02, 0x42, 0x0d, 0x3f, 0x01, 0x23, 0x0f,
    0x66, 0x00, 0xd7, 0x06, 0x4a, 0x04, 0x65, 0x0b, 0x03, 0x0e, 0x8b, 0x00, 0x9a, 0x03, 0x2f, 0x0e, 0x09, 0x00, 0x04,
    0x0a, 0xa6, 0x0e, 0x37, 0x0b, 0x62, 0x0f, 0x82, 0x0b, 0x28, 0x0f, 0xb0, 0x0d,
];

/// Found by the `ops` target; a harness error, kept as a replay: a clean close while the fuse
/// was armed blew it inside `close` (which must then count as a crash).
const CLOSE_WITH_FUSE_ARMED: &[u8] = &[
    0x0d, 0x24, 0x03, 0xcb, 0x0f, 0x59, 0x0c, 0x68, 0x26, 0x01, 0xaf, 0x00, 0x6f, 0x02, 0x5c, 0x02, 0x08, 0xcb, 0x00,
    0x31, 0x00, 0x21, 0x0e, 0x95, 0x0e, 0x1a, 0x0f, 0x4d, 0x0e, 0xad, 0x02, 0x06, 0x00, 0x0f, 0x0a, 0xdd, 0x0e, 0x0b,
    0x08, 0x4e, 0x0d, 0x85, 0x08, 0x39, 0x0d, 0xb6, 0x06, 0xbc, 0x0c, 0xc1, 0x00, 0x7a, 0x00, 0x7c, 0x00, 0x98, 0x03,
    0xd4, 0x0a, 0x26, 0x01, 0xaf, 0x00, 0x6f, 0x02, 0x5c, 0x02, 0x9a, 0x0e, 0x19, 0x08, 0xa1, 0x02, 0xff, 0x0b, 0x8f,
    0x00, 0x47, 0x0d, 0x0b, 0x0d, 0x03, 0x08, 0xf0, 0x00, 0x11, 0x0f, 0xd0, 0x08, 0x25, 0x0f, 0x5e, 0x02, 0xec, 0x00,
    0x5c, 0x0f, 0x26, 0x03,
];

/// Found by the `ops` target; a model error. Genesis is the head, a compaction runs
/// interleaved with applying epoch 1, whose header links a block of genesis the compaction
/// removes as dead. The model checked which ancestors to send again by looking past the store,
/// which is not a touch, so the block it found present was purged before the epoch's write; it
/// now asks the store (`has`), as a syncing node does.
const ANCESTRY_CHECKED_PAST_THE_STORE: &[u8] = &[
    0x0c, 0x38, 0x27, 0x27, 0xff, 0x27, 0x01, 0x00, 0x27, 0x27, 0x27, 0x27, 0x27, 0x27, 0x27, 0xad, 0x02, 0x81, 0x27,
    0x27, 0x2f, 0x27, 0x10, 0x27, 0x27, 0x27, 0x27, 0x27, 0x27, 0x40, 0x27, 0x27, 0x27, 0x27, 0x27, 0x27, 0x27, 0x27,
    0xad, 0x02, 0x81, 0x0a,
];

/// Found by the `ops` target; a model error of the same kind. A block written during a
/// compaction's critical section linked a block the model had found present by looking past
/// the store; the block was dead for that compaction and purged before the write. New blocks
/// now link only blocks the store says it has (`has`, a touch).
const CHILD_CHECKED_PAST_THE_STORE: &[u8] = &[
    0x0c, 0x38, 0x0e, 0xad, 0x0d, 0xb1, 0x0a, 0x2e, 0x0d, 0xc9, 0x0b, 0x7d, 0x0a, 0xd3, 0x03, 0xd0, 0x0e, 0x47, 0x0c,
    0x0e, 0xad, 0x0d, 0xb1, 0x0a, 0x2e, 0x0d, 0xc9, 0x0b, 0x7d, 0x0a, 0xd3, 0x84, 0x0b, 0xad, 0x02, 0x3c, 0x3c, 0x3c,
    0x3c, 0x3c, 0x3c, 0x3c, 0x3c, 0x3c, 0x3c, 0x3c, 0x3c, 0x5b, 0x59, 0x16, 0x08, 0xdd, 0x08, 0x08, 0x1d, 0x2f, 0x00,
    0x1b, 0x03, 0x02, 0xc6, 0x7f, 0xb9, 0x88, 0xbc, 0xa5, 0xba, 0xa7, 0xf7, 0x49, 0x08, 0xb8, 0xb9, 0x2c, 0x2d, 0xaa,
    0xd5, 0x65, 0xbc, 0x31, 0x9b, 0x80, 0xd4, 0x26, 0x38, 0x89, 0x19, 0xf1, 0xc1, 0xff, 0x31, 0x3c, 0x3c, 0x3c, 0x3c,
    0x3c, 0x3c, 0x3c, 0x81, 0x0a,
];

#[test]
fn operation_sequences_found_by_the_fuzzer_replay_cleanly() {
    for input in
        [RELINKED_AFTER_PURGE, CLOSE_WITH_FUSE_ARMED, ANCESTRY_CHECKED_PAST_THE_STORE, CHILD_CHECKED_PAST_THE_STORE]
    {
        fuzz::ops::check(input);
    }
}

#[test]
fn parser_checks_accept_their_own_seeds() {
    // The checks themselves must hold on well-formed input, or the targets test nothing.
    let (cid, block) = splitstore_conformance::interleave::node(&[dag_cbor_blake2b_cid(b"child")], 7);
    fuzz::links::check(&block);
    let mut car = vec![0x00, 0x01, 0x02, 0x03];
    splitstore_core::car::write_car_v1(&[cid], [(cid, &block)], &mut car);
    fuzz::car::check(&car);
    // The F5 file under each head policy, in one call and in chunks.
    let empty = vec![0xa0u8];
    let empty_cid = dag_cbor_blake2b_cid(&empty);
    let (forged_cid, forged) =
        splitstore_conformance::chain::forged_header(&[empty_cid], 1_000_000, 1_700_000_000, &empty_cid);
    for flags in [0x00, 0x20, 0x40, 0x60, 0x80, 0xc0] {
        let mut car = vec![flags, 0x01, 0x02, 0x03];
        splitstore_core::car::write_car_v1(&[forged_cid], [(forged_cid, &forged), (empty_cid, &empty)], &mut car);
        fuzz::car::check(&car);
    }
    let state = StoreState { base_epoch: -1, compactions: 3, last_marked: 9 };
    fuzz::meta::check(&state.encode());
}

/// F5 (fixed by a head policy, `core/src/import/head_policy.rs`): `import_car` applied the
/// file's roots as the head whenever they decoded as headers, and returned the compaction that
/// head decided. A forged 16-field header at height 1,000,000 whose parents are the real head and
/// whose state root is an empty map (a CAR of 335 bytes) moved the head there, and the compaction
/// purged the real chain's state as "below the boundary". A header that extends the head cannot
/// be told from a real one without consensus, so input that is not trusted is imported under
/// `HeadPolicy::Keep`: its blocks are stored, the head stays, nothing live is lost.
#[test]
fn a_forged_head_in_an_untrusted_car_loses_no_data() {
    use splitstore_conformance::{
        chain::{forged_header, universe_of},
        testdata::read_testdata,
    };
    use splitstore_core::import::{HeadPolicy, HeadSkip};

    let cfg = Config { sync_gap_secs: None, finality: 10, ..Config::default() };
    let store = block_on(SplitStore::open(MemKv::new(), MemKv::new(), ManualClock::new(0), cfg.clone())).expect("open");
    let chain = read_testdata("kubo-lotus-testnet/lotus_testnet_export_128.car");
    let r = block_on(store.import_car(&chain)).expect("a real chain imports");
    if let Some(p) = r.compaction {
        block_on(store.run_compaction(p, &NoProgress)).expect("compaction of a real chain");
    }
    let head = block_on(store.info()).expect("info").head.expect("a head");
    let b = cfg.boundaries(128);
    let live = |store: &SplitStore<MemKv, ManualClock>| {
        block_on(universe_of(store.hot(), store.cold())).live_set(&head, b.boundary, b.include_messages)
    };
    assert!(live(&store).missing.is_empty());

    let empty = vec![0xa0u8];
    let empty_cid = dag_cbor_blake2b_cid(&empty);
    let (forged_cid, forged) = forged_header(&head, 1_000_000, 1_700_000_000, &empty_cid);
    let mut car = Vec::new();
    splitstore_core::car::write_car_v1(&[forged_cid], [(forged_cid, &forged), (empty_cid, &empty)], &mut car);
    assert!(car.len() < 400, "the whole attack is {} bytes", car.len());

    let r = block_on(store.import_car_with(&car, HeadPolicy::Keep)).expect("a well-formed CAR imports");
    assert!(!r.head_applied && r.compaction.is_none());
    assert_eq!(r.head_skipped, Some(HeadSkip::Kept));
    assert_eq!(block_on(store.get(&forged_cid)).expect("get"), Some(forged), "the blocks are stored");
    assert_eq!(block_on(store.info()).expect("info").head.as_ref(), Some(&head), "the head stays");
    drop(block_on(store.compact(&NoProgress)).expect("a compaction against the real head"));
    let lost = live(&store).missing;
    assert!(
        lost.is_empty(),
        "a {}-byte CAR made the store drop {} live blocks of the real head",
        car.len(),
        lost.len()
    );
}
