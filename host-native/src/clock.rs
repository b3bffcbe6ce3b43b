//! The system clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use splitstore_core::clock::Clock;

/// Wall-clock time from [`SystemTime`]; `sleep` blocks the calling thread.
///
/// The native host runs each store future on a thread of its own (`block_on`), so blocking in
/// `sleep` pauses only that future: the compaction thread sleeps while foreground threads go on.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

#[async_trait::async_trait]
impl Clock for SystemClock {
    fn now_millis(&self) -> u64 {
        // A clock before 1970 reads as 0; the compaction only compares times it has read.
        SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
    }

    async fn sleep(&self, millis: u64) {
        std::thread::sleep(Duration::from_millis(millis));
    }

    async fn yield_now(&self) {
        std::thread::yield_now();
    }

    /// 128 bits from the standard library's per-process random hash keys (seeded from the
    /// operating system), mixed with the time so successive calls differ.
    fn random_seed(&self) -> u128 {
        use std::hash::{BuildHasher, Hasher};
        let half = |salt: u64| {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u64(salt);
            h.write_u128(SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos()));
            h.finish()
        };
        (u128::from(half(1)) << 64) | u128::from(half(2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_moves_forward_and_sleep_waits() {
        let c = SystemClock;
        let a = c.now_millis();
        assert!(a > 1_600_000_000_000, "the system clock reads after 2020");
        futures::executor::block_on(c.sleep(20));
        futures::executor::block_on(c.yield_now());
        assert!(c.now_millis() >= a + 20);
        assert_ne!(c.random_seed(), c.random_seed());
    }
}
