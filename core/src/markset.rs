//! The mark set: which blocks a compaction found live.
//!
//! Entries are 128-bit fingerprints of the block key under a keyed SipHash-1-3 whose key is
//! drawn fresh for every compaction from the host's entropy ([`crate::Clock::random_seed`]).
//! A fingerprint is 16 bytes inline in a `hashbrown` table: no allocation per entry, about
//! 17 bytes of table per slot, so 19–39 bytes per marked object depending on where the count
//! falls between two power-of-two table sizes (see [`MarkSet::bytes_per_object`]).
//!
//! Why a collision cannot unmark a live object's children, in practice: a walk stops
//! descending at an object whose fingerprint is already present, so a collision between a live
//! object X and a different marked object Y would leave X's children unvisited. For that to
//! happen the two keys must collide under a 128-bit PRF keyed with a secret chosen after the
//! data was written; an adversary cannot aim for it, and by the birthday bound the chance that
//! *any* pair among n marked objects collides is below n²/2¹²⁹ — under 3·10⁻²¹ for a billion
//! objects. `docs/design.md` gives the full argument, and [`ExactSet`] (full keys) exists so
//! the test suites can cross-check that both sets lead to identical compactions.

use alloc::vec::Vec;
use core::hash::{BuildHasher, Hasher};

use hashbrown::HashSet;
use siphasher::sip128::{Hasher128, SipHasher13};

/// A fingerprint is already uniformly distributed: its first eight bytes are the hash.
#[derive(Clone, Copy, Debug, Default)]
pub struct FingerprintHasher(u64);

impl Hasher for FingerprintHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // `[u8; 16]` hashes as its bytes (after a length prefix for slices; arrays have none).
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(word);
    }
}

/// Builds [`FingerprintHasher`]s.
#[derive(Clone, Copy, Debug, Default)]
pub struct BuildFingerprintHasher;

impl BuildHasher for BuildFingerprintHasher {
    type Hasher = FingerprintHasher;
    fn build_hasher(&self) -> FingerprintHasher {
        FingerprintHasher(0)
    }
}

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

/// The default mark set: keyed 128-bit fingerprints.
#[derive(Debug)]
pub struct MarkSet {
    k0: u64,
    k1: u64,
    table: HashSet<[u8; 16], BuildFingerprintHasher>,
}

impl MarkSet {
    /// An empty set with room for `capacity` objects, fingerprinting under `seed`.
    pub fn with_capacity(capacity: usize, seed: u128) -> Self {
        Self {
            k0: seed as u64,
            k1: (seed >> 64) as u64,
            table: HashSet::with_capacity_and_hasher(capacity, BuildFingerprintHasher),
        }
    }

    /// The fingerprint of `key` under this set's secret.
    pub fn fingerprint(&self, key: &[u8]) -> [u8; 16] {
        let mut h = SipHasher13::new_with_keys(self.k0, self.k1);
        h.write(key);
        h.finish128().as_bytes()
    }
}

impl Marks for MarkSet {
    fn mark(&mut self, key: &[u8]) -> bool {
        let fp = self.fingerprint(key);
        self.table.insert(fp)
    }

    fn contains(&self, key: &[u8]) -> bool {
        self.table.contains(&self.fingerprint(key))
    }

    fn len(&self) -> usize {
        self.table.len()
    }

    fn heap_bytes(&self) -> usize {
        self.table.allocation_size()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn key(i: u32) -> Vec<u8> {
        let mut k = alloc::vec![0x12, 0x20];
        k.extend_from_slice(&[0u8; 28]);
        k.extend_from_slice(&i.to_be_bytes());
        k
    }

    #[test]
    fn mark_is_test_and_set() {
        for kind in [MarkSetKind::Fingerprint, MarkSetKind::Exact] {
            let mut s = AnyMarks::new(kind, 0, 7);
            assert!(s.mark(&key(1)));
            assert!(!s.mark(&key(1)));
            assert!(s.contains(&key(1)));
            assert!(!s.contains(&key(2)));
            assert_eq!(s.len(), 1);
        }
    }

    #[test]
    fn fingerprints_depend_on_the_seed() {
        let a = MarkSet::with_capacity(0, 1);
        let b = MarkSet::with_capacity(0, 2);
        assert_ne!(a.fingerprint(&key(5)), b.fingerprint(&key(5)));
        assert_eq!(a.fingerprint(&key(5)), MarkSet::with_capacity(0, 1).fingerprint(&key(5)));
    }

    #[test]
    fn fingerprint_set_is_compact() {
        let n = 100_000;
        let mut s = MarkSet::with_capacity(n, 3);
        for i in 0..n as u32 {
            assert!(s.mark(&key(i)));
        }
        assert_eq!(s.len(), n);
        let bpo = s.bytes_per_object();
        assert!(bpo > 16.0 && bpo < 40.0, "bytes per object {bpo}");
        let mut e = ExactSet::new();
        for i in 0..n as u32 {
            e.mark(&key(i));
        }
        assert!(e.bytes_per_object() > bpo);
    }
}
