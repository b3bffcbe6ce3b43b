//! The CAR state machine shared by the push decoder and the slice reader.
//!
//! The machine never owns input bytes. Each call to [`Machine::step`] is handed the bytes that
//! start at the current item (the caller keeps a partial item in its own buffer) and either
//! completes one item or says how many bytes the item needs. An item's declared size is
//! checked against the limits and against the known end of the data before the caller is asked
//! to buffer it, so no caller ever buffers more than one bounded item.

use super::header::{decode_header, parse_cid, read_varint, Frame, MAX_VARINT_LEN};
use super::{Block, CarError, CarHeader, CarLimits, V2Header};
use crate::key;

/// Size of the CARv2 header that follows the pragma.
const V2_HEADER_LEN: usize = 40;
/// Offset of the first byte after the pragma and the CARv2 header.
const V2_PREFIX_LEN: u64 = 11 + V2_HEADER_LEN as u64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// Expecting the first frame: a CARv1 header or the CARv2 pragma.
    First,
    /// Expecting the 40-byte CARv2 header.
    V2Header,
    /// Skipping padding up to the CARv2 payload, which starts at this offset.
    Skip(u64),
    /// Expecting the CARv1 header inside a CARv2 payload.
    InnerHeader,
    /// Expecting a section or the end of data.
    Sections,
    /// The CAR ended; everything after is ignored.
    Done,
}

/// The result of one step.
#[derive(Debug)]
pub(crate) enum Parsed<'a> {
    /// The item at the current position needs more bytes (see [`Machine::need`]). Nothing
    /// was consumed.
    Incomplete,
    /// `len` bytes were consumed, producing `event`, if any.
    Consumed { len: usize, event: Event<'a> },
}

/// What a consumed item means to the caller.
#[derive(Debug)]
pub(crate) enum Event<'a> {
    /// Bytes that carry nothing for the caller (pragma, CARv2 header, padding, ignored tail).
    Nothing,
    /// The CARv1 header was decoded.
    Header,
    /// A block.
    Block(Block<'a>),
    /// The CAR ended at this position.
    End,
}

/// How much of an item a caller must hold before calling [`Machine::step`] again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Need {
    /// The length prefix is unfinished: supply bytes up to and including its last byte.
    Prefix,
    /// The item is this many bytes long in all (prefix included).
    Total(usize),
    /// `step` can decide with the bytes held.
    Ready,
}

/// The decoding state, independent of where the bytes live.
#[derive(Debug)]
pub(crate) struct Machine {
    limits: CarLimits,
    stage: Stage,
    /// Stream offset of the first byte of the current item.
    pos: u64,
    /// Stream offset where the data ends, when known: the end of a CARv2 payload, or the total
    /// stream length the caller announced, whichever is smaller.
    end: Option<u64>,
    /// The total stream length, when announced.
    total: Option<u64>,
    version: Option<u64>,
    v2: Option<V2Header>,
    header: Option<CarHeader>,
    /// The first error; once set, every call returns it.
    failed: Option<CarError>,
}

impl Machine {
    pub(crate) fn new(limits: CarLimits) -> Self {
        // Clamped so that a prefix plus a body within the limit always fits in a usize.
        let cap = (usize::MAX - MAX_VARINT_LEN) as u64;
        let limits = CarLimits {
            max_header_len: limits.max_header_len.min(cap),
            max_section_len: limits.max_section_len.min(cap),
            ..limits
        };
        Machine {
            limits,
            stage: Stage::First,
            pos: 0,
            end: None,
            total: None,
            version: None,
            v2: None,
            header: None,
            failed: None,
        }
    }

    /// Announces the total stream length, so layouts past it fail early and precisely.
    pub(crate) fn set_total_len(&mut self, total: u64) {
        self.total = Some(total);
        self.end = Some(self.end.map_or(total, |e| e.min(total)));
    }

    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    pub(crate) fn version(&self) -> Option<u64> {
        self.version
    }

    pub(crate) fn header(&self) -> Option<&CarHeader> {
        self.header.as_ref()
    }

    pub(crate) fn is_done(&self) -> bool {
        self.stage == Stage::Done
    }

