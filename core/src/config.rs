//! Configuration and the pure epoch arithmetic of the compaction schedule.

use alloc::{format, vec::Vec};

use crate::Error;

/// What happens to blocks a compaction removes from the hot store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// Purged blocks are dropped; the cold store is only read.
    #[default]
    Discard,
    /// Every purged block is copied to the cold store first.
    Universal,
    /// Messages and receipts older than the retention window are copied; old state is dropped.
    Messages,
}

impl Mode {
    /// The name used in configuration files and the JS API.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Discard => "discard",
            Mode::Universal => "universal",
            Mode::Messages => "messages",
        }
    }

    /// Parses [`Mode::as_str`]'s names.
    pub fn parse(s: &str) -> Option<Mode> {
        match s {
            "discard" => Some(Mode::Discard),
            "universal" => Some(Mode::Universal),
            "messages" => Some(Mode::Messages),
            _ => None,
        }
    }
}

/// Store and compaction settings. Epoch counts are in chain epochs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Compaction mode.
    pub mode: Mode,
    /// Finality F (reference: 900).
    pub finality: i64,
    /// Compact when `head - base_epoch > threshold_finalities * F` (reference: 5).
    pub threshold_finalities: i64,
    /// State younger than `head - boundary_finalities * F` stays hot (reference: 4).
    pub boundary_finalities: i64,
    /// Messages and receipts are kept hot for this many finalities below the boundary.
    pub message_retention: i64,
    /// A head older than this is out of sync (reference: 60 s); `None` disables sync checks.
    pub sync_gap_secs: Option<u64>,
    /// A head younger than this is back in sync (reference: 30 s).
    pub sync_wait_secs: u64,
    /// Network-upgrade epochs; no automatic compaction within ±F of one.
    pub upgrade_epochs: Vec<i64>,
    /// Missing state inside the boundary is recorded instead of failing the compaction.
    pub lenient_state: bool,
    /// Objects per purge / move / collect batch (reference: 16384).
    pub batch_size: usize,
    /// Objects visited between yields in long loops.
    pub yield_every: usize,
    /// The purge's first this many ms of work never pause (the pacing: `compact::pacing`).
    pub purge_pace_after_ms: u64,
    /// The most the purge pauses after a page of deletions, as a multiple of the page's time:
    /// while more than one in a hundred of the API calls completed during the page took
    /// [`Config::pace_slow_call_ms`] or longer. The pause halves after each page whose calls
    /// were fast, and is none after a page with no calls (the reference sleeps 4× its work,
    /// always). 0: never pause.
    pub purge_sleep_factor: u32,
    /// An API call that takes this many milliseconds or longer (by the store's clock, from
    /// taking the store's lock to returning) counts as slowed down ([`crate::Metrics::slow_calls`]),
    /// for the purge's pacing. 0: every call counts (the pause stays at its most while the
    /// store is in use).
    pub pace_slow_call_ms: u64,
    /// Dead-list entries the purge deletes per batch while the store is in use: a read or
    /// write of the store waits at most for one such batch's decision under the exclusive
    /// lock (a write of one of its blocks, for its write too). Smaller: shorter waits, more
    /// writes.
    pub purge_locked_deletes: usize,
    /// The same while nobody uses the store (no API call completed since the purge's previous
    /// page began) and in recovery; at least [`Config::purge_locked_deletes`] is used.
    pub purge_idle_locked_deletes: usize,
    /// Walks of the references found missing while protecting, after collection (the
    /// reference's `waitForMissingRefs`: 3); walk `i` (from 0) first waits `i` ×
    /// [`Config::missing_retry_wait_ms`]. 0: none.
    pub missing_retries: u32,
    /// The unit of those waits (the reference's: one minute; here 1 s by default, since a
    /// block that arrives later is protected by its own write whenever it lands, and waiting
    /// only holds the purge back).
    pub missing_retry_wait_ms: u64,
    /// Check every block's hash on `put`.
    pub verify_puts: bool,
    /// Compact early when the hot store takes this many bytes or more (its backend's
    /// [`Kv::footprint`](crate::Kv::footprint): the blocks' bytes on disk natively, the
    /// origin's usage in a browser), once a tenth of a finality (at least one epoch) has passed since the
    /// last compaction's head, so that a live set above the limit does not compact at every
    /// head change. `None`: only the epoch threshold triggers.
    pub hot_size_limit: Option<u64>,
    /// Prune the cold store after every this many compactions, with
    /// [`Config::prune_retention`] ([`SplitStore::prune`](crate::SplitStore::prune)); `None`:
    /// only when asked. Not in discard mode.
    pub prune_every: Option<u64>,
    /// The state retention of automatic prunes: `< 0` keeps all state, `0` only the state the
    /// compaction boundary needs, `n` that and `n` more finalities of state roots.
    pub prune_retention: i64,
    /// Reify: the most objects the cold part of a DAG read in use may have for it to be copied
    /// into hot ([`SplitStore::hot_view`](crate::SplitStore::hot_view)); a larger one is not
    /// copied at all, as in the reference. `0` turns reify off.
    pub reify_limit: usize,
    /// Reify: the most DAG roots waiting to be copied; a cold hit in use beyond it is not
    /// queued (and counted in [`crate::Metrics::reify_dropped`]).
    pub reify_queue: usize,
    /// The most bytes of memory the kept graph may hold: the links of the objects a
    /// compaction's chain walk loaded, kept until the next compaction so that it marks them
    /// without reading their blocks (about 60 bytes per object; `docs/design.md`, "The kept
    /// graph", has what it gains and costs). The DAG-CBOR blocks written between two
    /// compactions are recorded with their links too, and the next walk marks them the same
    /// way. A walk whose graph would be larger keeps none. `0` (the default) turns it off.
    pub kept_graph_bytes: usize,
    /// The most bytes of memory the hot key list may hold: the keys of the hot store's blocks
    /// but final headers, kept between compactions so that collect visits them instead of
    /// scanning the hot store, whose every header back to genesis a scan would pass (32 bytes
    /// per key; `docs/design.md`, "The hot key list"). A compaction's set of the keys the
    /// chain index marks, held from its mark to its collect, is bounded by it too. The first
    /// compaction of a process scans, and so does one after a deletion through the API or
    /// once the list or that set would pass this. Default 32 MiB (a million keys); `0` turns
    /// it off.
    pub hot_key_list_bytes: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            mode: Mode::Discard,
            finality: 900,
            threshold_finalities: 5,
            boundary_finalities: 4,
            message_retention: 0,
            sync_gap_secs: Some(60),
            sync_wait_secs: 30,
            upgrade_epochs: Vec::new(),
            lenient_state: false,
            batch_size: 16384,
            yield_every: 1024,
            purge_pace_after_ms: 1000,
            purge_sleep_factor: 4,
            pace_slow_call_ms: 10,
            purge_locked_deletes: 128,
            purge_idle_locked_deletes: 1024,
            missing_retries: 3,
            missing_retry_wait_ms: 1000,
            verify_puts: false,
            hot_size_limit: None,
            prune_every: None,
            prune_retention: 0,
            reify_limit: 16384,
            reify_queue: 1024,
            kept_graph_bytes: 0,
            hot_key_list_bytes: 32 << 20,
        }
    }
}

