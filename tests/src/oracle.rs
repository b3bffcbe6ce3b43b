//! An independent, obviously-correct model of what must stay: decodes blocks with
//! `serde_ipld_dagcbor` (not the engine's scanner or header decoder), walks recursively over
//! a plain map, and computes the live set of a head the way `docs/design.md` defines it.

use std::collections::{HashMap, HashSet};

use cid::Cid;
use ipld_core::ipld::Ipld;

/// Multihash bytes: the engine's block identity, computed here without engine code.
pub fn key_of(c: &Cid) -> Vec<u8> {
    c.hash().to_bytes()
}

fn unitary(c: &Cid) -> bool {
    c.hash().code() == 0 || matches!(c.codec(), 0xf101 | 0xf102)
}

/// Every CID in a DAG-CBOR block: by full decode, or for blocks that are not strict
/// DAG-CBOR (real chains have unsorted maps and invalid UTF-8) by a plain recursive CBOR
/// walk. `None` when neither can read the block.
pub fn links(bytes: &[u8]) -> Option<Vec<Cid>> {
    strict_links(bytes).or_else(|| {
        let mut out = Vec::new();
        let mut pos = 0;
        lenient_item(bytes, &mut pos, &mut out, 0)?;
        Some(out)
    })
}

fn lenient_arg(b: &[u8], pos: &mut usize, info: u8) -> Option<u64> {
    let n = match info {
        0..=23 => return Some(u64::from(info)),
        24 => 1,
        25 => 2,
        26 => 4,
        27 => 8,
        _ => return None,
    };
    let s = b.get(*pos..*pos + n)?;
    *pos += n;
    Some(s.iter().fold(0u64, |a, &x| (a << 8) | u64::from(x)))
}

fn lenient_item(b: &[u8], pos: &mut usize, out: &mut Vec<Cid>, depth: usize) -> Option<()> {
    if depth > 256 {
        return None;
    }
    let ib = *b.get(*pos)?;
    *pos += 1;
    let (major, info) = (ib >> 5, ib & 0x1f);
    let n = lenient_arg(b, pos, info)?;
    match major {
        0 | 1 | 7 => Some(()),
        2 | 3 => {
            *pos = pos.checked_add(n as usize).filter(|&p| p <= b.len())?;
            Some(())
        }
        4 => (0..n).try_for_each(|_| lenient_item(b, pos, out, depth + 1)),
        5 => (0..n * 2).try_for_each(|_| lenient_item(b, pos, out, depth + 1)),
        6 if n == 42 => {
            // A byte string holding 0x00 (identity multibase) and the CID bytes.
            let hb = *b.get(*pos)?;
            *pos += 1;
            if hb >> 5 != 2 {
                return None;
            }
            let len = lenient_arg(b, pos, hb & 0x1f)? as usize;
            let body = b.get(*pos..pos.checked_add(len)?)?;
            *pos += len;
            out.push(Cid::try_from(body.get(1..)?).ok()?);
            Some(())
        }
        6 => lenient_item(b, pos, out, depth + 1),
        _ => None,
    }
}

fn strict_links(bytes: &[u8]) -> Option<Vec<Cid>> {
    let v: Ipld = serde_ipld_dagcbor::from_slice(bytes).ok()?;
    let mut out = Vec::new();
    let mut stack = vec![&v];
    while let Some(x) = stack.pop() {
        match x {
            Ipld::Link(c) => out.push(*c),
            Ipld::List(l) => stack.extend(l.iter()),
            Ipld::Map(m) => stack.extend(m.values()),
            _ => {}
        }
    }
    Some(out)
}

/// The header fields the live set depends on.
#[derive(Clone, Debug)]
pub struct HeaderView {
    /// Parents.
    pub parents: Vec<Cid>,
    /// Height.
    pub height: i64,
    /// ParentStateRoot.
    pub state_root: Cid,
    /// ParentMessageReceipts.
    pub receipts: Cid,
    /// Messages.
    pub messages: Cid,
}

