//! k-shot sampling.

use std::collections::HashSet;

use graft_data::{DataError, Part, SplitRule};

use super::common::{sorted_dataset, TempDir};

#[test]
fn k_shot_properties() {
    let dir = TempDir::new("kshot");
    let ds = sorted_dataset(&dir, 5, 200);
    let pool = ds
        .view()
        .select_classes(&[4, 1, 3])
        .unwrap()
        .split(SplitRule::ANIMAL_MNIST, Part::Train)
        .unwrap();
    let pool_set: HashSet<(u32, u32)> = pool
        .indices()
        .iter()
        .copied()
        .zip(pool.labels().iter().copied())
        .collect();
    for k in [1, 5, 37, 160] {
        let a = pool.k_shot(k, 123).unwrap();
        assert_eq!(a.class_counts(), vec![k; 3]);
        assert_eq!(a.len(), 3 * k);
        let idx: HashSet<u32> = a.indices().iter().copied().collect();
        assert_eq!(idx.len(), a.len(), "duplicates");
        for (&i, &l) in a.indices().iter().zip(a.labels()) {
            assert!(pool_set.contains(&(i, l)), "not in pool");
        }
        // Ordered by class.
        assert!(a.labels().windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(a.class_names(), pool.class_names());
        let b = pool.k_shot(k, 123).unwrap();
        assert_eq!(a.indices(), b.indices());
        if k < 160 {
            let c = pool.k_shot(k, 124).unwrap();
            assert_ne!(a.indices(), c.indices());
        }
    }
    assert!(matches!(
        pool.k_shot(161, 0),
        Err(DataError::NotEnoughSamples {
            available: 160,
            k: 161,
            ..
        })
    ));
}

#[test]
fn k_shot_matches_reference_construction() {
    let dir = TempDir::new("kshot-ref");
    let ds = sorted_dataset(&dir, 3, 10);
    let v = ds.view();
    let got = v.k_shot(4, 77).unwrap();
    // Reference: one SplitMix64(77), per class in order, an explicit
    // Fisher–Yates written out here, first k kept.
    let mut rng = graft_data::SplitMix64::new(77);
    let mut want = Vec::new();
    for c in 0..3u32 {
        let mut members: Vec<u32> = (0..30)
            .filter(|&i| ds.label(i as usize).unwrap() == c)
            .collect();
        let mut i = members.len();
        while i > 1 {
            i -= 1;
            let j = rng.below(i as u64 + 1) as usize;
            members.swap(i, j);
        }
        want.extend_from_slice(&members[..4]);
    }
    assert_eq!(got.indices(), &want[..]);
    let all = v.k_shot_all(77).unwrap();
    assert_eq!(all.class_counts(), vec![10; 3]);
    assert_eq!(&all.indices()[..4], &want[..4]);
}
