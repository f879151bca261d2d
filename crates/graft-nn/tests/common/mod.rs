//! Shared helpers for graft-nn's integration tests: reading the PyTorch reference tensors and
//! comparing results.

#![allow(dead_code)]

use std::path::PathBuf;

use safetensors::tensor::{Dtype, SafeTensors};

/// A safetensors file of reference tensors under `tests/data/`.
pub struct Refs {
    bytes: Vec<u8>,
}

impl Refs {
    /// Reads `tests/data/<name>.safetensors`.
    pub fn open(name: &str) -> Self {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(format!("{name}.safetensors"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        SafeTensors::deserialize(&bytes).expect("valid safetensors");
        Self { bytes }
    }

    fn st(&self) -> SafeTensors<'_> {
        SafeTensors::deserialize(&self.bytes).expect("valid safetensors")
    }

    /// Every tensor name in the file.
    pub fn names(&self) -> Vec<String> {
        self.st()
            .names()
            .into_iter()
            .map(|s| s.to_string())
            .collect()
    }

    /// The shape of tensor `name`.
    pub fn shape(&self, name: &str) -> Vec<usize> {
        self.st()
            .tensor(name)
            .unwrap_or_else(|_| panic!("no tensor {name}"))
            .shape()
            .to_vec()
    }

    /// Tensor `name` (any float dtype) as f32 values, row-major.
    pub fn f32(&self, name: &str) -> Vec<f32> {
        let st = self.st();
        let t = st
            .tensor(name)
            .unwrap_or_else(|_| panic!("no tensor {name}"));
        graft_nn::checkpoint::to_f32(t.dtype(), t.data()).expect("a float tensor")
    }

    /// Tensor `name` (I64) as integers.
    pub fn i64(&self, name: &str) -> Vec<i64> {
        let st = self.st();
        let t = st
            .tensor(name)
            .unwrap_or_else(|_| panic!("no tensor {name}"));
        assert_eq!(t.dtype(), Dtype::I64, "{name}");
        t.data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    }

    /// Tensor `name` (I64) as sizes.
    pub fn sizes(&self, name: &str) -> Vec<usize> {
        self.i64(name).into_iter().map(|v| v as usize).collect()
    }
}

/// The relative error used throughout: `max|a - b| / max(1, max|b|)`, with `b` the reference.
pub fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let diff = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - *y as f64).abs())
        .fold(0.0, f64::max);
    let scale = b.iter().map(|y| (*y as f64).abs()).fold(1.0, f64::max);
    diff / scale
}

/// Asserts `rel_err(got, want) <= tol`, naming `what`.
pub fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f64) {
    let e = rel_err(got, want);
    assert!(e <= tol, "{what}: relative error {e:.3e} > {tol:.0e}");
}
