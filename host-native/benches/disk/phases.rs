//! Sections 1 and 2: each compaction phase against the raw KV cost of the same I/O, and mark
//! throughput from a warm store with one and two read threads.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::executor::block_on;
use splitstore_core::{
    kv::{Kv, Space, WriteBatch},
    CompactionReport, Config, Mode, NoProgress, Phase, Progress, ProgressSink,
};
use splitstore_native::FjallKv;

use super::{
    fixture::{all_keys, default_read_threads, engine_config, open_kvs, open_store, Fixture, LiveSet, PAGE},
    stats::{phase_secs, process_cpu_secs, thread_cpu_secs},
    BenchResult,
};

/// The rows compared: which engine phases do the I/O of each raw step.
pub const ROWS: [(&str, &[Phase]); 4] = [
    ("mark", &[Phase::Protect, Phase::Mark]),
    ("collect", &[Phase::Collect, Phase::Retry]),
    ("move", &[Phase::Move]),
    ("purge", &[Phase::Critical, Phase::Purge]),
];

/// When a phase started: wall clock, process CPU and the reporting thread's CPU.
#[derive(Clone, Copy, Debug)]
pub struct Stamp {
    /// The phase.
    pub phase: Phase,
    /// Wall clock.
    pub at: Instant,
    /// CPU seconds of the whole process.
    pub cpu: f64,
    /// CPU seconds of the compaction's thread.
    pub thread_cpu: f64,
}

/// A progress sink that stamps the start of every phase, and the purge's last event.
#[derive(Debug, Default)]
pub struct PhaseClock {
    stamps: Mutex<(Vec<Stamp>, Option<Stamp>)>,
}

impl ProgressSink for PhaseClock {
    fn report(&self, p: &Progress) {
        if let Ok(mut s) = self.stamps.lock() {
            let new = s.0.last().map(|l| l.phase) != Some(p.phase);
            if new || p.phase == Phase::Purge {
                let stamp = Stamp {
                    phase: p.phase,
                    at: Instant::now(),
                    cpu: process_cpu_secs(),
                    thread_cpu: thread_cpu_secs(),
                };
                if new {
                    s.0.push(stamp);
                }
                if p.phase == Phase::Purge {
                    s.1 = Some(stamp);
                }
            }
        }
    }
}

impl PhaseClock {
    /// The first start of `phase`.
    pub fn start(&self, phase: Phase) -> Option<Stamp> {
        self.stamps.lock().ok()?.0.iter().find(|s| s.phase == phase).copied()
    }

    /// Process CPU seconds per row of [`ROWS`] and for finish + reclaim, given the CPU
    /// reading at the end of the compaction. The boundaries are those of the report's laps:
    /// the purge's lap ends with its last batch (its last event), and finish, which runs
    /// before the reclaim phase is announced, belongs to the reclaim lap.
    fn row_cpu(&self, end: f64) -> BenchResult<([f64; 4], f64)> {
        let cpu = |p: Phase| self.start(p).map(|s| s.cpu).ok_or(format!("no {} phase was reported", p.as_str()));
        let (protect, collect, critical) = (cpu(Phase::Protect)?, cpu(Phase::Collect)?, cpu(Phase::Critical)?);
        let purged = self.stamps.lock().map_err(|_| "poisoned")?.1.ok_or("no purge event was reported")?.cpu;
        // Discard mode has no move phase.
        let moving = cpu(Phase::Move).unwrap_or(critical);
        Ok(([collect - protect, moving - collect, critical - moving, purged - critical], end - purged))
    }
}

