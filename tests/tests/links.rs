//! The structural link scanner against real data and independent decoders.
//!
//! Oracles: the conformance fixtures' links manifest, `serde_ipld_dagcbor` (strict DAG-CBOR
//! decode to `Ipld`, then a walk), and the test data's own Python inspector (`carinfo.py`,
//! a lenient decoder) for blocks the strict decoder rejects.

use std::collections::BTreeMap;
use std::process::Command;

use cid::multihash::Multihash;
use cid::Cid;
use ipld_core::ipld::Ipld;
use splitstore_conformance::executor::Rng;
use splitstore_conformance::testdata::{read_car, read_testdata, testdata_dir, testdata_path};
use splitstore_core::key::DAG_CBOR;
use splitstore_core::links::{for_each_link, LinkError};

fn scan(bytes: &[u8]) -> Result<Vec<Cid>, LinkError> {
    let mut out = Vec::new();
    for_each_link(bytes, |c| out.push(c))?;
    Ok(out)
}

/// Links of an `Ipld` value, in the order DAG-CBOR encodes them (map keys sorted by length,
/// then bytes).
fn ipld_links(v: &Ipld, out: &mut Vec<Cid>) {
    let mut stack = vec![v];
    while let Some(v) = stack.pop() {
        match v {
            Ipld::Link(c) => out.push(*c),
            Ipld::List(items) => stack.extend(items.iter().rev()),
            Ipld::Map(m) => {
                let mut entries: Vec<_> = m.iter().collect();
                entries.sort_by(|a, b| (a.0.len(), a.0.as_bytes()).cmp(&(b.0.len(), b.0.as_bytes())));
                stack.extend(entries.into_iter().rev().map(|(_, v)| v));
            }
            _ => {}
        }
    }
}

fn sorted(mut v: Vec<Cid>) -> Vec<Cid> {
    v.sort();
    v
}

