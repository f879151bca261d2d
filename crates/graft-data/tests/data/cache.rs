//! Feature cache: hits, misses, invalidation, damaged entries, f16 storage
//! and concurrent builders.

use std::sync::atomic::{AtomicUsize, Ordering};

use graft_data::f16::{f16_to_f32, f32_to_f16};
use graft_data::{DataError, ElementType, FeatureCache, FeatureKey, Features};

use super::common::TempDir;

fn key() -> FeatureKey {
    FeatureKey {
        checkpoint_hash: 0x1234,
        dataset_hash: 0xabcd,
        layer: "fc1".into(),
        preprocessing: "mean=0.1307 std=0.3081".into(),
    }
}

/// 5 rows of dimension 3; row r is [r, r/4, -r].
fn features() -> (Vec<f32>, Vec<u32>, usize) {
    let values = (0..5)
        .flat_map(|r| [r as f32, r as f32 / 4.0, -(r as f32)])
        .collect();
    (values, vec![0, 1, 0, 1, 1], 3)
}

#[test]
fn builds_once_then_hits_across_instances() {
    let dir = TempDir::new("cache");
    let calls = AtomicUsize::new(0);
    let build = |_: &FeatureKey| {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok::<_, String>(features())
    };
    let ds = FeatureCache::new(dir.join("c"))
        .get_or_build(&key(), build)
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!((ds.len(), ds.sample_shape()), (5, &[3usize][..]));
    assert_eq!(ds.sample_f32(2).unwrap(), vec![2.0, 0.5, -2.0]);
    assert_eq!(ds.labels(), &[0, 1, 0, 1, 1]);
    // A fresh cache on the same directory (as another run would) hits.
    let again = FeatureCache::new(dir.join("c"))
        .get_or_build(&key(), build)
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(again.header().checksum, ds.header().checksum);
    // Any changed input is another entry.
    let mut changed = Vec::new();
    let mut k = key();
    k.checkpoint_hash += 1;
    changed.push(k);
    let mut k = key();
    k.dataset_hash ^= 1;
    changed.push(k);
    let mut k = key();
    k.layer = "fc2".into();
    changed.push(k);
    let mut k = key();
    k.preprocessing.push(' ');
    changed.push(k);
    let cache = FeatureCache::new(dir.join("c"));
    for (i, k) in changed.iter().enumerate() {
        assert_ne!(cache.path_for(k), cache.path_for(&key()));
        cache.get_or_build(k, build).unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2 + i);
    }
}

#[test]
fn key_text_is_unambiguous() {
    // Moving text between layer and preprocessing changes the key.
    let a = FeatureKey {
        layer: "a;b".into(),
        preprocessing: "c".into(),
        ..key()
    };
    let b = FeatureKey {
        layer: "a".into(),
        preprocessing: "b;c".into(),
        ..key()
    };
    assert_ne!(a.describe(), b.describe());
    assert_ne!(a.digest(), b.digest());
    // The digest is FNV-1a 64 of the description.
    assert_eq!(
        a.digest(),
        graft_data::checksum::fnv1a64(&[a.describe().as_bytes()])
    );
}

#[test]
fn damaged_or_foreign_entries_are_rebuilt() {
    let dir = TempDir::new("cache-damage");
    let cache = FeatureCache::new(dir.join("c"));
    let calls = AtomicUsize::new(0);
    let build = |_: &FeatureKey| {
        calls.fetch_add(1, Ordering::SeqCst);
        Ok::<_, String>(features())
    };
    cache.get_or_build(&key(), build).unwrap();
    let path = cache.path_for(&key());
    // Flip one payload byte: checksum fails -> rebuilt.
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[130] ^= 0x40;
    std::fs::write(&path, &bytes).unwrap();
    assert!(cache.get(&key()).is_none());
    {
        let ds = cache.get_or_build(&key(), build).unwrap();
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        ds.verify_checksum().unwrap();
    } // unmapped before the file is overwritten in place below
      // Truncated file -> rebuilt.
    std::fs::write(&path, &bytes[..50]).unwrap();
    cache.get_or_build(&key(), build).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    // Another key's valid file under this key's name -> rebuilt.
    let mut other = key();
    other.layer = "other".into();
    cache.get_or_build(&other, build).unwrap();
    std::fs::copy(cache.path_for(&other), &path).unwrap();
    cache.get_or_build(&key(), build).unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 5);
    assert_eq!(
        cache.get(&key()).unwrap().metadata().provenance,
        key().describe()
    );
}

