//! The CAR reader and writer against every CAR file in the shared test data.
//!
//! Oracles: `js-car/fixtures-expectations.json` (version, error and block order per file, as
//! the JavaScript implementation reads them), the test data's own Python inspector
//! (`carinfo.py`, an independent CARv1/CARv2 parser) for roots and block counts, and a table
//! below that names the error each malformed file must produce.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use cid::Cid;
use serde_json::Value;
use splitstore_conformance::testdata::{read_testdata, testdata_dir, testdata_path};
use splitstore_core::car::{
    encode_header_v1, encode_section, read_car, write_car_v1, CarBlocks, CarDecoder, CarError, CarHeader, CarLimits,
    Step,
};

/// Everything a decoder run produced: the version and header it saw, the blocks it returned
/// (CID, bytes, offset) and how it ended.
#[derive(Debug, PartialEq)]
struct Outcome {
    version: Option<u64>,
    header: Option<CarHeader>,
    blocks: Vec<(Cid, Vec<u8>, u64)>,
    result: Result<(), CarError>,
}

/// A small deterministic generator (xorshift64*) for chunk sizes and mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Decodes `bytes` as one slice.
fn one_shot(bytes: &[u8], limits: CarLimits) -> Outcome {
    let mut blocks = Vec::new();
    let (header, result) = match CarBlocks::new(bytes, limits) {
        Ok(mut it) => {
            let mut result = Ok(());
            for b in it.by_ref() {
                match b {
                    Ok(b) => blocks.push((b.cid, b.data.to_vec(), b.offset)),
                    Err(e) => result = Err(e),
                }
            }
            (Some(it.header().clone()), result)
        }
        Err(e) => (None, Err(e)),
    };
    // The slice reader does not expose the version separately; the push decoder does.
    let version = header.as_ref().map(|h| h.version).or_else(|| pushed(bytes, &mut |_| 1, limits, true).version);
    Outcome { version, header, blocks, result }
}

/// Decodes `bytes` through the push decoder in chunks whose sizes `next_chunk` picks.
fn pushed(bytes: &[u8], next_chunk: &mut dyn FnMut(usize) -> usize, limits: CarLimits, hint: bool) -> Outcome {
    let mut dec = CarDecoder::new(limits);
    if hint {
        dec = dec.with_total_len(bytes.len() as u64);
    }
    let mut blocks = Vec::new();
    let mut at = 0;
    let result = (|| {
        'feed: while at < bytes.len() {
            let end = (at + next_chunk(bytes.len() - at).max(1)).min(bytes.len());
            let mut rest = &bytes[at..end];
            at = end;
            loop {
                let (used, step) = dec.decode(rest)?;
                rest = &rest[used..];
                match step {
                    Step::NeedMore => {
                        assert!(rest.is_empty(), "NeedMore must consume the whole chunk");
                        break;
                    }
                    Step::Header => assert!(dec.header().is_some()),
                    Step::Block(b) => blocks.push((b.cid, b.data.to_vec(), b.offset)),
                    Step::End => break 'feed,
                }
            }
        }
        dec.finish()
    })();
    Outcome { version: dec.version(), header: dec.header().cloned(), blocks, result }
}

/// Decodes `bytes` in random chunk sizes drawn with `seed`: mostly small, sometimes large.
fn random_chunks(bytes: &[u8], seed: u64, limits: CarLimits, hint: bool) -> Outcome {
    let mut rng = Rng(seed | 1);
    let mut next = move |left: usize| match rng.below(4) {
        0 => 1 + rng.below(8),
        1 => 1 + rng.below(300),
        2 => 1 + rng.below(70_000),
        _ => 1 + rng.below(left),
    };
    pushed(bytes, &mut next, limits, hint)
}

