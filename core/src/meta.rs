//! Store metadata: keys in [`Space::Meta`] and their byte codec.
//!
//! Every record starts with a format version byte. Decoding checks every length against the
//! input and reports [`Error::CorruptMeta`] naming the key, never panics.

use alloc::{string::ToString, vec::Vec};

use cid::Cid;

use crate::{config::Boundaries, kv::Space, Error};

/// The current head tipset: its block CIDs, height and timestamp.
pub const HEAD: &[u8] = b"head";
/// Base epoch, compaction index, last markset size.
pub const STATE: &[u8] = b"state";
/// Present while a purge is under way (or interrupted): the compaction being finished.
pub const PURGE: &[u8] = b"purge";
/// Present while a cold prune's purge is under way (or interrupted): the prune being finished.
/// Never present together with [`PURGE`]: a prune and a compaction exclude each other.
pub const PRUNE: &[u8] = b"prune";
/// The warmup of an empty hot store from cold: in progress, or done at an epoch.
pub const WARMUP: &[u8] = b"warmup";
/// The last processed dead-list key of the running purge (progress, not needed for safety).
pub const CHECKPOINT: &[u8] = b"checkpoint";
/// Messages mode: roots of old message and receipt DAGs copied to cold while part of them was
/// missing, walked again by every compaction until whole.
pub const INCOMPLETE: &[u8] = b"incomplete";
/// The last finished compaction's report (DAG-CBOR of [`crate::CompactionReport`]), so a
/// later process reports it too. Informational: written after the compaction, never read by it.
pub const LAST_REPORT: &[u8] = b"last-report";
/// The last prune's report (DAG-CBOR of `PruneReport`), for `info` in later processes.
pub const LAST_PRUNE: &[u8] = b"last-prune";
/// The chain index's anchor ([`ChainIndex`]): a final tipset and the range of chunk records
/// that hold every key a compaction's chain walk marks from that tipset down to genesis.
/// A cache: a store without it (or with a damaged one) walks every header, as the reference does.
pub const CHAIN_INDEX: &[u8] = b"chain-index";
/// Prefix of the chain index's chunks: `chain-index/` + a big-endian `u64` sequence number
/// ([`chain_chunk_key`]), each holding up to [`CHAIN_CHUNK_KEYS`] block keys ([`ChainChunk`]).
pub const CHAIN_CHUNK_PREFIX: &[u8] = b"chain-index/";
/// Block keys per chain index chunk (the last chunk a compaction writes may hold fewer).
pub const CHAIN_CHUNK_KEYS: usize = 1024;
/// Chunk sequence numbers stay below this (a compaction writes one chunk per 1,024 headers it
/// walked): a record naming more is damage, not a range to read.
pub const CHAIN_CHUNK_SEQ_LIMIT: u64 = 1 << 48;

/// The key of chain index chunk `seq`.
pub fn chain_chunk_key(seq: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(CHAIN_CHUNK_PREFIX.len() + 8);
    k.extend_from_slice(CHAIN_CHUNK_PREFIX);
    k.extend_from_slice(&seq.to_be_bytes());
    k
}

/// Prefix of the deletion records: `deleted/` + a block key, with an empty value, for each
/// block deleted through the API whose cold copy may still exist ([`deleted_key`]).
pub const DELETED_PREFIX: &[u8] = b"deleted/";

/// The deletion record of the block with key `block_key`.
pub fn deleted_key(block_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(DELETED_PREFIX.len() + block_key.len());
    k.extend_from_slice(DELETED_PREFIX);
    k.extend_from_slice(block_key);
    k
}

/// Prefix of the pin records: `pinned/` + the binary CID, with an empty value, for each CID
/// protected from compaction by [`SplitStore::protect`](crate::SplitStore::protect)
/// ([`pinned_key`]). Loaded at open; the CID is decoded from the key ([`pinned_cid`]).
pub const PINNED_PREFIX: &[u8] = b"pinned/";

/// The pin record of `cid`.
pub fn pinned_key(cid: &Cid) -> Vec<u8> {
    let b = cid.to_bytes();
    let mut k = Vec::with_capacity(PINNED_PREFIX.len() + b.len());
    k.extend_from_slice(PINNED_PREFIX);
    k.extend_from_slice(&b);
    k
}

