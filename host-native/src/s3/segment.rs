//! A segment: one write batch's block puts as one immutable CARv1 object, and the locator
//! entry that finds a block inside one.

use splitstore_core::{
    car::{encode_header_v1, encode_section, export_cid},
    key::{dag_cbor_blake2b_cid, RAW},
    Cid,
};

/// Where a block's bytes are: segment number, offset of the bytes in the segment, length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Loc {
    /// The segment's number (its object is `seg/<seq as 16 hex digits>.car`).
    pub seq: u64,
    /// Offset of the block's bytes (after its section's length prefix and CID).
    pub offset: u64,
    /// Length of the block's bytes.
    pub len: u32,
}

/// Bytes of an encoded [`Loc`].
const LOC_BYTES: usize = 20;

impl Loc {
    /// 20 bytes: `seq`, `offset` (big-endian u64) and `len` (big-endian u32).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(LOC_BYTES);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.offset.to_be_bytes());
        out.extend_from_slice(&self.len.to_be_bytes());
        out
    }

    /// The inverse of [`Loc::encode`]; `None` for anything else.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        let bytes: &[u8; LOC_BYTES] = bytes.try_into().ok()?;
        Some(Self {
            seq: u64::from_be_bytes(bytes[..8].try_into().ok()?),
            offset: u64::from_be_bytes(bytes[8..16].try_into().ok()?),
            len: u32::from_be_bytes(bytes[16..].try_into().ok()?),
        })
    }

    /// The byte range of the block in its segment.
    pub fn range(&self) -> std::ops::Range<u64> {
        self.offset..self.offset + u64::from(self.len)
    }
}

/// The CID a segment names a block by: [`export_cid`] (the multihash the key is, with the
/// codec the bytes suggest). A key that is not a multihash (never one the store writes) gets
/// the raw CID of the bytes' BLAKE2b-256, so the segment stays a CAR that verifies.
fn section_cid(key: &[u8], bytes: &[u8]) -> Cid {
    export_cid(key, bytes).unwrap_or_else(|| Cid::new_v1(RAW, *dag_cbor_blake2b_cid(bytes).hash()))
}

/// Encodes `blocks` (key, bytes) as a CARv1 without roots, returning it and where each block
/// landed, in the order given. Fails when a block is over 4 GiB.
pub fn encode(seq: u64, blocks: &[(Vec<u8>, Vec<u8>)]) -> Result<(Vec<u8>, Vec<Loc>), usize> {
    let total: usize = blocks.iter().map(|(k, v)| k.len() + v.len() + 16).sum();
    let mut out = Vec::with_capacity(total + 32);
    encode_header_v1(&[], &mut out);
    let mut locs = Vec::with_capacity(blocks.len());
    for (key, bytes) in blocks {
        let len = u32::try_from(bytes.len()).map_err(|_| bytes.len())?;
        encode_section(&section_cid(key, bytes), bytes, &mut out);
        locs.push(Loc { seq, offset: (out.len() - bytes.len()) as u64, len });
    }
    Ok((out, locs))
}

#[cfg(test)]
mod tests {
    use splitstore_core::{
        car::{read_car, CarLimits},
        BlockKey,
    };

    use super::*;

    #[test]
    fn a_segment_is_a_car_and_every_loc_finds_its_bytes() {
        let blocks: Vec<(Vec<u8>, Vec<u8>)> = (0u8..50)
            .map(|i| {
                let bytes = vec![0x82, i, i.wrapping_mul(3)];
                (BlockKey::of(&dag_cbor_blake2b_cid(&bytes)).into_bytes(), bytes)
            })
            .chain([(b"not a multihash".to_vec(), b"raw".to_vec()), (vec![7; 100], Vec::new())])
            .collect();
        let (body, locs) = encode(9, &blocks).expect("small blocks");
        for ((_, bytes), loc) in blocks.iter().zip(&locs) {
            assert_eq!(loc.seq, 9);
            let r = loc.range();
            assert_eq!(&body[r.start as usize..r.end as usize], &bytes[..]);
            assert_eq!(Loc::decode(&loc.encode()), Some(*loc));
        }
        // Any CAR reader reads it (and verifies it): the blocks by their keys' multihashes,
        // the others by their bytes' hash.
        let (header, read) = read_car(&body, CarLimits::default()).expect("a CARv1");
        assert!(header.roots.is_empty());
        assert_eq!(read.len(), blocks.len());
        for (i, ((cid, bytes), (key, want))) in read.iter().zip(&blocks).enumerate() {
            assert_eq!(bytes, want);
            if i < 50 {
                assert_eq!(&cid.hash().to_bytes(), key);
            }
        }
        assert_eq!(Loc::decode(&[0; 19]), None);
    }
}
