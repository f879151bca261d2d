//! NPY import against hand-written files.

use graft_data::npy::parse_npy_header;
use graft_data::{import_npy, read_npy_labels, DataError, Dataset, ElementType, NpyData};

use super::common::{write, TempDir};

/// NPY bytes as numpy writes them: header padded with spaces to a multiple
/// of 64 and terminated by a newline.
fn npy(version: u8, dict: &str, data: &[u8]) -> Vec<u8> {
    let pre = if version == 1 { 10 } else { 12 };
    let mut text = dict.to_string();
    while (pre + text.len() + 1) % 64 != 0 {
        text.push(' ');
    }
    text.push('\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.extend_from_slice(&[version, 0]);
    if version == 1 {
        out.extend_from_slice(&(text.len() as u16).to_le_bytes());
    } else {
        out.extend_from_slice(&(text.len() as u32).to_le_bytes());
    }
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(data);
    out
}

#[test]
fn header_parsing() {
    let b = npy(
        1,
        "{'descr': '|u1', 'fortran_order': False, 'shape': (3, 2, 2), }",
        &[],
    );
    let h = parse_npy_header(&b).unwrap();
    assert_eq!(
        (h.version, h.descr.as_str(), h.fortran_order),
        ((1, 0), "|u1", false)
    );
    assert_eq!(h.shape, vec![3, 2, 2]);
    assert_eq!(h.data_offset, 128); // 10 + 62-char dict + padding + newline
    let b = npy(
        2,
        "{\"shape\": (5,), \"fortran_order\": True, \"descr\": \"<i8\"}",
        &[],
    );
    let h = parse_npy_header(&b).unwrap();
    assert_eq!(
        (h.shape.as_slice(), h.fortran_order, h.version),
        (&[5usize][..], true, (2, 0))
    );
    let h = parse_npy_header(&npy(
        3,
        "{'descr': '<f4', 'fortran_order': False, 'shape': (), }",
        &[],
    ))
    .unwrap();
    assert!(h.shape.is_empty());
    // Python 2 longs.
    let h = parse_npy_header(&npy(
        1,
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2L, 3L), }",
        &[],
    ))
    .unwrap();
    assert_eq!(h.shape, vec![2, 3]);
    let bad = [
        (b"\x93NUMPX\x01\x00".to_vec(), "magic"),
        (npy(1, "{}", &[])[..9].to_vec(), "truncated"),
        (
            {
                let mut b = npy(
                    1,
                    "{'descr': '|u1', 'fortran_order': False, 'shape': (1,), }",
                    &[],
                );
                b[6] = 4;
                b
            },
            "version",
        ),
        (
            {
                let mut b = npy(
                    1,
                    "{'descr': '|u1', 'fortran_order': False, 'shape': (1,), }",
                    &[],
                );
                b[8] = 0xff;
                b
            },
            "truncated",
        ),
        (npy(1, "{'descr': '|u1', 'shape': (1,), }", &[]), "required"),
        (
            npy(
                1,
                "{'descr': '|u1', 'fortran_order': False, 'shape': (1,), 'extra': 1}",
                &[],
            ),
            "unexpected",
        ),
        (
            npy(
                1,
                "{'descr': '|u1', 'descr': '|u1', 'fortran_order': False, 'shape': (1,)}",
                &[],
            ),
            "twice",
        ),
        (
            npy(
                1,
                "{'descr': '|u1', 'fortran_order': Maybe, 'shape': (1,)}",
                &[],
            ),
            "unexpected value",
        ),
        (
            npy(
                1,
                "{'descr': '|u1', 'fortran_order': False, 'shape': (-1,)}",
                &[],
            ),
            "non-negative",
        ),
        (
            npy(
                1,
                "{'descr': '|u1', 'fortran_order': False, 'shape': (99999999999999999999999,)}",
                &[],
            ),
            "too large",
        ),
        (
            npy(
                1,
                "{'descr': 7, 'fortran_order': False, 'shape': (1,)}",
                &[],
            ),
            "unexpected value starting with `7`",
        ),
        (
            npy(
                1,
                "{'descr': '|u1', 'fortran_order': False, 'shape': (1,)} x",
                &[],
            ),
            "after",
        ),
    ];
    for (bytes, what) in bad {
        let err = parse_npy_header(&bytes).unwrap_err();
        assert!(err.contains(what), "expected `{what}` in `{err}`");
    }
}

