//! Structural DAG-CBOR link scanner.
//!
//! The scanner walks every CBOR item of a block once, without building a value. A link is a
//! CBOR tag 42 whose content is a byte string holding `0x00` followed by exactly one binary
//! CID (an indefinite-length byte string counts as its chunks joined, as in any CBOR decoder);
//! nothing inside a string is ever taken for a link, so a text string that happens to contain
//! the bytes of a tagged CID yields nothing.
//!
//! It accepts what real Filecoin blocks contain and strict DAG-CBOR forbids: text strings with
//! invalid UTF-8 (strings are skipped, never checked), map keys in any order and repeated, any
//! key type, big integers (tags 2 and 3) and other tags, floats of every width, simple values
//! and indefinite-length items.
//!
//! Bounds: the walk is iterative. Open containers live on an explicit stack whose first
//! [`INLINE_DEPTH`] levels sit on the call stack and deeper ones in one `Vec` that grows at
//! most to [`MAX_DEPTH`] entries; nothing is allocated per item. Every declared length or count
//! is compared with the remaining input before use.

use alloc::vec::Vec;
use cid::Cid;
use core::fmt;

use crate::cbor::{Arg, Cursor, ARRAY, BYTES, MAP, NINT, SIMPLE, TAG, TAG_CID, TEXT, UINT};

/// Deepest nesting of arrays and maps the scanner accepts.
pub const MAX_DEPTH: usize = 1 << 16;

/// Nesting levels kept on the call stack before the scanner allocates.
pub const INLINE_DEPTH: usize = 32;

/// Why a block's links could not be read. Every offset is a byte position in the block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkError {
    /// The input ended inside an item, or an item declared more bytes or elements than remain.
    Truncated {
        /// Where more input was needed (the start of the length that does not fit).
        offset: usize,
    },
    /// Arrays and maps are nested deeper than [`MAX_DEPTH`].
    TooDeep {
        /// Head of the container that would exceed the limit.
        offset: usize,
    },
    /// Bytes follow the single top-level item.
    TrailingBytes {
        /// First byte after the item.
        offset: usize,
    },
    /// A tag 42 whose content is not a byte string of `0x00` followed by exactly one CID.
    BadCid {
        /// Head of the tag.
        offset: usize,
    },
    /// A reserved additional-information value (28..=30), or an indefinite length on a major
    /// type that has none (integers, tags).
    InvalidHead {
        /// Head of the item.
        offset: usize,
    },
    /// A break byte (`0xff`) where no indefinite-length item is open, or right after a tag.
    UnexpectedBreak {
        /// The break byte.
        offset: usize,
    },
    /// A chunk of an indefinite-length string is not a definite string of the same type.
    BadChunk {
        /// Head of the chunk.
        offset: usize,
    },
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::Truncated { offset } => {
                write!(f, "input ends inside an item at byte {offset}")
            }
            LinkError::TooDeep { offset } => {
                write!(f, "nesting deeper than {MAX_DEPTH} levels at byte {offset}")
            }
            LinkError::TrailingBytes { offset } => {
                write!(f, "trailing bytes after the item at byte {offset}")
            }
            LinkError::BadCid { offset } => {
                write!(f, "tag 42 at byte {offset} does not hold a CID")
            }
            LinkError::InvalidHead { offset } => write!(f, "invalid item head at byte {offset}"),
            LinkError::UnexpectedBreak { offset } => {
                write!(f, "unexpected break byte at byte {offset}")
            }
            LinkError::BadChunk { offset } => {
                write!(f, "bad chunk in an indefinite-length string at byte {offset}")
            }
        }
    }
}

impl core::error::Error for LinkError {}

/// Calls `f` for every CID (CBOR tag 42) in a DAG-CBOR block, in document order.
///
/// The block must be exactly one CBOR item. On error, `f` has been called for the links
/// before the error position.
pub fn for_each_link(bytes: &[u8], mut f: impl FnMut(Cid)) -> Result<(), LinkError> {
    let mut cur = Cursor::new(bytes);
    scan_item(&mut cur, &mut f)?;
    if cur.remaining() != 0 {
        return Err(LinkError::TrailingBytes { offset: cur.pos() });
    }
    Ok(())
}

