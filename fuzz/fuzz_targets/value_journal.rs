//! Fuzzes a `Value`/`Array` whose shared words (journal word, seqs, data,
//! journal entries, changed-bitmap) a peer scribbled over, with or without the
//! crash repair: every read and update must return, agree with each other, and
//! never panic, hang or touch memory out of bounds.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = multiproc::__private::fuzz_value(data);
});
