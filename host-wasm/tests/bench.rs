//! Benchmark (ignored by default; `scripts/test-wasm.sh --bench` runs it): in one page and one
//! run, raw IndexedDB throughput of batched puts, scans, reads and deletes, the same work done
//! by a compaction on a synthetic chain, and a one-transaction-per-operation baseline; plus
//! the longest task the compaction caused (Long Tasks API) and the longest stretch between
//! two of its yields. It prints numbers and asserts nothing about speed.
#![cfg(target_arch = "wasm32")]

mod support;

use std::{cell::RefCell, rc::Rc};

use splitstore_core::{
    synth::{ChainGen, SynthConfig},
    Clock, Config, Kv, Mode, Space, SplitStore, WriteBatch,
};
use splitstore_wasm::{js, IdbKv, JsClock, LockPolicy};
use support::{log, unique};
use wasm_bindgen::{prelude::Closure, JsCast, JsValue};
use wasm_bindgen_test::{wasm_bindgen_test, wasm_bindgen_test_configure};

wasm_bindgen_test_configure!(run_in_browser);

/// Operations per batch in the raw measurements (the browser default `batchSize`).
const BATCH: usize = 4096;
/// Operations in the one-transaction-per-operation baseline.
const PER_OP: usize = 500;

/// Long tasks (≥ 50 ms, as the browser reports them) seen while it is alive.
struct LongTasks {
    observer: web_sys::PerformanceObserver,
    /// (start, duration) of each long task, in `performance.now()` time.
    seen: Rc<RefCell<Vec<(f64, f64)>>>,
    _callback: Closure<dyn FnMut(web_sys::PerformanceObserverEntryList)>,
}

impl LongTasks {
    fn start() -> Self {
        let seen = Rc::new(RefCell::new(Vec::new()));
        let sink = seen.clone();
        let callback = Closure::<dyn FnMut(web_sys::PerformanceObserverEntryList)>::new(
            move |list: web_sys::PerformanceObserverEntryList| {
                for e in list.get_entries().iter() {
                    let e = e.unchecked_into::<web_sys::PerformanceEntry>();
                    sink.borrow_mut().push((e.start_time(), e.duration()));
                }
            },
        );
        let observer =
            web_sys::PerformanceObserver::new(callback.as_ref().unchecked_ref()).expect("PerformanceObserver");
        let init = js::object(&[("type", "longtask".into()), ("buffered", JsValue::FALSE)]);
        observer.observe(init.unchecked_ref());
        Self { observer, seen, _callback: callback }
    }

    /// (count, longest ms) so far, after letting pending observer callbacks run.
    async fn summary(&self) -> (usize, f64) {
        js::sleep_ms(50.0).await;
        for e in self.observer.take_records().iter() {
            let e = e.unchecked_into::<web_sys::PerformanceEntry>();
            self.seen.borrow_mut().push((e.start_time(), e.duration()));
        }
        let seen = self.seen.borrow();
        (seen.len(), seen.iter().map(|(_, d)| *d).fold(0.0, f64::max))
    }
}

impl Drop for LongTasks {
    fn drop(&mut self) {
        self.observer.disconnect();
    }
}

fn busy(ms: f64) {
    let t0 = js::perf_now();
    while js::perf_now() - t0 < ms {}
}

fn rate(n: u64, ms: f64) -> String {
    format!("{:>9.0}/s", n as f64 / (ms / 1000.0))
}

/// The middle of `samples` (the upper one of the two for an even count).
fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

async fn timed<F: std::future::Future<Output = ()>>(f: F) -> f64 {
    let t0 = js::perf_now();
    f.await;
    js::perf_now() - t0
}

async fn put_batched(kv: &IdbKv, space: Space, entries: &[(Vec<u8>, Vec<u8>)]) {
    for chunk in entries.chunks(BATCH) {
        let mut b = WriteBatch::with_capacity(chunk.len());
        for (k, v) in chunk {
            b.put(space, k.clone(), v.clone());
        }
        kv.write(b).await.expect("put batch");
    }
}

async fn scan_keys_all(kv: &IdbKv, space: Space) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = kv.scan_keys(space, after.as_deref(), BATCH).await.expect("scan");
        let Some(last) = page.last().cloned() else { break };
        out.extend(page);
        after = Some(last);
    }
    out
}

