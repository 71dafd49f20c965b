//! The Value/Array journal fuzz target (`fuzz/fuzz_targets/value_journal.rs`)
//! over its checked-in corpus (`tests/corpus/value_journal`, kept under tests/
//! so the packaged crate, which leaves out fuzz/, still runs it) and random
//! bytes: whatever a peer scribbles over an array's seqs, data, journal and
//! bitmap, with or without the crash repair, every read and update returns,
//! reads agree with a locked snapshot, and updates read back exactly.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers read the checked-in corpus"
)]

use multiproc::__private::fuzz_value;
use proptest::prelude::*;

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/value_journal");
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

#[test]
fn healthy_arrays_do_everything() {
    // Mode 0 (twelve-byte elements) and 1 (u64s, with atomics); no scribble.
    let (bytes, ints) = (fuzz_value(&[0]), fuzz_value(&[1]));
    // scribble + 5 reads + snapshot + inner read + 3 sets + with_lock + clone.
    assert_eq!(bytes, 1 + 5 + 1 + 1 + 3 + 1 + 2 + 1);
    // scribble + 67 reads + ... + 2 atomics.
    assert_eq!(ints, 1 + 67 + 1 + 1 + 3 + 1 + 2 + 1);
    // Zeroed words are exactly a fresh array, repaired or not.
    for mode in [0u8, 1, 2, 3] {
        let mut zeros = vec![0u8; 8 * 400];
        zeros[0] = mode;
        assert_eq!(fuzz_value(&zeros), if mode & 1 == 1 { ints } else { bytes });
    }
}

#[test]
fn corpus_replays() {
    let files = corpus();
    assert!(files.len() >= 8, "only {} corpus files", files.len());
    let full = [fuzz_value(&[0]), fuzz_value(&[1])];
    for (name, data) in files {
        let ok = fuzz_value(&data);
        let mode = usize::from(data.first().copied().unwrap_or(0) & 1);
        // The locked operations always work (nothing here can make the lock
        // unusable), so at least the sets and the with_lock succeed.
        assert!(ok >= 4, "{name}: only {ok} operations worked");
        assert!(ok <= full[mode], "{name}: more successes than operations");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_scribbles(data in proptest::collection::vec(any::<u8>(), 0..1400)) {
        prop_assert!(fuzz_value(&data) >= 4);
    }

    /// Mostly-valid states: small seqs (some odd), a journal word that is one of
    /// the meaningful values, a few bitmap bits.
    #[test]
    fn plausible_journals(
        mode in 0u8..4,
        journal in prop_oneof![Just(0u64), Just(u64::MAX), 0u64..70],
        words in proptest::collection::vec(0u64..4, 0..200),
    ) {
        let mut data = vec![mode];
        data.extend_from_slice(&journal.to_le_bytes());
        data.extend_from_slice(&0u64.to_le_bytes());
        for w in words {
            data.extend_from_slice(&w.to_le_bytes());
        }
        prop_assert!(fuzz_value(&data) >= 4);
    }
}