/// Decodes a 13- or 16-field header by full decode.
pub fn header(bytes: &[u8]) -> Option<HeaderView> {
    let Ipld::List(f) = serde_ipld_dagcbor::from_slice::<Ipld>(bytes).ok()? else { return None };
    let (p, h, s, r, m) = match f.len() {
        13 => (3, 5, 6, 7, 8),
        16 => (5, 7, 8, 9, 10),
        _ => return None,
    };
    let link = |i: usize| match &f[i] {
        Ipld::Link(c) => Some(*c),
        _ => None,
    };
    let parents = match &f[p] {
        Ipld::List(l) => {
            l.iter().map(|x| if let Ipld::Link(c) = x { Some(*c) } else { None }).collect::<Option<Vec<_>>>()?
        }
        _ => return None,
    };
    let height = match &f[h] {
        Ipld::Integer(i) => i64::try_from(*i).ok()?,
        _ => return None,
    };
    Some(HeaderView { parents, height, state_root: link(s)?, receipts: link(r)?, messages: link(m)? })
}

/// The CID of a tipset's key object: BLAKE2b-256 over a CBOR byte string of the block CIDs.
pub fn tipset_key_cid(blocks: &[Cid]) -> Cid {
    let inner: Vec<u8> = blocks.iter().flat_map(|c| c.to_bytes()).collect();
    let mut enc = Vec::new();
    let n = inner.len();
    if n < 24 {
        enc.push(0x40 | n as u8);
    } else if n < 256 {
        enc.extend_from_slice(&[0x58, n as u8]);
    } else {
        enc.push(0x59);
        enc.extend_from_slice(&(n as u16).to_be_bytes());
    }
    enc.extend_from_slice(&inner);
    let d = blake2b_simd::Params::new().hash_length(32).hash(&enc);
    Cid::new_v1(0x71, cid::multihash::Multihash::<64>::wrap(0xb220, d.as_bytes()).expect("32 bytes"))
}

/// Blocks by key: the union of every store a test looks at.
#[derive(Clone, Debug, Default)]
pub struct Universe {
    /// Block bytes by multihash key.
    pub blocks: HashMap<Vec<u8>, Vec<u8>>,
}

/// Result of a closure walk.
#[derive(Clone, Debug, Default)]
pub struct Closure {
    /// Keys of present objects reached.
    pub present: HashSet<Vec<u8>>,
    /// DAG-CBOR CIDs reached but absent.
    pub missing: Vec<Cid>,
}

impl Universe {
    /// Adds blocks.
    pub fn extend(&mut self, blocks: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>) {
        self.blocks.extend(blocks);
    }

    /// Everything reachable from `roots` through links (recursively, on a plain stack),
    /// skipping unitary CIDs. Non-DAG-CBOR objects are leaves.
    pub fn closure(&self, roots: &[Cid]) -> Closure {
        let mut out = Closure::default();
        let mut seen = HashSet::new();
        let mut stack: Vec<Cid> = roots.to_vec();
        while let Some(c) = stack.pop() {
            if unitary(&c) || !seen.insert(key_of(&c)) {
                continue;
            }
            match self.blocks.get(&key_of(&c)) {
                Some(b) => {
                    out.present.insert(key_of(&c));
                    if c.codec() == 0x71 {
                        stack.extend(links(b).unwrap_or_default());
                    }
                }
                None if c.codec() == 0x71 => out.missing.push(c),
                None => {}
            }
        }
        out
    }

    /// The live set of a head, as `docs/design.md` defines it, restricted to present blocks:
    /// headers to genesis, tipset-key objects of the head and of every header's parents,
    /// state of headers at or above `boundary` and of genesis, messages and receipts of
    /// headers at or above `include_messages` (height > 0).
    pub fn live_set(&self, head: &[Cid], boundary: i64, include_messages: i64) -> Closure {
        self.chain_set(head, |height| (height >= include_messages && height > 0, height >= boundary || height == 0))
    }

