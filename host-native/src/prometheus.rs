//! The store's state and counters in the Prometheus text exposition format.
//!
//! [`registry`] gives an embedder a `prometheus_client` registry whose collector reads the
//! store at every scrape ([`SplitStore::info`](splitstore_core::SplitStore::info) is constant
//! time); [`text`] renders one [`Snapshot`] (what `splitstore info --format prometheus` writes
//! for node_exporter's textfile collector). Every name starts with `splitstore_`; counters
//! end in `_total`, sizes are in bytes and times in seconds.

use std::{fmt, sync::Arc};

use futures::executor::block_on;
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric},
    metrics::{counter::ConstCounter, gauge::ConstGauge, MetricType},
    registry::Registry,
};
use serde::{Deserialize, Serialize};
use splitstore_core::{Info, Phase};

use crate::{ops::NativeStore, output::DiskUsage};

/// What one scrape reports: the store's [`Info`] and, natively, its files' sizes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The store's state and counters.
    pub info: Info,
    /// The repo's file sizes, when known.
    pub disk: Option<DiskUsage>,
}

impl Snapshot {
    /// Reads `store` now (constant time).
    pub fn of(store: &NativeStore) -> Result<Self, splitstore_core::Error> {
        let info = block_on(store.info())?;
        let disk = DiskUsage::of(store).ok();
        Ok(Snapshot { info, disk })
    }
}

