//! The messages every mechanism moves, and their check on arrival.
//!
//! A message of `size` bytes carries a 64-bit word `w` (little-endian) in its
//! first 8 bytes and, when it is at least 16 bytes long, again in its last 8;
//! every byte between is `fill(w)`. So a lost or duplicated message shows in
//! the sequence of words, and a torn or corrupt copy in its bytes. Throughput
//! words are `producer << 56 | k` with `k = 1, 2, …` per producer; [`STOP`]
//! ends a worker. `mp_bench.py` beside this file builds the same bytes.

/// Message sizes the program knows (typed queues need the size at compile
/// time).
pub const KNOWN_SIZES: [usize; 3] = [8, 64, 1024];

/// The largest message.
pub const MAX: usize = 1024;

/// The word that tells a worker to finish.
pub const STOP: u64 = u64::MAX;

/// Bits of a throughput word that hold the per-producer counter.
pub const PRODUCER_SHIFT: u32 = 56;

/// The byte between the two copies of `w`.
pub fn fill(w: u64) -> u8 {
    (w as u8) ^ 0xa5
}

/// Writes the message for `w` into all of `buf` (8 bytes or at least 16).
pub fn stamp(buf: &mut [u8], w: u64) {
    let n = buf.len();
    debug_assert!(n == 8 || n >= 16, "message sizes are 8 or >= 16 bytes");
    buf[..8].copy_from_slice(&w.to_le_bytes());
    if n >= 16 {
        buf[8..n - 8].fill(fill(w));
        buf[n - 8..].copy_from_slice(&w.to_le_bytes());
    }
}

/// The first 8 bytes of `b` as a little-endian word.
pub fn word(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

/// What is wrong with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bad {
    /// Its length is not the expected size.
    Len(usize),
    /// Its bytes do not match its word (`at`: the first byte that differs).
    Content {
        /// The message's word.
        word: u64,
        /// Offset of the first wrong byte.
        at: usize,
    },
}

impl Bad {
    /// The worker failure code and the values to report as "expected" and
    /// "got" (see `plumbing::FailBlock::describe`).
    pub fn report(self, size: usize) -> (i32, u64, u64) {
        match self {
            Bad::Len(n) => (super::plumbing::code::BAD_LEN, size as u64, n as u64),
            Bad::Content { word, at } => (super::plumbing::code::BAD_CONTENT, word, at as u64),
        }
    }
}

/// Checks `msg` against its own word and the expected size; returns the word.
pub fn check(msg: &[u8], size: usize) -> Result<u64, Bad> {
    if msg.len() != size || size < 8 {
        return Err(Bad::Len(msg.len()));
    }
    let w = word(msg);
    if size >= 16 {
        let f = fill(w);
        if let Some(i) = msg[8..size - 8].iter().position(|&b| b != f) {
            return Err(Bad::Content { word: w, at: 8 + i });
        }
        if word(&msg[size - 8..]) != w {
            return Err(Bad::Content {
                word: w,
                at: size - 8,
            });
        }
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_then_check() {
        for size in KNOWN_SIZES {
            let mut b = vec![0u8; size];
            stamp(&mut b, 0x0100_0000_0000_002a);
            assert_eq!(check(&b, size), Ok(0x0100_0000_0000_002a));
            if size >= 16 {
                b[size / 2] ^= 1;
                assert_eq!(
                    check(&b, size),
                    Err(Bad::Content {
                        word: 0x0100_0000_0000_002a,
                        at: size / 2
                    })
                );
            }
            assert_eq!(check(&b[..size - 1], size), Err(Bad::Len(size - 1)));
        }
    }
}
