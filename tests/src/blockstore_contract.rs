//! The `blockstore` crate's expectations of a `Blockstore` (its own test cases: insert and
//! get, duplicates, CID sizes, too large CIDs, blocks, batches, removal), asked of the store
//! through that crate's trait on any backend; with real CIDs, which the store checks, and a
//! removal of a block a compaction moved to cold.

use cid::{multihash::Multihash, CidGeneric};
use splitstore_core::{
    kv::{Kv, Space},
    mem::ManualClock,
    BlockKey, Config, Mode, NoProgress, SplitStore,
};

use blockstore::{
    block::{Block, CidError},
    Blockstore, Error,
};

use crate::chain::{node, small_chain, small_config};

const SHA2_256: u64 = 0x12;
const RAW: u64 = 0x55;

/// The CIDv1 (raw codec, SHA2-256) of `data`, in a CID type of `S` bytes of digest.
fn cid_of<const S: usize>(data: &[u8]) -> CidGeneric<S> {
    let digest = sha2_256(data);
    CidGeneric::new_v1(RAW, Multihash::wrap(SHA2_256, &digest).expect("fits"))
}

fn sha2_256(data: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(data).into()
}

/// A block that computes its own CID, as the crate's `Block` trait says.
struct TestBlock([u8; 4]);

impl Block<64> for TestBlock {
    fn cid(&self) -> Result<CidGeneric<64>, CidError> {
        Ok(cid_of(&self.0))
    }
    fn data(&self) -> &[u8] {
        &self.0
    }
}

/// The small test configuration, checking every block against its CID (the default).
fn checked(mode: Mode) -> Config {
    Config { verify_puts: true, ..small_config(mode) }
}

async fn open<K: Kv>(make: &dyn Fn() -> K, config: Config) -> SplitStore<K, ManualClock> {
    SplitStore::open(make(), make(), ManualClock::new(0), config).await.expect("open")
}

/// Every case, each on a fresh store over `make()` backends.
pub async fn blockstore_contract<K: Kv>(make: &dyn Fn() -> K) {
    insert_get(&open(make, checked(Mode::Discard)).await).await;
    duplicate_insert(&open(make, checked(Mode::Discard)).await).await;
    different_cid_sizes(&open(make, checked(Mode::Discard)).await).await;
    too_large_cid(&open(make, checked(Mode::Discard)).await).await;
    blocks_and_batches(&open(make, checked(Mode::Discard)).await).await;
    remove(&open(make, checked(Mode::Discard)).await).await;
    mismatched_block(&open(make, checked(Mode::Discard)).await).await;
    unverified_arbitrary_cids(&open(make, Config { verify_puts: false, ..checked(Mode::Discard) }).await).await;
    remove_from_cold(make).await;
    let store = open(make, checked(Mode::Discard)).await;
    store.put_keyed(&cid_of::<64>(b"x"), b"x").await.expect("put");
    Blockstore::close(store).await.expect("close");
}

async fn insert_get<B: Blockstore>(store: &B) {
    let cid = cid_of::<64>(b"3");
    store.put_keyed(&cid, b"3").await.expect("put");
    assert_eq!(store.get(&cid).await.expect("get").as_deref(), Some(&b"3"[..]));
    assert!(store.has(&cid).await.expect("has"));
    let another = cid_of::<64>(b"2");
    assert_eq!(store.get(&another).await.expect("get"), None);
    assert!(!store.has(&another).await.expect("has"));
}

async fn duplicate_insert<B: Blockstore>(store: &B) {
    let (c0, c1) = (cid_of::<64>(b"1"), cid_of::<64>(b"2"));
    store.put_keyed(&c0, b"1").await.expect("put");
    store.put_keyed(&c1, b"2").await.expect("put");
    store.put_keyed(&c1, b"2").await.expect("a second put of a block is accepted");
    assert_eq!(store.get(&c1).await.expect("get").as_deref(), Some(&b"2"[..]));
}

async fn different_cid_sizes<B: Blockstore>(store: &B) {
    store.put_keyed(&cid_of::<32>(b"1"), b"1").await.expect("put");
    for got in [
        store.get(&cid_of::<32>(b"1")).await.expect("get"),
        store.get(&cid_of::<64>(b"1")).await.expect("get"),
        store.get(&cid_of::<128>(b"1")).await.expect("get"),
    ] {
        assert_eq!(got.as_deref(), Some(&b"1"[..]), "CID types of any size name the same block");
    }
}

async fn too_large_cid<B: Blockstore>(store: &B) {
    let big = CidGeneric::<128>::new_v1(RAW, Multihash::wrap(0x1d, &[7u8; 100]).expect("fits 128"));
    assert!(matches!(store.put_keyed(&big, b"1").await, Err(Error::CidTooLarge)));
    assert!(matches!(store.get(&big).await, Err(Error::CidTooLarge)));
    assert!(matches!(store.has(&big).await, Err(Error::CidTooLarge)));
    assert!(matches!(store.remove(&big).await, Err(Error::CidTooLarge)));
}

