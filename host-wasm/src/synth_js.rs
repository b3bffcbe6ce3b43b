//! `SyntheticChain`: the core's seeded Filecoin-like chain generator, for pages and tests.
//!
//! Each `nextEpoch()` returns one tipset and every block it brought (never a block twice, so
//! writing them all and applying the tipset keeps a store complete). The chain depends only on
//! its settings: the same seed gives the same blocks, so a page can persist `(settings,
//! epochs)` and `skip(epochs)` after a reload to continue the same chain.

use js_sys::{Array, Object, Reflect, Uint8Array};
use splitstore_core::{
    car::{encode_header_v1, encode_section},
    synth::{ChainGen, Epoch, SynthConfig},
};
use wasm_bindgen::prelude::*;

use crate::js::object;

#[wasm_bindgen(typescript_custom_section)]
const TS_TYPES: &'static str = r#"
/** Settings of a synthetic chain; every field is optional. */
export interface SyntheticChainConfig {
  /** Same seed, same chain (an integer below 2^53). Default 1. */
  seed?: number;
  /** Actors in the genesis state tree. Default 2000. */
  stateObjects?: number;
  /** Percent of actors rewritten per epoch. Default 2. */
  churnPercent?: number;
  /** Most blocks per tipset (each tipset has 1..=this many). Default 3. */
  maxBlocksPerTipset?: number;
  /** Message slots per block. Default 4. */
  messagesPerBlock?: number;
  /** Genesis timestamp, Unix seconds; height h has `genesisTimestamp + h * blockTimeSecs`. */
  genesisTimestamp?: number;
  /** Seconds between heights. Default 30. */
  blockTimeSecs?: number;
  /** Per-mille chance that a height is a null round. Default 50. */
  nullRoundPerMille?: number;
  /** Actor code CIDs dangle, as in real state (default true). */
  danglingCodeLinks?: boolean;
}

/** One generated tipset and the blocks it brought, children before parents. */
export interface SyntheticEpoch {
  height: number;
  /** Header CIDs of the tipset: pass to `headChange`. */
  tipset: string[];
  timestamp: number;
  /**
   * `[cid, bytes]` pairs: the epoch's new blocks, and the empty message AMT and TxMeta where it
   * builds them, which a node writes again each time (an earlier epoch may have emitted them).
   */
  blocks: [string, Uint8Array][];
  stateRoot: string;
  /** The parent tipset's key object (absent at genesis). */
  parentKey?: string;
}

/** One generated tipset as a CARv1 whose roots are the tipset: pass `car` to `importCar`. */
export interface SyntheticEpochCar {
  height: number;
  tipset: string[];
  timestamp: number;
  /** Blocks in the CAR. */
  blocks: number;
  /** Data bytes of those blocks. */
  bytes: number;
  /** Of those blocks, the ones no earlier epoch emitted. */
  newBlocks: number;
  /** Data bytes of those. */
  newBytes: number;
  car: Uint8Array;
}
"#;

/// A deterministic, never-ending synthetic chain.
#[wasm_bindgen]
#[derive(Debug)]
pub struct SyntheticChain {
    gen: ChainGen,
}

/// Reads an optional non-negative integer setting.
fn uint(config: &JsValue, key: &str) -> Result<Option<u64>, JsError> {
    let v = Reflect::get(config, &JsValue::from_str(key))
        .map_err(|_| JsError::new(&format!("SyntheticChain: cannot read {key}")))?;
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    match v.as_f64() {
        Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= 9_007_199_254_740_991.0 => Ok(Some(n as u64)),
        _ => Err(JsError::new(&format!("SyntheticChain: {key} must be a non-negative integer"))),
    }
}

fn small(config: &JsValue, key: &str) -> Result<Option<u32>, JsError> {
    uint(config, key)?
        .map(|n| u32::try_from(n).map_err(|_| JsError::new(&format!("SyntheticChain: {key} is too large"))))
        .transpose()
}

fn parse_config(config: &JsValue) -> Result<SynthConfig, JsError> {
    let mut c = SynthConfig::default();
    if config.is_undefined() || config.is_null() {
        return Ok(c);
    }
    if !config.is_object() {
        return Err(JsError::new("SyntheticChain: settings must be an object"));
    }
    if let Some(v) = uint(config, "seed")? {
        c.seed = v;
    }
    if let Some(v) = small(config, "stateObjects")? {
        c.state_objects = v as usize;
    }
    if let Some(v) = small(config, "churnPercent")? {
        c.churn_percent = v.min(100);
    }
    if let Some(v) = small(config, "maxBlocksPerTipset")? {
        c.max_blocks_per_tipset = v as usize;
    }
    if let Some(v) = small(config, "messagesPerBlock")? {
        c.messages_per_block = v as usize;
    }
    if let Some(v) = uint(config, "genesisTimestamp")? {
        c.genesis_timestamp = v;
    }
    if let Some(v) = uint(config, "blockTimeSecs")? {
        c.block_time_secs = v;
    }
    if let Some(v) = small(config, "nullRoundPerMille")? {
        c.null_round_per_mille = v;
    }
    let dangling = Reflect::get(config, &JsValue::from_str("danglingCodeLinks"))
        .map_err(|_| JsError::new("SyntheticChain: cannot read danglingCodeLinks"))?;
    if let Some(b) = dangling.as_bool() {
        c.dangling_code_links = b;
    }
    Ok(c)
}

