//! The synthetic chain generator, checked with an independent decoder (`serde_ipld_dagcbor`
//! to `Ipld`) rather than with the generator's own encoder.

use std::collections::{HashMap, HashSet};

use cid::Cid;
use ipld_core::ipld::Ipld;
use splitstore_core::header;
use splitstore_core::key::{
    dag_cbor_blake2b_cid, is_unitary, verify, BLAKE2B_256, DAG_CBOR, FIL_COMMITMENT_SEALED, IDENTITY, RAW,
};
use splitstore_core::synth::{ChainGen, Epoch, SynthConfig};

fn small() -> SynthConfig {
    SynthConfig { state_objects: 600, ..SynthConfig::default() }
}

fn chain(cfg: &SynthConfig, epochs: usize) -> Vec<Epoch> {
    ChainGen::new(cfg.clone()).take(epochs).collect()
}

fn ipld(bytes: &[u8]) -> Ipld {
    serde_ipld_dagcbor::from_slice::<Ipld>(bytes).expect("generated block is valid DAG-CBOR")
}

fn links(v: &Ipld, out: &mut Vec<Cid>) {
    match v {
        Ipld::Link(c) => out.push(*c),
        Ipld::List(items) => items.iter().for_each(|i| links(i, out)),
        Ipld::Map(m) => m.values().for_each(|i| links(i, out)),
        _ => {}
    }
}

fn block_links(cid: &Cid, bytes: &[u8]) -> Vec<Cid> {
    let mut out = Vec::new();
    if cid.codec() == DAG_CBOR {
        links(&ipld(bytes), &mut out);
    }
    out
}

fn list(v: &Ipld) -> &[Ipld] {
    match v {
        Ipld::List(l) => l,
        other => panic!("expected a list, got {other:?}"),
    }
}

fn link(v: &Ipld) -> Cid {
    match v {
        Ipld::Link(c) => *c,
        other => panic!("expected a link, got {other:?}"),
    }
}

fn int(v: &Ipld) -> i128 {
    match v {
        Ipld::Integer(i) => *i,
        other => panic!("expected an integer, got {other:?}"),
    }
}

fn all_blocks(epochs: &[Epoch]) -> HashMap<Cid, Vec<u8>> {
    epochs.iter().flat_map(|e| e.blocks.iter().cloned()).collect()
}

/// Values of an AMT (`[bit_width, height, count, node]`, node `[bitmap, [links], [values]]`),
/// loading inner nodes from `blocks`; also checks the count field.
fn amt_values(root: &Cid, blocks: &HashMap<Cid, Vec<u8>>) -> Vec<Ipld> {
    let root = ipld(&blocks[root]);
    let fields = list(&root);
    assert_eq!(fields.len(), 4);
    let mut out = Vec::new();
    let mut stack = vec![fields[3].clone()];
    while let Some(node) = stack.pop() {
        let node = list(&node).to_vec();
        let children = list(&node[1]);
        for c in children.iter().rev() {
            stack.push(ipld(&blocks[&link(c)]));
        }
        out.extend(list(&node[2]).iter().cloned());
    }
    assert_eq!(int(&fields[2]) as usize, out.len(), "AMT count field");
    out
}

#[test]
fn same_seed_gives_identical_bytes() {
    let cfg = SynthConfig { seed: 42, ..small() };
    let a = chain(&cfg, 60);
    let b = chain(&cfg, 60);
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((x.height, &x.tipset, x.timestamp, x.state_root), (y.height, &y.tipset, y.timestamp, y.state_root));
        assert_eq!(x.blocks, y.blocks);
    }
}

#[test]
fn different_seeds_differ() {
    let a = chain(&SynthConfig { seed: 1, ..small() }, 30);
    let b = chain(&SynthConfig { seed: 2, ..small() }, 30);
    assert_ne!(a[0].blocks, b[0].blocks);
    let a_cids: HashSet<Cid> = a.iter().flat_map(|e| e.blocks.iter().map(|b| b.0)).collect();
    let shared =
        b.iter().flat_map(|e| &e.blocks).map(|b| b.0).filter(|c| a_cids.contains(c)).collect::<HashSet<_>>().len();
    // Only seed-independent constants (info object, empty AMT/TxMeta) may coincide.
    assert!(shared <= 3, "{shared} blocks shared between seeds");
    assert_ne!(a.iter().map(|e| e.height).collect::<Vec<_>>(), b.iter().map(|e| e.height).collect::<Vec<_>>());
}

