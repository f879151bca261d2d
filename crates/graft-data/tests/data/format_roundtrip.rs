//! Format round trips (proptest) and checksum detection.

use graft_data::{write_f32_dataset, write_u8_dataset, DataError, Dataset, ElementType, Metadata};
use proptest::prelude::*;

use super::common::TempDir;

#[derive(Debug, Clone)]
struct Case {
    shape: Vec<usize>,
    samples: Vec<u8>,
    labels: Vec<u32>,
    meta: Metadata,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(1usize..=4, 1..=4),
        0usize..=12,
        prop::collection::vec("[a-zA-Z0-9 éü]{0,8}", 1..=5),
        ".{0,20}",
        prop::option::of(0.0f32..1.0),
        prop::option::of(0.0f32..1.0),
    )
        .prop_flat_map(|(shape, count, names, provenance, mean, std)| {
            let len: usize = shape.iter().product::<usize>() * count;
            let classes = names.len() as u32;
            (
                prop::collection::vec(any::<u8>(), len),
                prop::collection::vec(0..classes, count),
            )
                .prop_map(move |(samples, labels)| Case {
                    shape: shape.clone(),
                    samples,
                    labels,
                    meta: Metadata {
                        class_names: names.clone(),
                        provenance: provenance.clone(),
                        mean,
                        std,
                    },
                })
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn write_open_roundtrip(c in case(), flip in any::<prop::sample::Index>()) {
        let dir = TempDir::new("prop");
        let path = dir.join("ds.graftds");
        write_u8_dataset(&path, &c.shape, &c.samples, &c.labels, &c.meta).unwrap();
        let ds = Dataset::open(&path).unwrap();
        prop_assert_eq!(ds.element_type(), ElementType::U8);
        prop_assert_eq!(ds.sample_shape(), &c.shape[..]);
        prop_assert_eq!(ds.len(), c.labels.len());
        prop_assert_eq!(ds.is_empty(), c.labels.is_empty());
        prop_assert_eq!(ds.labels(), &c.labels[..]);
        prop_assert_eq!(ds.metadata(), &c.meta);
        let n = ds.sample_len();
        let mut all = Vec::new();
        for i in 0..ds.len() {
            all.extend_from_slice(ds.sample(i).unwrap());
            prop_assert_eq!(ds.label(i).unwrap(), c.labels[i]);
        }
        prop_assert_eq!(&all, &c.samples);
        prop_assert_eq!(n * ds.len(), c.samples.len());
        // Sample section is 64-byte aligned in memory as well as in the file.
        prop_assert_eq!(ds.header().samples.offset % 64, 0);
        ds.verify_checksum().unwrap();
        drop(ds);

        // Flip one payload byte (samples, labels or metadata) directly in the file.
        let mut bytes = std::fs::read(&path).unwrap();
        let ds = Dataset::open(&path).unwrap();
        let h = ds.header().clone();
        drop(ds);
        let mut payload: Vec<u64> = Vec::new();
        for s in [h.samples, h.labels, h.metadata] {
            payload.extend(s.offset..s.offset + s.len);
        }
        let at = payload[flip.index(payload.len())] as usize;
        bytes[at] ^= 0x01;
        let flipped = dir.join("flipped.graftds");
        std::fs::write(&flipped, &bytes).unwrap();
        // Opening may legitimately fail (a label or the metadata became
        // invalid); if it opens, the checksum must catch the flip.
        if let Ok(ds) = Dataset::open(&flipped) {
            let err = ds.verify_checksum().unwrap_err();
            let is_mismatch = matches!(err, DataError::ChecksumMismatch { .. });
            prop_assert!(is_mismatch, "unexpected error {}", err);
        }
    }
}

#[test]
fn flipping_a_sample_byte_fails_checksum() {
    let dir = TempDir::new("flip");
    let path = dir.join("ds");
    let meta = Metadata {
        class_names: vec!["a".into()],
        ..Metadata::default()
    };
    write_u8_dataset(&path, &[2, 2], &[1, 2, 3, 4, 5, 6, 7, 8], &[0, 0], &meta).unwrap();
    let off = Dataset::open(&path).unwrap().header().samples.offset as usize;
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[off + 5] ^= 0x80;
    std::fs::write(&path, &bytes).unwrap();
    let ds = Dataset::open(&path).unwrap();
    assert_eq!(ds.sample(1).unwrap(), &[5, 6 ^ 0x80, 7, 8]);
    let err = ds.verify_checksum().unwrap_err();
    assert!(matches!(err, DataError::ChecksumMismatch { .. }));
    assert!(err.to_string().contains(&path.display().to_string()));
}

#[test]
fn f32_dataset_is_accepted() {
    let dir = TempDir::new("f32");
    let path = dir.join("f.graftds");
    let meta = Metadata {
        class_names: vec!["x".into(), "y".into()],
        ..Metadata::default()
    };
    let values = [0.5f32, -1.25, 3.0, 1e-3, 7.5, -0.0];
    write_f32_dataset(&path, &[3], &values, &[1, 0], &meta).unwrap();
    let ds = Dataset::open(&path).unwrap();
    ds.verify_checksum().unwrap();
    assert_eq!(ds.element_type(), ElementType::F32);
    assert_eq!(ds.sample_len(), 3);
    assert!(matches!(
        ds.sample(0),
        Err(DataError::ElementTypeMismatch { .. })
    ));
    let raw: Vec<u8> = values[3..].iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(ds.sample_bytes(1).unwrap(), &raw[..]);
    let norm = graft_data::Normalize {
        mean: 0.5,
        std: 2.0,
    };
    let got = ds.view().to_f32(norm).unwrap();
    let want: Vec<f32> = values.iter().map(|v| (v - 0.5) / 2.0).collect();
    assert_eq!(got, want);
}

#[test]
fn writer_rejects_inconsistent_input() {
    let dir = TempDir::new("wbad");
    let path = dir.join("w");
    let meta = Metadata {
        class_names: vec!["a".into()],
        ..Metadata::default()
    };
    let bad = |shape: &[usize], samples: &[u8], labels: &[u32]| {
        write_u8_dataset(&path, shape, samples, labels, &meta).unwrap_err()
    };
    assert!(matches!(bad(&[], &[], &[]), DataError::InvalidInput { .. }));
    assert!(matches!(
        bad(&[1, 1, 1, 1, 1], &[0], &[0]),
        DataError::InvalidInput { .. }
    ));
    assert!(matches!(
        bad(&[0], &[], &[0]),
        DataError::InvalidInput { .. }
    ));
    assert!(matches!(
        bad(&[2], &[0], &[0]),
        DataError::InvalidInput { .. }
    ));
    assert!(matches!(
        bad(&[usize::MAX, 2], &[0], &[0]),
        DataError::InvalidInput { .. }
    ));
    assert!(matches!(
        bad(&[1], &[0], &[1]),
        DataError::LabelOutOfRange { .. }
    ));
    assert!(!path.exists());
    // No temporary file is left behind by successful writes either.
    write_u8_dataset(&path, &[1], &[9], &[0], &meta).unwrap();
    let names: Vec<_> = std::fs::read_dir(dir.join(""))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("w")]);
}
