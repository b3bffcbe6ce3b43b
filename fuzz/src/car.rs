//! Target `car`: the CAR v1/v2 decoders and the store's import path.
//!
//! Input layout: `[flags, seed0, seed1, seed2, car bytes...]`. `flags` picks the decoder
//! limits (bit 0: hashes not verified, bit 1: a zero-length section ends the data, bit 2:
//! tiny limits), the import path (bit 7: `SplitStore::import_car_with` in one call, else an
//! [`Importer`] fed in chunks) and its head policy (bits 5–6: extend, apply, keep, extend);
//! the seed picks the chunk sizes.
//!
//! Properties:
//! - the push decoder told the stream length, fed in any chunks, yields exactly what the
//!   one-shot reader yields: the same header, the same blocks at the same offsets, the same
//!   error; `read_car` agrees with `CarBlocks`;
//! - without the stream length, it accepts every file the one-shot reader accepts, with the
//!   same blocks, and otherwise agrees on the blocks both produced;
//! - after an error, every later call returns that error;
//! - importing into a store that has a head: a failed import leaves the head unchanged and
//!   `check()` clean; a successful one stored every block byte for byte, and moved the head
//!   only to the file's roots, and only as its policy allows (never under `keep`, never back
//!   or sideways under `extend`); a compaction the import decides runs without panicking;
//! - under `keep`, a compaction after the import loses nothing the base head needs.

use std::sync::OnceLock;

use splitstore_conformance::executor::block_on;
use splitstore_core::{
    car::{read_car, CarBlocks, CarDecoder, CarError, CarHeader, CarLimits, Step},
    import::{HeadPolicy, ImportError, Importer},
    key::is_identity,
    mem::{ManualClock, MemKv},
    synth::SynthConfig,
    Cid, Config, NoProgress, SplitStore,
};

use super::{
    base::chain_store,
    input::{Bytes, Chunks},
};

/// What one decoder made of a file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The header, once decoded.
    pub header: Option<CarHeader>,
    /// Blocks in order, with their stream offsets.
    pub blocks: Vec<(Cid, Vec<u8>, u64)>,
    /// The first error, if any.
    pub error: Option<CarError>,
}

/// The decoder limits `flags` selects.
pub fn limits(flags: u8) -> CarLimits {
    let base =
        CarLimits { verify_hashes: flags & 1 == 0, zero_length_section_as_eof: flags & 2 != 0, ..CarLimits::default() };
    if flags & 4 == 0 {
        return base;
    }
    CarLimits { max_header_len: 96, max_section_len: 300, max_roots: 2, ..base }
}

/// Reads `car` with the one-shot slice reader.
pub fn one_shot(car: &[u8], limits: CarLimits) -> Outcome {
    let mut out = Outcome::default();
    let mut it = match CarBlocks::new(car, limits) {
        Ok(it) => it,
        Err(e) => {
            out.error = Some(e);
            return out;
        }
    };
    out.header = Some(it.header().clone());
    for b in it.by_ref() {
        match b {
            Ok(b) => out.blocks.push((b.cid, b.data.to_vec(), b.offset)),
            Err(e) => {
                out.error = Some(e);
                break;
            }
        }
    }
    out
}

/// Feeds `car` to the push decoder in the chunks `seed` picks, announcing the total length
/// when `total` is set.
pub fn push(car: &[u8], limits: CarLimits, seed: u64, total: bool) -> Outcome {
    let mut dec = CarDecoder::new(limits);
    if total {
        dec = dec.with_total_len(car.len() as u64);
    }
    let mut out = Outcome::default();
    let mut fed = 0u64;
    'chunks: for chunk in Chunks::new(seed).split(car) {
        fed += chunk.len() as u64;
        let mut rest = chunk;
        loop {
            let step = match dec.decode(rest) {
                Ok((used, step)) => {
                    assert!(used <= rest.len(), "decode consumed more than it was given");
                    rest = &rest[used..];
                    match step {
                        Step::NeedMore => None,
                        Step::Header => Some(None),
                        Step::Block(b) => Some(Some((b.cid, b.data.to_vec(), b.offset))),
                        Step::End => break 'chunks,
                    }
                }
                Err(e) => {
                    assert_sticky(&mut dec, &e);
                    out.error = Some(e);
                    return out;
                }
            };
            assert!(dec.consumed() <= fed, "the decoder claims more bytes than it was fed");
            match step {
                None => {
                    assert!(rest.is_empty(), "NeedMore left input unconsumed");
                    break;
                }
                Some(None) => out.header = dec.header().cloned(),
                Some(Some(block)) => out.blocks.push(block),
            }
        }
    }
    if let Err(e) = dec.finish() {
        assert_sticky(&mut dec, &e);
        out.error = Some(e);
    }
    out
}

/// After an error, every call returns it again.
fn assert_sticky(dec: &mut CarDecoder, e: &CarError) {
    assert_eq!(dec.decode(&[0x01, 0x02]).map(|(n, _)| n).as_ref(), Err(e), "decode forgot its error");
    assert_eq!(dec.finish().as_ref(), Err(e), "finish forgot the decoder's error");
}

