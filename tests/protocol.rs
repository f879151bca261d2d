//! The `animals` protocol's data: split sizes, k-shot counts, and that strategies share the
//! same k-shot set for a seed.

use graft::transfer::Protocol;

use crate::util::{root, temp_dir};

#[test]
fn animals_protocol_has_the_sizes_of_protocols_md() {
    let cache = temp_dir("protocol-animals");
    let ds = Protocol::Animals
        .open_dataset(&root().join("data/animal-mnist"), &cache)
        .unwrap();
    assert_eq!(ds.len(), 10_000);
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
