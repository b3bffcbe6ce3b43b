//! The FVM's own data structures (`fvm_ipld_hamt`, `fvm_ipld_amt`) read and write the on-disk
//! store through `fvm_ipld_blockstore::Blockstore`.
//!
//! - A chain on a real FVM-era genesis (`forest/carv2.car`), each epoch's state, messages and
//!   receipts written by the FVM's HAMT and AMT through the trait while compactions run on a
//!   thread of their own, as an embedding node runs them: after a last compaction, in each
//!   mode, every actor of every retained state tree and every message and receipt of the
//!   retained epochs resolves through the trait, equal to what was written.
//! - A block dropped from under a structure is a clean error naming it.

use std::{
    collections::{BTreeMap, HashSet},
    path::Path,
    sync::Arc,
};

use cid::Cid;
use futures::executor::block_on;
use fvm_ipld_amt::Amt;
use fvm_ipld_blockstore::Blockstore;
use fvm_ipld_hamt::{BytesKey, Hamt};
use ipld_core::ipld::Ipld;
use multihash_codetable::{Code, MultihashDigest};
use splitstore_conformance::testdata::testdata_path;
use splitstore_core::{
    header::{self, BlockHeader},
    import::HeadPolicy,
    kv::{Kv, Space},
    BlockKey, CompactionReport, Mode, NoProgress, WriteBatch,
};
use splitstore_native::{
    ops::{import_file, NativeStore, OpenStore},
    Repo, RepoConfig,
};

const DAG_CBOR: u64 = 0x71;
const HAMT_BIT_WIDTH: u32 = 5;
const MODES: [Mode; 3] = [Mode::Discard, Mode::Universal, Mode::Messages];

fn init(dir: &Path, mode: Mode, finality: i64) -> OpenStore {
    let config = RepoConfig {
        mode: mode.as_str().into(),
        finality,
        threshold_finalities: 5,
        boundary_finalities: 4,
        message_retention: 1,
        // The chains are not current: the sync check is off.
        sync_gap_secs: 0,
        hot_cache_mb: 8,
        cold_cache_mb: 8,
        ..RepoConfig::default()
    };
    OpenStore::from_repo(Repo::init(dir, config).expect("init")).expect("open")
}

fn cbor(value: &Ipld) -> Vec<u8> {
    serde_ipld_dagcbor::to_vec(value).expect("encode")
}

fn decode(bytes: &[u8]) -> Ipld {
    serde_ipld_dagcbor::from_slice(bytes).expect("decode")
}

/// Writes a DAG-CBOR block through the trait, as the FVM does.
fn put(bs: &NativeStore, value: &Ipld) -> Cid {
    let bytes = cbor(value);
    let cid = Cid::new_v1(DAG_CBOR, Code::Blake2b256.digest(&bytes));
    bs.put_keyed(&cid, &bytes).expect("put_keyed");
    cid
}

fn block(bs: &NativeStore, cid: &Cid) -> Vec<u8> {
    Blockstore::get(bs, cid).expect("get").unwrap_or_else(|| panic!("block {cid} is missing"))
}

fn tipset_headers(bs: &NativeStore, cids: &[Cid]) -> Vec<BlockHeader> {
    cids.iter().map(|c| header::decode(&block(bs, c)).expect("header")).collect()
}

/// Every tipset from `head` down to genesis, newest first, read through the trait.
fn chain(bs: &NativeStore, head: &[Cid]) -> Vec<Vec<BlockHeader>> {
    let mut out = Vec::new();
    let mut cids = head.to_vec();
    loop {
        let headers = tipset_headers(bs, &cids);
        cids = headers[0].parents.clone();
        let genesis = headers[0].height == 0;
        out.push(headers);
        // Genesis's parent is not a header (and, as in the reference, not kept).
        if genesis {
            return out;
        }
    }
}

/// The actors HAMT root of a `StateRoot [version, actors, info]`.
fn actors_root(bs: &NativeStore, state_root: &Cid) -> Cid {
    match decode(&block(bs, state_root)) {
        Ipld::List(fields) if fields.len() == 3 => match &fields[1] {
            Ipld::Link(actors) => *actors,
            other => panic!("StateRoot.actors is {other:?}"),
        },
        other => panic!("state root {state_root} is not a StateRoot: {other:?}"),
    }
}