/// One compaction and the raw cost of its I/O, per row of [`ROWS`] and for the finish +
/// reclaim step (timed apart): wall and process CPU seconds.
#[derive(Clone, Debug, Default)]
pub struct PhaseRun {
    /// Engine wall seconds per row.
    pub engine: [f64; 4],
    /// Raw wall seconds per row.
    pub raw: [f64; 4],
    /// Engine CPU seconds per row.
    pub engine_cpu: [f64; 4],
    /// Raw CPU seconds per row.
    pub raw_cpu: [f64; 4],
    /// Engine finish + reclaim: wall, CPU seconds.
    pub engine_reclaim: (f64, f64),
    /// Raw finish + reclaim: wall, CPU seconds.
    pub raw_reclaim: (f64, f64),
    /// The compaction's report.
    pub report: CompactionReport,
}

/// The raw run's figures.
struct RawCost {
    wall: [f64; 4],
    cpu: [f64; 4],
    reclaim: (f64, f64),
    dead: u64,
    moved: u64,
}

/// Wall and CPU seconds of a step.
struct Lap(Instant, f64);

impl Lap {
    fn start() -> Self {
        Lap(Instant::now(), process_cpu_secs())
    }

    fn stop(self) -> (f64, f64) {
        (self.0.elapsed().as_secs_f64(), process_cpu_secs() - self.1)
    }
}

/// Pages through `space` from the start, handing each page of keys to `f`.
fn for_pages(kv: &FjallKv, space: Space, mut f: impl FnMut(Vec<Vec<u8>>) -> BenchResult<()>) -> BenchResult<()> {
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = block_on(kv.scan_keys(space, after.as_deref(), PAGE))?;
        let Some(last) = page.last().cloned() else { return Ok(()) };
        f(page)?;
        after = Some(last);
    }
}

/// Reads `keys` with `get_many` calls of `batch` keys; returns how many were found.
pub fn read_all(kv: &impl Kv, keys: &[Vec<u8>], batch: usize) -> BenchResult<usize> {
    let mut found = 0;
    for chunk in keys.chunks(batch) {
        found += block_on(kv.get_many(Space::Blocks, chunk))?.iter().filter(|v| v.is_some()).count();
    }
    Ok(found)
}

/// The same I/O as a compaction in `mode`, with plain KV calls on a fresh copy: read the live
/// blocks in mark-sized batches; scan every hot key and write the dead (and cold) lists; copy
/// the cold-listed blocks to cold and flush it; write the purge record, then delete each dead
/// block with its list entry and a checkpoint; clear the cold list, write the state, reclaim.
fn raw_run(fx: &Fixture, mode: Mode, live: &LiveSet) -> BenchResult<RawCost> {
    let dir = fx.copy("raw")?;
    let (hot, cold) = open_kvs(&dir, default_read_threads())?;
    let mut laps = [(0.0, 0.0); 4];

    let lap = Lap::start();
    let found = read_all(&hot, &live.loaded, hot.capabilities().read_batch)?;
    laps[0] = lap.stop();
    if found != live.loaded.len() {
        return Err(format!("raw mark found {found} of {} live blocks", live.loaded.len()).into());
    }

    let lap = Lap::start();
    let mut dead = 0u64;
    for_pages(&hot, Space::Blocks, |page| {
        let mut b = WriteBatch::new();
        for k in page.into_iter().filter(|k| !live.keys.contains(k)) {
            dead += 1;
            if mode == Mode::Universal {
                b.put(Space::ColdList, k.clone(), Vec::new());
            }
            b.put(Space::Dead, k, Vec::new());
        }
        Ok(block_on(hot.write(b))?)
    })?;
    laps[1] = lap.stop();

    let lap = Lap::start();
    let mut moved = 0u64;
    if mode == Mode::Universal {
        for_pages(&hot, Space::ColdList, |page| {
            let values = block_on(hot.get_many(Space::Blocks, &page))?;
            let mut b = WriteBatch::with_capacity(page.len());
            for (k, v) in page.into_iter().zip(values) {
                if let Some(v) = v {
                    moved += 1;
                    b.put(Space::Blocks, k, v);
                }
            }
            Ok(block_on(cold.write(b))?)
        })?;
        block_on(cold.flush())?;
    }
    laps[2] = lap.stop();

    let lap = Lap::start();
    let mut b = WriteBatch::new();
    b.put(Space::Meta, b"bench-purge".to_vec(), vec![0; 40]).strict();
    block_on(hot.write(b))?;
    for_pages(&hot, Space::Dead, |page| {
        let mut b = WriteBatch::with_capacity(page.len() * 2 + 1);
        let last = page.last().cloned().unwrap_or_default();
        for k in page {
            b.delete(Space::Blocks, k.clone());
            b.delete(Space::Dead, k);
        }
        b.put(Space::Meta, b"bench-checkpoint".to_vec(), last);
        Ok(block_on(hot.write(b))?)
    })?;
    laps[3] = lap.stop();

    let lap = Lap::start();
    for_pages(&hot, Space::ColdList, |page| {
        let mut b = WriteBatch::with_capacity(page.len());
        for k in page {
            b.delete(Space::ColdList, k);
        }
        Ok(block_on(hot.write(b))?)
    })?;
    let mut b = WriteBatch::new();
    b.delete(Space::Meta, b"bench-purge".to_vec());
    b.put(Space::Meta, b"bench-state".to_vec(), vec![0; 24]).strict();
    block_on(hot.write(b))?;
    block_on(hot.reclaim())?;
    let reclaim = lap.stop();

    drop((hot, cold));
    fx.remove(&dir)?;
    Ok(RawCost { wall: laps.map(|l| l.0), cpu: laps.map(|l| l.1), reclaim, dead, moved })
}

