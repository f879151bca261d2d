//! IDX import: round trips (raw and gzip) and typed errors.

use graft_data::{import_idx, read_idx_images, read_idx_labels, DataError};

use super::common::{gzip, idx1, idx3, write, TempDir};

fn pixels(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

fn roundtrip(gz: bool) {
    let dir = TempDir::new("idx-rt");
    let (n, rows, cols) = (7u32, 3u32, 5u32);
    let px = pixels((n * rows * cols) as usize);
    let labels: Vec<u8> = vec![2, 0, 1, 2, 2, 0, 1];
    let (mut img, mut lab) = (idx3(n, rows, cols, &px), idx1(&labels));
    if gz {
        img = gzip(&img);
        lab = gzip(&lab);
        assert_eq!(&img[..2], &[0x1f, 0x8b]);
    }
    // Names deliberately say nothing about compression.
    let (ip, lp) = (dir.join("images.bin"), dir.join("labels.bin"));
    write(&ip, &img);
    write(&lp, &lab);
    let ds = import_idx(&ip, &lp, dir.join("out.graftds"), None, "test".into()).unwrap();
    ds.verify_checksum().unwrap();
    assert_eq!(ds.len(), n as usize);
    assert_eq!(ds.sample_shape(), &[3, 5]);
    assert_eq!(ds.sample_len(), 15);
    for i in 0..n as usize {
        assert_eq!(ds.sample(i).unwrap(), &px[i * 15..(i + 1) * 15]);
        assert_eq!(ds.label(i).unwrap(), u32::from(labels[i]));
    }
    assert_eq!(ds.class_names(), &["0", "1", "2"]);
    assert_eq!(ds.metadata().provenance, "test");
    // Independent mean/std: naive f64 two-pass over every pixel.
    let vals: Vec<f64> = px.iter().map(|&p| f64::from(p) / 255.0).collect();
    let mean = vals.iter().sum::<f64>() / vals.len() as f64;
    let std = (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64).sqrt();
    assert!((f64::from(ds.metadata().mean.unwrap()) - mean).abs() < 1e-6);
    assert!((f64::from(ds.metadata().std.unwrap()) - std).abs() < 1e-6);
    assert!(ds.sample(n as usize).is_err());
    assert!(ds.label(n as usize).is_err());
}

#[test]
fn import_raw_roundtrip() {
    roundtrip(false);
}

#[test]
fn import_gz_roundtrip() {
    roundtrip(true);
}

#[test]
fn explicit_class_names_must_cover_labels() {
    let dir = TempDir::new("idx-names");
    let (ip, lp) = (dir.join("i"), dir.join("l"));
    write(&ip, &idx3(2, 1, 1, &[1, 2]));
    write(&lp, &idx1(&[0, 3]));
    let names = |n: usize| Some((0..n).map(|i| format!("n{i}")).collect());
    let err = import_idx(&ip, &lp, dir.join("o"), names(3), String::new()).unwrap_err();
    assert!(matches!(err, DataError::InvalidInput { .. }), "{err}");
    assert!(err.to_string().contains(&lp.display().to_string()));
    let ds = import_idx(&ip, &lp, dir.join("o"), names(5), String::new()).unwrap();
    assert_eq!(ds.num_classes(), 5);
    assert_eq!(ds.class_names()[4], "n4");
}

#[test]
fn truncated_idx_names_file() {
    let dir = TempDir::new("idx-trunc");
    let full = idx3(4, 2, 2, &pixels(16));
    for (cut, gz) in [
        (full.len() - 1, false),
        (20, false),
        (10, false),
        (2, false),
        (0, false),
        (full.len() - 3, true),
    ] {
        let p = dir.join(&format!("img-{cut}-{gz}"));
        let bytes = if gz {
            gzip(&full[..cut])
        } else {
            full[..cut].to_vec()
        };
        write(&p, &bytes);
        let err = read_idx_images(&p).unwrap_err();
        assert!(
            matches!(err, DataError::IdxTruncated { .. }),
            "cut {cut}: {err}"
        );
        assert!(err.to_string().contains(&p.display().to_string()), "{err}");
    }
    // A truncated gzip stream is an error naming the file too (never a panic).
    let p = dir.join("broken.gz");
    let gz = gzip(&full);
    write(&p, &gz[..gz.len() / 2]);
    let err = read_idx_images(&p).unwrap_err();
    assert!(err.to_string().contains(&p.display().to_string()), "{err}");
    // Declared sizes far beyond the file: truncated, without huge allocation.
    let p = dir.join("liar");
    write(&p, &idx3(u32::MAX, u32::MAX, u32::MAX, &[1, 2, 3]));
    assert!(read_idx_images(&p).is_err());
}

#[test]
fn trailing_data_is_rejected() {
    let dir = TempDir::new("idx-trail");
    let p = dir.join("l");
    let mut bytes = idx1(&[1, 2]);
    bytes.push(9);
    write(&p, &bytes);
    let err = read_idx_labels(&p).unwrap_err();
    assert!(matches!(err, DataError::IdxTrailingData { .. }), "{err}");
}

#[test]
fn wrong_magic_names_file() {
    let dir = TempDir::new("idx-magic");
    let (ip, lp) = (dir.join("i"), dir.join("l"));
    write(&ip, &idx3(1, 1, 1, &[0]));
    write(&lp, &idx1(&[0]));
    // Swapped files: each has the other's magic.
    let err = read_idx_images(&lp).unwrap_err();
    match &err {
        DataError::IdxMagic {
            path,
            found,
            expected,
            ..
        } => {
            assert_eq!(path, &lp);
            assert_eq!((*found, *expected), (0x0801, 0x0803));
        }
        other => panic!("unexpected {other}"),
    }
    assert!(err.to_string().contains(&lp.display().to_string()));
    assert!(matches!(
        read_idx_labels(&ip),
        Err(DataError::IdxMagic { .. })
    ));
    let err = import_idx(&lp, &ip, dir.join("o"), None, String::new()).unwrap_err();
    assert!(matches!(err, DataError::IdxMagic { .. }));
    assert!(!dir.join("o").exists());
}

#[test]
fn count_mismatch_names_both_files() {
    let dir = TempDir::new("idx-count");
    let (ip, lp) = (dir.join("imgs"), dir.join("labs"));
    write(&ip, &idx3(3, 1, 2, &pixels(6)));
    write(&lp, &idx1(&[0, 1]));
    let err = import_idx(&ip, &lp, dir.join("o"), None, String::new()).unwrap_err();
    match &err {
        DataError::IdxCountMismatch { images, labels, .. } => {
            assert_eq!((*images, *labels), (3, 2))
        }
        other => panic!("unexpected {other}"),
    }
    let msg = err.to_string();
    assert!(msg.contains(&ip.display().to_string()) && msg.contains(&lp.display().to_string()));
}

#[test]
fn zero_sized_images_rejected_and_missing_file_is_io() {
    let dir = TempDir::new("idx-zero");
    let p = dir.join("z");
    write(&p, &idx3(0, 0, 5, &[]));
    assert!(matches!(
        read_idx_images(&p),
        Err(DataError::IdxInvalid { .. })
    ));
    let missing = dir.join("missing");
    let err = read_idx_images(&missing).unwrap_err();
    assert!(matches!(err, DataError::Io { .. }));
    assert!(err.to_string().contains("missing"));
}