#[test]
fn build_errors_and_invalid_features() {
    let dir = TempDir::new("cache-err");
    let cache = FeatureCache::new(dir.join("c"));
    let err = cache
        .get_or_build(&key(), |_| Err::<Features, _>("backbone exploded"))
        .unwrap_err();
    assert!(matches!(err, DataError::FeatureBuild { .. }));
    assert!(err.to_string().contains("backbone exploded"), "{err}");
    assert!(!cache.path_for(&key()).exists());
    let bad = |values: Vec<f32>, dim| Ok::<_, String>((values, vec![0u32, 0], dim));
    assert!(cache
        .get_or_build(&key(), |_| bad(vec![1.0; 5], 3))
        .is_err());
    assert!(cache.get_or_build(&key(), |_| bad(vec![], 0)).is_err());
    assert!(cache
        .get_or_build(&key(), |_| bad(vec![f32::NAN; 6], 3))
        .is_err());
    let f16 = cache.clone().with_storage(ElementType::F16).unwrap();
    let err = f16
        .get_or_build(&key(), |_| bad(vec![1e6; 6], 3))
        .unwrap_err();
    assert!(err.to_string().contains("f16"), "{err}");
    assert!(cache.clone().with_storage(ElementType::U8).is_err());
}

#[test]
fn f16_storage_rounds_each_value() {
    let dir = TempDir::new("cache-f16");
    let cache = FeatureCache::new(dir.join("c"))
        .with_storage(ElementType::F16)
        .unwrap();
    let values = vec![0.1f32, 1.0 / 3.0, -1234.567, 7.0];
    let ds = cache
        .get_or_build(&key(), |_| {
            Ok::<_, String>(Features {
                values: values.clone(),
                labels: vec![0, 1],
                dim: 2,
                class_names: vec!["no".into(), "yes".into()],
            })
        })
        .unwrap();
    assert_eq!(ds.element_type(), ElementType::F16);
    assert_eq!(ds.class_names(), &["no".to_string(), "yes".to_string()]);
    let got: Vec<f32> = (0..2).flat_map(|i| ds.sample_f32(i).unwrap()).collect();
    let want: Vec<f32> = values.iter().map(|&v| f16_to_f32(f32_to_f16(v))).collect();
    assert_eq!(got, want);
    // f32 and f16 entries of one key are separate files.
    let f32_cache = FeatureCache::new(dir.join("c"));
    assert_ne!(f32_cache.path_for(&key()), cache.path_for(&key()));
    assert!(f32_cache.get(&key()).is_none());
}

#[test]
fn concurrent_builders_of_one_key() {
    let dir = TempDir::new("cache-threads");
    let cache_dir = dir.join("c");
    let calls = AtomicUsize::new(0);
    // Large enough that writes overlap in time.
    let dim = 256;
    let rows = 2000;
    let values: Vec<f32> = (0..rows * dim).map(|i| (i % 1009) as f32 * 0.25).collect();
    let labels: Vec<u32> = (0..rows as u32).map(|i| i % 7).collect();
    let checksums: Vec<u64> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..6)
            .map(|_| {
                s.spawn(|| {
                    let cache = FeatureCache::new(&cache_dir);
                    let ds = cache
                        .get_or_build(&key(), |_| {
                            calls.fetch_add(1, Ordering::SeqCst);
                            Ok::<_, String>((values.clone(), labels.clone(), dim))
                        })
                        .unwrap();
                    ds.verify_checksum().unwrap();
                    assert_eq!(
                        ds.sample_f32(rows - 1).unwrap()[..],
                        values[(rows - 1) * dim..]
                    );
                    ds.header().checksum
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(checksums.windows(2).all(|w| w[0] == w[1]));
    assert!(calls.load(Ordering::SeqCst) >= 1);
    // Exactly one entry and no temporary file left behind.
    let names: Vec<String> = std::fs::read_dir(&cache_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");
    let cache = FeatureCache::new(&cache_dir);
    assert!(cache.get(&key()).is_some());
}
