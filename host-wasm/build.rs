//! Lists the CAR fixtures of the shared test data (`$SPLITSTORE_TESTDATA`, by default
//! `../../shared/testdata` from this crate) for the browser tests, which cannot read files at
//! run time: `$OUT_DIR/car_fixtures.rs` holds `CAR_FIXTURES`, each file included by
//! `include_bytes!`. Only `tests/hostile_car.rs` includes it; the library never does. A
//! missing folder yields an empty list, which that test reports as a failure.

use std::{
    env, fs,
    path::{Path, PathBuf},
};

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, out);
        } else if p.extension().is_some_and(|x| x == "car" || x == "carv2") {
            out.push(p);
        }
    }
}

fn main() -> std::io::Result<()> {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = env::var_os("SPLITSTORE_TESTDATA").map_or_else(|| manifest.join("../../shared/testdata"), PathBuf::from);
    println!("cargo:rerun-if-env-changed=SPLITSTORE_TESTDATA");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut files = Vec::new();
    for sub in ["go-car", "js-car", "kubo-lotus-testnet"] {
        walk(&root.join(sub), &mut files);
    }
    files.sort();
    let mut src = String::from("/// The CAR fixtures: (path under the test data folder, bytes).\n");
    src.push_str("pub const CAR_FIXTURES: &[(&str, &[u8])] = &[\n");
    for f in &files {
        let rel = f.strip_prefix(&root).unwrap_or(f).display().to_string();
        let abs = fs::canonicalize(f)?.display().to_string();
        src.push_str(&format!("    ({rel:?}, include_bytes!({abs:?})),\n"));
    }
    src.push_str("];\n/// Where the fixtures were looked for.\n");
    src.push_str(&format!("pub const TESTDATA: &str = {:?};\n", root.display().to_string()));
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out.join("car_fixtures.rs"), src)
}
