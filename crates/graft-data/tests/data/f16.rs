//! f16 storage: conversion against a naive nearest-value reference, and
//! f16 data sets against hand-written bytes.

use graft_data::f16::{f16_to_f32, f32_to_f16};
use graft_data::{write_f16_dataset, Dataset, ElementType, Metadata, Normalize};

use super::common::TempDir;

/// Value of f16 bits computed from the definition, in f64.
fn f16_value(bits: u16) -> f64 {
    let sign = if bits & 0x8000 != 0 { -1.0 } else { 1.0 };
    let e = i32::from((bits >> 10) & 0x1f);
    let m = f64::from(bits & 0x3ff);
    match e {
        0 => sign * m * 2f64.powi(-24),
        31 => sign * f64::INFINITY,
        _ => sign * (1.0 + m / 1024.0) * 2f64.powi(e - 15),
    }
}

/// Naive round-to-nearest-even: scan every finite f16 of the right sign.
fn naive_f16(v: f32) -> u16 {
    let v = f64::from(v);
    let sign: u16 = if v.is_sign_negative() { 0x8000 } else { 0 };
    // Beyond max + half an ulp (65520) rounds to infinity.
    if v.abs() >= 65520.0 {
        return sign | 0x7c00;
    }
    let mut best = 0u16;
    let mut best_d = f64::INFINITY;
    for mag in 0..0x7c00u16 {
        let d = (f16_value(mag) - v.abs()).abs();
        if d < best_d || (d == best_d && mag & 1 == 0) {
            best = mag;
            best_d = d;
        }
    }
    sign | best
}

#[test]
fn rounding_matches_naive_reference() {
    let mut values = vec![
        0.1f32,
        1.0 / 3.0,
        2.5e-8,
        6.0e-8,
        3.0e-5,
        1000.1,
        65504.0,
        65519.99,
        -7.77,
        1e-10,
    ];
    // Exact midpoints between neighbours and values one f32 ulp either side.
    for bits in (0x0000u16..0x7bff).step_by(97) {
        let mid = (f16_value(bits) + f16_value(bits + 1)) / 2.0;
        let m = mid as f32;
        assert_eq!(f64::from(m), mid, "midpoint must be exact in f32");
        values.extend([
            m,
            f32::from_bits(m.to_bits() + 1),
            f32::from_bits(m.to_bits() - 1),
            -m,
        ]);
    }
    let mut rng = graft_data::SplitMix64::new(5);
    for _ in 0..300 {
        let v = f32::from_bits((rng.next_u64() as u32) & 0x477f_ffff); // |v| < 65536
        values.push(v);
    }
    for v in values {
        assert_eq!(f32_to_f16(v), naive_f16(v), "{v:e}");
    }
}

#[test]
fn f16_dataset_bytes_and_reading() {
    let dir = TempDir::new("f16");
    let path = dir.join("h.graftds");
    let values = [1.0f32, -2.0, 0.5, 65504.0, 1.0 / 3.0, 0.0];
    let meta = Metadata {
        class_names: vec!["a".into(), "b".into()],
        ..Metadata::default()
    };
    write_f16_dataset(&path, &[3], &values, &[1, 0], &meta).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes[12], 1, "element type code 1 = f16");
    // Samples at offset 128: hand-computed f16 encodings.
    let expected: [u16; 6] = [0x3c00, 0xc000, 0x3800, 0x7bff, 0x3555, 0x0000];
    let stored: Vec<u16> = bytes[128..140]
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    assert_eq!(stored, expected);
    let ds = Dataset::open(&path).unwrap();
    ds.verify_checksum().unwrap();
    assert_eq!(ds.element_type(), ElementType::F16);
    assert_eq!(ds.sample_f32(0).unwrap(), vec![1.0, -2.0, 0.5]);
    let third = f16_to_f32(0x3555);
    assert_eq!(ds.sample_f32(1).unwrap(), vec![65504.0, third, 0.0]);
    let all = ds
        .view()
        .to_f32(Normalize {
            mean: 1.0,
            std: 2.0,
        })
        .unwrap();
    let want: Vec<f32> = [1.0, -2.0, 0.5, 65504.0, third, 0.0]
        .iter()
        .map(|v| (v - 1.0) / 2.0)
        .collect();
    assert_eq!(all, want);
    assert!(ds.sample(0).is_err(), "u8 accessor on f16 data");
}
