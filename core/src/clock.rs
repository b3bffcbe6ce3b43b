//! Time, supplied by the host. The core never reads a clock of its own.

use alloc::boxed::Box;

use crate::send::MaybeSendSync;

/// The host's clock and scheduler.
///
/// `yield_now` is how the compaction gives the foreground a turn: on the browser's one thread
/// it must return to the event loop; on native it may be a no-op or a thread yield.
#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
pub trait Clock: MaybeSendSync {
    /// Milliseconds since the Unix epoch.
    fn now_millis(&self) -> u64;
    /// Completes no earlier than `millis` milliseconds from now.
    async fn sleep(&self, millis: u64);
    /// Lets other tasks run before continuing.
    async fn yield_now(&self);
    /// Fresh entropy for keying each compaction's mark set. Hosts should return OS randomness;
    /// the default mixes the time, which is enough only where no adversary chooses the data.
    fn random_seed(&self) -> u128 {
        let t = self.now_millis() as u128;
        t.wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c835) ^ 0x2545_f491_4f6c_dd1d
    }
}
