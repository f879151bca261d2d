//! The `imagenet-animals` protocols: EfficientNet-Lite0 on the 28x28 grey images resized to
//! R x R (`graft_nn::Lite0Grey`), against PyTorch's features of real Animal-MNIST images
//! (`tests/data/lite0_grey_features.json`, written by `benches/peers/lite0_grey_features.py`),
//! the bilinear resize of graft-data's photo path (itself tested against PyTorch), the
//! network's own FLOP count; and a small sweep whose scratch is the `convnet`.

use std::path::Path;

use dfdx::prelude::*;
use graft_data::photo::{resize_bilinear, Planar};
use graft_nn::efficientnet::{EfficientNetLite, EFFNET_FEATURES};
use graft_nn::{
    Backbone, Buffers, Checkpoint, Classifier, InputBatch, Lite0Grey, LoadScope, NetworkKind,
    Parameters, WithBuffers, INPUT_LEN,
};
use graft_transfer::examples::Examples;
use graft_transfer::pretrain::{PretrainConfig, IMAGENET_LITE_NORMALIZATION};
use graft_transfer::protocol::{DataDirs, IMAGENET_CHECKPOINT};
use graft_transfer::strategy::run_strategy;
use graft_transfer::train::is_bias_or_norm;
use graft_transfer::{run_sweep, Protocol, Strategy, SweepConfig};

/// Grey images with every pixel value from a fixed generator.
fn grey_images(n: usize) -> Vec<f32> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    (0..n * INPUT_LEN)
        .map(|_| {
            state = state
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            (state >> 40) as f32 / (1u64 << 24) as f32 * 255.0
        })
        .collect()
}

fn check_resize<const SIDE: usize>(pixels: &[f32]) {
    let dev = Cpu::default();
    let n = pixels.len() / INPUT_LEN;
    let x: InputBatch = dev.tensor_from_vec(pixels.to_vec(), (n, Const));
    let got = Lite0Grey::<SIDE>::to_rgb(&x).as_vec();
    for (i, image) in pixels.chunks(INPUT_LEN).enumerate() {
        let grey = Planar {
            channels: 1,
            height: 28,
            width: 28,
            data: image.to_vec(),
        };
        let want = resize_bilinear(&grey, SIDE, SIDE).repeat_channels(3).data;
        let plane = &got[i * want.len()..(i + 1) * want.len()];
        let worst = plane
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(worst < 1e-4, "side {SIDE}, image {i}: off by {worst}");
    }
}

#[test]
fn the_resize_is_pytorchs_bilinear_copied_to_three_channels() {
    let pixels = grey_images(3);
    check_resize::<96>(&pixels);
    check_resize::<224>(&pixels);
    // A scale that is not a whole number.
    check_resize::<41>(&pixels);
}

#[test]
fn flops_per_unit_are_the_networks_own_count_plus_the_resize() {
    let net = EfficientNetLite::lite0(&Cpu::seed_from_u64(0));
    for side in [96usize, 224] {
        let mut want = net.unit_forward_flops(side, side);
        want[0] += 3 * (side * side) as u64;
        let got = match side {
            96 => Lite0Grey::<96>::block_forward_flops(),
            _ => Lite0Grey::<224>::block_forward_flops(),
        };
        assert_eq!(got, want, "side {side}");
        assert_eq!(got.len(), Lite0Grey::<96>::BLOCKS.len());
    }
}

#[test]
fn every_parameter_belongs_to_its_unit() {
    // The optimiser finds a parameter's learning rate through its block: a name that maps to
    // no block would silently never train.
    let net = Lite0Grey::<32>::build(&Cpu::seed_from_u64(0));
    let names: Vec<String> = net.snapshot().into_iter().map(|(n, _)| n).collect();
    // The checkpoint's 247 tensors less 49 BatchNorms' two running statistics and `_fc`'s 2.
    assert_eq!(names.len(), 247 - 2 * 49 - 2);
    for name in &names {
        assert_eq!(
            Lite0Grey::<32>::block_of_param(name),
            net.net.unit_of(name),
            "{name}"
        );
        assert!(net.net.unit_of(name).is_some(), "{name}");
    }
    assert_eq!(Lite0Grey::<32>::block_of_param("_fc.weight"), None);
}

