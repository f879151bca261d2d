//! `advise` on a synthetic two-class data set of 28x28 images, with a saved convnet checkpoint
//! and a randomly initialised network as candidates.

use dfdx::tensor::Cpu;
use graft_advise::{advise, AdviseConfig, Candidate};
use graft_data::{write_u8_dataset, Dataset, Metadata};
use graft_nn::{ConvnetClassifier, Normalization};

/// 30 images per class: class 0 bright in the top half, class 1 in the bottom half, with
/// pixel noise from a fixed linear congruential sequence.
fn two_class_images(path: &std::path::Path) -> Dataset {
    let mut state = 12345u64;
    let mut noise = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 59) as u8
    };
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for i in 0..60u32 {
        let class = i % 2;
        for row in 0..28 {
            for _ in 0..28 {
                let bright = (row < 14) == (class == 0);
                pixels.push(if bright { 200 } else { 20 } + noise());
            }
        }
        labels.push(class);
    }
    let metadata = Metadata {
        class_names: vec!["top".into(), "bottom".into()],
        ..Metadata::default()
    };
    write_u8_dataset(path, &[28, 28], &pixels, &labels, &metadata).unwrap();
    Dataset::open(path).unwrap()
}

#[test]
fn advise_with_only_a_random_network_recommends_scratch() {
    let dir = std::env::temp_dir().join(format!("graft-advise-e2e-r-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ds = two_class_images(&dir.join("two.gds"));
    let mut cfg = AdviseConfig::new(vec!["random:convnet:3".parse::<Candidate>().unwrap()]);
    cfg.k = 10;
    let advice = advise(&ds.view(), &cfg).unwrap();
    // Three blocks of one network, best LogME first; nothing pretrained to reuse.
    assert_eq!(advice.candidates.len(), 3);
    assert!(advice
        .candidates
        .windows(2)
        .all(|w| w[0].logme >= w[1].logme));
    assert_eq!(advice.recommendation.strategy, "scratch");
    assert_eq!(advice.recommendation.checkpoint, None);
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn advise_scores_a_checkpoint_and_its_baseline_and_reuses_cached_features() {
    let dir = std::env::temp_dir().join(format!("graft-advise-e2e-c-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ds = two_class_images(&dir.join("two.gds"));
    let ckpt = dir.join("source.safetensors");
    let model = ConvnetClassifier::new(&Cpu::seed_from_u64(7), 8).unwrap();
    let norm = Normalization {
        mean: 0.3,
        std: 0.3,
    };
    graft_nn::checkpoint::save(&ckpt, &model, "convnet", Some(norm)).unwrap();
    let mut cfg = AdviseConfig::new(vec![Candidate::Checkpoint(ckpt.clone())]);
    cfg.k = 10;
    cfg.layers = Some(vec!["conv2".into(), "fc1".into()]);
    cfg.cache_dir = Some(dir.join("features"));
    let first = advise(&ds.view(), &cfg).unwrap();
    // Two blocks of the checkpoint plus the same two of the scratch baseline added for it.
    assert_eq!(first.candidates.len(), 4);
    assert_eq!(first.candidates.iter().filter(|c| c.random).count(), 2);
    assert!(first.candidates.iter().all(|c| c.layer != "conv1"));
    assert!(first
        .candidates
        .iter()
        .all(|c| (0.0..=1.0).contains(&c.knn)));
    let rec = &first.recommendation;
    assert!(rec.checkpoint.is_none() == (rec.strategy == "scratch"));
    assert!(!rec.reason.is_empty());
    // The second run reads the cached features and gives the same scores.
    let second = advise(&ds.view(), &cfg).unwrap();
    assert_eq!(first.candidates, second.candidates);
    assert!(std::fs::read_dir(dir.join("features")).unwrap().count() >= 8);
    // A layer the network does not have is refused, naming the blocks it has.
    cfg.layers = Some(vec!["fc9".into()]);
    let err = advise(&ds.view(), &cfg).unwrap_err().to_string();
    assert!(err.contains("conv1, conv2, fc1"), "{err}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn advise_recommends_scratch_for_a_source_whose_features_are_dead() {
    use dfdx::tensor::TensorFrom;
    let dir = std::env::temp_dir().join(format!("graft-advise-e2e-d-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let ds = two_class_images(&dir.join("two.gds"));
    // Every unit of conv1 has a bias far below any input: its ReLU is 0 for every image, so
    // every block's features are the same for all images and carry no label information.
    let dev = Cpu::seed_from_u64(7);
    let mut model = ConvnetClassifier::new(&dev, 8).unwrap();
    model.backbone.conv1.bias = dev.tensor([-1.0e4f32; 32]);
    let ckpt = dir.join("dead.safetensors");
    graft_nn::checkpoint::save(&ckpt, &model, "convnet", None).unwrap();
    let mut cfg = AdviseConfig::new(vec![Candidate::Checkpoint(ckpt)]);
    cfg.k = 10;
    let advice = advise(&ds.view(), &cfg).unwrap();
    let rec = &advice.recommendation;
    assert_eq!(rec.strategy, "scratch", "{}", rec.reason);
    assert!(rec.reason.contains("negative transfer"), "{}", rec.reason);
    // The random baseline's blocks all rank above the dead source's.
    let first_dead = advice.candidates.iter().position(|c| !c.random).unwrap();
    assert_eq!(first_dead, 3, "{:?}", advice.candidates);
    std::fs::remove_dir_all(&dir).ok();
}