/// The CID a pin record's key names: `None` when `key` is not a pin record, or
/// [`Error::CorruptMeta`] when what follows the prefix is not exactly one binary CID.
pub fn pinned_cid(key: &[u8]) -> Option<Result<Cid, Error>> {
    let rest = key.strip_prefix(PINNED_PREFIX)?;
    Some(
        crate::cbor::parse_cid(rest)
            .ok_or_else(|| Error::CorruptMeta { key: "pinned", detail: "a pin record's key is not a CID".to_string() }),
    )
}

const VERSION: u8 = 1;
/// [`StoreState`]'s format once a prune has been counted.
const STATE_WITH_PRUNES: u8 = 2;

/// The space metadata lives in.
pub const SPACE: Space = Space::Meta;

/// The head as recorded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// Header CIDs.
    pub tipset: Vec<Cid>,
    /// Height.
    pub height: i64,
    /// Timestamp (Unix seconds) of the tipset's first header.
    pub timestamp: u64,
}

/// Compaction bookkeeping that survives restarts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StoreState {
    /// Epoch below which state is no longer hot.
    pub base_epoch: i64,
    /// Completed compactions.
    pub compactions: u64,
    /// Objects marked by the last compaction (sizes the next mark set).
    pub last_marked: u64,
    /// Completed cold prunes. Written in format 2, and only when not zero, so a store that
    /// was never pruned keeps format 1.
    pub prunes: u64,
}

/// The cold prune a purge of cold blocks belongs to; written durably before the first delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PruneRecord {
    /// Height of the head the prune walked from.
    pub head: i64,
    /// State of headers at or above this height was kept ([`i64::MIN`]: all state).
    pub retain_state_from: i64,
    /// Objects the prune marked.
    pub marked: u64,
    /// Dead-list entries written by its collect.
    pub dead: u64,
}

/// The compaction a purge belongs to; written durably before the first delete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PurgeRecord {
    /// The compaction's boundaries.
    pub boundaries: Boundaries,
    /// Objects the compaction marked.
    pub marked: u64,
    /// Dead-list entries written by collect.
    pub dead: u64,
}

/// The warmup of a hot store found empty beside a cold one ([`WARMUP`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WarmupRecord {
    /// Height of the head the warmup walks (or walked) from.
    pub epoch: i64,
    /// The warmup has completed; otherwise it was under way when the process stopped.
    pub done: bool,
}

/// Roots of old message DAGs that reached cold incomplete ([`INCOMPLETE`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IncompleteRoots {
    /// The roots.
    pub cids: Vec<Cid>,
}

/// The chain index's anchor ([`CHAIN_INDEX`]).
///
/// Invariant: chunks `first..end` hold every key the chain walk marks when it reaches the
/// generation `tipset` (header keys of that generation and of every generation below it, and
/// the tipset-key objects of their parents), and `genesis_state` holds the state roots of the
/// height-0 headers among them. Headers are content-addressed, so this stays true whatever is
/// written later; it is the walk's result only for a compaction whose boundaries keep no
/// messages and no state (but genesis state) of a header at or below `height`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainIndex {
    /// The anchor generation's header CIDs, sorted and without duplicates (as the walk holds a
    /// generation when it compares).
    pub tipset: Vec<Cid>,
    /// The greatest height of a header in the indexed range.
    pub height: i64,
    /// State roots of the indexed range's height-0 headers.
    pub genesis_state: Vec<Cid>,
    /// First chunk of the range.
    pub first: u64,
    /// One past the last chunk of the range.
    pub end: u64,
    /// Keys held by the chunks.
    pub keys: u64,
}

/// One chunk of the chain index: block keys ([`CHAIN_CHUNK_PREFIX`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainChunk {
    /// Block keys (multihash bytes), each at most 255 bytes long.
    pub keys: Vec<Vec<u8>>,
}

