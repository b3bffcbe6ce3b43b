//! The hot key list: the keys of the hot store's blocks, held in memory between compactions so
//! that collect visits them instead of scanning the hot store.
//!
//! The hot store holds every header back to genesis, so a scan of it costs more the longer
//! the chain, however little changed since the last compaction. The list leaves out the keys
//! the chain index marks (final headers and their tipset keys, marked by every compaction that
//! uses the index), so what collect visits grows with the state and the writes between
//! compactions, not with the chain.
//!
//! The list holds (`docs/design.md`, "The hot key list"):
//! - **kept**: the keys the last collect visited and found marked, but those the chain index
//!   marks, in key order;
//! - **added**: every key written since the last collect began, recorded once its write
//!   returned;
//! - **uncertain**: keys whose block may or may not be in the hot store: those of writes that
//!   failed or whose future was dropped (IndexedDB commits a transaction whether or not its
//!   future is polled again), and those the last collect listed as dead that its compaction
//!   marked later (a critical-section writer marks what its block links to, present or
//!   purged). The next collect reads which are present, after every such write has landed or
//!   never will (a backend orders a read after the writes issued before it);
//! - **dead**: the keys the last collect listed as dead, until its compaction has purged and
//!   moved those it marked later to *uncertain*. A list whose *dead* is not empty belongs to
//!   a compaction that did not finish its purge: the next collect scans.
//!
//! Why a collect from the list deletes nothing a scan would keep and keeps nothing a scan
//! would delete:
//! - It lists as dead exactly the visited keys the mark set lacks, as the scan does: the list
//!   decides what is visited, never what is live. Every key it visits is in the hot store
//!   (uncertain ones are read first), so it counts what a scan counts.
//! - It visits every hot key a scan would list. A block in the hot store when the collect
//!   begins was either there when the last collect began, which visited it (by induction: it
//!   scanned, or visited a list that held every such key), or written since, so *added* or
//!   *uncertain*. A key the last collect visited is in *kept*, or was dead-listed and then
//!   purged or made *uncertain*, or was left out because the chain index holds it: this
//!   compaction marked it too, since a list that left keys out is visited only after a walk
//!   that marked from the index (otherwise collect scans).
//!
//! Whatever changes the hot store outside the list's sight drops it: a deletion through the
//! API, warmup's copies, a list past its memory limit, a new process. The next collect scans
//! and starts a new one.

use alloc::vec::Vec;
use core::future::Future;

use crate::{
    chunked::Chunked,
    clock::Clock,
    error::Error,
    key::{BlockKey, KeyBuf, BLAKE2B_256},
    kv::{Kv, Space},
    live::LiveRef,
    markset::{AnyMarks, MarkSetKind, Marks},
    pace::{sort_paced, Pace},
    store::SplitStore,
    sync::Mutex,
};

/// The first bytes of a BLAKE2b-256 block key: the code's varint and the digest length.
const BLAKE2B_PREFIX: [u8; 4] = {
    let c = BLAKE2B_256;
    [(c & 0x7f) as u8 | 0x80, ((c >> 7) & 0x7f) as u8 | 0x80, (c >> 14) as u8, 32]
};

/// Heap bytes a key of another hash costs in a bag: its vector and its bytes.
fn other_bytes(key: &[u8]) -> usize {
    core::mem::size_of::<Vec<u8>>() + key.len()
}

/// The digest of a BLAKE2b-256 block key (every Filecoin block's), if `key` is one.
fn digest_of(key: &[u8]) -> Option<[u8; 32]> {
    let rest = key.strip_prefix(&BLAKE2B_PREFIX)?;
    rest.try_into().ok()
}

/// Block keys: BLAKE2b-256 ones as their 32-byte digests, in chunks; others whole.
#[derive(Debug, Default)]
pub(crate) struct KeyBag {
    digests: Chunked<[u8; 32]>,
    other: Vec<Vec<u8>>,
    other_bytes: usize,
}

