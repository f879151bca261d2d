//! Test helpers: temporary directories and hand-written IDX files.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use graft_data::{write_u8_dataset, Dataset, Metadata};

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "graft-data-test-{}-{}-{tag}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Big-endian IDX3 u8 images file bytes.
pub fn idx3(count: u32, rows: u32, cols: u32, pixels: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in [0x0803u32, count, rows, cols] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(pixels);
    out
}

/// Big-endian IDX1 u8 labels file bytes.
pub fn idx1(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for v in [0x0801u32, labels.len() as u32] {
        out.extend_from_slice(&v.to_be_bytes());
    }
    out.extend_from_slice(labels);
    out
}

pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

pub fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
}

/// A u8 data set of `per_class` samples for each of `classes` classes,
/// sorted by class, shape [2, 2]; sample i is `[i%256, (i/256)%256, label, 7]`.
pub fn sorted_dataset(dir: &TempDir, classes: u32, per_class: u32) -> Dataset {
    let mut samples = Vec::new();
    let mut labels = Vec::new();
    for c in 0..classes {
        for _ in 0..per_class {
            let i = labels.len();
            samples.extend_from_slice(&[(i % 256) as u8, ((i / 256) % 256) as u8, c as u8, 7]);
            labels.push(c);
        }
    }
    let meta = Metadata {
        class_names: (0..classes).map(|c| format!("class{c}")).collect(),
        provenance: "synthetic".into(),
        mean: None,
        std: None,
    };
    let path = dir.join("sorted.graftds");
    write_u8_dataset(&path, &[2, 2], &samples, &labels, &meta).unwrap();
    Dataset::open(&path).unwrap()
}

/// A u8 data set with the given labels (interleaved classes allowed), shape
/// [3]; sample i is `[i%256, (i/256)%256, (i/65536)%256]`.
pub fn labelled_dataset(dir: &TempDir, labels: &[u32], classes: u32) -> Dataset {
    let samples: Vec<u8> = (0..labels.len())
        .flat_map(|i| {
            [
                (i % 256) as u8,
                ((i / 256) % 256) as u8,
                ((i / 65536) % 256) as u8,
            ]
        })
        .collect();
    let meta = Metadata {
        class_names: (0..classes).map(|c| format!("c{c}")).collect(),
        ..Metadata::default()
    };
    let path = dir.join("labelled.graftds");
    write_u8_dataset(&path, &[3], &samples, labels, &meta).unwrap();
    Dataset::open(&path).unwrap()
}