#[test]
fn every_cid_hashes_its_bytes() {
    for dangling in [true, false] {
        let cfg = SynthConfig { dangling_code_links: dangling, ..small() };
        let mut raw = 0;
        for e in chain(&cfg, 40) {
            for (cid, bytes) in &e.blocks {
                assert_eq!(cid.version(), cid::Version::V1);
                assert_eq!(cid.hash().code(), BLAKE2B_256);
                match cid.codec() {
                    DAG_CBOR => assert_eq!(*cid, dag_cbor_blake2b_cid(bytes)),
                    RAW => raw += 1,
                    other => panic!("unexpected codec {other:#x}"),
                }
                verify(cid, bytes).expect("hash matches");
            }
        }
        assert!(raw > 0, "state has raw leaf blocks");
    }
}

/// No block is emitted twice in an epoch, and across epochs only the two constant objects a
/// node builds again whenever a block has no messages of a kind (the empty AMT, the empty
/// TxMeta) are: their earlier copy may have been discarded by a compaction since.
#[test]
fn no_block_is_emitted_twice_but_the_empty_message_objects() {
    let cfg = SynthConfig { messages_per_block: 1, max_blocks_per_tipset: 5, ..small() };
    let mut seen = HashSet::new();
    let mut again = HashSet::new();
    for e in chain(&cfg, 300) {
        let mut this_epoch = HashSet::new();
        let mut repeated = (0, 0);
        for (cid, bytes) in &e.blocks {
            assert!(this_epoch.insert(*cid), "{cid} emitted twice at height {}", e.height);
            if !seen.insert(*cid) {
                again.insert(*cid);
                repeated = (repeated.0 + 1, repeated.1 + bytes.len() as u64);
            }
        }
        assert_eq!(e.repeated, repeated, "the epoch's count of repeats, at height {}", e.height);
    }
    assert!(!again.is_empty() && again.len() <= 2, "blocks emitted in more than one epoch: {again:?}");
}

/// Every link resolves to a block of this or an earlier epoch, and within an epoch to a block
/// listed before the one that links to it; the only exceptions are the documented ones.
fn check_links(cfg: SynthConfig, epochs: usize) -> (usize, usize, usize) {
    let gen = ChainGen::new(cfg.clone());
    let codes: HashSet<Cid> = gen.code_cids().iter().copied().collect();
    let mut known: HashSet<Cid> = HashSet::new();
    let (mut code_links, mut commitments, mut identities) = (0, 0, 0);
    for e in gen.take(epochs) {
        for (cid, bytes) in &e.blocks {
            for l in block_links(cid, bytes) {
                if known.contains(&l) {
                    continue;
                }
                if is_unitary(&l) {
                    assert!(l.codec() == FIL_COMMITMENT_SEALED || l.hash().code() == IDENTITY);
                    if l.codec() == FIL_COMMITMENT_SEALED {
                        commitments += 1;
                    } else {
                        identities += 1;
                    }
                } else if cfg.dangling_code_links && codes.contains(&l) {
                    code_links += 1;
                } else {
                    panic!("{cid} at height {} links to {l}, not emitted before it", e.height);
                }
            }
            known.insert(*cid);
        }
    }
    (code_links, commitments, identities)
}

#[test]
fn links_resolve_except_the_documented_ones() {
    let (code, comm, ident) = check_links(SynthConfig { dangling_code_links: true, ..small() }, 60);
    assert!(code > 0 && comm > 0 && ident > 0, "{code} {comm} {ident}");
    let (code, comm, ident) = check_links(SynthConfig { dangling_code_links: false, ..small() }, 60);
    assert_eq!(code, 0);
    assert!(comm > 0 && ident > 0);
}

/// Objects reachable from a state root through stored blocks.
fn reachable(root: &Cid, blocks: &HashMap<Cid, Vec<u8>>) -> HashSet<Cid> {
    let mut seen = HashSet::new();
    let mut stack = vec![*root];
    while let Some(c) = stack.pop() {
        let Some(bytes) = blocks.get(&c) else {
            continue;
        };
        if seen.insert(c) {
            stack.extend(block_links(&c, bytes));
        }
    }
    seen
}