impl KeyBag {
    /// Appends every key of `other`.
    pub fn append(&mut self, other: &KeyBag) {
        for d in other.digests.iter() {
            self.digests.push(*d);
        }
        for k in &other.other {
            self.other_bytes += other_bytes(k);
            self.other.push(k.clone());
        }
    }

    pub fn push(&mut self, key: &[u8]) {
        match digest_of(key) {
            Some(d) => self.digests.push(d),
            None => {
                self.other_bytes += other_bytes(key);
                self.other.push(key.to_vec());
            }
        }
    }

    pub fn len(&self) -> usize {
        self.digests.len() + self.other.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Heap bytes held, but the last chunk's spare room.
    pub fn held(&self) -> usize {
        self.digests.len() * 32 + self.other_bytes
    }

    /// Calls `f` with every key, BLAKE2b-256 ones first.
    pub fn for_each(&self, mut f: impl FnMut(&[u8])) {
        for d in self.digests.iter() {
            f(KeyBuf::of_blake2b_256(d).as_bytes());
        }
        for k in &self.other {
            f(k);
        }
    }
}

/// The hot key list of a store whose compactions keep one (`Config::hot_key_list_bytes`).
#[derive(Debug)]
pub(crate) struct HotKeys {
    limit: usize,
    /// Visited and marked by the last collect, in key order (BLAKE2b-256 keys; others in the
    /// order visited), but the keys the chain index marks.
    kept: KeyBag,
    /// Written by writes that returned since the last collect began; unordered, maybe
    /// repeated.
    added: KeyBag,
    /// Dead-listed by the last collect, until its compaction has purged.
    dead: KeyBag,
    /// Present or not: written by writes that did not return, or dead-listed and marked later.
    uncertain: KeyBag,
    /// `kept` leaves out keys the chain index marks: a collect may visit the list only after
    /// a walk that marked from the index.
    leans_on_index: bool,
    /// Set until a collect has filled `kept`, and when `kept` holds keys the chain index
    /// marks (a scan that could not tell them): the next collect scans.
    rescan: bool,
}

impl HotKeys {
    /// An empty list of at most `limit` bytes, for the keys written from now on; usable once
    /// a collect has taken in what it visited.
    pub fn new(limit: usize) -> Self {
        HotKeys {
            limit,
            kept: KeyBag::default(),
            added: KeyBag::default(),
            dead: KeyBag::default(),
            uncertain: KeyBag::default(),
            leans_on_index: false,
            rescan: true,
        }
    }

    /// Heap bytes held.
    pub fn held(&self) -> usize {
        self.kept.held() + self.added.held() + self.dead.held() + self.uncertain.held()
    }

    /// Records a key in the hot store. False when the list would pass its limit: the caller
    /// drops it.
    #[must_use]
    pub fn add(&mut self, key: &[u8]) -> bool {
        self.added.push(key);
        self.held() <= self.limit
    }

    /// Records the keys of a write that returned (`landed`) or did not. False past the limit.
    #[must_use]
    pub fn add_write(&mut self, keys: &KeyBag, landed: bool) -> bool {
        if landed { &mut self.added } else { &mut self.uncertain }.append(keys);
        self.held() <= self.limit
    }

    /// Takes out the uncertain keys, to read which are present.
    pub fn take_uncertain(&mut self) -> KeyBag {
        core::mem::take(&mut self.uncertain)
    }

    /// Whether a collect may visit this list instead of scanning, after a walk that did
    /// (`used_index`) or did not mark from the chain index.
    pub fn usable(&self, used_index: bool) -> bool {
        !self.rescan && self.dead.is_empty() && (used_index || !self.leans_on_index)
    }

    /// Takes in what a collect visited: `kept` in key order, `dead`; `tight` when `kept`
    /// leaves out every key the chain index marks. False past the limit.
    #[must_use]
    pub fn collected(&mut self, kept: KeyBag, dead: KeyBag, leans_on_index: bool, tight: bool) -> bool {
        self.kept = kept;
        self.dead = dead;
        self.leans_on_index = leans_on_index;
        self.rescan = !tight;
        self.held() <= self.limit
    }