type Actors = BTreeMap<Vec<u8>, Ipld>;
/// Message CIDs with their bytes, in the order written.
type Messages = Vec<(Cid, Vec<u8>)>;

/// Every actor of a state tree, loaded with the FVM's HAMT: iterated, then each looked up again
/// by its address (which exercises the HAMT's hashing, not only its iteration).
fn load_actors<BS: Blockstore>(bs: BS, actors_root: &Cid) -> Result<Actors, fvm_ipld_hamt::Error> {
    let hamt: Hamt<BS, Ipld> = Hamt::load_with_bit_width(actors_root, bs, HAMT_BIT_WIDTH)?;
    let mut actors = Actors::new();
    hamt.for_each(|address, state| {
        actors.insert(address.0.clone(), state.clone());
        Ok(())
    })?;
    for (address, state) in &actors {
        assert_eq!(hamt.get(&BytesKey(address.clone()))?, Some(state), "lookup by address");
    }
    Ok(actors)
}

/// What the test wrote for one tipset: the oracle the store is checked against.
struct Written {
    height: i64,
    headers: Vec<Cid>,
    state_root: Cid,
    actors: Actors,
    /// Per header: the `TxMeta` and the messages it lists, with their bytes.
    messages: Vec<(Cid, Messages)>,
    receipts: (Cid, u64),
}

/// Builds epochs on the genesis the store holds, the way a node syncing a chain writes them:
/// messages first, the AMTs and `TxMeta` that list them, the state the FVM computes (its HAMT
/// flushes the changed nodes through the trait), the receipts, and the headers last.
struct FvmChain<'a> {
    bs: &'a NativeStore,
    tipsets: Vec<Written>,
}

impl<'a> FvmChain<'a> {
    fn on_genesis(bs: &'a NativeStore, genesis: &[Cid]) -> Self {
        let headers = tipset_headers(bs, genesis);
        assert_eq!(headers[0].height, 0, "the file's head is a genesis");
        let state_root = headers[0].parent_state_root;
        let actors = load_actors(bs, &actors_root(bs, &state_root)).expect("genesis actors");
        assert!(actors.len() >= 10, "genesis has {} actors", actors.len());
        let genesis = Written {
            height: 0,
            headers: genesis.to_vec(),
            state_root,
            actors,
            messages: Vec::new(),
            receipts: (state_root, 0),
        };
        Self { bs, tipsets: vec![genesis] }
    }

    fn head(&self) -> &Written {
        self.tipsets.last().expect("genesis")
    }

