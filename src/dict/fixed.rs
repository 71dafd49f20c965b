//! Fixed-capacity string and byte keys that are [`Pod`], so they can live in a
//! [`crate::SharedDict`] or a [`crate::Queue`].

use std::fmt;

use bytemuck::{Pod, Zeroable};

/// Why a value did not fit a [`FixedStr`] or [`FixedBytes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{len} bytes do not fit in a fixed buffer of {capacity}")]
pub struct TooLong {
    /// Length of the rejected value.
    pub len: usize,
    /// The buffer's capacity.
    pub capacity: usize,
}

macro_rules! fixed {
    ($(#[$doc:meta])* $name:ident, $item:ty, $view:ty) => {
        $(#[$doc])*
        #[repr(C)]
        #[derive(Clone, Copy, PartialEq, Eq, Hash)]
        pub struct $name<const N: usize> {
            /// Length, little endian (`[u8; 2]` keeps the type free of padding).
            len: [u8; 2],
            bytes: [u8; N],
        }

        // SAFETY: repr(C) of two byte arrays: alignment 1, no padding, and every bit
        // pattern is a valid value (accessors clamp the length).
        unsafe impl<const N: usize> Zeroable for $name<N> {}
        // SAFETY: as above; `Copy + 'static` holds for byte arrays.
        unsafe impl<const N: usize> Pod for $name<N> {}

        impl<const N: usize> $name<N> {
            /// The largest length this type holds (at most 65,535).
            pub const CAPACITY: usize = if N > u16::MAX as usize { u16::MAX as usize } else { N };

            /// The empty value.
            pub const fn new() -> Self {
                $name { len: [0; 2], bytes: [0; N] }
            }

            /// Copies `value`; [`TooLong`] if it exceeds [`Self::CAPACITY`]. Unused
            /// bytes are zero, so equal contents give equal (byte-identical) keys.
            pub fn try_new(value: &$item) -> Result<Self, TooLong> {
                let b: &[u8] = value.as_ref();
                if b.len() > Self::CAPACITY {
                    return Err(TooLong { len: b.len(), capacity: Self::CAPACITY });
                }
                let mut out = Self::new();
                out.bytes[..b.len()].copy_from_slice(b);
                out.len = (b.len() as u16).to_le_bytes();
                Ok(out)
            }

            /// Length in bytes (clamped to `N` for values read from untrusted memory).
            pub fn len(&self) -> usize {
                usize::from(u16::from_le_bytes(self.len)).min(Self::CAPACITY)
            }

            /// Whether the value is empty.
            pub fn is_empty(&self) -> bool {
                self.len() == 0
            }

            /// The stored bytes.
            pub fn as_bytes(&self) -> &[u8] {
                &self.bytes[..self.len()]
            }
        }

        impl<const N: usize> Default for $name<N> {
            fn default() -> Self {
                Self::new()
            }
        }

        impl<const N: usize> TryFrom<&$item> for $name<N> {
            type Error = TooLong;
            fn try_from(value: &$item) -> Result<Self, TooLong> {
                Self::try_new(value)
            }
        }

        impl<const N: usize> fmt::Debug for $name<N> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let view: $view = self.view();
                fmt::Debug::fmt(&view, f)
            }
        }
    };
}

fixed!(
    /// A string of at most `N` bytes, stored inline: a `Pod` key or value.
    ///
    /// ```
    /// use multiproc::FixedStr;
    ///
    /// let k = FixedStr::<16>::try_new("count")?;
    /// assert_eq!(k.as_str(), "count");
    /// assert!(FixedStr::<4>::try_new("too long").is_err());
    /// # Ok::<(), multiproc::TooLong>(())
    /// ```
    FixedStr,
    str,
    &str
);

fixed!(
    /// A byte string of at most `N` bytes, stored inline: a `Pod` key or value.
    ///
    /// ```
    /// use multiproc::FixedBytes;
    ///
    /// let k = FixedBytes::<8>::try_new(&[1, 2, 3][..])?;
    /// assert_eq!(k.as_bytes(), &[1, 2, 3]);
    /// # Ok::<(), multiproc::TooLong>(())
    /// ```
    FixedBytes,
    [u8],
    &[u8]
);

impl<const N: usize> FixedStr<N> {
    /// The string. Bytes from untrusted memory that are not UTF-8 are cut at the
    /// first invalid byte rather than trusted.
    pub fn as_str(&self) -> &str {
        let b = self.as_bytes();
        match std::str::from_utf8(b) {
            Ok(s) => s,
            // `valid_up_to` is a char boundary, so this cannot fail; "" otherwise.
            Err(e) => std::str::from_utf8(&b[..e.valid_up_to()]).unwrap_or_default(),
        }
    }

    fn view(&self) -> &str {
        self.as_str()
    }
}

impl<const N: usize> FixedBytes<N> {
    fn view(&self) -> &[u8] {
        self.as_bytes()
    }
}

impl<const N: usize> fmt::Display for FixedStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> PartialEq<str> for FixedStr<N> {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl<const N: usize> PartialEq<&str> for FixedStr<N> {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_limits() {
        let s = FixedStr::<8>::try_new("héllo").expect("fits");
        assert_eq!(s.as_str(), "héllo");
        assert_eq!(s, "héllo");
        assert_eq!(
            FixedStr::<8>::try_new("123456789"),
            Err(TooLong {
                len: 9,
                capacity: 8
            })
        );
        assert!(FixedStr::<0>::try_new("").is_ok());
        assert_eq!(size_of::<FixedStr<6>>(), 8);
    }

    #[test]
    fn garbage_bytes_never_panic() {
        // A value read from a scribbled region: length beyond N, invalid UTF-8.
        let mut raw = [0xffu8; 2 + 4];
        raw[2] = b'o';
        raw[3] = b'k';
        let s: FixedStr<4> = bytemuck::pod_read_unaligned(&raw);
        assert_eq!(s.len(), 4);
        assert_eq!(s.as_str(), "ok");
        let b: FixedBytes<4> = bytemuck::pod_read_unaligned(&raw);
        assert_eq!(b.as_bytes(), &[b'o', b'k', 0xff, 0xff]);
    }
}
