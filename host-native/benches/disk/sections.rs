//! The benchmark's sections: each runs its measurements, prints them, and adds its part of
//! the markdown summary.

use super::{
    fixture::{Fixture, LiveSet, PAGE},
    foreground::{foreground_run, Latency, IDLE, OPS_PER_SEC, PUT_EVERY, STALL_MS},
    phases::{mark_run, paced_idle_run, phase_run, PhaseRun, ROWS},
    recovery::{recovery_run, KillPoint},
    stats::{median, phase_secs, ratio},
    BenchResult,
};
use splitstore_core::{Mode, Phase};

/// Target of the compaction / raw KV cost ratio.
const RATIO_TARGET: f64 = 1.25;
/// Target of p99 during the purge / p99 idle.
const LATENCY_TARGET: f64 = 2.0;

fn verdict(value: f64, target: f64) -> &'static str {
    if value <= target {
        "met"
    } else {
        "MISSED"
    }
}

/// Returns the mean unpaced work of one purge batch (median of the discard runs), seconds.
pub fn section_phases(
    fx: &Fixture,
    runs: usize,
    live: &mut Option<LiveSet>,
    cold_mark: &mut Vec<f64>,
    summary: &mut Vec<String>,
) -> BenchResult<f64> {
    println!("== 1. phases: compaction vs the raw KV cost of the same I/O (purge pacing off) ==");
    let modes = [Mode::Universal, Mode::Discard];
    // A universal run (move and reclaim of the whole dead set) costs about three discard runs.
    let universal_runs = runs.div_ceil(3);
    let mut results: Vec<Vec<PhaseRun>> = vec![Vec::new(); modes.len()];
    for run in 1..=runs {
        for (m, mode) in modes.iter().enumerate() {
            if *mode == Mode::Universal && run > universal_runs {
                continue;
            }
            let r = phase_run(fx, *mode, live)?;
            let rep = &r.report;
            let (ew, rw, ec, rc) =
                (r.engine.iter().sum(), r.raw.iter().sum(), r.engine_cpu.iter().sum(), r.raw_cpu.iter().sum());
            println!(
                "run {run} {}: marked {}, scanned {}, dead {}, moved {}, purged {}; engine {ew:.2} s / raw {rw:.2} s \
                 = {:.2}x (CPU {ec:.2} s / {rc:.2} s = {:.2}x); finish + reclaim {:.2} s / {:.2} s",
                mode.as_str(),
                rep.marked,
                rep.hot_scanned,
                rep.dead,
                rep.moved,
                rep.purged,
                ratio(ew, rw),
                ratio(ec, rc),
                r.engine_reclaim.0,
                r.raw_reclaim.0
            );
            println!("    phases (ms): {:?}", rep.phases.iter().map(|(p, ms)| (p.as_str(), *ms)).collect::<Vec<_>>());
            cold_mark.push(ratio(rep.marked as f64, phase_secs(rep, &[Phase::Mark])));
            results[m].push(r);
        }
    }
    summary.push(String::new());
    summary.push(format!(
        "**Phases vs raw KV cost** (medians of {universal_runs} universal and {runs} discard runs; purge pacing off; \
         each raw step does the phase's reads, scans and writes with plain `FjallKv` calls in the same batch sizes \
         on an identical copy of the store; wall time, and the ratio of process CPU time, which other load on the \
         machine does not inflate; finish + reclaim timed apart, not in the total):\n"
    ));
    summary.push(
        "| phase | universal: engine | raw | ratio | CPU ratio | discard: engine | raw | ratio | CPU ratio |".into(),
    );
    summary.push("|---|---|---|---|---|---|---|---|---|".into());
    println!("\nmedians of {universal_runs} universal and {runs} discard runs (wall seconds; ratio; CPU-time ratio):");
    println!(
        "{:<24} {:>9} {:>8} {:>7} {:>7}   {:>9} {:>8} {:>7} {:>7}",
        "", "univ eng", "raw", "ratio", "cpu", "disc eng", "raw", "ratio", "cpu"
    );
    type Pick<'a> = dyn Fn(&PhaseRun) -> (f64, f64, f64, f64) + 'a;
    let mut row = |name: &str, f: &Pick<'_>, bold: bool| {
        let cells: Vec<[f64; 4]> = results
            .iter()
            .map(|rs| {
                let med =
                    |g: &dyn Fn((f64, f64, f64, f64)) -> f64| median(&rs.iter().map(|r| g(f(r))).collect::<Vec<_>>());
                [med(&|t| t.0), med(&|t| t.1), med(&|t| ratio(t.0, t.1)), med(&|t| ratio(t.2, t.3))]
            })
            .collect();
        let (u, d) = (cells[0], cells[1]);
        // A step with no work in this mode (move in discard mode) has no ratio.
        let text = |c: [f64; 4]| {
            if c[1] >= 0.001 {
                format!("{:>9.3} {:>8.3} {:>6.2}x {:>6.2}x", c[0], c[1], c[2], c[3])
            } else {
                format!("{:>9} {:>8} {:>7} {:>7}", "-", "-", "-", "-")
            }
        };
        println!("{name:<24} {}   {}", text(u), text(d));
        let b = if bold { "**" } else { "" };
        let cell = |c: [f64; 4]| {
            if c[1] >= 0.001 {
                format!("{:.2} s | {:.2} s | {b}{:.2}×{b} | {:.2}×", c[0], c[1], c[2], c[3])
            } else {
                "— | — | — | —".to_string()
            }
        };
        summary.push(format!("| {b}{name}{b} | {} | {} |", cell(u), cell(d)));
        (u[2], d[2], u[3], d[3])
    };
    for (i, (name, _)) in ROWS.iter().enumerate() {
        row(name, &|r| (r.engine[i], r.raw[i], r.engine_cpu[i], r.raw_cpu[i]), false);
    }
    let sum = |v: &[f64; 4]| v.iter().sum::<f64>();
    let (tu, td, cu, cd) = row("total", &|r| (sum(&r.engine), sum(&r.raw), sum(&r.engine_cpu), sum(&r.raw_cpu)), true);
    row(
        "finish + reclaim (apart)",
        &|r| (r.engine_reclaim.0, r.raw_reclaim.0, r.engine_reclaim.1, r.raw_reclaim.1),
        false,
    );
    let worst = tu.max(td);
    println!(
        "compaction / raw KV cost: {tu:.2}x universal, {td:.2}x discard (target <= {RATIO_TARGET}x): {}; CPU time \
         {cu:.2}x and {cd:.2}x",
        verdict(worst, RATIO_TARGET)
    );
    summary.push(String::new());
    summary.push(format!(
        "Total compaction / raw KV cost: {tu:.2}× universal, {td:.2}× discard; target ≤ {RATIO_TARGET}×: {} (CPU \
         time: {cu:.2}× and {cd:.2}×).",
        verdict(worst, RATIO_TARGET)
    ));
    let discard = &results[1];
    // The same discard compaction paced from its first page, on a store nobody uses: the purge
    // pauses only while someone uses the store, so it should cost what the unpaced one does
    // (a purge that always paused would take five times as long).
    let paced = paced_idle_run(fx)?;
    let unpaced_total = median(&discard.iter().map(|r| r.report.total_ms as f64 / 1000.0).collect::<Vec<_>>());
    let unpaced_purge = median(&discard.iter().map(|r| phase_secs(&r.report, &[Phase::Purge])).collect::<Vec<_>>());
    println!(
        "idle store, paced from the first page: compaction {:.2} s (purge {:.2} s) vs unpaced {unpaced_total:.2} s (purge \
         {unpaced_purge:.2} s): {:.2}x",
        paced.0,
        paced.1,
        ratio(paced.0, unpaced_total)
    );
    summary.push(String::new());
    summary.push(format!(
        "Idle store, pacing from the first page (`purge_pace_after_ms` 0, factor 4, which pauses only while the \
         store is used; a purge that always paused would take five times as long): discard compaction {:.2} s, purge {:.2} s, against the unpaced median {unpaced_total:.2} s and purge \
         {unpaced_purge:.2} s: **{:.2}×**.",
        paced.0,
        paced.1,
        ratio(paced.0, unpaced_total)
    ));
    let per_batch = median(
        &discard.iter().map(|r| r.engine[3] / (r.report.dead as f64 / PAGE as f64).ceil().max(1.0)).collect::<Vec<_>>(),
    );
    Ok(per_batch)
}