#[test]
fn codec_fixtures_match_the_links_manifest() {
    let manifest: serde_json::Value =
        serde_json::from_slice(&read_testdata("codec-fixtures/links-manifest.json")).expect("manifest is JSON");
    let entries = manifest.as_array().expect("manifest is a list");
    let (mut fixtures, mut links) = (0, 0);
    for entry in entries {
        let name = entry["name"].as_str().expect("name");
        let Some(cbor) = entry.get("dag-cbor") else {
            continue;
        };
        let file = cbor["file"].as_str().expect("file");
        let bytes = read_testdata(&format!("codec-fixtures/fixtures/{name}/{file}"));
        assert_eq!(cbor["bytes"].as_u64(), Some(bytes.len() as u64), "{name}: size");
        let want: Vec<String> = cbor["links"]
            .as_array()
            .expect("links")
            .iter()
            .map(|l| l.as_str().expect("link string").to_owned())
            .collect();
        let got: Vec<String> =
            scan(&bytes).unwrap_or_else(|e| panic!("{name}: {e}")).iter().map(|c| c.to_string()).collect();
        assert_eq!(got, want, "{name}");

        // Every fixture is strict DAG-CBOR, so the strict decoder agrees in encoding order.
        let value: Ipld = serde_ipld_dagcbor::from_slice(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut strict = Vec::new();
        ipld_links(&value, &mut strict);
        assert_eq!(scan(&bytes).expect("scanned above"), strict, "{name}: strict decode");

        // CBOR is self-delimiting: no strict prefix of an item is an item.
        for cut in 0..bytes.len() {
            assert!(
                matches!(scan(&bytes[..cut]), Err(LinkError::Truncated { .. })),
                "{name}: prefix of {cut} bytes gave {:?}",
                scan(&bytes[..cut])
            );
        }
        fixtures += 1;
        links += want.len();
    }
    assert_eq!(fixtures, 128, "the manifest lists 128 DAG-CBOR fixtures");
    assert!(links > 50, "fixtures with links were checked ({links} links)");
}

#[test]
fn negative_fixtures_and_mutations_never_panic() {
    let root = testdata_dir().join("codec-fixtures/negative-fixtures");
    let mut inputs: Vec<(String, Vec<u8>)> = Vec::new();
    for codec in ["dag-cbor", "dag-json", "dag-pb"] {
        for dir in ["decode", "encode"] {
            let Ok(files) = std::fs::read_dir(root.join(codec).join(dir)) else {
                continue;
            };
            for file in files {
                let path = file.expect("dir entry").path();
                let list: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&path).expect("read")).expect("JSON");
                for case in list.as_array().expect("list") {
                    let name = format!("{}: {}", path.display(), case["name"]);
                    if let Some(hex) = case["hex"].as_str() {
                        inputs.push((name, decode_hex(hex)));
                    } else if let Some(json) = case.get("dag-json") {
                        inputs.push((name, serde_json::to_vec(json).expect("JSON")));
                    }
                }
            }
        }
    }
    assert!(inputs.len() >= 80, "negative fixtures found: {}", inputs.len());
    for (name, bytes) in &inputs {
        let _ = scan(bytes);
        if name.contains("dag-cbor") {
            // Duplicate map keys are rejected by strict decoders; the scanner accepts them.
            assert_eq!(scan(bytes), Ok(vec![]), "{name}");
        }
    }

    // Every single-byte change of every positive fixture either scans or fails cleanly.
    let mut changed = 0;
    for dir in std::fs::read_dir(testdata_dir().join("codec-fixtures/fixtures")).expect("fixtures") {
        let dir = dir.expect("entry").path();
        for file in std::fs::read_dir(&dir).expect("fixture dir") {
            let path = file.expect("entry").path();
            if path.extension().and_then(|e| e.to_str()) != Some("dag-cbor") {
                continue;
            }
            let bytes = std::fs::read(&path).expect("read");
            for at in 0..bytes.len().min(64) {
                for flip in [0x01u8, 0x20, 0x80, 0xff] {
                    let mut m = bytes.clone();
                    m[at] ^= flip;
                    let _ = scan(&m);
                    changed += 1;
                }
            }
        }
    }
    assert!(changed > 1000);
}

fn decode_hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex")).collect()
}

#[test]
fn torture_cids_yield_every_link() {
    let bytes = read_testdata("python-libipld/torture_cids.dagcbor");
    let links = scan(&bytes).expect("scan");
    assert_eq!(links.len(), 100_000);
    let value: Ipld = serde_ipld_dagcbor::from_slice(&bytes).expect("strict decode");
    let mut strict = Vec::new();
    ipld_links(&value, &mut strict);
    assert_eq!(links, strict);
}

#[test]
fn nested_lists_3000_deep_scan_on_a_small_stack() {
    let bytes = read_testdata("python-libipld/semi_torture_nested_lists.dagcbor");
    // 64 KiB is far too small for a recursive descent 3000 levels deep.
    let scanned = std::thread::Builder::new()
        .stack_size(64 * 1024)
        .spawn(move || scan(&bytes))
        .expect("spawn")
        .join()
        .expect("no stack overflow");
    assert_eq!(scanned, Ok(vec![]));
}

