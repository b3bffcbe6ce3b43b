//! The fingerprint table of the mark set against the `hashbrown` set of `[u8; 16]` it
//! replaced (identity hasher over the first 8 bytes), on the same random fingerprints: insert,
//! lookup of present values, lookup of absent values, and heap bytes per entry, pre-sized for
//! the final count and grown from empty. Also `MarkSet::mark` end to end (SipHash included)
//! against fingerprinting plus the `hashbrown` insert. Medians of `SPLITSTORE_BENCH_RUNS` runs
//! (default 5); ratios are table / hashbrown, measured in the same process.
//!
//! `cargo bench -p splitstore-core --bench markset [-- --sizes 100000,1000000,4000000]`

use std::hash::{BuildHasher, Hasher};
use std::hint::black_box;
use std::time::Instant;

use hashbrown::HashSet;
use splitstore_core::markset::{FingerprintTable, MarkSet, Marks};

/// The replaced set's hasher: a fingerprint's first eight bytes are already its hash.
#[derive(Clone, Copy, Default)]
struct Identity(u64);

impl Hasher for Identity {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        let mut word = [0u8; 8];
        let n = bytes.len().min(8);
        word[..n].copy_from_slice(&bytes[..n]);
        self.0 ^= u64::from_le_bytes(word);
    }
}

#[derive(Clone, Copy, Default)]
struct BuildIdentity;

impl BuildHasher for BuildIdentity {
    type Hasher = Identity;
    fn build_hasher(&self) -> Identity {
        Identity(0)
    }
}

type Baseline = HashSet<[u8; 16], BuildIdentity>;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn fp(&mut self) -> u128 {
        (u128::from(self.next()) << 64) | u128::from(self.next())
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).expect("no NaN"));
    v[v.len() / 2]
}

/// Nanoseconds per item of `f` over `items` items.
fn timed(items: usize, f: impl FnOnce() -> usize) -> f64 {
    let t = Instant::now();
    black_box(f());
    t.elapsed().as_secs_f64() * 1e9 / items as f64
}

/// One run's figures: insert, hit, miss (ns per op), bytes per entry.
#[derive(Default)]
struct Figures {
    insert: Vec<f64>,
    hit: Vec<f64>,
    miss: Vec<f64>,
    bytes: Vec<f64>,
}

impl Figures {
    fn medians(self) -> [f64; 4] {
        [median(self.insert), median(self.hit), median(self.miss), median(self.bytes)]
    }
}

fn run_table(present: &[u128], absent: &[u128], capacity: usize, out: &mut Figures) {
    let n = present.len();
    let mut t = FingerprintTable::with_capacity(capacity);
    out.insert.push(timed(n, || present.iter().filter(|&&fp| t.insert(fp)).count()));
    out.hit.push(timed(n, || present.iter().filter(|&&fp| t.contains(fp)).count()));
    out.miss.push(timed(n, || absent.iter().filter(|&&fp| t.contains(fp)).count()));
    out.bytes.push(t.heap_bytes() as f64 / t.len() as f64);
}

fn run_baseline(present: &[[u8; 16]], absent: &[[u8; 16]], capacity: usize, out: &mut Figures) {
    let n = present.len();
    let mut t = Baseline::with_capacity_and_hasher(capacity, BuildIdentity);
    out.insert.push(timed(n, || present.iter().filter(|fp| t.insert(**fp)).count()));
    out.hit.push(timed(n, || present.iter().filter(|fp| t.contains(*fp)).count()));
    out.miss.push(timed(n, || absent.iter().filter(|fp| t.contains(*fp)).count()));
    out.bytes.push(t.allocation_size() as f64 / t.len() as f64);
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let sizes: Vec<usize> = args
        .iter()
        .position(|a| a == "--sizes")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_else(|| vec![100_000, 1_000_000, 4_000_000]);
    let runs: usize = std::env::var("SPLITSTORE_BENCH_RUNS").ok().and_then(|s| s.parse().ok()).unwrap_or(5);
    println!("ns per operation and bytes per entry, medians of {runs} runs; ratio = table / hashbrown");
    println!(
        "{:>9} {:>8} | {:>22} | {:>22} | {:>22} | {:>22}",
        "entries", "sizing", "insert", "lookup hit", "lookup miss", "bytes/entry"
    );
    let mut rng = Rng(0x5eed);
    for &n in &sizes {
        let present: Vec<u128> = (0..n).map(|_| rng.fp()).collect();
        let absent: Vec<u128> = (0..n).map(|_| rng.fp()).collect();
        let present_b: Vec<[u8; 16]> = present.iter().map(|fp| fp.to_le_bytes()).collect();
        let absent_b: Vec<[u8; 16]> = absent.iter().map(|fp| fp.to_le_bytes()).collect();
        for (sizing, capacity) in [("presized", n), ("grown", 0)] {
            let (mut ours, mut base) = (Figures::default(), Figures::default());
            for _ in 0..runs {
                run_table(&present, &absent, capacity, &mut ours);
                run_baseline(&present_b, &absent_b, capacity, &mut base);
            }
            let (o, b) = (ours.medians(), base.medians());
            let cell = |i: usize| format!("{:6.1} vs {:6.1} {:5.2}x", o[i], b[i], o[i] / b[i]);
            println!("{n:>9} {sizing:>8} | {} | {} | {} | {}", cell(0), cell(1), cell(2), cell(3));
        }
    }

    // End to end: the mark set's `mark` (SipHash-1-3 and the table) against SipHash and the
    // replaced `hashbrown` insert, pre-sized, on 36-byte keys.
    println!("MarkSet::mark end to end, pre-sized, ns per key; ratio = table / hashbrown");
    for &n in &sizes {
        let keys: Vec<[u8; 36]> = (0..n)
            .map(|_| {
                let mut k = [0u8; 36];
                k[..2].copy_from_slice(&[0x01, 0x71]);
                for c in k[4..].chunks_mut(8) {
                    c.copy_from_slice(&rng.next().to_le_bytes()[..c.len()]);
                }
                k
            })
            .collect();
        let (mut ours, mut base) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            let mut s = MarkSet::with_capacity(n, 7);
            ours.push(timed(n, || keys.iter().filter(|k| s.mark(&k[..])).count()));
            let f = MarkSet::with_capacity(0, 7);
            let mut t = Baseline::with_capacity_and_hasher(n, BuildIdentity);
            base.push(timed(n, || keys.iter().filter(|k| t.insert(f.fingerprint(&k[..]))).count()));
        }
        let (o, b) = (median(ours), median(base));
        println!("{n:>9} | {o:6.1} vs {b:6.1} {:5.2}x", o / b);
    }
}
