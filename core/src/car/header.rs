//! The byte-level pieces of a CAR: varints, binary CIDs and the DAG-CBOR CARv1 header
//! `{version: 1, roots: [cid, ...]}`, decoded and encoded by hand.
//!
//! Every reader here takes the absolute stream offset of its input so errors point into the
//! file, and none allocates more than the items it has actually decoded.

use alloc::vec::Vec;

use cid::Cid;
use multihash::Multihash;

use super::CarError;

/// The body of the CARv2 pragma: the CBOR map `{version: 2}` (its length prefix, 0x0a, is
/// separate). A file is CARv2 exactly when it starts with `0x0a` followed by these bytes.
pub const PRAGMA_BODY: [u8; 10] = [0xa1, 0x67, b'v', b'e', b'r', b's', b'i', b'o', b'n', 0x02];

/// The full 11-byte CARv2 pragma.
pub const PRAGMA: [u8; 11] = [0x0a, 0xa1, 0x67, b'v', b'e', b'r', b's', b'i', b'o', b'n', 0x02];

/// Longest unsigned LEB128 encoding of a `u64`.
pub(crate) const MAX_VARINT_LEN: usize = 10;

/// Largest digest a [`Cid`] can hold.
const MAX_DIGEST: u64 = 64;

/// Reads an unsigned LEB128 varint from the start of `bytes`, which begin at stream offset
/// `offset`. Returns `Ok(None)` when `bytes` ends before the varint does (more input needed),
/// otherwise the value and the number of bytes it took.
pub(crate) fn read_varint(bytes: &[u8], offset: u64) -> Result<Option<(u64, usize)>, CarError> {
    match varint(bytes) {
        Varint::Value(v, n) => Ok(Some((v, n))),
        Varint::Incomplete => Ok(None),
        Varint::Overflow => Err(CarError::VarintOverflow { offset }),
        Varint::NonMinimal => Err(CarError::NonMinimalVarint { offset }),
    }
}

enum Varint {
    Value(u64, usize),
    Incomplete,
    Overflow,
    NonMinimal,
}

#[inline]
fn varint(bytes: &[u8]) -> Varint {
    let mut value = 0u64;
    for (i, &b) in bytes.iter().take(MAX_VARINT_LEN).enumerate() {
        // The tenth byte may only contribute bit 63.
        if i == MAX_VARINT_LEN - 1 && b > 1 {
            return Varint::Overflow;
        }
        value |= u64::from(b & 0x7f) << (7 * i);
        if b < 0x80 {
            if i > 0 && b == 0 {
                return Varint::NonMinimal;
            }
            return Varint::Value(value, i + 1);
        }
    }
    if bytes.len() >= MAX_VARINT_LEN {
        Varint::Overflow
    } else {
        Varint::Incomplete
    }
}

/// Appends `v` as an unsigned LEB128 varint.
pub(crate) fn write_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Parses a binary CID (v0: a bare 34-byte SHA2-256 multihash; v1: version, codec, multihash)
/// at the start of `bytes`, which begin at stream offset `offset`. Returns the CID and its
/// length. Any malformation, including input that ends early, is [`CarError::BadCid`]: a CID
/// is only ever parsed from a complete section or header.
pub(crate) fn parse_cid(bytes: &[u8], offset: u64) -> Result<(Cid, usize), CarError> {
    let bad = CarError::BadCid { offset };
    if let [0x12, 0x20, ..] = bytes {
        let digest = bytes.get(2..34).ok_or(bad.clone())?;
        let mh = Multihash::<64>::wrap(0x12, digest).map_err(|_| bad.clone())?;
        let cid = Cid::new_v0(mh).map_err(|_| bad)?;
        return Ok((cid, 34));
    }
    let mut pos = 0usize;
    let mut next = || -> Result<u64, CarError> {
        match varint(bytes.get(pos..).unwrap_or_default()) {
            Varint::Value(v, n) => {
                pos += n;
                Ok(v)
            }
            _ => Err(CarError::BadCid { offset }),
        }
    };
    let version = next()?;
    let codec = next()?;
    let code = next()?;
    let len = next()?;
    if version != 1 || len > MAX_DIGEST {
        return Err(bad);
    }
    // `len <= 64`, so the cast is lossless and `pos + len` cannot overflow.
    let end = pos + len as usize;
    let digest = bytes.get(pos..end).ok_or(bad.clone())?;
    let mh = Multihash::<64>::wrap(code, digest).map_err(|_| bad)?;
    Ok((Cid::new_v1(codec, mh), end))
}

/// What a CARv1-style header frame holds.
#[derive(Debug)]
pub(crate) enum Frame {
    /// The CARv2 pragma: a CARv2 header follows.
    Pragma,
    /// A version-1 header with these roots.
    V1(Vec<Cid>),
}

