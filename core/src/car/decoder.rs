//! The push decoder: bytes arrive in chunks of any size (a file read through a fixed buffer,
//! a network stream) and blocks come out as soon as they are complete.
//!
//! Blocks that lie wholly inside a chunk are returned without copying. Only an item cut by a
//! chunk boundary is copied into an internal buffer, and only as its bytes arrive; its
//! declared length is checked against [`CarLimits`] first. Each of the decoder's two buffers
//! holds at most one item, so its memory stays within a small multiple of the larger of
//! `max_header_len` and `max_section_len`.

use alloc::vec::Vec;

use cid::Cid;

use super::header::MAX_VARINT_LEN;
use super::machine::{Event, Machine, Need, Parsed};
use super::{Block, CarError, CarHeader, CarLimits};

/// What [`CarDecoder::decode`] produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step<'a> {
    /// All the input was consumed (kept or skipped) without completing an item: call again
    /// with the next chunk, or [`CarDecoder::finish`] at the end of the stream.
    NeedMore,
    /// The CARv1 header was decoded; [`CarDecoder::header`] returns it from now on.
    Header,
    /// A block, borrowed from the input or from the decoder's buffer until the next call.
    Block(Block<'a>),
    /// The CAR ended (end of a CARv2 payload, or a zero-length section read as end of data);
    /// the rest of the input, including any CARv2 index, is ignored.
    End,
}

/// An incremental CAR (v1 and v2) decoder fed by the caller.
///
/// Call [`decode`](Self::decode) with the bytes not yet consumed until it returns
/// [`Step::NeedMore`] (then supply the next chunk) or [`Step::End`]; when the stream is
/// exhausted call [`finish`](Self::finish), which fails if the data stopped inside an item.
/// After the first error every call returns that error.
///
/// ```
/// use splitstore_core::car::{CarDecoder, CarLimits, Step};
/// # fn run(chunks: &[&[u8]]) -> Result<usize, splitstore_core::car::CarError> {
/// let mut dec = CarDecoder::new(CarLimits::default());
/// let mut blocks = 0;
/// 'chunks: for chunk in chunks {
///     let mut rest = *chunk;
///     loop {
///         let (used, step) = dec.decode(rest)?;
///         rest = &rest[used..];
///         match step {
///             Step::NeedMore => break,
///             Step::Header => {}
///             Step::Block(_block) => blocks += 1,
///             Step::End => break 'chunks,
///         }
///     }
/// }
/// dec.finish()?;
/// # Ok(blocks) }
/// ```
#[derive(Debug)]
pub struct CarDecoder {
    m: Machine,
    /// The start of an item cut by a chunk boundary.
    partial: Vec<u8>,
    /// A completed buffered item, lent out by the last `decode` call.
    ready: Vec<u8>,
}

impl CarDecoder {
    /// A decoder at the start of a stream.
    pub fn new(limits: CarLimits) -> Self {
        CarDecoder { m: Machine::new(limits), partial: Vec::new(), ready: Vec::new() }
    }

    /// Announces the total length of the stream. Optional: with it, a CARv2 header that places
    /// its payload past the end is rejected as [`CarError::BadV2Header`] and a cut item is
    /// reported as soon as it starts, instead of at [`finish`](Self::finish).
    pub fn with_total_len(mut self, total: u64) -> Self {
        self.m.set_total_len(total);
        self
    }

    /// The CAR version (1 or 2), once the first header has been read.
    pub fn version(&self) -> Option<u64> {
        self.m.version()
    }

    /// The CARv1 header (for a CARv2 file: the payload's, with the CARv2 layout attached).
    pub fn header(&self) -> Option<&CarHeader> {
        self.m.header()
    }

    /// The header's roots, once known.
    pub fn roots(&self) -> Option<&[Cid]> {
        self.m.header().map(|h| h.roots.as_slice())
    }

    /// Bytes of the stream consumed so far.
    pub fn consumed(&self) -> u64 {
        self.m.pos() + self.partial.len() as u64
    }

    /// True once the CAR has ended ([`Step::End`] was returned or `finish` succeeded).
    pub fn is_done(&self) -> bool {
        self.m.is_done()
    }

    /// Consumes a prefix of `input` and reports what it completed. Returns how many bytes of
    /// `input` were consumed; the caller passes the rest (and then new bytes) next time.
    pub fn decode<'s>(&'s mut self, input: &'s [u8]) -> Result<(usize, Step<'s>), CarError> {
        self.ready.clear();
        let mut used = 0;
        if !self.partial.is_empty() {
            loop {
                let want = match self.m.need(&self.partial)? {
                    Need::Ready => break,
                    Need::Total(t) if t <= self.partial.len() => break,
                    Need::Total(t) => t - self.partial.len(),
                    // Up to and including the prefix's last byte, never past it.
                    Need::Prefix => {
                        let rest = &input[used..];
                        let room = MAX_VARINT_LEN.saturating_sub(self.partial.len());
                        rest.iter().take(room).position(|b| b & 0x80 == 0).map_or(rest.len().min(room), |i| i + 1)
                    }
                };
                let take = want.min(input.len() - used);
                if take == 0 {
                    return Ok((used, Step::NeedMore));
                }
                self.partial.extend_from_slice(&input[used..used + take]);
                used += take;
            }
            core::mem::swap(&mut self.partial, &mut self.ready);
            match self.m.step(&self.ready)? {
                Parsed::Consumed { event, .. } => match event {
                    Event::Nothing => {}
                    Event::Header => return Ok((used, Step::Header)),
                    Event::Block(b) => return Ok((used, Step::Block(b))),
                    Event::End => return Ok((input.len(), Step::End)),
                },
                // `need` and `step` measure items with the same code, so an item `need` calls
                // complete is never incomplete to `step`; were it so, the data cannot be read.
                Parsed::Incomplete => return Err(CarError::Truncated { offset: self.m.pos() }),
            }
        }
        loop {
            let rest = &input[used..];
            match self.m.step(rest)? {
                Parsed::Consumed { len, event } => {
                    used += len;
                    match event {
                        Event::Nothing => {}
                        Event::Header => return Ok((used, Step::Header)),
                        Event::Block(b) => return Ok((used, Step::Block(b))),
                        Event::End => return Ok((input.len(), Step::End)),
                    }
                }
                Parsed::Incomplete => {
                    // The machine has checked this item's declared length against the limits
                    // and the known end of data, so `rest` is bounded.
                    self.partial.extend_from_slice(rest);
                    return Ok((input.len(), Step::NeedMore));
                }
            }
        }
    }

    /// Declares the end of the stream. Fails with [`CarError::Truncated`] if it ended inside
    /// an item, or before the end of a CARv2 payload.
    pub fn finish(&mut self) -> Result<(), CarError> {
        self.m.finish(self.partial.len())
    }
}
