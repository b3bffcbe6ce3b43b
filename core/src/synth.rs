//! Seeded synthetic Filecoin-like chain generator. (Being written: signatures are final.)

use alloc::vec::Vec;
use cid::Cid;

/// Generator settings.
#[derive(Clone, Debug)]
pub struct SynthConfig {
    /// Seed; the same seed yields the same chain, byte for byte.
    pub seed: u64,
    /// Objects in the genesis state tree.
    pub state_objects: usize,
    /// Percent of state objects rewritten each epoch.
    pub churn_percent: u32,
    /// Most blocks per tipset (1..=5).
    pub max_blocks_per_tipset: usize,
    /// Messages per block.
    pub messages_per_block: usize,
    /// Genesis timestamp, Unix seconds.
    pub genesis_timestamp: u64,
    /// Seconds between epochs.
    pub block_time_secs: u64,
    /// Per-mille chance that an epoch is a null round (no tipset).
    pub null_round_per_mille: u32,
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
        }
    }
}

/// One generated tipset and every new block it brought.
#[derive(Clone, Debug)]
pub struct Epoch {
    /// Height of the tipset.
    pub height: i64,
    /// Header CIDs of the tipset.
    pub tipset: Vec<Cid>,
    /// Timestamp of the tipset's headers.
    pub timestamp: u64,
    /// New blocks (headers, tipset-key objects, messages, receipts, state), children first.
    pub blocks: Vec<(Cid, Vec<u8>)>,
}

/// A deterministic chain generator.
#[derive(Debug)]
pub struct ChainGen {
    cfg: SynthConfig,
}

impl ChainGen {
    /// A generator that has produced nothing yet.
    pub fn new(cfg: SynthConfig) -> Self {
        Self { cfg }
    }

    /// The settings.
    pub fn config(&self) -> &SynthConfig {
        &self.cfg
    }

    /// Produces the next tipset (genesis first).
    pub fn next_epoch(&mut self) -> Epoch {
        Epoch { height: 0, tipset: Vec::new(), timestamp: self.cfg.genesis_timestamp, blocks: Vec::new() }
    }
}
