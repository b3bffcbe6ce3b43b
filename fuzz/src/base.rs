//! Small stores with a head, built once per target and copied for every input.

use splitstore_conformance::executor::block_on;
use splitstore_core::{
    mem::{ManualClock, MemKv},
    synth::{ChainGen, SynthConfig},
    Config, SplitStore,
};

/// The hot store of a store under `config` after `epochs` epochs of the chain `synth`
/// describes were written and applied as heads.
pub fn chain_store(config: Config, synth: SynthConfig, epochs: usize) -> MemKv {
    let hot = MemKv::new();
    let store = block_on(SplitStore::open(hot.clone(), MemKv::new(), ManualClock::new(0), config)).expect("open");
    let mut chain = ChainGen::new(synth);
    for _ in 0..epochs {
        let e = chain.next_epoch();
        block_on(store.put_many(e.blocks)).expect("put");
        drop(block_on(store.head_change(&[], &[e.tipset])).expect("head"));
    }
    hot
}
