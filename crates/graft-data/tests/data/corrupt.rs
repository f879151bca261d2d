//! Corrupt and hostile files: typed errors, never a panic.

use graft_data::{write_u8_dataset, DataError, Dataset, Metadata};

use super::common::TempDir;

fn valid_file(dir: &TempDir) -> Vec<u8> {
    let path = dir.join("valid");
    let meta = Metadata {
        class_names: vec!["a".into(), "b".into()],
        provenance: "p".into(),
        mean: Some(0.5),
        std: Some(0.25),
    };
    let samples: Vec<u8> = (0..5 * 12).map(|i| i as u8).collect();
    write_u8_dataset(&path, &[3, 4], &samples, &[0, 1, 1, 0, 1], &meta).unwrap();
    std::fs::read(&path).unwrap()
}

fn open_bytes(dir: &TempDir, name: &str, bytes: &[u8]) -> Result<Dataset, DataError> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    Dataset::open(&path)
}

fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}

fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

#[test]
fn truncated_at_many_points() {
    let dir = TempDir::new("trunc");
    let full = valid_file(&dir);
    assert!(open_bytes(&dir, "full", &full).is_ok());
    for cut in [
        0,
        1,
        7,
        8,
        50,
        95,
        96,
        100,
        128,
        150,
        full.len() - 20,
        full.len() - 1,
    ] {
        let err = open_bytes(&dir, &format!("cut{cut}"), &full[..cut]).unwrap_err();
        assert!(
            matches!(
                err,
                DataError::Truncated { .. } | DataError::SectionOutOfBounds { .. }
            ),
            "cut {cut}: {err}"
        );
        assert!(err.to_string().contains(&format!("cut{cut}")), "{err}");
    }
}

#[test]
fn wrong_magic_and_version() {
    let dir = TempDir::new("magic");
    let mut b = valid_file(&dir);
    b[0] = b'X';
    assert!(matches!(
        open_bytes(&dir, "m", &b),
        Err(DataError::NotADataset { .. })
    ));
    let mut b = valid_file(&dir);
    put_u32(&mut b, 8, 2);
    match open_bytes(&dir, "v", &b) {
        Err(DataError::UnsupportedVersion {
            found: 2,
            supported: 1,
            ..
        }) => {}
        other => panic!("unexpected {other:?}"),
    }
    let mut b = valid_file(&dir);
    // Code 1 (f16) is readable, but a u8 file relabelled f16 declares half
    // the samples bytes it has.
    b[12] = 1;
    assert!(matches!(
        open_bytes(&dir, "e1", &b),
        Err(DataError::Corrupt { .. })
    ));
    b[12] = 3;
    assert!(matches!(
        open_bytes(&dir, "e3", &b),
        Err(DataError::UnsupportedElementType { code: 3, .. })
    ));
    b[12] = 9;
    assert!(matches!(
        open_bytes(&dir, "e9", &b),
        Err(DataError::UnsupportedElementType { code: 9, .. })
    ));
}

#[test]
fn bad_shape_fields() {
    let dir = TempDir::new("shape");
    let base = valid_file(&dir);
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut b = base.clone();
    b[13] = 0;
    cases.push(("ndim0", b));
    let mut b = base.clone();
    b[13] = 5;
    cases.push(("ndim5", b));
    let mut b = base.clone();
    put_u32(&mut b, 16, 0);
    cases.push(("dim0", b));
    let mut b = base.clone();
    put_u32(&mut b, 24, 3);
    cases.push(("unused-dim", b));
    let mut b = base.clone();
    b[14] = 1;
    cases.push(("reserved", b));
    for (name, b) in cases {
        assert!(
            matches!(open_bytes(&dir, name, &b), Err(DataError::Corrupt { .. })),
            "{name}"
        );
    }
}

