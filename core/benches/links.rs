//! Link extraction throughput: the structural scanner against a full `serde_ipld_dagcbor`
//! decode to `Ipld` followed by a walk, on the DAG-CBOR blocks of real data.
//!
//! Test data comes from `$SPLITSTORE_TESTDATA` or `<workspace>/../shared/testdata`.

use std::hint::black_box;
use std::path::PathBuf;

use cid::Cid;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ipld_core::ipld::Ipld;
use splitstore_core::key::DAG_CBOR;
use splitstore_core::links::for_each_link;

fn testdata(relative: &str) -> Vec<u8> {
    let dir = std::env::var_os("SPLITSTORE_TESTDATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata"));
    let path = dir.join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("test data {}: {e}", path.display()))
}

fn varint(bytes: &[u8], pos: &mut usize) -> usize {
    let mut v = 0usize;
    let mut shift = 0;
    loop {
        let b = bytes[*pos];
        *pos += 1;
        v |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

/// The DAG-CBOR blocks of a CARv1 file.
fn dag_cbor_blocks(relative: &str) -> Vec<Vec<u8>> {
    let bytes = testdata(relative);
    let mut pos = 0;
    let header = varint(&bytes, &mut pos);
    pos += header;
    let mut out = Vec::new();
    while pos < bytes.len() {
        let len = varint(&bytes, &mut pos);
        let mut section = &bytes[pos..pos + len];
        pos += len;
        let cid = Cid::read_bytes(&mut section).expect("section CID");
        if cid.codec() == DAG_CBOR {
            out.push(section.to_vec());
        }
    }
    out
}

fn scan_count(blocks: &[Vec<u8>]) -> usize {
    let mut n = 0;
    for b in blocks {
        for_each_link(b, |c| {
            black_box(c);
            n += 1;
        })
        .expect("scan");
    }
    n
}

fn decode_count(blocks: &[Vec<u8>]) -> usize {
    let mut n = 0;
    for b in blocks {
        let value: Ipld = serde_ipld_dagcbor::from_slice(b).expect("decode");
        let mut stack = vec![&value];
        while let Some(v) = stack.pop() {
            match v {
                Ipld::Link(c) => {
                    black_box(c);
                    n += 1;
                }
                Ipld::List(items) => stack.extend(items.iter()),
                Ipld::Map(m) => stack.extend(m.values()),
                _ => {}
            }
        }
    }
    n
}

fn bench_set(c: &mut Criterion, name: &str, mut blocks: Vec<Vec<u8>>) {
    // Both paths measure the same bytes: blocks the strict decoder rejects (real data has
    // out-of-order map keys and invalid UTF-8) are left out of both.
    let before = blocks.len();
    blocks.retain(|b| serde_ipld_dagcbor::from_slice::<Ipld>(b).is_ok());
    if blocks.len() != before {
        eprintln!("{name}: {} of {before} blocks rejected by serde_ipld_dagcbor, left out", before - blocks.len());
    }
    let total: usize = blocks.iter().map(Vec::len).sum();
    // Both paths must see the same links before their speed is compared.
    assert_eq!(scan_count(&blocks), decode_count(&blocks), "{name}: link counts agree");
    let mut group = c.benchmark_group(name);
    group.throughput(Throughput::Bytes(total as u64));
    group.bench_function("structural scan", |b| b.iter(|| scan_count(black_box(&blocks))));
    group.bench_function("serde_ipld_dagcbor decode + walk", |b| b.iter(|| decode_count(black_box(&blocks))));
    group.finish();
}

fn links(c: &mut Criterion) {
    bench_set(c, "genesis-mainnet", dag_cbor_blocks("lotus/genesis-mainnet.car"));
    bench_set(c, "testnet-export-256", dag_cbor_blocks("kubo-lotus-testnet/lotus_testnet_export_256_multiroot.car"));
    bench_set(c, "torture-cids", vec![testdata("python-libipld/torture_cids.dagcbor")]);
}

criterion_group!(benches, links);
criterion_main!(benches);
