//! Fuzz target `ops`: see `splitstore_fuzz::ops` for the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| splitstore_fuzz::ops::check(data));
