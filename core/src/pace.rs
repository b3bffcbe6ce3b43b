//! Work done in steps between pauses, so that a long computation on the browser's one thread
//! is a run of short tasks: a step counter, and a sort that advances it.

use alloc::vec::Vec;
use core::future::Future;

/// Counts elements of work and awaits `pause()` once `every` have been done.
pub(crate) struct Pace<P> {
    every: usize,
    done: usize,
    pause: P,
}

impl<P: FnMut() -> F, F: Future<Output = ()>> Pace<P> {
    /// Pauses every `every` elements of work (at least one).
    pub fn new(every: usize, pause: P) -> Self {
        Pace { every: every.max(1), done: 0, pause }
    }

    /// Counts `work` elements done, and pauses if they complete a step.
    pub async fn step(&mut self, work: usize) {
        self.done += work;
        if self.done >= self.every {
            self.done = 0;
            (self.pause)().await;
        }
    }
}

/// `pairs` sorted, in steps of about `pace.every` elements: distributed into buckets by the
/// leading bits of their `lead` (a counting sort; leads are digest bytes, so evenly spread,
/// and order like the elements), then each bucket sorted on its own. A bucket is sorted in one
/// step: one that holds far more than its share (digests chosen to share their leading bits)
/// delays the next pause, never the order.
pub(crate) async fn sort_paced<T, P, F>(mut pairs: Vec<T>, lead: impl Fn(&T) -> u64, pace: &mut Pace<P>) -> Vec<T>
where
    T: Ord + Copy,
    P: FnMut() -> F,
    F: Future<Output = ()>,
{
    if pairs.len() <= pace.every {
        pairs.sort_unstable();
        pace.step(pairs.len()).await;
        return pairs;
    }
    // About eight pairs per bucket, at most 2^20 buckets.
    let bits = (usize::BITS - 1 - (pairs.len() / 8).max(1).leading_zeros()).min(20);
    let bucket = |p: &T| lead(p).checked_shr(64 - bits).unwrap_or(0) as usize;
    let mut start = alloc::vec![0usize; (1 << bits) + 1];
    for p in &pairs {
        start[bucket(p) + 1] += 1;
        pace.step(1).await;
    }
    for b in 1..start.len() {
        start[b] += start[b - 1];
        pace.step(1).await;
    }
    let mut sorted = alloc::vec![pairs[0]; pairs.len()];
    let mut next = start.clone();
    for p in pairs {
        let b = bucket(&p);
        sorted[next[b]] = p;
        next[b] += 1;
        pace.step(1).await;
    }
    drop(next);
    for b in 0..start.len() - 1 {
        let run = &mut sorted[start[b]..start[b + 1]];
        run.sort_unstable();
        pace.step(1 + run.len()).await;
    }
    sorted
}