/// The epochs that define one compaction's live set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Boundaries {
    /// Height of the head the compaction walks from.
    pub head: i64,
    /// State of headers at or above this height stays hot.
    pub boundary: i64,
    /// Messages and receipts of headers at or above this height stay hot.
    pub include_messages: i64,
}

impl Config {
    /// Checks the settings for values the arithmetic cannot use.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |detail: &str| Err(Error::InvalidConfig { detail: detail.into() });
        if self.finality < 1 {
            return bad("finality must be at least 1");
        }
        if self.threshold_finalities < 1 || self.boundary_finalities < 1 {
            return bad("threshold and boundary finalities must be at least 1");
        }
        if self.boundary_finalities > self.threshold_finalities {
            return Err(Error::InvalidConfig {
                detail: format!(
                    "boundary ({}) must not exceed threshold ({}) finalities",
                    self.boundary_finalities, self.threshold_finalities
                ),
            });
        }
        if self.message_retention < 0 {
            return bad("message retention must not be negative");
        }
        if self.batch_size == 0 || self.yield_every == 0 {
            return bad("batch size and yield interval must be positive");
        }
        if self.purge_locked_deletes == 0 {
            return bad("the purge's locked deletions per write must be positive");
        }
        if self.hot_size_limit == Some(0) {
            return bad("a hot size limit must be at least one byte");
        }
        if self.prune_every == Some(0) {
            return bad("automatic prunes must be at least one compaction apart");
        }
        if self.prune_every.is_some() && self.mode == Mode::Discard {
            return bad("discard mode never writes the cold store: automatic prunes need universal or messages mode");
        }
        Ok(())
    }

    /// `threshold_finalities * F`.
    pub fn threshold(&self) -> i64 {
        self.threshold_finalities.saturating_mul(self.finality)
    }

    /// The live-set epochs of a compaction from a head at `head`.
    pub fn boundaries(&self, head: i64) -> Boundaries {
        let boundary = head.saturating_sub(self.boundary_finalities.saturating_mul(self.finality));
        let range = self.message_retention.saturating_mul(self.finality);
        let include_messages = if range < boundary { boundary - range } else { 0 };
        Boundaries { head, boundary, include_messages }
    }

    /// The lowest height whose state a prune from a head at `head` keeps under `retention`
    /// (the reference's `retainState`): the compaction boundary and `retention` more
    /// finalities below it; `None` (`retention < 0`) keeps all state.
    pub fn retain_state_from(&self, head: i64, retention: i64) -> Option<i64> {
        if retention < 0 {
            return None;
        }
        let finalities = self.boundary_finalities.saturating_add(retention);
        Some(head.saturating_sub(finalities.saturating_mul(self.finality)))
    }

    /// True when `epoch` is within ±F of a configured upgrade, bounds included (the
    /// reference's `isNearUpgrade`: `epoch >= start && epoch <= end`).
    pub fn near_upgrade(&self, epoch: i64) -> bool {
        self.upgrade_epochs.iter().any(|&u| epoch >= u - self.finality && epoch <= u + self.finality)
    }

    /// How old a head with timestamp `head_ts_secs` is at `now_ms`, by the reference's sync
    /// hysteresis (its `HeadChange`): out of sync once older than the sync gap, back in sync
    /// only once younger than the sync wait, each bound strict (`time.Since(ts) > SyncGapTime`,
    /// `time.Since(ts) < SyncWaitTime`). A head between the two changes nothing.
    pub fn head_age(&self, head_ts_secs: u64, now_ms: u64) -> HeadAge {
        let ts_ms = head_ts_secs.saturating_mul(1000);
        let age_ms = now_ms.saturating_sub(ts_ms);
        HeadAge {
            stale: self.sync_gap_secs.is_some_and(|gap| now_ms > ts_ms && age_ms > gap.saturating_mul(1000)),
            fresh: now_ms < ts_ms || age_ms < self.sync_wait_secs.saturating_mul(1000),
        }
    }
}