/// Runs every property on `data`; panics on a violation.
pub fn check(data: &[u8]) {
    let mut input = Bytes::new(data);
    let flags = input.u8();
    let seed = u64::from(input.u8()) | u64::from(input.u8()) << 8 | u64::from(input.u8()) << 16;
    let car = input.rest();
    let lim = limits(flags);

    let reference = one_shot(car, lim);
    match read_car(car, lim) {
        Ok((h, blocks)) => {
            assert_eq!(reference.error, None, "read_car accepts what CarBlocks rejects");
            assert_eq!(Some(h), reference.header);
            let plain: Vec<_> = reference.blocks.iter().map(|(c, d, _)| (*c, d.clone())).collect();
            assert_eq!(blocks, plain, "read_car and CarBlocks return different blocks");
        }
        Err(e) => assert_eq!(Some(e), reference.error, "read_car and CarBlocks fail differently"),
    }
    for (cid, data, offset) in &reference.blocks {
        super::links::assert_round_trips(cid);
        assert!(*offset < car.len() as u64 && data.len() < car.len(), "block outside the file");
    }

    let exact = push(car, lim, seed, true);
    assert_eq!(exact, reference, "the push decoder (length known) and the one-shot reader disagree");

    let open = push(car, lim, seed, false);
    if reference.error.is_none() {
        assert_eq!(open, reference, "the push decoder (length unknown) and the one-shot reader disagree");
    } else {
        let n = open.blocks.len().min(reference.blocks.len());
        assert_eq!(open.blocks[..n], reference.blocks[..n], "the decoders produced different blocks");
        if let (Some(a), Some(b)) = (&open.header, &reference.header) {
            assert_eq!(a, b, "the decoders read different headers");
        }
    }

    let defaults = if lim == CarLimits::default() { reference } else { one_shot(car, CarLimits::default()) };
    let policy =
        [HeadPolicy::Extend, HeadPolicy::Apply, HeadPolicy::Keep, HeadPolicy::Extend][usize::from(flags >> 5 & 3)];
    import(car, flags & 0x80 != 0, policy, seed, &defaults);
}

/// A small store with a head: a few epochs of a synthetic chain, built once and copied.
fn base() -> &'static MemKv {
    static BASE: OnceLock<MemKv> = OnceLock::new();
    BASE.get_or_init(|| {
        let synth = SynthConfig { seed: 7, state_objects: 24, messages_per_block: 2, ..SynthConfig::default() };
        chain_store(config(), synth, 4)
    })
}

fn config() -> Config {
    Config { sync_gap_secs: None, finality: 10, ..Config::default() }
}

/// Imports `car` into a copy of the base store and checks the outcome against `expected`
/// (the one-shot reader's view with the import's limits).
pub fn import(car: &[u8], one_call: bool, policy: HeadPolicy, seed: u64, expected: &Outcome) {
    let store = block_on(SplitStore::open(base().crash_image(usize::MAX), MemKv::new(), ManualClock::new(0), config()))
        .expect("open a copy of the base store");
    let info = block_on(store.info()).expect("info");
    let (before, before_epoch) = (info.head, info.head_epoch);
    assert!(before.is_some(), "the base store has a head");
    let res = if one_call {
        block_on(store.import_car_with(car, policy))
    } else {
        block_on(async {
            let mut imp = Importer::new(&store, CarLimits::default()).head_policy(policy);
            for chunk in Chunks::new(seed.rotate_left(17)).split(car) {
                imp.feed(chunk).await?;
            }
            imp.finish().await
        })
    };
    match res {
        Err(ImportError::Store(e)) => panic!("the in-memory store failed during an import: {e}"),
        Err(ImportError::Car(e)) => {
            assert!(expected.error.is_some(), "an import failed ({e}) on a file the reader accepts");
            assert_eq!(block_on(store.info()).expect("info").head, before, "a failed import moved the head");
            let check = block_on(store.check()).expect("check after a failed import");
            assert_eq!(check.missing, 0, "a failed import lost live blocks: {:?}", check.missing_cids);
        }
        Ok(report) => {
            if expected.error.is_none() {
                assert_eq!(report.blocks, expected.blocks.len() as u64, "the import saw other blocks than the reader");
            }
            for (cid, bytes, _) in expected.blocks.iter().take(report.blocks as usize) {
                if !is_identity(cid) {
                    let got = block_on(store.get(cid)).expect("get");
                    assert_eq!(got.as_deref(), Some(bytes.as_slice()), "an imported block reads back differently");
                }
            }
            let info = block_on(store.info()).expect("info");
            let head = info.head;
            if report.head_applied {
                assert_eq!(head.as_deref(), Some(report.roots.as_slice()), "the head is not the file's roots");
                assert_ne!(policy, HeadPolicy::Keep, "an import under `keep` moved the head");
                if policy == HeadPolicy::Extend && head != before {
                    assert!(info.head_epoch > before_epoch, "an import under `extend` moved the head back or sideways");
                }
            } else {
                assert_eq!(head, before, "an import that applied no head moved it");
                let check = block_on(store.check()).expect("check");
                assert_eq!(check.missing, 0, "an import lost live blocks: {:?}", check.missing_cids);
            }
            if let Some(pending) = report.compaction {
                // A hostile head may make the compaction fail; it must not panic or hang.
                drop(block_on(store.run_compaction(pending, &NoProgress)));
                drop(block_on(store.check()));
            } else if policy == HeadPolicy::Keep {
                block_on(store.compact(&NoProgress)).expect("a compaction against the base head");
                let check = block_on(store.check()).expect("check");
                assert_eq!(check.missing, 0, "a compaction after a `keep` import lost live blocks");
            }
        }
    }
}
