//! Filecoin header decoding on real chain exports of both layouts.
//!
//! Oracle: the test data's Python inspector (`carinfo.py`) finds headers with its own decoder;
//! the chain structure (parents, heights, timestamps, CAR roots) must then be consistent.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use cid::Cid;
use splitstore_conformance::testdata::{read_car, testdata_dir, testdata_path};
use splitstore_core::header::{decode, tipset_key, BlockHeader};
use splitstore_core::key::DAG_CBOR;

/// Headers as `carinfo.py` sees them: CID -> (field count, parents, height, state root,
/// receipts, messages, timestamp).
type Seen = (usize, Vec<Cid>, i64, Cid, Cid, Cid, u64);

fn carinfo_headers(car: &str) -> BTreeMap<Cid, Seen> {
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
        hf = carinfo.header_fields(value)
        if hf:
            layout, parents, height, sroot, rcpt, msgs = hf
            ts = value[10 if layout == 13 else 12]
            out.append([cid.raw.hex(), layout, [x.raw.hex() for x in parents], height,
                        sroot.raw.hex(), rcpt.raw.hex(), msgs.raw.hex(), ts])
    pos = end
json.dump(out, sys.stdout)
"#;
    let output = Command::new("python3")
        .arg("-c")
        .arg(SCRIPT)
        .arg(testdata_dir())
        .arg(testdata_path(car))
        .output()
        .expect("python3 runs (it is the test data's inspector)");
    assert!(output.status.success(), "carinfo oracle failed: {}", String::from_utf8_lossy(&output.stderr));
    type Row = (String, usize, Vec<String>, i64, String, String, String, u64);
    let rows: Vec<Row> = serde_json::from_slice(&output.stdout).expect("oracle JSON");
    let cid = |h: &str| {
        let bytes: Vec<u8> =
            (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).expect("hex")).collect();
        Cid::try_from(bytes.as_slice()).expect("oracle CID")
    };
    rows.into_iter()
        .map(|(c, layout, parents, height, s, r, m, ts)| {
            (cid(&c), (layout, parents.iter().map(|p| cid(p)).collect(), height, cid(&s), cid(&r), cid(&m), ts))
        })
        .collect()
}

/// Decodes every DAG-CBOR block that is a header; returns the headers, the CAR roots and the
/// layout (field count) of each header.
fn decode_all(car: &str) -> (BTreeMap<Cid, BlockHeader>, Vec<Cid>, BTreeMap<Cid, usize>) {
    let parsed = read_car(car);
    let mut headers = BTreeMap::new();
    let mut layouts = BTreeMap::new();
    for (cid, bytes) in &parsed.blocks {
        if cid.codec() != DAG_CBOR {
            continue;
        }
        if let Ok(h) = decode(bytes) {
            headers.insert(*cid, h);
            layouts.insert(*cid, if bytes[0] == 0x8d { 13 } else { 16 });
        }
    }
    (headers, parsed.roots, layouts)
}

