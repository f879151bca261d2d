//! The in-memory validator and the NPY header parser on hand-written and
//! hostile inputs (the seeds and findings of the `fuzz/` target).

use graft_data::dataset::validate_bytes;
use graft_data::npy::parse_npy_header;
use graft_data::{DataError, ElementType};

fn fnv(bytes: &[u8]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// A data-set file built byte by byte from FORMAT.md, independent of the
/// crate's writer.
fn handmade(code: u8, shape: &[u32], samples: &[u8], labels: &[u32], names: &[&str]) -> Vec<u8> {
    let mut meta = (names.len() as u64).to_le_bytes().to_vec();
    for n in names {
        meta.extend_from_slice(&(n.len() as u64).to_le_bytes());
        meta.extend_from_slice(n.as_bytes());
    }
    meta.extend_from_slice(&0u64.to_le_bytes()); // provenance ""
    meta.extend_from_slice(&[0, 0]); // mean, std: None
    let lab: Vec<u8> = labels.iter().flat_map(|l| l.to_le_bytes()).collect();
    let s_off = 128u64;
    let l_off = (s_off + samples.len() as u64).div_ceil(8) * 8;
    let m_off = l_off + lab.len() as u64;
    let mut h = b"GRAFTDS\0".to_vec();
    h.extend_from_slice(&1u32.to_le_bytes());
    h.extend_from_slice(&[code, shape.len() as u8, 0, 0]);
    for i in 0..4 {
        h.extend_from_slice(&shape.get(i).copied().unwrap_or(0).to_le_bytes());
    }
    for v in [
        labels.len() as u64,
        s_off,
        samples.len() as u64,
        l_off,
        lab.len() as u64,
        m_off,
        meta.len() as u64,
    ] {
        h.extend_from_slice(&v.to_le_bytes());
    }
    let mut payload = samples.to_vec();
    payload.extend_from_slice(&lab);
    payload.extend_from_slice(&meta);
    h.extend_from_slice(&fnv(&payload).to_le_bytes());
    assert_eq!(h.len(), 96);
    h.resize(128, 0);
    h.extend_from_slice(samples);
    h.resize(l_off as usize, 0);
    h.extend_from_slice(&lab);
    h.extend_from_slice(&meta);
    h
}

#[test]
fn handmade_files_validate() {
    let u8_file = handmade(
        0,
        &[2, 3],
        &(0..12).collect::<Vec<u8>>(),
        &[0, 1],
        &["a", "b"],
    );
    let h = validate_bytes(&u8_file).unwrap();
    assert_eq!(
        (h.element_type, h.shape.as_slice(), h.count),
        (ElementType::U8, &[2usize, 3][..], 2)
    );
    let f16_file = handmade(1, &[3], &[0x00, 0x3c].repeat(6), &[1, 0], &["x", "y"]);
    assert_eq!(
        validate_bytes(&f16_file).unwrap().element_type,
        ElementType::F16
    );
    let f32_file = handmade(2, &[1, 1, 1, 2], &[0; 16], &[0, 0], &["c"]);
    assert_eq!(validate_bytes(&f32_file).unwrap().shape, vec![1, 1, 1, 2]);
    assert_eq!(
        validate_bytes(&f32_file).unwrap().checksum,
        fnv(&f32_file[128..])
    );
    let empty = handmade(0, &[1], &[], &[], &[]);
    assert_eq!(validate_bytes(&empty).unwrap().count, 0);
}

#[test]
fn hostile_inputs_are_errors() {
    let good = handmade(
        0,
        &[2, 3],
        &(0..12).collect::<Vec<u8>>(),
        &[0, 1],
        &["a", "b"],
    );
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", vec![]),
        ("magic only", b"GRAFTDS\0".to_vec()),
        ("header only", good[..96].to_vec()),
        ("zeros", vec![0; 200]),
    ];
    // Metadata claiming 2^64-1 class names.
    let mut b = good.clone();
    let m_off = u64::from_le_bytes(b[72..80].try_into().unwrap()) as usize;
    b[m_off..m_off + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    cases.push(("huge name count", b));
    // A name length running past the section.
    let mut b = good.clone();
    b[m_off + 8..m_off + 16].copy_from_slice(&1000u64.to_le_bytes());
    cases.push(("name past end", b));
    // Invalid UTF-8 in a class name.
    let mut b = good.clone();
    b[m_off + 16] = 0xff;
    cases.push(("bad utf8", b));
    // Option tag 2.
    let mut b = good.clone();
    let last = b.len() - 1;
    b[last] = 2;
    cases.push(("bad option tag", b));
    // Section lengths of u64::MAX.
    let mut b = good.clone();
    b[48..56].copy_from_slice(&u64::MAX.to_le_bytes());
    cases.push(("samples len max", b));
    // f16 header on the u8 payload (length mismatch).
    let mut b = good.clone();
    b[12] = 1;
    cases.push(("f16 relabel", b));
    for (name, bytes) in cases {
        let err = validate_bytes(&bytes).unwrap_err();
        assert!(err.to_string().contains("<memory>"), "{name}: {err}");
    }
    // Label out of range is reported as such.
    let bad_label = handmade(0, &[1], &[7], &[3], &["only"]);
    assert!(matches!(
        validate_bytes(&bad_label),
        Err(DataError::LabelOutOfRange { label: 3, .. })
    ));
}

#[test]
fn npy_header_hostile_inputs() {
    let mut cases: Vec<Vec<u8>> = vec![
        vec![],
        b"\x93NUMPY".to_vec(),
        b"\x93NUMPY\x01\x00".to_vec(),
        b"\x93NUMPY\x02\x00\xff\xff\xff\xff{".to_vec(),
        b"\x93NUMPY\x01\x00\x05\x00{'a':".to_vec(),
        b"\x93NUMPY\x03\x00\x02\x00\x00\x00\xff\xfe".to_vec(),
    ];
    for text in [
        "{",
        "{'descr'",
        "{'descr': '<f4'",
        "{'shape': (1,,)}",
        "{'shape': (,)}",
        "{'shape': (1 2)}",
        "{'descr': 'unterminated}",
        "{'descr': '\\x00'}",
        "{((((((((((((((((",
        "}",
    ] {
        let mut b = b"\x93NUMPY\x01\x00".to_vec();
        b.extend_from_slice(&(text.len() as u16).to_le_bytes());
        b.extend_from_slice(text.as_bytes());
        cases.push(b);
    }
    for b in cases {
        assert!(
            parse_npy_header(&b).is_err(),
            "{:?}",
            String::from_utf8_lossy(&b)
        );
    }
}