#[test]
fn shape_product_and_size_overflow() {
    let dir = TempDir::new("overflow");
    let mut b = valid_file(&dir);
    b[13] = 4;
    for i in 0..4 {
        put_u32(&mut b, 16 + 4 * i, u32::MAX);
    }
    assert!(matches!(
        open_bytes(&dir, "prod", &b),
        Err(DataError::SizeOverflow { .. })
    ));
    // Product fits but count * sample_bytes does not.
    let mut b = valid_file(&dir);
    b[13] = 2;
    put_u32(&mut b, 16, u32::MAX);
    put_u32(&mut b, 20, u32::MAX);
    put_u64(&mut b, 32, u64::from(u32::MAX));
    assert!(matches!(
        open_bytes(&dir, "count", &b),
        Err(DataError::SizeOverflow { .. })
    ));
    // Counts beyond the u32 limit are rejected.
    let mut b = valid_file(&dir);
    put_u64(&mut b, 32, u64::MAX);
    assert!(open_bytes(&dir, "huge", &b).is_err());
}

#[test]
fn section_fields() {
    let dir = TempDir::new("sections");
    let base = valid_file(&dir);
    let len = base.len() as u64;
    // Offset past the end, and offset + len overflowing.
    for (name, at, v) in [
        ("samples-past", 40, len + 64),
        ("labels-past", 56, len),
        ("meta-past", 72, len + 1),
        ("meta-wrap", 72, u64::MAX - 2),
    ] {
        let mut b = base.clone();
        put_u64(&mut b, at, v);
        assert!(
            matches!(
                open_bytes(&dir, name, &b),
                Err(DataError::SectionOutOfBounds { .. })
            ),
            "{name}"
        );
    }
    let corrupt = |name: &str, edit: &dyn Fn(&mut Vec<u8>)| {
        let mut b = base.clone();
        edit(&mut b);
        let r = open_bytes(&dir, name, &b);
        assert!(matches!(r, Err(DataError::Corrupt { .. })), "{name}: {r:?}");
    };
    corrupt("in-header", &|b| put_u64(b, 72, 8));
    corrupt("misaligned", &|b| {
        // Move samples to offset 96 (inside the padding): not 64-aligned.
        put_u64(b, 40, 96);
    });
    corrupt("overlap", &|b| {
        let labels_off = u64::from_le_bytes(b[56..64].try_into().unwrap());
        put_u64(b, 72, labels_off);
    });
    corrupt("labels-len", &|b| {
        let l = u64::from_le_bytes(b[64..72].try_into().unwrap());
        put_u64(b, 64, l - 4);
    });
    corrupt("samples-len", &|b| {
        let l = u64::from_le_bytes(b[48..56].try_into().unwrap());
        put_u64(b, 48, l - 1);
    });
    corrupt("meta-garbage", &|b| {
        let off = u64::from_le_bytes(b[72..80].try_into().unwrap()) as usize;
        b[off..off + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    });
}

#[test]
fn label_out_of_range() {
    let dir = TempDir::new("label");
    let mut b = valid_file(&dir);
    let off = u64::from_le_bytes(b[56..64].try_into().unwrap()) as usize;
    put_u32(&mut b, off + 8, 2); // label of sample 2 = 2, only 2 classes
    match open_bytes(&dir, "lab", &b) {
        Err(DataError::LabelOutOfRange {
            index: 2,
            label: 2,
            num_classes: 2,
            ..
        }) => {}
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn random_garbage_never_panics() {
    let dir = TempDir::new("garbage");
    let base = valid_file(&dir);
    let mut rng = graft_data::SplitMix64::new(99);
    for round in 0..300 {
        let mut b = base.clone();
        // Corrupt a few header bytes (where structure lives).
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(96) as usize;
            b[at] = rng.next_u64() as u8;
        }
        let cut = if round % 3 == 0 {
            rng.below(b.len() as u64) as usize
        } else {
            b.len()
        };
        if let Ok(ds) = open_bytes(&dir, "g", &b[..cut]) {
            let _ = ds.verify_checksum();
            for i in 0..ds.len() + 1 {
                let _ = ds.sample(i);
                let _ = ds.sample_bytes(i);
            }
        }
    }
}

#[test]
fn missing_file_is_io_error_naming_path() {
    let dir = TempDir::new("missing");
    let p = dir.join("nope.graftds");
    let err = Dataset::open(&p).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }));
    assert!(err.to_string().contains("nope.graftds"));
}