    /// One tipset at `height` of `blocks` headers.
    fn grow(&mut self, height: i64, blocks: usize) -> Vec<Cid> {
        let bs = self.bs;
        let mut messages = Vec::new();
        let mut serial = 0u64;
        for b in 0..blocks {
            let mut listed = Vec::new();
            let (mut bls, mut secp): (Amt<Cid, _>, Amt<Cid, _>) =
                (Amt::new_with_bit_width(bs, 5), Amt::new_with_bit_width(bs, 5));
            for i in 0..4u64 {
                serial += 1;
                let message = Ipld::List(vec![
                    Ipld::Integer(0),
                    Ipld::Bytes(vec![0, 100 + i as u8]),
                    Ipld::Bytes(vec![0, 200 + b as u8]),
                    Ipld::Integer((height * 100 + serial as i64).into()),
                    Ipld::Bytes(vec![0, 1, serial as u8]),
                ]);
                let cid = put(bs, &message);
                listed.push((cid, cbor(&message)));
                let amt = if i % 2 == 0 { &mut bls } else { &mut secp };
                amt.set(amt.count(), cid).expect("set");
            }
            let meta =
                Ipld::List(vec![Ipld::Link(bls.flush().expect("flush")), Ipld::Link(secp.flush().expect("flush"))]);
            messages.push((put(bs, &meta), listed));
        }
        // The state: the FVM loads the parent's actors, changes a few, and flushes.
        let mut hamt: Hamt<&NativeStore, Ipld> =
            Hamt::load_with_bit_width(&actors_root(bs, &self.head().state_root), bs, HAMT_BIT_WIDTH).expect("load");
        let mut actors = self.head().actors.clone();
        let keys: Vec<Vec<u8>> = actors.keys().cloned().collect();
        for k in 0..3usize {
            let address = &keys[(height as usize * 3 + k) % keys.len()];
            let Some(Ipld::List(mut fields)) = actors.get(address).cloned() else { panic!("actor state") };
            fields[2] = Ipld::Integer(match fields[2] {
                Ipld::Integer(nonce) => nonce + 1,
                _ => panic!("nonce"),
            });
            if k == 0 {
                fields[1] =
                    Ipld::Link(put(bs, &Ipld::List(vec![Ipld::Integer(height.into()), Ipld::Bytes(address.clone())])));
            }
            hamt.set(BytesKey(address.clone()), Ipld::List(fields.clone())).expect("set");
            actors.insert(address.clone(), Ipld::List(fields));
        }
        // New accounts, so the tree grows inner nodes; their code is the first actor's.
        let Some(Ipld::List(template)) = actors.values().next().cloned() else { panic!("actor state") };
        for k in 0..6u64 {
            let id = 10_000 + height as u64 * 10 + k;
            let address = vec![0, (id & 0x7f) as u8 | 0x80, (id >> 7) as u8];
            let state = Ipld::List(vec![
                template[0].clone(),
                Ipld::Link(put(bs, &Ipld::List(vec![Ipld::Integer(id.into())]))),
                Ipld::Integer(0),
                Ipld::Bytes(vec![0, k as u8 + 1]),
            ]);
            hamt.set(BytesKey(address.clone()), state.clone()).expect("set");
            actors.insert(address, state);
        }
        let Ipld::List(mut root) = decode(&block(bs, &self.head().state_root)) else { panic!("StateRoot") };
        root[1] = Ipld::Link(hamt.flush().expect("flush"));
        let state_root = put(bs, &Ipld::List(root));
        let mut receipts: Amt<Ipld, _> = Amt::new_with_bit_width(bs, 3);
        for i in 0..serial {
            receipts
                .set(i, Ipld::List(vec![Ipld::Integer(0), Ipld::Bytes(vec![]), Ipld::Integer(i.into())]))
                .expect("set");
        }
        let receipts = (receipts.flush().expect("flush"), serial);
        let parents = self.head().headers.clone();
        let headers: Vec<Cid> = messages
            .iter()
            .enumerate()
            .map(|(b, (meta, _))| {
                put(
                    bs,
                    &Ipld::List(vec![
                        Ipld::Bytes(vec![0, 0xe8, 0x07 + b as u8]),
                        Ipld::List(vec![Ipld::Bytes(vec![b as u8; 8])]),
                        Ipld::Null,
                        Ipld::List(vec![]),
                        Ipld::List(vec![]),
                        Ipld::List(parents.iter().copied().map(Ipld::Link).collect()),
                        Ipld::Bytes(vec![0, height as u8]),
                        Ipld::Integer(height.into()),
                        Ipld::Link(state_root),
                        Ipld::Link(receipts.0),
                        Ipld::Link(*meta),
                        Ipld::Null,
                        Ipld::Integer((1_600_000_000 + 30 * height).into()),
                        Ipld::Null,
                        Ipld::Integer(0),
                        Ipld::Bytes(vec![0, 100]),
                    ]),
                )
            })
            .collect();
        self.tipsets.push(Written { height, headers: headers.clone(), state_root, actors, messages, receipts });
        headers
    }
}