#[test]
fn import_u8_images_with_various_label_dtypes() {
    let dir = TempDir::new("npy");
    let pixels: Vec<u8> = (0..4 * 6).map(|i| (i * 11) as u8).collect();
    write(
        &dir.join("x.npy"),
        &npy(
            1,
            "{'descr': '|u1', 'fortran_order': False, 'shape': (4, 2, 3), }",
            &pixels,
        ),
    );
    let labels = [2i64, 0, 1, 2];
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("<i8", labels.iter().flat_map(|v| v.to_le_bytes()).collect()),
        (
            "<i4",
            labels
                .iter()
                .flat_map(|&v| (v as i32).to_le_bytes())
                .collect(),
        ),
        (
            ">i4",
            labels
                .iter()
                .flat_map(|&v| (v as i32).to_be_bytes())
                .collect(),
        ),
        (
            "<u2",
            labels
                .iter()
                .flat_map(|&v| (v as u16).to_le_bytes())
                .collect(),
        ),
        ("|u1", labels.iter().map(|&v| v as u8).collect()),
        ("|i1", labels.iter().map(|&v| v as u8).collect()),
    ];
    for (dtype, data) in cases {
        let lp = dir.join(&format!("y{dtype}.npy").replace(['<', '>', '|'], "_"));
        write(
            &lp,
            &npy(
                1,
                &format!("{{'descr': '{dtype}', 'fortran_order': False, 'shape': (4,), }}"),
                &data,
            ),
        );
        assert_eq!(read_npy_labels(&lp).unwrap(), vec![2, 0, 1, 2], "{dtype}");
        let out = dir.join("out.graftds");
        let ds = import_npy(dir.join("x.npy"), &lp, &out, None, "npy test".into()).unwrap();
        ds.verify_checksum().unwrap();
        assert_eq!(ds.element_type(), ElementType::U8);
        assert_eq!(ds.sample_shape(), &[2, 3]);
        assert_eq!(ds.class_names(), &["0", "1", "2"].map(String::from));
        assert_eq!(ds.labels(), &[2, 0, 1, 2]);
        assert_eq!(ds.sample(3).unwrap(), &pixels[18..24]);
        let (mean, std) = graft_data::idx::pixel_stats(&pixels).unwrap();
        assert_eq!(
            (ds.metadata().mean, ds.metadata().std),
            (Some(mean), Some(std))
        );
    }
}