async fn blocks_and_batches<B: Blockstore>(store: &B) {
    let block = TestBlock([0, 1, 2, 3]);
    store.put(TestBlock(block.0)).await.expect("put");
    assert_eq!(store.get(&block.cid().expect("cid")).await.expect("get").as_deref(), Some(&block.0[..]));

    let blocks: Vec<TestBlock> = (0u8..8).map(|i| TestBlock([0, i >> 2 & 1, i >> 1 & 1, i & 1])).collect();
    let absent: Vec<TestBlock> = (0u8..4).map(|i| TestBlock([1, 0, i, 1])).collect();
    let cids: Vec<_> = blocks.iter().map(|b| b.cid().expect("cid")).collect();
    store.put_many(blocks).await.expect("put_many");
    for c in &cids {
        assert!(store.has(c).await.expect("has"));
    }
    for b in &absent {
        let c = b.cid().expect("cid");
        assert!(!store.has(&c).await.expect("has"));
        assert_eq!(store.get(&c).await.expect("get"), None);
    }

    // Keyed, more blocks than one atomic batch of the store holds.
    let keyed: Vec<(CidGeneric<64>, Vec<u8>)> = (0u32..2500)
        .map(|i| {
            let data = i.to_be_bytes().to_vec();
            (cid_of(&data), data)
        })
        .collect();
    store.put_many_keyed(keyed.clone()).await.expect("put_many_keyed");
    for (c, data) in &keyed {
        assert_eq!(store.get(c).await.expect("get").as_ref(), Some(data));
    }
}

async fn remove<B: Blockstore>(store: &B) {
    let (c1, c2, c3) = (cid_of::<64>(b"1"), cid_of::<64>(b"2"), cid_of::<64>(b"3"));
    store.remove(&c1).await.expect("remove from an empty store");
    store.put_keyed(&c1, b"1").await.expect("put");
    store.put_keyed(&c2, b"2").await.expect("put");
    assert_eq!(store.get(&c1).await.expect("get").as_deref(), Some(&b"1"[..]));
    store.remove(&c1).await.expect("remove");
    assert_eq!(store.get(&c1).await.expect("get"), None);
    assert!(!store.has(&c1).await.expect("has"));
    store.remove(&c1).await.expect("remove again");
    store.remove(&c3).await.expect("remove a block never stored");
    assert_eq!(store.get(&c2).await.expect("get").as_deref(), Some(&b"2"[..]), "other blocks stay");
    store.put_keyed(&c1, b"1").await.expect("put again");
    assert_eq!(store.get(&c1).await.expect("get").as_deref(), Some(&b"1"[..]), "written again, it is back");
}

async fn mismatched_block<B: Blockstore>(store: &B) {
    let c = cid_of::<64>(b"the block");
    let refused = store.put_keyed(&c, b"other bytes").await;
    assert!(matches!(refused, Err(Error::CidError(CidError::InvalidCid(_)))), "{refused:?}");
    assert!(!store.has(&c).await.expect("has"), "nothing is written");
}

/// With hash checks off, the crate's own arbitrary CIDs (codec and hash code 0x0A, the data's
/// bytes as the digest) work as they do in its tests.
async fn unverified_arbitrary_cids<B: Blockstore>(store: &B) {
    let cid = |d: &[u8]| CidGeneric::<64>::new_v1(0x0a, Multihash::wrap(0x0a, d).expect("fits"));
    store.put_keyed(&cid(b"1"), b"3").await.expect("put");
    assert_eq!(store.get(&cid(b"1")).await.expect("get").as_deref(), Some(&b"3"[..]));
    assert_eq!(store.get(&cid(b"2")).await.expect("get"), None);
    store.remove(&cid(b"1")).await.expect("remove");
    assert!(!store.has(&cid(b"1")).await.expect("has"));
}

/// A block a universal-mode compaction moved to cold leaves both stores when removed.
async fn remove_from_cold<K: Kv>(make: &dyn Fn() -> K) {
    let store = open(make, checked(Mode::Universal)).await;
    let mut chain = small_chain(3);
    for _ in 0..12 {
        let e = chain.next_epoch();
        store.put_many(e.blocks.clone()).await.expect("put");
        drop(store.head_change(&[], std::slice::from_ref(&e.tipset)).await.expect("head"));
    }
    let (dead, bytes) = node(&[], 0x0dead);
    store.put(&dead, bytes.clone()).await.expect("put");
    store.compact(&NoProgress).await.expect("compaction");
    let key = BlockKey::of(&dead);
    assert!(!store.hot().has(Space::Blocks, key.as_bytes()).await.expect("hot has"), "moved");
    assert!(store.cold().has(Space::Blocks, key.as_bytes()).await.expect("cold has"), "moved to cold");
    let as_generic = CidGeneric::<64>::try_from(dead.to_bytes()).expect("cid");
    assert_eq!(Blockstore::get(&store, &as_generic).await.expect("get"), Some(bytes));
    store.remove(&as_generic).await.expect("remove");
    assert_eq!(Blockstore::get(&store, &as_generic).await.expect("get"), None);
    assert!(!store.cold().has(Space::Blocks, key.as_bytes()).await.expect("cold has"), "left cold");
}
