//! Names of shared memory objects, checked before any syscall sees them.

use std::ffi::CString;

use crate::Error;

/// The longest accepted name in bytes, the leading `/` included. Linux allows 255
/// bytes after the slash (`NAME_MAX` of `/dev/shm`); we keep one byte in hand.
pub const MAX_NAME_LEN: usize = 255;

/// Checks a POSIX shared memory name: a leading `/`, at least one more character,
/// no other `/`, no `..`, no NUL or control characters, at most [`MAX_NAME_LEN`]
/// bytes. Returns the name as a C string for `shm_open`.
pub(crate) fn check(name: &str) -> Result<CString, Error> {
    let bad = |reason: &'static str| {
        Err(Error::InvalidName {
            name: name.to_owned(),
            reason,
        })
    };
    let Some(rest) = name.strip_prefix('/') else {
        return bad("must start with '/'");
    };
    if rest.is_empty() {
        return bad("must have at least one character after '/'");
    }
    if name.len() > MAX_NAME_LEN {
        return bad("longer than 255 bytes");
    }
    if rest.contains('/') {
        return bad("must not contain '/' after the first character");
    }
    if rest.contains("..") {
        return bad("must not contain '..'");
    }
    if rest == "." {
        return bad("must not be '.'");
    }
    if rest.chars().any(char::is_control) {
        return bad("must not contain NUL or control characters");
    }
    CString::new(name).or_else(|_| bad("must not contain NUL"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_names() {
        for ok in [
            "/a",
            "/jobs",
            "/multiproc-test.1_2",
            &format!("/{}", "x".repeat(254)),
        ] {
            assert!(check(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_bad_names_with_reason() {
        let long = format!("/{}", "x".repeat(255));
        for bad in [
            "",
            "a",
            "/",
            "//",
            "/a/b",
            "/..",
            "/a..b",
            "/.",
            "/a\0b",
            "/a\nb",
            long.as_str(),
        ] {
            match check(bad) {
                Err(Error::InvalidName { name, .. }) => assert_eq!(name, bad),
                other => panic!("{bad:?}: {other:?}"),
            }
        }
    }
}