/// Per-block links from `carinfo.py`'s lenient decoder, sorted, keyed by block CID.
fn python_links(car: &str) -> BTreeMap<Cid, Vec<Cid>> {
    const SCRIPT: &str = r#"
import json, sys
sys.path.insert(0, sys.argv[1])
import carinfo
data = carinfo.load(sys.argv[2])
n, pos = carinfo.read_uvarint(data, 0)
pos += n
out = []
while pos < len(data):
    n, pos = carinfo.read_uvarint(data, pos)
    end = pos + n
    cid, p = carinfo.parse_cid(data, pos)
    if cid.codec == 0x71:
        value, _ = carinfo.cbor_decode(data[p:end])
        links = []
        carinfo.walk_links(value, links)
        out.append([cid.raw.hex(), [l.raw.hex() for l in links]])
    pos = end
json.dump(out, sys.stdout)
"#;
    let dir = testdata_dir();
    let output = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(&dir)
        .arg(testdata_path(car))
        .output()
        .expect("python3 runs (it is the test data's inspector)");
    assert!(output.status.success(), "carinfo oracle failed: {}", String::from_utf8_lossy(&output.stderr));
    let rows: Vec<(String, Vec<String>)> = serde_json::from_slice(&output.stdout).expect("oracle JSON");
    let cid = |h: &str| Cid::try_from(decode_hex(h).as_slice()).expect("oracle CID");
    rows.into_iter().map(|(c, links)| (cid(&c), sorted(links.iter().map(|l| cid(l)).collect()))).collect()
}

/// Checks every DAG-CBOR block of a CAR against both oracles; returns the CIDs of blocks the
/// strict decoder rejected.
fn check_car(car: &str) -> Vec<Cid> {
    let parsed = read_car(car);
    let lenient = python_links(car);
    let mut rejected = Vec::new();
    let mut checked = 0;
    for (cid, bytes) in &parsed.blocks {
        if cid.codec() != DAG_CBOR {
            continue;
        }
        let links = scan(bytes).unwrap_or_else(|e| panic!("{car} {cid}: {e}"));
        assert_eq!(Some(&sorted(links.clone())), lenient.get(cid), "{car} {cid}: carinfo.py");
        match serde_ipld_dagcbor::from_slice::<Ipld>(bytes) {
            Ok(value) => {
                let mut strict = Vec::new();
                ipld_links(&value, &mut strict);
                assert_eq!(sorted(links), sorted(strict), "{car} {cid}: serde_ipld_dagcbor");
            }
            Err(_) => rejected.push(*cid),
        }
        checked += 1;
    }
    assert_eq!(checked, lenient.len(), "{car}: every DAG-CBOR block checked");
    rejected
}

/// Where a byte-pattern scanner would report links: `d8 2a` + a byte-string head + `00` +
/// a CID, anywhere in the block.
fn pattern_links(bytes: &[u8]) -> Vec<Cid> {
    let mut out = Vec::new();
    for i in 0..bytes.len().saturating_sub(4) {
        if bytes[i] == 0xd8 && bytes[i + 1] == 42 && bytes[i + 2] == 0x58 {
            let len = usize::from(bytes[i + 3]);
            if let Some(payload) = bytes.get(i + 4..i + 4 + len) {
                if payload[0] == 0 {
                    if let Ok(c) = Cid::try_from(&payload[1..]) {
                        out.push(c);
                    }
                }
            }
        }
    }
    out
}

#[test]
fn deal_label_with_invalid_utf8_gives_no_phantom_link() {
    let car = "test-vectors/ext-0004-fil_1_storagemarket-PublishStorageDeals-SysErrOutOfGas-1.car";
    let rejected = check_car(car);
    // The deal proposals' labels are text strings with invalid UTF-8, which strict decoding
    // refuses; the scanner must still agree with the lenient decoder there.
    assert!(!rejected.is_empty(), "the strict decoder rejects the invalid-UTF-8 block");
    let blocks = read_car(car).blocks;
    let mut phantoms = 0;
    for cid in &rejected {
        let bytes = &blocks.iter().find(|(c, _)| c == cid).expect("block").1;
        let links = scan(bytes).expect("scan");
        let pattern = pattern_links(bytes);
        // Every real link matches the pattern, and the labels hold more matches than that.
        assert!(links.iter().all(|l| pattern.contains(l)));
        let phantom: Vec<_> = pattern.iter().filter(|p| !links.contains(p)).collect();
        assert!(!phantom.is_empty(), "{cid}: the label's CID-like bytes are present");
        phantoms += phantom.len();
    }
    assert!(phantoms > 0);
}

