//! Why a CAR stream was rejected. Every variant names the problem and, where it has one, the
//! absolute byte offset in the stream (for a CARv2 file: in the whole file, not the payload).

use core::fmt;

use cid::Cid;

/// A CAR (v1 or v2) stream could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CarError {
    /// The first header says version 2 but is not the exact 11-byte CARv2 pragma.
    BadPragma {
        /// Offset of the header.
        offset: u64,
    },
    /// The header names a CAR version this decoder does not read (only 1 and 2 exist).
    UnsupportedVersion {
        /// The version found.
        version: u64,
    },
    /// The CARv1 header is not the DAG-CBOR map `{version, roots}` it must be.
    BadHeader {
        /// Offset of the offending byte.
        offset: u64,
        /// What was wrong.
        detail: &'static str,
    },
    /// The CARv1 header declares more bytes than the configured limit.
    HeaderTooLarge {
        /// Offset of the header's length prefix.
        offset: u64,
        /// The declared length.
        len: u64,
        /// The limit in force.
        limit: u64,
    },
    /// The header lists more roots than the configured limit.
    TooManyRoots {
        /// Offset of the roots array.
        offset: u64,
        /// How many roots it declares.
        count: u64,
        /// The limit in force.
        limit: u64,
    },
    /// The 40-byte CARv2 header describes an impossible layout.
    BadV2Header {
        /// What was wrong.
        detail: &'static str,
        /// The declared offset of the CARv1 payload.
        data_offset: u64,
        /// The declared size of the CARv1 payload.
        data_size: u64,
        /// The declared offset of the index (0 = none).
        index_offset: u64,
    },
    /// A section declares more bytes than the configured limit.
    SectionTooLarge {
        /// Offset of the section's length prefix.
        offset: u64,
        /// The declared length.
        len: u64,
        /// The limit in force.
        limit: u64,
    },
    /// A section has length zero (only accepted as end-of-data when so configured).
    ZeroLengthSection {
        /// Offset of the section.
        offset: u64,
    },
    /// A section (or a header root) does not start with a valid binary CID.
    BadCid {
        /// Offset of the CID.
        offset: u64,
    },
    /// A block's bytes do not hash to its CID.
    HashMismatch {
        /// Offset of the section.
        offset: u64,
        /// The CID the section names.
        cid: Cid,
    },
    /// A block's CID uses a hash function this build cannot verify.
    UnsupportedHash {
        /// Offset of the section.
        offset: u64,
        /// The CID the section names.
        cid: Cid,
    },
    /// The data ended inside an item (header, CARv2 header or section).
    Truncated {
        /// Offset where the unfinished item starts.
        offset: u64,
    },
    /// A length prefix is longer than the 10 bytes a 64-bit varint may take, or overflows.
    VarintOverflow {
        /// Offset of the varint.
        offset: u64,
    },
    /// A length prefix is not in its shortest form, as multiformats varints must be.
    NonMinimalVarint {
        /// Offset of the varint.
        offset: u64,
    },
}

impl fmt::Display for CarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CarError::BadPragma { offset } => {
                write!(f, "the header at byte {offset} claims version 2 but is not the CARv2 pragma")
            }
            CarError::UnsupportedVersion { version } => {
                write!(f, "CAR version {version} is not supported (only 1 and 2 are)")
            }
            CarError::BadHeader { offset, detail } => {
                write!(f, "invalid CAR header at byte {offset}: {detail}")
            }
            CarError::HeaderTooLarge { offset, len, limit } => {
                write!(f, "the CAR header at byte {offset} declares {len} bytes; the limit is {limit}")
            }
            CarError::TooManyRoots { offset, count, limit } => {
                write!(f, "the CAR header lists {count} roots at byte {offset}; the limit is {limit}")
            }
            CarError::BadV2Header { detail, data_offset, data_size, index_offset } => write!(
                f,
                "invalid CARv2 header: {detail} (data offset {data_offset}, data size \
                 {data_size}, index offset {index_offset})"
            ),
            CarError::SectionTooLarge { offset, len, limit } => {
                write!(f, "the section at byte {offset} declares {len} bytes; the limit is {limit}")
            }
            CarError::ZeroLengthSection { offset } => {
                write!(f, "the section at byte {offset} is empty (length zero)")
            }
            CarError::BadCid { offset } => write!(f, "no valid CID at byte {offset}"),
            CarError::HashMismatch { offset, cid } => {
                write!(f, "the block in the section at byte {offset} does not hash to its CID {cid}")
            }
            CarError::UnsupportedHash { offset, cid } => {
                write!(f, "cannot verify the block at byte {offset}: unsupported hash function in {cid}")
            }
            CarError::Truncated { offset } => {
                write!(f, "the data ends inside the item that starts at byte {offset}")
            }
            CarError::VarintOverflow { offset } => {
                write!(f, "the varint at byte {offset} does not fit in 64 bits")
            }
            CarError::NonMinimalVarint { offset } => {
                write!(f, "the varint at byte {offset} is not minimally encoded")
            }
        }
    }
}

impl core::error::Error for CarError {}
