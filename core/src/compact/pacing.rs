//! How long the purge pauses between pages of deletions: a pure decision, the same on every
//! host, from what the foreground saw during the page.
//!
//! The purge pauses only for a foreground it slows down:
//!
//! - no API call completed during the page: no pause (nobody waits; the purge runs at the
//!   pace of its own I/O), and the pause starts from nothing when someone comes back;
//! - more than one call in [`SLOW_SHARE`] took [`Config::pace_slow_call_ms`] or longer: the
//!   pause goes straight to its most, [`Config::purge_sleep_factor`] times the page's time,
//!   so the foreground gets most of the backend's time while it suffers;
//! - otherwise (calls, and nearly all fast) the pause halves, page by page, down to none.
//!
//! The share is the goal's own measure: while no more than one call in a hundred is slow the
//! 99th percentile of the calls is a fast one, and a pause would only lengthen the purge. The
//! first [`Config::purge_pace_after_ms`] of the purge's work never pause (a short purge ends
//! before a pause could help), though they are observed.
//!
//! A call slow for reasons of its own (a `get_many` of thousands of blocks, a pin of a large
//! DAG) counts like one the purge slowed: at worst the purge pauses as much as a fixed pacing
//! of `purge_sleep_factor`× would, never more.

use crate::Config;

/// A page is "slow" for the foreground when more than one of this many of its calls was slow.
pub const SLOW_SHARE: u64 = 100;

/// What the foreground did during one page of the purge.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PageLoad {
    /// The purge's work so far, this page's included, in milliseconds.
    pub worked_ms: u64,
    /// This page's time, in milliseconds.
    pub page_ms: u64,
    /// API calls completed during the page.
    pub calls: u64,
    /// Of those, calls that took [`Config::pace_slow_call_ms`] or longer.
    pub slow_calls: u64,
}

/// The purge's pacing state: the pause, in quarters of a page's time.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pacer {
    quarters: u64,
}

impl Pacer {
    /// The pause, in milliseconds, after a page that saw `load`; updates the state for the
    /// next page.
    pub fn after_page(&mut self, config: &Config, load: PageLoad) -> u64 {
        let most = u64::from(config.purge_sleep_factor).saturating_mul(4);
        self.quarters = if load.calls == 0 {
            0
        } else if load.slow_calls.saturating_mul(SLOW_SHARE) > load.calls {
            most
        } else {
            (self.quarters / 2).min(most)
        };
        if load.worked_ms <= config.purge_pace_after_ms {
            return 0;
        }
        (u128::from(load.page_ms) * u128::from(self.quarters) / 4).try_into().unwrap_or(u64::MAX)
    }

    /// The current pause as a multiple of a page's time.
    pub fn factor(&self) -> f64 {
        self.quarters as f64 / 4.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    fn cfg() -> Config {
        Config { purge_pace_after_ms: 1000, purge_sleep_factor: 4, ..Config::default() }
    }

    fn load(worked_ms: u64, calls: u64, slow_calls: u64) -> PageLoad {
        PageLoad { worked_ms, page_ms: 100, calls, slow_calls }
    }

    #[test]
    fn nobody_calling_means_no_pause() {
        let mut p = Pacer::default();
        assert_eq!(p.after_page(&cfg(), load(5_000, 0, 0)), 0);
        assert_eq!(p.after_page(&cfg(), load(5_000, 10, 10)), 400);
        assert_eq!(p.after_page(&cfg(), load(5_100, 0, 0)), 0, "the caller left");
        assert_eq!(p.after_page(&cfg(), load(5_200, 10, 0)), 0, "back, and fast: from nothing");
    }

    #[test]
    fn fast_callers_are_not_waited_for() {
        let mut p = Pacer::default();
        for i in 0..10 {
            assert_eq!(p.after_page(&cfg(), load(2_000 + i, 1_000, 10)), 0, "one in a hundred slow");
        }
    }

    #[test]
    fn slow_callers_get_the_most_at_once_then_less_page_by_page() {
        let mut p = Pacer::default();
        assert_eq!(p.after_page(&cfg(), load(2_000, 1_000, 11)), 400, "more than one in a hundred");
        let pauses: Vec<u64> = (0..6).map(|i| p.after_page(&cfg(), load(2_100 + i, 1_000, 0))).collect();
        assert_eq!(pauses, [200, 100, 50, 25, 0, 0]);
        assert_eq!(p.after_page(&cfg(), load(3_000, 1, 1)), 400, "a lone caller, slow");
    }

    #[test]
    fn the_first_stretch_is_observed_not_paced() {
        let mut p = Pacer::default();
        assert_eq!(p.after_page(&cfg(), load(1_000, 5, 5)), 0);
        assert_eq!(p.factor(), 4.0);
        assert_eq!(p.after_page(&cfg(), load(1_001, 5, 0)), 200, "halved from the most");
    }

    #[test]
    fn the_factor_bounds_the_pause() {
        let mut p = Pacer::default();
        let off = Config { purge_sleep_factor: 0, ..cfg() };
        assert_eq!(p.after_page(&off, load(9_000, 5, 5)), 0);
        assert_eq!(
            p.after_page(&cfg(), PageLoad { worked_ms: u64::MAX, page_ms: u64::MAX, calls: 1, slow_calls: 1 }),
            u64::MAX
        );
        let mut p = Pacer::default();
        p.after_page(&cfg(), load(5_000, 1, 1));
        let one = Config { purge_sleep_factor: 1, ..cfg() };
        assert_eq!(p.after_page(&one, load(5_000, 1, 0)), 100, "a smaller factor caps what is left");
    }
}