pub fn section_mark(
    fx: &Fixture,
    live: &LiveSet,
    cold_mark: &[f64],
    flush_memtable: bool,
    kept_graph: bool,
    summary: &mut Vec<String>,
) -> BenchResult<()> {
    let memtable = if flush_memtable { "memtable written out first" } else { "memtable as opened" };
    println!("\n== 2. mark throughput, warm store, {memtable} ==");
    summary.push(String::new());
    summary.push(format!(
        "**Mark throughput** ({} objects marked, {} blocks loaded; {memtable}; warm: a full read of the hot store and \
         two of the live blocks first; the raw rates are those two reads; per CPU-second = per core, from the CPU \
         time of the compaction's thread, or of the process for the raw reads):\n",
        live.marked,
        live.loaded.len()
    ));
    summary.push(
        "| read threads | mark's read batch | mark, objects/s | per CPU-second | raw `get_many` in the mark's \
         batches, blocks/s | per CPU-second | raw `get_many` ×16384, blocks/s | per CPU-second |"
            .into(),
    );
    summary.push("|---|---|---|---|---|---|---|---|".into());
    let n = live.loaded.len() as f64;
    let mut graph_rows = Vec::new();
    for threads in [1, 2] {
        let m = mark_run(fx, live, threads, flush_memtable, kept_graph)?;
        if let Some(((gw, gc), from_graph)) = m.from_graph {
            println!(
            "read threads {threads}: next compaction's mark, from the kept graph ({from_graph} objects from it): {gw:.3} s \
             ({gc:.3} CPU-s) = {:.0}k objects/s, {:.0}k per CPU-s; {:.2}x the first",
            ratio(live.marked as f64, gw) / 1e3,
            ratio(live.marked as f64, gc) / 1e3,
            ratio(m.mark.0, gw)
        );
            graph_rows.push(format!(
                "| {threads} | {:.0}k | {:.0}k | {from_graph} | {:.2}× |",
                ratio(live.marked as f64, gw) / 1e3,
                ratio(live.marked as f64, gc) / 1e3,
                ratio(m.mark.0, gw)
            ));
        }
        let marked = live.marked as f64;
        let r = |x: f64, s: f64| ratio(x, s) / 1e3;
        // Thousands per second: mark (wall, CPU), raw get_many of mark-sized batches (wall,
        // CPU), raw get_many of 16k-key batches (wall, CPU).
        let k = [
            r(marked, m.mark.0),
            r(marked, m.mark.1),
            r(n, m.raw_mark_batch.0),
            r(n, m.raw_mark_batch.1),
            r(n, m.raw_large_batch.0),
            r(n, m.raw_large_batch.1),
        ];
        println!(
            "read threads {threads}: mark {:.3} s ({:.3} CPU-s) = {:.0}k objects/s, {:.0}k per CPU-s; raw get_many \
             x{} {:.0}k blocks/s ({:.0}k per CPU-s), x16384 {:.0}k blocks/s ({:.0}k per CPU-s)",
            m.mark.0, m.mark.1, k[0], k[1], m.read_batch, k[2], k[3], k[4], k[5]
        );
        summary.push(format!(
            "| {threads} | {} | {:.0}k | {:.0}k | {:.0}k | {:.0}k | {:.0}k | {:.0}k |",
            m.read_batch, k[0], k[1], k[2], k[3], k[4], k[5]
        ));
    }
    if kept_graph {
        summary.push(String::new());
        summary.push(
        "With the kept graph on (the first mark records it). The next compaction from the same head, once the first finished (every object the first loaded is \
         marked from the graph it kept):\n"
            .into(),
    );
        summary.push(
            "| read threads | mark, objects/s | per CPU-second | objects from the graph | faster than the first |"
                .into(),
        );
        summary.push("|---|---|---|---|---|".into());
        summary.extend(graph_rows);
    }
    summary.push(String::new());
    if !cold_mark.is_empty() {
        let cold = median(cold_mark);
        println!("first compaction of a fresh copy (block cache cold): {cold:.0} objects/s (median of the phase runs)");
        summary.push(format!(
            "Fresh copy, block cache cold (section 1, median of all runs): {:.0}k objects/s with 2 read threads.",
            cold / 1e3
        ));
    }
    println!("mark set: {:.1} bytes/object", live.markset_bytes_per_object);
    summary.push(format!(
        "Mark set: {:.1} bytes/object. `get_many` is split over the read threads from 4096 keys \
         (`PARALLEL_READ_MIN`); with several read threads the mark reads 4096 per thread at a time, and \
         its work on each batch overlaps the read of the next.",
        live.markset_bytes_per_object
    ));
    Ok(())
}