/// Checks that every state and message `report`'s boundaries keep resolves through the trait as
/// written. Returns how many states and messages did not resolve (what the mode dropped).
fn check_retained(bs: &NativeStore, mode: Mode, written: &[Written], report: &CompactionReport) -> (usize, usize) {
    // The reference's rule, stated here rather than taken from the store: the state of epochs at
    // or above the boundary (four finalities below the head) and genesis's; the messages of
    // epochs at or above one more finality below.
    let finality = bs.config().finality;
    assert_eq!(report.boundary_epoch, report.head_epoch - 4 * finality);
    assert_eq!(report.include_messages_epoch, report.boundary_epoch - finality);
    let (mut states_gone, mut messages_gone) = (0, 0);
    let mut checked = HashSet::new();
    for t in written {
        if checked.insert(t.state_root) {
            let keep_state = t.height >= report.boundary_epoch || t.height == 0 || mode == Mode::Universal;
            match Blockstore::get(bs, &t.state_root)
                .expect("get")
                .map(|_| load_actors(bs, &actors_root(bs, &t.state_root)))
            {
                Some(Ok(actors)) => assert_eq!(actors, t.actors, "{mode:?}: state at {}", t.height),
                Some(Err(e)) if !keep_state => assert!(matches!(e, fvm_ipld_hamt::Error::CidNotFound(_)), "{e:?}"),
                None if !keep_state => {}
                other => panic!("{mode:?}: state at {} (retained): {:?}", t.height, other.map(|r| r.err())),
            }
            if !keep_state {
                states_gone += 1;
            }
        }
        let keep_messages = t.height >= report.include_messages_epoch || mode != Mode::Discard;
        for (meta, messages) in &t.messages {
            let found = resolve_messages(bs, meta, &t.receipts.0);
            if keep_messages {
                let (listed, receipts) = found.unwrap_or_else(|e| panic!("{mode:?}: epoch {}: {e:#}", t.height));
                assert_eq!(&listed, messages, "{mode:?}: messages at {}", t.height);
                assert_eq!(receipts, t.receipts.1, "{mode:?}: receipts at {}", t.height);
            } else if found.is_err() {
                messages_gone += 1;
            }
        }
    }
    (states_gone, messages_gone)
}

/// The messages a `TxMeta` lists (both AMTs, BLS first, each message read) and the count of
/// the receipts AMT, loaded with the FVM's current AMT.
fn resolve_messages(bs: &NativeStore, meta: &Cid, receipts: &Cid) -> anyhow::Result<(Messages, u64)> {
    let meta = Blockstore::get(bs, meta)?.ok_or_else(|| anyhow::anyhow!("TxMeta {meta} is missing"))?;
    let Ipld::List(roots) = decode(&meta) else { anyhow::bail!("TxMeta is not a list") };
    let mut amts = Vec::new();
    for root in &roots {
        let Ipld::Link(root) = root else { anyhow::bail!("TxMeta field {root:?}") };
        let amt: Amt<Cid, _> = Amt::load(root, bs)?;
        let mut listed = Vec::new();
        amt.for_each(|_, cid| {
            listed.push((*cid, Blockstore::get(bs, cid)?.ok_or_else(|| anyhow::anyhow!("message {cid} is missing"))?));
            Ok(())
        })?;
        amts.push(listed);
    }
    // Written alternately, BLS then secp: interleave back into the order written.
    let mut out = Vec::new();
    let (bls, secp) = (&amts[0], &amts[1]);
    for i in 0..bls.len().max(secp.len()) {
        out.extend(bls.get(i).cloned());
        out.extend(secp.get(i).cloned());
    }
    let receipts: Amt<Ipld, _> = Amt::load(receipts, bs)?;
    Ok((out, receipts.count()))
}

/// Imports the FVM-era genesis and grows `epochs` heights on it (every seventh a null round,
/// every third tipset of two blocks), each head applied as it is written. A compaction a head
/// decides runs on a thread of its own while the next epochs are written, and is waited for at
/// the next height that is a multiple of 10 (a node's compaction ends within a few epochs).
fn grow_fvm_chain(open: &OpenStore, epochs: i64) -> (Vec<Written>, CompactionReport) {
    let genesis =
        import_file(&open.store, &testdata_path("forest/carv2.car"), HeadPolicy::Apply, None).expect("import");
    assert!(genesis.head_applied && genesis.compaction.is_none());
    let bs: &NativeStore = &open.store;
    let mut fvm = FvmChain::on_genesis(bs, &genesis.roots);
    let mut running: Option<std::thread::JoinHandle<_>> = None;
    let mut ran = 0;
    for height in (1..=epochs).filter(|h| h % 7 != 0) {
        let headers = fvm.grow(height, if height % 3 == 0 { 2 } else { 1 });
        if let Some(pending) = block_on(bs.head_change(&[], &[headers])).expect("head change") {
            let store = Arc::clone(&open.store);
            ran += 1;
            running = Some(std::thread::spawn(move || {
                // The report is checked by the last compaction; a failure names its cause.
                block_on(store.run_compaction(pending.without_head_wait(), &NoProgress))
                    .map(drop)
                    .map_err(|e| e.to_string())
            }));
        }
        if height % 10 == 0 {
            if let Some(c) = running.take() {
                c.join().expect("compaction thread").expect("compaction");
            }
        }
    }
    if let Some(c) = running.take() {
        c.join().expect("compaction thread").expect("compaction");
    }
    assert!(ran >= 2, "{ran} compactions ran while the chain grew");
    let last = block_on(bs.compact(&NoProgress)).expect("last compaction");
    (fvm.tipsets, last)
}

