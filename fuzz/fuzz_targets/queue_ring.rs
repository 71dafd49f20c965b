//! Fuzzes a queue whose shared state (ring words, stored geometry, slot words,
//! owner table, payloads) a peer scribbled over: every operation must return,
//! never crash, index out of bounds or loop unboundedly.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = multiproc::__private::fuzz_ring(data);
});
