//! Seeded synthetic Filecoin-like chain generator.
//!
//! [`ChainGen`] produces, epoch by epoch, the blocks a Filecoin node stores: 16-field headers,
//! the parent tipset's key object, messages with their AMTs and TxMeta, receipt AMTs, and a
//! HAMT-like state tree that is rewritten path-to-root for a few actors per epoch, so later
//! epochs share almost all state with earlier ones. The output depends only on
//! [`SynthConfig`]: the same seed gives the same blocks, byte for byte, on every target.
//!
//! Contract of every [`Epoch`]: `blocks` holds only blocks not emitted before (no block twice,
//! in one epoch or across epochs), children before parents, and every link in them resolves to
//! a block of this or an earlier epoch, except these, by design:
//! - actor code CIDs ([`ChainGen::code_cids`]) when [`SynthConfig::dangling_code_links`] is
//!   set, as in real state, whose code lives in an actor bundle the chain store lacks;
//! - unitary CIDs inside actor states: sealed-sector commitments (codec 0xf102) and
//!   identity-hash CIDs, which are never blocks.
//!
//! All blocks are DAG-CBOR with BLAKE2b-256 CIDv1, except raw (0x55) leaf blocks in the state
//! (miner vesting tables, and the code blocks when they are emitted).

mod amt;
mod cbor;
mod chain;
pub(crate) mod rng;
mod sink;
mod state;

use alloc::vec::Vec;
use cid::Cid;

use self::rng::Rng;
use self::sink::Sink;
use self::state::State;

/// Stream labels: each use of randomness that callers may want to predict gets its own stream.
const MAIN_STREAM: u64 = 1;
const NULL_ROUND_STREAM: u64 = 2;
/// Miner ids are drawn from `MINER_BASE..MINER_BASE + pool`.
const MINER_BASE: u64 = 1000;

/// Generator settings.
#[derive(Clone, Debug)]
pub struct SynthConfig {
    /// Seed; the same seed yields the same chain, byte for byte.
    pub seed: u64,
    /// Actors in the genesis state tree. Each brings one state object (two for miners) plus
    /// its share of tree nodes (one leaf per 12 actors).
    pub state_objects: usize,
    /// Percent of actors rewritten each epoch (at least one when non-zero).
    pub churn_percent: u32,
    /// Most blocks per tipset (mainnet sees 1..=5; 0 counts as 1); each tipset has a uniformly
    /// drawn 1..=this many blocks, each from a distinct miner.
    pub max_blocks_per_tipset: usize,
    /// Message slots per block (some slots reuse a message of an earlier block in the tipset).
    pub messages_per_block: usize,
    /// Genesis timestamp, Unix seconds. See [`SynthConfig::with_head_at`].
    pub genesis_timestamp: u64,
    /// Seconds between epochs.
    pub block_time_secs: u64,
    /// Per-mille chance that a height is a null round (no tipset); values above 999 count as
    /// 999.
    pub null_round_per_mille: u32,
    /// Whether actor code CIDs dangle (the real-chain case). When false, the generator
    /// emits the code blocks (raw) at genesis and every non-unitary link resolves.
    pub dangling_code_links: bool,
    /// Log2 of the state tree's inner-node fan-out (4 = 16, 5 = 32), clamped to 3..=8.
    pub hamt_bit_width: u32,
}

impl Default for SynthConfig {
    fn default() -> Self {
        Self {
            seed: 1,
            state_objects: 2000,
            churn_percent: 2,
            max_blocks_per_tipset: 3,
            messages_per_block: 4,
            genesis_timestamp: 1_600_000_000,
            block_time_secs: 30,
            null_round_per_mille: 50,
            dangling_code_links: true,
            hamt_bit_width: 5,
        }
    }
}