#[test]
fn import_f32_and_1d() {
    let dir = TempDir::new("npy-f32");
    let values = [0.5f32, -1.0, 2.25, 3.0, 1e-3, 7.0];
    let data: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    write(
        &dir.join("x.npy"),
        &npy(
            2,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }",
            &data,
        ),
    );
    write(
        &dir.join("y.npy"),
        &npy(
            1,
            "{'descr': '<i8', 'fortran_order': False, 'shape': (3, 1), }",
            &[1i64, 1, 0]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<_>>(),
        ),
    );
    let names = Some(vec!["neg".to_string(), "pos".to_string()]);
    let ds = import_npy(
        dir.join("x.npy"),
        dir.join("y.npy"),
        dir.join("o"),
        names,
        "f".into(),
    )
    .unwrap();
    assert_eq!(ds.element_type(), ElementType::F32);
    assert_eq!(ds.sample_f32(1).unwrap(), vec![2.25, 3.0]);
    // A NaN in float images is refused, naming the sample.
    let mut poisoned = values;
    poisoned[3] = f32::NAN;
    let data: Vec<u8> = poisoned.iter().flat_map(|v| v.to_le_bytes()).collect();
    let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }";
    write(&dir.join("nan.npy"), &npy(2, dict, &data));
    let err = import_npy(
        dir.join("nan.npy"),
        dir.join("y.npy"),
        dir.join("nan.gds"),
        None,
        String::new(),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("nan.npy") && err.contains("value NaN of sample 1"),
        "{err}"
    );
    assert!(!dir.join("nan.gds").exists());
    assert_eq!(ds.class_names()[1], "pos");
    // 1-D images: one value per sample.
    write(
        &dir.join("v.npy"),
        &npy(
            1,
            "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }",
            &[9, 8, 7],
        ),
    );
    let ds = import_npy(
        dir.join("v.npy"),
        dir.join("y.npy"),
        dir.join("o2"),
        None,
        "v".into(),
    )
    .unwrap();
    assert_eq!(ds.sample_shape(), &[1]);
    assert_eq!(ds.sample(2).unwrap(), &[7]);
    match read_npy_labels(dir.join("x.npy")) {
        Err(DataError::Npy { reason, .. }) => assert!(reason.contains("1-D"), "{reason}"),
        other => panic!("{other:?}"),
    }
    let arr = graft_data::read_npy(dir.join("x.npy")).unwrap();
    assert_eq!(arr.data, NpyData::F32(values.to_vec()));
}

#[test]
fn bad_files_name_the_file_and_fix() {
    let dir = TempDir::new("npy-bad");
    let ok_labels = npy(
        1,
        "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }",
        &[0u8; 16],
    );
    write(&dir.join("y.npy"), &ok_labels);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("short", npy(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 2), }", &[1, 2, 3]), "truncated"),
        ("long", npy(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 1), }", &[1, 2, 3]), "truncated or corrupt"),
        ("fortran", npy(1, "{'descr': '|u1', 'fortran_order': True, 'shape': (2, 1), }", &[1, 2]), "ascontiguousarray"),
        ("f8", npy(1, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 1), }", &[0; 16]), "astype"),
        ("i4img", npy(1, "{'descr': '<i4', 'fortran_order': False, 'shape': (2, 1), }", &[0; 8]), "uint8"),
        ("5d", npy(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 1, 1, 1, 1, 1), }", &[0; 2]), "at most 4"),
        ("zero", npy(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (2, 0), }", &[]), "dimension of 0"),
        ("count", npy(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (3, 1), }", &[0; 3]), "matching"),
        ("overflow", npy(1, "{'descr': '|u1', 'fortran_order': False, 'shape': (4294967296, 4294967296, 4294967296), }", &[]), "overflows"),
    ];
    for (name, bytes, what) in cases {
        let p = dir.join(&format!("{name}.npy"));
        write(&p, &bytes);
        let err =
            import_npy(&p, dir.join("y.npy"), dir.join("o"), None, String::new()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(what), "{name}: {msg}");
        assert!(
            msg.contains(&format!("{name}.npy")) || msg.contains("o"),
            "{name}: {msg}"
        );
    }
    // Negative and float labels.
    write(
        &dir.join("x.npy"),
        &npy(
            1,
            "{'descr': '|u1', 'fortran_order': False, 'shape': (2,), }",
            &[1, 2],
        ),
    );
    write(
        &dir.join("neg.npy"),
        &npy(
            1,
            "{'descr': '<i4', 'fortran_order': False, 'shape': (2,), }",
            &[0i32, -3]
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect::<Vec<_>>(),
        ),
    );
    let err = import_npy(
        dir.join("x.npy"),
        dir.join("neg.npy"),
        dir.join("o"),
        None,
        String::new(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("-3"), "{err}");
    write(
        &dir.join("fl.npy"),
        &npy(
            1,
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }",
            &[0; 8],
        ),
    );
    assert!(import_npy(
        dir.join("x.npy"),
        dir.join("fl.npy"),
        dir.join("o"),
        None,
        String::new()
    )
    .is_err());
    assert!(!dir.join("o").exists());
    let _ = Dataset::open(dir.join("o")).unwrap_err();
}
