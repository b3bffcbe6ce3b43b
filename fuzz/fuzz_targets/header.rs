//! Fuzz target `header`: see `splitstore_fuzz::header` for the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| splitstore_fuzz::header::check(data));