impl SynthConfig {
    /// Height of the head after `epochs` calls to [`ChainGen::next_epoch`] (`None` for 0).
    /// Costs one random draw per height, no block is built.
    pub fn head_height_after(&self, epochs: u64) -> Option<i64> {
        let mut rng = Rng::new(self.seed, NULL_ROUND_STREAM);
        let mut height = 0;
        for _ in 1..epochs.max(1) {
            height = next_height(height, &mut rng, self.null_round_per_mille);
        }
        (epochs > 0).then_some(height)
    }

    /// This configuration with `genesis_timestamp` chosen so the head after `epochs` epochs
    /// has timestamp `now_secs` (or as near as a non-negative genesis allows).
    pub fn with_head_at(mut self, now_secs: u64, epochs: u64) -> Self {
        let height = self.head_height_after(epochs).unwrap_or(0);
        self.genesis_timestamp = genesis_timestamp_for(now_secs, height, self.block_time_secs);
        self
    }
}

/// The genesis timestamp that puts height `head_height` at `now_secs` (saturating at 0).
pub fn genesis_timestamp_for(now_secs: u64, head_height: i64, block_time_secs: u64) -> u64 {
    now_secs.saturating_sub(head_height.unsigned_abs().saturating_mul(block_time_secs))
}

/// The height after `prev`: one more, plus one per null round.
fn next_height(prev: i64, rng: &mut Rng, null_per_mille: u32) -> i64 {
    let mut h = prev + 1;
    while rng.per_mille(null_per_mille.min(999)) {
        h += 1;
    }
    h
}

/// One generated tipset and every block it brought.
#[derive(Clone, Debug)]
pub struct Epoch {
    /// Height of the tipset.
    pub height: i64,
    /// Header CIDs of the tipset.
    pub tipset: Vec<Cid>,
    /// Timestamp of the tipset's headers.
    pub timestamp: u64,
    /// Its blocks (headers, tipset-key objects, messages, receipts, state), children first:
    /// every link of a block names a block listed before it here or in an earlier epoch,
    /// except the dangling-by-design links of the module contract.
    pub blocks: Vec<(Cid, Vec<u8>)>,
    /// The tipset's ParentStateRoot (the `StateRoot` wrapper).
    pub state_root: Cid,
    /// The parent tipset's key object, emitted in this epoch (`None` at genesis).
    pub parent_key: Option<Cid>,
    /// Of `blocks`, how many an earlier epoch emitted too, and their bytes: the empty message
    /// AMT and TxMeta, which a node writes again whenever it builds them.
    pub repeated: (usize, u64),
}

/// A deterministic chain generator. The genesis state is built on the first
/// [`next_epoch`](ChainGen::next_epoch), so `new` is cheap.
#[derive(Debug)]
pub struct ChainGen {
    cfg: SynthConfig,
    rng: Rng,
    null_rng: Rng,
    sink: Sink,
    state: Option<State>,
    head: Vec<Cid>,
    height: i64,
    weight: u128,
    /// Distinct messages of the head tipset: the next tipset's receipt count.
    head_messages: usize,
    message_serial: u64,
    receipt_serial: u64,
    epochs: u64,
    codes: [Cid; 4],
}

impl ChainGen {
    /// A generator that has produced nothing yet.
    pub fn new(cfg: SynthConfig) -> Self {
        Self {
            rng: Rng::new(cfg.seed, MAIN_STREAM),
            null_rng: Rng::new(cfg.seed, NULL_ROUND_STREAM),
            cfg,
            sink: Sink::default(),
            state: None,
            head: Vec::new(),
            height: 0,
            weight: 0,
            head_messages: 0,
            message_serial: 0,
            receipt_serial: 0,
            epochs: 0,
            codes: state::code_blocks().map(|(cid, _)| cid),
        }
    }

    /// The settings.
    pub fn config(&self) -> &SynthConfig {
        &self.cfg
    }

    /// Produces the next tipset (genesis first).
    pub fn next_epoch(&mut self) -> Epoch {
        let epoch = match self.state.take() {
            None => self.genesis(),
            Some(state) => self.child(state),
        };
        self.epochs += 1;
        epoch
    }

