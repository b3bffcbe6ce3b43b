//! Driving store futures by hand, one poll at a time, so a test can stop a compaction or a
//! write at an exact await, act, and resume or drop it: the orders the seeded executor reaches
//! only by chance, reached on purpose.

use std::{
    future::Future,
    pin::Pin,
    sync::Mutex,
    task::{Context, Poll},
};

use splitstore_core::{Phase, Progress, ProgressSink};

/// Polls `fut` (which must wake itself, as every future over `MemKv` and `ManualClock` does)
/// until it completes or, checked before each poll, `stop()` holds. At most `max_polls` polls.
/// Returns the output if it completed.
pub fn poll_until<F: Future + ?Sized>(
    mut fut: Pin<&mut F>,
    mut stop: impl FnMut() -> bool,
    max_polls: usize,
) -> Option<F::Output> {
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    for _ in 0..max_polls {
        if stop() {
            return None;
        }
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return Some(out);
        }
    }
    None
}

/// Polls `fut` exactly `polls` times (fewer if it completes first).
pub fn poll_times<F: Future + ?Sized>(fut: Pin<&mut F>, polls: usize) -> Option<F::Output> {
    poll_until(fut, || false, polls)
}

/// Polls `fut` to completion; panics after `max_polls`.
pub fn finish<F: Future + ?Sized>(fut: Pin<&mut F>, max_polls: usize) -> F::Output {
    poll_until(fut, || false, max_polls).unwrap_or_else(|| panic!("not complete after {max_polls} polls"))
}

/// Polls `a` to completion, polling `b` (until it completes) between polls of `a`, so `a` can
/// wait on a lock `b` holds. Returns `a`'s output and `b`'s, if `b` completed meanwhile.
pub fn finish_beside<A: Future + ?Sized, B: Future + ?Sized>(
    mut a: Pin<&mut A>,
    mut b: Pin<&mut B>,
    max_polls: usize,
) -> (A::Output, Option<B::Output>) {
    let waker = futures::task::noop_waker();
    let mut cx = Context::from_waker(&waker);
    let mut b_out = None;
    for _ in 0..max_polls {
        if let Poll::Ready(out) = a.as_mut().poll(&mut cx) {
            return (out, b_out);
        }
        if b_out.is_none() {
            if let Poll::Ready(out) = b.as_mut().poll(&mut cx) {
                b_out = Some(out);
            }
        }
    }
    panic!("not complete after {max_polls} polls")
}

/// Polls `op` to completion while the compaction (or prune) `run` waits at its current await, or beside
/// it when `op` needs the compaction to move on (a purge batch holds the lock); sets `done`
/// once `run` completes (and requires it to succeed). Each side gets at most `max_polls`.
pub fn beside<O, R, T>(op: Pin<&mut O>, run: Pin<&mut R>, done: &mut bool, max_polls: usize) -> O::Output
where
    O: Future + ?Sized,
    R: Future<Output = Result<T, splitstore_core::Error>> + ?Sized,
{
    if *done {
        return finish(op, max_polls);
    }
    let mut op = op;
    if let Some(out) = poll_times(op.as_mut(), 1000) {
        return out;
    }
    let (out, report) = finish_beside(op, run, max_polls);
    if let Some(report) = report {
        if let Err(e) = report {
            panic!("the run beside failed: {e}");
        }
        *done = true;
    }
    out
}

/// A progress sink that remembers which phases were reported.
#[derive(Debug, Default)]
pub struct PhaseLog(Mutex<Vec<Phase>>);

impl PhaseLog {
    /// True once `phase` was reported.
    pub fn seen(&self, phase: Phase) -> bool {
        self.0.lock().expect("phase log").contains(&phase)
    }

    /// The last phase reported.
    pub fn last(&self) -> Option<Phase> {
        self.0.lock().expect("phase log").last().copied()
    }
}

impl ProgressSink for PhaseLog {
    fn report(&self, p: &Progress) {
        let mut v = self.0.lock().expect("phase log");
        if v.last() != Some(&p.phase) {
            v.push(p.phase);
        }
    }
}
