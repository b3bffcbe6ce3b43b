//! Section 3: latency of a steady foreground mix while the purge runs with its default
//! pacing, against the same mix on the same store when no compaction runs.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicU8, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use futures::executor::block_on;
use splitstore_core::{key::dag_cbor_blake2b_cid, BlockKey, Cid, CompactionReport, Mode, Phase, Progress};
use splitstore_native::{ops::NativeStore, WritePressure};

use super::{
    fixture::{default_read_threads, engine_config, open_store, Fixture, LiveSet},
    stats::{percentile, Rng},
    BenchResult,
};

/// Operations issued per second, on a fixed schedule.
pub const OPS_PER_SEC: f64 = 2000.0;
/// One operation in this many is a put of a new block; the others get a random live block.
pub const PUT_EVERY: u64 = 4;
/// Length of the idle measurement.
pub const IDLE: Duration = Duration::from_secs(5);
/// The phase code while no compaction runs.
const IDLE_CODE: u8 = u8::MAX;

/// One operation: the phase when it was issued, its service time (issue to completion) and
/// its time from its scheduled start (which also counts waiting behind a slow predecessor).
#[derive(Clone, Copy, Debug)]
struct Sample {
    phase: u8,
    put: bool,
    service_ms: f64,
    scheduled_ms: f64,
    /// The hot store's backlog when the operation was issued.
    pressure: WritePressure,
    /// Milliseconds the operation waited on the compaction (the store's lock, or a purge write
    /// of the block it wrote), from the store's `lock_wait_ms` counter.
    waited_ms: u64,
}

/// Percentiles of one latency measure, milliseconds.
#[derive(Clone, Copy, Debug, Default)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

impl Percentiles {
    fn of(mut v: Vec<f64>) -> Self {
        v.sort_by(f64::total_cmp);
        Self { p50: percentile(&v, 50.0), p99: percentile(&v, 99.0), max: v.last().copied().unwrap_or(0.0) }
    }
}

/// Latency of a set of operations.
#[derive(Clone, Copy, Debug, Default)]
pub struct Latency {
    /// Operations.
    pub ops: usize,
    /// From each operation's scheduled start to its completion: what a client issuing at a
    /// steady rate sees, including waiting behind an operation that was held up.
    pub scheduled: Percentiles,
    /// From issue to completion (an operation that waited behind a held-up one is not counted
    /// as slow here).
    pub service: Percentiles,
}

fn latency<'a>(samples: impl Iterator<Item = &'a Sample>) -> Latency {
    let (service, scheduled): (Vec<f64>, Vec<f64>) = samples.map(|s| (s.service_ms, s.scheduled_ms)).unzip();
    Latency { ops: service.len(), scheduled: Percentiles::of(scheduled), service: Percentiles::of(service) }
}

/// A new small block (a 64-byte DAG-CBOR byte string) unique to `serial`.
fn small_block(serial: u64) -> (Cid, Vec<u8>) {
    let mut bytes = vec![0x58, 64];
    for i in 0..8u64 {
        bytes.extend_from_slice(&(serial ^ i.wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_le_bytes());
    }
    (dag_cbor_blake2b_cid(&bytes), bytes)
}

/// The foreground: issues the mix on a fixed schedule until `stop` says so.
struct Load<'a> {
    store: &'a NativeStore,
    cids: Vec<Cid>,
    rng: Rng,
    serial: u64,
    /// Gets that found nothing (a live block must always be found).
    missing: u64,
}

impl Load<'_> {
    fn drive(&mut self, phase: &AtomicU8, stop: impl Fn() -> bool) -> BenchResult<Vec<Sample>> {
        let period = Duration::from_secs_f64(1.0 / OPS_PER_SEC);
        let start = Instant::now();
        let mut out = Vec::new();
        let mut i = 0u32;
        while !stop() {
            let scheduled = start + period * i;
            // Read outside the timed span (this thread's own calls are the only ones that wait).
            let waited_before = block_on(self.store.info())?.metrics.lock_wait_ms;
            if let Some(wait) = scheduled.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            let issued = Instant::now();
            let ph = phase.load(Ordering::Acquire);
            let pressure = self.store.hot().local().pressure();
            let put = u64::from(i) % PUT_EVERY == PUT_EVERY - 1;
            if put {
                self.serial += 1;
                let (cid, bytes) = small_block(self.serial);
                block_on(self.store.put(&cid, bytes))?;
            } else {
                let cid = &self.cids[self.rng.below(self.cids.len())];
                if block_on(self.store.get(cid))?.is_none() {
                    self.missing += 1;
                }
            }
            let done = Instant::now();
            let waited_ms = block_on(self.store.info())?.metrics.lock_wait_ms - waited_before;
            out.push(Sample {
                phase: ph,
                put,
                pressure,
                waited_ms,
                service_ms: (done - issued).as_secs_f64() * 1e3,
                scheduled_ms: done.saturating_duration_since(scheduled).as_secs_f64() * 1e3,
            });
            i += 1;
        }
        Ok(out)
    }
}

/// Operations slower than this (service time) are listed one by one.
pub const STALL_MS: f64 = 10.0;

