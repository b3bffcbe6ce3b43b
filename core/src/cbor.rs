//! A minimal CBOR reading cursor shared by the link scanner and the header decoder.
//!
//! The cursor never allocates and never reads past its input: every length is compared with
//! the bytes that remain before it is used, so a huge declared length is a
//! [`LinkError::Truncated`], never an allocation or a panic.

use cid::Cid;
use multihash::Multihash;

use crate::links::LinkError;

/// Major type 0: unsigned integer.
pub(crate) const UINT: u8 = 0;
/// Major type 1: negative integer (`-1 - n`).
pub(crate) const NINT: u8 = 1;
/// Major type 2: byte string.
pub(crate) const BYTES: u8 = 2;
/// Major type 3: text string.
pub(crate) const TEXT: u8 = 3;
/// Major type 4: array.
pub(crate) const ARRAY: u8 = 4;
/// Major type 5: map.
pub(crate) const MAP: u8 = 5;
/// Major type 6: tag.
pub(crate) const TAG: u8 = 6;
/// Major type 7: simple values and floats.
pub(crate) const SIMPLE: u8 = 7;

/// The tag that marks a CID in DAG-CBOR.
pub(crate) const TAG_CID: u64 = 42;
/// The "break" byte that ends an indefinite-length item.
pub(crate) const BREAK: u8 = 0xff;

/// The argument of an item head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Arg {
    /// A definite value: an integer, a length, a count, a tag number or float bits.
    Value(u64),
    /// Additional information 31: indefinite length (or, for major type 7, "break").
    Indefinite,
}

/// A read position in a CBOR document.
#[derive(Clone, Debug)]
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor at the start of `bytes`.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, pos: 0 }
    }

    /// Offset of the next unread byte.
    pub(crate) fn pos(&self) -> usize {
        self.pos
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    /// The next byte, without consuming it.
    #[inline(always)]
    pub(crate) fn peek(&self) -> Result<u8, LinkError> {
        self.bytes.get(self.pos).copied().ok_or(LinkError::Truncated { offset: self.pos })
    }

    /// Consumes `n` bytes and returns them. `n` is checked against the remaining input first.
    #[inline(always)]
    pub(crate) fn take(&mut self, n: u64) -> Result<&'a [u8], LinkError> {
        if n > self.remaining() as u64 {
            return Err(LinkError::Truncated { offset: self.pos });
        }
        // `n <= remaining <= usize::MAX`, so the cast is lossless.
        let end = self.pos + n as usize;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    /// Reads an item head: the major type (0..=7) and its argument.
    ///
    /// Additional information 28..=30 is reserved and rejected with
    /// [`LinkError::InvalidHead`]. For major type 7 the argument is the simple value or the
    /// raw bits of the float; `Arg::Indefinite` there is the break byte.
    #[inline(always)]
    pub(crate) fn head(&mut self) -> Result<(u8, Arg), LinkError> {
        let start = self.pos;
        let ib = self.peek()?;
        self.pos += 1;
        let major = ib >> 5;
        let info = ib & 0x1f;
        let arg = match info {
            0..=23 => Arg::Value(u64::from(info)),
            24 => Arg::Value(u64::from(self.take(1)?[0])),
            25 => Arg::Value(u64::from(u16::from_be_bytes(self.array::<2>()?))),
            26 => Arg::Value(u64::from(u32::from_be_bytes(self.array::<4>()?))),
            27 => Arg::Value(u64::from_be_bytes(self.array::<8>()?)),
            31 => Arg::Indefinite,
            _ => return Err(LinkError::InvalidHead { offset: start }),
        };
        Ok((major, arg))
    }

    #[inline(always)]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], LinkError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N as u64)?);
        Ok(out)
    }

    /// Reads the content of a tag 42 whose head was just consumed (`tag_offset` is where that
    /// head began): a byte string holding `0x00` followed by exactly one binary CID. An
    /// indefinite-length byte string counts as its chunks joined, as CBOR defines it; joined
    /// chunks longer than any CID payload are a bad CID.
    #[inline(always)]
    pub(crate) fn cid_payload(&mut self, tag_offset: usize) -> Result<Cid, LinkError> {
        let bad = || LinkError::BadCid { offset: tag_offset };
        let (major, arg) = match self.head() {
            Ok(h) => h,
            Err(LinkError::Truncated { offset }) => return Err(LinkError::Truncated { offset }),
            Err(_) => return Err(bad()),
        };
        match (major, arg) {
            (BYTES, Arg::Value(len)) => cid_of_payload(self.take(len)?).ok_or_else(bad),
            (BYTES, Arg::Indefinite) => self.chunked_cid_payload()?.ok_or_else(bad),
            _ => Err(bad()),
        }
    }

    /// The CID in an indefinite-length byte string whose head was just consumed, its chunks
    /// joined; `Ok(None)` when they do not join to a CID payload. Out of line: real blocks
    /// never take this path, and the scanner's loop stays small without it.
    #[cold]
    #[inline(never)]
    fn chunked_cid_payload(&mut self) -> Result<Option<Cid>, LinkError> {
        let mut joined = [0u8; MAX_CID_PAYLOAD];
        let mut len = 0;
        while let Some(chunk) = self.next_chunk(BYTES)? {
            let end = len + chunk.len();
            let Some(into) = joined.get_mut(len..end) else { return Ok(None) };
            into.copy_from_slice(chunk);
            len = end;
        }
        Ok(cid_of_payload(&joined[..len]))
    }

    /// Reads the next chunk of an indefinite-length string of type `major` whose head was
    /// just consumed: `None` after its break byte. A chunk must be a definite string of the
    /// same type.
    pub(crate) fn next_chunk(&mut self, major: u8) -> Result<Option<&'a [u8]>, LinkError> {
        if self.peek()? == BREAK {
            self.pos += 1;
            return Ok(None);
        }
        let start = self.pos;
        match self.head()? {
            (m, Arg::Value(len)) if m == major => self.take(len).map(Some),
            _ => Err(LinkError::BadChunk { offset: start }),
        }
    }

    /// Reads a tag-42 CID item (head and content).
    pub(crate) fn cid(&mut self) -> Result<Cid, LinkError> {
        let start = self.pos;
        match self.head()? {
            (TAG, Arg::Value(TAG_CID)) => self.cid_payload(start),
            _ => Err(LinkError::BadCid { offset: start }),
        }
    }
}