/// Compacts a fresh copy in `mode` with pacing off, then does the same I/O with raw KV calls
/// on another fresh copy. The first run also gives the live set (what stays hot).
pub fn phase_run(fx: &Fixture, mode: Mode, live: &mut Option<LiveSet>) -> BenchResult<PhaseRun> {
    let dir = fx.copy("engine")?;
    let store = open_store(&dir, engine_config(mode, false)?, default_read_threads())?;
    let clock = PhaseClock::default();
    let report = block_on(store.compact(&clock))?;
    let (engine_cpu, reclaim_cpu) = clock.row_cpu(process_cpu_secs())?;
    if live.is_none() {
        *live = Some(LiveSet::new(all_keys(store.hot(), Space::Blocks)?, fx, &report));
    }
    block_on(store.close())?;
    drop(store);
    fx.remove(&dir)?;

    let live = live.as_ref().ok_or("no live set")?;
    let raw = raw_run(fx, mode, live)?;
    if raw.dead != report.dead || raw.moved != report.moved {
        return Err(format!(
            "raw run listed {} dead and moved {}; the compaction {} and {}",
            raw.dead, raw.moved, report.dead, report.moved
        )
        .into());
    }
    let engine = ROWS.map(|(_, phases)| phase_secs(&report, phases));
    Ok(PhaseRun {
        engine,
        raw: raw.wall,
        engine_cpu,
        raw_cpu: raw.cpu,
        engine_reclaim: (phase_secs(&report, &[Phase::Reclaim]), reclaim_cpu),
        raw_reclaim: raw.reclaim,
        report,
    })
}

/// A discard compaction of a fresh copy with pacing from the first page (the default factor,
/// `purge_pace_after_ms` 0) and no foreground: total and purge seconds.
pub fn paced_idle_run(fx: &Fixture) -> BenchResult<(f64, f64)> {
    let dir = fx.copy("paced")?;
    let config = Config { purge_pace_after_ms: 0, ..engine_config(Mode::Discard, true)? };
    let store = open_store(&dir, config, default_read_threads())?;
    let report = block_on(store.compact(&NoProgress))?;
    block_on(store.close())?;
    drop(store);
    fx.remove(&dir)?;
    Ok((report.total_ms as f64 / 1000.0, phase_secs(&report, &[Phase::Purge])))
}