    /// Takes out the last collect's dead keys, to settle them when its compaction finished.
    pub fn take_dead(&mut self) -> KeyBag {
        core::mem::take(&mut self.dead)
    }

    /// The keys to visit, each once: `kept` merged with `added` in key order, then keys of
    /// other hashes in order. Sorts `added` in steps, pausing every `every` elements.
    pub async fn into_listing<P: FnMut() -> F, F: Future<Output = ()>>(self, every: usize, pause: P) -> Listing {
        let mut pace = Pace::new(every, pause);
        let added: Vec<[u8; 32]> = self.added.digests.iter().copied().collect();
        let mut added =
            sort_paced(added, |d| u64::from_be_bytes([d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]]), &mut pace)
                .await;
        added.dedup();
        let mut other = self.kept.other;
        other.extend(self.added.other);
        other.sort_unstable();
        other.dedup();
        Listing { kept: self.kept.digests, at: 0, added, added_at: 0, other, other_at: 0 }
    }
}

/// The keys a compaction's walk marks from the chain index or records into it: its collect
/// leaves them out of the next list, since every compaction that uses the index marks them.
/// Bounded by the list's limit: past it the set is freed and the collect keeps no list (it
/// could not tell which keys to leave out), so a chain too long for the limit costs its
/// memory once, not a second mark set over every header.
#[derive(Debug)]
pub(crate) struct IndexedKeys {
    keys: AnyMarks,
    /// The keys marked from the stored chunks are taken in too: set when the collect is to
    /// scan, and so meets them. A collect from a list does not: the last one left them out.
    pub with_stored: bool,
    /// Keys recorded into chunks, until the anchor that names them is written.
    staged: Vec<BlockKey>,
    limit: usize,
    /// The set passed `limit` and was freed.
    overflowed: bool,
}

impl IndexedKeys {
    pub fn new(kind: MarkSetKind, seed: u128, with_stored: bool, limit: usize) -> Self {
        IndexedKeys { keys: AnyMarks::new(kind, 0, seed), with_stored, staged: Vec::new(), limit, overflowed: false }
    }

    /// Takes in keys marked from a stored chunk.
    pub fn marked_from_chunk(&mut self, keys: &[&[u8]]) {
        if self.with_stored && !self.overflowed {
            for k in keys {
                self.keys.mark(k);
            }
            self.check_limit();
        }
    }

    /// Takes in the keys of a generation recorded into the index.
    pub fn recorded(&mut self, keys: &[BlockKey]) {
        if !self.overflowed {
            self.staged.extend_from_slice(keys);
            self.check_limit();
        }
    }

    /// The anchor naming the recorded keys was written: they are indexed.
    pub fn anchored(&mut self) {
        for k in self.staged.drain(..) {
            self.keys.mark(k.as_bytes());
        }
        self.check_limit();
    }

    /// Heap bytes held, about: the fingerprint table's allocation (an exact set, used by
    /// tests, is counted by its keys, since summing its allocations costs a pass over it).
    fn held(&self) -> usize {
        let keys = match &self.keys {
            AnyMarks::Fingerprint(s) => s.heap_bytes(),
            AnyMarks::Exact(s) => s.len() * 64,
        };
        keys + self.staged.len() * 64
    }

    fn check_limit(&mut self) {
        if !self.overflowed && self.held() > self.limit {
            self.overflowed = true;
            self.keys = AnyMarks::new(MarkSetKind::default(), 0, 0);
            self.staged = Vec::new();
        }
    }

    /// Whether the set passed its limit: the collect keeps no list.
    pub fn overflowed(&self) -> bool {
        self.overflowed
    }

    pub fn contains(&self, key: &[u8]) -> bool {
        self.keys.contains(key)
    }
}

/// The keys a collect visits from a list, in pages.
#[derive(Debug)]
pub(crate) struct Listing {
    kept: Chunked<[u8; 32]>,
    at: usize,
    added: Vec<[u8; 32]>,
    added_at: usize,
    other: Vec<Vec<u8>>,
    other_at: usize,
}

