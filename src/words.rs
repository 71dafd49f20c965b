//! `Pod` values stored as 64-bit atomic words behind a sequence counter (a
//! seqlock), shared by [`crate::SharedDict`], [`crate::Value`] and
//! [`crate::Array`].
//!
//! A value of `n` bytes takes `ceil(n / 8)` words, little endian, the last one
//! zero-padded, so it needs no alignment and every access is atomic: a reader
//! racing a writer sees stale or new words (never undefined behaviour) and the
//! sequence counter tells it to retry.
//!
//! Writer: `seq` odd (Relaxed), `fence(Release)`, data stores (Relaxed), `seq`
//! even (Release). Reader: `seq` (Acquire; odd means wait), data loads
//! (Relaxed), `fence(Acquire)`, `seq` again (Relaxed), equal means consistent.
//! A reader whose loads saw any word stored after the writer's Release fence
//! also sees, after its own Acquire fence, the odd `seq` stored before it.

use crate::identity::SharedType;

use crate::loom::atomic::{AtomicU64, Ordering, fence};
use crate::loom::hint::spin_wait;

/// Word `i` of `bytes` as a little-endian, zero-padded `u64`.
#[inline]
pub(crate) fn word_of(bytes: &[u8], i: usize) -> u64 {
    let start = i * 8;
    let mut w = [0u8; 8];
    if start < bytes.len() {
        let end = (start + 8).min(bytes.len());
        w[..end - start].copy_from_slice(&bytes[start..end]);
    }
    u64::from_le_bytes(w)
}

/// Number of words a `T` takes.
#[inline]
pub(crate) const fn words_for(size: usize) -> usize {
    size.div_ceil(8)
}

/// Reads a `T` from the first `words_for(size_of::<T>())` of `words`.
#[inline]
pub(crate) fn read_pod<T: SharedType>(words: &[AtomicU64]) -> T {
    let mut out: T = crate::identity::zeroed();
    for (w, chunk) in words
        .iter()
        .zip(crate::identity::bytes_of_mut(&mut out).chunks_mut(8))
    {
        let b = w.load(Ordering::Relaxed).to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
    out
}

/// Writes `bytes` into the first `words_for(bytes.len())` of `words`.
#[inline]
pub(crate) fn write_bytes(words: &[AtomicU64], bytes: &[u8]) {
    for (i, w) in words.iter().take(words_for(bytes.len())).enumerate() {
        w.store(word_of(bytes, i), Ordering::Relaxed);
    }
}

/// Whether `bytes` equals the first words of `words`.
#[inline]
pub(crate) fn eq_bytes(words: &[AtomicU64], bytes: &[u8]) -> bool {
    words
        .iter()
        .take(words_for(bytes.len()))
        .enumerate()
        .all(|(i, w)| w.load(Ordering::Relaxed) == word_of(bytes, i))
}

/// An even `seq` to read under, waiting out a write in progress; `None` if it
/// stays odd past the spin window (the writer is slow or dead).
#[inline]
pub(crate) fn read_begin(seq: &AtomicU64) -> Option<u64> {
    // SYNC(seqlock): Acquire pairs with the writer's final Release store.
    let s = seq.load(Ordering::Acquire);
    if s & 1 == 0 {
        return Some(s);
    }
    let mut seen = s;
    spin_wait(|| {
        seen = seq.load(Ordering::Acquire);
        seen & 1 == 0
    })
    .then_some(seen)
}

/// Whether nothing was written since [`read_begin`] returned `s`.
#[inline]
pub(crate) fn read_validate(seq: &AtomicU64, s: u64) -> bool {
    // SYNC(seqlock): pairs with the writer's Release fence after its odd store.
    fence(Ordering::Acquire);
    seq.load(Ordering::Relaxed) == s
}

/// Runs `write` (Relaxed data stores) as one seqlock write. The caller is the
/// only writer. A dead writer may have left `seq` odd: it stays odd during the
/// write and ends even.
#[inline]
pub(crate) fn seq_write(seq: &AtomicU64, write: impl FnOnce()) {
    let odd = seq.load(Ordering::Relaxed) | 1;
    seq.store(odd, Ordering::Relaxed);
    // SYNC(seqlock): orders the odd store before the data stores, for readers
    // that pair with an Acquire fence.
    fence(Ordering::Release);
    write();
    // SYNC(seqlock): publishes the data with the even `seq`.
    seq.store(odd.wrapping_add(1), Ordering::Release);
}

/// Recovery: makes an odd `seq` left by a dead writer even.
#[inline]
pub(crate) fn seq_settle(seq: &AtomicU64) {
    let s = seq.load(Ordering::Relaxed);
    if s & 1 == 1 {
        seq.store(s.wrapping_add(1), Ordering::Release);
    }
}
