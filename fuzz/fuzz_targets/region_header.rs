//! Fuzzes the region header parser: any byte string must be accepted or rejected
//! with a typed error, never panic or read out of bounds.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = multiproc::__private::fuzz_region_header(data);
});