/// The metric families of `s`, each with its help text.
fn encode(s: &Snapshot, enc: &mut DescriptorEncoder) -> fmt::Result {
    let i = &s.info;
    let m = &i.metrics;
    let counter = |enc: &mut DescriptorEncoder, name: &str, help: &str, samples: &[(&[(&str, &str)], u64)]| {
        let mut family = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
        match samples {
            [(&[], v)] => ConstCounter::new(*v).encode(family),
            _ => samples.iter().try_for_each(|(l, v)| ConstCounter::new(*v).encode(family.encode_family(l)?)),
        }
    };
    let gauge = |enc: &mut DescriptorEncoder, name: &str, help: &str, samples: &[(&[(&str, &str)], f64)]| {
        let mut family = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
        match samples {
            [(&[], v)] => ConstGauge::new(*v).encode(family),
            _ => samples.iter().try_for_each(|(l, v)| ConstGauge::new(*v).encode(family.encode_family(l)?)),
        }
    };
    let one = |v: u64| -> [(&[(&str, &str)], u64); 1] { [(&[], v)] };
    let flag = |b: bool| if b { 1.0 } else { 0.0 };

    counter(
        enc,
        "splitstore_lookups",
        "Block lookups since the store was opened, by where they were answered",
        &[(&[("result", "hot")], m.hot_hits), (&[("result", "cold")], m.cold_hits), (&[("result", "miss")], m.misses)],
    )?;
    counter(
        enc,
        "splitstore_read_bytes",
        "Bytes of blocks read, by the store that answered",
        &[(&[("store", "hot")], m.hot_read_bytes), (&[("store", "cold")], m.cold_read_bytes)],
    )?;
    counter(enc, "splitstore_written_blocks", "Blocks written to the hot store", &one(m.blocks_written))?;
    counter(enc, "splitstore_written_bytes", "Bytes of blocks written to the hot store", &one(m.bytes_written))?;
    counter(enc, "splitstore_write_batches", "Atomic write batches", &one(m.write_batches))?;
    counter(enc, "splitstore_deleted_blocks", "Blocks deleted through the API", &one(m.blocks_deleted))?;
    counter(
        enc,
        "splitstore_compactions",
        "Compactions since the store was opened, by outcome",
        &[
            (&[("outcome", "started")], m.compactions_started),
            (&[("outcome", "finished")], m.compactions_finished),
            (&[("outcome", "failed")], m.compactions_failed),
        ],
    )?;
    counter(
        enc,
        "splitstore_compaction_objects",
        "Objects handled by finished compactions (purged includes recovery), by what was done",
        &[
            (&[("action", "marked")], m.marked),
            (&[("action", "dead")], m.dead),
            (&[("action", "moved")], m.moved),
            (&[("action", "purged")], m.purged),
        ],
    )?;
    let family = enc.encode_descriptor(
        "splitstore_compaction_seconds",
        "Time spent in finished compactions",
        None,
        MetricType::Counter,
    )?;
    ConstCounter::new(m.compaction_ms as f64 / 1000.0).encode(family)?;
    counter(enc, "splitstore_recoveries", "Interrupted purges finished by recovery at open", &one(m.recoveries))?;
    counter(
        enc,
        "splitstore_reify_roots",
        "Cold hits of reads in use, by whether they were queued to be copied into hot",
        &[(&[("outcome", "queued")], m.reify_queued), (&[("outcome", "dropped")], m.reify_dropped)],
    )?;
    counter(enc, "splitstore_reified_blocks", "Blocks copied from cold into hot by reify", &one(m.reified))?;
    counter(
        enc,
        "splitstore_reify_aborted",
        "Queued DAGs not copied because their cold part exceeded the reify limit",
        &one(m.reify_aborted),
    )?;
    counter(
        enc,
        "splitstore_compaction_waits",
        "API calls that waited on a compaction (its exclusive lock, or a purge write of the block written)",
        &one(m.lock_waits),
    )?;
    let family = enc.encode_descriptor(
        "splitstore_compaction_wait_seconds",
        "Time API calls waited on a compaction",
        None,
        MetricType::Counter,
    )?;
    ConstCounter::new(m.lock_wait_ms as f64 / 1000.0).encode(family)?;
    counter(
        enc,
        "splitstore_calls",
        "API calls through the store's lock, by whether they took the slow-call threshold or longer",
        &[(&[("speed", "fast")], m.calls.saturating_sub(m.slow_calls)), (&[("speed", "slow")], m.slow_calls)],
    )?;

    if let Some(h) = i.head_epoch {
        gauge(enc, "splitstore_head_epoch", "Height of the head tipset", &[(&[], h as f64)])?;
    }
    gauge(
        enc,
        "splitstore_base_epoch",
        "State below this epoch has left the hot store",
        &[(&[], i.base_epoch as f64)],
    )?;
    gauge(
        enc,
        "splitstore_completed_compactions",
        "Compactions completed over the store's life",
        &[(&[], i.compactions as f64)],
    )?;
    gauge(enc, "splitstore_compacting", "1 while a compaction runs", &[(&[], flag(i.compacting))])?;
    gauge(
        enc,
        "splitstore_pending_recovery",
        "1 while an interrupted purge waits to be finished",
        &[(&[], flag(i.pending_recovery))],
    )?;
    if let Some(p) = i.progress.filter(|_| i.compacting) {
        gauge(
            enc,
            "splitstore_compaction_phase_done",
            "Objects done in the running compaction's current phase",
            &[(&[("phase", p.phase.as_str())], p.done as f64)],
        )?;
    }
    let objects: Vec<(&[(&str, &str)], f64)> = [(&[("store", "hot")][..], i.hot), (&[("store", "cold")][..], i.cold)]
        .into_iter()
        .filter_map(|(l, e)| e.map(|e| (l, e.keys as f64)))
        .collect();
    if !objects.is_empty() {
        gauge(enc, "splitstore_objects", "Blocks in each store, as its backend estimates them", &objects)?;
    }
    if let Some(d) = &s.disk {
        gauge(
            enc,
            "splitstore_disk_bytes",
            "Bytes of each store's files",
            &[(&[("store", "hot")], d.hot as f64), (&[("store", "cold")], d.cold as f64)],
        )?;
        gauge(enc, "splitstore_journal_bytes", "Bytes of the hot store's journals", &[(&[], d.hot_journal as f64)])?;
    }
    gauge(
        enc,
        "splitstore_held_bytes",
        "Heap bytes the store holds between compactions, by what holds them",
        &[
            (&[("holder", "hot_key_list")], i.held.hot_key_list as f64),
            (&[("holder", "kept_graph")], i.held.kept_graph as f64),
        ],
    )?;
    gauge(
        enc,
        "splitstore_last_compaction_failed",
        "1 when the last compaction ended in an error",
        &[(&[], flag(i.last_error.is_some()))],
    )?;
    if let Some(r) = &i.last_compaction {
        let phases: Vec<(&'static str, f64)> =
            r.phases.iter().map(|(p, ms)| (Phase::as_str(*p), *ms as f64 / 1000.0)).collect();
        let labels: Vec<[(&str, &str); 1]> = phases.iter().map(|(p, _)| [("phase", *p)]).collect();
        let samples: Vec<(&[(&str, &str)], f64)> = labels.iter().zip(&phases).map(|(l, (_, s))| (&l[..], *s)).collect();
        gauge(enc, "splitstore_last_compaction_phase_seconds", "Time of each phase of the last compaction", &samples)?;
        gauge(
            enc,
            "splitstore_last_compaction_seconds",
            "Time of the last compaction",
            &[(&[], r.total_ms as f64 / 1000.0)],
        )?;
        gauge(
            enc,
            "splitstore_last_compaction_objects",
            "Objects handled by the last compaction, by what was done",
            &[
                (&[("action", "marked")], r.marked as f64),
                (&[("action", "dead")], r.dead as f64),
                (&[("action", "moved")], r.moved as f64),
                (&[("action", "purged")], r.purged as f64),
            ],
        )?;
    }
    Ok(())
}

/// A collector over a fixed snapshot.
#[derive(Debug)]
struct Fixed(Snapshot);

impl Collector for Fixed {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        encode(&self.0, &mut encoder)
    }
}

/// A collector that reads the store at every scrape.
#[derive(Debug)]
struct Live(Arc<NativeStore>);

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        // A closed or poisoned store has nothing to report; the scrape still succeeds.
        match Snapshot::of(&self.0) {
            Ok(s) => encode(&s, &mut encoder),
            Err(_) => Ok(()),
        }
    }
}

/// A registry reporting `store` at every scrape; an embedder may register its own metrics
/// beside it, or move the collector into a registry of its own via [`collector`].
pub fn registry(store: Arc<NativeStore>) -> Registry {
    let mut r = Registry::default();
    r.register_collector(collector(store));
    r
}

/// The collector behind [`registry`].
pub fn collector(store: Arc<NativeStore>) -> Box<dyn Collector> {
    Box::new(Live(store))
}

/// `s` in the Prometheus text format (version 0.0.4).
pub fn text(s: &Snapshot) -> String {
    let mut r = Registry::default();
    r.register_collector(Box::new(Fixed(s.clone())));
    encode_registry(&r)
}

/// Every metric of `r` in the Prometheus text format (version 0.0.4).
pub fn encode_registry(r: &Registry) -> String {
    let mut out = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut out, r).expect("writing to a String cannot fail");
    out
}