/// Decodes the body of a header frame. `frame_offset` is the stream offset of the frame's
/// length prefix and `body_offset` that of `body`. `nested` is true inside a CARv2 payload,
/// where only a version-1 header is allowed.
pub(crate) fn decode_header(
    body: &[u8],
    frame_offset: u64,
    body_offset: u64,
    max_roots: u64,
    nested: bool,
) -> Result<Frame, CarError> {
    if !nested && body == PRAGMA_BODY {
        return Ok(Frame::Pragma);
    }
    let mut r = CborReader { bytes: body, pos: 0, base: body_offset };
    let (major, count) = r.head()?;
    if major != MAJOR_MAP {
        return Err(r.bad_at(0, "the header is not a CBOR map"));
    }
    let mut version = None;
    let mut roots = None;
    for _ in 0..count {
        let key_at = r.pos;
        let (major, len) = r.head()?;
        if major != MAJOR_TEXT {
            return Err(r.bad_at(key_at, "a header key is not a text string"));
        }
        match r.take(len)? {
            b"version" if version.is_none() => {
                let at = r.pos;
                match r.head()? {
                    (MAJOR_UINT, v) => version = Some(v),
                    _ => return Err(r.bad_at(at, "version is not an unsigned integer")),
                }
            }
            b"roots" if roots.is_none() => roots = Some(r.roots(max_roots)?),
            b"version" | b"roots" => return Err(r.bad_at(key_at, "duplicate header key")),
            _ => return Err(r.bad_at(key_at, "unknown header key")),
        }
    }
    match version {
        None => Err(r.bad_at(0, "the header has no version")),
        Some(2) if nested => Err(r.bad_at(0, "a CARv2 payload must hold a version-1 header")),
        Some(2) => Err(CarError::BadPragma { offset: frame_offset }),
        Some(1) => {
            if r.pos != body.len() {
                return Err(r.bad_at(r.pos, "trailing bytes after the header map"));
            }
            roots.map(Frame::V1).ok_or(r.bad_at(0, "the header has no roots"))
        }
        Some(version) => Err(CarError::UnsupportedVersion { version }),
    }
}

const MAJOR_UINT: u8 = 0;
const MAJOR_BYTES: u8 = 2;
const MAJOR_TEXT: u8 = 3;
const MAJOR_ARRAY: u8 = 4;
const MAJOR_MAP: u8 = 5;
const MAJOR_TAG: u8 = 6;
const TAG_CID: u64 = 42;

/// A CBOR reader for the header only: definite lengths, no floats, no nesting beyond
/// map -> array -> tagged bytes.
struct CborReader<'a> {
    bytes: &'a [u8],
    pos: usize,
    base: u64,
}

impl<'a> CborReader<'a> {
    fn bad_at(&self, pos: usize, detail: &'static str) -> CarError {
        CarError::BadHeader { offset: self.base + pos as u64, detail }
    }

    /// Reads an item head: major type and definite argument.
    fn head(&mut self) -> Result<(u8, u64), CarError> {
        let at = self.pos;
        let ib = *self.bytes.get(at).ok_or(self.bad_at(at, "the header ends inside an item"))?;
        self.pos += 1;
        let n = match ib & 0x1f {
            info @ 0..=23 => return Ok((ib >> 5, u64::from(info))),
            24 => 1,
            25 => 2,
            26 => 4,
            27 => 8,
            31 => return Err(self.bad_at(at, "indefinite lengths are not DAG-CBOR")),
            _ => return Err(self.bad_at(at, "reserved CBOR additional information")),
        };
        let arg = self.take(n)?;
        let v = arg.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
        Ok((ib >> 5, v))
    }

    /// Takes `n` bytes, checking `n` against what remains first.
    fn take(&mut self, n: u64) -> Result<&'a [u8], CarError> {
        let rest = self.bytes.len() - self.pos;
        if n > rest as u64 {
            return Err(self.bad_at(self.pos, "the header ends inside an item"));
        }
        // `n <= rest`, so the cast is lossless.
        let out = &self.bytes[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(out)
    }

    /// Reads the roots array: tag-42 byte strings holding `0x00` and one CID each. Roots are
    /// pushed as they are decoded; the declared count only bounds the loop.
    fn roots(&mut self, max_roots: u64) -> Result<Vec<Cid>, CarError> {
        let at = self.pos;
        let count = match self.head()? {
            (MAJOR_ARRAY, n) => n,
            _ => return Err(self.bad_at(at, "roots is not an array")),
        };
        if count > max_roots {
            return Err(CarError::TooManyRoots { offset: self.base + at as u64, count, limit: max_roots });
        }
        let mut roots = Vec::new();
        for _ in 0..count {
            let at = self.pos;
            if self.head()? != (MAJOR_TAG, TAG_CID) {
                return Err(self.bad_at(at, "a root is not a tag-42 CID"));
            }
            let len = match self.head()? {
                (MAJOR_BYTES, len) => len,
                _ => return Err(self.bad_at(at, "a root is not a tag-42 byte string")),
            };
            let payload_at = self.pos;
            let payload = self.take(len)?;
            let cid_offset = self.base + payload_at as u64 + 1;
            match payload.split_first() {
                Some((0, rest)) => match parse_cid(rest, cid_offset)? {
                    (cid, n) if n == rest.len() => roots.push(cid),
                    _ => return Err(CarError::BadCid { offset: cid_offset }),
                },
                _ => return Err(self.bad_at(payload_at, "a root CID lacks its 0x00 prefix")),
            }
        }
        Ok(roots)
    }
}

/// Appends a CBOR item head in its shortest form.
fn write_head(major: u8, n: u64, out: &mut Vec<u8>) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend_from_slice(&[m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

/// Appends the body of a canonical DAG-CBOR CARv1 header `{roots, version: 1}` (keys in
/// length-first order, as DAG-CBOR requires).
pub(crate) fn encode_header_body(roots: &[Cid], out: &mut Vec<u8>) {
    write_head(MAJOR_MAP, 2, out);
    write_head(MAJOR_TEXT, 5, out);
    out.extend_from_slice(b"roots");
    write_head(MAJOR_ARRAY, roots.len() as u64, out);
    for root in roots {
        let bytes = root.to_bytes();
        write_head(MAJOR_TAG, TAG_CID, out);
        write_head(MAJOR_BYTES, bytes.len() as u64 + 1, out);
        out.push(0);
        out.extend_from_slice(&bytes);
    }
    write_head(MAJOR_TEXT, 7, out);
    out.extend_from_slice(b"version");
    write_head(MAJOR_UINT, 1, out);
}
