//! The fingerprint mark set against a `std` `HashSet` model: random keys at many sizes,
//! pre-sized and grown, sizes around the growth boundary, fingerprints crowded onto the last
//! home slots, and the memory it holds per marked object.

use std::collections::HashSet;

use splitstore_conformance::executor::Rng;
use splitstore_core::markset::{AnyMarks, ExactSet, FingerprintTable, MarkSet, MarkSetKind, Marks};

/// A block key: a CID-like prefix and a random tail of random length.
fn key(rng: &mut Rng) -> Vec<u8> {
    let len = 4 + rng.below(40);
    let mut k = vec![0x01, 0x71, 0xa0, 0xe4];
    k.extend((0..len).map(|_| rng.next_u64() as u8));
    k
}

/// Marks `keys` (possibly with repeats) in `set`, checking every answer against a model, then
/// checks membership of every key and of `absent` keys.
fn check_against_model(set: &mut impl Marks, keys: &[Vec<u8>], absent: &[Vec<u8>]) {
    let mut model: HashSet<&[u8]> = HashSet::new();
    for k in keys {
        assert_eq!(set.mark(k), model.insert(k), "mark of {k:02x?}");
        assert!(set.contains(k));
    }
    assert_eq!(set.len(), model.len());
    for k in keys {
        assert!(set.contains(k), "marked key {k:02x?} lost");
        assert!(!set.mark(k), "second mark of {k:02x?} reported new");
    }
    for k in absent {
        assert_eq!(set.contains(k), model.contains(k.as_slice()), "unmarked key {k:02x?}");
    }
    assert_eq!(set.len(), model.len());
}

#[test]
fn random_keys_at_many_sizes() {
    let mut rng = Rng::new(11);
    for n in [0usize, 1, 2, 10, 100, 999, 5_000, 50_000, 200_000] {
        let keys: Vec<Vec<u8>> = (0..n).map(|_| key(&mut rng)).collect();
        let absent: Vec<Vec<u8>> = (0..n.max(1000)).map(|_| key(&mut rng)).collect();
        for capacity in [0, n / 3, n, 2 * n] {
            let mut set = MarkSet::with_capacity(capacity, u128::from(rng.next_u64()));
            check_against_model(&mut set, &keys, &absent);
        }
    }
}

#[test]
fn repeated_keys_are_new_exactly_once() {
    let mut rng = Rng::new(12);
    let distinct: Vec<Vec<u8>> = (0..20_000).map(|_| key(&mut rng)).collect();
    // Every key three times, in random order.
    let mut keys: Vec<Vec<u8>> = distinct.iter().cycle().take(3 * distinct.len()).cloned().collect();
    for i in (1..keys.len()).rev() {
        keys.swap(i, (rng.next_u64() % (i as u64 + 1)) as usize);
    }
    for kind in [MarkSetKind::Fingerprint, MarkSetKind::Exact] {
        let mut set = AnyMarks::new(kind, 1000, 5);
        let new = keys.iter().filter(|k| set.mark(k)).count();
        assert_eq!(new, distinct.len());
        assert_eq!(set.len(), distinct.len());
    }
}

#[test]
fn growth_across_several_resizes_keeps_every_key() {
    let mut rng = Rng::new(13);
    let mut set = MarkSet::with_capacity(0, 9);
    let mut model: HashSet<Vec<u8>> = HashSet::new();
    let mut last_bytes = set.heap_bytes();
    let mut resizes = 0;
    while model.len() < 300_000 {
        let k = key(&mut rng);
        assert_eq!(set.mark(&k), model.insert(k));
        if model.len() >= 10_000 {
            let bpo = set.bytes_per_object();
            assert!(bpo <= 24.0, "grown set holds {bpo:.2} bytes per object at {}", model.len());
        }
        if set.heap_bytes() != last_bytes {
            resizes += 1;
            last_bytes = set.heap_bytes();
            // Right after a resize, everything marked so far is still marked.
            assert!(model.iter().take(5_000).all(|k| set.contains(k)));
        }
    }
    assert!(resizes >= 20, "{resizes} resizes");
    assert!(model.iter().all(|k| set.contains(k)));
    for _ in 0..10_000 {
        let k = key(&mut rng);
        assert_eq!(set.contains(&k), model.contains(&k));
    }
}

