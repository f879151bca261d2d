//! Prefetching batches equal the plain batches.

use graft_data::Normalize;

use super::common::{sorted_dataset, TempDir};

#[test]
fn same_batches_as_plain_iterator() {
    let dir = TempDir::new("prefetch");
    let ds = sorted_dataset(&dir, 3, 17);
    let view = ds.view().select_classes(&[2, 0]).unwrap();
    let norm = Normalize {
        mean: 0.2,
        std: 0.7,
    };
    for (bs, shuffle) in [(1, false), (5, true), (34, true), (100, false)] {
        let mut plain = Vec::new();
        let mut it = view.batches(bs, 11, norm, shuffle).unwrap();
        while let Some(b) = it.next_batch() {
            plain.push((
                b.images.to_vec(),
                b.labels.to_vec(),
                b.positions.to_vec(),
                b.len,
            ));
        }
        let pre = view
            .prefetching_batches(bs, 11, norm, shuffle, |it| {
                assert_eq!(it.num_batches(), plain.len());
                let mut out = Vec::new();
                while let Some(b) = it.next_batch() {
                    out.push((
                        b.images.to_vec(),
                        b.labels.to_vec(),
                        b.positions.to_vec(),
                        b.len,
                    ));
                }
                assert!(it.next_batch().is_none());
                out
            })
            .unwrap();
        assert_eq!(pre, plain, "batch size {bs}");
    }
}

#[test]
fn early_stop_and_errors() {
    let dir = TempDir::new("prefetch-stop");
    let ds = sorted_dataset(&dir, 2, 500);
    let view = ds.view();
    // Stop after two batches: the worker must not block the scope.
    let first = view
        .prefetching_batches(3, 1, Normalize::IDENTITY, true, |it| {
            let a = it.next_batch().unwrap().positions.to_vec();
            let _ = it.next_batch();
            a
        })
        .unwrap();
    assert_eq!(first.len(), 3);
    assert!(view
        .prefetching_batches(0, 1, Normalize::IDENTITY, true, |_| ())
        .is_err());
    let bad = Normalize {
        mean: 0.0,
        std: 0.0,
    };
    assert!(view.prefetching_batches(4, 1, bad, true, |_| ()).is_err());
    // The consumer overlaps with the worker: while it sleeps, the next
    // batch is prepared, so the wait in `next_batch` is short.
    view.prefetching_batches(50, 2, Normalize::IDENTITY, false, |it| {
        let _ = it.next_batch();
        std::thread::sleep(std::time::Duration::from_millis(50));
        let t = std::time::Instant::now();
        let b = it.next_batch().unwrap();
        assert_eq!(b.positions[0], 50);
        assert!(
            t.elapsed() < std::time::Duration::from_millis(40),
            "{:?}",
            t.elapsed()
        );
    })
    .unwrap();
}