fn latency_line(name: &str, l: &Latency) -> String {
    let (a, b) = (l.scheduled, l.service);
    format!(
        "{name:<16} {:>6} ops  from schedule: p50 {:>7.3} p99 {:>8.3} max {:>8.3} ms;  service: p50 {:>6.3} p99 \
         {:>7.3} max {:>8.3} ms",
        l.ops, a.p50, a.p99, a.max, b.p50, b.p99, b.max
    )
}

pub fn section_foreground(
    fx: &Fixture,
    live: &LiveSet,
    batch_secs: Option<f64>,
    summary: &mut Vec<String>,
) -> BenchResult<()> {
    println!(
        "\n== 3. foreground latency: {OPS_PER_SEC:.0} ops/s (1 put in {PUT_EVERY}, else a get of a random live block) \
         =="
    );
    let f = foreground_run(fx, live)?;
    println!(
        "compaction phases (ms): {:?}",
        f.report.phases.iter().map(|(p, ms)| (p.as_str(), *ms)).collect::<Vec<_>>()
    );
    println!("{}", latency_line(&format!("idle ({} s)", IDLE.as_secs()), &f.idle));
    println!("{}", latency_line(&format!("purge ({:.1} s)", f.purge_secs), &f.purge));
    println!("{}", latency_line("other phases", &f.other_phases));
    println!(
        "purge paused {} ms for slowed calls (of {} ms in the purge phase)",
        f.report.purge_paused_ms,
        f.report.phases.iter().find(|(p, _)| *p == Phase::Purge).map_or(0, |(_, ms)| *ms)
    );
    let r = ratio(f.purge.scheduled.p99, f.idle.scheduled.p99);
    let rs = ratio(f.purge.service.p99, f.idle.service.p99);
    println!(
        "p99 purge / idle: {r:.2}x from the schedule (target <= {LATENCY_TARGET}x: {}); service time {rs:.2}x",
        verdict(r, LATENCY_TARGET)
    );
    println!(
        "operations {STALL_MS} ms or more late on the schedule: {} during the compaction ({} ms), {} during the purge",
        f.late.0, f.report.total_ms, f.late.1
    );
    let w = f.purge_waits;
    println!(
        "operations during the purge that waited on the compaction (its lock, or a purge write of their block), by the \
         store's count in whole ms: {} counted 1 ms, {} counted 2 ms or more; longest {} ms",
        w.one_ms, w.over_one_ms, w.max_ms
    );
    println!(
        "operations issued during the compaction that took {STALL_MS} ms or more: {} (phase, op, service ms, \
         of it waiting on the compaction, sealed memtables and first-level tables of the hot store at issue):",
        f.stalls.len()
    );
    for st in &f.stalls {
        println!(
            "  {} {} {:.1} ms (waited {} ms; sealed {}, l0 {})",
            st.phase,
            if st.put { "put" } else { "get" },
            st.service_ms,
            st.waited_ms,
            st.pressure.sealed_memtables,
            st.pressure.l0_tables
        );
    }
    if f.missing > 0 {
        return Err(format!("{} gets of live blocks found nothing", f.missing).into());
    }
    summary.push(String::new());
    summary.push(format!(
        "**Foreground latency** ({OPS_PER_SEC:.0} ops/s on a fixed schedule from one thread, 1 put of a new \
         66-byte block in {PUT_EVERY}, the rest gets of random live blocks; compaction with default pacing; latency \
         from each op's scheduled start, in brackets its service time from issue):\n"
    ));
    summary.push("| window | ops | p50 | p99 | max |".into());
    summary.push("|---|---|---|---|---|".into());
    for (name, l) in [
        (format!("idle, {} s", IDLE.as_secs()), &f.idle),
        (format!("purge, {:.1} s", f.purge_secs), &f.purge),
        ("other compaction phases".to_string(), &f.other_phases),
    ] {
        let (a, b) = (l.scheduled, l.service);
        summary.push(format!(
            "| {name} | {} | {:.2} ms ({:.2}) | {:.2} ms ({:.2}) | {:.1} ms ({:.1}) |",
            l.ops, a.p50, b.p50, a.p99, b.p99, a.max, b.max
        ));
    }
    summary.push(String::new());
    summary.push(format!(
        "p99 purge / idle: **{r:.2}×** ({rs:.2}× in service time); target ≤ {LATENCY_TARGET}×: {}. Operations \
         during the purge that waited on the compaction more than 1 ms (counted 2 ms or more): {}, longest {} ms.",
        verdict(r, LATENCY_TARGET),
        w.over_one_ms,
        w.max_ms
    ));
    if let Some(b) = batch_secs {
        let line = format!(
            "A purge page ({PAGE} dead entries) is read without the lock and deleted in writes of at most 128 \
             entries, each under the store's exclusive lock, which every get and put takes shared; section 1's \
             unpaced pages took {:.0} ms each (median of the discard runs), and pacing sleeps 4× each page.",
            b * 1e3
        );
        println!("{line}");
        summary.push(String::new());
        summary.push(line);
    }
    Ok(())
}

