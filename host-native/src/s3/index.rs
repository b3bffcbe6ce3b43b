//! A batch's index: everything one committed write batch did to the locator, kept in the
//! bucket beside its segment, so that a lost locator can be rebuilt from the bucket alone by
//! replaying the indexes in order.
//!
//! Layout (big-endian): `SSX1`, the batch's number (u64), the counts of puts, deletions and
//! other operations (u32 each), then
//! - each block put, sorted by key: key length (u16), key, offset (u64), length (u32): the
//!   block is in the batch's own segment;
//! - each block deletion, sorted by key: key length (u16), key, and the number of the segment
//!   that held the deleted copy (u64): the record is needed only while that segment's index
//!   still names the key;
//! - each operation on another keyspace, in the batch's order: tag (0 put, 1 delete), the
//!   keyspace's position in [`Space::ALL`] (u8), key length (u32), key, and for a put the
//!   value's length (u32) and the value.
//!
//! An index of puts alone is `idx/<seq>.idx`; one with anything else is `idx/<seq>.log`, so a
//! reclaim reads only the latter to forget deletion records nothing needs any more.

use splitstore_core::{kv::Op, Space};

use super::segment::Loc;

const MAGIC: &[u8; 4] = b"SSX1";

/// One batch's changes to the locator.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchIndex {
    /// The batch's number (its segment's, if it has one).
    pub seq: u64,
    /// Block puts: key, and where in segment `seq` its bytes are.
    pub puts: Vec<(Vec<u8>, Loc)>,
    /// Block deletions: key, and the segment that held the deleted copy.
    pub deletes: Vec<(Vec<u8>, u64)>,
    /// Operations on the other keyspaces.
    pub others: Vec<Op>,
}

impl BatchIndex {
    /// Nothing to replay.
    pub fn is_empty(&self) -> bool {
        self.puts.is_empty() && self.deletes.is_empty() && self.others.is_empty()
    }

    /// Only puts: no reclaim needs to read it.
    pub fn puts_only(&self) -> bool {
        self.deletes.is_empty() && self.others.is_empty()
    }

    /// The encoded index (module docs). Sorts the puts and deletions.
    pub fn encode(&mut self) -> Vec<u8> {
        self.puts.sort_by(|a, b| a.0.cmp(&b.0));
        self.deletes.sort_by(|a, b| a.0.cmp(&b.0));
        let mut out = Vec::with_capacity(28 + self.puts.len() * 48 + self.deletes.len() * 44);
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.seq.to_be_bytes());
        for n in [self.puts.len(), self.deletes.len(), self.others.len()] {
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        for (key, loc) in &self.puts {
            out.extend_from_slice(&(key.len() as u16).to_be_bytes());
            out.extend_from_slice(key);
            out.extend_from_slice(&loc.offset.to_be_bytes());
            out.extend_from_slice(&loc.len.to_be_bytes());
        }
        for (key, seq) in &self.deletes {
            out.extend_from_slice(&(key.len() as u16).to_be_bytes());
            out.extend_from_slice(key);
            out.extend_from_slice(&seq.to_be_bytes());
        }
        for op in &self.others {
            let (tag, space, key, value) = match op {
                Op::Put { space, key, value } => (0u8, space, key, Some(value)),
                Op::Delete { space, key } => (1u8, space, key, None),
            };
            out.push(tag);
            out.push(Space::ALL.iter().position(|s| s == space).unwrap_or(0) as u8);
            out.extend_from_slice(&(key.len() as u32).to_be_bytes());
            out.extend_from_slice(key);
            if let Some(v) = value {
                out.extend_from_slice(&(v.len() as u32).to_be_bytes());
                out.extend_from_slice(v);
            }
        }
        out
    }

