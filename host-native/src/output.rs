//! Human and JSON renderings of the store's reports.

use serde::Serialize;
use serde_json::Value;
use splitstore_core::{kv::SpaceEstimate, store::Info, CheckReport, CompactionReport, Counts, PruneReport};

use crate::{errors::HostError, ops::NativeStore};

/// Sizes of a store's files, beside the core's object counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DiskUsage {
    /// Hot store: every file, in bytes.
    pub hot: u64,
    /// Hot store: journals (a bounded cost, not reclaimed).
    pub hot_journal: u64,
    /// Cold store: every file.
    pub cold: u64,
}

impl DiskUsage {
    /// The sizes of `store`'s files now.
    pub fn of(store: &NativeStore) -> Result<Self, HostError> {
        let kv = |store: &'static str| move |source| HostError::Kv { store, source };
        Ok(DiskUsage {
            hot: store.hot().disk_bytes().map_err(kv("hot"))?,
            hot_journal: store.hot().journal_bytes().map_err(kv("hot"))?,
            cold: store.cold().disk_bytes().map_err(kv("cold"))?,
        })
    }
}

/// `1.5 MiB`-style sizes.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `info --json`: the core's [`Info`] as it serialises, with the files' sizes and, when
/// counted, exact block counts.
pub fn info_json(i: &Info, disk: &DiskUsage, counts: Option<&Counts>) -> Value {
    #[derive(Serialize)]
    struct InfoJson<'a> {
        #[serde(flatten)]
        info: &'a Info,
        disk: &'a DiskUsage,
        #[serde(skip_serializing_if = "Option::is_none")]
        counts: Option<&'a Counts>,
    }
    serde_json::to_value(InfoJson { info: i, disk, counts }).expect("reports serialise")
}

fn estimate_text(e: Option<&SpaceEstimate>) -> String {
    match e {
        Some(SpaceEstimate { keys, bytes: Some(b) }) => format!("~{keys} objects, tables {}", human_bytes(*b)),
        Some(SpaceEstimate { keys, bytes: None }) => format!("~{keys} objects"),
        None => "size unknown".into(),
    }
}

/// `info`.
pub fn info_text(i: &Info, disk: &DiskUsage, counts: Option<&Counts>) -> String {
    let mut s = String::new();
    match (&i.head, i.head_epoch) {
        (Some(h), Some(e)) => {
            s += &format!("head:             epoch {e}\n");
            for c in h {
                s += &format!("                  {c}\n");
            }
        }
        _ => s += "head:             none (import a chain or apply a head)\n",
    }
    s += &format!("base epoch:       {}\n", i.base_epoch);
    s += &format!("compactions:      {}\n", i.compactions);
    s += &format!("cold prunes:      {}\n", i.prunes);
    s += &format!(
        "hot:              {} (disk {}, of which journal {})\n",
        estimate_text(i.hot.as_ref()),
        human_bytes(disk.hot),
        human_bytes(disk.hot_journal)
    );
    s += &format!("cold:             {} (disk {})\n", estimate_text(i.cold.as_ref()), human_bytes(disk.cold));
    if let Some(c) = counts {
        s += &format!("hot, counted:     {} objects, {}\n", c.hot.keys, human_bytes(c.hot.bytes));
        s += &format!("cold, counted:    {} objects, {}\n", c.cold.keys, human_bytes(c.cold.bytes));
    }
    match (i.compacting, &i.progress) {
        (true, Some(p)) => {
            let total = p.total.map(|t| format!(" of {t}")).unwrap_or_default();
            s += &format!("compacting:       yes, {} {}{total}\n", p.phase.as_str(), p.done);
        }
        (true, None) => s += "compacting:       yes\n",
        (false, _) => s += "compacting:       no\n",
    }
    s += &format!("pending recovery: {}\n", if i.pending_recovery { "yes" } else { "no" });
    if let Some(r) = &i.recovery {
        s += &format!(
            "recovered on open: finished purge {}, purged {}, discarded {} list entries, {} ms\n",
            r.finished_purge, r.purged, r.discarded_entries, r.ms
        );
    }
    let m = &i.metrics;
    s += &format!(
        "since open:       {} lookups ({} hot, {} cold, {} missed), {} blocks written ({}), {} deleted\n",
        m.lookups,
        m.hot_hits,
        m.cold_hits,
        m.misses,
        m.blocks_written,
        human_bytes(m.bytes_written),
        m.blocks_deleted
    );
    s += &format!(
        "held in memory:   hot key list {}, kept graph {}\n",
        human_bytes(i.held.hot_key_list),
        human_bytes(i.held.kept_graph)
    );
    if let Some(e) = &i.last_error {
        s += &format!("last error:       {e}\n");
    }
    s
}

