//! Fuzzes a dict whose shared words (journal, `len`, slots) a peer scribbled
//! over: the crash repair and every operation must return, never panic, hang or
//! touch memory out of bounds.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = multiproc::__private::fuzz_dict(data);
});
