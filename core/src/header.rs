//! Filecoin block headers (13- and 16-field layouts) and tipset-key objects.
//!
//! A header is a CBOR array; its length tells the layout apart:
//!
//! | fields | layout |
//! |---|---|
//! | 13 (2020 testnets) | Miner, Ticket, EPostProof, **Parents**, ParentWeight, **Height**, **ParentStateRoot**, **ParentMessageReceipts**, **Messages**, BLSAggregate, **Timestamp**, BlockSig, ForkSignaling |
//! | 16 (mainnet) | Miner, Ticket, ElectionProof, BeaconEntries, WinPoStProof, **Parents**, ParentWeight, **Height**, **ParentStateRoot**, **ParentMessageReceipts**, **Messages**, BLSAggregate, **Timestamp**, BlockSig, ForkSignaling, ParentBaseFee |
//!
//! Only the fields in bold are read. The fields before them are skipped structurally (their
//! content is not checked, so odd encodings there are accepted); the decoder stops after
//! Timestamp and never reads the fields behind it.

use alloc::vec::Vec;
use cid::Cid;
use core::fmt;

use crate::cbor::{Arg, Cursor, ARRAY, NINT, UINT};
use crate::links::{scan_item, LinkError};

/// The fields of a block header the compaction needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockHeader {
    /// Parent tipset's block CIDs.
    pub parents: Vec<Cid>,
    /// Chain epoch.
    pub height: i64,
    /// State root after the parent tipset.
    pub parent_state_root: Cid,
    /// Receipts of the parent tipset's messages.
    pub parent_message_receipts: Cid,
    /// This block's messages (a TxMeta object).
    pub messages: Cid,
    /// Unix seconds.
    pub timestamp: u64,
}

/// Why a block is not a header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// The block is not a definite-length CBOR array.
    NotAnArray,
    /// An array of a length other than 13 or 16.
    WrongFieldCount {
        /// The array's length.
        found: u64,
    },
    /// A field the decoder needs has the wrong type or an out-of-range value.
    BadField {
        /// The field's name in the Lotus header.
        field: &'static str,
    },
    /// The block ends inside the fields the decoder reads.
    Truncated {
        /// Where more input was needed.
        offset: usize,
    },
    /// A skipped field is not well-formed CBOR.
    Malformed {
        /// The field's name in the Lotus header.
        field: &'static str,
        /// What the structural scan found.
        source: LinkError,
    },
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderError::NotAnArray => f.write_str("block header is not a definite-length CBOR array"),
            HeaderError::WrongFieldCount { found } => {
                write!(f, "block header has {found} fields, expected 13 or 16")
            }
            HeaderError::BadField { field } => write!(f, "block header field {field} is invalid"),
            HeaderError::Truncated { offset } => write!(f, "block header ends at byte {offset}"),
            HeaderError::Malformed { field, source } => {
                write!(f, "block header field {field} is malformed: {source}")
            }
        }
    }
}

