//! Which imports may move the head: under the default policy, only a tipset that extends the
//! current head (or the first head of an empty store); `Apply` trusts the file, `Keep` never
//! moves the head. Whatever the verdict, the file's blocks are stored.

use splitstore_conformance::{chain::forged_header, executor::block_on, testdata::read_testdata};
use splitstore_core::{
    car::write_car_v1,
    import::{HeadPolicy, HeadSkip, ImportReport},
    key::dag_cbor_blake2b_cid,
    mem::{ManualClock, MemKv},
    synth::{ChainGen, Epoch, SynthConfig},
    Cid, Config, SplitStore,
};

type Store = SplitStore<MemKv, ManualClock>;

fn store() -> Store {
    let cfg = Config { sync_gap_secs: None, finality: 10, ..Config::default() };
    block_on(SplitStore::open(MemKv::new(), MemKv::new(), ManualClock::new(0), cfg)).expect("open")
}

fn epoch_car(e: &Epoch) -> Vec<u8> {
    let mut car = Vec::new();
    write_car_v1(&e.tipset, e.blocks.iter().map(|(c, b)| (*c, b)), &mut car);
    car
}

fn import(s: &Store, car: &[u8], policy: HeadPolicy) -> ImportReport {
    block_on(s.import_car_with(car, policy)).expect("a well-formed CAR imports")
}

fn head(s: &Store) -> Option<Vec<Cid>> {
    block_on(s.info()).expect("info").head
}

fn chain(seed: u64, epochs: usize) -> Vec<Epoch> {
    let mut g = ChainGen::new(SynthConfig { seed, state_objects: 200, ..SynthConfig::default() });
    (0..epochs).map(|_| g.next_epoch()).collect()
}

fn assert_does_not_extend(r: &ImportReport, why: &str) {
    assert!(!r.head_applied && r.compaction.is_none(), "{r:?}");
    match &r.head_skipped {
        Some(HeadSkip::DoesNotExtend { why: w, .. }) => assert!(w.contains(why), "{w}"),
        other => panic!("expected DoesNotExtend ({why}), got {other:?}"),
    }
}

#[test]
fn a_growing_chain_moves_the_head_epoch_by_epoch() {
    let s = store();
    for e in chain(1, 30) {
        let r = import(&s, &epoch_car(&e), HeadPolicy::Extend);
        assert!(r.head_applied, "epoch {}: {:?}", e.height, r.head_skipped);
        assert_eq!(head(&s).as_deref(), Some(&e.tipset[..]));
        if let Some(p) = r.compaction {
            block_on(s.run_compaction(p, &splitstore_core::NoProgress)).expect("compaction");
        }
    }
    assert_eq!(block_on(s.check()).expect("check").missing, 0);
}

#[test]
fn a_jump_over_epochs_the_store_holds_extends_the_head() {
    let s = store();
    let c = chain(2, 12);
    import(&s, &epoch_car(&c[0]), HeadPolicy::Extend);
    // Epochs 1..10 arrive without moving the head, then epoch 11 extends it through them.
    for e in &c[1..11] {
        import(&s, &epoch_car(e), HeadPolicy::Keep);
    }
    assert_eq!(head(&s).as_deref(), Some(&c[0].tipset[..]));
    assert!(import(&s, &epoch_car(&c[11]), HeadPolicy::Extend).head_applied);
    assert_eq!(head(&s).as_deref(), Some(&c[11].tipset[..]));
}

#[test]
fn an_older_snapshot_or_a_gap_does_not_move_the_head() {
    let s = store();
    let c = chain(3, 12);
    for e in &c[..8] {
        assert!(import(&s, &epoch_car(e), HeadPolicy::Extend).head_applied);
    }
    // Back in time.
    assert_does_not_extend(&import(&s, &epoch_car(&c[4]), HeadPolicy::Extend), "not higher");
    // Ahead, but epochs 8 and 9 are not in the store.
    assert_does_not_extend(&import(&s, &epoch_car(&c[10]), HeadPolicy::Extend), "not in the store");
    assert_eq!(head(&s).as_deref(), Some(&c[7].tipset[..]));
    // The same tipset again is not a move.
    assert!(import(&s, &epoch_car(&c[7]), HeadPolicy::Extend).head_applied);
    // A trusted file moves it anyway.
    assert!(import(&s, &epoch_car(&c[4]), HeadPolicy::Apply).head_applied);
    assert_eq!(head(&s).as_deref(), Some(&c[4].tipset[..]));
}