fn epoch_to_js(e: Epoch) -> Object {
    let tipset: Array = e.tipset.iter().map(|c| JsValue::from_str(&c.to_string())).collect();
    let blocks: Array = e
        .blocks
        .iter()
        .map(|(cid, bytes)| {
            let pair = Array::new_with_length(2);
            pair.set(0, JsValue::from_str(&cid.to_string()));
            pair.set(1, Uint8Array::from(bytes.as_slice()).into());
            JsValue::from(pair)
        })
        .collect();
    let mut props = vec![
        ("height", JsValue::from_f64(e.height as f64)),
        ("tipset", tipset.into()),
        ("timestamp", JsValue::from_f64(e.timestamp as f64)),
        ("blocks", blocks.into()),
        ("stateRoot", JsValue::from_str(&e.state_root.to_string())),
    ];
    if let Some(k) = e.parent_key {
        props.push(("parentKey", JsValue::from_str(&k.to_string())));
    }
    object(&props)
}

#[wasm_bindgen]
impl SyntheticChain {
    /// A chain that has produced nothing yet (genesis comes with the first `nextEpoch`).
    #[wasm_bindgen(constructor)]
    pub fn new(
        #[wasm_bindgen(unchecked_param_type = "SyntheticChainConfig | undefined")] config: JsValue,
    ) -> Result<SyntheticChain, JsError> {
        Ok(Self { gen: ChainGen::new(parse_config(&config)?) })
    }

    /// Produces the next tipset and its new blocks.
    #[wasm_bindgen(js_name = nextEpoch, unchecked_return_type = "SyntheticEpoch")]
    pub fn next_epoch(&mut self) -> JsValue {
        epoch_to_js(self.gen.next_epoch()).into()
    }

    /// Produces the next tipset as a CARv1 rooted at the tipset's headers, with every new
    /// block in generation order (children first): importing it stores the blocks in one
    /// batch and makes the tipset the head.
    #[wasm_bindgen(js_name = nextEpochCar, unchecked_return_type = "SyntheticEpochCar")]
    pub fn next_epoch_car(&mut self) -> JsValue {
        let e = self.gen.next_epoch();
        let bytes: usize = e.blocks.iter().map(|(_, b)| b.len()).sum();
        let mut car = Vec::with_capacity(bytes + 64 * e.blocks.len() + 128);
        encode_header_v1(&e.tipset, &mut car);
        for (cid, data) in &e.blocks {
            encode_section(cid, data, &mut car);
        }
        let tipset: Array = e.tipset.iter().map(|c| JsValue::from_str(&c.to_string())).collect();
        object(&[
            ("height", JsValue::from_f64(e.height as f64)),
            ("tipset", tipset.into()),
            ("timestamp", JsValue::from_f64(e.timestamp as f64)),
            ("blocks", JsValue::from_f64(e.blocks.len() as f64)),
            ("bytes", JsValue::from_f64(bytes as f64)),
            ("newBlocks", JsValue::from_f64((e.blocks.len() - e.repeated.0) as f64)),
            ("newBytes", JsValue::from_f64((bytes as u64 - e.repeated.1) as f64)),
            ("car", Uint8Array::from(car.as_slice()).into()),
        ])
        .into()
    }

    /// Produces `n` epochs without returning them (to continue a chain whose first `n`
    /// epochs were written earlier). Returns the height reached, or `undefined` if none.
    pub fn skip(&mut self, n: u32) -> Option<f64> {
        let mut height = None;
        for _ in 0..n {
            height = Some(self.gen.next_epoch().height as f64);
        }
        height
    }

    /// Epochs produced so far.
    #[wasm_bindgen(getter)]
    pub fn epochs(&self) -> f64 {
        self.gen.epochs() as f64
    }

    /// Blocks produced so far, all epochs.
    #[wasm_bindgen(getter, js_name = emittedBlocks)]
    pub fn emitted_blocks(&self) -> f64 {
        self.gen.emitted_blocks() as f64
    }

    /// Bytes of the blocks produced so far, all epochs.
    #[wasm_bindgen(getter, js_name = emittedBytes)]
    pub fn emitted_bytes(&self) -> f64 {
        self.gen.emitted_bytes() as f64
    }
}