struct Reader<'a> {
    key: &'static str,
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(key: &'static str, buf: &'a [u8]) -> Result<Self, Error> {
        Ok(Self::versioned(key, buf, &[VERSION])?.0)
    }
    /// A reader of a record in one of the `accepted` formats, and the format found.
    fn versioned(key: &'static str, buf: &'a [u8], accepted: &[u8]) -> Result<(Self, u8), Error> {
        let mut r = Reader { key, buf };
        let v = r.u8()?;
        if !accepted.contains(&v) {
            return Err(r.err("unknown format version"));
        }
        Ok((r, v))
    }
    fn err(&self, what: &str) -> Error {
        Error::CorruptMeta { key: self.key, detail: what.to_string() }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], Error> {
        if self.buf.len() < n {
            return Err(self.err("record is truncated"));
        }
        let (a, b) = self.buf.split_at(n);
        self.buf = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, Error> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, Error> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(b))
    }
    fn i64(&mut self) -> Result<i64, Error> {
        Ok(self.u64()? as i64)
    }
    /// A length-prefixed binary CID that fills its length exactly (`Cid::try_from` would
    /// ignore bytes after the CID, so a damaged record could decode).
    fn cid(&mut self) -> Result<Cid, Error> {
        let n = self.u8()? as usize;
        let bytes = self.take(n)?;
        crate::cbor::parse_cid(bytes).ok_or_else(|| self.err("invalid CID"))
    }
    /// A list written by [`put_short_cids`].
    fn short_cids(&mut self) -> Result<Vec<Cid>, Error> {
        let n = self.u8()? as usize;
        (0..n).map(|_| self.cid()).collect()
    }
    fn end(&self) -> Result<(), Error> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.err("trailing bytes"))
        }
    }
}

/// A list of at most 255 CIDs: its length in one byte, then each CID (any beyond 255 dropped).
fn put_short_cids(out: &mut Vec<u8>, cids: &[Cid]) {
    out.push(cids.len().min(255) as u8);
    for c in cids.iter().take(255) {
        put_cid(out, c);
    }
}

fn put_cid(out: &mut Vec<u8>, c: &Cid) {
    let b = c.to_bytes();
    // CIDs of supported hashes are far below 255 bytes; `Cid` caps digests at 64 bytes.
    out.push(b.len() as u8);
    out.extend_from_slice(&b);
}

impl Head {
    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = alloc::vec![VERSION];
        out.extend_from_slice(&self.height.to_le_bytes());
        out.extend_from_slice(&self.timestamp.to_le_bytes());
        put_short_cids(&mut out, &self.tipset);
        out
    }

    /// Decodes the record.
    pub fn decode(buf: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new("head", buf)?;
        let height = r.i64()?;
        let timestamp = r.u64()?;
        let tipset = r.short_cids()?;
        r.end()?;
        if tipset.is_empty() {
            return Err(r.err("empty tipset"));
        }
        Ok(Head { tipset, height, timestamp })
    }
}

impl IncompleteRoots {
    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = alloc::vec![VERSION];
        out.extend_from_slice(&(self.cids.len() as u64).to_le_bytes());
        for c in &self.cids {
            put_cid(&mut out, c);
        }
        out
    }

    /// Decodes the record.
    pub fn decode(buf: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new("incomplete", buf)?;
        let n = r.u64()?;
        // Each CID takes at least two bytes: a count beyond that is damage, not a size to
        // allocate.
        if n > (r.buf.len() / 2) as u64 {
            return Err(r.err("count exceeds the record"));
        }
        let mut cids = Vec::with_capacity(n as usize);
        for _ in 0..n {
            cids.push(r.cid()?);
        }
        r.end()?;
        Ok(IncompleteRoots { cids })
    }
}

