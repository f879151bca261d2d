//! The CLI-facing functions: import dispatch, inspect, verify, split, concat.

use graft_data::{
    concat, detect_format, import, inspect, split, verify, write_u8_dataset, DataError, Dataset,
    ImportOptions, InputFormat, Metadata, Part, SplitRule,
};

use super::common::{gzip, idx1, idx3, labelled_dataset, write, TempDir};

#[test]
fn detects_and_imports_every_format() {
    let dir = TempDir::new("ops-import");
    let pixels: Vec<u8> = (0..3 * 4).map(|i| i as u8 * 20).collect();
    write(&dir.join("img"), &idx3(3, 2, 2, &pixels));
    write(&dir.join("img.gz"), &gzip(&idx3(3, 2, 2, &pixels)));
    write(&dir.join("lab"), &idx1(&[1, 0, 1]));
    write(&dir.join("a.csv"), b"label,p0,p1\n1,5,6\n0,7,8\n");
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    let dict = "{'descr': '|u1', 'fortran_order': False, 'shape': (3, 4), }";
    npy.extend_from_slice(&(dict.len() as u16 + 1).to_le_bytes());
    npy.extend_from_slice(dict.as_bytes());
    npy.push(b'\n');
    npy.extend_from_slice(&pixels);
    write(&dir.join("x.npy"), &npy);
    let mut lab_npy = b"\x93NUMPY\x01\x00".to_vec();
    let dict = "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }";
    lab_npy.extend_from_slice(&(dict.len() as u16 + 1).to_le_bytes());
    lab_npy.extend_from_slice(dict.as_bytes());
    lab_npy.push(b'\n');
    lab_npy.extend_from_slice(&[1, 0, 1]);
    write(&dir.join("y.npy"), &lab_npy);
    std::fs::create_dir_all(dir.join("folder").join("only")).unwrap();
    image::GrayImage::from_pixel(2, 2, image::Luma([9u8]))
        .save(dir.join("folder").join("only").join("a.png"))
        .unwrap();
    write(&dir.join("mystery.bin"), b"hello world");
    write(&dir.join("other.gz"), &gzip(b"not idx"));

    assert_eq!(detect_format(dir.join("img")).unwrap(), InputFormat::Idx);
    assert_eq!(
        detect_format(dir.join("img.gz")).unwrap(),
        InputFormat::IdxGzip
    );
    assert_eq!(detect_format(dir.join("x.npy")).unwrap(), InputFormat::Npy);
    assert_eq!(detect_format(dir.join("a.csv")).unwrap(), InputFormat::Csv);
    assert_eq!(
        detect_format(dir.join("folder")).unwrap(),
        InputFormat::ImageFolder
    );
    assert!(matches!(
        detect_format(dir.join("mystery.bin")),
        Err(DataError::UnknownFormat { .. })
    ));
    assert!(matches!(
        detect_format(dir.join("other.gz")),
        Err(DataError::UnknownFormat { .. })
    ));
    assert!(matches!(
        detect_format(dir.join("nope")),
        Err(DataError::Io { .. })
    ));

    let with_labels = |p: &str| ImportOptions {
        labels: Some(dir.join(p)),
        ..ImportOptions::default()
    };
    for (input, opts) in [
        ("img", with_labels("lab")),
        ("img.gz", with_labels("lab")),
        ("x.npy", with_labels("y.npy")),
    ] {
        let out = dir.join(&format!("{input}.graftds"));
        let ds = import(dir.join(input), &out, &opts).unwrap();
        assert_eq!(ds.labels(), &[1, 0, 1], "{input}");
        assert_eq!(ds.sample_len(), 4);
        let all: Vec<u8> = (0..3)
            .flat_map(|i| ds.sample(i).unwrap().to_vec())
            .collect();
        assert_eq!(all, pixels, "{input}");
        assert!(ds.metadata().provenance.contains(input));
        assert_eq!(detect_format(&out).unwrap(), InputFormat::GraftDs);
        assert!(import(&out, dir.join("again"), &opts).is_err());
    }
    let err = import(dir.join("img"), dir.join("o"), &ImportOptions::default()).unwrap_err();
    assert!(err.to_string().contains("labels file"), "{err}");
    let ds = import(
        dir.join("a.csv"),
        dir.join("csv.graftds"),
        &ImportOptions::default(),
    )
    .unwrap();
    assert_eq!(
        (ds.labels(), ds.sample(1).unwrap()),
        (&[1, 0][..], &[7u8, 8][..])
    );
    let mut opts = ImportOptions::default();
    opts.images.size = (2, 2);
    opts.provenance = Some("mine".into());
    let ds = import(dir.join("folder"), dir.join("f.graftds"), &opts).unwrap();
    assert_eq!(
        (ds.class_names(), ds.sample(0).unwrap()),
        (&["only".to_string()][..], &[9u8; 4][..])
    );
    assert_eq!(ds.metadata().provenance, "mine");
}