    /// The inverse of [`BatchIndex::encode`]; a description of the first fault otherwise.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        let mut r = Reader(bytes);
        if r.take(4)? != MAGIC {
            return Err("not a batch index (bad magic)".into());
        }
        let seq = r.u64()?;
        let (puts, deletes, others) = (r.u32()?, r.u32()?, r.u32()?);
        // The smallest entries (empty keys and values) take 14, 10 and 6 bytes: counts that
        // the bytes cannot hold are damage, refused before anything is allocated for them.
        let least = 14 * u64::from(puts) + 10 * u64::from(deletes) + 6 * u64::from(others);
        if least > r.0.len() as u64 {
            return Err("counts larger than the index".into());
        }
        let mut index = BatchIndex { seq, ..Default::default() };
        for _ in 0..puts {
            let n = r.u16()? as usize;
            let key = r.take(n)?.to_vec();
            let (offset, len) = (r.u64()?, r.u32()?);
            index.puts.push((key, Loc { seq, offset, len }));
        }
        for _ in 0..deletes {
            let n = r.u16()? as usize;
            let key = r.take(n)?.to_vec();
            index.deletes.push((key, r.u64()?));
        }
        for _ in 0..others {
            let tag = r.take(1)?[0];
            let space = *Space::ALL.get(r.take(1)?[0] as usize).ok_or("an unknown keyspace")?;
            let n = r.u32()? as usize;
            let key = r.take(n)?.to_vec();
            index.others.push(match tag {
                0 => {
                    let n = r.u32()? as usize;
                    Op::Put { space, key, value: r.take(n)?.to_vec() }
                }
                1 => Op::Delete { space, key },
                t => return Err(format!("an unknown operation tag {t}")),
            });
        }
        if !r.0.is_empty() {
            return Err(format!("{} bytes after the last entry", r.0.len()));
        }
        Ok(index)
    }
}

/// The object name of batch `seq`'s index under `idx/`.
pub fn name(seq: u64, puts_only: bool) -> String {
    format!("{seq:016x}.{}", if puts_only { "idx" } else { "log" })
}

/// The batch number and kind (`true`: puts only) an index object's file name gives.
pub fn parse_name(file: &str) -> Option<(u64, bool)> {
    let (hex, ext) = file.split_once('.')?;
    let puts_only = match ext {
        "idx" => true,
        "log" => false,
        _ => return None,
    };
    Some((u64::from_str_radix(hex, 16).ok()?, puts_only))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        if self.0.len() < n {
            return Err(format!("cut short: {n} bytes wanted, {} left", self.0.len()));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u16(&mut self) -> Result<u16, String> {
        Ok(u16::from_be_bytes(self.take(2)?.try_into().expect("2 bytes")))
    }
    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }
    fn u64(&mut self) -> Result<u64, String> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_index_reads_back_sorted_and_damage_is_refused() {
        let mut index = BatchIndex {
            seq: 0x2a,
            puts: vec![
                (vec![3; 34], Loc { seq: 0x2a, offset: 99, len: 7 }),
                (vec![1; 34], Loc { seq: 0x2a, offset: 11, len: 0 }),
            ],
            deletes: vec![(vec![9; 34], 4), (vec![2; 34], 0)],
            others: vec![
                Op::Put { space: Space::Meta, key: b"m".to_vec(), value: b"v".to_vec() },
                Op::Delete { space: Space::ColdList, key: vec![] },
            ],
        };
        let bytes = index.encode();
        let back = BatchIndex::decode(&bytes).expect("reads back");
        assert_eq!(back, index);
        assert_eq!(back.puts[0].0, vec![1; 34], "puts sorted by key");
        assert_eq!(back.deletes[0].0, vec![2; 34], "deletions sorted by key");
        assert_eq!(name(index.seq, index.puts_only()), "000000000000002a.log");
        assert_eq!(parse_name("000000000000002a.log"), Some((0x2a, false)));
        assert_eq!(parse_name(&name(7, true)), Some((7, true)));
        assert_eq!(parse_name("0007.car"), None);
        // Empty keys and values are entries too.
        let mut empty = BatchIndex {
            seq: 3,
            puts: vec![(vec![], Loc { seq: 3, offset: 0, len: 0 })],
            deletes: vec![(vec![], 1)],
            others: vec![Op::Delete { space: Space::Meta, key: vec![] }],
        };
        assert_eq!(BatchIndex::decode(&empty.encode()), Ok(empty));
        // Every cut is refused, and so are trailing bytes.
        for cut in 0..bytes.len() {
            assert!(BatchIndex::decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        assert!(BatchIndex::decode(&[&bytes[..], &[0]].concat()).is_err());
        let puts_only = BatchIndex { seq: 1, puts: index.puts.clone(), ..Default::default() };
        assert!(puts_only.puts_only() && !puts_only.is_empty());
        assert!(BatchIndex::default().is_empty());
    }
}