    /// Called at the end of the stream with `pending` bytes of an unfinished item held by the
    /// caller. The stream may end between sections of a CARv1 file of unknown length, or where
    /// the known end of the data is; anything else is truncation.
    pub(crate) fn finish(&mut self, pending: usize) -> Result<(), CarError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.stage {
            Stage::Done => Ok(()),
            // Between sections, at the end of the data if its end is known.
            Stage::Sections if pending == 0 && self.room().is_none_or(|r| r == 0) => {
                self.stage = Stage::Done;
                Ok(())
            }
            _ => self.fail(CarError::Truncated { offset: self.pos }),
        }
    }

    fn fail<T>(&mut self, e: CarError) -> Result<T, CarError> {
        self.failed = Some(e.clone());
        Err(e)
    }

    /// How many bytes the item at the current position needs in all, judging from the `avail`
    /// bytes the caller holds. Errors found on the way are recorded like those of `step`.
    pub(crate) fn need(&mut self, avail: &[u8]) -> Result<Need, CarError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        let (limit, framed) = match self.stage {
            Stage::First | Stage::InnerHeader => (self.limits.max_header_len, true),
            Stage::Sections if self.room() == Some(0) => return Ok(Need::Ready),
            Stage::Sections => (self.limits.max_section_len, true),
            Stage::V2Header => (0, false),
            Stage::Skip(_) | Stage::Done => return Ok(Need::Ready),
        };
        if !framed {
            return Ok(Need::Total(V2_HEADER_LEN));
        }
        match self.frame(avail, limit) {
            Ok(None) => Ok(Need::Prefix),
            // `step` reports an oversized or empty frame as soon as it sees the prefix.
            Ok(Some((_, _, declared))) if declared > limit || declared == 0 => Ok(Need::Ready),
            Ok(Some((n, body_len, _))) => Ok(Need::Total(n + body_len)),
            Err(e) => self.fail(e),
        }
    }

    /// Decodes the item that starts at the current position; `avail` holds the bytes from
    /// there on that the caller has (possibly fewer than the item needs).
    pub(crate) fn step<'a>(&mut self, avail: &'a [u8]) -> Result<Parsed<'a>, CarError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.step_inner(avail) {
            Ok(p) => {
                if let Parsed::Consumed { len, .. } = &p {
                    self.pos += *len as u64;
                }
                Ok(p)
            }
            Err(e) => self.fail(e),
        }
    }

    fn step_inner<'a>(&mut self, avail: &'a [u8]) -> Result<Parsed<'a>, CarError> {
        match self.stage {
            Stage::First | Stage::InnerHeader => self.header_frame(avail),
            Stage::V2Header => self.v2_header(avail),
            Stage::Skip(to) if self.pos == to => {
                self.stage = Stage::InnerHeader;
                self.header_frame(avail)
            }
            Stage::Skip(_) if avail.is_empty() => Ok(Parsed::Incomplete),
            Stage::Skip(to) => {
                // `to > pos` here; a distance that does not fit in usize exceeds `avail`.
                let n = usize::try_from(to - self.pos).map_or(avail.len(), |n| n.min(avail.len()));
                Ok(consumed(n, Event::Nothing))
            }
            Stage::Sections => self.section(avail),
            Stage::Done => Ok(consumed(avail.len(), Event::End)),
        }
    }

    /// Bytes left before the known end of data, if one is known.
    fn room(&self) -> Option<u64> {
        self.end.map(|e| e.saturating_sub(self.pos))
    }

    /// Reads a length-prefixed frame. Returns the prefix length and body length once the
    /// prefix is complete, after checking that the frame fits before the known end of data.
    fn frame(&self, avail: &[u8], limit: u64) -> Result<Option<(usize, usize, u64)>, CarError> {
        let room = self.room();
        let avail = match room {
            Some(r) if (avail.len() as u64) > r => &avail[..r as usize],
            _ => avail,
        };
        let Some((len, n)) = read_varint(avail, self.pos)? else {
            // Every byte up to the end of data is here and the prefix is still unfinished.
            if room.is_some_and(|r| avail.len() as u64 == r) {
                return Err(CarError::Truncated { offset: self.pos });
            }
            return Ok(None);
        };
        if len > limit {
            return Ok(Some((n, 0, len)));
        }
        if room.is_some_and(|r| n as u64 + len > r) {
            return Err(CarError::Truncated { offset: self.pos });
        }
        // `len <= limit`, and `Machine::new` clamps the limits so that `n + len` fits a usize.
        Ok(Some((n, len as usize, len)))
    }

    fn header_frame<'a>(&mut self, avail: &'a [u8]) -> Result<Parsed<'a>, CarError> {
        let limit = self.limits.max_header_len;
        let Some((n, body_len, declared)) = self.frame(avail, limit)? else {
            return Ok(Parsed::Incomplete);
        };
        if declared > limit {
            return Err(CarError::HeaderTooLarge { offset: self.pos, len: declared, limit });
        }
        if declared == 0 {
            return Err(CarError::BadHeader { offset: self.pos, detail: "the header has length zero" });
        }
        let Some(body) = avail.get(n..n + body_len) else {
            return Ok(Parsed::Incomplete);
        };
        let nested = self.stage == Stage::InnerHeader;
        let body_at = self.pos + n as u64;
        match decode_header(body, self.pos, body_at, self.limits.max_roots, nested)? {
            Frame::Pragma => {
                self.version = Some(2);
                self.stage = Stage::V2Header;
                Ok(consumed(n + body_len, Event::Nothing))
            }
            Frame::V1(roots) => {
                let version = *self.version.get_or_insert(1);
                self.header = Some(CarHeader { version, roots, v2: self.v2 });
                self.stage = Stage::Sections;
                Ok(consumed(n + body_len, Event::Header))
            }
        }
    }

    fn v2_header<'a>(&mut self, avail: &'a [u8]) -> Result<Parsed<'a>, CarError> {
        let Some(h) = avail.get(..V2_HEADER_LEN) else {
            if self.room().is_some_and(|r| r < V2_HEADER_LEN as u64) {
                return Err(CarError::Truncated { offset: self.pos });
            }
            return Ok(Parsed::Incomplete);
        };
        let u64_at = |i: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[i..i + 8]);
            u64::from_le_bytes(b)
        };
        let mut characteristics = [0u8; 16];
        characteristics.copy_from_slice(&h[..16]);
        let v2 = V2Header { characteristics, data_offset: u64_at(16), data_size: u64_at(24), index_offset: u64_at(32) };
        let bad = |detail| CarError::BadV2Header {
            detail,
            data_offset: v2.data_offset,
            data_size: v2.data_size,
            index_offset: v2.index_offset,
        };
        if v2.data_offset < V2_PREFIX_LEN {
            return Err(bad("the data payload starts inside the CARv2 header"));
        }
        let data_end = v2.data_offset.checked_add(v2.data_size).ok_or(bad("the data payload's end overflows"))?;
        if self.total.is_some_and(|t| data_end > t) {
            return Err(bad("the data payload runs past the end of the file"));
        }
        if v2.index_offset != 0 && v2.index_offset < data_end {
            return Err(bad("the index overlaps the CARv2 header or the data payload"));
        }
        if self.total.is_some_and(|t| v2.index_offset > t) {
            return Err(bad("the index starts past the end of the file"));
        }
        self.v2 = Some(v2);
        self.end = Some(self.total.map_or(data_end, |t| t.min(data_end)));
        self.stage = Stage::Skip(v2.data_offset);
        Ok(consumed(V2_HEADER_LEN, Event::Nothing))
    }

    fn section<'a>(&mut self, avail: &'a [u8]) -> Result<Parsed<'a>, CarError> {
        // The known end of data falls between sections: a clean end.
        if self.room() == Some(0) {
            self.stage = Stage::Done;
            return Ok(consumed(0, Event::End));
        }
        let limit = self.limits.max_section_len;
        let Some((n, body_len, declared)) = self.frame(avail, limit)? else {
            return Ok(Parsed::Incomplete);
        };
        if declared > limit {
            return Err(CarError::SectionTooLarge { offset: self.pos, len: declared, limit });
        }
        if declared == 0 {
            if self.limits.zero_length_section_as_eof {
                self.stage = Stage::Done;
                return Ok(consumed(0, Event::End));
            }
            return Err(CarError::ZeroLengthSection { offset: self.pos });
        }
        let Some(body) = avail.get(n..n + body_len) else {
            return Ok(Parsed::Incomplete);
        };
        let cid_at = self.pos + n as u64;
        let (cid, cid_len) = parse_cid(body, cid_at)?;
        let data = &body[cid_len..];
        if self.limits.verify_hashes {
            match key::verify(&cid, data) {
                Ok(()) => {}
                Err(crate::Error::HashMismatch { .. }) => return Err(CarError::HashMismatch { offset: self.pos, cid }),
                Err(_) => return Err(CarError::UnsupportedHash { offset: self.pos, cid }),
            }
        }
        let block = Block { cid, data, offset: self.pos };
        Ok(consumed(n + body_len, Event::Block(block)))
    }
}

fn consumed(len: usize, event: Event<'_>) -> Parsed<'_> {
    Parsed::Consumed { len, event }
}