/// Least-squares line through `(x, y)` points: (slope, intercept); `None` for fewer than two
/// distinct x.
fn fit(points: &[(f64, f64)]) -> Option<(f64, f64)> {
    let n = points.len() as f64;
    let (sx, sy) = points.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
    let (mx, my) = (sx / n, sy / n);
    let sxx: f64 = points.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    let sxy: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    (points.len() >= 2 && sxx > 0.0).then(|| (sxy / sxx, my - sxy / sxx * mx))
}

pub fn section_recovery(fx: &Fixture, summary: &mut Vec<String>) -> BenchResult<()> {
    println!("\n== 4. recovery after `splitstore compact` is killed (SIGKILL) during its purge ==");
    let (cal, points) = recovery_run(fx)?;
    println!(
        "uninterrupted `splitstore compact`: {:.1} s, of which purge {:.1} s (default pacing)",
        cal.command_secs, cal.purge_secs
    );
    summary.push(String::new());
    summary.push(format!(
        "**Recovery** (`splitstore compact` killed by SIGKILL at a fraction of the {:.1} s paced purge of an \
         uninterrupted run; the repo then opened with `OpenStore::open` as the command does (purge pacing on), and \
         a copy of the killed repo opened with pacing off; recovery = the store's own recovery timing, in brackets \
         per 1k entries left; open = the whole open, CPU = its process CPU time):\n",
        cal.purge_secs
    ));
    summary
        .push("| kill at | dead entries left | recovery, paced | open | recovery, unpaced | open | open CPU |".into());
    summary.push("|---|---|---|---|---|---|---|".into());
    for p in &points {
        let per_k = |s: f64| {
            if p.remaining > 0 {
                format!("{:.1} ms/1k", s * 1e3 / (p.remaining as f64 / 1e3))
            } else {
                "—".into()
            }
        };
        println!(
            "kill at {:.0}% of the purge: purge record {}, {} dead entries left; paced: open {:.2} s, recovery {:.2} s \
             ({} purged, {}); unpaced: open {:.2} s ({:.2} CPU-s), recovery {:.2} s ({})",
            p.fraction * 100.0,
            if p.record { "present" } else { "absent" },
            p.remaining,
            p.open_secs,
            p.recovery_secs,
            p.purged,
            per_k(p.recovery_secs),
            p.unpaced_open_secs,
            p.unpaced_open_cpu,
            p.unpaced_recovery_secs,
            per_k(p.unpaced_recovery_secs)
        );
        if p.purged != p.remaining {
            return Err(format!("recovery purged {} of {} dead entries left", p.purged, p.remaining).into());
        }
        summary.push(format!(
            "| {:.0}%{} | {} | {:.2} s ({}) | {:.2} s | {:.2} s ({}) | {:.2} s | {:.2} s |",
            p.fraction * 100.0,
            if p.record { "" } else { " (the purge had ended)" },
            p.remaining,
            p.recovery_secs,
            per_k(p.recovery_secs),
            p.open_secs,
            p.unpaced_recovery_secs,
            per_k(p.unpaced_recovery_secs),
            p.unpaced_open_secs,
            p.unpaced_open_cpu
        ));
    }
    let line = |pick: fn(&KillPoint) -> f64| {
        let pts: Vec<(f64, f64)> =
            points.iter().filter(|p| p.record).map(|p| (p.remaining as f64 / 1e3, pick(p) * 1e3)).collect();
        fit(&pts).map_or("n/a".to_string(), |(slope, icpt)| format!("{slope:.1} ms per 1k entries {icpt:+.0} ms"))
    };
    let (paced, unpaced, cpu) =
        (line(|p| p.recovery_secs), line(|p| p.unpaced_recovery_secs), line(|p| p.unpaced_open_cpu));
    println!("least-squares fits: recovery paced {paced}; unpaced {unpaced}; unpaced open CPU {cpu}");
    summary.push(String::new());
    summary.push(format!(
        "Least-squares fits against the entries left: recovery paced {paced}; unpaced {unpaced}; CPU of the unpaced \
         open {cpu}."
    ));
    Ok(())
}