impl ChainIndex {
    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = alloc::vec![VERSION];
        out.extend_from_slice(&self.height.to_le_bytes());
        out.extend_from_slice(&self.first.to_le_bytes());
        out.extend_from_slice(&self.end.to_le_bytes());
        out.extend_from_slice(&self.keys.to_le_bytes());
        put_short_cids(&mut out, &self.tipset);
        put_short_cids(&mut out, &self.genesis_state);
        out
    }

    /// Decodes the record.
    pub fn decode(buf: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new("chain-index", buf)?;
        let (height, first, end, keys) = (r.i64()?, r.u64()?, r.u64()?, r.u64()?);
        let (tipset, genesis_state) = (r.short_cids()?, r.short_cids()?);
        r.end()?;
        if tipset.is_empty() || !tipset.windows(2).all(|w| w[0] < w[1]) {
            return Err(r.err("anchor tipset empty or not sorted"));
        }
        if first >= end || end > CHAIN_CHUNK_SEQ_LIMIT {
            return Err(r.err("empty or impossible chunk range"));
        }
        Ok(ChainIndex { tipset, height, genesis_state, first, end, keys })
    }
}

impl ChainChunk {
    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(5 + self.keys.iter().map(|k| k.len() + 1).sum::<usize>());
        out.push(VERSION);
        out.extend_from_slice(&(self.keys.len() as u32).to_le_bytes());
        for k in &self.keys {
            // Multihash keys of supported hashes are far below 255 bytes.
            out.push(k.len() as u8);
            out.extend_from_slice(k);
        }
        out
    }

    /// Decodes the record.
    pub fn decode(buf: &[u8]) -> Result<Self, Error> {
        Ok(ChainChunk { keys: Self::keys_in(buf)?.into_iter().map(<[u8]>::to_vec).collect() })
    }

    /// The keys of an encoded chunk, borrowed from it, with the checks of [`ChainChunk::decode`].
    pub fn keys_in(buf: &[u8]) -> Result<Vec<&[u8]>, Error> {
        let mut r = Reader::new("chain-index chunk", buf)?;
        let mut n = [0u8; 4];
        n.copy_from_slice(r.take(4)?);
        let n = u32::from_le_bytes(n) as usize;
        // Each key takes at least two bytes: a count beyond that is damage.
        if n > r.buf.len() / 2 {
            return Err(r.err("count exceeds the record"));
        }
        let mut keys = Vec::with_capacity(n);
        for _ in 0..n {
            let len = r.u8()? as usize;
            if len == 0 {
                return Err(r.err("empty key"));
            }
            keys.push(r.take(len)?);
        }
        r.end()?;
        Ok(keys)
    }
}

impl StoreState {
    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = alloc::vec![if self.prunes == 0 { VERSION } else { STATE_WITH_PRUNES }];
        out.extend_from_slice(&self.base_epoch.to_le_bytes());
        out.extend_from_slice(&self.compactions.to_le_bytes());
        out.extend_from_slice(&self.last_marked.to_le_bytes());
        if self.prunes != 0 {
            out.extend_from_slice(&self.prunes.to_le_bytes());
        }
        out
    }

    /// Decodes the record.
    pub fn decode(buf: &[u8]) -> Result<Self, Error> {
        let (mut r, version) = Reader::versioned("state", buf, &[VERSION, STATE_WITH_PRUNES])?;
        let mut s = StoreState { base_epoch: r.i64()?, compactions: r.u64()?, last_marked: r.u64()?, prunes: 0 };
        if version == STATE_WITH_PRUNES {
            s.prunes = r.u64()?;
            if s.prunes == 0 {
                return Err(r.err("format 2 with no prunes"));
            }
        }
        r.end()?;
        Ok(s)
    }
}

impl PurgeRecord {
    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = alloc::vec![VERSION];
        for v in [self.boundaries.head, self.boundaries.boundary, self.boundaries.include_messages] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&self.marked.to_le_bytes());
        out.extend_from_slice(&self.dead.to_le_bytes());
        out
    }

    /// Decodes the record.
    pub fn decode(buf: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new("purge", buf)?;
        let boundaries = Boundaries { head: r.i64()?, boundary: r.i64()?, include_messages: r.i64()? };
        let p = PurgeRecord { boundaries, marked: r.u64()?, dead: r.u64()? };
        r.end()?;
        if p.boundaries.boundary > p.boundaries.head || p.boundaries.include_messages > p.boundaries.boundary.max(0) {
            return Err(r.err("boundaries out of order"));
        }
        Ok(p)
    }
}

