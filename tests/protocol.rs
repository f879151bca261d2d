//! The `animals` protocol's data: split sizes, k-shot counts, and that strategies share the
//! same k-shot set for a seed.

use graft::transfer::protocol::DataDirs;
use graft::transfer::Protocol;

use crate::util::{root, temp_dir};

#[test]
fn animals_protocol_has_the_sizes_of_protocols_md() {
    let cache = temp_dir("protocol-animals");
    let dirs = DataDirs {
        animal_mnist: root().join("data/animal-mnist"),
        fashion_mnist: cache.join("no-fashion-here"),
    };
    let ds = Protocol::Animals.open(&dirs, &cache).unwrap();
    assert_eq!(ds.source.len(), 10_000);
    let source = Protocol::Animals.source_train(&ds).unwrap();
    assert_eq!(source.len(), 6_400);
    assert_eq!(source.class_counts(), vec![800; 8]);
    assert_eq!(source.class_names()[0], "Bear");
    let pool = Protocol::Animals.target_pool(&ds).unwrap();
    assert_eq!(pool.class_counts(), vec![800, 800]);
    assert_eq!(pool.class_names(), ["Cat".to_string(), "Dog".to_string()]);
    let test = Protocol::Animals.target_test(&ds).unwrap();
    assert_eq!(test.class_counts(), vec![200, 200]);
    // Animal-MNIST's rule: image i is test iff i % 5 == 4 (the file is sorted by class).
    let cat_or_dog = |i: u32| (2000..3000).contains(&i) || (4000..5000).contains(&i);
    assert!(test.indices().iter().all(|&i| i % 5 == 4 && cat_or_dog(i)));
    assert!(pool.indices().iter().all(|&i| i % 5 != 4));

    let a = pool.k_shot(10, 3).unwrap();
    let b = pool.k_shot(10, 3).unwrap();
    assert_eq!(a.class_counts(), vec![10, 10]);
    assert_eq!(a.indices(), b.indices());
    assert_ne!(a.indices(), pool.k_shot(10, 4).unwrap().indices());
}

#[test]
fn fashion_protocols_without_the_data_say_how_to_fetch_it() {
    let cache = temp_dir("protocol-fashion");
    let dirs = DataDirs {
        animal_mnist: root().join("data/animal-mnist"),
        fashion_mnist: cache.join("missing"),
    };
    for p in [Protocol::FashionSplit, Protocol::FashionToAnimals] {
        let err = p.open(&dirs, &cache).unwrap_err().to_string();
        assert!(
            err.contains("cargo xtask fetch fashion-mnist") && err.contains("missing"),
            "{err}"
        );
    }
}

#[test]
fn fashion_protocols_have_the_sizes_of_protocols_md() {
    let fashion = root().join("runs/cache/fashion-mnist/usr/share/datasets/fashion-mnist");
    if !fashion.join("train-images-idx3-ubyte.gz").exists() {
        // CI fetches it first (`cargo xtask ci` runs `cargo xtask fetch fashion-mnist`).
        assert!(
            std::env::var_os("CI").is_none(),
            "Fashion-MNIST missing in CI: {}",
            fashion.display()
        );
        println!("skipped: Fashion-MNIST not fetched (run `cargo xtask fetch fashion-mnist`)");
        return;
    }
    let cache = temp_dir("protocol-fashion-sizes");
    let dirs = DataDirs {
        animal_mnist: root().join("data/animal-mnist"),
        fashion_mnist: fashion,
    };
    let d = Protocol::FashionSplit.open(&dirs, &cache).unwrap();
    let p = Protocol::FashionSplit;
    assert_eq!(p.source_train(&d).unwrap().class_counts(), vec![6000; 5]);
    let pool = p.target_pool(&d).unwrap();
    assert_eq!(pool.class_counts(), vec![6000; 5]);
    assert_eq!(pool.class_names()[0], "Sandal");
    assert_eq!(p.target_test(&d).unwrap().class_counts(), vec![1000; 5]);
    let p = Protocol::FashionToAnimals;
    let d = p.open(&dirs, &cache).unwrap();
    assert_eq!(p.source_train(&d).unwrap().len(), 60_000);
    assert_eq!(p.target_pool(&d).unwrap().class_counts(), vec![800; 10]);
    assert_eq!(p.target_test(&d).unwrap().class_counts(), vec![200; 10]);
}