#[test]
fn bitfit_trains_only_the_batchnorm_scales_and_shifts_of_the_efficientnet() {
    assert!(is_bias_or_norm("_blocks.3._bn1.weight") && is_bias_or_norm("_bn0.bias"));
    assert!(is_bias_or_norm("fc1.bias") && !is_bias_or_norm("fc1.weight"));
    assert!(!is_bias_or_norm("_blocks.3._depthwise_conv.weight"));
    // A small input keeps the full network's 50 steps quick.
    let pretrained = Lite0Grey::<32>::build(&Cpu::seed_from_u64(3));
    let pixels = grey_images(6);
    let train = Examples {
        x: pixels.iter().map(|p| (p / 255.0 - 0.5) / 0.5).collect(),
        y: vec![0, 1, 0, 1, 0, 1],
        width: INPUT_LEN,
        num_classes: 2,
    };
    let mut stats_before = Vec::new();
    pretrained.visit_buffers(&mut |n, b| stats_before.push((n.to_string(), b.to_vec())));
    let run = run_strategy::<Lite0Grey<32>, EFFNET_FEATURES>(
        Strategy::BitFit,
        &pretrained,
        &train,
        0,
        None,
    )
    .unwrap();
    let before = pretrained.snapshot();
    let after = run.model.backbone.snapshot();
    let changed: Vec<&str> = before
        .iter()
        .zip(&after)
        .filter(|(b, a)| {
            b.1.iter()
                .zip(&a.1)
                .any(|(x, y)| x.to_bits() != y.to_bits())
        })
        .map(|(b, _)| b.0.as_str())
        .collect();
    assert!(changed.iter().all(|n| is_bias_or_norm(n)), "{changed:?}");
    for name in [
        "_bn0.weight",
        "_bn0.bias",
        "_blocks.15._bn2.bias",
        "_bn1.weight",
    ] {
        assert!(changed.contains(&name), "{name} did not train: {changed:?}");
    }
    let mut stats_after = Vec::new();
    run.model
        .backbone
        .visit_buffers(&mut |n, b| stats_after.push((n.to_string(), b.to_vec())));
    assert_eq!(
        stats_before, stats_after,
        "running statistics must stay frozen"
    );
}

#[derive(serde::Deserialize)]
struct Fixture {
    cases: Vec<Case>,
}

#[derive(serde::Deserialize)]
struct Case {
    side: usize,
    file_indices: Vec<usize>,
    pixels: Vec<Vec<u8>>,
    features: Vec<Vec<f32>>,
}

/// graft's features of `case`'s images, normalised as the protocol's sweeps normalise them.
fn graft_features<const SIDE: usize>(weights: &Path, case: &Case) -> Vec<f32> {
    let dev = Cpu::seed_from_u64(0);
    let mut model = Classifier::<Lite0Grey<SIDE>, EFFNET_FEATURES>::new(&dev, 2).unwrap();
    let scope = LoadScope::BackboneOnly { head: "_fc" };
    Checkpoint::open(weights)
        .unwrap()
        .load_into(&mut WithBuffers(&mut model), "efficientnet-lite0", scope)
        .unwrap();
    let norm = IMAGENET_LITE_NORMALIZATION;
    let x: Vec<f32> = case
        .pixels
        .iter()
        .flatten()
        .map(|&p| (f32::from(p) / 255.0 - norm.mean) / norm.std)
        .collect();
    let x: InputBatch = dev.tensor_from_vec(x, (case.pixels.len(), Const));
    model.backbone.forward(x).as_vec()
}

