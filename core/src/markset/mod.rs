//! The mark set: which blocks a compaction found live.
//!
//! Entries are 128-bit fingerprints of the block key under a keyed SipHash-1-3 whose key is
//! drawn fresh for every compaction from the host's entropy ([`crate::Clock::random_seed`]).
//!
//! Why a collision cannot unmark a live object's children, in practice: a walk stops
//! descending at an object whose fingerprint is already present, so a collision between a live
//! object X and a different marked object Y would leave X's children unvisited. For that to
//! happen the two keys must collide under a 128-bit PRF keyed with a secret chosen after the
//! data was written; an adversary cannot aim for it, and by the birthday bound the chance that
//! *any* pair among n marked objects collides is below n²/2¹²⁹ — under 3·10⁻²¹ for a billion
//! objects. `docs/design.md` gives the full argument, and [`ExactSet`] (full keys) exists so
//! the test suites can cross-check that both sets lead to identical compactions.
//!
//! # The table
//!
//! [`FingerprintTable`] stores the fingerprints as `u128` in one flat vector, 16 bytes a slot
//! and nothing else per slot; an all-zero slot is empty. It is built for the two things the
//! compaction does with it: test-and-set during the walk, and membership tests for every hot
//! key during collect, most of which are *misses* (dead keys).
//!
//! * **Any size.** The home slot of a fingerprint is a multiply-shift range reduction of its
//!   upper 64 bits, `(h · homes) >> 64`, so the number of home slots need not be a power of
//!   two: the table holds `n` entries in `⌈n / 0.9⌉` home slots plus a short tail.
//! * **Ordered linear probing.** That home function is non-decreasing in the fingerprint, and
//!   each insertion shifts the rest of its run one slot right to keep it sorted, so the whole
//!   table is sorted (the ordered hash table of Amble and Knuth, with a monotone hash). A
//!   lookup stops at the first empty slot *or larger value*: a miss costs about what a hit
//!   costs, `(1 + 1/(1−α))/2` slots at load α — 5.5 slots (two cache lines) at the maximum
//!   load of 0.9, where plain linear probing would scan about 50 for a miss. A lookup counts
//!   the smaller values among the first 4 slots at once and loops only past them (under half
//!   of the lookups at full load), so independent lookups wait on fewer mispredicted branches.
//!   Insertion moves the rest of the run — about as many slots as a plain miss scans — with
//!   one `memmove`.
//! * **An overflow tail, no wrap-around.** Wrapping would break the order, so runs that pass the
//!   last home slot continue into a tail of a sixteenth of the home range, 4 to 64 slots. The
//!   chance that `t` or more entries spill past the end falls off about as `1.3·e^(−0.23·t)`
//!   at load 0.9 (simulated), so 64 slots overflow with probability about 10⁻⁶; if a run does
//!   reach the last slot the tail is lengthened (the last slot always stays empty and ends
//!   every probe). Fingerprints
//!   are PRF outputs, so runs cannot be aimed; even if every fingerprint shared one home the
//!   table would stay correct, only slow.
//! * **Growth by 1.1×**, when an insertion would pass load 0.9. The old table is already
//!   sorted, so rebuilding is one ordered pass without unpredictable branches that places each
//!   value at the later of its new home and the slot after the previous value: no hashing, no
//!   probing. The small step keeps a grown set within 20 bytes per object too (below), at the
//!   price of moving each entry about ten times over the set's life instead of twice at 1.5×,
//!   each move far cheaper than an insertion. Old and new vectors coexist only during that
//!   pass: 2.1× the old size, where a doubling table needs 3×.
//! * **Zero.** The fingerprint 0 cannot occupy a slot, so it lives in a flag beside the table
//!   and the set stays exact on fingerprints. (Remapping 0 to a fixed non-zero value would be
//!   safe in the sense any collision is: it can make an unmarked block look marked — kept hot,
//!   its children possibly unvisited, with probability 2⁻¹²⁸ per object — but never make a
//!   marked block look unmarked. The flag costs nothing and merges nothing.)
//!
//! Memory per marked object: 16 / 0.9 ≈ 17.8 bytes at maximum load, 19.6 right after a
//! growth step, 18.7 on average across one, plus at most 1 KiB of tail. The compaction
//! pre-sizes for 1.1× the previous compaction's count, which is 19.6 bytes per object when the
//! count has not changed. A `hashbrown` table of the same entries costs 17 bytes per slot
//! at up to 7/8 load over power-of-two sizes: 19–39 bytes per object.

use alloc::vec::Vec;
use core::hash::Hasher;

use hashbrown::HashSet;
use siphasher::sip128::{Hasher128, SipHasher13};

mod table;
#[cfg(test)]
mod tests;

pub use table::FingerprintTable;

