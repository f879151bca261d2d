//! The ImageNet EfficientNet-Lite0 as an advise candidate: its 18 units' pooled activations
//! have the widths advise declares, the last one equals the network's features through
//! `Backbone::forward` (checked against PyTorch in graft-transfer's `imagenet_animals.rs`),
//! and its 1000-class softmax is a distribution.

use dfdx::prelude::*;
use graft_advise::network::SourceNetwork;
use graft_nn::efficientnet::EFFNET_FEATURES;
use graft_nn::{Backbone, Checkpoint, InputBatch, NetworkKind, INPUT_LEN};

#[test]
fn lite0_units_pool_to_their_widths_and_the_last_is_the_networks_features() {
    let Some(path) = graft_test_support::effnet_weights() else {
        return;
    };
    let (net, norm) = SourceNetwork::load(&Checkpoint::open(&path).unwrap()).unwrap();
    assert_eq!(net.kind(), NetworkKind::Lite0);
    let norm = norm.unwrap();
    assert!((norm.mean * 255.0 - 127.0).abs() < 1e-3 && (norm.std * 255.0 - 128.0).abs() < 1e-3);
    let n = 3;
    let images: Vec<f32> = (0..n * INPUT_LEN)
        .map(|i| ((i * 37 % 256) as f32 / 255.0 - norm.mean) / norm.std)
        .collect();
    let acts = net.activations(&images).unwrap();
    assert_eq!(acts.blocks.len(), 18);
    for (name, values) in &acts.blocks {
        let width = SourceNetwork::block_width(NetworkKind::Lite0, name).unwrap();
        assert_eq!(values.len(), n * width, "{name}");
    }
    assert_eq!(acts.blocks[17].0, "_conv_head");
    assert_eq!(acts.blocks[17].1.len(), n * EFFNET_FEATURES);
    let SourceNetwork::Lite0(model) = &net else {
        unreachable!()
    };
    let dev = Cpu::default();
    let x: InputBatch = dev.tensor_from_vec(images.clone(), (n, Const));
    let want = Backbone::forward(&model.backbone, x).as_vec();
    let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let worst = acts.blocks[17]
        .1
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst <= 1e-4 * scale,
        "folded vs unfolded: {worst} of {scale}"
    );
    assert_eq!(acts.probs.len(), n * 1000);
    for row in acts.probs.chunks(1000) {
        let total: f32 = row.iter().sum();
        assert!((total - 1.0).abs() < 1e-4, "{total}");
    }
}
