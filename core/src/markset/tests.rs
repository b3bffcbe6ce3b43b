use alloc::collections::BTreeSet;

use super::table::TAIL;
use super::*;
use crate::synth::rng::Rng;

fn key(i: u32) -> Vec<u8> {
    let mut k = alloc::vec![0x12, 0x20];
    k.extend_from_slice(&[0u8; 28]);
    k.extend_from_slice(&i.to_be_bytes());
    k
}

/// 128 random bits: a fingerprint.
fn fp(rng: &mut Rng) -> u128 {
    (u128::from(rng.next_u64()) << 64) | u128::from(rng.next_u64())
}

/// Inserts `fps` twice over into `t` and a model, checking each answer and the invariants.
fn insert_all(t: &mut FingerprintTable, model: &mut BTreeSet<u128>, fps: &[u128]) {
    for &fp in fps {
        assert_eq!(t.insert(fp), model.insert(fp), "first insert of {fp:#x}");
    }
    t.check();
    for &fp in fps {
        assert!(!t.insert(fp), "second insert of {fp:#x}");
        assert!(t.contains(fp));
    }
    assert_eq!(t.len(), model.len());
    assert!(t.values().eq(model.iter().copied()), "table contents differ from the model");
}

#[test]
fn table_matches_a_model_at_many_sizes() {
    let mut rng = Rng::new(1, 0);
    for n in [0usize, 1, 2, 3, 7, 16, 17, 63, 100, 255, 1000, 4097, 20_000] {
        for presized in [false, true] {
            let mut t = FingerprintTable::with_capacity(if presized { n } else { 0 });
            let mut model = BTreeSet::new();
            let fps: Vec<u128> = (0..n).map(|_| fp(&mut rng)).collect();
            insert_all(&mut t, &mut model, &fps);
            for _ in 0..n.max(100) {
                let probe = fp(&mut rng);
                assert_eq!(t.contains(probe), model.contains(&probe));
            }
            // Values adjacent to stored ones: a miss must stop at the first larger value.
            for &fp in &fps {
                assert_eq!(t.contains(fp.wrapping_add(1)), model.contains(&fp.wrapping_add(1)));
                assert_eq!(t.contains(fp.wrapping_sub(1)), model.contains(&fp.wrapping_sub(1)));
            }
            if presized {
                assert!(t.capacity() >= n);
            }
        }
    }
}

#[test]
fn table_grows_across_several_resizes() {
    let mut rng = Rng::new(2, 0);
    let mut t = FingerprintTable::with_capacity(10);
    let mut model = BTreeSet::new();
    let mut resizes = 0;
    while t.len() < 5_000 {
        let cap = t.capacity();
        // A fifth of the capacity at a time: at most one growth step per batch.
        let fps: Vec<u128> = (0..(cap / 5).max(3)).map(|_| fp(&mut rng)).collect();
        insert_all(&mut t, &mut model, &fps);
        if t.capacity() != cap {
            resizes += 1;
        }
    }
    assert!(resizes >= 15, "{resizes} resizes");
    assert!(model.iter().all(|&fp| t.contains(fp)));
}

#[test]
fn table_grows_exactly_past_its_capacity() {
    let mut rng = Rng::new(3, 0);
    for n in [1usize, 5, 16, 17, 18, 1000, 1001, 65_536] {
        let mut t = FingerprintTable::with_capacity(n);
        let cap = t.capacity();
        let bytes = t.heap_bytes();
        let mut model = BTreeSet::new();
        let fps: Vec<u128> = (0..cap).map(|_| fp(&mut rng)).collect();
        insert_all(&mut t, &mut model, &fps);
        assert_eq!(t.capacity(), cap, "grew at or before capacity {cap}");
        let extra = fp(&mut rng);
        assert!(t.insert(extra));
        t.check();
        assert!(t.capacity() >= cap + cap / 10 && t.heap_bytes() > bytes, "did not grow past capacity {cap}");
        assert!(fps.iter().chain([&extra]).all(|&fp| t.contains(fp)));
        assert_eq!(t.len(), cap + 1);
    }
}

#[test]
fn runs_at_the_end_spill_into_the_tail_and_lengthen_it() {
    // Every value's upper half is near u64::MAX, so all share the last home slots.
    for count in [TAIL / 2, TAIL, TAIL + 1, 3 * TAIL, 700] {
        for presized in [false, true] {
            let mut t = FingerprintTable::with_capacity(if presized { 2 * count } else { 0 });
            let mut model = BTreeSet::new();
            let mut rng = Rng::new(count as u64, 0);
            // Inserted in random order, with gaps left between them for misses.
            let fps: Vec<u128> = (0..count)
                .map(|_| (u128::from(u64::MAX - rng.next_u64() % 4) << 64) | u128::from(rng.next_u64() | 1))
                .collect();
            insert_all(&mut t, &mut model, &fps);
            // The run starts at the last home slot, so all but one entry and the sentinel are in
            // the tail, which had to be lengthened past its initial size to hold them.
            assert!(t.tail() >= model.len(), "tail of {} for {} entries", t.tail(), model.len());
            for &fp in &fps {
                assert!(!t.contains(fp ^ 1) || model.contains(&(fp ^ 1)));
            }
            assert!(!t.contains(u128::MAX) || model.contains(&u128::MAX));
            assert!(t.insert(u128::MAX));
            assert!(t.contains(u128::MAX) && !t.insert(u128::MAX));
            t.check();
        }
    }
}

#[test]
fn runs_at_the_start_and_extreme_values() {
    let mut t = FingerprintTable::with_capacity(0);
    assert!(!t.contains(0) && !t.contains(1) && !t.contains(u128::MAX));
    assert_eq!(t.heap_bytes(), 0);
    let mut model = BTreeSet::new();
    let fps: Vec<u128> = (0..300u128).rev().chain([u128::MAX, u128::MAX - 1, 1 << 64]).collect();
    insert_all(&mut t, &mut model, &fps);
    assert!(!t.contains(300) && !t.contains(u128::MAX - 2));
}

#[test]
fn zero_is_a_member_like_any_other() {
    let mut t = FingerprintTable::with_capacity(4);
    assert!(!t.contains(0));
    assert!(t.insert(1));
    assert!(!t.contains(0));
    assert!(t.insert(0));
    assert!(!t.insert(0));
    assert!(t.contains(0) && t.contains(1));
    assert_eq!(t.len(), 2);
    t.check();
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
    for n in [1_000usize, 10_000, 100_000] {
        let mut s = MarkSet::with_capacity(n, 3);
        for i in 0..n as u32 {
            assert!(s.mark(&key(i)));
        }
        assert_eq!(s.len(), n);
        let bpo = s.bytes_per_object();
        assert!(bpo > 16.0 && bpo <= 20.0, "pre-sized for {n}: {bpo} bytes per object");
        let mut e = ExactSet::new();
        for i in 0..n as u32 {
            e.mark(&key(i));
        }
        assert!(e.bytes_per_object() > bpo);
    }
}

#[test]
fn a_grown_set_stays_compact() {
    let mut s = MarkSet::with_capacity(0, 4);
    let mut worst: f64 = 0.0;
    for i in 0..200_000u32 {
        s.mark(&key(i));
        if i >= 1000 {
            worst = worst.max(s.bytes_per_object());
        }
    }
    assert!(worst <= 25.0, "grown set reached {worst} bytes per object");
}