#[test]
fn features_of_animal_mnist_images_equal_pytorchs() {
    let Some(weights) = graft_test_support::effnet_weights() else {
        return;
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/lite0_grey_features.json");
    let fixture: Fixture = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert_eq!(fixture.cases.len(), 2);
    for case in &fixture.cases {
        let got = match case.side {
            96 => graft_features::<96>(&weights, case),
            224 => graft_features::<224>(&weights, case),
            other => panic!("no Lite0Grey<{other}> in this test"),
        };
        let want: Vec<f32> = case.features.iter().flatten().copied().collect();
        assert_eq!(got.len(), want.len());
        let scale = want.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let worst = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        eprintln!(
            "side {}: worst feature error {worst:.2e}, largest feature {scale:.3}",
            case.side
        );
        assert!(
            worst <= 1e-4 * scale,
            "side {}, images {:?}: worst error {worst} against a largest feature of {scale}",
            case.side,
            case.file_indices
        );
    }
}

#[test]
fn a_sweep_trains_scratch_as_the_convnet_and_reuses_the_imagenet_network() {
    let Some(weights) = graft_test_support::effnet_weights() else {
        return;
    };
    let tmp = std::env::temp_dir().join(format!("graft-imagenet-sweep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let cache = tmp.join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let in_cache = cache.join(IMAGENET_CHECKPOINT);
    std::fs::hard_link(&weights, &in_cache)
        .or_else(|_| std::fs::copy(&weights, &in_cache).map(|_| ()))
        .unwrap();
    let cfg = SweepConfig {
        protocol: Protocol::ImagenetAnimals,
        network: NetworkKind::Lite0,
        ks: vec![Some(5)],
        strategies: vec![Strategy::Scratch, Strategy::LinearProbe],
        seeds: vec![0],
        data: DataDirs {
            animal_mnist: graft_test_support::workspace_root().join("data/animal-mnist"),
            fashion_mnist: tmp.join("unused"),
        },
        cache_dir: cache,
        runs_dir: tmp.join("runs"),
        pretrain: PretrainConfig::default(),
        grid_g_per_kwh: 400.0,
        jobs: 2,
        training: Default::default(),
        resume: None,
        stop_after: None,
        shard: None,
    };
    let out = run_sweep(&cfg).unwrap();
    let r = &out.report;
    let networks: Vec<(&str, &str)> = r
        .results
        .iter()
        .map(|x| (x.strategy.as_str(), x.network.as_str()))
        .collect();
    assert_eq!(
        networks,
        [
            ("scratch", "convnet"),
            ("linear-probe", "efficientnet-lite0")
        ]
    );
    assert_eq!(r.test_evaluations, 2);
    assert_eq!(r.test_examples, 400);
    // A probe stores only its head; scratch, the whole convnet (PROTOCOLS.md's layer sizes).
    assert_eq!(r.results[1].trained_params, Some(1281 * 2));
    let convnet = (9 * 32 + 32) + (32 * 9 * 64 + 64) + (3136 * 128 + 128) + (128 * 2 + 2);
    assert_eq!(r.results[0].trained_params, Some(convnet));
    assert!(r
        .pretraining
        .source
        .as_deref()
        .unwrap()
        .contains("ImageNet"));
    let md = std::fs::read_to_string(out.dir.join("report.md")).unwrap();
    assert!(md.contains("ImageNet"), "{md}");
    // The ImageNet network on a protocol that pretrains, and the reverse, are refused
    // before anything is read or trained.
    for (protocol, network) in [
        (Protocol::Animals, NetworkKind::Lite0),
        (Protocol::ImagenetAnimals, NetworkKind::Mlp),
    ] {
        let e = run_sweep(&SweepConfig {
            protocol,
            network,
            ..cfg.clone()
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("--model") || e.contains("--protocol"), "{e}");
    }
    std::fs::remove_dir_all(&tmp).unwrap();
}
