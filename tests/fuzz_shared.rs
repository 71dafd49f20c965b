//! The shared-memory fuzz targets (`fuzz/fuzz_targets/dict_slots.rs`,
//! `manager_directory.rs`) over their checked-in corpora and random bytes, so
//! `cargo test` keeps them honest without cargo-fuzz: whatever a peer scribbles
//! over a dict's slots or a manager's directory, every operation returns (an
//! error or a value) without panicking or hanging, and the structure stays
//! usable.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers read the checked-in corpus"
)]

use multiproc::__private::{fuzz_dict, fuzz_manager};
use proptest::prelude::*;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(target);
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
fn dict_corpus() {
    let healthy = fuzz_dict(&[]);
    // Zeroed words are exactly a fresh dict: same outcome as no scribbling.
    assert_eq!(fuzz_dict(&[0; 8 * 47]), healthy);
    let files = corpus("dict_slots");
    assert!(files.len() >= 5, "only {} corpus files", files.len());
    for (name, data) in files {
        let ok = fuzz_dict(&data);
        // `clear` always repairs the table: the last operation must succeed.
        assert!(ok >= 1, "{name}: nothing worked ({ok})");
        assert!(ok <= healthy + 12, "{name}: more successes than operations");
    }
}

#[test]
fn manager_corpus() {
    let healthy = fuzz_manager(&[]);
    // A fresh manager: the five get-or-creates all work.
    assert!(healthy >= 5, "healthy manager: {healthy}");
    let files = corpus("manager_directory");
    assert!(files.len() >= 5, "only {} corpus files", files.len());
    for (_, data) in files {
        // Must return; garbage entries may make some objects unusable (a name
        // whose entry has another fingerprint is a typed error, as it should).
        let _ = fuzz_manager(&data);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn dict_random_scribbles(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        prop_assert!(fuzz_dict(&data) >= 1);
    }

    #[test]
    fn manager_random_scribbles(data in proptest::collection::vec(any::<u8>(), 0..1100)) {
        let _ = fuzz_manager(&data);
    }
}
