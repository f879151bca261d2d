//! FNV-1a 64-bit checksum used by the data-set format.

/// FNV-1a 64 offset basis.
pub const FNV_OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
/// FNV-1a 64 prime.
pub const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Incremental FNV-1a 64 hasher: feed byte slices in order, then read
/// [`value`](Fnv1a64::value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fnv1a64 {
    hash: u64,
}

impl Default for Fnv1a64 {
    fn default() -> Self {
        Self::new()
    }
}

impl Fnv1a64 {
    /// A hasher in its initial state (the offset basis).
    pub fn new() -> Self {
        Self {
            hash: FNV_OFFSET_BASIS,
        }
    }

    /// Feeds `bytes`: for each byte, `hash = (hash ^ byte) * prime` (wrapping).
    pub fn update(&mut self, bytes: &[u8]) {
        let mut h = self.hash;
        for &b in bytes {
            h ^= u64::from(b);
            h = h.wrapping_mul(FNV_PRIME);
        }
        self.hash = h;
    }

    /// The hash of everything fed so far.
    pub fn value(&self) -> u64 {
        self.hash
    }
}

/// FNV-1a 64 of the concatenation of `parts`.
pub fn fnv1a64(parts: &[&[u8]]) -> u64 {
    let mut h = Fnv1a64::new();
    for p in parts {
        h.update(p);
    }
    h.value()
}

#[cfg(test)]
mod tests {
    use super::fnv1a64;

    #[test]
    fn published_test_vectors() {
        assert_eq!(fnv1a64(&[b""]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(&[b"a"]), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(&[b"foobar"]), 0x8594_4171_f739_67e8);
        assert_eq!(fnv1a64(&[b"foo", b"", b"bar"]), 0x8594_4171_f739_67e8);
    }
}
