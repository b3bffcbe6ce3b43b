//! Target `links`: the structural DAG-CBOR link scanner on arbitrary bytes.
//!
//! Properties:
//! - it never panics, and every error offset lies inside the input;
//! - every CID it reports survives `to_bytes` / `Cid::try_from` unchanged;
//! - `links_of` agrees with `for_each_link` for a DAG-CBOR CID (and leaves its output as it
//!   was on error), and reports nothing for a raw CID;
//! - whatever the strict DAG-CBOR decoder (`serde_ipld_dagcbor`) accepts, the scanner accepts
//!   too, with the same links (a CID in an indefinite-length byte string included). The one
//!   tolerated difference is the strict decoder's own leniency: it takes a tag-42 payload
//!   holding a CID followed by extra bytes, which the scanner rejects (see [`lenient_cid_at`]).

use ipld_core::ipld::Ipld;
use splitstore_core::{
    key::{dag_cbor_blake2b_cid, RAW},
    links::{for_each_link, links_of, LinkError},
    Cid,
};

/// Runs every property on `data`; panics on a violation.
pub fn check(data: &[u8]) {
    let mut seen = Vec::new();
    let res = for_each_link(data, |c| seen.push(c));
    for c in &seen {
        assert_round_trips(c);
    }
    if let Err(e) = &res {
        assert!(error_offset(e) <= data.len(), "error offset out of range: {e:?} for {} bytes", data.len());
    }

    let named = dag_cbor_blake2b_cid(b"a DAG-CBOR block");
    let sentinel = dag_cbor_blake2b_cid(b"already in the output");
    let mut out = vec![sentinel];
    let res2 = links_of(&named, data, &mut out);
    assert_eq!(res, res2, "links_of and for_each_link disagree");
    match res {
        Ok(()) => assert_eq!(out[1..], seen[..], "links_of reported other links"),
        Err(_) => assert_eq!(out, [sentinel], "links_of changed its output on error"),
    }
    let raw = Cid::new_v1(RAW, *named.hash());
    let mut none = Vec::new();
    assert_eq!(links_of(&raw, data, &mut none), Ok(()), "a raw block has no links to fail on");
    assert!(none.is_empty(), "a raw block reported links");

    if let Some(strict) = strict_links(data) {
        match &res {
            Ok(()) => assert_eq!(sorted(strict), sorted(seen), "the scanner and the strict decoder disagree on links"),
            Err(LinkError::BadCid { offset }) if lenient_cid_at(data, *offset) => {}
            Err(e) => panic!("strict DAG-CBOR decodes this block but the scanner rejects it: {e}"),
        }
    }
}

/// Panics unless `c` survives a binary round trip.
pub fn assert_round_trips(c: &Cid) {
    let bytes = c.to_bytes();
    let back = Cid::try_from(bytes.as_slice()).unwrap_or_else(|e| panic!("CID {c:?} does not parse back: {e}"));
    assert_eq!(&back, c, "CID changed in a round trip");
    assert_eq!(back.to_bytes(), bytes, "CID bytes changed in a round trip");
}

/// The byte offset an error names.
pub fn error_offset(e: &LinkError) -> usize {
    match *e {
        LinkError::Truncated { offset }
        | LinkError::TooDeep { offset }
        | LinkError::TrailingBytes { offset }
        | LinkError::BadCid { offset }
        | LinkError::InvalidHead { offset }
        | LinkError::UnexpectedBreak { offset }
        | LinkError::BadChunk { offset } => offset,
    }
}

/// Links found by a strict DAG-CBOR decode, or `None` when the strict decoder rejects `data`.
pub fn strict_links(data: &[u8]) -> Option<Vec<Cid>> {
    let v: Ipld = serde_ipld_dagcbor::from_slice(data).ok()?;
    let mut out = Vec::new();
    let mut stack = vec![&v];
    while let Some(x) = stack.pop() {
        match x {
            Ipld::Link(c) => out.push(*c),
            Ipld::List(l) => stack.extend(l.iter()),
            Ipld::Map(m) => stack.extend(m.values()),
            _ => {}
        }
    }
    Some(out)
}

fn sorted(mut v: Vec<Cid>) -> Vec<Vec<u8>> {
    v.sort_by_key(|c| c.to_bytes());
    v.iter().map(|c| c.to_bytes()).collect()
}

/// A CBOR head at `pos`: major type, argument, and the position after it (definite only).
fn head(data: &[u8], pos: usize) -> Option<(u8, u64, usize)> {
    let ib = *data.get(pos)?;
    let n = match ib & 0x1f {
        v @ 0..=23 => return Some((ib >> 5, u64::from(v), pos + 1)),
        24 => 1,
        25 => 2,
        26 => 4,
        27 => 8,
        _ => return None,
    };
    let arg = data.get(pos + 1..pos + 1 + n)?;
    Some((ib >> 5, arg.iter().fold(0u64, |a, &b| (a << 8) | u64::from(b)), pos + 1 + n))
}

/// The content of the byte string at `pos`, an indefinite-length one joined from its chunks;
/// `None` when no well-formed byte string starts there.
fn byte_string(data: &[u8], pos: usize) -> Option<Vec<u8>> {
    let slice = |p: usize, len: u64| data.get(p..p.checked_add(usize::try_from(len).ok()?)?);
    if data.get(pos) != Some(&0x5f) {
        let Some((2, len, p)) = head(data, pos) else { return None };
        return slice(p, len).map(<[u8]>::to_vec);
    }
    let mut joined = Vec::new();
    let mut p = pos + 1;
    while *data.get(p)? != 0xff {
        let Some((2, len, q)) = head(data, p) else { return None };
        let chunk = slice(q, len)?;
        joined.extend_from_slice(chunk);
        p = q + chunk.len();
    }
    Some(joined)
}

/// True when the tag 42 at `offset` holds `0x00`, a valid CID, and then more bytes (in one
/// byte string or in chunks): input `Cid::try_from` (and so `serde_ipld_dagcbor`) accepts by
/// ignoring the extra bytes, and the scanner rightly rejects.
pub fn lenient_cid_at(data: &[u8], offset: usize) -> bool {
    let Some((6, 42, p)) = head(data, offset) else { return false };
    let Some(payload) = byte_string(data, p) else { return false };
    let Some((0, mut rest)) = payload.split_first().map(|(a, b)| (*a, b)) else { return false };
    Cid::read_bytes(&mut rest).is_ok() && !rest.is_empty()
}
