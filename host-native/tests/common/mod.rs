//! Helpers of the command-line tests: running the built `splitstore`, reading CAR files, and
//! an independent walk of the live set written from the specification (not from the store's
//! code), used as the oracle.
#![allow(dead_code)]

use std::{
    collections::{HashMap, HashSet},
    path::{Path, PathBuf},
    process::{Command, Output},
};

use cid::Cid;
use ipld_core::ipld::Ipld;

/// The shared test data: `$SPLITSTORE_TESTDATA` or `<workspace>/../shared/testdata`.
pub fn testdata(relative: &str) -> PathBuf {
    let dir = match std::env::var_os("SPLITSTORE_TESTDATA") {
        Some(d) => PathBuf::from(d),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata"),
    };
    assert!(dir.is_dir(), "test data folder {} does not exist: set SPLITSTORE_TESTDATA", dir.display());
    let p = dir.join(relative);
    assert!(p.exists(), "test data {} does not exist", p.display());
    p
}

/// Runs `splitstore --repo DIR ARGS...`.
pub fn run(repo: &Path, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_splitstore"));
    c.arg("--repo").arg(repo).args(args).env_remove("RUST_LOG");
    c.output().expect("run splitstore")
}

/// Runs and requires success; returns stdout.
pub fn ok(repo: &Path, args: &[&str]) -> String {
    let out = run(repo, args);
    assert!(
        out.status.success(),
        "splitstore {args:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Starts `splitstore --repo DIR compact`, sends it SIGKILL after `delay`, and waits for it.
/// Returns whether it was still running when killed, and how it ended.
pub fn kill_compaction_after(repo: &Path, delay: std::time::Duration) -> (bool, std::process::ExitStatus) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_splitstore"))
        .arg("--repo")
        .arg(repo)
        .arg("compact")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn compact");
    std::thread::sleep(delay);
    let running = child.try_wait().expect("try_wait").is_none();
    // Child::kill sends SIGKILL on Unix.
    let _ = child.kill();
    (running, child.wait().expect("wait"))
}

/// `info --json`, parsed.
pub fn info(repo: &Path) -> serde_json::Value {
    serde_json::from_str(&ok(repo, &["info", "--json", "--count"])).expect("info json")
}

fn varint(b: &[u8], pos: &mut usize) -> u64 {
    let mut v = 0u64;
    let mut shift = 0;
    loop {
        let byte = b[*pos];
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return v;
        }
        shift += 7;
    }
}

/// A CAR file's roots and blocks, keyed by multihash. Reads CARv1, and CARv2 by its payload.
pub struct Car {
    pub roots: Vec<Cid>,
    pub blocks: HashMap<Vec<u8>, (Cid, Vec<u8>)>,
    pub sections: usize,
}

/// A small CAR reader of its own (not the store's decoder).
pub fn read_car(path: &Path) -> Car {
    let all = std::fs::read(path).expect("read car");
    let mut b: &[u8] = &all;
    if b.len() > 11 && b[..11] == [0x0a, 0xa1, 0x67, b'v', b'e', b'r', b's', b'i', b'o', b'n', 0x02] {
        let off = u64::from_le_bytes(b[27..35].try_into().expect("8 bytes")) as usize;
        let size = u64::from_le_bytes(b[35..43].try_into().expect("8 bytes")) as usize;
        b = &b[off..off + size];
    }
    let mut pos = 0;
    let hlen = varint(b, &mut pos) as usize;
    let header: Ipld = serde_ipld_dagcbor::from_slice(&b[pos..pos + hlen]).expect("car header");
    pos += hlen;
    let roots = match header {
        Ipld::Map(m) => match m.get("roots") {
            Some(Ipld::List(l)) => l
                .iter()
                .filter_map(|r| match r {
                    Ipld::Link(c) => Some(*c),
                    _ => None,
                })
                .collect(),
            _ => Vec::new(),
        },
        _ => panic!("car header is not a map"),
    };
    let mut blocks = HashMap::new();
    let mut sections = 0;
    while pos < b.len() {
        let len = varint(b, &mut pos) as usize;
        let section = &b[pos..pos + len];
        pos += len;
        let mut cursor = std::io::Cursor::new(section);
        let cid = Cid::read_bytes(&mut cursor).expect("section cid");
        let data = section[cursor.position() as usize..].to_vec();
        sections += 1;
        blocks.insert(cid.hash().to_bytes(), (cid, data));
    }
    Car { roots, blocks, sections }
}

