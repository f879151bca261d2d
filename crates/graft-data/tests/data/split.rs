//! Split rules on synthetic data sets.

use std::collections::HashSet;

use graft_data::{DataError, Part, SplitRule};

use super::common::{labelled_dataset, sorted_dataset, TempDir};

#[test]
fn animal_mnist_counts_800_200() {
    let dir = TempDir::new("split-counts");
    let ds = sorted_dataset(&dir, 10, 1000);
    let all = ds.view();
    let train = all.split(SplitRule::ANIMAL_MNIST, Part::Train).unwrap();
    let test = all.split(SplitRule::ANIMAL_MNIST, Part::Test).unwrap();
    assert_eq!(train.class_counts(), vec![800; 10]);
    assert_eq!(test.class_counts(), vec![200; 10]);
    // Sorted by class with 1000 per class: test iff file index % 5 == 4.
    assert!(test.indices().iter().all(|&i| i % 5 == 4));
    assert!(train.indices().iter().all(|&i| i % 5 != 4));
    let union: HashSet<u32> = train
        .indices()
        .iter()
        .chain(test.indices())
        .copied()
        .collect();
    assert_eq!(union.len(), 10_000);
}

#[test]
fn subset_split_equals_full_split_images() {
    let dir = TempDir::new("split-subset");
    let ds = sorted_dataset(&dir, 10, 1000);
    for part in [Part::Train, Part::Test] {
        let full = ds.view().split(SplitRule::ANIMAL_MNIST, part).unwrap();
        let sub = ds.view().select_classes(&[2, 4]).unwrap();
        assert_eq!(sub.class_names(), &["class2", "class4"]);
        let sub_split = sub.split(SplitRule::ANIMAL_MNIST, part).unwrap();
        let expected: Vec<u32> = full
            .indices()
            .iter()
            .copied()
            .filter(|&i| matches!(ds.label(i as usize).unwrap(), 2 | 4))
            .collect();
        assert_eq!(sub_split.indices(), &expected[..]);
        for (pos, &i) in sub_split.indices().iter().enumerate() {
            assert_eq!(
                sub_split.sample(pos).unwrap(),
                ds.sample(i as usize).unwrap()
            );
            let want = if ds.label(i as usize).unwrap() == 2 {
                0
            } else {
                1
            };
            assert_eq!(sub_split.label(pos).unwrap(), want);
        }
        // Split then select gives the same images too.
        let other = full.select_classes(&[2, 4]).unwrap();
        assert_eq!(other.indices(), sub_split.indices());
        assert_eq!(other.labels(), sub_split.labels());
    }
}

#[test]
fn split_uses_file_order_within_class_on_interleaved_labels() {
    let dir = TempDir::new("split-interleaved");
    // Classes interleaved: reference computed independently by counting.
    let labels: Vec<u32> = (0..300u32).map(|i| (i * 7 + i / 13) % 3).collect();
    let ds = labelled_dataset(&dir, &labels, 3);
    let rule = SplitRule::ModuloWithinClass {
        modulus: 3,
        test_remainder: 1,
    };
    let mut seen = [0usize; 3];
    let mut want_test = Vec::new();
    for (i, &l) in labels.iter().enumerate() {
        if seen[l as usize] % 3 == 1 {
            want_test.push(i as u32);
        }
        seen[l as usize] += 1;
    }
    let test = ds.view().split(rule, Part::Test).unwrap();
    assert_eq!(test.indices(), &want_test[..]);
    // Selecting (reordering) classes first changes nothing about membership.
    let sub = ds
        .view()
        .select_classes(&[2, 0])
        .unwrap()
        .split(rule, Part::Test)
        .unwrap();
    let want: Vec<u32> = want_test
        .iter()
        .copied()
        .filter(|&i| labels[i as usize] != 1)
        .collect();
    assert_eq!(sub.indices(), &want[..]);
    for (pos, &i) in sub.indices().iter().enumerate() {
        assert_eq!(
            sub.label(pos).unwrap(),
            if labels[i as usize] == 2 { 0 } else { 1 }
        );
    }
}

#[test]
fn select_classes_errors() {
    let dir = TempDir::new("select-err");
    let ds = sorted_dataset(&dir, 3, 4);
    let v = ds.view();
    assert!(matches!(
        v.select_classes(&[0, 3]),
        Err(DataError::ClassOutOfRange { class: 3, .. })
    ));
    assert!(matches!(
        v.select_classes(&[1, 1]),
        Err(DataError::DuplicateClass { class: 1, .. })
    ));
    let bad = SplitRule::ModuloWithinClass {
        modulus: 0,
        test_remainder: 0,
    };
    assert!(matches!(
        v.split(bad, Part::Train),
        Err(DataError::InvalidArgument { .. })
    ));
    assert!(v.sample(12).is_err());
    assert!(v.label(12).is_err());
    let empty = v.select_classes(&[]).unwrap();
    assert!(empty.is_empty());
    assert_eq!(empty.num_classes(), 0);
}