/// Walks the chain from the CAR's roots through parents. Checks every structural fact a
/// chain implies and returns the tipsets visited, head first.
fn walk_chain(car: &str, headers: &BTreeMap<Cid, BlockHeader>, roots: &[Cid]) -> Vec<(i64, Vec<Cid>)> {
    let get = |c: &Cid| headers.get(c).unwrap_or_else(|| panic!("{car}: header {c} is missing or undecodable"));
    let all_heights: BTreeSet<i64> = headers.values().map(|h| h.height).collect();

    // The roots are the head tipset: one height (the highest) and one parent set.
    let head: Vec<&BlockHeader> = roots.iter().map(get).collect();
    assert!(!head.is_empty(), "{car}: the CAR has roots");
    let max = *all_heights.iter().next_back().expect("headers");
    assert!(head.iter().all(|h| h.height == max && h.parents == head[0].parents), "{car}: roots form the head");

    let mut tipsets = vec![(max, roots.to_vec())];
    let mut current = roots.to_vec();
    loop {
        let blocks: Vec<&BlockHeader> = current.iter().map(get).collect();
        let height = blocks[0].height;
        let parents = blocks[0].parents.clone();
        // A tipset's blocks share height and parents.
        assert!(blocks.iter().all(|b| b.height == height && b.parents == parents), "{car}: tipset at {height}");
        if height == 0 {
            break;
        }
        let up: Vec<&BlockHeader> = parents.iter().map(get).collect();
        let parent_height = up[0].height;
        assert!(parent_height < height, "{car}: parent height {parent_height} below {height}");
        // Epochs skipped between a tipset and its parent are null rounds: no header there.
        assert_eq!(
            all_heights.range(parent_height + 1..height).count(),
            0,
            "{car}: a header sits in the null rounds between {parent_height} and {height}"
        );
        assert!(up.iter().all(|p| p.timestamp < blocks[0].timestamp), "{car}: timestamps grow at {height}");
        tipsets.push((parent_height, parents.clone()));
        current = parents;
    }
    tipsets
}

fn check_export(car: &str, fields: usize, headers_in_readme: usize, max_height: i64) {
    let (headers, roots, layouts) = decode_all(car);
    let oracle = carinfo_headers(car);

    // Exactly the headers the independent decoder finds, with the same fields.
    assert_eq!(headers.len(), headers_in_readme, "{car}: header count");
    assert_eq!(headers.keys().collect::<Vec<_>>(), oracle.keys().collect::<Vec<_>>(), "{car}");
    for (cid, h) in &headers {
        let (layout, parents, height, s, r, m, ts) = &oracle[cid];
        assert_eq!(layouts[cid], *layout, "{car} {cid}: layout");
        assert_eq!(*layout, fields, "{car} {cid}: layout");
        let want = BlockHeader {
            parents: parents.clone(),
            height: *height,
            parent_state_root: *s,
            parent_message_receipts: *r,
            messages: *m,
            timestamp: *ts,
        };
        assert_eq!(h, &want, "{car} {cid}");
    }

    let tipsets = walk_chain(car, &headers, &roots);
    assert_eq!(tipsets.first().map(|t| t.0), Some(max_height), "{car}: head height");
    assert_eq!(tipsets.last().map(|t| t.0), Some(0), "{car}: the chain reaches genesis");
    // Every header in the export lies on the chain from the roots.
    let on_chain: BTreeSet<Cid> = tipsets.iter().flat_map(|t| t.1.iter().copied()).collect();
    assert_eq!(on_chain, headers.keys().copied().collect(), "{car}: every header is on the chain");
    // Tipset keys are distinct per tipset and depend on the block order.
    let keys: BTreeSet<Cid> = tipsets.iter().map(|t| tipset_key(&t.1).0).collect();
    assert_eq!(keys.len(), tipsets.len(), "{car}: distinct tipset keys");
}

#[test]
fn old_13_field_headers_of_the_2020_testnet() {
    // README: 333 headers, h = 0..256, three roots (the head tipset's blocks).
    check_export("kubo-lotus-testnet/lotus_testnet_export_256_multiroot.car", 13, 333, 256);
    let (_, roots, _) = decode_all("kubo-lotus-testnet/lotus_testnet_export_256_multiroot.car");
    assert_eq!(roots.len(), 3);
}

#[test]
fn current_16_field_headers_with_null_rounds() {
    // README: 49 headers, 33 tipsets, h = 0..39 with null rounds.
    let car = "forest/export40.car";
    check_export(car, 16, 49, 39);
    let (headers, roots, _) = decode_all(car);
    let tipsets = walk_chain(car, &headers, &roots);
    assert_eq!(tipsets.len(), 33);
    assert!(tipsets.iter().any(|t| t.1.len() == 3), "a tipset of three blocks");
}

#[test]
fn old_13_field_export_of_128_epochs() {
    check_export("kubo-lotus-testnet/lotus_testnet_export_128.car", 13, 159, 128);
}