/// `info` against `count` (the full scan `info` used to be) on the fixture's store.
pub fn section_info(fx: &Fixture, summary: &mut Vec<String>) -> BenchResult<()> {
    use futures::executor::block_on;
    use std::time::Instant;

    println!("\n== 5. info: constant-time info vs a scan of every value ==");
    let dir = fx.copy("info")?;
    let open = splitstore_native::ops::OpenStore::open(&dir)?;
    let mut info_us = Vec::new();
    for _ in 0..1000 {
        let t = Instant::now();
        let i = block_on(open.store.info())?;
        info_us.push(t.elapsed().as_secs_f64() * 1e6);
        std::hint::black_box(i);
    }
    let mut count_s = Vec::new();
    let mut counted = 0;
    for _ in 0..3 {
        let t = Instant::now();
        let c = block_on(open.store.count())?;
        count_s.push(t.elapsed().as_secs_f64());
        counted = c.hot.keys + c.cold.keys;
    }
    let estimate = block_on(open.store.info())?.hot.map_or(0, |e| e.keys);
    open.close()?;
    drop(open);
    fx.remove(&dir)?;
    let (i, c) = (median(&info_us), median(&count_s));
    println!(
        "info: median {i:.1} µs over 1000 calls (hot estimate {estimate} objects); count: median {c:.2} s over 3 \
         ({counted} objects); count / info = {:.0}",
        c * 1e6 / i
    );
    summary.push(format!(
        "| info (counters + fjall estimates) | {i:.1} µs | count (scan of {counted} objects) | {c:.2} s | {:.0}× |",
        c * 1e6 / i
    ));
    Ok(())
}
