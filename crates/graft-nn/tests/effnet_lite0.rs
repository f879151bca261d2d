//! EfficientNet-Lite0: its structure and training modes on small random networks (always),
//! and the real ImageNet network against PyTorch (`effnet_lite0_ref.safetensors`) when the
//! converted weights are present.
//!
//! The weights are read from `$GRAFT_EFFNET_WEIGHTS`, else from
//! `runs/cache/efficientnet-lite0.safetensors` under the workspace root (what `cargo xtask
//! fetch efficientnet-lite0` leaves); without them the reference test prints why and
//! passes, unless `GRAFT_REQUIRE_EFFNET=1`, which makes it fail.
//!
//! Tolerances, per element, with `b` the reference: `|a - b| <= tol * max(|b|, 1)` for block
//! outputs (tol 1e-3), features (1e-4) and logits (1e-3).
//!
//! Gradients: the reference is float64, and near ReLU6's clamps (0 and 6) an f32 forward pass
//! flips a few masks, which moves the gradients of the early layers locally. PyTorch itself in
//! float32, on the same weights and input, is off from this reference by 1.6e-2 of the largest
//! magnitude in `grad.input` and 2.3e-3 / 2.5e-3 in `_conv_stem.weight` /
//! `_blocks.1._expand_conv.weight` (graft: the same). So a gradient is checked as
//! `|a - b| <= worst * max|ref|` for every element, with `worst` = 1e-3 for the parameters
//! after the first two blocks and the float32 error PyTorch itself shows, rounded up (2e-2 for
//! the input, 5e-3 for the stem and blocks 0 and 1), before them.

mod common;

use common::Refs;
use dfdx::prelude::*;
use graft_nn::efficientnet::{
    EfficientNetClassifier, EfficientNetLite, Phase, EFFNET_FEATURES, LITE0_GROUPS,
};
use graft_nn::layers::{BnMode, Buffers, Images};
use graft_nn::{LoadScope, Parameters};

/// The worst `|a - b| / max(|b|, floor)`, or a message naming the first element over `tol`.
fn elementwise_error(got: &[f32], want: &[f32], floor: f64, tol: f64) -> Result<f64, String> {
    if got.len() != want.len() {
        return Err(format!("length {} vs {}", got.len(), want.len()));
    }
    let mut worst = 0.0f64;
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        let err = (*a as f64 - *b as f64).abs() / (*b as f64).abs().max(floor);
        if err > tol || err.is_nan() {
            return Err(format!("element {i}: {a} vs {b} (error {err:.2e})"));
        }
        worst = worst.max(err);
    }
    Ok(worst)
}

fn assert_close(what: &str, got: &[f32], want: &[f32], floor: f64, tol: f64) {
    match elementwise_error(got, want, floor, tol) {
        Ok(worst) => println!("{what}: worst relative error {worst:.2e} (tolerance {tol:.0e})"),
        Err(e) => panic!("{what}: {e}"),
    }
}

/// The largest magnitude of a tensor.
fn largest_magnitude(want: &[f32]) -> f64 {
    want.iter().map(|v| v.abs() as f64).fold(0.0, f64::max)
}

/// The bound on `max|a - b| / max|ref|` for a gradient (see the module docs).
fn worst_gradient_error(key: &str) -> f64 {
    match key {
        "grad.input" => 2e-2,
        "grad._conv_stem.weight" | "grad._bn0.weight" => 5e-3,
        k if k.starts_with("grad._blocks.0.") || k.starts_with("grad._blocks.1.") => 5e-3,
        _ => 1e-3,
    }
}

/// Checks one gradient: `max|a - b| <= worst * max|ref|` (see the module docs).
fn check_gradient(key: &str, got: &[f32], want: &[f32]) {
    let largest = largest_magnitude(want);
    assert_close(key, got, want, largest, worst_gradient_error(key));
}

fn images(dev: &Cpu, values: Vec<f32>, s: &[usize]) -> Images {
    dev.tensor_from_vec(values, (s[0], s[1], s[2], s[3]))
}