/// `check --json`.
pub fn check_json(c: &CheckReport) -> Value {
    serde_json::to_value(c).expect("reports serialise")
}

/// `check`.
pub fn check_text(c: &CheckReport) -> String {
    let mut s = format!("live objects: {} hot, {} cold, {} missing\n", c.hot, c.cold, c.missing);
    for cid in &c.missing_cids {
        s += &format!("missing: {cid}\n");
    }
    s
}

/// One compaction's report as JSON.
pub fn compaction_json(r: &CompactionReport) -> Value {
    serde_json::to_value(r).expect("reports serialise")
}

/// One compaction's report for people (or the warmup's, when the run was one).
pub fn compaction_text(r: &CompactionReport) -> String {
    if let Some(w) = &r.warmup {
        return format!(
            "warmup at epoch {}: copied {} blocks ({}) from cold into hot, {} already hot; {} headers, state \
             from epoch {}, {} missing; {} ms\n",
            w.head_epoch,
            w.copied,
            human_bytes(w.bytes),
            w.already_hot,
            w.headers,
            w.state_from,
            w.missing,
            w.ms
        );
    }
    let mut phases: Vec<String> = r.phases.iter().map(|(p, ms)| format!("{} {ms} ms", p.as_str())).collect();
    if r.purge_paused_ms > 0 {
        phases.push(format!("of the purge, {} ms paused for slowed calls", r.purge_paused_ms));
    }
    format!(
        "compaction at epoch {} (boundary {}){}: marked {}, scanned {}, dead {}, moved {}, purged {}{}\n\
         time {} ms: {}\n\
         mark set: {:.1} bytes per object\n",
        r.head_epoch,
        r.boundary_epoch,
        if r.over_size_limit { ", early: the hot store passed its size limit" } else { "" },
        r.marked,
        r.hot_scanned,
        r.dead,
        r.moved,
        r.purged,
        if r.resumed { " (finished an interrupted purge)" } else { "" },
        r.total_ms,
        phases.join(", "),
        r.markset_bytes_per_object,
    )
}

/// One prune's report for people.
pub fn prune_text(r: &PruneReport) -> String {
    let phases: Vec<String> = r.phases.iter().map(|(p, ms)| format!("{} {ms} ms", p.as_str())).collect();
    let kept = match r.retain_state_from {
        Some(e) => format!("state from epoch {e}"),
        None => "all state".into(),
    };
    format!(
        "prune at epoch {} keeping {kept}: marked {}, cold scanned {}, dead {}, purged {}{}\n\
         time {} ms: {}\n",
        r.head_epoch,
        r.marked,
        r.cold_scanned,
        r.dead,
        r.purged,
        if r.resumed { " (finished an interrupted prune)" } else { "" },
        r.total_ms,
        phases.join(", "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_naturally() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(5 << 30), "5.0 GiB");
    }

    #[test]
    fn reports_render_their_numbers() {
        let mut r = CompactionReport::default();
        r.head_epoch = 77;
        r.purged = 12;
        r.phases = vec![(splitstore_core::Phase::Mark, 5)];
        let t = compaction_text(&r);
        assert!(t.contains("epoch 77") && t.contains("purged 12") && t.contains("mark 5 ms"), "{t}");
        let mut p = PruneReport::default();
        p.head_epoch = 90;
        p.purged = 7;
        let t = prune_text(&p);
        assert!(t.contains("epoch 90 keeping all state") && t.contains("purged 7"), "{t}");
        p.retain_state_from = Some(40);
        assert!(prune_text(&p).contains("state from epoch 40"));
        let j = compaction_json(&r);
        assert_eq!(j["phases"][0]["phase"], "mark");
        assert_eq!(j["phases"][0]["ms"], 5);
        assert_eq!(j["headEpoch"], 77);
        let mut c = CheckReport::default();
        c.hot = 3;
        c.missing_cids = vec![splitstore_core::Cid::default()];
        let cj = check_json(&c);
        assert_eq!(cj["hot"], 3);
        assert_eq!(cj["missingCids"][0], splitstore_core::Cid::default().to_string());
        let back: CheckReport = serde_json::from_value(cj).expect("check reports read back");
        assert_eq!(back, c);
        let i = Info::default();
        assert!(info_text(&i, &DiskUsage::default(), None).contains("head:             none"));
        let ij = info_json(&i, &DiskUsage::default(), None);
        assert_eq!(ij["head"], Value::Null);
        assert_eq!(ij["disk"]["hotJournal"], 0);
        assert!(ij.get("counts").is_none());
        let back: Info = serde_json::from_value(ij).expect("info reads back, ignoring the host's fields");
        assert_eq!(back, i);
    }
}
