//! CSV import against hand-written files.

use graft_data::{import_csv, CsvOptions, DataError, ElementType, LabelColumn};

use super::common::{write, TempDir};

#[test]
fn header_detected_label_by_name_u8() {
    let dir = TempDir::new("csv");
    let p = dir.join("a.csv");
    write(
        &p,
        b"\xef\xbb\xbfp0,p1,label,p2,p3\r\n1,2,0,3,4\r\n\r\n255,0,1,17,9\r\n5,6,1,7,8\n",
    );
    let opts = CsvOptions {
        label_column: LabelColumn::parse("label"),
        shape: Some(vec![2, 2]),
        ..CsvOptions::default()
    };
    let ds = import_csv(&p, dir.join("o"), &opts, None, "csv".into()).unwrap();
    ds.verify_checksum().unwrap();
    assert_eq!(ds.element_type(), ElementType::U8);
    assert_eq!(ds.sample_shape(), &[2, 2]);
    assert_eq!(ds.labels(), &[0, 1, 1]);
    assert_eq!(ds.sample(0).unwrap(), &[1, 2, 3, 4]);
    assert_eq!(ds.sample(1).unwrap(), &[255, 0, 17, 9]);
    let px = [1u8, 2, 3, 4, 255, 0, 17, 9, 5, 6, 7, 8];
    let (m, s) = graft_data::idx::pixel_stats(&px).unwrap();
    assert_eq!((ds.metadata().mean, ds.metadata().std), (Some(m), Some(s)));
}

#[test]
fn no_header_index_label_f32_and_text_labels() {
    let dir = TempDir::new("csv2");
    let p = dir.join("b.csv");
    // Label in the last column, text labels, one non-integer value -> f32.
    write(&p, b"0.5,1,dog\n2,3,cat\n4,\"5\",dog\n");
    let mut opts = CsvOptions {
        label_column: LabelColumn::parse("2"),
        ..CsvOptions::default()
    };
    // Text labels are class names only by explicit choice.
    let err = import_csv(&p, dir.join("o"), &opts, None, String::new()).unwrap_err();
    assert!(err.to_string().contains(":1: label `dog`"), "{err}");
    opts.label_names = true;
    let ds = import_csv(&p, dir.join("o"), &opts, None, String::new()).unwrap();
    assert_eq!(ds.element_type(), ElementType::F32);
    assert_eq!(ds.sample_shape(), &[2]);
    assert_eq!(ds.class_names(), &["cat".to_string(), "dog".to_string()]);
    assert_eq!(ds.labels(), &[1, 0, 1]);
    assert_eq!(ds.sample_f32(0).unwrap(), vec![0.5, 1.0]);
    assert_eq!(ds.sample_f32(2).unwrap(), vec![4.0, 5.0]);
    // Given class names fix the numbering.
    let names = Some(vec![
        "dog".to_string(),
        "cat".to_string(),
        "bird".to_string(),
    ]);
    let ds = import_csv(&p, dir.join("o2"), &opts, names, String::new()).unwrap();
    assert_eq!(ds.labels(), &[0, 1, 0]);
    // Semicolons.
    write(&dir.join("c.csv"), b"1;7;8\n0;9;10\n");
    let opts = CsvOptions {
        delimiter: b';',
        has_header: Some(false),
        ..CsvOptions::default()
    };
    let ds = import_csv(
        dir.join("c.csv"),
        dir.join("o3"),
        &opts,
        None,
        String::new(),
    )
    .unwrap();
    assert_eq!(ds.labels(), &[1, 0]);
    assert_eq!(ds.sample(1).unwrap(), &[9, 10]);
}

#[test]
fn errors_name_file_and_line() {
    let dir = TempDir::new("csv-bad");
    let cases: &[(&str, &[u8], CsvOptions, &str)] = &[
        (
            "ragged",
            b"0,1,2\n1,2\n",
            CsvOptions::default(),
            ":2: row has 2 columns",
        ),
        (
            "nan",
            b"0,1,2\n1,x,3\n",
            CsvOptions {
                has_header: Some(false),
                ..CsvOptions::default()
            },
            ":2: column 1: `x` is not a number",
        ),
        ("empty", b"\n\n", CsvOptions::default(), "no rows"),
        (
            "onlyheader",
            b"label,a,b\n",
            CsvOptions::default(),
            "no data rows",
        ),
        (
            "nocol",
            b"label,a\n1,2\n",
            CsvOptions {
                label_column: LabelColumn::Name("y".into()),
                ..CsvOptions::default()
            },
            "no column `y`",
        ),
        (
            "idx",
            b"1,2\n",
            CsvOptions {
                label_column: LabelColumn::Index(5),
                ..CsvOptions::default()
            },
            "label column 5 does not exist",
        ),
        (
            "shape",
            b"1,2,3\n",
            CsvOptions {
                shape: Some(vec![3]),
                ..CsvOptions::default()
            },
            "shape [3]",
        ),
        ("quote", b"1,\"2\n", CsvOptions::default(), "unterminated"),
        (
            "inf",
            b"1,inf\n",
            CsvOptions {
                has_header: Some(false),
                ..CsvOptions::default()
            },
            "not finite",
        ),
        (
            "single",
            b"1\n2\n",
            CsvOptions::default(),
            "at least one pixel column",
        ),
    ];
    for (name, bytes, opts, what) in cases {
        let p = dir.join(&format!("{name}.csv"));
        write(&p, bytes);
        let err = import_csv(&p, dir.join("o"), opts, None, String::new()).unwrap_err();
        assert!(matches!(err, DataError::Csv { .. }), "{name}: {err:?}");
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("{name}.csv")) && msg.contains(what),
            "{name}: {msg}"
        );
    }
    // Numeric labels beyond the given names.
    write(&dir.join("n.csv"), b"3,1\n");
    let err = import_csv(
        dir.join("n.csv"),
        dir.join("o"),
        &CsvOptions::default(),
        Some(vec!["a".into()]),
        String::new(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("label 3"), "{err}");
    assert!(!dir.join("o").exists());
}

#[test]
fn labels_are_class_indices_below_the_limit_without_empty_classes() {
    let dir = TempDir::new("csv-labels");
    let cases: &[(&str, &[u8], &str)] = &[
        // One stray non-integer no longer turns every label into text (0, 1, 10, 2, ...).
        (
            "stray",
            b"0,1\n1,2\n10,3\n2,4\n1.5,5\n",
            ":5: label `1.5` is not a class index",
        ),
        (
            "huge",
            b"0,1\n4000000000,2\n",
            ":2: label `4000000000` is not a class index",
        ),
        ("negative", b"0,1\n-1,2\n", ":2: label `-1`"),
        // A stray 255 among 0..1 would make 253 empty classes.
        (
            "gap",
            b"0,1\n1,2\n255,3\n",
            "label 255 (sample 2) makes 256 classes, 253 of them without a sample",
        ),
    ];
    for (name, bytes, what) in cases {
        let p = dir.join(&format!("{name}.csv"));
        write(&p, bytes);
        let out = dir.join(&format!("{name}.gds"));
        let err = import_csv(&p, &out, &CsvOptions::default(), None, String::new()).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("{name}.csv")) && msg.contains(what),
            "{name}: {msg}"
        );
        assert!(!out.exists());
    }
    // Empty classes are kept when the classes are given.
    let names: Vec<String> = (0..256).map(|c| c.to_string()).collect();
    let ds = import_csv(
        dir.join("gap.csv"),
        dir.join("gap.gds"),
        &CsvOptions::default(),
        Some(names),
        String::new(),
    )
    .unwrap();
    assert_eq!(ds.num_classes(), 256);
}
