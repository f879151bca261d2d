//! The windowed reader sees the same data as the whole-file map.

use graft_data::{DataError, Normalize, WindowedReader};

use super::common::{labelled_dataset, TempDir};

#[test]
fn windows_and_batches_match_dataset() {
    let dir = TempDir::new("stream");
    let labels: Vec<u32> = (0..1000).map(|i| i % 4).collect();
    let ds = labelled_dataset(&dir, &labels, 4);
    let norm = Normalize {
        mean: 0.5,
        std: 0.25,
    };
    let all = ds.view().to_f32(norm).unwrap();
    // Windows of 7 samples (not page multiples) and batches of 3.
    let r = WindowedReader::open(ds.path(), 7 * 3).unwrap();
    assert_eq!(r.len(), 1000);
    assert_eq!(r.labels(), ds.labels());
    r.verify_checksum().unwrap();
    let mut raw = Vec::new();
    r.for_each_window(|first, bytes| {
        assert_eq!(first * 3, raw.len());
        assert!(bytes.len() <= 21);
        raw.extend_from_slice(bytes);
        Ok(())
    })
    .unwrap();
    let want: Vec<u8> = (0..1000)
        .flat_map(|i| ds.sample(i).unwrap().to_vec())
        .collect();
    assert_eq!(raw, want);
    let mut streamed = Vec::new();
    let mut next = 0;
    r.stream_batches(3, norm, |b| {
        assert_eq!(b.positions[0], next);
        next += b.len;
        assert!(b
            .labels
            .iter()
            .zip(b.positions)
            .all(|(&l, &p)| l as u32 == labels[p]));
        streamed.extend_from_slice(b.images);
        Ok(())
    })
    .unwrap();
    assert_eq!(streamed, all);
    assert!(r.stream_batches(0, norm, |_| Ok(())).is_err());
    // A damaged payload fails the streamed checksum.
    let mut bytes = std::fs::read(ds.path()).unwrap();
    bytes[200] ^= 0xff;
    std::fs::write(dir.join("bad"), &bytes).unwrap();
    let r = WindowedReader::open(dir.join("bad"), 1 << 20).unwrap();
    assert!(matches!(
        r.verify_checksum(),
        Err(DataError::ChecksumMismatch { .. })
    ));
    // Validation is the same as Dataset::open.
    std::fs::write(dir.join("short"), &bytes[..100]).unwrap();
    assert!(WindowedReader::open(dir.join("short"), 64).is_err());
}