/// The operations the compaction needs from a mark set.
pub trait Marks: core::fmt::Debug {
    /// Marks `key`; true when it was not marked before.
    fn mark(&mut self, key: &[u8]) -> bool;
    /// True when `key` is marked.
    fn contains(&self, key: &[u8]) -> bool;
    /// Number of marked objects.
    fn len(&self) -> usize;
    /// True when nothing is marked.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Heap bytes held.
    fn heap_bytes(&self) -> usize;
    /// Heap bytes per marked object.
    fn bytes_per_object(&self) -> f64 {
        if self.len() == 0 {
            0.0
        } else {
            self.heap_bytes() as f64 / self.len() as f64
        }
    }
}

/// The default mark set: keyed 128-bit fingerprints in a [`FingerprintTable`].
#[derive(Debug)]
pub struct MarkSet {
    k0: u64,
    k1: u64,
    table: FingerprintTable,
}

impl MarkSet {
    /// An empty set with room for `capacity` objects, fingerprinting under `seed`.
    pub fn with_capacity(capacity: usize, seed: u128) -> Self {
        Self { k0: seed as u64, k1: (seed >> 64) as u64, table: FingerprintTable::with_capacity(capacity) }
    }

    /// The fingerprint of `key` under this set's secret.
    pub fn fingerprint(&self, key: &[u8]) -> [u8; 16] {
        let mut h = SipHasher13::new_with_keys(self.k0, self.k1);
        h.write(key);
        h.finish128().as_bytes()
    }

    /// The fingerprint of `key` as the table stores it.
    fn entry(&self, key: &[u8]) -> u128 {
        u128::from_le_bytes(self.fingerprint(key))
    }
}

impl Marks for MarkSet {
    fn mark(&mut self, key: &[u8]) -> bool {
        let fp = self.entry(key);
        self.table.insert(fp)
    }

    fn contains(&self, key: &[u8]) -> bool {
        self.table.contains(self.entry(key))
    }

    fn len(&self) -> usize {
        self.table.len()
    }

    fn heap_bytes(&self) -> usize {
        self.table.heap_bytes()
    }
}

/// A mark set of full keys: exact, larger; used to cross-check [`MarkSet`] in tests.
#[derive(Debug, Default)]
pub struct ExactSet {
    table: HashSet<Vec<u8>, core::hash::BuildHasherDefault<siphasher::sip::SipHasher13>>,
}

impl ExactSet {
    /// An empty set.
    pub fn new() -> Self {
        Self { table: HashSet::default() }
    }
}

impl Marks for ExactSet {
    fn mark(&mut self, key: &[u8]) -> bool {
        if self.table.contains(key) {
            false
        } else {
            self.table.insert(key.to_vec())
        }
    }

    fn contains(&self, key: &[u8]) -> bool {
        self.table.contains(key)
    }

    fn len(&self) -> usize {
        self.table.len()
    }

    fn heap_bytes(&self) -> usize {
        self.table.allocation_size() + self.table.iter().map(|k| k.capacity()).sum::<usize>()
    }
}

/// Which mark set a compaction uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MarkSetKind {
    /// Keyed 128-bit fingerprints ([`MarkSet`]).
    #[default]
    Fingerprint,
    /// Full keys ([`ExactSet`]).
    Exact,
}

/// A mark set of either kind.
#[derive(Debug)]
pub enum AnyMarks {
    /// Fingerprints.
    Fingerprint(MarkSet),
    /// Full keys.
    Exact(ExactSet),
}

impl AnyMarks {
    /// A new empty set of `kind`.
    pub fn new(kind: MarkSetKind, capacity: usize, seed: u128) -> Self {
        match kind {
            MarkSetKind::Fingerprint => AnyMarks::Fingerprint(MarkSet::with_capacity(capacity, seed)),
            MarkSetKind::Exact => AnyMarks::Exact(ExactSet::new()),
        }
    }
}

impl Marks for AnyMarks {
    fn mark(&mut self, key: &[u8]) -> bool {
        match self {
            AnyMarks::Fingerprint(s) => s.mark(key),
            AnyMarks::Exact(s) => s.mark(key),
        }
    }
    fn contains(&self, key: &[u8]) -> bool {
        match self {
            AnyMarks::Fingerprint(s) => s.contains(key),
            AnyMarks::Exact(s) => s.contains(key),
        }
    }
    fn len(&self) -> usize {
        match self {
            AnyMarks::Fingerprint(s) => s.len(),
            AnyMarks::Exact(s) => s.len(),
        }
    }
    fn heap_bytes(&self) -> usize {
        match self {
            AnyMarks::Fingerprint(s) => s.heap_bytes(),
            AnyMarks::Exact(s) => s.heap_bytes(),
        }
    }
}