#[test]
fn a_chain_the_fvm_writes_resolves_after_compactions_in_every_mode() {
    for mode in MODES {
        let dir = tempfile::tempdir().expect("tempdir");
        let open = init(dir.path(), mode, 3);
        let (written, report) = grow_fvm_chain(&open, 60);
        let bs: &NativeStore = &open.store;
        let head = &written.last().expect("head").headers;
        assert_eq!(chain(bs, head).len(), written.len(), "{mode:?}: every header stays");
        let (states_gone, messages_gone) = check_retained(bs, mode, &written, &report);
        // What the mode drops is gone, so the checks above could fail.
        match mode {
            Mode::Discard => assert!(states_gone > 0 && messages_gone > 0, "{states_gone} {messages_gone}"),
            Mode::Messages => assert!(states_gone > 0),
            Mode::Universal => assert_eq!(states_gone, 0),
        }
        // And everything stays as written after a reopen.
        open.close().expect("close");
        drop(open);
        let open = OpenStore::open(dir.path()).expect("reopen");
        assert_eq!(check_retained(&open.store, mode, &written, &report), (states_gone, messages_gone));
        open.close().expect("close");
    }
}

/// Records which blocks a structure reads, to drop one of them.
struct Recording<'a> {
    inner: &'a NativeStore,
    read: std::cell::RefCell<Vec<Cid>>,
}

impl Blockstore for Recording<'_> {
    fn get(&self, k: &Cid) -> anyhow::Result<Option<Vec<u8>>> {
        self.read.borrow_mut().push(*k);
        Blockstore::get(self.inner, k)
    }
    fn put_keyed(&self, k: &Cid, block: &[u8]) -> anyhow::Result<()> {
        self.inner.put_keyed(k, block)
    }
}

fn drop_hot(bs: &NativeStore, cid: &Cid) {
    let mut batch = WriteBatch::new();
    batch.delete(Space::Blocks, BlockKey::of(cid).into_bytes());
    block_on(bs.hot().write(batch)).expect("delete");
    assert!(!Blockstore::has(bs, cid).expect("has"), "{cid} is still held");
}

#[test]
fn a_dropped_block_is_a_clean_error_for_the_fvm_structures() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = init(dir.path(), Mode::Discard, 3);
    let (written, _) = grow_fvm_chain(&open, 30);
    let bs: &NativeStore = &open.store;
    let head = written.last().expect("head");

    // An inner node of the head's actors HAMT: the iteration reaches it and fails naming it.
    let recording = Recording { inner: bs, read: Default::default() };
    load_actors(&recording, &actors_root(bs, &head.state_root)).expect("whole before the drop");
    let read = recording.read.borrow().clone();
    assert!(read.len() > 1, "the HAMT has inner nodes");
    let victim = read[read.len() / 2];
    drop_hot(bs, &victim);
    match load_actors(bs, &actors_root(bs, &head.state_root)) {
        Err(fvm_ipld_hamt::Error::CidNotFound(named)) => assert_eq!(named, victim.to_string()),
        other => panic!("expected CidNotFound({victim}), got {other:?}"),
    }

    // A message of the head: its AMT loads, and reading the message fails naming it.
    let (meta, messages) = &head.messages[0];
    let (message, _) = &messages[0];
    drop_hot(bs, message);
    let err = resolve_messages(bs, meta, &head.receipts.0).expect_err("a message is missing");
    assert!(err.to_string().contains(&message.to_string()), "{err:#}");
    open.close().expect("close");
}

