//! splitstore-wasm
