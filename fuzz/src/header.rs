//! Target `header`: Filecoin block-header decoding on arbitrary bytes.
//!
//! Properties:
//! - `header::decode` never panics, and every CID it returns survives a round trip;
//! - when the whole block scans, the decoded Parents, ParentStateRoot, ParentMessageReceipts
//!   and Messages appear, in that order, among the block's links;
//! - whatever decodes strictly (`serde_ipld_dagcbor`) as a 13- or 16-field header with an
//!   unsigned Timestamp, `header::decode` accepts with the same fields (up to the strict
//!   decoder's lenient CID payloads, see [`super::links::lenient_cid_at`]).

use ipld_core::ipld::Ipld;
use splitstore_core::{header, links::for_each_link, links::LinkError, Cid};

use super::links::{assert_round_trips, lenient_cid_at};

/// Runs every property on `data`; panics on a violation.
pub fn check(data: &[u8]) {
    let res = header::decode(data);
    let mut links = Vec::new();
    let scanned = for_each_link(data, |c| links.push(c));
    if let Ok(h) = &res {
        for c in h.parents.iter().chain([&h.parent_state_root, &h.parent_message_receipts, &h.messages]) {
            assert_round_trips(c);
        }
        if scanned.is_ok() {
            let mut want = h.parents.clone();
            want.extend([h.parent_state_root, h.parent_message_receipts, h.messages]);
            assert!(is_subsequence(&want, &links), "decoded header CIDs are not among the block's links in order");
        }
    }
    let Some(strict) = strict_header(data) else { return };
    if let Err(LinkError::BadCid { offset }) = scanned {
        if lenient_cid_at(data, offset) {
            return;
        }
    }
    match res {
        Ok(h) => assert_eq!(h, strict, "the decoder and the strict decoder disagree"),
        Err(e) => panic!("a strictly valid header is rejected: {e}"),
    }
}

fn is_subsequence(want: &[Cid], have: &[Cid]) -> bool {
    let mut it = have.iter();
    want.iter().all(|w| it.any(|h| h == w))
}

/// The header as the strict decoder reads it, when the block is strictly valid DAG-CBOR of a
/// header shape with an unsigned Timestamp.
fn strict_header(data: &[u8]) -> Option<header::BlockHeader> {
    let Ipld::List(f) = serde_ipld_dagcbor::from_slice::<Ipld>(data).ok()? else { return None };
    // Indices of Parents, Height, ParentStateRoot, ParentMessageReceipts, Messages, Timestamp.
    let (p, h, s, r, m, t) = match f.len() {
        13 => (3, 5, 6, 7, 8, 10),
        16 => (5, 7, 8, 9, 10, 12),
        _ => return None,
    };
    let link = |i: usize| match &f[i] {
        Ipld::Link(c) => Some(*c),
        _ => None,
    };
    let parents = match &f[p] {
        Ipld::List(l) => {
            l.iter().map(|x| if let Ipld::Link(c) = x { Some(*c) } else { None }).collect::<Option<Vec<_>>>()?
        }
        _ => return None,
    };
    let height = match &f[h] {
        Ipld::Integer(i) => i64::try_from(*i).ok()?,
        _ => return None,
    };
    let timestamp = match &f[t] {
        Ipld::Integer(i) => u64::try_from(*i).ok()?,
        _ => return None,
    };
    Some(header::BlockHeader {
        parents,
        height,
        parent_state_root: link(s)?,
        parent_message_receipts: link(r)?,
        messages: link(m)?,
        timestamp,
    })
}
