//! Fuzz target `car`: see `splitstore_fuzz::car` for the properties checked.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| splitstore_fuzz::car::check(data));
