//! An ordered open-addressing table of 128-bit fingerprints (see the [parent module](super)
//! for why it has this shape).
//!
//! Invariants, over the slot vector `slots` with `homes` home slots:
//!
//! * **T1 sorted.** The non-empty slots, read left to right, hold strictly increasing values.
//! * **T2 no gap.** Every stored value `v` sits at a position `p ≥ home(v)`, and every slot in
//!   `home(v)..p` is occupied.
//! * **T3 sentinel.** The last slot is empty, so every probe stops inside the vector; the slots
//!   past `homes` are the overflow tail, at least `tail_for(homes)` of them (more only if a run
//!   reached the sentinel).
//! * **T4 load.** `stored ≤ max_len(homes)`, where `max_len` is 90 % of `homes`.
//!
//! `home` is non-decreasing in the value, so with T1 and T2 a lookup of `v` scans from
//! `home(v)` over smaller values and stops at the first slot that is empty or holds a value
//! `≥ v`: `v` is present exactly when that slot holds `v`.

use alloc::vec::Vec;

/// The most slots past the home range a table starts with: runs that pass the last home slot
/// continue into them.
pub(super) const TAIL: usize = 64;
/// Slots a lookup examines at once; at most the shortest tail.
const WINDOW: usize = 4;
/// The smallest table that is allocated at all.
const MIN_HOMES: usize = 16;
/// Maximum load of the home slots, as a fraction.
const LOAD_NUM: u128 = 9;
const LOAD_DEN: u128 = 10;

/// A set of 128-bit fingerprints in one flat, ordered, linearly probed vector.
///
/// The value 0 is held in a flag rather than a slot (0 marks an empty slot), so the set is
/// exact for every `u128`.
#[derive(Clone, Default)]
pub struct FingerprintTable {
    /// Ordered slots, 0 = empty; `homes + tail` long (T1–T3).
    slots: Vec<u128>,
    /// The number of home slots: the range of [`home`].
    homes: usize,
    /// Non-empty slots.
    stored: usize,
    /// Whether 0 is in the set.
    zero: bool,
}

impl core::fmt::Debug for FingerprintTable {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("FingerprintTable")
            .field("len", &self.len())
            .field("homes", &self.homes)
            .field("slots", &self.slots.len())
            .finish()
    }
}

/// The home slot of `fp` among `homes`: a multiply-shift range reduction of its upper 64 bits,
/// uniform for uniform `fp`, `< homes`, and non-decreasing in `fp`.
#[inline]
fn home(fp: u128, homes: usize) -> usize {
    // The product is below `homes · 2⁶⁴`, so the shifted value is below `homes` and fits.
    (((fp >> 64) * homes as u128) >> 64) as usize
}

/// The number of entries `homes` home slots take before the table grows.
fn max_len(homes: usize) -> usize {
    (homes as u128 * LOAD_NUM / LOAD_DEN) as usize
}

/// The fewest home slots that hold `n` entries without growing.
fn homes_for(n: usize) -> usize {
    let homes = (n as u128 * LOAD_DEN).div_ceil(LOAD_NUM);
    usize::try_from(homes).unwrap_or(usize::MAX)
}

/// The tail a table of `homes` home slots starts with, and lengthens its tail by: a sixteenth
/// of the home range, between [`WINDOW`] and [`TAIL`] slots.
pub(super) fn tail_for(homes: usize) -> usize {
    (homes / 16).clamp(WINDOW, TAIL)
}

/// Lengthens `slots` to at least `len + tail` slots, allocating exactly that.
fn extend_tail(slots: &mut Vec<u128>, len: usize, tail: usize) {
    let target = len.saturating_add(tail);
    if target > slots.len() {
        slots.reserve_exact(target - slots.len());
        slots.resize(target, 0);
    }
}

