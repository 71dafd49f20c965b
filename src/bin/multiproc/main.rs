//! `multiproc`: list, inspect and remove the crate's named regions in `/dev/shm`.
//!
//! ```text
//! multiproc ls [--json] [--prefix P]     every region, one line each
//! multiproc inspect [--json] NAME...     everything the header and table say
//! multiproc rm [--force] NAME...         remove names (only regions, unless --force)
//! multiproc gc [--yes] [--dry-run] [--prefix P]
//!                                        remove regions nobody alive uses any more
//! ```
//!
//! Everything shown is read from shared memory that others may write: numbers
//! were bounds-checked by [`multiproc::Region::inspect`], and text (kind names,
//! manager object names) is printed with control characters escaped.

// The library's region layer does not exist under `--cfg loom` (the model
// checker's build of the crate's algorithms); the tool is built empty there,
// because `cargo test --test loom` builds every binary target.
#[cfg(not(loom))]
mod app;

#[cfg(not(loom))]
fn main() -> std::process::ExitCode {
    app::main()
}

#[cfg(loom)]
fn main() {
    eprintln!("multiproc: this build is a loom model-checking build; it has no CLI");
    std::process::exit(1);
}