/// A head's age under the sync rules ([`Config::head_age`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadAge {
    /// Older than the sync gap: the node is out of sync (never when sync checks are off).
    pub stale: bool,
    /// Younger than the sync wait: the node is in sync again.
    pub fresh: bool,
}

impl Config {
    /// Whether compactions keep a graph (`crate::graph`): they do where the chain index serves
    /// their walks too, outside messages mode.
    pub(crate) fn keeps_graph(&self) -> bool {
        self.kept_graph_bytes > 0 && self.mode != Mode::Messages
    }

    /// Whether compactions keep the hot key list (`crate::hot_keys`).
    pub(crate) fn lists_hot_keys(&self) -> bool {
        self.hot_key_list_bytes > 0
    }

    /// The waits before each walk of missing references (the reference's
    /// `waitForMissingRefs`: 0, 1 and 2 minutes), in milliseconds.
    pub fn missing_retry_waits(&self) -> impl Iterator<Item = u64> + '_ {
        (0..u64::from(self.missing_retries)).map(|i| i.saturating_mul(self.missing_retry_wait_ms))
    }
}

/// What a header at `height` keeps hot under `b`: its messages and receipts, and its state.
/// Genesis state is always kept; genesis has no messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeaderRetention {
    /// Messages and receipts are live.
    pub messages: bool,
    /// The parent state root's DAG is live.
    pub state: bool,
}

impl Boundaries {
    /// The retention rule for one header, as a pure function.
    pub fn retention(&self, height: i64) -> HeaderRetention {
        HeaderRetention {
            messages: height >= self.include_messages && height > 0,
            state: height >= self.boundary || height == 0,
        }
    }
}

