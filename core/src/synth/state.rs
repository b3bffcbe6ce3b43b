//! The state tree: a HAMT-like DAG of actor records under a `StateRoot [version, actors, info]`
//! wrapper, rewritten path-to-root each epoch for the actors that changed.
//!
//! Shape: actor `i` lives in leaf `i / LEAF_ACTORS`; a leaf is a HAMT node
//! `[bitmap, [bucket, ..]]` whose pointers are buckets of up to three `[key, record]` pairs;
//! each inner level groups `fanout` nodes of the level below into `[bitmap, [link, ..]]`; the
//! single node of the top level is the actors root. Records are
//! `[code, head, nonce, balance]`; `head` links to the actor's state object.
//!
//! Links that never resolve, by design: `code` (when `dangling_code_links`), and inside actor
//! states, sealed-sector commitments (codec 0xf102) and identity-hash CIDs.

use alloc::vec::Vec;

use cid::Cid;

use super::cbor;
use super::rng::{mix, Rng};
use super::sink::Sink;
use crate::key::{DAG_CBOR, FIL_COMMITMENT_SEALED, RAW};

/// Actors per leaf node.
pub(crate) const LEAF_ACTORS: usize = 12;
/// Entries per HAMT bucket.
const BUCKET: usize = 3;
/// Version written in the `StateRoot` wrapper.
const STATE_TREE_VERSION: u64 = 5;
/// Multihash code of Poseidon over BLS12-381, as real sector commitments use.
const POSEIDON_BLS12_381: u64 = 0x1012;

/// Actor kinds, in the order of [`ChainGen::code_cids`](super::ChainGen::code_cids).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Account,
    Miner,
    Multisig,
    PaymentChannel,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Account, Kind::Miner, Kind::Multisig, Kind::PaymentChannel];

    fn name(self) -> &'static str {
        match self {
            Kind::Account => "account",
            Kind::Miner => "storageminer",
            Kind::Multisig => "multisig",
            Kind::PaymentChannel => "paymentchannel",
        }
    }

    /// Mainnet-like mix: mostly accounts.
    fn random(rng: &mut Rng) -> Kind {
        match rng.below(100) {
            0..=69 => Kind::Account,
            70..=81 => Kind::Miner,
            82..=91 => Kind::Multisig,
            _ => Kind::PaymentChannel,
        }
    }
}

/// The builtin-actor code CIDs: raw-codec BLAKE2b CIDs of small stand-in "bundle" blocks.
pub(crate) fn code_blocks() -> [(Cid, Vec<u8>); 4] {
    Kind::ALL.map(|k| {
        let mut bytes = Vec::from(&b"\0asm\x01\0\0\0synth builtin actor: "[..]);
        bytes.extend_from_slice(k.name().as_bytes());
        (cbor::blake2b_cid(RAW, &bytes), bytes)
    })
}

#[derive(Clone, Debug)]
struct Actor {
    kind: Kind,
    /// Bumped on every rewrite; written into the head so every rewrite is a new object.
    version: u32,
    nonce: u64,
    balance: u64,
    head: Cid,
}

/// The live state tree and the CIDs of every node in it.
#[derive(Debug)]
pub(crate) struct State {
    actors: Vec<Actor>,
    /// `levels[0]` are the leaves; the last level holds exactly one node, the actors root.
    levels: Vec<Vec<Cid>>,
    fanout: usize,
    codes: [Cid; 4],
    info: Cid,
    root: Cid,
    /// Drawn from the seed; mixed into every head so chains of different seeds share no
    /// state object.
    salt: u64,
}