    fn genesis(&mut self) -> Epoch {
        let fanout = 1usize << self.cfg.hamt_bit_width.clamp(3, 8);
        let state = State::genesis(
            &mut self.rng,
            &mut self.sink,
            self.cfg.state_objects,
            fanout,
            !self.cfg.dangling_code_links,
        );
        let state_root = state.root();
        let receipts = chain::receipts(&mut self.rng, &mut self.sink, &mut self.receipt_serial, 0);
        let messages = chain::txmeta(&mut self.sink, &[], &[]);
        let timestamp = self.cfg.genesis_timestamp;
        let links = chain::HeaderLinks {
            miner: 0,
            parents: &[],
            parent_weight: 0,
            height: 0,
            parent_state_root: state_root,
            parent_message_receipts: receipts,
            messages,
            timestamp,
            parent_base_fee: 100,
        };
        let tipset = alloc::vec![self.sink.put_new(chain::header(&mut self.rng, &links))];
        self.finish(state, tipset, 0, timestamp, None, 0)
    }

    fn child(&mut self, mut state: State) -> Epoch {
        let height = next_height(self.height, &mut self.null_rng, self.cfg.null_round_per_mille);
        let churn = (state.len() * self.cfg.churn_percent as usize).div_ceil(100);
        let state_root = state.churn(&mut self.rng, &mut self.sink, churn);
        let receipts = chain::receipts(&mut self.rng, &mut self.sink, &mut self.receipt_serial, self.head_messages);
        let (key_cid, key_bytes) = crate::header::tipset_key(&self.head);
        self.sink.put_dedup(key_bytes);

        let blocks = 1 + self.rng.below(self.cfg.max_blocks_per_tipset.max(1) as u64) as usize;
        let actors = state.len() as u64;
        let msgs = chain::tipset_messages(
            &mut self.rng,
            &mut self.sink,
            &mut self.message_serial,
            blocks,
            self.cfg.messages_per_block,
            actors,
        );
        let timestamp =
            self.cfg.genesis_timestamp.saturating_add(height.unsigned_abs().saturating_mul(self.cfg.block_time_secs));
        let parent_weight = self.weight;
        let parent_base_fee = 100 + u128::from(self.rng.below(1_000));
        let miners = miners(&mut self.rng, blocks);
        let parents = core::mem::take(&mut self.head);
        let tipset = msgs
            .txmetas
            .iter()
            .zip(&miners)
            .map(|(&messages, &miner)| {
                let links = chain::HeaderLinks {
                    miner,
                    parents: &parents,
                    parent_weight,
                    height,
                    parent_state_root: state_root,
                    parent_message_receipts: receipts,
                    messages,
                    timestamp,
                    parent_base_fee,
                };
                self.sink.put_new(chain::header(&mut self.rng, &links))
            })
            .collect();
        self.finish(state, tipset, height, timestamp, Some(key_cid), msgs.unique)
    }

    fn finish(
        &mut self,
        state: State,
        tipset: Vec<Cid>,
        height: i64,
        timestamp: u64,
        parent_key: Option<Cid>,
        messages: usize,
    ) -> Epoch {
        let state_root = state.root();
        self.state = Some(state);
        self.head.clone_from(&tipset);
        self.height = height;
        self.weight += 1_000 * tipset.len() as u128;
        self.head_messages = messages;
        let (blocks, repeated) = self.sink.take_epoch();
        Epoch { height, tipset, timestamp, blocks, state_root, parent_key, repeated }
    }

    /// Epochs produced so far.
    pub fn epochs(&self) -> u64 {
        self.epochs
    }

    /// The last tipset produced (empty before genesis).
    pub fn head(&self) -> &[Cid] {
        &self.head
    }

    /// Blocks emitted so far, all epochs.
    pub fn emitted_blocks(&self) -> u64 {
        self.sink.total_blocks()
    }

