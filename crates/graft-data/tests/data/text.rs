//! Text data sets: round trip, validation of damaged files, importers, and views that pick
//! the same records as image views with the same labels.

use graft_data::text::{import_class_files, import_text_csv, TextCsvOptions};
use graft_data::{write_text_dataset, DataError, Metadata, Part, SplitRule, TextDataset};

use super::common::{labelled_dataset, write, TempDir};

fn meta(classes: usize) -> Metadata {
    Metadata {
        class_names: (0..classes).map(|c| format!("c{c}")).collect(),
        provenance: "test".into(),
        ..Metadata::default()
    }
}

#[test]
fn round_trip_keeps_texts_labels_and_checksum() {
    let dir = TempDir::new("text-roundtrip");
    let path = dir.join("t.grafttx");
    let texts = ["héllo wörld", "", "line one\nline two", "日本語"];
    write_text_dataset(&path, &texts, &[1, 0, 1, 2], &meta(3)).unwrap();
    let ds = TextDataset::open(&path).unwrap();
    assert_eq!(ds.len(), 4);
    for (i, t) in texts.iter().enumerate() {
        assert_eq!(ds.text(i).unwrap(), *t);
    }
    assert_eq!(ds.labels(), &[1, 0, 1, 2]);
    assert_eq!(ds.class_ranks(), &[0, 0, 1, 0]);
    assert_eq!(ds.class_names(), &["c0", "c1", "c2"]);
    ds.verify_checksum().unwrap();
    assert!(matches!(ds.text(4), Err(DataError::IndexOutOfRange { .. })));
    // The text section starts right after the 96-byte header and the 5 offsets.
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(&bytes[..8], b"GRAFTTX\0");
    assert_eq!(&bytes[96 + 40..96 + 40 + 6], "héllo".as_bytes());
}

#[test]
fn damaged_files_are_rejected_not_read_out_of_bounds() {
    let dir = TempDir::new("text-damaged");
    let path = dir.join("t.grafttx");
    write_text_dataset(&path, &["abc", "de"], &[0, 1], &meta(2)).unwrap();
    let good = std::fs::read(&path).unwrap();
    let bad = dir.join("bad.grafttx");
    // Every truncation fails to open.
    for len in [0, 50, 95, 96, 120, good.len() - 1] {
        write(&bad, &good[..len]);
        assert!(TextDataset::open(&bad).is_err(), "truncated to {len}");
    }
    // A decreasing offset (record 1 ends before it starts).
    let mut b = good.clone();
    b[96 + 8..96 + 16].copy_from_slice(&9u64.to_le_bytes());
    write(&bad, &b);
    assert!(matches!(
        TextDataset::open(&bad),
        Err(DataError::Corrupt { .. })
    ));
    // A label beyond the class names.
    let mut b = good.clone();
    let labels_at = u64::from_le_bytes(b[56..64].try_into().unwrap()) as usize;
    b[labels_at..labels_at + 4].copy_from_slice(&7u32.to_le_bytes());
    write(&bad, &b);
    assert!(matches!(
        TextDataset::open(&bad),
        Err(DataError::LabelOutOfRange { label: 7, .. })
    ));
    // A flipped text byte opens, but fails the checksum; invalid UTF-8 fails on read.
    let mut b = good.clone();
    b[96 + 24] = 0xff;
    write(&bad, &b);
    let ds = TextDataset::open(&bad).unwrap();
    assert!(matches!(
        ds.verify_checksum(),
        Err(DataError::ChecksumMismatch { .. })
    ));
    assert!(ds.text(0).is_err());
    assert_eq!(ds.text(1).unwrap(), "de");
    // An image data set is not a text data set.
    let img = labelled_dataset(&dir, &[0, 1], 2);
    assert!(matches!(
        TextDataset::open(img.path()),
        Err(DataError::NotADataset { .. })
    ));
}

#[test]
fn views_pick_the_same_records_as_image_views() {
    let dir = TempDir::new("text-views");
    // Interleaved labels over 3 classes, 40 records.
    let labels: Vec<u32> = (0..40u32).map(|i| (i * 7 + i / 5) % 3).collect();
    let texts: Vec<String> = (0..40).map(|i| format!("record {i}")).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let path = dir.join("t.grafttx");
    write_text_dataset(&path, &refs, &labels, &meta(3)).unwrap();
    let text = TextDataset::open(&path).unwrap();
    let image = labelled_dataset(&dir, &labels, 3);
    let (tv, iv) = (text.view(), image.view());
    let rule = SplitRule::ANIMAL_MNIST;
    for part in [Part::Train, Part::Test] {
        let (t, i) = (tv.split(rule, part).unwrap(), iv.split(rule, part).unwrap());
        assert_eq!(t.indices(), i.indices());
        // The test part holds a single record of some class: draw one there.
        let k = if part == Part::Train { 3 } else { 1 };
        for seed in 0..4 {
            let (tk, ik) = (t.k_shot(k, seed).unwrap(), i.k_shot(k, seed).unwrap());
            assert_eq!(tk.indices(), ik.indices());
            assert_eq!(tk.labels(), ik.labels());
        }
    }
    let (ts, is) = (
        tv.select_classes(&[2, 0]).unwrap(),
        iv.select_classes(&[2, 0]).unwrap(),
    );
    assert_eq!(ts.indices(), is.indices());
    assert_eq!(ts.labels(), is.labels());
    assert_eq!(ts.class_names(), &["c2", "c0"]);
    assert_eq!(ts.text(0).unwrap(), texts[ts.indices()[0] as usize]);
    assert!(matches!(
        tv.k_shot(20, 0),
        Err(DataError::NotEnoughSamples { .. })
    ));
}

#[test]
fn class_files_and_csv_import() {
    let dir = TempDir::new("text-import");
    let (a, b) = (dir.join("food"), dir.join("law"));
    write(&a, b"Eat.\n%\nDrink\nmore.\n%\n");
    write(&b, b"%\nSue.\n");
    let out = dir.join("f.grafttx");
    let counts = import_class_files(&[a, b], &out, "hand-made").unwrap();
    assert_eq!(counts, vec![2, 1]);
    let ds = TextDataset::open(&out).unwrap();
    assert_eq!(ds.class_names(), &["food", "law"]);
    assert_eq!(ds.text(1).unwrap(), "Drink\nmore.");
    assert_eq!(ds.labels(), &[0, 0, 1]);

    let csv = dir.join("x.csv");
    write(
        &csv,
        b"text,label\n\"hi, there\",10\nbye,2\n\"multi\nline\",10\n",
    );
    let out = dir.join("c.grafttx");
    let opts = TextCsvOptions {
        label_column: 1,
        text_column: 0,
        header: true,
    };
    let names = import_text_csv(&csv, &out, &opts).unwrap();
    assert_eq!(names, vec!["2", "10"]);
    let ds = TextDataset::open(&out).unwrap();
    assert_eq!(ds.labels(), &[1, 0, 1]);
    assert_eq!(ds.text(2).unwrap(), "multi\nline");
    write(&csv, b"text,label\nonly-one-field\n");
    assert!(matches!(
        import_text_csv(&csv, &out, &opts),
        Err(DataError::Csv { line: 2, .. })
    ));
}
