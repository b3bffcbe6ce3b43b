//! The lock around the engine's short critical sections (the store's shared state, the mark
//! set, counters): a parking lock where there is an OS, a spin lock where there is not.
//!
//! A thread that holds a spin lock can be preempted by the OS, and every other thread that
//! wants the lock then spins through its time slices until the holder runs again: a reader
//! stalls for as long as the scheduler keeps the holder off the CPU. With `std`, the lock is
//! `std::sync::Mutex`, whose waiters sleep and are woken by the holder. Without `std` (an
//! embedded target with no scheduler to preempt anything, or a single thread), `spin::Mutex`.
//!
//! Invariant: no guard is held across an `.await`, so a lock is only ever waited for by a
//! thread, never by a task that could need the holder's own thread to run.

#[cfg(feature = "std")]
mod imp {
    use std::sync::PoisonError;

    /// A mutual-exclusion lock; see the module.
    #[derive(Debug, Default)]
    pub struct Mutex<T: ?Sized>(std::sync::Mutex<T>);

    impl<T> Mutex<T> {
        /// A lock holding `value`.
        pub const fn new(value: T) -> Self {
            Self(std::sync::Mutex::new(value))
        }
    }

    impl<T: ?Sized> Mutex<T> {
        /// Waits for the lock. A holder that panicked does not make the lock unusable for
        /// everyone else (a spin lock has no poisoning either); the panic reaches its caller.
        pub fn lock(&self) -> std::sync::MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(PoisonError::into_inner)
        }
    }
}

#[cfg(not(feature = "std"))]
mod imp {
    pub use spin::Mutex;
}

pub use imp::Mutex;
