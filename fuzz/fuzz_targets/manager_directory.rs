//! Fuzzes a manager whose directory (entry count, bump pointer, entries) a peer
//! scribbled over: listing, repair and get-or-create must return typed errors,
//! never panic, hang or touch memory out of bounds.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = multiproc::__private::fuzz_manager(data);
});