    /// Bytes of the blocks emitted so far, all epochs.
    pub fn emitted_bytes(&self) -> u64 {
        self.sink.total_bytes()
    }

    /// The actor code CIDs state records link to, whether or not they are emitted.
    pub fn code_cids(&self) -> &[Cid] {
        &self.codes
    }

    /// True for the links that may dangle by design under this configuration: code CIDs when
    /// `dangling_code_links` is set, and unitary CIDs (commitments, identity hashes).
    pub fn may_dangle(&self, cid: &Cid) -> bool {
        crate::key::is_unitary(cid) || (self.cfg.dangling_code_links && self.code_cids().contains(cid))
    }
}

impl Iterator for ChainGen {
    type Item = Epoch;

    /// Never ends: the chain grows for as long as it is polled.
    fn next(&mut self) -> Option<Epoch> {
        Some(self.next_epoch())
    }
}

/// `blocks` distinct miner ids for one tipset.
fn miners(rng: &mut Rng, blocks: usize) -> Vec<u64> {
    let pool = (4 * blocks as u64).max(16);
    let mut out: Vec<u64> = Vec::with_capacity(blocks);
    while out.len() < blocks {
        let m = MINER_BASE + rng.below(pool);
        if !out.contains(&m) {
            out.push(m);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small() -> SynthConfig {
        SynthConfig { state_objects: 300, null_round_per_mille: 200, ..SynthConfig::default() }
    }

    #[test]
    fn head_height_prediction_matches_generation() {
        let cfg = small();
        let mut gen = ChainGen::new(cfg.clone());
        for n in 1..=40u64 {
            let e = gen.next_epoch();
            assert_eq!(cfg.head_height_after(n), Some(e.height));
        }
        assert_eq!(cfg.head_height_after(0), None);
    }

    #[test]
    fn with_head_at_lands_the_head_on_now() {
        let cfg = small().with_head_at(1_700_000_000, 25);
        let mut gen = ChainGen::new(cfg);
        let last = gen.by_ref().take(25).last().map(|e| e.timestamp);
        assert_eq!(last, Some(1_700_000_000));
        assert_eq!(genesis_timestamp_for(10, 5, 30), 0);
    }

    #[test]
    fn genesis_is_one_block_at_height_zero() {
        let mut gen = ChainGen::new(small());
        let g = gen.next_epoch();
        assert_eq!((g.height, g.tipset.len(), g.parent_key), (0, 1, None));
        assert_eq!(g.timestamp, small().genesis_timestamp);
        assert_eq!(g.blocks.last().map(|b| b.0), Some(g.tipset[0]));
        let e = gen.next_epoch();
        assert!(e.height > 0);
        assert_eq!(e.parent_key, Some(crate::header::tipset_key(&g.tipset).0));
        assert_eq!(gen.epochs(), 2);
        assert_eq!(gen.head(), &e.tipset[..]);
    }

    #[test]
    fn counters_add_up() {
        let mut gen = ChainGen::new(small());
        let (mut blocks, mut bytes) = (0u64, 0u64);
        for e in gen.by_ref().take(20) {
            blocks += e.blocks.len() as u64;
            bytes += e.blocks.iter().map(|b| b.1.len() as u64).sum::<u64>();
        }
        assert_eq!(gen.emitted_blocks(), blocks);
        assert_eq!(gen.emitted_bytes(), bytes);
    }

    #[test]
    fn code_links_dangle_only_when_asked() {
        let gen = ChainGen::new(SynthConfig { dangling_code_links: true, ..small() });
        let code = gen.code_cids()[0];
        assert!(gen.may_dangle(&code));
        let mut gen = ChainGen::new(SynthConfig { dangling_code_links: false, ..small() });
        assert!(!gen.may_dangle(&code));
        let g = gen.next_epoch();
        assert!(gen.code_cids().iter().all(|c| g.blocks.iter().any(|b| b.0 == *c)));
    }
}
