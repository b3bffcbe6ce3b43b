//! Fuzz target `links`: see `splitstore_fuzz::links` for the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| splitstore_fuzz::links::check(data));
