//! Filecoin block headers (13- and 16-field layouts) and tipset-key objects.
//! (Being written: signatures are final.)

use alloc::vec::Vec;
use cid::Cid;
use core::fmt;

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
    /// Not a CBOR array of 13 or 16 fields.
    NotAHeader,
}

impl fmt::Display for HeaderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a 13- or 16-field block header")
    }
}

impl core::error::Error for HeaderError {}

/// Decodes a header block.
pub fn decode(bytes: &[u8]) -> Result<BlockHeader, HeaderError> {
    let _ = bytes;
    Err(HeaderError::NotAHeader)
}

/// The tipset-key object of a tipset: its block bytes and CID.
pub fn tipset_key(blocks: &[Cid]) -> (Cid, Vec<u8>) {
    let mut inner = Vec::new();
    for c in blocks {
        inner.extend_from_slice(&c.to_bytes());
    }
    let mut bytes = Vec::with_capacity(inner.len() + 9);
    crate::header::write_cbor_head(&mut bytes, 2, inner.len() as u64);
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