#[test]
fn fvm_structures_written_through_the_trait_survive_a_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (hamt_root, amt_root, blocks) = {
        let open = init(dir.path(), Mode::Discard, 10);
        let bs: &NativeStore = &open.store;
        let mut hamt: Hamt<&NativeStore, u64> = Hamt::new_with_bit_width(bs, HAMT_BIT_WIDTH);
        let mut amt: Amt<String, &NativeStore> = Amt::new_with_bit_width(bs, 3);
        for i in 0..3000u64 {
            hamt.set(BytesKey(i.to_be_bytes().to_vec()), i * 7).expect("set");
            amt.set(i * 3, format!("value {i}")).expect("set");
        }
        // Blocks by the batch call, across more than one of its atomic chunks.
        let blocks: Vec<(Cid, Vec<u8>)> = (0..2500u32)
            .map(|i| {
                let bytes = cbor(&Ipld::String(format!("block {i}")));
                (Cid::new_v1(DAG_CBOR, Code::Blake2b256.digest(&bytes)), bytes)
            })
            .collect();
        bs.put_many_keyed(blocks.iter().map(|(c, b)| (*c, b.as_slice()))).expect("put_many_keyed");
        // A block whose bytes do not match its CID is refused, and nothing is written.
        let (other, _) = &blocks[1];
        drop_hot(bs, other);
        assert!(bs.put_keyed(other, b"not the block").is_err(), "a mismatched block was accepted");
        assert!(!Blockstore::has(bs, other).expect("has"));
        let roots = (hamt.flush().expect("flush"), amt.flush().expect("flush"));
        open.close().expect("close");
        (roots.0, roots.1, blocks)
    };
    let open = OpenStore::open(dir.path()).expect("reopen");
    let bs: &NativeStore = &open.store;
    let hamt: Hamt<&NativeStore, u64> = Hamt::load_with_bit_width(&hamt_root, bs, HAMT_BIT_WIDTH).expect("load");
    let amt: Amt<String, &NativeStore> = Amt::load(&amt_root, bs).expect("load");
    for i in 0..3000u64 {
        assert_eq!(hamt.get(&BytesKey(i.to_be_bytes().to_vec())).expect("get"), Some(&(i * 7)));
        assert_eq!(amt.get(i * 3).expect("get"), Some(&format!("value {i}")));
    }
    assert_eq!(amt.count(), 3000);
    for (i, (c, b)) in blocks.iter().enumerate() {
        assert_eq!(Blockstore::get(bs, c).expect("get").as_ref(), (i != 1).then_some(b), "block {i}");
    }
    open.close().expect("close");
}

#[test]
fn a_call_from_inside_an_executor_panics_rather_than_blocking_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = init(dir.path(), Mode::Discard, 10);
    let bs: &NativeStore = &open.store;
    let cid = put(bs, &Ipld::Integer(1));
    assert!(Blockstore::has(bs, &cid).expect("has"), "from a plain thread");
    let nested =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| block_on(async { Blockstore::has(bs, &cid) })));
    assert!(nested.is_err(), "a call inside an executor's task returned {nested:?}");
    open.close().expect("close");
}

/// State computation reads an old state tree that compactions moved to cold through the hot
/// view, with the FVM's HAMT: the reify copies its cold DAG into hot, so the same reads are
/// then answered by hot alone, with the same actors; plain reads copy nothing.
#[test]
fn the_fvm_reading_old_state_through_the_hot_view_brings_it_hot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = init(dir.path(), Mode::Universal, 3);
    let (written, _) = grow_fvm_chain(&open, 60);
    let bs: &NativeStore = &open.store;
    let in_hot = |c: &Cid| block_on(bs.hot().has(Space::Blocks, BlockKey::of(c).as_bytes())).expect("has");
    let old = written
        .iter()
        .find(|t| t.height > 0 && !in_hot(&actors_root(bs, &t.state_root)))
        .expect("an old state tree in cold");
    let root = actors_root(bs, &old.state_root);
    let cold_hits = || block_on(bs.info()).expect("info").metrics.cold_hits;

    assert_eq!(load_actors(bs, &root).expect("plain read"), old.actors);
    assert_eq!(bs.reify_waiting(), 0, "plain reads copy nothing");
    let before = cold_hits();
    assert_eq!(load_actors(bs.hot_view(), &root).expect("read in use"), old.actors);
    assert!(cold_hits() > before && bs.reify_waiting() > 0);
    let report = block_on(bs.reify_pending()).expect("reify");
    assert!(report.copied > 0 && report.aborted == 0, "{report:?}");
    assert!(in_hot(&root));
    let before = cold_hits();
    assert_eq!(load_actors(bs.hot_view(), &root).expect("read again"), old.actors);
    assert_eq!(cold_hits(), before, "the state tree is read from hot");
    assert_eq!(bs.reify_waiting(), 0);
    println!("reified {} blocks of the state at {}", report.copied, old.height);
    open.close().expect("close");
}