impl State {
    /// Builds and emits the genesis state of `actors` actors with inner nodes of `fanout`
    /// (a power of two, 8..=256) children.
    pub(crate) fn genesis(rng: &mut Rng, sink: &mut Sink, actors: usize, fanout: usize, emit_code: bool) -> State {
        let code = code_blocks();
        let codes = code.clone().map(|(cid, _)| cid);
        if emit_code {
            for (_, bytes) in code {
                sink.put_raw_new(bytes);
            }
        }
        // StateInfo0: an empty struct, stored once.
        let info = sink.put_new(alloc::vec![0x80]);
        let salt = rng.next_u64();
        let mut list = Vec::with_capacity(actors);
        for id in 0..actors {
            let kind = Kind::random(rng);
            let balance = rng.below(1 << 50);
            let head = write_head(rng, sink, salt, id as u64, kind, 0);
            list.push(Actor { kind, version: 0, nonce: 0, balance, head });
        }
        let mut state = State { actors: list, levels: Vec::new(), fanout, codes, info, root: info, salt };
        let leaves = actors.div_ceil(LEAF_ACTORS).max(1);
        let mut level: Vec<Cid> = (0..leaves).map(|j| state.write_leaf(sink, j)).collect();
        while level.len() > 1 {
            let inner = (0..level.len().div_ceil(fanout)).map(|j| write_inner(sink, &level, j, fanout)).collect();
            state.levels.push(level);
            level = inner;
        }
        state.levels.push(level);
        state.root = state.write_root(sink);
        state
    }

    /// The current `StateRoot` wrapper.
    pub(crate) fn root(&self) -> Cid {
        self.root
    }

    /// Number of actors.
    pub(crate) fn len(&self) -> usize {
        self.actors.len()
    }

    /// Rewrites about `count` random actors and the paths from their leaves to a new root,
    /// emitting only the rewritten objects. Returns the new root (the old one when nothing
    /// changed). Unchanged subtrees keep their CIDs.
    pub(crate) fn churn(&mut self, rng: &mut Rng, sink: &mut Sink, count: usize) -> Cid {
        let n = self.actors.len();
        if count == 0 || n == 0 {
            return self.root;
        }
        let mut changed: Vec<usize> = if count.saturating_mul(4) >= n {
            (0..n).filter(|_| rng.below(n as u64) < count as u64).collect()
        } else {
            let mut v: Vec<usize> = (0..count).map(|_| rng.below(n as u64) as usize).collect();
            v.sort_unstable();
            v.dedup();
            v
        };
        if changed.is_empty() {
            changed.push(rng.below(n as u64) as usize);
        }
        for &id in &changed {
            let a = &mut self.actors[id];
            a.version += 1;
            a.nonce += rng.below(3);
            a.balance = rng.below(1 << 50);
            a.head = write_head(rng, sink, self.salt, id as u64, a.kind, a.version);
        }
        // `changed` is sorted, so every derived index list is sorted and dedup() suffices.
        let mut dirty: Vec<usize> = changed.iter().map(|i| i / LEAF_ACTORS).collect();
        dirty.dedup();
        for &j in &dirty {
            self.levels[0][j] = self.write_leaf(sink, j);
        }
        for l in 1..self.levels.len() {
            dirty = dirty.iter().map(|j| j / self.fanout).collect();
            dirty.dedup();
            for &j in &dirty {
                let cid = write_inner(sink, &self.levels[l - 1], j, self.fanout);
                self.levels[l][j] = cid;
            }
        }
        self.root = self.write_root(sink);
        self.root
    }

    fn write_leaf(&self, sink: &mut Sink, leaf: usize) -> Cid {
        let start = leaf * LEAF_ACTORS;
        let end = self.actors.len().min(start + LEAF_ACTORS);
        let pointers = (end - start).div_ceil(BUCKET);
        let mut out = Vec::with_capacity(16 + (end - start) * 100);
        cbor::array(&mut out, 2);
        bitmap(&mut out, self.fanout, pointers, leaf);
        cbor::array(&mut out, pointers);
        for bucket_start in (start..end).step_by(BUCKET) {
            let bucket_end = end.min(bucket_start + BUCKET);
            cbor::array(&mut out, bucket_end - bucket_start);
            for id in bucket_start..bucket_end {
                let a = &self.actors[id];
                cbor::array(&mut out, 2);
                cbor::id_address(&mut out, id as u64);
                cbor::array(&mut out, 4);
                cbor::link(&mut out, &self.codes[a.kind as usize]);
                cbor::link(&mut out, &a.head);
                cbor::uint(&mut out, a.nonce);
                cbor::bigint(&mut out, u128::from(a.balance) * 1_000_000_000);
            }
        }
        sink.put_new(out)
    }