async fn scan_all(kv: &IdbKv, space: Space) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    let mut after: Option<Vec<u8>> = None;
    loop {
        let page = kv.scan(space, after.as_deref(), BATCH).await.expect("scan");
        let Some((last, _)) = page.last().cloned() else { break };
        out.extend(page);
        after = Some(last);
    }
    out
}

#[wasm_bindgen_test]
#[ignore]
async fn bench_raw_indexeddb_vs_compaction() {
    let ua = web_sys::window().and_then(|w| w.navigator().user_agent().ok()).unwrap_or_default();
    log(&format!("browser: {ua}"));

    // The long-task observer works here: a deliberate 120 ms task is reported.
    let probe = LongTasks::start();
    js::sleep_ms(10.0).await;
    busy(120.0);
    let (n, longest) = probe.summary().await;
    log(&format!("long-task probe: {n} task(s), longest {longest:.0} ms (a 120 ms busy loop)"));
    drop(probe);

    // --- A store holding a synthetic chain; compaction decided but not yet run. ---
    let (hot_name, cold_name) = (unique("bench-hot"), unique("bench-cold"));
    let hot = IdbKv::open(&hot_name, LockPolicy::Fail).await.unwrap();
    let cold = IdbKv::open(&cold_name, LockPolicy::Fail).await.unwrap();
    let (clock, gaps) = JsClock::metered();
    let config = Config {
        mode: Mode::Universal,
        finality: 10,
        threshold_finalities: 5,
        boundary_finalities: 4,
        message_retention: 1,
        sync_gap_secs: None,
        batch_size: BATCH,
        yield_every: 256,
        // Throughput is measured without the purge's deliberate pacing (on by default: after
        // 1 s of purging it sleeps 4x its working time to leave the disk to the page).
        purge_pace_after_ms: u64::MAX,
        ..Config::default()
    };
    let store = SplitStore::open(hot.clone(), cold.clone(), clock, config).await.unwrap();
    let mut chain = ChainGen::new(SynthConfig { seed: 7, state_objects: 20_000, ..SynthConfig::default() });
    let mut loaded = 0u64;
    let t_load = js::perf_now();
    for _ in 0..70 {
        let e = chain.next_epoch();
        loaded += e.blocks.len() as u64;
        store.put_many(e.blocks).await.unwrap();
        // Compaction is started by hand below.
        drop(store.head_change(&[], &[e.tipset]).await.unwrap());
    }
    let t_load = js::perf_now() - t_load;
    let hot_entries = scan_all(&hot, Space::Blocks).await;
    log(&format!(
        "loaded {loaded} blocks ({} distinct, {:.1} MB) through the store in {t_load:.0} ms: {}",
        hot_entries.len(),
        hot_entries.iter().map(|(_, v)| v.len()).sum::<usize>() as f64 / 1e6,
        rate(loaded, t_load)
    ));

    // --- The compaction, watched for long tasks. ---
    let watch = LongTasks::start();
    gaps.reset();
    let t_compact = js::perf_now();
    // Phase start times, to tell which phase each long task fell in.
    let phase_starts: RefCell<Vec<(f64, &'static str)>> = RefCell::new(Vec::new());
    let sink = |p: &splitstore_core::Progress| {
        let mut v = phase_starts.borrow_mut();
        if v.last().map(|(_, ph)| *ph) != Some(p.phase.as_str()) {
            v.push((js::perf_now(), p.phase.as_str()));
        }
    };
    let report = store.compact(&sink).await.expect("compaction");
    let t_compact = js::perf_now() - t_compact;
    let (long_n, long_max) = watch.summary().await;
    let in_phase = |t: f64| phase_starts.borrow().iter().rev().find(|(s, _)| *s <= t).map_or("before", |(_, p)| *p);
    let tasks: Vec<String> =
        watch.seen.borrow().iter().map(|(t, d)| format!("{d:.0} ms in {}", in_phase(*t))).collect();
    log(&format!("long tasks during compaction: [{}]", tasks.join(", ")));
    drop(watch);
    let phases: Vec<String> = report.phases.iter().map(|(p, ms)| format!("{} {ms} ms", p.as_str())).collect();
    log(&format!("compaction phases: {}", phases.join(", ")));

    // --- The same I/O with raw batched calls, on fresh databases holding the same data. ---
    let raw_name = (unique("bench-raw"), unique("bench-raw-cold"));
    let raw = IdbKv::open(&raw_name.0, LockPolicy::Fail).await.unwrap();
    let raw_cold = IdbKv::open(&raw_name.1, LockPolicy::Fail).await.unwrap();
    let n = hot_entries.len() as u64;
    let t_put = timed(put_batched(&raw, Space::Blocks, &hot_entries)).await;
    let mut keys = Vec::new();
    let t_scan_keys = timed(async { keys = scan_keys_all(&raw, Space::Blocks).await }).await;
    let t_scan = timed(async { assert_eq!(scan_all(&raw, Space::Blocks).await.len() as u64, n) }).await;
    let marked = (report.marked as usize).min(keys.len());
    let t_get = timed(async {
        for chunk in keys[..marked].chunks(512) {
            raw.get_many(Space::Blocks, chunk).await.unwrap();
        }
    })
    .await;
    // Exactly the blocks the compaction purged (scattered among the live ones) and moved.
    let after: std::collections::HashSet<Vec<u8>> = scan_keys_all(&hot, Space::Blocks).await.into_iter().collect();
    let dead_entries: Vec<(Vec<u8>, Vec<u8>)> =
        hot_entries.iter().filter(|(k, _)| !after.contains(k)).cloned().collect();
    let dead_keys: Vec<Vec<u8>> = dead_entries.iter().map(|(k, _)| k.clone()).collect();
    let dead = dead_keys.len();
    let moved = (report.moved as usize).min(dead);
    let list: Vec<(Vec<u8>, Vec<u8>)> = dead_keys.iter().map(|k| (k.clone(), Vec::new())).collect();
    let t_lists = timed(async {
        put_batched(&raw, Space::Dead, &list).await;
        put_batched(&raw, Space::ColdList, &list[..moved.min(list.len())]).await;
        scan_keys_all(&raw, Space::ColdList).await;
        scan_keys_all(&raw, Space::Dead).await;
    })
    .await;
    let moved_entries: Vec<(Vec<u8>, Vec<u8>)> = dead_entries[..moved].to_vec();
    let t_move = timed(async {
        let ks: Vec<Vec<u8>> = moved_entries.iter().map(|(k, _)| k.clone()).collect();
        for chunk in ks.chunks(BATCH) {
            raw.get_many(Space::Blocks, chunk).await.unwrap();
        }
        put_batched(&raw_cold, Space::Blocks, &moved_entries).await;
    })
    .await;
    let t_delete = timed(async {
        for chunk in dead_keys.chunks(BATCH) {
            let mut b = WriteBatch::with_capacity(chunk.len() * 2);
            for k in chunk {
                b.delete(Space::Blocks, k.clone()).delete(Space::Dead, k.clone());
            }
            b.strict();
            raw.write(b).await.unwrap();
        }
    })
    .await;
    let t_raw_same_work = t_scan_keys + t_get + t_lists + t_move + t_delete;

    // --- One transaction per operation. ---
    let sample = &hot_entries[..PER_OP.min(hot_entries.len())];
    let per_op = IdbKv::open(&unique("bench-perop"), LockPolicy::Fail).await.unwrap();
    let t_put1 = timed(async {
        for (k, v) in sample {
            let mut b = WriteBatch::new();
            b.put(Space::Blocks, k.clone(), v.clone());
            per_op.write(b).await.unwrap();
        }
    })
    .await;
    let t_get1 = timed(async {
        for (k, _) in sample {
            per_op.get(Space::Blocks, k).await.unwrap();
        }
    })
    .await;
    let t_del1 = timed(async {
        for (k, _) in sample {
            let mut b = WriteBatch::new();
            b.delete(Space::Blocks, k.clone());
            per_op.write(b).await.unwrap();
        }
    })
    .await;

    // --- Cost of one yield to the event loop. ---
    let yc = JsClock::new();
    let t_yield = timed(async {
        for _ in 0..2000 {
            yc.yield_now().await;
        }
    })
    .await;

    let p = PER_OP as u64;
    let batched_put_rate = n as f64 / t_put;
    let per_op_put_rate = p as f64 / t_put1;
    let compaction_objects = report.hot_scanned;
    log(&format!(
        "\n== IndexedDB raw vs compaction (one page, one run) ==\n\
         hot store: {n} blocks; compaction: marked {}, scanned {}, dead {}, moved {}, purged {}\n\
         raw batched put ({BATCH}/tx)     {n:>7} ops {t_put:>8.0} ms {}\n\
         raw scan keys ({BATCH}/page)    {n:>7} keys {t_scan_keys:>7.0} ms {}\n\
         raw scan entries ({BATCH}/page) {n:>7} ents {t_scan:>7.0} ms {}\n\
         raw get_many (512/tx)          {marked:>7} ops {t_get:>8.0} ms {}\n\
         raw dead+cold lists             {:>7} ops {t_lists:>8.0} ms\n\
         raw move (read + put cold)     {moved:>7} ops {t_move:>8.0} ms {}\n\
         raw delete ({BATCH}/tx, strict)  {dead:>7} ops {t_delete:>8.0} ms {}\n\
         raw, the compaction's I/O        total {t_raw_same_work:>8.0} ms\n\
         compaction                       total {t_compact:>8.0} ms ({} hot objects/s)\n\
         compaction / raw same work: {:.2}x (target >= 0.7)\n\
         per-op put (1/tx)              {p:>7} ops {t_put1:>8.0} ms {}\n\
         per-op get (1/tx)              {p:>7} ops {t_get1:>8.0} ms {}\n\
         per-op delete (1/tx)           {p:>7} ops {t_del1:>8.0} ms {}\n\
         batched put / per-op put: {:.1}x (target >= 10)\n\
         compaction objects/s / per-op put: {:.1}x\n\
         longest task during compaction: {long_max:.0} ms ({long_n} long tasks >= 50 ms)\n\
         longest stretch between compaction yields: {:.1} ms over {} yields\n\
         one yield (MessageChannel): {:.3} ms",
        report.marked,
        report.hot_scanned,
        report.dead,
        report.moved,
        report.purged,
        rate(n, t_put),
        rate(n, t_scan_keys),
        rate(n, t_scan),
        rate(marked as u64, t_get),
        dead + moved,
        rate(moved as u64, t_move),
        rate(dead as u64, t_delete),
        (compaction_objects as f64 / (t_compact / 1000.0)) as u64,
        t_raw_same_work / t_compact,
        rate(p, t_put1),
        rate(p, t_get1),
        rate(p, t_del1),
        batched_put_rate / per_op_put_rate,
        (compaction_objects as f64 / t_compact) / per_op_put_rate,
        gaps.max_gap_ms(),
        gaps.yields(),
        t_yield / 2000.0,
    ));

    drop(store);
    for kv in [hot, cold, raw, raw_cold, per_op] {
        let name = kv.name().to_owned();
        kv.close().await;
        drop(kv);
        IdbKv::destroy(&name).await.unwrap();
    }
}

/// Where the main thread's time goes inside single backend calls, and what deleting costs
/// with each IndexedDB strategy.
#[wasm_bindgen_test]
#[ignore]
async fn bench_backend_call_costs() {
    let kv = IdbKv::open(&unique("bench-costs"), LockPolicy::Fail).await.unwrap();
    let entries: Vec<(Vec<u8>, Vec<u8>)> = (0u32..40_000)
        .map(|i| {
            let mut k = vec![0xa0, 0xe4, 0x02, 0x20];
            k.extend_from_slice(&i.wrapping_mul(2_654_435_761).to_be_bytes());
            k.extend_from_slice(&[7u8; 28]);
            (k, vec![(i % 251) as u8; 480])
        })
        .collect();
    // Synchronous part of a 4096-put write: the future's first poll issues every request.
    let chunk = &entries[..BATCH];
    let mut b = WriteBatch::with_capacity(BATCH);
    for (k, v) in chunk {
        b.put(Space::Blocks, k.clone(), v.clone());
    }
    let mut fut = kv.write(b);
    let waker = futures::task::noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    let t0 = js::perf_now();
    assert!(std::future::Future::poll(fut.as_mut(), &mut cx).is_pending());
    let issue_ms = js::perf_now() - t0;
    fut.await.unwrap();
    put_batched(&kv, Space::Blocks, &entries[BATCH..]).await;
    log(&format!("issuing 4096 puts of 480 B (one task): {issue_ms:.1} ms"));

    let t0 = js::perf_now();
    let page = kv.scan(Space::Blocks, None, BATCH).await.unwrap();
    log(&format!("scan page of {} entries (await included): {:.1} ms", page.len(), js::perf_now() - t0));

    let mut keys: Vec<Vec<u8>> = entries.iter().map(|(k, _)| k.clone()).collect();
    keys.sort();
    // Delete every 4th key (dead keys interleaved with live ones, as after a compaction's
    // collect), 4096 per transaction.
    let dead: Vec<Vec<u8>> = keys.iter().step_by(4).cloned().collect();
    for durability in ["relaxed", "strict"] {
        let part: Vec<Vec<u8>> =
            if durability == "relaxed" { dead[..BATCH].to_vec() } else { dead[BATCH..2 * BATCH].to_vec() };
        let mut b = WriteBatch::with_capacity(part.len());
        for k in &part {
            b.delete(Space::Blocks, k.clone());
        }
        if durability == "strict" {
            b.strict();
        }
        let t0 = js::perf_now();
        kv.write(b).await.unwrap();
        let ms = js::perf_now() - t0;
        log(&format!("delete 4096 interleaved keys, {durability}: {ms:.0} ms, {}", rate(4096, ms)));
    }
    // The same number of puts for comparison (overwrites of live keys).
    let live: Vec<(Vec<u8>, Vec<u8>)> =
        keys.iter().skip(1).step_by(4).take(BATCH).map(|k| (k.clone(), vec![1u8; 480])).collect();
    let t0 = js::perf_now();
    put_batched(&kv, Space::Blocks, &live).await;
    let ms = js::perf_now() - t0;
    log(&format!("put 4096 (overwrite), relaxed: {ms:.0} ms, {}", rate(4096, ms)));
    let name = kv.name().to_owned();
    kv.close().await;
    drop(kv);
    IdbKv::destroy(&name).await.unwrap();
}

/// What one `put` costs the page's thread: the request alone (reused JS arrays) versus with
/// the conversion of Rust bytes into fresh `Uint8Array`s.
#[wasm_bindgen_test]
#[ignore]
async fn bench_issue_cost_per_put() {
    use js_sys::Uint8Array;
    let name = unique("bench-issue");
    let _kv = IdbKv::open(&name, LockPolicy::Fail).await.unwrap();
    drop(_kv);
    js::sleep_ms(20.0).await;
    let db: web_sys::IdbDatabase = idb::Factory::new().unwrap().open(&name, Some(1)).unwrap().await.unwrap().into();
    let n = 2048usize;
    let keys: Vec<Vec<u8>> = (0..n as u32).map(|i| [i.to_be_bytes().to_vec(), vec![9u8; 32]].concat()).collect();
    let value = vec![5u8; 480];
    let names = js_sys::Array::of1(&"blocks".into());
    for round in 0..3 {
        let tx = db.transaction_with_str_sequence_and_mode(&names, web_sys::IdbTransactionMode::Readwrite).unwrap();
        let store = tx.object_store("blocks").unwrap();
        let js_keys: Vec<Uint8Array> = keys.iter().map(|k| Uint8Array::from(&k[..])).collect();
        let js_value = Uint8Array::from(&value[..]);
        let t0 = js::perf_now();
        for k in &js_keys {
            store.put_with_key(&js_value, k).unwrap();
        }
        let reused = js::perf_now() - t0;
        let t0 = js::perf_now();
        for k in &keys {
            let _ = Uint8Array::from(&k[..]);
            let _ = Uint8Array::from(&value[..]);
        }
        let convert = js::perf_now() - t0;
        let t0 = js::perf_now();
        for k in &keys {
            store.put_with_key(&Uint8Array::from(&value[..]), &Uint8Array::from(&k[..])).unwrap();
        }
        let fresh = js::perf_now() - t0;
        let done = splitstore_wasm::js::TxDone::watch(&tx, "bench");
        done.wait().await.unwrap();
        log(&format!(
            "round {round}: per put: request only {:.1} us, conversion only {:.1} us, both {:.1} us",
            reused * 1000.0 / n as f64,
            convert * 1000.0 / n as f64,
            fresh * 1000.0 / n as f64
        ));
    }
    db.close();
    IdbKv::destroy(&name).await.unwrap();
}

/// Puts `batches` transactions of `per_batch` values of `len` bytes into a fresh database with
/// raw IndexedDB calls at the given durability; resolves to the milliseconds taken.
const RAW_PUTS: &str = r#"
    const [name, durability, batches, perBatch, len] = arguments;
    return new Promise((resolve, reject) => {
        const open = indexedDB.open(name, 1);
        open.onupgradeneeded = () => open.result.createObjectStore("blocks");
        open.onerror = () => reject(open.error);
        open.onsuccess = async () => {
            const db = open.result;
            const value = new Uint8Array(len).fill(7);
            const t0 = performance.now();
            for (let b = 0; b < batches; b++) {
                await new Promise((done, fail) => {
                    const tx = db.transaction(["blocks"], "readwrite", { durability });
                    const store = tx.objectStore("blocks");
                    for (let i = 0; i < perBatch; i++) store.put(value, new Uint8Array([b >> 8, b & 255, i >> 8, i & 255]));
                    tx.oncomplete = done;
                    tx.onerror = () => fail(tx.error);
                });
            }
            const ms = performance.now() - t0;
            db.close();
            indexedDB.deleteDatabase(name);
            resolve(ms);
        };
    });
"#;

async fn raw_puts(durability: &str, batches: u32, per_batch: u32, len: u32) -> f64 {
    let f = js_sys::Function::new_no_args(RAW_PUTS);
    let args = js_sys::Array::of5(
        &unique("bench-durability").into(),
        &durability.into(),
        &batches.into(),
        &per_batch.into(),
        &len.into(),
    );
    let p: js_sys::Promise = f.apply(&JsValue::UNDEFINED, &args).expect("start").unchecked_into();
    wasm_bindgen_futures::JsFuture::from(p).await.expect("raw puts").as_f64().expect("ms")
}

/// What committing every transaction strict costs (the IndexedDB backend does): the same raw
/// puts, relaxed then strict, alternating, median of five rounds each.
#[wasm_bindgen_test]
#[ignore]
async fn bench_strict_vs_relaxed_commits() {
    for (label, batches, per_batch, len) in
        [("1 block per transaction", 300, 1, 1024), ("256 blocks per transaction", 40, 256, 1024)]
    {
        let (mut relaxed, mut strict) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            relaxed.push(raw_puts("relaxed", batches, per_batch, len).await);
            strict.push(raw_puts("strict", batches, per_batch, len).await);
        }
        let (r, s) = (median(relaxed), median(strict));
        let n = u64::from(batches * per_batch);
        log(&format!(
            "{label}: relaxed {} ({r:.0} ms), strict {} ({s:.0} ms), strict/relaxed time {:.2}x",
            rate(n, r),
            rate(n, s),
            s / r
        ));
    }
}

