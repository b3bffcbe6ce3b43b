//! Fuzz target `meta`: see `splitstore_fuzz::meta` for the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| splitstore_fuzz::meta::check(data));