/// The converted ImageNet weights reproduce PyTorch's block outputs, features, logits and
/// the listed gradients.
#[test]
fn lite0_matches_pytorch_with_imagenet_weights() {
    let Some(path) = graft_test_support::effnet_weights() else {
        return;
    };
    let r = Refs::open("effnet_lite0_ref");
    let dev = Cpu::seed_from_u64(0);
    let mut net = EfficientNetClassifier::lite0(&dev, 1000).unwrap();
    net.load(&path, LoadScope::Whole).unwrap();
    let x = images(&dev, r.f32("input"), &r.shape("input"));

    for (name, units) in [("block0", 2), ("block7", 9), ("block15", 17)] {
        let got = net.backbone.forward_units(x.clone(), units);
        assert_eq!(got.shape().1, r.shape(name)[1], "{name} channels");
        assert_close(name, &got.as_vec(), &r.f32(name), 1.0, 1e-3);
    }
    let features = net.backbone.forward(x.leaky_trace(), BnMode::Eval);
    assert_close(
        "features",
        &features.as_vec(),
        &r.f32("features"),
        1.0,
        1e-4,
    );
    let logits = net.classify(features, Phase::Inference);
    assert_close("logits", &logits.as_vec(), &r.f32("logits"), 1.0, 1e-3);

    let upstream: Tensor<(usize, usize), f32, Cpu> =
        dev.tensor_from_vec(r.f32("grad_logits"), (1, 1000));
    let mut grads = (logits * upstream).sum().backward();
    check_gradient("grad.input", &grads.get(&x).as_vec(), &r.f32("grad.input"));
    let listed: Vec<String> = r
        .names()
        .into_iter()
        .filter(|n| n.starts_with("grad._"))
        .collect();
    let mut checked = 0;
    net.visit_params(&mut |name, p| {
        let key = format!("grad.{name}");
        if listed.contains(&key) {
            check_gradient(&key, p.grad(&mut grads).unwrap(), &r.f32(&key));
            checked += 1;
        }
    });
    assert_eq!(
        checked,
        listed.len(),
        "every listed gradient is a parameter"
    );
}

/// Names are the checkpoint's, each in one unit; the table gives 16 blocks and the shapes
/// run through any input size to 1280 features.
#[test]
fn lite0_structure_names_and_shapes() {
    let dev = Cpu::seed_from_u64(1);
    let net = EfficientNetClassifier::lite0(&dev, 7).unwrap();
    let backbone = &net.backbone;
    assert_eq!(backbone.blocks.len(), 16);
    assert_eq!(backbone.num_units(), 18);
    assert_eq!(
        LITE0_GROUPS.iter().map(|g| g.repeats).sum::<usize>(),
        backbone.blocks.len()
    );
    let mut names = Vec::new();
    net.visit_params(&mut |name, _| names.push(name.to_string()));
    net.visit_buffers(&mut |name, _| names.push(name.to_string()));
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "names are unique");
    for name in &names {
        let unit = backbone.unit_of(name);
        assert_eq!(unit.is_none(), name.starts_with("_fc."), "{name}");
    }
    assert!(names.contains(&"_blocks.15._bn2.running_var".to_string()));
    assert!(!names
        .iter()
        .any(|n| n.starts_with("_blocks.0._expand_conv")));
    assert_eq!(backbone.unit_of("_blocks.3._bn1.bias"), Some(4));
    assert_eq!(backbone.unit_of("_bn1.weight"), Some(17));

    for (h, w) in [(33, 20), (7, 9)] {
        let x: Images = dev.sample_normal_like(&(2, 3, h, w));
        let f = backbone.forward(x.clone(), BnMode::Eval);
        assert_eq!(*f.shape(), (2, Const::<EFFNET_FEATURES>));
        assert_eq!(*net.forward(x, Phase::Inference).shape(), (2, 7));
    }
    let flops = backbone.unit_forward_flops(224, 224);
    assert_eq!(flops.len(), 18);
    assert_eq!(flops.iter().sum::<u64>(), backbone.forward_flops(224, 224));
    // About 0.4 GFLOPs at 224 (EfficientNet-Lite0's published 0.4 G multiply-adds, times 2,
    // less the rest): checks the scale, not the exact count.
    let total = backbone.forward_flops(224, 224) as f64;
    assert!((0.7e9..1.0e9).contains(&total), "{total}");
    println!("EfficientNet-Lite0 forward FLOPs per 224x224 image: {total:.3e}");
}