#[test]
fn churn_shares_structure() {
    let cfg = SynthConfig { state_objects: 5000, churn_percent: 2, ..SynthConfig::default() };
    let epochs = chain(&cfg, 12);
    let blocks = all_blocks(&epochs);
    let genesis_state = reachable(&epochs[0].state_root, &blocks);
    assert!(genesis_state.len() > 5000);
    let churn = 5000 * 2 / 100;
    for e in &epochs[1..] {
        let state = reachable(&e.state_root, &blocks);
        // Same actors, same tree shape: the same number of objects.
        assert_eq!(state.len(), genesis_state.len());
        let new: HashSet<Cid> = e.blocks.iter().map(|b| b.0).collect();
        let fresh = state.iter().filter(|c| new.contains(c)).count();
        assert!(fresh >= churn * 9 / 10, "{fresh} new state objects, churn {churn}");
        assert!(fresh <= churn * 3 + 10, "{fresh} new state objects, churn {churn}");
        assert!(fresh * 10 < state.len());
    }
    // Zero churn: the state root never changes and no state object is rewritten.
    let still = chain(&SynthConfig { churn_percent: 0, ..small() }, 10);
    assert!(still.iter().all(|e| e.state_root == still[0].state_root));
}

#[test]
fn null_rounds_appear_at_the_configured_rate() {
    let e = chain(&SynthConfig { null_round_per_mille: 200, state_objects: 50, ..small() }, 400);
    let gaps: i64 = e.windows(2).map(|w| w[1].height - w[0].height - 1).sum();
    // 399 steps, each skipping Geometric(0.2) heights: expect about 100.
    assert!((60..150).contains(&gaps), "{gaps} null rounds");
    let e = chain(&SynthConfig { null_round_per_mille: 0, state_objects: 50, ..small() }, 100);
    assert!(e.iter().enumerate().all(|(i, e)| e.height == i as i64));
}

#[test]
fn tipsets_are_well_formed() {
    let cfg = SynthConfig { max_blocks_per_tipset: 4, state_objects: 100, ..small() };
    let epochs = chain(&cfg, 300);
    let blocks = all_blocks(&epochs);
    let mut sizes = [0usize; 5];
    for (i, e) in epochs.iter().enumerate() {
        assert!((1..=4).contains(&e.tipset.len()));
        sizes[e.tipset.len()] += 1;
        assert_eq!(e.timestamp, cfg.genesis_timestamp + e.height as u64 * cfg.block_time_secs);
        let mut miners = HashSet::new();
        for h in &e.tipset {
            let v = ipld(&blocks[h]);
            let f = list(&v);
            assert_eq!(f.len(), 16);
            let Ipld::Bytes(miner) = &f[0] else { panic!("miner is an address byte string") };
            assert!(miners.insert(miner.clone()), "distinct miners");
            let parents: Vec<Cid> = list(&f[5]).iter().map(link).collect();
            let expected_parents = if i == 0 { Vec::new() } else { epochs[i - 1].tipset.clone() };
            assert_eq!(parents, expected_parents);
            assert_eq!(int(&f[7]), i128::from(e.height));
            assert_eq!(link(&f[8]), e.state_root);
            assert_eq!(int(&f[12]), i128::from(e.timestamp));
            let first = ipld(&blocks[&e.tipset[0]]);
            let first = list(&first);
            assert_eq!(f[9], first[9], "shared ParentMessageReceipts");
        }
        if i > 0 {
            assert!(e.height > epochs[i - 1].height);
        }
    }
    assert_eq!(sizes[0], 0);
    assert!(sizes[1..].iter().all(|n| *n > 0), "{sizes:?}");
}