impl FingerprintTable {
    /// An empty table that holds `capacity` entries without growing; allocates nothing for 0.
    pub fn with_capacity(capacity: usize) -> Self {
        let mut t = Self::default();
        if capacity > 0 {
            t.rebuild(homes_for(capacity));
        }
        t
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.stored + usize::from(self.zero)
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many entries the table holds at least before it next grows.
    pub fn capacity(&self) -> usize {
        max_len(self.homes)
    }

    /// Heap bytes allocated.
    pub fn heap_bytes(&self) -> usize {
        self.slots.capacity() * core::mem::size_of::<u128>()
    }

    /// True when `fp` is in the set.
    #[inline]
    pub fn contains(&self, fp: u128) -> bool {
        if fp == 0 {
            return self.zero;
        }
        self.probe(fp).1
    }

    /// Adds `fp`; true when it was not in the set before.
    #[inline]
    pub fn insert(&mut self, fp: u128) -> bool {
        if fp == 0 {
            return !core::mem::replace(&mut self.zero, true);
        }
        let (mut p, found) = self.probe(fp);
        if found {
            return false;
        }
        if self.stored >= max_len(self.homes) {
            self.grow();
            p = self.probe(fp).0;
        }
        // Shift the run from `p` one slot right into its first empty slot, carrying each value
        // into the next slot: values only move away from their home (T2) and keep their order
        // (T1), and `fp` lands after every smaller value of its run. T3 guarantees an empty slot.
        let mut carry = fp;
        for s in &mut self.slots[p..] {
            carry = core::mem::replace(s, carry);
            if carry == 0 {
                break;
            }
        }
        if self.slots.last() != Some(&0) {
            // The run reached the sentinel: lengthen the tail so the last slot is empty (T3).
            let len = self.slots.len();
            extend_tail(&mut self.slots, len, tail_for(self.homes));
        }
        self.stored += 1;
        true
    }

    /// For non-zero `fp`: the first slot at or after `home(fp)` that is empty or holds a value
    /// `≥ fp`, and whether it holds `fp`. `(slots.len(), false)` only for an unallocated table.
    #[inline]
    fn probe(&self, fp: u128) -> (usize, bool) {
        let start = home(fp, self.homes);
        // By T1 and T2 the occupied slots below `fp` form a prefix of the slots from `start`, so
        // counting them in a fixed window finds the answer without a data-dependent branch per
        // slot (which would serialise independent lookups on mispredictions). `s - 1 < fp - 1`,
        // wrapping, is `s != 0 && s < fp` for `fp ≠ 0`. The tail keeps the window in bounds.
        let below = |s: u128| s.wrapping_sub(1) < fp - 1;
        let mut p = start;
        if let Some(window) = self.slots.get(start..start + WINDOW) {
            let n = window.iter().map(|&s| usize::from(below(s))).sum::<usize>();
            p += n;
            if n < WINDOW {
                return (p, self.slots[p] == fp);
            }
        }
        match self.slots.get(p..).and_then(|run| run.iter().position(|&s| !below(s))) {
            Some(o) => (p + o, self.slots[p + o] == fp),
            None => (self.slots.len(), false),
        }
    }

    /// Grows the home range by a tenth (at least to [`MIN_HOMES`] and to room for one more
    /// entry).
    fn grow(&mut self) {
        let homes = self.homes.saturating_add(self.homes / 10).max(MIN_HOMES).max(homes_for(self.stored + 1));
        self.rebuild(homes);
    }

    /// Moves every entry into a fresh vector with `homes` home slots. T1 holds already, so one
    /// ordered pass places each value at `max(home, previous position + 1)`, which keeps T1
    /// and T2 without any probing.
    fn rebuild(&mut self, homes: usize) {
        let tail = tail_for(homes);
        let mut slots = alloc::vec![0; homes.saturating_add(tail)];
        let mut next = 0usize;
        for &fp in &self.slots {
            // Branch-free over empty slots: an empty slot goes to `next` (home(0) = 0), which is
            // still empty, and does not advance it.
            let p = home(fp, homes).max(next);
            if p + 1 >= slots.len() {
                extend_tail(&mut slots, p + 1, tail);
            }
            slots[p] = fp;
            next = p + usize::from(fp != 0);
        }
        self.slots = slots;
        self.homes = homes;
    }

    /// The stored values in order, for tests.
    #[cfg(test)]
    pub(super) fn values(&self) -> impl Iterator<Item = u128> + '_ {
        self.zero.then_some(0).into_iter().chain(self.slots.iter().copied().filter(|&s| s != 0))
    }

    /// Slots past the home range, for tests.
    #[cfg(test)]
    pub(super) fn tail(&self) -> usize {
        self.slots.len() - self.homes
    }

    /// Asserts T1–T4.
    #[cfg(test)]
    pub(super) fn check(&self) {
        if self.slots.is_empty() {
            assert_eq!((self.homes, self.stored), (0, 0));
            return;
        }
        assert!(self.slots.len() >= self.homes + tail_for(self.homes), "T3: tail too short");
        assert_eq!(self.slots.last(), Some(&0), "T3: sentinel");
        assert!(self.stored <= max_len(self.homes), "T4: load");
        let mut prev = 0u128;
        let mut stored = 0;
        for (p, &v) in self.slots.iter().enumerate() {
            if v == 0 {
                continue;
            }
            stored += 1;
            assert!(v > prev, "T1: slot {p} out of order");
            prev = v;
            let h = home(v, self.homes);
            assert!(h <= p, "T2: slot {p} before its home {h}");
            assert!(self.slots[h..p].iter().all(|&s| s != 0), "T2: gap between home {h} and slot {p}");
        }
        assert_eq!(stored, self.stored);
    }
}