impl PruneRecord {
    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = alloc::vec![VERSION];
        out.extend_from_slice(&self.head.to_le_bytes());
        out.extend_from_slice(&self.retain_state_from.to_le_bytes());
        out.extend_from_slice(&self.marked.to_le_bytes());
        out.extend_from_slice(&self.dead.to_le_bytes());
        out
    }

    /// Decodes the record.
    pub fn decode(buf: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new("prune", buf)?;
        let p = PruneRecord { head: r.i64()?, retain_state_from: r.i64()?, marked: r.u64()?, dead: r.u64()? };
        r.end()?;
        if p.retain_state_from > p.head {
            return Err(r.err("retention starts above the head"));
        }
        Ok(p)
    }
}

impl WarmupRecord {
    /// Encodes the record.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = alloc::vec![VERSION, u8::from(self.done)];
        out.extend_from_slice(&self.epoch.to_le_bytes());
        out
    }

    /// Decodes the record.
    pub fn decode(buf: &[u8]) -> Result<Self, Error> {
        let mut r = Reader::new("warmup", buf)?;
        let done = match r.u8()? {
            0 => false,
            1 => true,
            _ => return Err(r.err("unknown warmup state")),
        };
        let w = WarmupRecord { done, epoch: r.i64()? };
        r.end()?;
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pin_keys_round_trip_and_reject_damage() {
        let c = crate::key::dag_cbor_blake2b_cid(b"x");
        let k = pinned_key(&c);
        assert!(k.starts_with(PINNED_PREFIX));
        assert_eq!(pinned_cid(&k).expect("a pin key").expect("decodes"), c);
        assert!(pinned_cid(&deleted_key(&c.hash().to_bytes())).is_none());
        for cut in PINNED_PREFIX.len()..k.len() {
            assert!(pinned_cid(&k[..cut]).expect("a pin key").is_err(), "pin key cut at {cut}");
        }
        let mut longer = k.clone();
        longer.push(0);
        assert!(matches!(pinned_cid(&longer), Some(Err(Error::CorruptMeta { key: "pinned", .. }))));
    }

    #[test]
    fn records_round_trip_and_reject_damage() {
        let c = crate::key::dag_cbor_blake2b_cid(b"x");
        let h = Head { tipset: alloc::vec![c, c], height: 42, timestamp: 7 };
        assert_eq!(Head::decode(&h.encode()).unwrap(), h);
        let s = StoreState { base_epoch: -3, compactions: 2, last_marked: 99, prunes: 0 };
        assert_eq!(StoreState::decode(&s.encode()).unwrap(), s);
        let p = PurgeRecord {
            boundaries: Boundaries { head: 100, boundary: 60, include_messages: 40 },
            marked: 5,
            dead: 6,
        };
        assert_eq!(PurgeRecord::decode(&p.encode()).unwrap(), p);
        let (he, se, pe) = (h.encode(), s.encode(), p.encode());
        for cut in 0..he.len() {
            assert!(Head::decode(&he[..cut]).is_err(), "head cut at {cut}");
        }
        for cut in 0..se.len() {
            assert!(StoreState::decode(&se[..cut]).is_err(), "state cut at {cut}");
        }
        for cut in 0..pe.len() {
            assert!(PurgeRecord::decode(&pe[..cut]).is_err(), "purge cut at {cut}");
        }
        let mut longer = he.clone();
        longer.push(0);
        assert!(Head::decode(&longer).is_err());
        let mut longer = se.clone();
        longer.push(0);
        assert!(StoreState::decode(&longer).is_err());
        let mut longer = pe.clone();
        longer.push(0);
        assert!(PurgeRecord::decode(&longer).is_err());
        // A CID followed by bytes its length prefix covers is not a CID.
        let mut padded = h.encode();
        let first = 1 + 8 + 8 + 1;
        padded[first] += 1;
        padded.insert(first + 1 + c.to_bytes().len(), 0);
        assert!(Head::decode(&padded).is_err());
        let i = IncompleteRoots { cids: alloc::vec![c, c] };
        assert_eq!(IncompleteRoots::decode(&i.encode()).unwrap(), i);
        let ie = i.encode();
        for cut in 0..ie.len() {
            assert!(IncompleteRoots::decode(&ie[..cut]).is_err(), "incomplete cut at {cut}");
        }
        let mut huge = ie.clone();
        huge[1..9].copy_from_slice(&u64::MAX.to_le_bytes());
        assert!(IncompleteRoots::decode(&huge).is_err());
        let pruned = StoreState { prunes: 3, ..s };
        assert_eq!(StoreState::decode(&pruned.encode()).unwrap(), pruned);
        assert_eq!(pruned.encode()[0], STATE_WITH_PRUNES);
        assert_eq!(s.encode()[0], VERSION, "a store never pruned keeps format 1");
        let mut zero = pruned.encode();
        zero[25..].fill(0);
        assert!(StoreState::decode(&zero).is_err(), "format 2 with no prunes is not canonical");
        let q = PruneRecord { head: 90, retain_state_from: i64::MIN, marked: 4, dead: 2 };
        assert_eq!(PruneRecord::decode(&q.encode()).unwrap(), q);
        let qe = q.encode();
        for cut in 0..qe.len() {
            assert!(PruneRecord::decode(&qe[..cut]).is_err(), "prune cut at {cut}");
        }
        for w in [WarmupRecord { epoch: 7, done: false }, WarmupRecord { epoch: -1, done: true }] {
            assert_eq!(WarmupRecord::decode(&w.encode()).unwrap(), w);
            let we = w.encode();
            for cut in 0..we.len() {
                assert!(WarmupRecord::decode(&we[..cut]).is_err(), "warmup cut at {cut}");
            }
        }
        let mut bad = WarmupRecord { epoch: 7, done: true }.encode();
        bad[1] = 2;
        assert!(WarmupRecord::decode(&bad).is_err());
        let above = PruneRecord { retain_state_from: 91, ..q };
        assert!(PruneRecord::decode(&above.encode()).is_err());
        let ci = ChainIndex {
            tipset: alloc::vec![c, crate::key::dag_cbor_blake2b_cid(b"y")],
            height: 300,
            genesis_state: alloc::vec![c],
            first: 4,
            end: 9,
            keys: 4100,
        };
        let mut sorted = ci.clone();
        sorted.tipset.sort();
        assert_eq!(ChainIndex::decode(&sorted.encode()).unwrap(), sorted);
        let ce = sorted.encode();
        for cut in 0..ce.len() {
            assert!(ChainIndex::decode(&ce[..cut]).is_err(), "chain index cut at {cut}");
        }
        let mut unsorted = sorted.clone();
        unsorted.tipset.reverse();
        assert!(ChainIndex::decode(&unsorted.encode()).is_err(), "an unsorted anchor is damage");
        assert!(ChainIndex::decode(&ChainIndex { end: 4, ..sorted.clone() }.encode()).is_err());
        let beyond = ChainIndex { end: CHAIN_CHUNK_SEQ_LIMIT + 1, ..sorted.clone() };
        assert!(ChainIndex::decode(&beyond.encode()).is_err(), "a range past the limit is damage");
        let chunk = ChainChunk { keys: alloc::vec![c.hash().to_bytes(), alloc::vec![7, 8]] };
        assert_eq!(ChainChunk::decode(&chunk.encode()).unwrap(), chunk);
        let ke = chunk.encode();
        for cut in 0..ke.len() {
            assert!(ChainChunk::decode(&ke[..cut]).is_err(), "chunk cut at {cut}");
        }
        let mut longer = ke.clone();
        longer.push(0);
        assert!(ChainChunk::decode(&longer).is_err());
        let mut huge = ke.clone();
        huge[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(ChainChunk::decode(&huge).is_err());
        assert!(chain_chunk_key(1) < chain_chunk_key(256), "chunk keys sort by sequence");
        assert!(chain_chunk_key(0).as_slice() > CHAIN_INDEX, "chunks sort after the anchor");
        let mut wrong_version = s.encode();
        wrong_version[0] = 9;
        assert!(matches!(StoreState::decode(&wrong_version), Err(Error::CorruptMeta { key: "state", .. })));
    }
}
