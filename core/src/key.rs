//! Block identity: the store keys blocks by multihash, not by full CID, so the same bytes
//! stored under two codecs are one block.

use alloc::vec::Vec;

use cid::Cid;

/// Multicodec of DAG-CBOR, the only codec whose blocks carry links.
pub const DAG_CBOR: u64 = 0x71;
/// Multicodec of raw bytes.
pub const RAW: u64 = 0x55;
/// Multicodec of Filecoin unsealed sector commitments.
pub const FIL_COMMITMENT_UNSEALED: u64 = 0xf101;
/// Multicodec of Filecoin sealed sector commitments.
pub const FIL_COMMITMENT_SEALED: u64 = 0xf102;
/// Multihash code of the identity "hash" (the digest is the data).
pub const IDENTITY: u64 = 0x00;
/// Multihash code of SHA2-256.
pub const SHA2_256: u64 = 0x12;
/// Multihash code of BLAKE2b-256.
pub const BLAKE2B_256: u64 = 0xb220;

/// The key of a block in every keyspace that holds blocks: its multihash bytes
/// (`varint(code) varint(len) digest`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlockKey(Vec<u8>);

impl BlockKey {
    /// The key of `cid`'s block.
    pub fn of(cid: &Cid) -> Self {
        KeyBuf::of(cid).to_block_key()
    }

    /// Wraps stored key bytes (as returned by a scan).
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        BlockKey(bytes)
    }

    /// The multihash bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Takes the bytes out.
    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// A raw-codec CIDv1 naming this block (the codec is not part of a block's identity, so
    /// this is how keys read back from a scan are turned into CIDs for export or display).
    pub fn to_raw_cid(&self) -> Option<Cid> {
        let mh = multihash::Multihash::<64>::from_bytes(&self.0).ok()?;
        Some(Cid::new_v1(RAW, mh))
    }
}

/// Longest key: a code varint of at most 10 bytes, a size varint of one (digests hold at most
/// 64 bytes), and the digest.
const KEY_MAX: usize = 10 + 1 + 64;

/// A block's key built on the stack (the one encoding of a key; [`BlockKey::of`] copies it
/// out), for the walks' checks of the mark set, which would otherwise allocate a key for each.
#[derive(Clone)]
pub(crate) struct KeyBuf {
    len: u8,
    bytes: [u8; KEY_MAX],
}

impl KeyBuf {
    /// The key of `cid`'s block.
    pub fn of(cid: &Cid) -> Self {
        let mh = cid.hash();
        Self::of_multihash(mh.code(), mh.digest())
    }

    /// The key of a block whose BLAKE2b-256 digest is `digest`.
    pub fn of_blake2b_256(digest: &[u8; 32]) -> Self {
        Self::of_multihash(BLAKE2B_256, digest)
    }

    /// The key of a block whose multihash is `code` and `digest` (at most 64 bytes).
    fn of_multihash(code: u64, digest: &[u8]) -> Self {
        let mut k = KeyBuf { len: 0, bytes: [0; KEY_MAX] };
        let mut at = 0;
        let mut code = code;
        loop {
            let low = (code & 0x7f) as u8;
            code >>= 7;
            if code == 0 {
                k.bytes[at] = low;
                at += 1;
                break;
            }
            k.bytes[at] = low | 0x80;
            at += 1;
        }
        // `Multihash<64>` holds at most 64 digest bytes: the size is one varint byte.
        k.bytes[at] = digest.len() as u8;
        at += 1;
        k.bytes[at..at + digest.len()].copy_from_slice(digest);
        k.len = (at + digest.len()) as u8;
        k
    }

    /// The key bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The key as an owned [`BlockKey`].
    pub fn to_block_key(&self) -> BlockKey {
        BlockKey(self.as_bytes().to_vec())
    }
}

impl core::fmt::Debug for BlockKey {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("BlockKey(")?;
        for b in &self.0 {
            write!(f, "{b:02x}")?;
        }
        f.write_str(")")
    }
}

/// True for identity-hash CIDs: never stored, `has` is true, `get` returns the digest.
pub fn is_identity(cid: &Cid) -> bool {
    cid.hash().code() == IDENTITY
}

/// True for objects that are never stored, walked, marked, tracked or fetched: identity CIDs
/// and Filecoin sector commitments.
pub fn is_unitary(cid: &Cid) -> bool {
    is_identity(cid) || matches!(cid.codec(), FIL_COMMITMENT_UNSEALED | FIL_COMMITMENT_SEALED)
}

/// True when the block named by `cid` may contain links.
pub fn may_have_links(cid: &Cid) -> bool {
    cid.codec() == DAG_CBOR && !is_unitary(cid)
}

/// Checks that `bytes` hash to `cid`. Supports SHA2-256, BLAKE2b-256 and identity.
pub fn verify(cid: &Cid, bytes: &[u8]) -> Result<(), crate::Error> {
    let digest = cid.hash().digest();
    let ok = match cid.hash().code() {
        IDENTITY => digest == bytes,
        SHA2_256 => {
            use sha2::Digest;
            sha2::Sha256::digest(bytes).as_slice() == digest
        }
        BLAKE2B_256 => blake2b_simd::Params::new().hash_length(32).hash(bytes).as_bytes() == digest,
        _ => return Err(crate::Error::UnsupportedHash { cid: *cid }),
    };
    if ok {
        Ok(())
    } else {
        Err(crate::Error::HashMismatch { cid: *cid })
    }
}

/// The CIDv1 of a DAG-CBOR block hashed with BLAKE2b-256 (Filecoin's chain objects).
pub fn dag_cbor_blake2b_cid(bytes: &[u8]) -> Cid {
    let digest = blake2b_simd::Params::new().hash_length(32).hash(bytes);
    // A 32-byte digest always fits a 64-byte multihash.
    let mh = multihash::Multihash::<64>::wrap(BLAKE2B_256, digest.as_bytes()).expect("32-byte digest fits");
    Cid::new_v1(DAG_CBOR, mh)
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec;

    #[test]
    fn keys_are_the_multihash_bytes() {
        let mut cids = vec![dag_cbor_blake2b_cid(b"a"), dag_cbor_blake2b_cid(b"b")];
        // Codes of one to ten varint bytes, digests of 0 to 64 bytes.
        for (code, len) in [(IDENTITY, 0), (IDENTITY, 5), (SHA2_256, 32), (BLAKE2B_256, 64), (0x7f, 1), (0x80, 63)]
            .into_iter()
            .chain([(1u64 << 35, 20), (u64::MAX, 64)])
        {
            let digest: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37)).collect();
            let mh = multihash::Multihash::<64>::wrap(code, &digest).unwrap();
            cids.push(Cid::new_v1(DAG_CBOR, mh));
            cids.push(Cid::new_v1(RAW, mh));
        }
        for cid in &cids {
            // The multihash crate's own encoding is the reference.
            assert_eq!(KeyBuf::of(cid).as_bytes(), cid.hash().to_bytes(), "{cid}");
            assert_eq!(BlockKey::of(cid).as_bytes(), cid.hash().to_bytes(), "{cid}");
            if let (BLAKE2B_256, Ok(d)) = (cid.hash().code(), <&[u8; 32]>::try_from(cid.hash().digest())) {
                assert_eq!(KeyBuf::of_blake2b_256(d).as_bytes(), cid.hash().to_bytes(), "{cid}");
            }
        }
    }
}