    /// What a cold prune's chain walk keeps, as `docs/design.md` defines it, restricted to
    /// present blocks: headers to genesis, tipset-key objects, state of headers at or above
    /// `retain_state_from` (all state when `None`) and of genesis, messages and receipts of the
    /// same headers or, with `all_messages`, of every header (height > 0).
    pub fn prune_set(&self, head: &[Cid], retain_state_from: Option<i64>, all_messages: bool) -> Closure {
        self.chain_set(head, |height| {
            let retained = retain_state_from.is_none_or(|f| height >= f);
            (height > 0 && (all_messages || retained), height == 0 || retained)
        })
    }

    /// Headers back to genesis, the tipset-key objects that are stored, and the DAGs `keep`
    /// names for a header's height: `(messages and receipts, state)`.
    pub fn chain_set(&self, head: &[Cid], keep: impl Fn(i64) -> (bool, bool)) -> Closure {
        let mut roots = Vec::new();
        let mut tipset_keys = vec![tipset_key_cid(head)];
        let mut headers = HashSet::new();
        let mut generation: Vec<Cid> = head.to_vec();
        let mut out = Closure::default();
        while !generation.is_empty() {
            let mut next = Vec::new();
            for c in generation {
                if !headers.insert(key_of(&c)) {
                    continue;
                }
                let Some(bytes) = self.blocks.get(&key_of(&c)) else {
                    out.missing.push(c);
                    continue;
                };
                out.present.insert(key_of(&c));
                let h = header(bytes).expect("chain block decodes as a header");
                if !h.parents.is_empty() {
                    tipset_keys.push(tipset_key_cid(&h.parents));
                }
                let (messages, state) = keep(h.height);
                if messages {
                    roots.push(h.messages);
                    roots.push(h.receipts);
                }
                if state {
                    roots.push(h.state_root);
                }
                if h.height > 0 {
                    next.extend(h.parents);
                }
            }
            generation = next;
        }
        // Tipset-key objects are optional (chain exports omit them): present ones only.
        roots.extend(tipset_keys.into_iter().filter(|k| self.blocks.contains_key(&key_of(k))));
        let c = self.closure(&roots);
        out.present.extend(c.present);
        out.missing.extend(c.missing);
        out
    }

    /// Message and receipt DAG roots of headers below `include_messages` (height > 0).
    pub fn old_message_roots(&self, head: &[Cid], include_messages: i64) -> Vec<Cid> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut generation: Vec<Cid> = head.to_vec();
        while !generation.is_empty() {
            let mut next = Vec::new();
            for c in generation {
                if !seen.insert(c) {
                    continue;
                }
                let Some(h) = self.blocks.get(&key_of(&c)).and_then(|b| header(b)) else { continue };
                if h.height < include_messages && h.height > 0 {
                    out.push(h.messages);
                    out.push(h.receipts);
                }
                if h.height > 0 {
                    next.extend(h.parents);
                }
            }
            generation = next;
        }
        out
    }
}

fn uvarint(b: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = b[*pos];
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

/// A minimal CARv1 reader for trusted test files, independent of the engine's decoder:
/// returns the roots and every block.
pub fn read_car_v1(bytes: &[u8]) -> (Vec<Cid>, Vec<(Cid, Vec<u8>)>) {
    let mut pos = 0;
    let hlen = uvarint(bytes, &mut pos) as usize;
    let header: Ipld = serde_ipld_dagcbor::from_slice(&bytes[pos..pos + hlen]).expect("CAR header");
    pos += hlen;
    let roots = match header {
        Ipld::Map(m) => match m.get("roots") {
            Some(Ipld::List(l)) => {
                l.iter().filter_map(|r| if let Ipld::Link(c) = r { Some(*c) } else { None }).collect()
            }
            _ => Vec::new(),
        },
        _ => panic!("CAR header is not a map"),
    };
    let mut blocks = Vec::new();
    while pos < bytes.len() {
        let len = uvarint(bytes, &mut pos) as usize;
        let section = &bytes[pos..pos + len];
        let mut cursor = std::io::Cursor::new(section);
        let cid = Cid::read_bytes(&mut cursor).expect("section CID");
        let at = cursor.position() as usize;
        blocks.push((cid, section[at..].to_vec()));
        pos += len;
    }
    (roots, blocks)
}