impl Listing {
    /// Keys in the listing.
    pub fn len_hint(&self) -> usize {
        self.kept.len() + self.added.len() + self.other.len()
    }

    /// The next key, or `None` at the end.
    fn next_key(&mut self) -> Option<Vec<u8>> {
        let k = self.kept.get(self.at);
        let a = self.added.get(self.added_at);
        let d = match (k, a) {
            (Some(k), Some(a)) if k == a => {
                self.at += 1;
                self.added_at += 1;
                *k
            }
            (Some(k), Some(a)) if k < a => {
                self.at += 1;
                *k
            }
            (Some(k), None) => {
                self.at += 1;
                *k
            }
            (_, Some(a)) => {
                self.added_at += 1;
                *a
            }
            (None, None) => {
                let o = self.other.get_mut(self.other_at)?;
                self.other_at += 1;
                return Some(core::mem::take(o));
            }
        };
        Some(KeyBuf::of_blake2b_256(&d).as_bytes().to_vec())
    }

    /// Up to `n` next keys; empty at the end.
    pub fn page(&mut self, n: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::with_capacity(n.min(self.len_hint()));
        while out.len() < n {
            match self.next_key() {
                Some(k) => out.push(k),
                None => break,
            }
        }
        out
    }
}

impl<K: Kv, C: Clock> SplitStore<K, C> {
    /// The hot key list's record of a write about to be issued: its keys go to the list when
    /// it returns ([`ListedWrite::landed`]), or as uncertain if it fails or is dropped.
    pub(crate) fn list_write(&self, keys: &[Vec<u8>]) -> Option<ListedWrite<'_>> {
        if !self.config.lists_hot_keys() {
            return None;
        }
        let mut bag = KeyBag::default();
        keys.iter().for_each(|k| bag.push(k));
        Some(ListedWrite { list: &self.hot_keys, keys: bag, landed: false })
    }

    /// Drops the hot key list: blocks change in the hot store outside its sight.
    pub(crate) fn drop_hot_keys(&self) {
        *self.hot_keys.lock() = None;
    }

    /// What a compaction's walk records for its collect to leave out of the next list, where
    /// the store keeps one.
    pub(crate) fn indexed_keys(&self) -> Option<IndexedKeys> {
        if !self.config.lists_hot_keys() {
            return None;
        }
        // A collect that will scan meets the stored chunks' keys; one from the list does not.
        let scans = self.hot_keys.lock().as_ref().is_none_or(|l| !l.usable(true));
        Some(IndexedKeys::new(self.markset_kind, self.clock.random_seed(), scans, self.config.hot_key_list_bytes))
    }

    /// Starts the list the writes from now on go to, for a collect about to begin, and
    /// returns the keys of the last one if the collect may visit them instead of scanning
    /// (after a walk that did or did not mark from the chain index, `used_index`).
    pub(crate) async fn start_hot_key_list(&self, used_index: bool) -> Result<Option<Listing>, Error> {
        if !self.config.lists_hot_keys() {
            return Ok(None);
        }
        let last = self.hot_keys.lock().replace(HotKeys::new(self.config.hot_key_list_bytes));
        let Some(mut last) = last.filter(|l| l.usable(used_index)) else { return Ok(None) };
        let uncertain = last.take_uncertain();
        if !uncertain.is_empty() {
            let mut keys = Vec::with_capacity(uncertain.len());
            uncertain.for_each(|k| keys.push(k.to_vec()));
            let found = self.hot.get_many(Space::Blocks, &keys).await.map_err(|e| self.hot_err(e))?;
            for (k, v) in keys.iter().zip(found) {
                if v.is_some() && !last.add(k) {
                    return Ok(None);
                }
            }
        }
        Ok(Some(last.into_listing(self.build_every(), || self.clock.yield_now()).await))
    }

    /// Takes in what the collect visited ([`HotKeys::collected`]); `None` drops the list (the
    /// collect's own keys passed the limit). Whether a list is kept.
    pub(crate) fn hot_keys_collected(
        &self,
        visited: Option<(KeyBag, KeyBag)>,
        leans_on_index: bool,
        tight: bool,
    ) -> bool {
        let mut list = self.hot_keys.lock();
        let Some(l) = list.as_mut() else { return false };
        let fits = visited.is_some_and(|(kept, dead)| l.collected(kept, dead, leans_on_index, tight));
        if !fits {
            *list = None;
        }
        fits
    }

    /// After the purge: the keys collect listed as dead that the compaction marked later may
    /// have stayed; the next collect reads which. Yields between steps of `build_every` keys.
    pub(crate) async fn settle_hot_keys(&self, live: &LiveRef) {
        let dead = match self.hot_keys.lock().as_mut() {
            Some(l) => l.take_dead(),
            None => return,
        };
        let mut marked = KeyBag::default();
        let mut pace = Pace::new(self.build_every(), || self.clock.yield_now());
        for chunk in dead.digests.chunks() {
            {
                let l = live.lock();
                for d in chunk {
                    let key = KeyBuf::of_blake2b_256(d);
                    if l.marks.contains(key.as_bytes()) {
                        marked.digests.push(*d);
                    }
                }
            }
            pace.step(chunk.len()).await;
        }
        {
            let l = live.lock();
            for k in &dead.other {
                if l.marks.contains(k) {
                    marked.push(k);
                }
            }
        }
        let mut list = self.hot_keys.lock();
        if let Some(l) = list.as_mut() {
            if !l.add_write(&marked, false) {
                *list = None;
            }
        }
    }
}