    fn write_root(&self, sink: &mut Sink) -> Cid {
        let top = self.levels.last().and_then(|l| l.first()).copied().unwrap_or(self.info);
        let mut out = Vec::with_capacity(90);
        cbor::array(&mut out, 3);
        cbor::uint(&mut out, STATE_TREE_VERSION);
        cbor::link(&mut out, &top);
        cbor::link(&mut out, &self.info);
        sink.put_new(out)
    }
}

/// Writes inner node `j` of the level above `below`.
fn write_inner(sink: &mut Sink, below: &[Cid], j: usize, fanout: usize) -> Cid {
    let children = &below[j * fanout..below.len().min((j + 1) * fanout)];
    let mut out = Vec::with_capacity(16 + children.len() * 42);
    cbor::array(&mut out, 2);
    bitmap(&mut out, fanout, children.len(), j);
    cbor::array(&mut out, children.len());
    for c in children {
        cbor::link(&mut out, c);
    }
    sink.put_new(out)
}

/// A HAMT bitmap of `fanout` bits (big-endian bytes) with `set` bits spread over the slots,
/// shifted by `node` so sibling nodes differ.
fn bitmap(out: &mut Vec<u8>, fanout: usize, set: usize, node: usize) {
    let nbytes = fanout / 8;
    let mut bits = [0u8; 32];
    let stride = fanout.checked_div(set).unwrap_or(1).max(1);
    for k in 0..set.min(fanout) {
        let pos = (k * stride + node % stride) % fanout;
        bits[nbytes - 1 - pos / 8] |= 1 << (pos % 8);
    }
    cbor::bytes(out, &bits[..nbytes]);
}