#[test]
fn sizes_around_the_growth_boundary() {
    let mut rng = Rng::new(14);
    for n in [1usize, 16, 17, 100, 1_000, 65_536, 100_003] {
        let mut table = FingerprintTable::with_capacity(n);
        let cap = table.capacity();
        assert!(cap >= n);
        let bytes = table.heap_bytes();
        let mut model = HashSet::new();
        for i in 0..cap + 3 {
            let fp = (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64());
            assert_eq!(table.insert(fp), model.insert(fp));
            if i < cap {
                assert_eq!(table.capacity(), cap, "grew at {} of capacity {cap}", i + 1);
            } else {
                assert!(table.capacity() > cap, "did not grow at {} of capacity {cap}", i + 1);
                assert!(table.capacity() >= cap + cap / 10, "grew by too little at {}", i + 1);
                assert!(table.heap_bytes() > bytes);
            }
        }
        assert!(model.iter().all(|&fp| table.contains(fp)));
        assert_eq!(table.len(), model.len());
    }
}

#[test]
fn fingerprints_crowded_at_the_end_of_the_table() {
    let mut rng = Rng::new(15);
    for (capacity, count) in [(0usize, 5_000usize), (10_000, 2_000), (100, 300)] {
        let mut table = FingerprintTable::with_capacity(capacity);
        let mut model = HashSet::new();
        for _ in 0..count {
            // Upper halves within 2⁴⁸ of the top: home slots crowd onto the last few.
            let hi = u64::MAX - (rng.next_u64() >> 16);
            let fp = (u128::from(hi) << 64) | u128::from(rng.next_u64());
            assert_eq!(table.insert(fp), model.insert(fp));
        }
        for &fp in &model {
            assert!(table.contains(fp));
            assert!(!table.insert(fp));
            for near in [fp.wrapping_add(1), fp.wrapping_sub(1), fp ^ (1 << 64)] {
                assert_eq!(table.contains(near), model.contains(&near));
            }
        }
        assert_eq!(table.len(), model.len());
    }
}

#[test]
fn presized_set_holds_at_most_24_bytes_per_object() {
    let mut rng = Rng::new(16);
    for n in [1_000usize, 3_000, 10_000, 100_000, 333_333, 1_000_000] {
        let mut set = MarkSet::with_capacity(n, u128::from(rng.next_u64()));
        let bytes = set.heap_bytes();
        let mut k = [0u8; 36];
        for i in 0..n as u64 {
            k[..8].copy_from_slice(&i.to_le_bytes());
            assert!(set.mark(&k));
        }
        assert_eq!(set.heap_bytes(), bytes, "pre-sized set grew at {n}");
        let bpo = set.bytes_per_object();
        assert!(bpo <= 24.0, "{bpo:.2} bytes per object at {n}");
        // The driver pre-sizes for 1.25× the last count: an unchanged count fits in 24 bytes per
        // object too, once the tail (at most 1 KiB) is spread over enough objects.
        if n >= 10_000 {
            let s = MarkSet::with_capacity(n + n / 4, 1);
            assert!(s.heap_bytes() as f64 / n as f64 <= 24.0, "1.25× pre-sizing at {n}");
        }
    }
}

#[test]
fn fingerprint_set_is_smaller_than_the_exact_set() {
    let mut rng = Rng::new(17);
    let keys: Vec<Vec<u8>> = (0..20_000).map(|_| key(&mut rng)).collect();
    let mut fp = MarkSet::with_capacity(0, 1);
    let mut exact = ExactSet::new();
    check_against_model(&mut fp, &keys, &[]);
    check_against_model(&mut exact, &keys, &[]);
    assert!(fp.bytes_per_object() < exact.bytes_per_object());
}