#[test]
fn another_chain_or_a_fork_does_not_move_the_head() {
    let s = store();
    let c = chain(4, 6);
    for e in &c {
        import(&s, &epoch_car(e), HeadPolicy::Extend);
    }
    // Another network's chain, higher, with every one of its epochs in the file's store.
    let other = chain(5, 9);
    for e in &other[..8] {
        import(&s, &epoch_car(e), HeadPolicy::Keep);
    }
    assert_does_not_extend(&import(&s, &epoch_car(&other[8]), HeadPolicy::Extend), "passes the current head");
    // A fork: a header on the head's parent, two epochs higher.
    let empty = vec![0xa0u8];
    let empty_cid = dag_cbor_blake2b_cid(&empty);
    let (fork_cid, fork) = forged_header(&c[4].tipset, c[5].height as u64 + 2, 1, &empty_cid);
    let mut car = Vec::new();
    write_car_v1(&[fork_cid], [(fork_cid, &fork), (empty_cid, &empty)], &mut car);
    assert_does_not_extend(&import(&s, &car, HeadPolicy::Extend), "passes the current head");
    assert_eq!(head(&s).as_deref(), Some(&c[5].tipset[..]));
    assert_eq!(block_on(s.get(&fork_cid)).expect("get"), Some(fork), "the blocks are stored all the same");
}

#[test]
fn roots_that_are_not_one_tipset_never_become_the_head() {
    let s = store();
    let c = chain(6, 3);
    for e in &c[..2] {
        import(&s, &epoch_car(e), HeadPolicy::Extend);
    }
    // Headers of two different epochs as the roots of one file.
    let mut car = Vec::new();
    let roots = [c[1].tipset[0], c[2].tipset[0]];
    write_car_v1(&roots, c[2].blocks.iter().map(|(c, b)| (*c, b)), &mut car);
    for policy in [HeadPolicy::Extend, HeadPolicy::Apply] {
        let r = import(&s, &car, policy);
        assert_eq!(r.head_skipped, Some(HeadSkip::NotATipset));
    }
    // A state root as the root.
    let mut car = Vec::new();
    write_car_v1(&[c[2].state_root], c[2].blocks.iter().map(|(c, b)| (*c, b)), &mut car);
    assert_eq!(import(&s, &car, HeadPolicy::Apply).head_skipped, Some(HeadSkip::NotATipset));
    assert_eq!(head(&s).as_deref(), Some(&c[1].tipset[..]));
}

#[test]
fn a_real_chain_sets_the_first_head_and_an_older_export_of_it_does_not_replace_it() {
    let s = store();
    let newer =
        import(&s, &read_testdata("kubo-lotus-testnet/lotus_testnet_export_256_multiroot.car"), HeadPolicy::Extend);
    assert!(newer.head_applied);
    let older = import(&s, &read_testdata("kubo-lotus-testnet/lotus_testnet_export_128.car"), HeadPolicy::Extend);
    assert_does_not_extend(&older, "not higher");
    assert_eq!(block_on(s.info()).expect("info").head_epoch, Some(256));
    assert_eq!(block_on(s.check()).expect("check").missing, 0);
}

#[test]
fn policies_are_named_as_the_cli_and_js_spell_them() {
    for p in [HeadPolicy::Extend, HeadPolicy::Apply, HeadPolicy::Keep] {
        assert_eq!(HeadPolicy::parse(p.as_str()), Some(p));
    }
    assert_eq!(HeadPolicy::parse("trust"), None);
    assert_eq!(HeadPolicy::default(), HeadPolicy::Extend);
}