#[test]
fn headers_decode_with_the_core_decoder() {
    let epochs = chain(&small(), 40);
    let blocks = all_blocks(&epochs);
    for (i, e) in epochs.iter().enumerate() {
        for h in &e.tipset {
            let d = header::decode(&blocks[h]).expect("generated header decodes");
            assert_eq!(d.height, e.height);
            assert_eq!(d.timestamp, e.timestamp);
            assert_eq!(d.parent_state_root, e.state_root);
            assert_eq!(d.parents, if i == 0 { Vec::new() } else { epochs[i - 1].tipset.clone() });
            let f = ipld(&blocks[h]);
            assert_eq!(d.messages, link(&list(&f)[10]));
            assert_eq!(d.parent_message_receipts, link(&list(&f)[9]));
        }
    }
}

#[test]
fn parent_tipset_keys_are_emitted() {
    let epochs = chain(&small(), 30);
    assert_eq!(epochs[0].parent_key, None);
    for w in epochs.windows(2) {
        let (cid, bytes) = header::tipset_key(&w[0].tipset);
        assert_eq!(w[1].parent_key, Some(cid));
        assert!(w[1].blocks.contains(&(cid, bytes)));
    }
}

#[test]
fn messages_are_shared_and_receipts_match_the_parent() {
    let cfg = SynthConfig { max_blocks_per_tipset: 4, messages_per_block: 10, ..small() };
    let epochs = chain(&cfg, 120);
    let blocks = all_blocks(&epochs);
    let mut shared = 0;
    let mut secp = 0;
    let mut prev_distinct = 0;
    for e in &epochs {
        let mut distinct = HashSet::new();
        let mut total = 0;
        for h in &e.tipset {
            let f = ipld(&blocks[h]);
            let txmeta = ipld(&blocks[&link(&list(&f)[10])]);
            let roots = list(&txmeta);
            assert_eq!(roots.len(), 2);
            for (k, root) in roots.iter().enumerate() {
                for m in amt_values(&link(root), &blocks) {
                    let m = link(&m);
                    let msg = ipld(&blocks[&m]);
                    // bls: the message itself; secp: [message, signature].
                    let fields = if k == 0 { list(&msg) } else { list(&list(&msg)[0]) };
                    assert_eq!(fields.len(), 10);
                    secp += k;
                    total += 1;
                    distinct.insert(m);
                }
            }
            let receipts = amt_values(&link(&list(&f)[9]), &blocks);
            assert_eq!(receipts.len(), prev_distinct, "one receipt per distinct parent message");
            assert!(receipts.iter().all(|r| list(r).len() == 3));
        }
        shared += total - distinct.len();
        prev_distinct = distinct.len();
    }
    assert!(shared > 0, "some messages are in several blocks of one tipset");
    assert!(secp > 0);
}

#[test]
fn with_head_at_puts_the_head_near_now() {
    let now = 1_750_000_000;
    let cfg = SynthConfig { null_round_per_mille: 100, ..small() }.with_head_at(now, 50);
    let epochs = chain(&cfg, 50);
    assert_eq!(epochs.last().map(|e| e.timestamp), Some(now));
    assert_eq!(cfg.head_height_after(50), epochs.last().map(|e| e.height));
}

/// Generates epochs until at least `objects` blocks exist; prints the rate.
fn time_generation(label: &str, cfg: SynthConfig, objects: u64) {
    let start = std::time::Instant::now();
    let mut gen = ChainGen::new(cfg);
    let mut epochs = 0u64;
    while gen.emitted_blocks() < objects {
        std::hint::black_box(gen.next_epoch());
        epochs += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{label}: {} blocks, {:.1} MB, {epochs} epochs in {secs:.2} s: {:.0} blocks/s, {:.1} MB/s",
        gen.emitted_blocks(),
        gen.emitted_bytes() as f64 / 1e6,
        gen.emitted_blocks() as f64 / secs,
        gen.emitted_bytes() as f64 / 1e6 / secs
    );
    assert!(gen.emitted_blocks() >= objects);
}

/// Generation speed for chains of a million objects, one state-heavy, one chain-heavy:
/// `cargo test --release -p splitstore-conformance --test synth -- --ignored --nocapture`.
#[test]
#[ignore]
fn generation_speed_for_a_million_objects() {
    let big_state = SynthConfig { state_objects: 200_000, ..SynthConfig::default() };
    time_generation("200k actors, 2% churn", big_state, 1_000_000);
    time_generation("defaults (2000 actors)", SynthConfig::default(), 1_000_000);
}