/// Largest digest a [`Cid`] holds.
const MAX_DIGEST: usize = 64;

/// Longest tag-42 payload that can hold a CID: the `0x00` prefix, four varints of at most 10
/// bytes (version, codec, hash code, digest size) and the largest digest.
const MAX_CID_PAYLOAD: usize = 1 + 4 * 10 + MAX_DIGEST;

/// The CID in a tag-42 payload: `0x00`, then a binary CID that fills the rest exactly.
#[inline(always)]
fn cid_of_payload(payload: &[u8]) -> Option<Cid> {
    match payload.split_first() {
        Some((0, rest)) => parse_cid(rest),
        _ => None,
    }
}

/// Decodes a binary CID that fills `bytes` exactly.
///
/// Accepts exactly what `Cid::read_bytes` accepts when it must consume every byte (a
/// differential test holds the two together), but reads the slice directly instead of
/// through an `io::Read` byte at a time: the scanner spends most of its time here.
#[inline(always)]
pub(crate) fn parse_cid(bytes: &[u8]) -> Option<Cid> {
    let mut pos = 0;
    let version = uvarint(bytes, &mut pos)?;
    let codec = uvarint(bytes, &mut pos)?;
    if version == 0x12 && codec == 0x20 {
        // CIDv0: a bare SHA2-256 multihash, whose prefix was just read as two varints.
        let digest = &bytes[pos..];
        if digest.len() != 32 {
            return None;
        }
        return Cid::new_v0(Multihash::wrap(0x12, digest).ok()?).ok();
    }
    if version != 1 {
        return None;
    }
    let code = uvarint(bytes, &mut pos)?;
    let size = uvarint(bytes, &mut pos)?;
    let digest = &bytes[pos..];
    if size > MAX_DIGEST as u64 || digest.len() as u64 != size {
        return None;
    }
    Some(Cid::new_v1(codec, Multihash::wrap(code, digest).ok()?))
}

/// An unsigned LEB128 varint as the `unsigned-varint` crate reads it: at most 10 bytes, no
/// trailing zero byte in a multi-byte encoding, bits beyond 64 dropped.
#[inline(always)]
fn uvarint(bytes: &[u8], pos: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..10 {
        let b = *bytes.get(*pos + i)?;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if b == 0 && i > 0 {
                return None;
            }
            *pos += i + 1;
            return Some(value);
        }
    }
    None
}

#[cfg(test)]
mod tests;