/// Mark throughput on a warm store.
#[derive(Clone, Debug, Default)]
pub struct MarkRun {
    /// Mark phase: wall seconds, and CPU seconds of the compaction's thread.
    pub mark: (f64, f64),
    /// Blocks per `get_many` of the compaction's walk (the hot backend's read batch).
    pub read_batch: usize,
    /// Raw warm `get_many` of the loaded live blocks in mark-sized batches: wall and process
    /// CPU seconds.
    pub raw_mark_batch: (f64, f64),
    /// The same in batches large enough to be split over the read threads.
    pub raw_large_batch: (f64, f64),
    /// With the kept graph on: the mark of a second compaction from the same head, once the
    /// first has finished, every object from the graph the first kept. Wall and thread CPU
    /// seconds, and objects marked from the graph.
    pub from_graph: Option<((f64, f64), u64)>,
}

/// On a fresh copy read with `threads` threads (its memtable written out first with
/// `flush_memtable`): a full read of the hot store, then the live blocks twice in raw
/// `get_many` calls (timed), then a compaction, stopped (by closing the store) as soon as its
/// mark is done; the mark is timed from the progress events.
pub fn mark_run(
    fx: &Fixture,
    live: &LiveSet,
    threads: usize,
    flush_memtable: bool,
    kept_graph: bool,
) -> BenchResult<MarkRun> {
    let dir = fx.copy("mark")?;
    let mut config = engine_config(Mode::Discard, false)?;
    if kept_graph {
        config.kept_graph_bytes = 256 << 20;
    }
    let store = Arc::new(open_store(&dir, config, threads)?);
    let hot = store.hot();
    if flush_memtable {
        block_on(hot.reclaim())?;
    }
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = block_on(hot.scan(Space::Blocks, after.as_deref(), PAGE))?;
        let Some((last, _)) = page.last() else { break };
        after = Some(last.clone());
    }
    let timed = |batch: usize| -> BenchResult<(f64, f64)> {
        let lap = Lap::start();
        let found = read_all(hot, &live.loaded, batch)?;
        if found != live.loaded.len() {
            return Err(format!("found {found} of {} live blocks", live.loaded.len()).into());
        }
        Ok(lap.stop())
    };
    let read_batch = hot.capabilities().read_batch;
    let raw_mark_batch = timed(read_batch)?;
    let raw_large_batch = timed(PAGE)?;

    // A compaction on its own thread; its mark's wall and thread CPU time, and its report if
    // it was let `finish` (else the store is closed: it stops at its next yield, before any
    // purge, and the copy is thrown away).
    let timed_compaction = |finish: bool| -> BenchResult<((f64, f64), Option<CompactionReport>)> {
        let clock = Arc::new(PhaseClock::default());
        let compaction = {
            let (store, clock) = (store.clone(), clock.clone());
            std::thread::spawn(move || block_on(store.compact(&*clock)))
        };
        let mark = loop {
            match (clock.start(Phase::Mark), clock.start(Phase::Collect)) {
                (Some(a), Some(b)) => break ((b.at - a.at).as_secs_f64(), b.thread_cpu - a.thread_cpu),
                _ if compaction.is_finished() => return Err("the compaction ended before its mark was timed".into()),
                _ => std::thread::sleep(Duration::from_millis(1)),
            }
        };
        if !finish {
            block_on(store.close())?;
        }
        match compaction.join().map_err(|_| "the compaction thread panicked")? {
            Ok(r) => Ok((mark, Some(r))),
            Err(splitstore_core::Error::Closed) if !finish => Ok((mark, None)),
            Err(e) => Err(e.into()),
        }
    };
    let (mark, _) = timed_compaction(kept_graph)?;
    let from_graph = match kept_graph {
        true => {
            let (m, r) = timed_compaction(true)?;
            block_on(store.close())?;
            Some((m, r.map_or(0, |r| r.graph_marked)))
        }
        false => None,
    };
    drop(store);
    fx.remove(&dir)?;
    Ok(MarkRun { mark, read_batch, raw_mark_batch, raw_large_batch, from_graph })
}
