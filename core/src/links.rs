//! Structural DAG-CBOR link scanner. (Being written: signatures are final.)

use cid::Cid;
use core::fmt;

/// Why a block's links could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkError {
    /// The input ended inside an item.
    Truncated {
        /// Byte offset where more input was needed.
        offset: usize,
    },
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Truncated { offset } => write!(f, "input ends inside an item at byte {offset}"),
        }
    }
}

impl core::error::Error for LinkError {}

/// Calls `f` for every CID (CBOR tag 42) in a DAG-CBOR block, in document order.
pub fn for_each_link(bytes: &[u8], f: impl FnMut(Cid)) -> Result<(), LinkError> {
    let _ = (bytes, f);
    Ok(())
}
