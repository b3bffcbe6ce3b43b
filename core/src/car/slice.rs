//! Reading a CAR that is wholly in memory (a browser `Uint8Array`, a test fixture): blocks
//! borrow the input and nothing is copied.

use alloc::vec::Vec;

use cid::Cid;

use super::machine::{Event, Machine, Parsed};
use super::{Block, CarError, CarHeader, CarLimits, OwnedBlocks};

/// An iterator over the blocks of an in-memory CAR (v1 or v2), in file order.
///
/// [`CarBlocks::new`] reads the header; each `next` reads one section. The first error is
/// yielded once and ends the iteration.
#[derive(Debug)]
pub struct CarBlocks<'a> {
    m: Machine,
    bytes: &'a [u8],
    at: usize,
    header: CarHeader,
    ended: bool,
}

impl<'a> CarBlocks<'a> {
    /// Reads the header of the CAR in `bytes`.
    pub fn new(bytes: &'a [u8], limits: CarLimits) -> Result<Self, CarError> {
        let mut m = Machine::new(limits);
        m.set_total_len(bytes.len() as u64);
        let mut at = 0usize;
        loop {
            match m.step(&bytes[at..])? {
                Parsed::Consumed { len, event } => {
                    at += len;
                    if let Event::Header = event {
                        break;
                    }
                }
                Parsed::Incomplete => {
                    m.finish(bytes.len() - at)?;
                    // `finish` succeeds only after the header; this is the empty input case.
                    return Err(CarError::Truncated { offset: m.pos() });
                }
            }
        }
        let header = m.header().cloned().ok_or(CarError::Truncated { offset: 0 })?;
        Ok(CarBlocks { m, bytes, at, header, ended: false })
    }

    /// The CARv1 header (for a CARv2 file: the payload's, with the CARv2 layout attached).
    pub fn header(&self) -> &CarHeader {
        &self.header
    }

    /// The header's roots.
    pub fn roots(&self) -> &[Cid] {
        &self.header.roots
    }

    /// Offset of the next unread byte.
    pub fn position(&self) -> u64 {
        self.at as u64
    }

    fn read(&mut self) -> Result<Option<Block<'a>>, CarError> {
        loop {
            match self.m.step(&self.bytes[self.at..])? {
                Parsed::Consumed { len, event } => {
                    self.at += len;
                    match event {
                        Event::Block(b) => return Ok(Some(b)),
                        Event::End => return Ok(None),
                        Event::Nothing | Event::Header => {}
                    }
                }
                Parsed::Incomplete => {
                    self.m.finish(self.bytes.len() - self.at)?;
                    return Ok(None);
                }
            }
        }
    }
}

impl<'a> Iterator for CarBlocks<'a> {
    type Item = Result<Block<'a>, CarError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.ended {
            return None;
        }
        let out = self.read();
        if !matches!(out, Ok(Some(_))) {
            self.ended = true;
        }
        out.transpose()
    }
}

impl core::iter::FusedIterator for CarBlocks<'_> {}

/// Reads a whole in-memory CAR: its header and every block (bytes copied out), in file order.
pub fn read_car(bytes: &[u8], limits: CarLimits) -> Result<(CarHeader, OwnedBlocks), CarError> {
    let mut it = CarBlocks::new(bytes, limits)?;
    let mut blocks = Vec::new();
    for b in it.by_ref() {
        let b = b?;
        blocks.push((b.cid, b.data.to_vec()));
    }
    Ok((it.header, blocks))
}