/// Writes and emits the state object of actor `id`. Every shape embeds `id` and `version`,
/// so two heads are never equal and no rewrite recreates an earlier object, and either the
/// seed's `salt` or fresh random bytes, so different seeds give different heads.
fn write_head(rng: &mut Rng, sink: &mut Sink, salt: u64, id: u64, kind: Kind, version: u32) -> Cid {
    let mut out = Vec::with_capacity(160);
    match kind {
        Kind::Account => {
            // [pubkey address (secp256k1: protocol 1, 20 bytes), version]
            cbor::array(&mut out, 2);
            let mut addr = [1u8; 21];
            for (chunk, k) in addr[1..].chunks_mut(8).zip(0u64..) {
                let w = mix(salt ^ id.wrapping_mul(4).wrapping_add(k)).to_le_bytes();
                chunk.copy_from_slice(&w[..chunk.len()]);
            }
            cbor::bytes(&mut out, &addr);
            cbor::uint(&mut out, u64::from(version));
        }
        Kind::Miner => {
            // [info (identity CID), version, sealed-sector commitment, vesting funds (raw
            //  block), locked funds]
            let mut vesting = Vec::with_capacity(48);
            vesting.extend_from_slice(&id.to_le_bytes());
            vesting.extend_from_slice(&version.to_le_bytes());
            rng.fill(&mut vesting, 36);
            let vesting = sink.put_raw_new(vesting);
            let mut info = Vec::with_capacity(24);
            cbor::array(&mut info, 2);
            cbor::id_address(&mut info, id);
            cbor::id_address(&mut info, id + 1);
            let mut comm_r = [0u8; 32];
            comm_r[..8].copy_from_slice(&rng.next_u64().to_le_bytes());
            comm_r[8..16].copy_from_slice(&rng.next_u64().to_le_bytes());
            comm_r[16..24].copy_from_slice(&rng.next_u64().to_le_bytes());
            comm_r[24..].copy_from_slice(&rng.next_u64().to_le_bytes());
            cbor::array(&mut out, 5);
            cbor::link(&mut out, &cbor::identity_cid(DAG_CBOR, &info));
            cbor::uint(&mut out, u64::from(version));
            cbor::link(&mut out, &Cid::new_v1(FIL_COMMITMENT_SEALED, cbor::wrap(POSEIDON_BLS12_381, &comm_r)));
            cbor::link(&mut out, &vesting);
            cbor::bigint(&mut out, u128::from(rng.next_u64()));
        }
        Kind::Multisig => {
            // [[signers], threshold, version, pending-txns (identity CID of a tiny raw value)]
            let signers = 2 + rng.below(2) as usize;
            cbor::array(&mut out, 4);
            cbor::array(&mut out, signers);
            for s in 0..signers {
                cbor::id_address(&mut out, id.wrapping_mul(3).wrapping_add(s as u64));
            }
            cbor::uint(&mut out, signers as u64 - 1);
            cbor::uint(&mut out, u64::from(version));
            let mut pending = [0u8; 20];
            pending[..8].copy_from_slice(&id.to_le_bytes());
            pending[8..12].copy_from_slice(&version.to_le_bytes());
            pending[12..].copy_from_slice(&salt.to_le_bytes());
            cbor::link(&mut out, &cbor::identity_cid(RAW, &pending));
        }
        Kind::PaymentChannel => {
            // [from, to, version, to-send]
            cbor::array(&mut out, 4);
            cbor::id_address(&mut out, id);
            cbor::id_address(&mut out, rng.below(1 << 20));
            cbor::uint(&mut out, u64::from(version));
            cbor::bigint(&mut out, u128::from(rng.next_u64()));
        }
    }
    sink.put_new(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn genesis(actors: usize) -> (State, Vec<(Cid, Vec<u8>)>) {
        let mut rng = Rng::new(1, 0);
        let mut sink = Sink::default();
        let s = State::genesis(&mut rng, &mut sink, actors, 16, true);
        (s, sink.take_epoch().0)
    }

    #[test]
    fn genesis_has_every_actor_and_node() {
        let (s, blocks) = genesis(1000);
        let leaves = 1000usize.div_ceil(LEAF_ACTORS);
        assert_eq!(s.levels[0].len(), leaves);
        assert_eq!(s.levels.iter().map(Vec::len).collect::<Vec<_>>(), [leaves, 6, 1]);
        let miners = s.actors.iter().filter(|a| a.kind == Kind::Miner).count();
        // code blocks + info + heads + vesting blocks + nodes + wrapper
        assert_eq!(blocks.len(), 4 + 1 + 1000 + miners + leaves + 6 + 1 + 1);
        assert_eq!(blocks.last().map(|b| b.0), Some(s.root()));
    }

    #[test]
    fn tiny_and_empty_states_have_a_single_node() {
        for n in [0, 1, LEAF_ACTORS] {
            let (s, _) = genesis(n);
            assert_eq!(s.levels.len(), 1);
            assert_eq!(s.levels[0].len(), 1);
        }
    }

    #[test]
    fn churn_rewrites_paths_only() {
        let (mut s, _) = genesis(5000);
        let before: Vec<Vec<Cid>> = s.levels.clone();
        let mut rng = Rng::new(9, 0);
        let mut sink = Sink::default();
        let old_root = s.root();
        let new_root = s.churn(&mut rng, &mut sink, 10);
        assert_ne!(new_root, old_root);
        let blocks = sink.take_epoch().0;
        let changed_leaves = s.levels[0].iter().zip(&before[0]).filter(|(a, b)| a != b).count();
        assert!((1..=10).contains(&changed_leaves));
        // heads (+ vesting) + leaves + path nodes + wrapper: far below the state size.
        assert!(blocks.len() >= 10 + changed_leaves + 2, "{}", blocks.len());
        assert!(blocks.len() <= 20 + changed_leaves + 10 + 2, "{}", blocks.len());
        assert_eq!(s.levels.last().map(Vec::len), Some(1));
        assert_ne!(s.levels.last(), before.last(), "the actors root changed");
        let unchanged = s.levels[0].iter().zip(&before[0]).filter(|(a, b)| a == b).count();
        assert_eq!(unchanged + changed_leaves, before[0].len());
    }

    #[test]
    fn zero_churn_keeps_the_root() {
        let (mut s, _) = genesis(100);
        let mut sink = Sink::default();
        let root = s.root();
        assert_eq!(s.churn(&mut Rng::new(1, 1), &mut sink, 0), root);
        assert!(sink.take_epoch().0.is_empty());
    }

    #[test]
    fn bitmaps_have_the_requested_bits() {
        for (fanout, set) in [(16, 1), (16, 16), (32, 4), (32, 7)] {
            let mut out = Vec::new();
            bitmap(&mut out, fanout, set, 5);
            let ones: u32 = out[1..].iter().map(|b| b.count_ones()).sum();
            assert_eq!(out.len(), 1 + fanout / 8);
            assert_eq!(ones as usize, set);
        }
    }
}
