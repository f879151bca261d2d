//! Sanity check on the real Animal-MNIST files, skipped when absent.

use std::path::PathBuf;

use graft_data::{import_idx, Part, SplitRule};

use super::common::TempDir;

#[test]
fn animal_mnist_import() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data/animal-mnist");
    let (images, labels) = (
        root.join("images-idx3-ubyte.gz"),
        root.join("labels-idx1-ubyte.gz"),
    );
    if !images.exists() || !labels.exists() {
        eprintln!("skipping: {} not found", root.display());
        return;
    }
    let dir = TempDir::new("animal");
    let names = [
        "Bear", "Bird", "Cat", "Cow", "Dog", "Elephant", "Giraffe", "Horse", "Sheep", "Zebra",
    ];
    let ds = import_idx(
        &images,
        &labels,
        dir.join("animal-mnist.graftds"),
        Some(names.iter().map(|s| s.to_string()).collect()),
        "Animal-MNIST 0.4 (MIT)".into(),
    )
    .unwrap();
    ds.verify_checksum().unwrap();
    assert_eq!(ds.len(), 10_000);
    assert_eq!(ds.sample_shape(), &[28, 28]);
    assert_eq!(ds.class_counts(), vec![1000; 10]);
    let (mean, std) = (ds.metadata().mean.unwrap(), ds.metadata().std.unwrap());
    assert!((mean - 0.2728).abs() < 1e-3, "mean {mean}");
    assert!((std - 0.4056).abs() < 1e-3, "std {std}");
    let test = ds
        .view()
        .split(SplitRule::ANIMAL_MNIST, Part::Test)
        .unwrap();
    assert_eq!(test.len(), 2000);
    assert!(test.indices().iter().all(|&i| i % 5 == 4));
}
