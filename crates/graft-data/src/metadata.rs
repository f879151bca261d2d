//! The data set's metadata section.

use serde::{Deserialize, Serialize};

/// Largest metadata section a reader accepts (16 MiB).
pub const MAX_METADATA_LEN: u64 = 16 << 20;

/// Descriptive data stored alongside the samples.
///
/// Encoded with bincode 1.x, fixed-width little-endian integers (see
/// `FORMAT.md` for the byte layout).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Metadata {
    /// Name of each class; label `c` is `class_names[c]`.
    pub class_names: Vec<String>,
    /// Where the data came from (free text: source files, version, licence).
    pub provenance: String,
    /// Mean of all sample values scaled to `[0, 1]` (u8 pixels divided by 255).
    pub mean: Option<f32>,
    /// Population standard deviation of the same values.
    pub std: Option<f32>,
}

fn options() -> impl bincode::Options {
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_fixint_encoding()
        .with_little_endian()
        .with_limit(MAX_METADATA_LEN)
        .reject_trailing_bytes()
}

impl Metadata {
    /// Encodes the metadata as stored in the file.
    pub fn encode(&self) -> Result<Vec<u8>, String> {
        use bincode::Options;
        options().serialize(self).map_err(|e| e.to_string())
    }

    /// Decodes a metadata section; fails (never panics) on malformed or
    /// oversized input or trailing bytes.
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        use bincode::Options;
        options().deserialize(bytes).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::Metadata;

    #[test]
    fn layout_is_fixint_little_endian() {
        let m = Metadata {
            class_names: vec!["a".into()],
            provenance: "p".into(),
            mean: Some(1.0),
            std: None,
        };
        let bytes = m.encode().unwrap();
        let mut expected = Vec::new();
        expected.extend_from_slice(&1u64.to_le_bytes());
        expected.extend_from_slice(&1u64.to_le_bytes());
        expected.push(b'a');
        expected.extend_from_slice(&1u64.to_le_bytes());
        expected.push(b'p');
        expected.push(1);
        expected.extend_from_slice(&1.0f32.to_le_bytes());
        expected.push(0);
        assert_eq!(bytes, expected);
        assert_eq!(Metadata::decode(&bytes).unwrap(), m);
    }

    #[test]
    fn rejects_garbage_without_panicking() {
        assert!(Metadata::decode(&[]).is_err());
        assert!(Metadata::decode(&[0xff; 8]).is_err());
        let mut huge = u64::MAX.to_le_bytes().to_vec();
        huge.extend_from_slice(&[0; 16]);
        assert!(Metadata::decode(&huge).is_err());
        let mut ok = Metadata::default().encode().unwrap();
        ok.push(0);
        assert!(Metadata::decode(&ok).is_err());
    }
}