/// Appends to `out` the links of the block named by `cid`.
///
/// Blocks of codecs other than DAG-CBOR, identity-hash CIDs and Filecoin commitments have no
/// links: nothing is appended and the bytes are not read. On error `out` is left as it was.
pub fn links_of(cid: &Cid, bytes: &[u8], out: &mut Vec<Cid>) -> Result<(), LinkError> {
    if !crate::key::may_have_links(cid) {
        return Ok(());
    }
    let before = out.len();
    let res = for_each_link(bytes, |c| out.push(c));
    if res.is_err() {
        out.truncate(before);
    }
    res
}

/// Marks an open indefinite-length container on the depth stack.
const INDEFINITE: usize = usize::MAX;

/// Items still expected by each open container, innermost last; [`INDEFINITE`] for
/// indefinite-length containers (they end at a break byte).
struct OpenStack {
    inline: [usize; INLINE_DEPTH],
    spill: Vec<usize>,
    len: usize,
}

impl OpenStack {
    fn new() -> Self {
        OpenStack { inline: [0; INLINE_DEPTH], spill: Vec::new(), len: 0 }
    }

    #[inline]
    fn push(&mut self, remaining: usize, offset: usize) -> Result<(), LinkError> {
        if self.len >= MAX_DEPTH {
            return Err(LinkError::TooDeep { offset });
        }
        if self.len < INLINE_DEPTH {
            self.inline[self.len] = remaining;
        } else {
            self.spill.push(remaining);
        }
        self.len += 1;
        Ok(())
    }

    #[inline]
    fn top_mut(&mut self) -> Option<&mut usize> {
        match self.len {
            0 => None,
            n if n <= INLINE_DEPTH => Some(&mut self.inline[n - 1]),
            _ => self.spill.last_mut(),
        }
    }

    #[inline]
    fn pop(&mut self) {
        if self.len > INLINE_DEPTH {
            self.spill.pop();
        }
        self.len -= 1;
    }
}

/// Scans exactly one item at the cursor, calling `f` for each link, and leaves the cursor
/// after it. Bytes after the item are not looked at.
pub(crate) fn scan_item(cur: &mut Cursor<'_>, f: &mut impl FnMut(Cid)) -> Result<(), LinkError> {
    let mut open = OpenStack::new();
    // True when the previous head was a tag other than 42: its content must follow.
    let mut after_tag = false;
    loop {
        let start = cur.pos();
        let (major, arg) = cur.head()?;
        let tagged = core::mem::replace(&mut after_tag, false);
        match (major, arg) {
            (UINT | NINT | SIMPLE, Arg::Value(_)) => {}
            (BYTES | TEXT, Arg::Value(len)) => {
                cur.take(len)?;
            }
            (BYTES | TEXT, Arg::Indefinite) => skip_chunks(cur, major)?,
            (ARRAY, Arg::Value(n)) if n > 0 => {
                // Every element takes at least one byte.
                if n > cur.remaining() as u64 {
                    return Err(LinkError::Truncated { offset: start });
                }
                open.push(n as usize, start)?;
                continue;
            }
            (MAP, Arg::Value(n)) if n > 0 => {
                // Every entry takes at least two bytes, so `2 * n` cannot overflow.
                if n > (cur.remaining() / 2) as u64 {
                    return Err(LinkError::Truncated { offset: start });
                }
                open.push(2 * n as usize, start)?;
                continue;
            }
            (ARRAY | MAP, Arg::Value(_)) => {}
            (ARRAY | MAP, Arg::Indefinite) => {
                open.push(INDEFINITE, start)?;
                continue;
            }
            (TAG, Arg::Value(TAG_CID)) => f(cur.cid_payload(start)?),
            (TAG, Arg::Value(_)) => {
                after_tag = true;
                continue;
            }
            (SIMPLE, Arg::Indefinite) => match open.top_mut() {
                Some(n) if *n == INDEFINITE && !tagged => open.pop(),
                _ => return Err(LinkError::UnexpectedBreak { offset: start }),
            },
            _ => return Err(LinkError::InvalidHead { offset: start }),
        }
        // One item ended: count it against the innermost open container, closing every
        // container it completes.
        loop {
            match open.top_mut() {
                None => return Ok(()),
                Some(n) if *n == INDEFINITE => break,
                Some(n) => {
                    *n -= 1;
                    if *n != 0 {
                        break;
                    }
                    open.pop();
                }
            }
        }
    }
}

/// Skips the chunks of an indefinite-length string of type `major` and its break byte.
fn skip_chunks(cur: &mut Cursor<'_>, major: u8) -> Result<(), LinkError> {
    while cur.next_chunk(major)?.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests;
