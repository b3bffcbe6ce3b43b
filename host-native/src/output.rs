//! Human and JSON renderings of the store's reports.

use serde_json::{json, Value};
use splitstore_core::{store::Info, CheckReport, Cid, CompactionReport, RecoveryReport};

/// Sizes of a store's files, beside the core's object counts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DiskUsage {
    /// Hot store: every file.
    pub hot_disk: u64,
    /// Hot store: journals (a bounded cost, not reclaimed).
    pub hot_journal: u64,
    /// Cold store: every file.
    pub cold_disk: u64,
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

fn cids(c: &[Cid]) -> Vec<String> {
    c.iter().map(ToString::to_string).collect()
}

fn recovery_json(r: &RecoveryReport) -> Value {
    json!({
        "finished_purge": r.finished_purge,
        "purged": r.purged,
        "discarded_entries": r.discarded_entries,
        "ms": r.ms,
    })
}

/// `info --json`.
pub fn info_json(i: &Info, disk: &DiskUsage) -> Value {
    json!({
        "head": i.head.as_deref().map(cids),
        "head_epoch": i.head_epoch,
        "base_epoch": i.base_epoch,
        "compactions": i.compactions,
        "hot": { "objects": i.hot.keys, "bytes": i.hot.bytes, "disk_bytes": disk.hot_disk, "journal_bytes": disk.hot_journal },
        "cold": { "objects": i.cold.keys, "bytes": i.cold.bytes, "disk_bytes": disk.cold_disk },
        "compacting": i.compacting,
        "pending_recovery": i.pending_recovery,
        "recovery": i.recovery.as_ref().map(recovery_json),
        "last_compaction": i.last_compaction.as_ref().map(compaction_json),
        "last_error": i.last_error,
    })
}

/// `info`.
pub fn info_text(i: &Info, disk: &DiskUsage) -> String {
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
    s += &format!(
        "hot:              {} objects, {} (disk {}, of which journal {})\n",
        i.hot.keys,
        human_bytes(i.hot.bytes),
        human_bytes(disk.hot_disk),
        human_bytes(disk.hot_journal)
    );
    s += &format!(
        "cold:             {} objects, {} (disk {})\n",
        i.cold.keys,
        human_bytes(i.cold.bytes),
        human_bytes(disk.cold_disk)
    );
    s += &format!("compacting:       {}\n", if i.compacting { "yes" } else { "no" });
    s += &format!("pending recovery: {}\n", if i.pending_recovery { "yes" } else { "no" });
    if let Some(r) = &i.recovery {
        s += &format!(
            "recovered on open: finished purge {}, purged {}, discarded {} list entries, {} ms\n",
            r.finished_purge, r.purged, r.discarded_entries, r.ms
        );
    }
    if let Some(e) = &i.last_error {
        s += &format!("last compaction error: {e}\n");
    }
    s
}

/// `check --json`.
pub fn check_json(c: &CheckReport) -> Value {
    json!({
        "hot": c.hot,
        "cold": c.cold,
        "missing": c.missing,
        "missing_cids": cids(&c.missing_cids),
    })
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
    let phases: serde_json::Map<String, Value> =
        r.phases.iter().map(|(p, ms)| (p.as_str().to_string(), json!(ms))).collect();
    json!({
        "head_epoch": r.head_epoch,
        "boundary_epoch": r.boundary_epoch,
        "include_messages_epoch": r.include_messages_epoch,
        "marked": r.marked,
        "hot_scanned": r.hot_scanned,
        "dead": r.dead,
        "moved": r.moved,
        "purged": r.purged,
        "rescued": r.rescued,
        "missing": r.missing,
        "markset_bytes_per_object": r.markset_bytes_per_object,
        "phases_ms": phases,
        "total_ms": r.total_ms,
        "resumed": r.resumed,
    })
}

/// One compaction's report for people.
pub fn compaction_text(r: &CompactionReport) -> String {
    let phases: Vec<String> = r.phases.iter().map(|(p, ms)| format!("{} {ms} ms", p.as_str())).collect();
    format!(
        "compaction at epoch {} (boundary {}): marked {}, scanned {}, dead {}, moved {}, purged {}{}\n\
         time {} ms: {}\n\
         mark set: {:.1} bytes per object\n",
        r.head_epoch,
        r.boundary_epoch,
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
        let r = CompactionReport {
            head_epoch: 77,
            purged: 12,
            phases: vec![(splitstore_core::Phase::Mark, 5)],
            ..Default::default()
        };
        let t = compaction_text(&r);
        assert!(t.contains("epoch 77") && t.contains("purged 12") && t.contains("mark 5 ms"), "{t}");
        let j = compaction_json(&r);
        assert_eq!(j["phases_ms"]["mark"], 5);
        let c = CheckReport { hot: 3, cold: 1, missing: 0, missing_cids: vec![] };
        assert_eq!(check_json(&c)["hot"], 3);
        let i = Info::default();
        assert!(info_text(&i, &DiskUsage::default()).contains("head:             none"));
        assert_eq!(info_json(&i, &DiskUsage::default())["head"], Value::Null);
    }
}