/// What the storage limit's admission costs a write: the same `IdbKv` puts (1 KiB values) with
/// and without a limit far above the data (so nothing is refused and every admission runs its
/// bookkeeping and its usage readings), alternating, median of five rounds each.
#[wasm_bindgen_test]
#[ignore]
async fn bench_storage_limit_admission() {
    use splitstore_wasm::limit::StorageLimit;
    async fn puts(limited: bool, batches: u32, per_batch: u32) -> f64 {
        let kv = IdbKv::open(&unique("bench-limit"), LockPolicy::Fail).await.unwrap();
        if limited {
            kv.set_storage_limit(Some(Rc::new(StorageLimit::new(1 << 40, 1 << 38))));
        }
        let value = vec![7u8; 1024];
        let ms = timed(async {
            for b in 0..batches {
                let mut batch = WriteBatch::new();
                for i in 0..per_batch {
                    batch.put(Space::Blocks, [b.to_be_bytes(), i.to_be_bytes()].concat(), value.clone());
                }
                kv.write(batch).await.unwrap();
            }
        })
        .await;
        let name = kv.name().to_owned();
        kv.close().await;
        drop(kv);
        IdbKv::destroy(&name).await.unwrap();
        ms
    }
    for (label, batches, per_batch) in [("1 block per batch", 300, 1), ("256 blocks per batch", 40, 256)] {
        let (mut without, mut with) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            without.push(puts(false, batches, per_batch).await);
            with.push(puts(true, batches, per_batch).await);
        }
        let (a, b) = (median(without), median(with));
        let n = u64::from(batches * per_batch);
        log(&format!(
            "{label}: without a limit {} (median {a:.0} ms), with one {} (median {b:.0} ms): {:.2}x the time",
            rate(n, a),
            rate(n, b),
            b / a
        ));
    }
}
