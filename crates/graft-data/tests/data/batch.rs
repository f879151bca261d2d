//! Batches and f32 conversion.

use graft_data::{DataError, Normalize};

use super::common::{sorted_dataset, TempDir};

#[test]
fn every_sample_once_per_epoch_and_values_match_naive() {
    let dir = TempDir::new("batch");
    let ds = sorted_dataset(&dir, 4, 25);
    let view = ds.view().select_classes(&[3, 0, 2]).unwrap();
    let norm = Normalize {
        mean: 0.3,
        std: 0.45,
    };
    let n = ds.sample_len();
    for (shuffle, seed) in [(false, 0), (true, 1), (true, 2)] {
        let mut it = view.batches(16, seed, norm, shuffle).unwrap();
        assert_eq!(it.num_batches(), 5); // 75 = 4 * 16 + 11
        let mut seen = vec![0usize; view.len()];
        let mut sizes = Vec::new();
        let mut order = Vec::new();
        while let Some(b) = it.next_batch() {
            sizes.push(b.len);
            assert_eq!(b.images.len(), b.len * n);
            assert_eq!(b.labels.len(), b.len);
            for (k, &pos) in b.positions.iter().enumerate() {
                seen[pos] += 1;
                order.push(pos);
                assert_eq!(b.labels[k], view.label(pos).unwrap() as usize);
                let px = view.sample(pos).unwrap();
                for (e, &p) in px.iter().enumerate() {
                    let naive = (p as f32 / 255.0 - 0.3) / 0.45;
                    let got = b.images[k * n + e];
                    assert!((got - naive).abs() <= 1e-6, "{got} vs {naive}");
                }
            }
        }
        assert_eq!(sizes, vec![16, 16, 16, 16, 11]);
        assert!(seen.iter().all(|&c| c == 1));
        let identity: Vec<usize> = (0..view.len()).collect();
        assert_eq!(order == identity, !shuffle);
        assert!(it.next_batch().is_none());
    }
    let a = view.batches(8, 5, norm, true).unwrap().order().to_vec();
    let b = view.batches(8, 5, norm, true).unwrap().order().to_vec();
    let c = view.batches(8, 6, norm, true).unwrap().order().to_vec();
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn to_f32_matches_naive_and_rejects_bad_args() {
    let dir = TempDir::new("tof32");
    let ds = sorted_dataset(&dir, 2, 3);
    let view = ds.view();
    let feats = view.to_f32(Normalize::IDENTITY).unwrap();
    let mut naive = Vec::new();
    for i in 0..view.len() {
        naive.extend(view.sample(i).unwrap().iter().map(|&p| p as f32 / 255.0));
    }
    assert_eq!(feats, naive);
    let bad = Normalize {
        mean: 0.0,
        std: 0.0,
    };
    assert!(matches!(
        view.to_f32(bad),
        Err(DataError::InvalidArgument { .. })
    ));
    assert!(matches!(
        view.batches(0, 0, Normalize::IDENTITY, false),
        Err(DataError::InvalidArgument { .. })
    ));
    let nan = Normalize {
        mean: f32::NAN,
        std: 1.0,
    };
    assert!(view.batches(1, 0, nan, false).is_err());
    let empty = view.select_classes(&[]).unwrap();
    assert!(empty.to_f32(Normalize::IDENTITY).unwrap().is_empty());
    assert!(empty
        .batches(4, 0, Normalize::IDENTITY, true)
        .unwrap()
        .next_batch()
        .is_none());
}