#[test]
fn inspect_and_verify() {
    let dir = TempDir::new("ops-verify");
    let ds = labelled_dataset(&dir, &[0, 1, 1, 2], 3);
    let path = ds.path().to_path_buf();
    drop(ds);
    let s = inspect(&path).unwrap();
    assert_eq!(
        (s.count, s.shape.as_slice(), s.checksum_verified),
        (4, &[3usize][..], None)
    );
    assert_eq!(
        s.classes,
        vec![("c0".into(), 1), ("c1".into(), 2), ("c2".into(), 1)]
    );
    assert_eq!(s.file_len, std::fs::metadata(&path).unwrap().len());
    let v = verify(&path).unwrap();
    assert_eq!(v.checksum_verified, Some(true));
    let text = v.to_string();
    assert!(
        text.contains("verified") && text.contains("c1: 2"),
        "{text}"
    );
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[129] ^= 1;
    let bad = dir.join("bad.graftds");
    std::fs::write(&bad, &bytes).unwrap();
    assert!(inspect(&bad).is_ok(), "inspect does not hash");
    assert!(matches!(
        verify(&bad),
        Err(DataError::ChecksumMismatch { .. })
    ));
}

#[test]
fn split_writes_the_same_samples_as_view_split() {
    let dir = TempDir::new("ops-split");
    let labels: Vec<u32> = (0..53).map(|i| (i * 7 % 3) as u32).collect();
    let ds = labelled_dataset(&dir, &labels, 3);
    let rule = SplitRule::ModuloWithinClass {
        modulus: 4,
        test_remainder: 1,
    };
    let (train, test) = split(ds.path(), rule, dir.join("tr"), dir.join("te")).unwrap();
    for (file, part) in [(&train, Part::Train), (&test, Part::Test)] {
        file.verify_checksum().unwrap();
        let view = ds.view().split(rule, part).unwrap();
        assert_eq!(file.len(), view.len());
        assert_eq!(file.labels(), view.labels());
        for i in 0..view.len() {
            assert_eq!(file.sample(i).unwrap(), view.sample(i).unwrap());
        }
        assert_eq!(file.class_names(), ds.class_names());
        let px: Vec<u8> = (0..file.len())
            .flat_map(|i| file.sample(i).unwrap().to_vec())
            .collect();
        let (m, s) = graft_data::idx::pixel_stats(&px).unwrap();
        assert_eq!(
            (file.metadata().mean, file.metadata().std),
            (Some(m), Some(s))
        );
    }
    assert_eq!(train.len() + test.len(), 53);
    let bad = SplitRule::ModuloWithinClass {
        modulus: 0,
        test_remainder: 0,
    };
    assert!(split(ds.path(), bad, dir.join("a"), dir.join("b")).is_err());
    assert!(!dir.join("a").exists());
}

#[test]
fn concat_unions_classes_by_name() {
    let dir = TempDir::new("ops-concat");
    let meta = |names: &[&str]| Metadata {
        class_names: names.iter().map(|s| s.to_string()).collect(),
        ..Metadata::default()
    };
    write_u8_dataset(
        dir.join("a"),
        &[2],
        &[1, 2, 3, 4],
        &[0, 1],
        &meta(&["cat", "dog"]),
    )
    .unwrap();
    write_u8_dataset(
        dir.join("b"),
        &[2],
        &[5, 6, 7, 8, 9, 10],
        &[0, 1, 0],
        &meta(&["dog", "bird"]),
    )
    .unwrap();
    let a = Dataset::open(dir.join("a")).unwrap();
    let b = Dataset::open(dir.join("b")).unwrap();
    let c = Dataset::concat(&[&a, &b], dir.join("c")).unwrap();
    c.verify_checksum().unwrap();
    assert_eq!(c.class_names(), &["cat", "dog", "bird"].map(String::from));
    assert_eq!(c.labels(), &[0, 1, 1, 2, 1]);
    let px: Vec<u8> = (0..5).flat_map(|i| c.sample(i).unwrap().to_vec()).collect();
    assert_eq!(px, (1..=10).collect::<Vec<u8>>());
    let (m, s) = graft_data::idx::pixel_stats(&px).unwrap();
    assert_eq!((c.metadata().mean, c.metadata().std), (Some(m), Some(s)));
    write_u8_dataset(dir.join("d"), &[1, 2], &[1, 2], &[0], &meta(&["x"])).unwrap();
    let d = Dataset::open(dir.join("d")).unwrap();
    let err = concat(&[&a, &d], dir.join("e")).unwrap_err();
    assert!(
        err.to_string()
            .contains("same element type and sample shape"),
        "{err}"
    );
    assert!(concat(&[], dir.join("e")).is_err());
}