/// Whether a head change should start a compaction, and if not, why not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trigger {
    /// Start one.
    Compact(Boundaries),
    /// Already compacting.
    Busy,
    /// The head is older than the sync gap.
    OutOfSync,
    /// Within ±F of a network upgrade.
    NearUpgrade,
    /// Start one early: the hot store passed [`Config::hot_size_limit`].
    OverSizeLimit(Boundaries),
    /// `head - base_epoch` has not passed the threshold.
    NotDue,
    /// The store was opened with an empty hot store beside a cold one: the first head change
    /// warms hot from cold (headers and one finality of state) instead of compacting.
    Warmup,
}

impl Trigger {
    /// The compaction to start, if the rule decided one.
    pub fn boundaries(&self) -> Option<Boundaries> {
        match self {
            Trigger::Compact(b) | Trigger::OverSizeLimit(b) => Some(*b),
            _ => None,
        }
    }
}

/// The trigger rule, as a pure function of the state it reads. `hot_bytes` is the hot
/// store's footprint, read only when [`Config::hot_size_limit`] is set.
pub fn decide_trigger(
    cfg: &Config,
    compacting: bool,
    head: i64,
    head_ts_secs: u64,
    now_ms: u64,
    base_epoch: i64,
    hot_bytes: Option<u64>,
) -> Trigger {
    if compacting {
        return Trigger::Busy;
    }
    if cfg.head_age(head_ts_secs, now_ms).stale {
        return Trigger::OutOfSync;
    }
    if cfg.near_upgrade(head) {
        return Trigger::NearUpgrade;
    }
    let since = head.saturating_sub(base_epoch);
    let over = matches!((cfg.hot_size_limit, hot_bytes), (Some(limit), Some(bytes)) if bytes >= limit);
    // The last compaction's head was `boundary_finalities·F` above its boundary, the base.
    let new_epochs = since.saturating_sub(cfg.boundary_finalities.saturating_mul(cfg.finality));
    if since > cfg.threshold() {
        Trigger::Compact(cfg.boundaries(head))
    } else if over && new_epochs >= (cfg.finality / 10).max(1) {
        Trigger::OverSizeLimit(cfg.boundaries(head))
    } else {
        Trigger::NotDue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(f: i64, r: i64) -> Config {
        Config { finality: f, message_retention: r, ..Config::default() }
    }

    #[test]
    fn boundaries_follow_the_reference_arithmetic() {
        let b = cfg(900, 0).boundaries(10_000);
        assert_eq!(b.boundary, 10_000 - 3600);
        assert_eq!(b.include_messages, b.boundary);
        let b = cfg(900, 2).boundaries(10_000);
        assert_eq!(b.include_messages, 10_000 - 3600 - 1800);
        // A retention range reaching past genesis keeps every message.
        let b = cfg(900, 10).boundaries(10_000);
        assert_eq!(b.include_messages, 0);
        // Early heads give a negative boundary: everything is inside it.
        assert!(cfg(900, 0).boundaries(100).boundary < 0);
    }

    #[test]
    fn prune_retention_follows_the_reference() {
        let c = cfg(900, 0);
        assert_eq!(c.retain_state_from(10_000, -1), None, "negative keeps all state");
        assert_eq!(c.retain_state_from(10_000, 0), Some(c.boundaries(10_000).boundary));
        assert_eq!(c.retain_state_from(10_000, 2), Some(10_000 - 3600 - 1800));
        assert!(Config { prune_every: Some(0), mode: Mode::Universal, ..c.clone() }.validate().is_err());
        assert!(Config { prune_every: Some(3), mode: Mode::Discard, ..c.clone() }.validate().is_err());
        assert!(Config { prune_every: Some(3), mode: Mode::Messages, ..c }.validate().is_ok());
    }

    /// The reference's `isNearUpgrade` (`epoch >= start && epoch <= end`, over ±F), its
    /// `HeadChange` hysteresis (`> SyncGapTime` out, `< SyncWaitTime` back in, strict) and its
    /// `waitForMissingRefs` schedule (3 walks, walk `i` after `i` minutes).
    #[test]
    fn rules_follow_the_reference() {
        let c = Config { finality: 10, upgrade_epochs: alloc::vec![200], ..Config::default() };
        assert!(!c.near_upgrade(189) && c.near_upgrade(190) && c.near_upgrade(210) && !c.near_upgrade(211));
        let ts = 1_000;
        let at = |ms: u64| c.head_age(ts, ts * 1000 + ms);
        assert_eq!(at(29_999), HeadAge { stale: false, fresh: true });
        assert_eq!(at(30_000), HeadAge { stale: false, fresh: false }, "30 s is not younger than 30 s");
        assert_eq!(at(60_000), HeadAge { stale: false, fresh: false }, "60 s is not older than 60 s");
        assert_eq!(at(60_001), HeadAge { stale: true, fresh: false });
        // A head from the future (a clock behind) is fresh, never stale.
        assert_eq!(c.head_age(ts, ts * 1000 - 5_000), HeadAge { stale: false, fresh: true });
        let unchecked = Config { sync_gap_secs: None, ..c.clone() };
        assert!(!unchecked.head_age(ts, ts * 1000 + 3_600_000).stale);
        let minutes = Config { missing_retries: 3, missing_retry_wait_ms: 60_000, ..c.clone() };
        assert_eq!(minutes.missing_retry_waits().collect::<alloc::vec::Vec<_>>(), [0, 60_000, 120_000]);
        assert_eq!(Config { missing_retries: 0, ..c }.missing_retry_waits().count(), 0);
    }

    #[test]
    fn header_retention() {
        let b = Boundaries { head: 100, boundary: 60, include_messages: 40 };
        assert_eq!(b.retention(0), HeaderRetention { messages: false, state: true });
        assert_eq!(b.retention(39), HeaderRetention { messages: false, state: false });
        assert_eq!(b.retention(40), HeaderRetention { messages: true, state: false });
        assert_eq!(b.retention(60), HeaderRetention { messages: true, state: true });
    }

    #[test]
    fn trigger_rules() {
        let c = Config { finality: 10, sync_gap_secs: Some(60), upgrade_epochs: alloc::vec![200], ..Config::default() };
        let now = 1_000_000_000;
        let fresh = now / 1000 - 5;
        assert_eq!(decide_trigger(&c, false, 51, fresh, now, 0, None), Trigger::Compact(c.boundaries(51)));
        assert_eq!(decide_trigger(&c, false, 50, fresh, now, 0, None), Trigger::NotDue);
        assert_eq!(decide_trigger(&c, true, 51, fresh, now, 0, None), Trigger::Busy);
        assert_eq!(decide_trigger(&c, false, 51, fresh - 61, now, 0, None), Trigger::OutOfSync);
        assert_eq!(decide_trigger(&c, false, 195, fresh, now, 0, None), Trigger::NearUpgrade);
        assert_eq!(decide_trigger(&c, false, 215, fresh, now, 0, None), Trigger::Compact(c.boundaries(215)));
        let nocheck = Config { sync_gap_secs: None, ..c };
        assert_eq!(decide_trigger(&nocheck, false, 51, 0, now, 0, None), Trigger::Compact(nocheck.boundaries(51)));
    }

    #[test]
    fn size_limit_compacts_early_but_not_at_every_head_nor_past_the_other_rules() {
        let c = Config {
            finality: 20,
            sync_gap_secs: Some(60),
            upgrade_epochs: alloc::vec![300],
            hot_size_limit: Some(1000),
            ..Config::default()
        };
        let now = 1_000_000_000;
        let fresh = now / 1000 - 5;
        let over = Some(1000);
        // The last compaction (head 180) left base 100: two new epochs are a tenth of F.
        assert_eq!(decide_trigger(&c, false, 182, fresh, now, 100, over), Trigger::OverSizeLimit(c.boundaries(182)));
        assert_eq!(decide_trigger(&c, false, 181, fresh, now, 100, over), Trigger::NotDue, "too soon after the last");
        assert_eq!(decide_trigger(&c, false, 182, fresh, now, 100, Some(999)), Trigger::NotDue);
        assert_eq!(decide_trigger(&c, false, 182, fresh, now, 100, None), Trigger::NotDue, "no estimate");
        assert_eq!(decide_trigger(&c, false, 201, fresh, now, 100, over), Trigger::Compact(c.boundaries(201)));
        assert_eq!(decide_trigger(&c, true, 182, fresh, now, 100, over), Trigger::Busy);
        assert_eq!(decide_trigger(&c, false, 182, fresh - 61, now, 100, over), Trigger::OutOfSync);
        assert_eq!(decide_trigger(&c, false, 290, fresh, now, 200, over), Trigger::NearUpgrade);
        let unlimited = Config { hot_size_limit: None, ..c.clone() };
        assert_eq!(decide_trigger(&unlimited, false, 182, fresh, now, 100, over), Trigger::NotDue);
        assert!(Config { hot_size_limit: Some(0), ..c }.validate().is_err());
    }
}