impl core::error::Error for HeaderError {
    fn source(&self) -> Option<&(dyn core::error::Error + 'static)> {
        match self {
            HeaderError::Malformed { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Fields before Parents in each layout; from Parents to Timestamp both layouts agree.
const BEFORE_PARENTS_13: [&str; 3] = ["Miner", "Ticket", "EPostProof"];
const BEFORE_PARENTS_16: [&str; 5] = ["Miner", "Ticket", "ElectionProof", "BeaconEntries", "WinPoStProof"];

/// Decodes a header block of either layout. Bytes after the Timestamp field are not read.
pub fn decode(bytes: &[u8]) -> Result<BlockHeader, HeaderError> {
    let mut cur = Cursor::new(bytes);
    let before_parents: &[&'static str] = match cur.head() {
        Ok((ARRAY, Arg::Value(13))) => &BEFORE_PARENTS_13,
        Ok((ARRAY, Arg::Value(16))) => &BEFORE_PARENTS_16,
        Ok((ARRAY, Arg::Value(found))) => return Err(HeaderError::WrongFieldCount { found }),
        Err(LinkError::Truncated { offset }) => return Err(HeaderError::Truncated { offset }),
        Ok(_) | Err(_) => return Err(HeaderError::NotAnArray),
    };
    for &field in before_parents {
        skip(&mut cur, field)?;
    }
    let parents = read_parents(&mut cur)?;
    skip(&mut cur, "ParentWeight")?;
    let height = read_int(&mut cur, "Height")?;
    let parent_state_root = read_cid(&mut cur, "ParentStateRoot")?;
    let parent_message_receipts = read_cid(&mut cur, "ParentMessageReceipts")?;
    let messages = read_cid(&mut cur, "Messages")?;
    skip(&mut cur, "BLSAggregate")?;
    let timestamp = read_uint(&mut cur, "Timestamp")?;
    Ok(BlockHeader { parents, height, parent_state_root, parent_message_receipts, messages, timestamp })
}

/// Skips one field of any content.
fn skip(cur: &mut Cursor<'_>, field: &'static str) -> Result<(), HeaderError> {
    scan_item(cur, &mut |_| {}).map_err(|e| field_error(field, e))
}

/// Maps a scan error inside `field`: truncation keeps its offset, the rest keep their cause.
fn field_error(field: &'static str, e: LinkError) -> HeaderError {
    match e {
        LinkError::Truncated { offset } => HeaderError::Truncated { offset },
        source => HeaderError::Malformed { field, source },
    }
}

/// Maps an error reading a field the decoder needs: truncation keeps its offset, anything
/// else means the field has the wrong shape.
fn needed_field_error(field: &'static str, e: LinkError) -> HeaderError {
    match e {
        LinkError::Truncated { offset } => HeaderError::Truncated { offset },
        _ => HeaderError::BadField { field },
    }
}

fn read_parents(cur: &mut Cursor<'_>) -> Result<Vec<Cid>, HeaderError> {
    const FIELD: &str = "Parents";
    let n = match cur.head().map_err(|e| needed_field_error(FIELD, e))? {
        (ARRAY, Arg::Value(n)) => n,
        _ => return Err(HeaderError::BadField { field: FIELD }),
    };
    // Each CID takes more than one byte, so a count above the remaining input is truncation
    // and the capacity below is bounded by the block's size.
    if n > cur.remaining() as u64 {
        return Err(HeaderError::Truncated { offset: cur.pos() });
    }
    let mut parents = Vec::with_capacity(n as usize);
    for _ in 0..n {
        parents.push(cur.cid().map_err(|e| needed_field_error(FIELD, e))?);
    }
    Ok(parents)
}

fn read_cid(cur: &mut Cursor<'_>, field: &'static str) -> Result<Cid, HeaderError> {
    cur.cid().map_err(|e| needed_field_error(field, e))
}

fn read_uint(cur: &mut Cursor<'_>, field: &'static str) -> Result<u64, HeaderError> {
    match cur.head().map_err(|e| needed_field_error(field, e))? {
        (UINT, Arg::Value(v)) => Ok(v),
        _ => Err(HeaderError::BadField { field }),
    }
}

/// A CBOR integer of either sign that fits an `i64`.
fn read_int(cur: &mut Cursor<'_>, field: &'static str) -> Result<i64, HeaderError> {
    let bad = HeaderError::BadField { field };
    match cur.head().map_err(|e| needed_field_error(field, e))? {
        (UINT, Arg::Value(v)) => i64::try_from(v).map_err(|_| bad),
        // -1 - v, which fits exactly when v <= i64::MAX.
        (NINT, Arg::Value(v)) => i64::try_from(v).map(|v| -1 - v).map_err(|_| bad),
        _ => Err(bad),
    }
}

/// The tipset-key object of a tipset: its block bytes and CID.
///
/// This is Lotus's `TipSetKey.Cid()`: a DAG-CBOR byte string holding the concatenated binary
/// CIDs of the tipset's blocks in the given order, named by a CIDv1 (DAG-CBOR, BLAKE2b-256).
pub fn tipset_key(blocks: &[Cid]) -> (Cid, Vec<u8>) {
    let mut inner = Vec::new();
    for c in blocks {
        inner.extend_from_slice(&c.to_bytes());
    }
    let mut bytes = Vec::with_capacity(inner.len() + 9);
    write_cbor_head(&mut bytes, 2, inner.len() as u64);
    bytes.extend_from_slice(&inner);
    (crate::key::dag_cbor_blake2b_cid(&bytes), bytes)
}

/// Writes a CBOR major-type head (`major` 0..=7) with argument `n`, shortest form.
pub fn write_cbor_head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    if n < 24 {
        out.push(m | n as u8);
    } else if n <= 0xff {
        out.extend_from_slice(&[m | 24, n as u8]);
    } else if n <= 0xffff {
        out.push(m | 25);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    } else if n <= 0xffff_ffff {
        out.push(m | 26);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    } else {
        out.push(m | 27);
        out.extend_from_slice(&n.to_be_bytes());
    }
}

#[cfg(test)]
mod tests;