fn rel(path: &Path) -> String {
    path.strip_prefix(testdata_dir()).expect("under testdata").to_string_lossy().into_owned()
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("listing {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Every file this suite covers: all of `go-car/` and `js-car/`, and the CARs of
/// `kubo-lotus-testnet/`.
fn corpus() -> Vec<PathBuf> {
    let td = testdata_dir();
    let mut out = Vec::new();
    files_under(&td.join("go-car"), &mut out);
    files_under(&td.join("js-car"), &mut out);
    let mut kubo = Vec::new();
    files_under(&td.join("kubo-lotus-testnet"), &mut kubo);
    out.extend(kubo.into_iter().filter(|p| p.extension().is_some_and(|e| e == "car")));
    assert!(out.len() > 40, "expected the whole CAR corpus, found {} files", out.len());
    out
}

/// Files that are not CARs at all (licences, indexes, a bare block, the expectations).
fn not_a_car(name: &str) -> bool {
    name.starts_with("LICENSE") || name.ends_with(".json")
}

/// The error a malformed file must produce, by file name. `None`: the file is valid.
fn expected_error(name: &str) -> Option<fn(&CarError) -> bool> {
    Some(match name {
        "badheaderlength.car" | "FuzzBlockReader-c3c7eedeb496.car" => {
            |e| matches!(e, CarError::HeaderTooLarge { offset: 0, .. })
        }
        "badsectionlength.car" => |e| matches!(e, CarError::SectionTooLarge { offset: 18, .. }),
        // Headers that say version 2 without being the pragma.
        "FuzzReader-c640dd07c027.car" | "FuzzReader-e1d7f87ee37f.car" => {
            |e| matches!(e, CarError::BadPragma { offset: 0 })
        }
        "FuzzReader-fe93cec1356a.car" => |e| matches!(e, CarError::HashMismatch { .. }),
        "sample-corrupt-pragma.car" | "sample-v1-tailing-corrupt-section.car" => {
            |e| matches!(e, CarError::Truncated { .. })
        }
        "sample-rootless-v42.car" => |e| *e == CarError::UnsupportedVersion { version: 42 },
        "sample-v1-with-zero-len-section.car" | "sample-v1-with-zero-len-section2.car" => {
            |e| matches!(e, CarError::ZeroLengthSection { .. })
        }
        "sample-v2-corrupt-data-and-index.car" => |e| matches!(e, CarError::BadV2Header { .. }),
        // A bare 907-byte DAG-CBOR block: `8d 43` reads as an 8589-byte header.
        n if n.ends_with(".block") => |e| *e == CarError::Truncated { offset: 0 },
        // CARv2 indexes without a CAR: `0x80 0x08` reads as a 1024-byte header that is not one.
        n if n.ends_with(".carindex") => |e| matches!(e, CarError::BadHeader { .. }),
        _ => return None,
    })
}

/// `carinfo.py --json [--verify] FILE`: the summary of one file and the exit status.
fn carinfo(path: &Path, verify: bool) -> (Value, bool) {
    let script = testdata_path("carinfo.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script).arg("--json").arg(path);
    if verify {
        cmd.arg("--verify");
    }
    let out = cmd.output().unwrap_or_else(|e| panic!("running python3 {}: {e}", script.display()));
    let all: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("carinfo output for {}: {e}", path.display()));
    let key = path.to_string_lossy();
    (all[key.as_ref()].clone(), out.status.success())
}

fn cid_strings<'a>(cids: impl IntoIterator<Item = &'a Cid>) -> Vec<String> {
    cids.into_iter().map(|c| c.to_string()).collect()
}

#[test]
fn every_file_decodes_or_fails_as_expected() {
    let mut checked = 0;
    for path in corpus() {
        let name = path.file_name().expect("file name").to_string_lossy().into_owned();
        let what = rel(&path);
        if not_a_car(&name) {
            continue;
        }
        let bytes = std::fs::read(&path).expect("read fixture");
        let got = one_shot(&bytes, CarLimits::default());
        match expected_error(&name) {
            Some(is_expected) => {
                let err = got.result.as_ref().expect_err(&what);
                assert!(is_expected(err), "{what}: unexpected error {err:?}");
                assert!(!err.to_string().is_empty());
            }
            None => {
                assert_eq!(got.result, Ok(()), "{what}");
                let header = got.header.as_ref().expect("header");
                let (info, ok) = carinfo(&path, false);
                assert!(ok, "{what}: carinfo rejects a file we accept: {info}");
                assert_eq!(info["blocks"].as_u64(), Some(got.blocks.len() as u64), "{what}");
                let roots: Vec<String> = serde_json::from_value(info["roots"].clone()).expect("roots");
                assert_eq!(cid_strings(&header.roots), roots, "{what}");
                assert_eq!(header.v2.is_some(), info.get("carv2").is_some(), "{what}");
                assert_eq!(header.version, if header.v2.is_some() { 2 } else { 1 }, "{what}");
                if let Some(v2) = &header.v2 {
                    assert_eq!(info["carv2"]["data_offset"].as_u64(), Some(v2.data_offset), "{what}");
                    assert_eq!(info["carv2"]["data_size"].as_u64(), Some(v2.data_size), "{what}");
                }
            }
        }
        // Where the data is cut short or padded, the blocks before the fault still count, and
        // carinfo (which stops at the same place) agrees on how many there are.
        if matches!(got.result, Err(CarError::Truncated { .. } | CarError::ZeroLengthSection { .. }))
            && got.header.is_some()
        {
            let (info, ok) = carinfo(&path, false);
            assert!(!ok, "{what}: carinfo accepts a file we reject");
            assert_eq!(info["blocks"].as_u64(), Some(got.blocks.len() as u64), "{what}");
        }
        checked += 1;
    }
    assert!(checked >= 39, "only {checked} CAR files checked");
}

#[test]
fn js_car_expectations() {
    let expectations: BTreeMap<String, Value> =
        serde_json::from_slice(&read_testdata("js-car/fixtures-expectations.json")).expect("json");
    assert!(expectations.len() >= 12, "expectations: {}", expectations.len());
    for (name, want) in &expectations {
        let bytes = read_testdata(&format!("go-car/v2-testdata/{name}"));
        let got = one_shot(&bytes, CarLimits::default());
        assert_eq!(got.version, want["version"].as_u64(), "{name}: version");
        match want["err"].as_str() {
            Some("Invalid CAR version: 42") => {
                assert_eq!(got.result, Err(CarError::UnsupportedVersion { version: 42 }), "{name}")
            }
            // Data that ends before the layout says it does: a cut item, or (when the file
            // length is known up front) a CARv2 payload that lies past the end.
            Some("Unexpected end of data") => assert!(
                matches!(got.result, Err(CarError::Truncated { .. } | CarError::BadV2Header { .. })),
                "{name}: {:?}",
                got.result
            ),
            Some(other) => panic!("{name}: no mapping for the expected error {other:?}"),
            None => assert!(got.header.is_some(), "{name}: the header must decode"),
        }
        if let Some(cids) = want["cids"].as_array() {
            let want: Vec<&str> = cids.iter().map(|c| c.as_str().expect("cid string")).collect();
            let got: Vec<String> = got.blocks.iter().map(|b| b.0.to_string()).collect();
            assert_eq!(got, want, "{name}: block order");
            assert!(expected_error(name).is_none(), "{name} must be valid");
        }
    }
}

#[test]
fn zero_length_section_can_end_the_data() {
    let eof = CarLimits { zero_length_section_as_eof: true, ..CarLimits::default() };
    let reference = one_shot(&read_testdata("go-car/v2-testdata/sample-v1.car"), eof);
    for (name, count) in [("sample-v1-with-zero-len-section.car", 1049), ("sample-v1-with-zero-len-section2.car", 20)] {
        let bytes = read_testdata(&format!("go-car/v2-testdata/{name}"));
        let got = one_shot(&bytes, eof);
        assert_eq!(got.result, Ok(()), "{name}");
        assert_eq!(got.blocks.len(), count, "{name}");
        let (info, _) = carinfo(&testdata_path(&format!("go-car/v2-testdata/{name}")), false);
        assert_eq!(info["blocks"].as_u64(), Some(count as u64), "{name}");
        if count == 1049 {
            assert_eq!(got.blocks, reference.blocks, "{name}: same blocks as sample-v1.car");
        }
        assert_eq!(random_chunks(&bytes, 7, eof, false), got, "{name} chunked");
    }
}

#[test]
fn random_chunks_match_one_shot() {
    let mut extra = Vec::new();
    for f in ["forest/carv2.car", "forest/export40.car", "lotus/genesis-calibnet.car"] {
        extra.push(testdata_path(f));
    }
    for path in corpus().into_iter().chain(extra) {
        let what = rel(&path);
        let bytes = std::fs::read(&path).expect("read fixture");
        let whole = one_shot(&bytes, CarLimits::default());
        for seed in [1u64, 0xdead_beef, 42_424_242] {
            let hinted = random_chunks(&bytes, seed, CarLimits::default(), true);
            assert_eq!(hinted, whole, "{what}, seed {seed}, length announced");
            // Without the length, only a CARv2 payload past the end is reported differently:
            // as truncation when the data runs out, rather than up front.
            let blind = random_chunks(&bytes, seed, CarLimits::default(), false);
            assert_eq!(blind.blocks, whole.blocks, "{what}, seed {seed}");
            match (&whole.result, &blind.result) {
                (Err(CarError::BadV2Header { .. }), Err(CarError::Truncated { .. })) => {}
                (a, b) => assert_eq!(a, b, "{what}, seed {seed}"),
            }
        }
        // One byte at a time on the small files.
        if bytes.len() < 5_000 {
            let single = pushed(&bytes, &mut |_| 1, CarLimits::default(), true);
            assert_eq!(single, whole, "{what}, byte by byte");
        }
    }
}

#[test]
fn v2_file_reads_its_payload_only() {
    let path = testdata_path("forest/carv2.car");
    let bytes = std::fs::read(&path).expect("read");
    let (header, blocks) = read_car(&bytes, CarLimits::default()).expect("forest/carv2.car");
    let v2 = header.v2.expect("a CARv2 layout");
    assert_eq!(header.version, 2);
    assert!(v2.index_offset >= v2.data_offset + v2.data_size, "index after the payload");
    assert!((v2.index_offset as usize) < bytes.len(), "the file has an index");
    assert_eq!(blocks.len(), 7153);
    let (info, ok) = carinfo(&path, false);
    assert!(ok);
    assert_eq!(
        cid_strings(&header.roots),
        serde_json::from_value::<Vec<String>>(info["roots"].clone()).expect("roots")
    );
}

/// Reads `rel`, writes it back as CARv1, reads that, and has carinfo verify it.
fn round_trip(rel: &str) -> (Vec<u8>, Vec<u8>) {
    let original = read_testdata(rel);
    let (header, blocks) = read_car(&original, CarLimits::default()).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let mut written = Vec::new();
    write_car_v1(&header.roots, blocks.iter().map(|(c, d)| (*c, d.as_slice())), &mut written);

    // The streaming pieces produce the same bytes.
    let mut streamed = Vec::new();
    encode_header_v1(&header.roots, &mut streamed);
    for (cid, data) in &blocks {
        encode_section(cid, data, &mut streamed);
    }
    assert_eq!(streamed, written, "{rel}: streamed export differs");

    let (again, again_blocks) =
        read_car(&written, CarLimits::default()).unwrap_or_else(|e| panic!("{rel} rewritten: {e}"));
    assert_eq!(again.version, 1);
    assert_eq!(again.roots, header.roots, "{rel}");
    assert_eq!(again_blocks, blocks, "{rel}");

    let tmp = std::env::temp_dir().join(format!("splitstore-car-{}-{}", std::process::id(), rel.replace('/', "_")));
    std::fs::write(&tmp, &written).expect("write temp CAR");
    let (info, ok) = carinfo(&tmp, true);
    std::fs::remove_file(&tmp).expect("remove temp CAR");
    assert!(ok, "{rel}: carinfo --verify rejects the written file: {info}");
    assert_eq!(info["hash_mismatches"].as_u64(), Some(0));
    assert_eq!(info["blocks"].as_u64(), Some(blocks.len() as u64));
    (original, written)
}

#[test]
fn write_read_round_trip() {
    // Canonical CARv1 files come back byte for byte.
    for rel in ["go-car/v2-testdata/sample-v1.car", "kubo-lotus-testnet/lotus_testnet_export_256_multiroot.car"] {
        let (original, written) = round_trip(rel);
        assert!(original == written, "{rel}: rewrite is not byte-identical");
    }
    // Others are rewritten as CARv1 with the same roots and blocks: a CARv2 file, a file
    // without roots, one whose root is an identity CID, a CIDv0 file, and the actor-free
    // genesis of a current network.
    for rel in [
        "forest/carv2.car",
        "kubo-lotus-testnet/lotus_devnet_genesis_shuffled_noroots.car",
        "kubo-lotus-testnet/lotus_devnet_genesis_shuffled_nulroot.car",
        "js-car/go.carv2",
        "lotus/genesis-mainnet.car",
    ] {
        round_trip(rel);
    }
}

#[test]
fn mutated_files_never_panic_and_chunking_agrees() {
    let sources = ["js-car/go.car", "js-car/go.carv2", "go-car/cmd-car-inputs/simple-unixfs.car"];
    let mut rng = Rng(0x5eed);
    for rel in sources {
        let original = read_testdata(rel);
        for round in 0..300 {
            let mut bytes = original.clone();
            match rng.below(3) {
                0 => {
                    for _ in 0..1 + rng.below(4) {
                        let i = rng.below(bytes.len());
                        bytes[i] = rng.next() as u8;
                    }
                }
                1 => bytes.truncate(rng.below(bytes.len())),
                _ => {
                    let i = rng.below(bytes.len());
                    let junk: Vec<u8> = (0..1 + rng.below(12)).map(|_| rng.next() as u8).collect();
                    bytes.splice(i..i, junk);
                }
            }
            let whole = one_shot(&bytes, CarLimits::default());
            let chunked = random_chunks(&bytes, round, CarLimits::default(), true);
            assert_eq!(chunked, whole, "{rel}, mutation {round}");
        }
    }
}

/// Decoder throughput on a real CAR. Run with
/// `cargo test --release -p splitstore-conformance --test car -- --ignored --nocapture`.
#[test]
#[ignore = "measurement; run in release"]
fn throughput_genesis_mainnet() {
    let bytes = read_testdata("lotus/genesis-mainnet.car");
    let mb = bytes.len() as f64 / 1e6;
    let unchecked = CarLimits { verify_hashes: false, ..CarLimits::default() };
    let rounds = 50;
    for (label, limits) in [("verified", CarLimits::default()), ("unverified", unchecked)] {
        let start = std::time::Instant::now();
        let mut n = 0usize;
        for _ in 0..rounds {
            n += CarBlocks::new(&bytes, limits).expect("header").map(|b| b.expect("block").data.len()).sum::<usize>();
        }
        let slice = mb * rounds as f64 / start.elapsed().as_secs_f64();
        let start = std::time::Instant::now();
        for _ in 0..rounds {
            let mut dec = CarDecoder::new(limits);
            for chunk in bytes.chunks(64 * 1024) {
                let mut rest = chunk;
                loop {
                    let (used, step) = dec.decode(rest).expect("decode");
                    rest = &rest[used..];
                    match step {
                        Step::Block(b) => n += b.data.len(),
                        Step::Header => {}
                        Step::NeedMore | Step::End => break,
                    }
                }
            }
            dec.finish().expect("finish");
        }
        let chunked = mb * rounds as f64 / start.elapsed().as_secs_f64();
        println!("{label}: whole slice {slice:.0} MB/s, 64 KiB chunks {chunked:.0} MB/s [{n} bytes]");
    }
}