/// One operation issued during the compaction whose service time reached [`STALL_MS`].
#[derive(Clone, Copy, Debug)]
pub struct Stall {
    /// The compaction's phase when it was issued.
    pub phase: &'static str,
    /// A put (else a get).
    pub put: bool,
    /// Its service time, milliseconds.
    pub service_ms: f64,
    /// The hot store's backlog when it was issued.
    pub pressure: WritePressure,
    /// Of its service time, milliseconds spent waiting on the compaction.
    pub waited_ms: u64,
}

/// How long the operations of a window waited on the compaction (its lock, or a purge write
/// of the block written), by the store's own count in whole milliseconds of its clock (so a
/// wait counted as 1 ms may be a few microseconds across a millisecond's edge).
#[derive(Clone, Copy, Debug, Default)]
pub struct Waits {
    /// Operations whose wait counted 1 ms.
    pub one_ms: usize,
    /// Operations whose wait counted 2 ms or more (more than 1 ms for certain).
    pub over_one_ms: usize,
    /// The longest wait, milliseconds.
    pub max_ms: u64,
}

fn waits<'a>(samples: impl Iterator<Item = &'a Sample>) -> Waits {
    samples.fold(Waits::default(), |w, s| Waits {
        one_ms: w.one_ms + usize::from(s.waited_ms == 1),
        over_one_ms: w.over_one_ms + usize::from(s.waited_ms >= 2),
        max_ms: w.max_ms.max(s.waited_ms),
    })
}

/// Section 3's figures.
#[derive(Clone, Debug, Default)]
pub struct ForegroundRun {
    /// No compaction running.
    pub idle: Latency,
    /// Issued while the purge ran.
    pub purge: Latency,
    /// Issued while any other phase of the compaction ran.
    pub other_phases: Latency,
    /// Length of the paced purge, seconds.
    pub purge_secs: f64,
    /// Gets of live blocks that found nothing (must be 0).
    pub missing: u64,
    /// Operations issued during the compaction that took [`STALL_MS`] or more.
    pub stalls: Vec<Stall>,
    /// Waits on the compaction of the operations issued during the purge.
    pub purge_waits: Waits,
    /// Operations issued during the compaction, and during its purge, that completed
    /// [`STALL_MS`] or more after their slot in the schedule (those held up themselves and
    /// those queued behind them): the harm, whatever the window's length.
    pub late: (usize, usize),
    /// The compaction's report.
    pub report: CompactionReport,
}

/// Runs the mix idle, then while a compaction with default pacing runs, on one copy.
pub fn foreground_run(fx: &Fixture, live: &LiveSet) -> BenchResult<ForegroundRun> {
    let dir = fx.copy("foreground")?;
    let store = Arc::new(open_store(&dir, engine_config(Mode::Discard, true)?, default_read_threads())?);
    let cids: Vec<Cid> = live.keys.iter().filter_map(|k| BlockKey::from_bytes(k.clone()).to_raw_cid()).collect();
    let mut load = Load { store: &store, cids, rng: Rng::new(11), serial: 0, missing: 0 };
    let phase = Arc::new(AtomicU8::new(IDLE_CODE));

    let t = Instant::now();
    let idle = load.drive(&phase, || t.elapsed() >= IDLE)?;

    let done = Arc::new(AtomicBool::new(false));
    let purge_window = Arc::new(Mutex::new((None::<Instant>, None::<Instant>)));
    let compaction = {
        let (store, phase, done, window) = (store.clone(), phase.clone(), done.clone(), purge_window.clone());
        std::thread::spawn(move || {
            let sink = move |p: &Progress| {
                if phase.swap(p.phase as u8, Ordering::AcqRel) != p.phase as u8 {
                    if let Ok(mut w) = window.lock() {
                        match p.phase {
                            Phase::Purge => w.0 = Some(Instant::now()),
                            Phase::Reclaim => w.1 = Some(Instant::now()),
                            _ => {}
                        }
                    }
                }
            };
            let r = block_on(store.compact(&sink));
            done.store(true, Ordering::Release);
            r
        })
    };
    let busy = load.drive(&phase, || done.load(Ordering::Acquire))?;
    let report = compaction.join().map_err(|_| "the compaction thread panicked")??;
    let purge_secs = match *purge_window.lock().map_err(|_| "poisoned")? {
        (Some(a), Some(b)) => (b - a).as_secs_f64(),
        _ => 0.0,
    };
    let missing = load.missing;
    drop(load);
    block_on(store.close())?;
    drop(store);
    fx.remove(&dir)?;
    let purge = Phase::Purge as u8;
    let stalls = busy
        .iter()
        .filter(|s| s.service_ms >= STALL_MS)
        .map(|s| Stall {
            phase: Phase::ALL.iter().find(|p| **p as u8 == s.phase).map_or("none", |p| p.as_str()),
            put: s.put,
            service_ms: s.service_ms,
            pressure: s.pressure,
            waited_ms: s.waited_ms,
        })
        .collect();
    let late = |s: &&Sample| s.scheduled_ms >= STALL_MS;
    Ok(ForegroundRun {
        late: (busy.iter().filter(late).count(), busy.iter().filter(|s| s.phase == purge).filter(late).count()),
        stalls,
        purge_waits: waits(busy.iter().filter(|s| s.phase == purge)),
        idle: latency(idle.iter()),
        purge: latency(busy.iter().filter(|s| s.phase == purge)),
        other_phases: latency(busy.iter().filter(|s| ![purge, Phase::Reclaim as u8, IDLE_CODE].contains(&s.phase))),
        purge_secs,
        missing,
        report,
    })
}