/// A CBOR item, decoded without the checks real Filecoin data fails (UTF-8, map key order).
#[derive(Debug)]
pub enum V {
    Int(i128),
    Bytes(Vec<u8>),
    Text,
    List(Vec<V>),
    Map(Vec<(V, V)>),
    Link(Cid),
    Simple,
}

fn head(b: &[u8], pos: &mut usize) -> (u8, u64) {
    let ib = b[*pos];
    *pos += 1;
    let (major, info) = (ib >> 5, ib & 0x1f);
    let arg = match info {
        0..=23 => u64::from(info),
        24..=27 => {
            let n = 1usize << (info - 24);
            let mut v = 0u64;
            for &x in &b[*pos..*pos + n] {
                v = (v << 8) | u64::from(x);
            }
            *pos += n;
            v
        }
        _ => panic!("indefinite or reserved CBOR at byte {}", *pos - 1),
    };
    (major, arg)
}

/// Decodes one CBOR item at `pos`.
pub fn cbor(b: &[u8], pos: &mut usize) -> V {
    let (major, arg) = head(b, pos);
    match major {
        0 => V::Int(i128::from(arg)),
        1 => V::Int(-1 - i128::from(arg)),
        2 | 3 => {
            let bytes = b[*pos..*pos + arg as usize].to_vec();
            *pos += arg as usize;
            if major == 2 {
                V::Bytes(bytes)
            } else {
                V::Text
            }
        }
        4 => V::List((0..arg).map(|_| cbor(b, pos)).collect()),
        5 => V::Map((0..arg).map(|_| (cbor(b, pos), cbor(b, pos))).collect()),
        6 => {
            let inner = cbor(b, pos);
            match (arg, inner) {
                (42, V::Bytes(cid)) => V::Link(Cid::try_from(&cid[1..]).expect("tag-42 CID")),
                (_, other) => other,
            }
        }
        _ => V::Simple,
    }
}

/// The CIDs a DAG-CBOR block links to.
pub fn links(cid: &Cid, bytes: &[u8]) -> Vec<Cid> {
    fn collect(v: &V, out: &mut Vec<Cid>) {
        match v {
            V::Link(c) => out.push(*c),
            V::List(l) => l.iter().for_each(|x| collect(x, out)),
            V::Map(m) => m.iter().for_each(|(k, x)| {
                collect(k, out);
                collect(x, out)
            }),
            _ => {}
        }
    }
    if cid.codec() != 0x71 {
        return Vec::new();
    }
    let mut out = Vec::new();
    collect(&cbor(bytes, &mut 0), &mut out);
    out
}

/// Header fields the live set depends on.
pub struct Header {
    pub parents: Vec<Cid>,
    pub height: i64,
    pub state: Cid,
    pub receipts: Cid,
    pub messages: Cid,
}

pub fn header(bytes: &[u8]) -> Header {
    let V::List(f) = cbor(bytes, &mut 0) else { panic!("header is not a list") };
    // 13 fields (2020) or 16 (today): Parents, Height, ParentStateRoot, receipts, Messages.
    let (p, h) = match f.len() {
        13 => (3, 5),
        16 => (5, 7),
        n => panic!("header of {n} fields"),
    };
    let link = |i: usize| match &f[i] {
        V::Link(c) => *c,
        other => panic!("field {i} is not a link: {other:?}"),
    };
    let parents = match &f[p] {
        V::List(l) => l.iter().map(|x| if let V::Link(c) = x { *c } else { panic!("parent") }).collect(),
        _ => panic!("parents"),
    };
    let height = match &f[h] {
        V::Int(i) => *i as i64,
        _ => panic!("height"),
    };
    Header { parents, height, state: link(h + 1), receipts: link(h + 2), messages: link(h + 3) }
}