/// A write's keys on their way to the hot key list ([`SplitStore::list_write`]).
pub(crate) struct ListedWrite<'a> {
    list: &'a Mutex<Option<HotKeys>>,
    keys: KeyBag,
    landed: bool,
}

impl ListedWrite<'_> {
    /// The write returned.
    pub fn landed(mut self) {
        self.landed = true;
    }
}

impl Drop for ListedWrite<'_> {
    fn drop(&mut self) {
        let mut list = self.list.lock();
        if let Some(l) = list.as_mut() {
            if !l.add_write(&self.keys, self.landed) {
                *list = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use alloc::collections::BTreeSet;

    use super::*;
    use crate::key::{dag_cbor_blake2b_cid, BlockKey};

    fn key(i: u32) -> Vec<u8> {
        BlockKey::of(&dag_cbor_blake2b_cid(&i.to_le_bytes())).into_bytes()
    }

    fn sha_key(i: u32) -> Vec<u8> {
        let mh = multihash::Multihash::<64>::wrap(crate::key::SHA2_256, &[i as u8; 32]).unwrap();
        mh.to_bytes()
    }

    /// The listing of `l`, sorted in steps of three elements.
    fn listing(l: HotKeys) -> Listing {
        futures::executor::block_on(l.into_listing(3, || async {}))
    }

    fn drain(mut l: Listing, page: usize) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let p = l.page(page);
            if p.is_empty() {
                return out;
            }
            out.extend(p);
        }
    }

    #[test]
    fn the_prefix_is_the_key_encoding() {
        let k = key(7);
        assert_eq!(k[..4], BLAKE2B_PREFIX);
        assert_eq!(digest_of(&k).map(|d| KeyBuf::of_blake2b_256(&d).as_bytes().to_vec()), Some(k));
        assert_eq!(digest_of(&sha_key(1)), None);
    }

    /// Added keys: unordered, repeated, some of them kept too.
    fn added() -> impl Iterator<Item = Vec<u8>> {
        (2500..40_000).step_by(3).chain(0..10).chain([39_999, 2500]).map(key).chain([1, 3, 2].map(sha_key))
    }

    /// A list as a collect leaves it (kept keys in key order) with keys added since.
    fn filled() -> HotKeys {
        let mut kept_keys: Vec<Vec<u8>> = (0..5000).map(key).collect();
        kept_keys.sort();
        let mut kept = KeyBag::default();
        kept_keys.iter().chain([&sha_key(3)]).for_each(|k| kept.push(k));
        let mut list = HotKeys::new(usize::MAX);
        assert!(list.collected(kept, KeyBag::default(), false, true));
        for k in added() {
            assert!(list.add(&k));
        }
        list
    }

    #[test]
    fn a_listing_visits_kept_and_added_keys_once_each() {
        let model: BTreeSet<Vec<u8>> = (0..5000).map(key).chain([sha_key(3)]).chain(added()).collect();
        let (blake, others): (Vec<&Vec<u8>>, Vec<&Vec<u8>>) = model.iter().partition(|k| digest_of(k).is_some());
        for page in [1, 7, 16_384] {
            let list = filled();
            assert!(list.usable(false));
            let got = drain(listing(list), page);
            assert_eq!(got.len(), model.len(), "page {page}: every key once");
            let (g_blake, g_other) = got.split_at(blake.len());
            assert!(g_blake.iter().eq(blake.iter().copied()), "page {page}: BLAKE2b-256 keys in key order");
            assert!(g_other.iter().eq(others.iter().copied()), "page {page}: other keys after, in order");
        }
    }

    #[test]
    fn a_list_is_usable_only_when_whole() {
        let mut l = HotKeys::new(usize::MAX);
        assert!(!l.usable(true), "no collect has filled it");
        assert!(l.collected(KeyBag::default(), KeyBag::default(), false, true));
        assert!(l.usable(false));
        let mut dead = KeyBag::default();
        dead.push(&key(1));
        assert!(l.collected(KeyBag::default(), dead, true, true));
        assert!(!l.usable(true), "dead keys not settled: a compaction that did not finish");
        assert_eq!(l.take_dead().len(), 1);
        assert!(l.usable(true) && !l.usable(false), "leans on the index: only after a walk that used it");
        assert!(l.collected(KeyBag::default(), KeyBag::default(), false, false));
        assert!(!l.usable(true), "a list that holds keys the index marks");
    }

    #[test]
    fn the_limit_counts_every_key() {
        let mut l = HotKeys::new(32 * 10);
        for i in 0..10 {
            assert!(l.add(&key(i)));
        }
        assert_eq!(l.held(), 320);
        assert!(!l.add(&key(10)), "past the limit");
        let mut l = HotKeys::new(100);
        assert!(l.add(&sha_key(1)), "a key of another hash costs its bytes and its vector");
        assert!(!l.add(&sha_key(2)));
    }

    #[test]
    fn the_index_keys_set_is_freed_past_the_limit() {
        let keys: Vec<Vec<u8>> = (0..4096).map(key).collect();
        let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
        for kind in [MarkSetKind::Fingerprint, MarkSetKind::Exact] {
            let mut roomy = IndexedKeys::new(kind, 7, true, 1 << 20);
            let mut tight = IndexedKeys::new(kind, 7, true, 16 << 10);
            for chunk in refs.chunks(64) {
                roomy.marked_from_chunk(chunk);
                tight.marked_from_chunk(chunk);
                assert!(tight.held() <= 16 << 10, "{kind:?}: {} bytes held", tight.held());
            }
            assert!(!roomy.overflowed() && keys.iter().all(|k| roomy.contains(k)), "{kind:?}");
            assert!(tight.overflowed() && !tight.contains(&keys[0]), "{kind:?}");
            // Recorded keys count too, staged or anchored.
            let mut recorded = IndexedKeys::new(kind, 7, false, 16 << 10);
            recorded.marked_from_chunk(&refs);
            assert!(!recorded.overflowed() && !recorded.contains(&keys[0]), "{kind:?}: stored keys taken in");
            let block_keys: Vec<BlockKey> = keys.iter().map(|k| BlockKey::from_bytes(k.clone())).collect();
            recorded.recorded(&block_keys);
            recorded.anchored();
            assert!(recorded.overflowed() && recorded.held() <= 16 << 10, "{kind:?}");
        }
    }
}
