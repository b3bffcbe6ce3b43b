//! Access to the shared real-world test data (`shared/testdata` beside the workspace).
//!
//! The data is never copied into the repository. Its folder is `$SPLITSTORE_TESTDATA` or, by
//! default, `<workspace root>/../shared/testdata`; a missing folder or file is a loud panic,
//! never a silently skipped test.

use std::path::{Path, PathBuf};

use cid::Cid;
use ipld_core::ipld::Ipld;

/// The test-data folder. Panics, naming the path, when it does not exist.
pub fn testdata_dir() -> PathBuf {
    let dir = match std::env::var_os("SPLITSTORE_TESTDATA") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("..").join("shared").join("testdata"),
    };
    assert!(
        dir.is_dir(),
        "test data folder {} does not exist: set SPLITSTORE_TESTDATA to the shared/testdata folder",
        dir.display()
    );
    dir
}

/// A file under the test-data folder. Panics, naming the path, when it does not exist.
pub fn testdata_path(relative: &str) -> PathBuf {
    let path = testdata_dir().join(relative);
    assert!(path.is_file(), "test data file {} does not exist", path.display());
    path
}

/// Reads a file under the test-data folder.
pub fn read_testdata(relative: &str) -> Vec<u8> {
    let path = testdata_path(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The roots and blocks of a CAR file, in file order.
#[derive(Clone, Debug)]
pub struct Car {
    /// Roots named in the CARv1 header.
    pub roots: Vec<Cid>,
    /// Every section's CID and bytes.
    pub blocks: Vec<(Cid, Vec<u8>)>,
}

/// The first 11 bytes of every CARv2 file.
const CARV2_PRAGMA: [u8; 11] = [0x0a, 0xa1, 0x67, b'v', b'e', b'r', b's', b'i', b'o', b'n', 0x02];

/// Reads a CARv1 or CARv2 file under the test-data folder. Panics on any malformation: the
/// test data is known to be well formed, so a failure here is a broken fixture or reader.
///
/// This reader is deliberately independent of the project's own CAR code: the header is
/// decoded with `serde_ipld_dagcbor`, sections with `Cid::read_bytes`.
pub fn read_car(relative: &str) -> Car {
    let bytes = read_testdata(relative);
    let v1 = if bytes.starts_with(&CARV2_PRAGMA) {
        // Header: 16 bytes of characteristics, then data offset and data size (LE u64).
        let field = |at: usize| {
            let raw: [u8; 8] = bytes[at..at + 8].try_into().expect("8 bytes");
            usize::try_from(u64::from_le_bytes(raw)).expect("offset fits usize")
        };
        let (offset, size) = (field(11 + 16), field(11 + 24));
        &bytes[offset..offset + size]
    } else {
        &bytes[..]
    };
    parse_car_v1(v1).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

fn parse_car_v1(bytes: &[u8]) -> Result<Car, String> {
    let mut pos = 0;
    let header_len = varint(bytes, &mut pos)?;
    let header = bytes.get(pos..pos + header_len).ok_or("truncated header")?;
    pos += header_len;
    let header: Ipld = serde_ipld_dagcbor::from_slice(header).map_err(|e| format!("header: {e}"))?;
    let roots = match header {
        Ipld::Map(m) => match m.get("roots") {
            Some(Ipld::List(roots)) => roots
                .iter()
                .map(|r| match r {
                    Ipld::Link(c) => Ok(*c),
                    other => Err(format!("root is not a link: {other:?}")),
                })
                .collect::<Result<Vec<_>, _>>()?,
            _ => Vec::new(),
        },
        other => return Err(format!("header is not a map: {other:?}")),
    };
    let mut blocks = Vec::new();
    while pos < bytes.len() {
        let len = varint(bytes, &mut pos)?;
        let mut section = bytes.get(pos..pos + len).ok_or_else(|| format!("truncated section at {pos}"))?;
        pos += len;
        let cid = Cid::read_bytes(&mut section).map_err(|e| format!("section CID: {e}"))?;
        blocks.push((cid, section.to_vec()));
    }
    Ok(Car { roots, blocks })
}

fn varint(bytes: &[u8], pos: &mut usize) -> Result<usize, String> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return usize::try_from(v).map_err(|e| e.to_string());
        }
    }
    Err("varint too long".into())
}