/// The multihash key of a tipset-key object: BLAKE2b-256 of the CBOR byte string holding the
/// concatenated CIDs.
pub fn tipset_key(tipset: &[Cid]) -> Vec<u8> {
    let inner: Vec<u8> = tipset.iter().flat_map(|c| c.to_bytes()).collect();
    let mut cbor = Vec::new();
    let n = inner.len() as u64;
    if n < 24 {
        cbor.push(0x40 | n as u8);
    } else if n < 256 {
        cbor.extend_from_slice(&[0x58, n as u8]);
    } else {
        cbor.push(0x59);
        cbor.extend_from_slice(&(n as u16).to_be_bytes());
    }
    cbor.extend_from_slice(&inner);
    let digest = blake2b_simd::Params::new().hash_length(32).hash(&cbor);
    let mut key = vec![0xa0, 0xe4, 0x02, 0x20];
    key.extend_from_slice(digest.as_bytes());
    key
}

fn unitary(c: &Cid) -> bool {
    c.hash().code() == 0 || matches!(c.codec(), 0xf101 | 0xf102)
}

/// The live set and, for `messages` mode, the old message and receipt DAGs.
pub struct Live {
    pub live: HashSet<Vec<u8>>,
    /// Every block of the old message and receipt DAGs, live ones (shared with newer epochs)
    /// included: messages mode copies them to cold whole.
    pub old_messages: HashSet<Vec<u8>>,
}

/// Walks from `head` over `blocks` following the retention rules of the specification: every
/// header to genesis, tipset-key objects of the head and of every header's parents, the whole
/// state DAG of headers at or above `boundary` and of genesis, message and receipt DAGs of
/// headers at or above `include_messages`. Links to blocks absent from `blocks` are skipped.
pub fn live_set(blocks: &HashMap<Vec<u8>, (Cid, Vec<u8>)>, head: &[Cid], boundary: i64, include_messages: i64) -> Live {
    let mut live = HashSet::new();
    let mut old = HashSet::new();
    let dag = |roots: Vec<Cid>, set: &mut HashSet<Vec<u8>>| {
        let mut stack = roots;
        while let Some(c) = stack.pop() {
            if unitary(&c) {
                continue;
            }
            let k = c.hash().to_bytes();
            let Some((_, bytes)) = blocks.get(&k) else { continue };
            if set.insert(k) {
                stack.extend(links(&c, bytes));
            }
        }
    };
    let mut tipset_keys = vec![tipset_key(head)];
    let mut generation: Vec<Cid> = head.to_vec();
    let mut seen = HashSet::new();
    while !generation.is_empty() {
        let mut next = Vec::new();
        for c in generation {
            let k = c.hash().to_bytes();
            if !seen.insert(k.clone()) {
                continue;
            }
            let Some((_, bytes)) = blocks.get(&k) else { continue };
            live.insert(k);
            let h = header(bytes);
            if h.height >= boundary || h.height == 0 {
                dag(vec![h.state], &mut live);
            }
            if h.height >= include_messages && h.height > 0 {
                dag(vec![h.messages, h.receipts], &mut live);
            } else if h.height > 0 {
                dag(vec![h.messages, h.receipts], &mut old);
            }
            if h.height > 0 {
                tipset_keys.push(tipset_key(&h.parents));
                next.extend(h.parents);
            }
        }
        generation = next;
    }
    for k in tipset_keys {
        if blocks.contains_key(&k) {
            live.insert(k);
        }
    }
    Live { live, old_messages: old }
}

/// Keys of a CAR's blocks.
pub fn keys(car: &Car) -> HashSet<Vec<u8>> {
    car.blocks.keys().cloned().collect()
}

/// Parses CIDs from `info --json`'s head.
pub fn head_of(info: &serde_json::Value) -> Vec<Cid> {
    info["head"]
        .as_array()
        .expect("a head")
        .iter()
        .map(|c| Cid::try_from(c.as_str().expect("cid string")).expect("cid"))
        .collect()
}
