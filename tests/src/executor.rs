//! A seeded, single-threaded executor: at every step it polls one randomly chosen task among
//! those that are ready, so each seed is one reproducible interleaving of the tasks' awaits.
//!
//! Works on every target (no threads, no timers): the futures it runs must make progress by
//! being polled, which holds for `MemKv` and `ManualClock` (whose `yield_now` and `sleep` are
//! pending exactly once).

use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    task::{Context, Poll, Wake, Waker},
};

/// Steps between turns of the idle hook in [`SeededExecutor::run_with_idle`].
pub const IDLE_EVERY: u64 = 64;

/// A small deterministic PRNG (SplitMix64).
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded generator.
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
    /// True with probability `p` percent.
    pub fn percent(&mut self, p: u32) -> bool {
        self.below(100) < p as usize
    }
}

struct Flag(AtomicBool);

impl Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.store(true, Ordering::SeqCst);
    }
}

type Task<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

/// Runs tasks to completion in a seeded order.
pub struct SeededExecutor<'a> {
    rng: Rng,
    tasks: Vec<(Option<Task<'a>>, Arc<Flag>)>,
    /// Polls performed (the number of interleaving decisions).
    pub steps: u64,
}

impl<'a> SeededExecutor<'a> {
    /// An executor choosing with `seed`.
    pub fn new(seed: u64) -> Self {
        Self { rng: Rng::new(seed), tasks: Vec::new(), steps: 0 }
    }

    /// Adds a task.
    pub fn spawn(&mut self, f: impl Future<Output = ()> + 'a) {
        self.tasks.push((Some(Box::pin(f)), Arc::new(Flag(AtomicBool::new(true)))));
    }

    /// Polls one randomly chosen ready task; `false` when none is ready.
    fn step(&mut self, max_steps: u64) -> bool {
        let ready: Vec<usize> = self
            .tasks
            .iter()
            .enumerate()
            .filter(|(_, (t, f))| t.is_some() && f.0.load(Ordering::SeqCst))
            .map(|(i, _)| i)
            .collect();
        if ready.is_empty() {
            return false;
        }
        assert!(self.steps < max_steps, "no completion after {max_steps} steps");
        let i = ready[self.rng.below(ready.len())];
        let (slot, flag) = &mut self.tasks[i];
        flag.0.store(false, Ordering::SeqCst);
        let waker = Waker::from(flag.clone());
        let mut cx = Context::from_waker(&waker);
        self.steps += 1;
        if let Some(t) = slot.as_mut() {
            if let Poll::Ready(()) = t.as_mut().poll(&mut cx) {
                *slot = None;
            }
        }
        true
    }

    fn pending(&self) -> usize {
        self.tasks.iter().filter(|(t, _)| t.is_some()).count()
    }

    /// Polls ready tasks in random order until all are done. Panics when tasks remain but
    /// none can make progress (a deadlock), or after `max_steps`.
    pub fn run(&mut self, max_steps: u64) {
        while self.step(max_steps) {}
        let left = self.pending();
        assert_eq!(left, 0, "deadlock: {left} tasks pending and none woken");
    }
}

impl SeededExecutor<'_> {
    /// [`SeededExecutor::run`] for backends whose futures complete from outside (IndexedDB
    /// callbacks): when no task is ready it awaits `idle()` (e.g. one turn of the browser's
    /// event loop) and looks again; only `max_idle` idle turns in a row are a deadlock. It
    /// also awaits `idle()` every [`IDLE_EVERY`] steps, as a browser runs its event loop
    /// between tasks: a task that waits by yielding is always ready, and must not keep the
    /// backend's callbacks from being delivered.
    pub async fn run_with_idle<F, Fut>(&mut self, max_steps: u64, max_idle: u32, idle: F)
    where
        F: Fn() -> Fut,
        Fut: Future<Output = ()>,
    {
        let mut idle_turns = 0u32;
        loop {
            if self.step(max_steps) {
                idle_turns = 0;
                if self.steps % IDLE_EVERY == 0 {
                    idle().await;
                }
                continue;
            }
            if self.pending() == 0 {
                return;
            }
            idle_turns += 1;
            assert!(idle_turns <= max_idle, "deadlock: tasks pending and none woken after {max_idle} idle turns");
            idle().await;
        }
    }
}

/// Runs one future to completion on the seeded executor (for suites that need no
/// interleaving but must run the same way on every target).
pub fn block_on<T>(f: impl Future<Output = T>) -> T {
    let mut out = None;
    {
        let mut ex = SeededExecutor::new(0);
        ex.spawn(async { out = Some(f.await) });
        ex.run(u64::MAX);
    }
    out.expect("future completed")
}
