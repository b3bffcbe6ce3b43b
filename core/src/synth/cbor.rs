//! Hand-rolled DAG-CBOR encoding of the few shapes the generator writes: unsigned and negative
//! integers, byte strings, arrays and links. Every head is in shortest form and no maps are
//! written, so the output is canonical DAG-CBOR.

use alloc::vec::Vec;

use cid::Cid;
use multihash::Multihash;

use super::rng::Rng;
use crate::header::write_cbor_head;
use crate::key::{BLAKE2B_256, IDENTITY};

/// Array head of `n` items.
#[inline]
pub(crate) fn array(out: &mut Vec<u8>, n: usize) {
    write_cbor_head(out, 4, n as u64);
}

/// Unsigned integer.
#[inline]
pub(crate) fn uint(out: &mut Vec<u8>, n: u64) {
    write_cbor_head(out, 0, n);
}

/// Signed integer.
#[inline]
pub(crate) fn int(out: &mut Vec<u8>, n: i64) {
    if n >= 0 {
        write_cbor_head(out, 0, n as u64);
    } else {
        // -1 - n, computed without overflow for i64::MIN.
        write_cbor_head(out, 1, !(n as u64));
    }
}

/// Byte string.
#[inline]
pub(crate) fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    write_cbor_head(out, 2, b.len() as u64);
    out.extend_from_slice(b);
}

/// Byte string of `n` random bytes.
#[inline]
pub(crate) fn random_bytes(out: &mut Vec<u8>, rng: &mut Rng, n: usize) {
    write_cbor_head(out, 2, n as u64);
    rng.fill(out, n);
}

/// A signature as Filecoin encodes it: one type byte, then the signature bytes.
pub(crate) fn signature(out: &mut Vec<u8>, rng: &mut Rng, sig_type: u8, len: usize) {
    write_cbor_head(out, 2, len as u64 + 1);
    out.push(sig_type);
    rng.fill(out, len);
}

/// Filecoin big integer: empty for zero, else a sign byte (0 = positive) and the big-endian
/// magnitude without leading zeros.
pub(crate) fn bigint(out: &mut Vec<u8>, v: u128) {
    if v == 0 {
        bytes(out, &[]);
        return;
    }
    let be = v.to_be_bytes();
    let skip = (v.leading_zeros() / 8) as usize;
    write_cbor_head(out, 2, (be.len() - skip + 1) as u64);
    out.push(0);
    out.extend_from_slice(&be[skip..]);
}

/// Appends an unsigned LEB128 varint.
pub(crate) fn varint(out: &mut Vec<u8>, mut n: u64) {
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn varint_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

/// A link: tag 42 over a byte string holding the multibase-identity prefix `0x00` and the
/// binary CIDv1. Written field by field so no temporary buffer is allocated.
pub(crate) fn link(out: &mut Vec<u8>, cid: &Cid) {
    let mh = cid.hash();
    let digest = mh.digest();
    let cid_len = varint_len(1)
        + varint_len(cid.codec())
        + varint_len(mh.code())
        + varint_len(digest.len() as u64)
        + digest.len();
    out.extend_from_slice(&[0xd8, 0x2a]);
    write_cbor_head(out, 2, cid_len as u64 + 1);
    out.push(0);
    varint(out, 1);
    varint(out, cid.codec());
    varint(out, mh.code());
    varint(out, digest.len() as u64);
    out.extend_from_slice(digest);
}

/// An ID address (`f0…`): protocol byte 0, then the id as a varint.
pub(crate) fn id_address(out: &mut Vec<u8>, id: u64) {
    let mut a = Vec::with_capacity(11);
    a.push(0);
    varint(&mut a, id);
    bytes(out, &a);
}

/// A CIDv1 with BLAKE2b-256 under `codec`.
pub(crate) fn blake2b_cid(codec: u64, data: &[u8]) -> Cid {
    let digest = blake2b_simd::Params::new().hash_length(32).hash(data);
    Cid::new_v1(codec, wrap(BLAKE2B_256, digest.as_bytes()))
}

/// An identity-hash CIDv1 under `codec`; `data` must be at most 64 bytes.
pub(crate) fn identity_cid(codec: u64, data: &[u8]) -> Cid {
    Cid::new_v1(codec, wrap(IDENTITY, data))
}

/// Wraps a digest of at most 64 bytes; longer input is cut to 64 bytes, which no caller in
/// this module produces.
pub(crate) fn wrap(code: u64, digest: &[u8]) -> Multihash<64> {
    let d = &digest[..digest.len().min(64)];
    Multihash::<64>::wrap(code, d).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::key::{dag_cbor_blake2b_cid, DAG_CBOR, FIL_COMMITMENT_SEALED, RAW};

    #[test]
    fn link_bytes_are_tag_42_over_prefixed_cid() {
        let cid = dag_cbor_blake2b_cid(b"\x80");
        let mut out = Vec::new();
        link(&mut out, &cid);
        let raw = cid.to_bytes();
        assert_eq!(&out[..2], &[0xd8, 0x2a]);
        assert_eq!(out[2], 0x58);
        assert_eq!(out[3] as usize, raw.len() + 1);
        assert_eq!(out[4], 0);
        assert_eq!(&out[5..], &raw[..]);
    }

    #[test]
    fn link_handles_other_codecs_and_hashes() {
        for cid in [
            identity_cid(RAW, b"abc"),
            Cid::new_v1(FIL_COMMITMENT_SEALED, wrap(0x1012, &[7; 32])),
            blake2b_cid(RAW, b"x"),
        ] {
            let mut out = Vec::new();
            link(&mut out, &cid);
            // Short CIDs get a one-byte string head, longer ones two bytes.
            let start = if out[2] == 0x58 { 5 } else { 4 };
            assert_eq!(out[start - 1], 0);
            assert_eq!(&out[start..], &cid.to_bytes()[..]);
            assert_eq!(Cid::try_from(&out[start..]).ok(), Some(cid));
        }
    }

    #[test]
    fn integers_use_shortest_heads() {
        let mut out = Vec::new();
        int(&mut out, -1);
        int(&mut out, -25);
        int(&mut out, 23);
        uint(&mut out, 24);
        int(&mut out, i64::MIN);
        assert_eq!(&out[..6], &[0x20, 0x38, 0x18, 0x17, 0x18, 0x18]);
        assert_eq!(&out[6..], &[0x3b, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    }

    #[test]
    fn bigints_are_sign_byte_and_minimal_magnitude() {
        let mut out = Vec::new();
        bigint(&mut out, 0);
        bigint(&mut out, 0x0102);
        assert_eq!(out, [0x40, 0x43, 0x00, 0x01, 0x02]);
    }

    #[test]
    fn id_addresses_are_leb128() {
        let mut out = Vec::new();
        id_address(&mut out, 1000);
        assert_eq!(out, [0x43, 0x00, 0xe8, 0x07]);
    }

    #[test]
    fn blake2b_cid_matches_the_key_module_for_dag_cbor() {
        assert_eq!(blake2b_cid(DAG_CBOR, b"\x80"), dag_cbor_blake2b_cid(b"\x80"));
    }
}