/// `forward_frozen`: the same features as `forward`; frozen units get no gradient, the
/// others the same gradients as a full backward pass (to 1e-3 per element, floored at a
/// hundredth of the largest: the frozen units run with BatchNorm folded, which rounds
/// differently).
#[test]
fn lite0_forward_frozen_freezes_units() {
    let dev = Cpu::seed_from_u64(2);
    let net = EfficientNetLite::lite0(&dev);
    let x: Images = dev.sample_normal_like(&(2, 3, 16, 16));
    let full = net.forward(x.leaky_trace(), BnMode::Eval);
    let full_values = full.as_vec();
    let mut full_grads = full.square().sum().backward();
    for frozen in [0, 1, 5, 17, 18] {
        let f = net.forward_frozen(x.clone(), frozen, BnMode::Eval, OwnedTape::default());
        let diff = f
            .as_vec()
            .iter()
            .zip(&full_values)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(diff < 1e-5, "frozen {frozen}: features differ by {diff}");
        let mut grads = f.square().sum().backward();
        net.visit_params(&mut |name, p| {
            let g = p.grad(&mut grads).unwrap().to_vec();
            if net.unit_of(name).unwrap() < frozen {
                assert!(g.iter().all(|v| *v == 0.0), "frozen {frozen}: {name} moved");
            } else {
                let want = p.grad(&mut full_grads).unwrap().to_vec();
                let floor = (largest_magnitude(&want) / 100.0).max(1e-12);
                let check = elementwise_error(&g, &want, floor, 1e-3);
                assert!(check.is_ok(), "frozen {frozen}: {name}: {check:?}");
            }
        });
    }
}

/// Inference (BatchNorm folded into the convolutions, no tape) gives the features of the
/// taped eval-mode path, which runs BatchNorm as its own operation.
#[test]
fn lite0_folded_inference_equals_the_taped_path() {
    let dev = Cpu::seed_from_u64(4);
    let net = EfficientNetLite::lite0(&dev);
    // Non-trivial BatchNorm statistics, so that folding has something to fold.
    let mut net = net;
    let mut draw = 0u32;
    net.visit_buffers_mut(&mut |name, p| {
        draw += 1;
        let n = p.numel();
        let base = if name.ends_with("running_var") {
            1.0
        } else {
            0.0
        };
        let values: Vec<f32> = (0..n)
            .map(|i| base + 0.5 * (((i as u32 * 7 + draw) % 11) as f32 / 11.0))
            .collect();
        p.write_from(&values);
    });
    let x: Images = dev.sample_normal_like(&(2, 3, 21, 18));
    let taped = net.forward(x.leaky_trace(), BnMode::Eval).as_vec();
    let folded = net.forward(x, BnMode::Eval).as_vec();
    let scale = taped.iter().map(|v| v.abs()).fold(1.0, f32::max);
    let diff = taped
        .iter()
        .zip(&folded)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(
        diff <= 1e-5 * scale,
        "folded vs taped: {diff} (scale {scale})"
    );
}

/// Train mode moves the running statistics and (with dropout) changes the logits between
/// calls; frozen BatchNorm (eval mode while training) leaves the statistics alone.
#[test]
fn lite0_train_mode_updates_running_statistics_only_when_asked() {
    let dev = Cpu::seed_from_u64(3);
    let net = EfficientNetClassifier::lite0(&dev, 3).unwrap();
    let stats = |net: &EfficientNetClassifier| {
        let mut v = Vec::new();
        net.visit_buffers(&mut |_, p| v.extend(p.to_vec()));
        v
    };
    let before = stats(&net);
    let x: Images = dev.sample_normal_like(&(2, 3, 12, 12));
    let _ = net.forward(x.leaky_trace(), Phase::Training(BnMode::Eval));
    assert_eq!(stats(&net), before, "frozen BatchNorm keeps its statistics");
    let a = net.forward(x.leaky_trace(), Phase::Training(BnMode::Train));
    assert_ne!(stats(&net), before, "train mode updates them");
    let b = net.forward(x.clone(), Phase::Training(BnMode::Train));
    assert_ne!(a.as_vec(), b.as_vec(), "dropout draws a new mask");
    let c = net.forward(x.clone(), Phase::Inference);
    assert_eq!(c.as_vec(), net.forward(x, Phase::Inference).as_vec());
}
