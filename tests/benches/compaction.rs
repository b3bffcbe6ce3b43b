//! Compaction throughput on a synthetic chain in memory, against the raw backend cost of the
//! same I/O measured in the same run. Then the mark of the next compaction, after another
//! threshold's worth of epochs written through the store, from the kept graph and the records
//! of those writes against a store that reads every block
//! (and the first compaction's mark, which records the graph, against that store's), and the
//! next collect and the writes before it of a store that keeps a hot key list against that
//! store's. Prints medians of `SPLITSTORE_BENCH_RUNS` runs (default 5).
//!
//! `cargo bench -p splitstore-conformance --bench compaction [-- --objects N]`

use std::time::Instant;

use splitstore_conformance::{chain::keys, executor::block_on};
use splitstore_core::{
    kv::{Kv, Space, WriteBatch},
    markset::{MarkSet, Marks},
    mem::MemKv,
    synth::{ChainGen, SynthConfig},
    Config, Mode, NoProgress, Phase, SplitStore,
};

/// Wall-clock time for phase timings; sleeps really sleep.
#[derive(Debug)]
struct WallClock(Instant);

#[async_trait::async_trait]
impl splitstore_core::Clock for WallClock {
    fn now_millis(&self) -> u64 {
        self.0.elapsed().as_millis() as u64
    }
    async fn sleep(&self, millis: u64) {
        std::thread::sleep(std::time::Duration::from_millis(millis));
    }
    async fn yield_now(&self) {}
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let objects: u64 = args
        .iter()
        .position(|a| a == "--objects")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let runs: usize = std::env::var("SPLITSTORE_BENCH_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);

    // A chain whose hot store holds `objects` blocks, about half of them live.
    // Pacing off: this measures the engine, not the foreground share it leaves. No hot key
    // list: the stores below turn on what each measures.
    let cfg = Config {
        mode: Mode::Discard,
        finality: 20,
        sync_gap_secs: None,
        purge_pace_after_ms: u64::MAX,
        hot_key_list_bytes: 0,
        ..Config::default()
    };
    let mut gen =
        ChainGen::new(SynthConfig { seed: 7, state_objects: 40_000, churn_percent: 2, ..SynthConfig::default() });
    let base = MemKv::new();
    let mut epochs = Vec::new();
    let mut total = 0u64;
    while total < objects {
        let e = gen.next_epoch();
        total += e.blocks.len() as u64;
        let mut b = WriteBatch::new();
        for (c, bytes) in &e.blocks {
            b.put(Space::Blocks, splitstore_core::BlockKey::of(c).into_bytes(), bytes.clone());
        }
        block_on(base.write(b)).expect("write");
        epochs.push(e.tipset);
    }
    println!("chain: {} epochs, {} blocks", epochs.len(), total);
    // The epochs until the next compaction is due: a compaction leaves the base at its boundary,
    // and the next is due once the head is the threshold past it.
    let more: Vec<_> = (0..(cfg.threshold_finalities - cfg.boundary_finalities) * cfg.finality + 1)
        .map(|_| gen.next_epoch())
        .collect();
    let reading = cfg.clone();
    let listing_cfg = Config { hot_key_list_bytes: 256 << 20, ..cfg.clone() };
    let cfg = Config { kept_graph_bytes: 256 << 20, ..cfg };
    let phase_ms = |r: &splitstore_core::CompactionReport, phase: Phase| {
        r.phases.iter().find(|(p, _)| *p == phase).map(|(_, ms)| *ms).unwrap_or(0) as f64
    };
    let mark_ms = |r: &splitstore_core::CompactionReport| phase_ms(r, Phase::Mark);
    let (mut first_reading, mut second_graph, mut second_reading, mut from_graph) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut put_ratio = Vec::new();
    let (mut put_ratio_listing, mut collect_listed, mut collect_scanned) = (Vec::new(), Vec::new(), Vec::new());

    let mut mark_rate = Vec::new();
    let mut bytes_per_obj = Vec::new();
    let mut ratio = Vec::new();
    let mut total_s = Vec::new();
    for _ in 0..runs {
        let hot = base.crash_image(usize::MAX);
        let store = block_on(SplitStore::open(hot.clone(), MemKv::new(), WallClock(Instant::now()), cfg.clone()))
            .expect("open");
        drop(block_on(store.head_change(&[], &[epochs.last().expect("epochs").clone()])).expect("head"));
        let t = Instant::now();
        let report = block_on(store.compact(&NoProgress)).expect("compact");
        let took = t.elapsed().as_secs_f64();
        mark_rate.push(report.marked as f64 / (mark_ms(&report).max(1.0) / 1000.0));
        // The same compaction on a store that keeps no graph.
        let plain = block_on(SplitStore::open(
            base.crash_image(usize::MAX),
            MemKv::new(),
            WallClock(Instant::now()),
            reading.clone(),
        ))
        .expect("open");
        drop(block_on(plain.head_change(&[], &[epochs.last().expect("epochs").clone()])).expect("head"));
        let r = block_on(plain.compact(&NoProgress)).expect("compact");
        first_reading.push(r.marked as f64 / (mark_ms(&r).max(1.0) / 1000.0));
        bytes_per_obj.push(report.markset_bytes_per_object);
        total_s.push(took);

        // The raw backend cost of the same I/O: read every live block once, scan every hot key,
        // write the dead list, delete the dead blocks and their list entries.
        let raw = base.crash_image(usize::MAX);
        let live: Vec<Vec<u8>> = keys(store.hot(), Space::Blocks).await_keys();
        let t = Instant::now();
        for chunk in live.chunks(512) {
            block_on(raw.get_many(Space::Blocks, chunk)).expect("get");
        }
        let all: Vec<Vec<u8>> = {
            let mut out = Vec::new();
            let mut after: Option<Vec<u8>> = None;
            loop {
                let page = block_on(raw.scan_keys(Space::Blocks, after.as_deref(), 16384)).expect("scan");
                let Some(l) = page.last().cloned() else { break };
                out.extend(page);
                after = Some(l);
            }
            out
        };
        let liveset: std::collections::HashSet<&Vec<u8>> = live.iter().collect();
        let mut marks = MarkSet::with_capacity(live.len(), 1);
        for k in &live {
            marks.mark(k);
        }
        let dead: Vec<&Vec<u8>> = all.iter().filter(|k| !liveset.contains(k)).collect();
        for chunk in dead.chunks(16384) {
            let mut b = WriteBatch::new();
            for k in chunk {
                b.put(Space::Dead, (*k).clone(), Vec::new());
            }
            block_on(raw.write(b)).expect("write");
        }
        for chunk in dead.chunks(16384) {
            let mut b = WriteBatch::new();
            for k in chunk {
                b.delete(Space::Blocks, (*k).clone());
                b.delete(Space::Dead, (*k).clone());
            }
            block_on(raw.write(b)).expect("write");
        }
        let raw_s = t.elapsed().as_secs_f64();
        ratio.push(took / raw_s);
        println!(
            "run: compaction {:.3}s (marked {}, purged {}), raw I/O {:.3}s; phases {:?}",
            took, report.marked, report.purged, raw_s, report.phases
        );

        // A store that keeps a hot key list, from the same base: its first collect scans.
        let listing = block_on(SplitStore::open(
            base.crash_image(usize::MAX),
            MemKv::new(),
            WallClock(Instant::now()),
            listing_cfg.clone(),
        ))
        .expect("open");
        drop(block_on(listing.head_change(&[], &[epochs.last().expect("epochs").clone()])).expect("head"));
        block_on(listing.compact(&NoProgress)).expect("compact");

        // The next compaction of each store, after the same new epochs.
        let mut put_s = [0.0; 3];
        for (s, took) in [&store, &plain, &listing].into_iter().zip(&mut put_s) {
            let batches: Vec<_> = more.iter().map(|e| e.blocks.clone()).collect();
            let t = Instant::now();
            for b in batches {
                block_on(s.put_many(b)).expect("put");
            }
            *took = t.elapsed().as_secs_f64();
            drop(block_on(s.head_change(&[], &[more.last().expect("epochs").tipset.clone()])).expect("head"));
        }
        put_ratio.push(put_s[0] / put_s[1]);
        put_ratio_listing.push(put_s[2] / put_s[1]);
        let g = block_on(store.compact(&NoProgress)).expect("compact");
        let r = block_on(plain.compact(&NoProgress)).expect("compact");
        let l = block_on(listing.compact(&NoProgress)).expect("compact");
        assert_eq!(g.marked, r.marked, "both stores mark the same set");
        assert!(l.hot_keys_listed && !r.hot_keys_listed);
        assert_eq!((l.marked, l.dead, l.purged), (r.marked, r.dead, r.purged), "the list lists what the scan does");
        collect_listed.push(phase_ms(&l, Phase::Collect));
        collect_scanned.push(phase_ms(&r, Phase::Collect));
        println!(
            "next collect: {} ms visiting the hot key list ({} keys), {} ms scanning ({} keys)",
            phase_ms(&l, Phase::Collect),
            l.hot_scanned,
            phase_ms(&r, Phase::Collect),
            r.hot_scanned
        );
        second_graph.push(g.marked as f64 / (mark_ms(&g).max(1.0) / 1000.0));
        second_reading.push(r.marked as f64 / (mark_ms(&r).max(1.0) / 1000.0));
        from_graph.push(g.graph_marked as f64 / g.marked as f64);
        println!(
            "next compaction, {} epochs later: mark {} ms from the kept graph ({} of {} objects from it; {} blocks \
             recorded as written; {} blocks read), {} ms reading ({} blocks read); graph kept: {} nodes, {:.1} bytes \
             per object marked",
            more.len(),
            mark_ms(&g),
            g.graph_marked,
            g.marked,
            g.graph_written,
            g.loaded_below_headers,
            mark_ms(&r),
            r.loaded_below_headers,
            g.graph_objects,
            g.graph_bytes as f64 / g.marked as f64
        );
    }
    println!("median compaction time:          {:.3} s", median(total_s));
    let (m, m0) = (median(mark_rate), median(first_reading));
    println!(
        "median mark throughput:          {m:.0} objects/s (1 thread), recording the graph; {m0:.0} without ({:.2}x)",
        m / m0
    );
    let (g, r) = (median(second_graph), median(second_reading));
    println!(
        "median next mark throughput:     {g:.0} objects/s from the kept graph ({:.0}% of the objects), {r:.0} reading \
         ({:.2}x)",
        100.0 * median(from_graph),
        g / r
    );
    println!(
        "median put_many time:            {:.2}x recording the links of what is written, against not",
        median(put_ratio)
    );
    println!(
        "median put_many time:            {:.2}x recording the keys of what is written (hot key list), against not",
        median(put_ratio_listing)
    );
    let (cl, cs) = (median(collect_listed), median(collect_scanned));
    println!(
        "median next collect:             {cl:.0} ms from the hot key list, {cs:.0} ms scanning ({:.2}x)",
        cs / cl.max(1.0)
    );
    println!("median markset bytes/object:     {:.1}", median(bytes_per_obj));
    println!("median compaction / raw KV cost: {:.2}x", median(ratio));
}

trait AwaitKeys {
    fn await_keys(self) -> Vec<Vec<u8>>;
}

impl<F: std::future::Future<Output = std::collections::HashSet<Vec<u8>>>> AwaitKeys for F {
    fn await_keys(self) -> Vec<Vec<u8>> {
        block_on(self).into_iter().collect()
    }
}