#[test]
fn real_chain_blocks_match_independent_decoders() {
    for car in [
        "lotus/genesis-mainnet.car",
        "kubo-lotus-testnet/lotus_testnet_export_128.car",
        "forest/export40.car",
        "test-vectors/ext-0001-fil_1_storageminer-SubmitWindowedPoSt-Ok-7.car",
    ] {
        check_car(car);
    }
}

/// Random IPLD values, drawn from the suite's seeded generator.
struct Gen(Rng);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0.next_u64()
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, max: u64) -> Vec<u8> {
        let n = self.below(max + 1);
        (0..n).map(|_| self.next() as u8).collect()
    }

    fn cid(&mut self) -> Cid {
        match self.below(4) {
            0 => {
                let d: Vec<u8> = (0..32).map(|_| self.next() as u8).collect();
                Cid::new_v0(Multihash::wrap(0x12, &d).expect("fits")).expect("v0")
            }
            1 => {
                let d = self.bytes(64);
                Cid::new_v1(self.below(0x20000), Multihash::wrap(0x00, &d).expect("fits"))
            }
            _ => {
                let d: Vec<u8> = (0..32).map(|_| self.next() as u8).collect();
                let code = [0x12, 0xb220, 0x1e][self.below(3) as usize];
                let codec = [0x71, 0x55, 0x70, 0xf101][self.below(4) as usize];
                Cid::new_v1(codec, Multihash::wrap(code, &d).expect("fits"))
            }
        }
    }

    /// A list or map of random values nested at most `depth` levels.
    fn container(&mut self, depth: u32) -> Ipld {
        match self.ipld(depth) {
            v @ (Ipld::List(_) | Ipld::Map(_)) => v,
            v => Ipld::List(vec![v, self.ipld(depth - 1)]),
        }
    }

    fn ipld(&mut self, depth: u32) -> Ipld {
        let kinds = if depth == 0 { 8 } else { 10 };
        match self.below(kinds) {
            0 => Ipld::Null,
            1 => Ipld::Bool(self.below(2) == 1),
            2 => Ipld::Integer(match self.below(3) {
                0 => i128::from(self.next()),
                1 => -1 - i128::from(self.next()),
                _ => i128::from(self.below(30)),
            }),
            3 => Ipld::Float(f64::from_bits(self.next() & !(0x7ff << 52)) * 1e10),
            4 => Ipld::String((0..self.below(40)).map(|_| char::from(b' ' + self.below(95) as u8)).collect()),
            5 => {
                // Bytes that sometimes hold the exact encoding of a tagged CID.
                let mut b = self.bytes(30);
                if self.below(2) == 0 {
                    let c = serde_ipld_dagcbor::to_vec(&Ipld::Link(self.cid())).expect("encode");
                    b.extend_from_slice(&c);
                }
                Ipld::Bytes(b)
            }
            6 | 7 => Ipld::Link(self.cid()),
            8 => Ipld::List((0..self.below(8)).map(|_| self.ipld(depth - 1)).collect()),
            _ => Ipld::Map(
                (0..self.below(8))
                    .map(|_| {
                        let k: String = (0..self.below(6)).map(|_| char::from(b'a' + self.below(26) as u8)).collect();
                        (k, self.ipld(depth - 1))
                    })
                    .collect(),
            ),
        }
    }
}

#[test]
fn random_values_give_exactly_their_links() {
    let mut rng = Gen(Rng::new(0x5eed_1234));
    let mut total = 0;
    for case in 0..3000 {
        let value = rng.container(1 + (case % 6));
        let bytes = serde_ipld_dagcbor::to_vec(&value).expect("encode");
        let mut want = Vec::new();
        ipld_links(&value, &mut want);
        assert_eq!(scan(&bytes), Ok(want.clone()), "case {case}: {value:?}");
        total += want.len();
    }
    assert!(total > 2000, "links generated: {total}");
}
