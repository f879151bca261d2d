//! The streaming writer produces the same bytes as the one-shot writers.

use graft_data::{
    write_f32_dataset, write_u8_dataset, DataError, DatasetWriter, ElementType, Metadata,
};

use super::common::TempDir;

#[test]
fn streaming_equals_one_shot() {
    let dir = TempDir::new("writer");
    let meta = Metadata {
        class_names: vec!["x".into(), "y".into(), "z".into()],
        provenance: "w".into(),
        mean: Some(0.25),
        std: Some(0.5),
    };
    let samples: Vec<u8> = (0..7 * 6).map(|i| (i * 13 % 256) as u8).collect();
    let labels = [0, 2, 1, 1, 0, 2, 2];
    write_u8_dataset(dir.join("a"), &[2, 3], &samples, &labels, &meta).unwrap();
    let mut w = DatasetWriter::create(dir.join("b"), ElementType::U8, &[2, 3]).unwrap();
    for (s, &l) in samples.chunks(6).zip(&labels) {
        w.push_bytes(s, l).unwrap();
    }
    w.finish(&meta).unwrap();
    assert_eq!(
        std::fs::read(dir.join("a")).unwrap(),
        std::fs::read(dir.join("b")).unwrap()
    );

    let values: Vec<f32> = (0..10).map(|i| i as f32 * 0.5 - 1.0).collect();
    write_f32_dataset(dir.join("c"), &[5], &values, &[1, 0], &meta).unwrap();
    let mut w = DatasetWriter::create(dir.join("d"), ElementType::F32, &[5]).unwrap();
    w.push_f32(&values[..5], 1).unwrap();
    w.push_f32(&values[5..], 0).unwrap();
    // mean/std of the values, computed naively.
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / 10.0;
    let var = values
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / 10.0;
    let (m, s) = w.stats().unwrap();
    assert!((f64::from(m) - mean).abs() < 1e-6 && (f64::from(s) - var.sqrt()).abs() < 1e-6);
    w.finish(&meta).unwrap();
    assert_eq!(
        std::fs::read(dir.join("c")).unwrap(),
        std::fs::read(dir.join("d")).unwrap()
    );
}

#[test]
fn bad_pushes_and_abandoned_writer_leave_nothing() {
    let dir = TempDir::new("writer-bad");
    let mut w = DatasetWriter::create(dir.join("x"), ElementType::U8, &[4]).unwrap();
    assert!(matches!(
        w.push_bytes(&[1, 2, 3], 0),
        Err(DataError::InvalidInput { .. })
    ));
    assert!(w.push_f32(&[1.0; 4], 0).is_err());
    w.push_bytes(&[1, 2, 3, 4], 5).unwrap();
    let err = w.finish(&Metadata {
        class_names: vec!["a".into()],
        ..Metadata::default()
    });
    assert!(matches!(
        err,
        Err(DataError::LabelOutOfRange { label: 5, .. })
    ));
    let w = DatasetWriter::create(dir.join("y"), ElementType::F16, &[2]).unwrap();
    drop(w);
    let left: Vec<_> = std::fs::read_dir(dir.join("")).unwrap().collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
    assert!(DatasetWriter::create(dir.join("z"), ElementType::U8, &[]).is_err());
    assert!(DatasetWriter::create(dir.join("z"), ElementType::U8, &[0, 2]).is_err());
}

/// `push_f32_rows` (one large write, checksum and statistics on two threads) writes the same
/// file as `push_f32` row by row, with the same statistics, for f32 and f16 storage.
#[test]
fn rows_in_one_call_equal_rows_one_by_one() {
    let dir = TempDir::new("writer-rows");
    let (rows, dim) = (37usize, 11usize);
    let values: Vec<f32> = (0..rows * dim)
        .map(|i| ((i * 7919) % 1000) as f32 / 37.0 - 13.0)
        .collect();
    let labels: Vec<u32> = (0..rows as u32).map(|i| i % 3).collect();
    let meta = |stats: Option<(f32, f32)>| Metadata {
        class_names: vec!["a".into(), "b".into(), "c".into()],
        provenance: "rows".into(),
        mean: stats.map(|s| s.0),
        std: stats.map(|s| s.1),
    };
    for ty in [ElementType::F32, ElementType::F16] {
        let mut one = DatasetWriter::create(dir.join("one"), ty, &[dim]).unwrap();
        for (row, &l) in values.chunks(dim).zip(&labels) {
            one.push_f32(row, l).unwrap();
        }
        let mut all = DatasetWriter::create(dir.join("all"), ty, &[dim]).unwrap();
        // Two calls: the second continues the first's checksum and statistics.
        all.push_f32_rows(&values[..5 * dim], &labels[..5]).unwrap();
        all.push_f32_rows(&values[5 * dim..], &labels[5..]).unwrap();
        assert_eq!(one.len(), all.len());
        assert_eq!(one.stats(), all.stats());
        let stats = one.stats();
        one.finish(&meta(stats)).unwrap();
        all.finish(&meta(stats)).unwrap();
        assert_eq!(
            std::fs::read(dir.join("one")).unwrap(),
            std::fs::read(dir.join("all")).unwrap(),
            "{ty:?}"
        );
    }
    let mut w = DatasetWriter::create(dir.join("bad"), ElementType::F32, &[dim]).unwrap();
    assert!(w.push_f32_rows(&values[..dim + 1], &labels[..1]).is_err());
    let mut w = DatasetWriter::create(dir.join("u8"), ElementType::U8, &[dim]).unwrap();
    assert!(w.push_f32_rows(&values[..dim], &labels[..1]).is_err());
}

/// The f32 statistics are folded in fixed blocks, so they are the same however the values
/// were pushed (row by row, in one call, in uneven calls), and they match a direct two-pass
/// computation over more values than one block.
#[test]
fn statistics_do_not_depend_on_how_rows_are_pushed() {
    let dir = TempDir::new("writer-stats");
    let (rows, dim) = (1000usize, 13usize);
    let values: Vec<f32> = (0..rows * dim)
        .map(|i| ((i * 104_729) % 9973) as f32 / 97.0 + 1000.0)
        .collect();
    let labels = vec![0u32; rows];
    let mut one = DatasetWriter::create(dir.join("one"), ElementType::F32, &[dim]).unwrap();
    for row in values.chunks(dim) {
        one.push_f32(row, 0).unwrap();
    }
    let mut all = DatasetWriter::create(dir.join("all"), ElementType::F32, &[dim]).unwrap();
    all.push_f32_rows(&values, &labels).unwrap();
    let mut uneven = DatasetWriter::create(dir.join("uneven"), ElementType::F32, &[dim]).unwrap();
    uneven
        .push_f32_rows(&values[..333 * dim], &labels[..333])
        .unwrap();
    uneven
        .push_f32_rows(&values[333 * dim..], &labels[333..])
        .unwrap();
    assert_eq!(one.stats(), all.stats());
    assert_eq!(one.stats(), uneven.stats());
    let n = values.len() as f64;
    let mean = values.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = values
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    let (m, s) = one.stats().unwrap();
    assert!(
        (f64::from(m) - mean).abs() <= 1e-6 * mean.abs(),
        "{m} vs {mean}"
    );
    assert!(
        (f64::from(s) - var.sqrt()).abs() <= 1e-5 * var.sqrt(),
        "{s} vs {}",
        var.sqrt()
    );
}
