//! The `queue_ring` fuzz target (`fuzz/fuzz_targets/queue_ring.rs`) over its
//! checked-in corpus and random bytes, so `cargo test` keeps it honest without
//! cargo-fuzz: whatever a peer scribbles over a queue's ring words, stored
//! geometry, slot words, owner table and payloads, every operation returns (an
//! error or a value) within its bound, without panicking, and `len()` never
//! exceeds `capacity()` (the function asserts that itself).

#![allow(
    clippy::unwrap_used,
    reason = "test helpers read the checked-in corpus"
)]

use std::time::{Duration, Instant};

use multiproc::__private::fuzz_ring;
use proptest::prelude::*;

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/queue_ring");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

/// Generous per-input bound: the operations are non-blocking or zero-timeout,
/// so an input taking this long means a loop that is not bounded.
const PER_INPUT: Duration = Duration::from_secs(5);

#[test]
fn ring_corpus() {
    // No scribbling: a healthy queue does everything.
    let healthy = fuzz_ring(&[]);
    assert!(healthy >= 24, "healthy queue: {healthy}");
    let files = corpus();
    assert!(files.len() >= 10, "only {} corpus files", files.len());
    for (name, data) in files {
        let t = Instant::now();
        let _ = fuzz_ring(&data);
        assert!(t.elapsed() < PER_INPUT, "{name}: took {:?}", t.elapsed());
    }
}

/// The repro: a capacity word of 2^40 and a tail of 2^40 leave the
/// handle's geometry alone (the corpus files `capacity_2_40`, `tail_2_40`).
#[test]
fn scribbled_geometry_words_are_ignored() {
    let word = |v: u64| v.to_le_bytes();
    // tail, head, not_empty, not_full, capacity
    let mut cap = Vec::new();
    for v in [0, 0, 0, 0, 1u64 << 40] {
        cap.extend_from_slice(&word(v));
    }
    assert!(fuzz_ring(&cap) > 0);
    let mut tail = Vec::new();
    tail.extend_from_slice(&word(1 << 40));
    assert!(fuzz_ring(&tail) > 0);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn ring_random_scribbles(data in proptest::collection::vec(any::<u8>(), 0..600)) {
        let t = Instant::now();
        let _ = fuzz_ring(&data);
        prop_assert!(t.elapsed() < PER_INPUT);
    }
}
