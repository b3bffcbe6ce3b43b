//! CAR (Content Addressable aRchive) files: a CARv1 and CARv2 reader and a CARv1 writer.
//!
//! A CARv1 file is a varint-prefixed DAG-CBOR header `{version: 1, roots: [cid, ...]}`
//! followed by sections `varint(len) cid block-bytes`. A CARv2 file starts with the 11-byte
//! pragma [`PRAGMA`], then a 40-byte header (16 bytes of characteristics, then the payload
//! offset, payload size and index offset as little-endian u64), and holds a CARv1 file in
//! `[data_offset, data_offset + data_size)`; its index is ignored.
//!
//! Three ways in, one state machine underneath:
//! - [`CarDecoder`]: push bytes in chunks of any size (a multi-gigabyte file through a fixed
//!   buffer);
//! - [`CarBlocks`]: iterate the blocks of a CAR held in memory, without copying;
//! - [`read_car`]: collect a whole in-memory CAR.
//!
//! Untrusted input is bounded everywhere: a declared length is checked against
//! [`CarLimits`] before any byte is buffered, buffers grow only as bytes arrive, CARv2
//! offsets are range-checked, and every block is checked against its CID unless
//! [`CarLimits::verify_hashes`] is off. Bad input yields a [`CarError`] naming the problem
//! and its byte offset; it never panics or loops.

mod decoder;
mod error;
mod header;
mod machine;
mod slice;
#[cfg(test)]
mod tests;
mod writer;

use alloc::vec::Vec;

use cid::Cid;

pub use decoder::{CarDecoder, Step};
pub use error::CarError;
pub use header::PRAGMA;
pub use slice::{read_car, CarBlocks};
pub use writer::{encode_header_v1, encode_section, export_cid, write_car_v1};

/// Blocks copied out of a CAR, in file order.
pub type OwnedBlocks = Vec<(Cid, Vec<u8>)>;

/// What the decoder accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CarLimits {
    /// Largest CARv1 header, in bytes. Default 1 MiB.
    pub max_header_len: u64,
    /// Largest section (CID plus block), in bytes. Default 8 MiB: Filecoin chain and state
    /// blocks are far smaller, and the largest actor-bundle WASM blocks are under 2 MiB.
    pub max_section_len: u64,
    /// Most roots a header may list. Default 16384.
    pub max_roots: u64,
    /// Check every block against its CID (SHA2-256, BLAKE2b-256, identity; any other hash
    /// function is [`CarError::UnsupportedHash`]). Default on.
    pub verify_hashes: bool,
    /// Read a zero-length section as the end of the data (some writers pad files with zero
    /// bytes); everything after it is ignored. Default off: it is
    /// [`CarError::ZeroLengthSection`].
    pub zero_length_section_as_eof: bool,
}

impl Default for CarLimits {
    fn default() -> Self {
        CarLimits {
            max_header_len: 1 << 20,
            max_section_len: 8 << 20,
            max_roots: 16_384,
            verify_hashes: true,
            zero_length_section_as_eof: false,
        }
    }
}

/// The layout a CARv2 header declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct V2Header {
    /// Characteristics bitfield (bit 0 of byte 0, the most significant: "fully indexed").
    pub characteristics: [u8; 16],
    /// Offset of the CARv1 payload.
    pub data_offset: u64,
    /// Size of the CARv1 payload.
    pub data_size: u64,
    /// Offset of the index, 0 when there is none.
    pub index_offset: u64,
}

/// A CAR's header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CarHeader {
    /// 1 or 2: the version of the file (the payload of a CARv2 file is always version 1).
    pub version: u64,
    /// The roots, possibly none, in header order.
    pub roots: Vec<Cid>,
    /// For a CARv2 file, its layout.
    pub v2: Option<V2Header>,
}

/// One block, borrowed from the input (or the decoder's buffer).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block<'a> {
    /// The block's CID as written in its section. Identity-hash CIDs are returned like any
    /// other; the store ignores them.
    pub cid: Cid,
    /// The block's bytes.
    pub data: &'a [u8],
    /// Stream offset of the section's length prefix.
    pub offset: u64,
}
