//! The reference networks against PyTorch (`convnet_ref.safetensors`, `mlp_ref.safetensors`):
//! logits, the summed cross-entropy and the gradient of every parameter, to
//! `max|ours - ref| / max(1, max|ref|) <= 1e-4`.

mod common;

use common::{assert_close, Refs};
use dfdx::prelude::*;
use graft_nn::{
    checkpoint, Backbone, Checkpoint, Classifier, ConvnetBackbone, ConvnetClassifier, InputBatch,
    LoadScope, Logits, NetworkKind, Parameters, INPUT_LEN,
};

const TOL: f64 = 1e-4;

/// Fills every parameter from `param.<name>`, checking that each file parameter is used.
fn load_params(model: &mut impl Parameters, r: &Refs) {
    let mut used = 0;
    model.visit_params_mut(&mut |name, p| {
        let key = format!("param.{name}");
        assert_eq!(r.shape(&key), p.dims(), "{key}");
        p.write_from(&r.f32(&key));
        used += 1;
    });
    let in_file = r.names().iter().filter(|n| n.starts_with("param.")).count();
    assert_eq!(used, in_file, "parameters in the file vs in the model");
}

/// The reference input, flattened to `(8, 784)`, and the labels.
fn input(dev: &Cpu, r: &Refs) -> (InputBatch, Vec<usize>) {
    let x = r.f32("input");
    let b = x.len() / INPUT_LEN;
    let labels = r.sizes("labels");
    assert_eq!(labels.len(), b);
    (dev.tensor_from_vec(x, (b, Const)), labels)
}

/// Summed cross-entropy of `logits` against `labels`.
fn loss_sum(
    dev: &Cpu,
    logits: Logits<OwnedTape<f32, Cpu>>,
    labels: &[usize],
) -> Tensor<(), f32, Cpu, OwnedTape<f32, Cpu>> {
    let (b, c) = *logits.shape();
    let mut onehot = vec![0.0f32; b * c];
    for (i, &l) in labels.iter().enumerate() {
        onehot[i * c + l] = 1.0;
    }
    let onehot: Tensor<(usize, usize), f32, Cpu> = dev.tensor_from_vec(onehot, (b, c));
    (logits.log_softmax::<Axis<1>>() * onehot).sum().negate()
}

/// Forward, loss and backward on the reference batch; checks logits, loss and all gradients.
fn check_network<B: Backbone<F>, const F: usize>(file: &str, classes: usize) {
    let r = Refs::open(file);
    let dev = Cpu::seed_from_u64(0);
    let mut model = Classifier::<B, F>::new(&dev, classes).unwrap();
    load_params(&mut model, &r);
    let (x, labels) = input(&dev, &r);

    let logits = model.forward(x.leaky_trace());
    assert_close(
        &format!("{file} logits"),
        &logits.as_vec(),
        &r.f32("logits"),
        TOL,
    );
    let loss = loss_sum(&dev, logits, &labels);
    assert_close(
        &format!("{file} loss_sum"),
        &[loss.array()],
        &r.f32("loss_sum"),
        TOL,
    );
    let mut grads = loss.backward();
    let mut checked = 0;
    model.visit_params(&mut |name, p| {
        let g = p.grad(&mut grads).unwrap().to_vec();
        assert_close(
            &format!("{file} grad.{name}"),
            &g,
            &r.f32(&format!("grad.{name}")),
            TOL,
        );
        checked += 1;
    });
    let in_file = r.names().iter().filter(|n| n.starts_with("grad.")).count();
    assert_eq!(checked, in_file);

    // Without a tape: the same logits.
    assert_close(
        &format!("{file} logits (no tape)"),
        &model.forward(x).as_vec(),
        &r.f32("logits"),
        TOL,
    );
}

#[test]
fn convnet_matches_pytorch() {
    check_network::<ConvnetBackbone, 128>("convnet_ref", 10);
}

#[test]
fn mlp_matches_pytorch() {
    check_network::<graft_nn::MlpBackbone, 256>("mlp_ref", 10);
}

/// `forward_frozen(x, n, tape)`: same logits; frozen blocks get zero gradients, the others
/// PyTorch's.
fn check_frozen<B: Backbone<F>, const F: usize>(file: &str) {
    let r = Refs::open(file);
    let dev = Cpu::seed_from_u64(0);
    let mut model = Classifier::<B, F>::new(&dev, 10).unwrap();
    load_params(&mut model, &r);
    let (x, labels) = input(&dev, &r);
    for frozen in 0..=B::BLOCKS.len() + 1 {
        let feats = model
            .backbone
            .forward_frozen(x.clone(), frozen, OwnedTape::default());
        let logits = model.head.forward(feats);
        assert_close(
            &format!("{file} frozen {frozen} logits"),
            &logits.as_vec(),
            &r.f32("logits"),
            TOL,
        );
        let mut grads = loss_sum(&dev, logits, &labels).backward();
        let frozen_names: Vec<&str> = B::BLOCKS.iter().take(frozen).copied().collect();
        model.visit_params(&mut |name, p| {
            let g = p.grad(&mut grads).unwrap().to_vec();
            let block = name.split('.').next().unwrap();
            if frozen_names.contains(&block) {
                assert!(
                    g.iter().all(|v| *v == 0.0),
                    "{file} frozen {frozen}: {name} has a gradient"
                );
            } else {
                assert_close(
                    &format!("{file} frozen {frozen} grad.{name}"),
                    &g,
                    &r.f32(&format!("grad.{name}")),
                    TOL,
                );
            }
        });
    }
}

#[test]
fn convnet_forward_frozen() {
    check_frozen::<ConvnetBackbone, 128>("convnet_ref");
}

#[test]
fn mlp_forward_frozen() {
    check_frozen::<graft_nn::MlpBackbone, 256>("mlp_ref");
}

#[test]
fn convnet_names_flops_and_checkpoint() {
    assert_eq!("convnet".parse::<NetworkKind>(), Ok(NetworkKind::Convnet));
    assert_eq!(NetworkKind::Convnet.name(), "convnet");
    assert_eq!(ConvnetBackbone::NAME, "convnet");
    assert_eq!(ConvnetBackbone::HEAD_NAME, "fc2");

    let dev = Cpu::seed_from_u64(3);
    let model = ConvnetClassifier::new(&dev, 10).unwrap();
    let mut names = Vec::new();
    model.visit_params(&mut |n, p| names.push((n.to_string(), p.dims())));
    let r = Refs::open("convnet_ref");
    let want: Vec<(String, Vec<usize>)> = [
        "conv1.weight",
        "conv1.bias",
        "conv2.weight",
        "conv2.bias",
        "fc1.weight",
        "fc1.bias",
        "fc2.weight",
        "fc2.bias",
    ]
    .iter()
    .map(|n| (n.to_string(), r.shape(&format!("param.{n}"))))
    .collect();
    assert_eq!(names, want);
    assert_eq!(
        model.num_params(),
        32 * 9 + 32 + 64 * 288 + 64 + 3136 * 128 + 128 + 1290
    );

    // conv1 (2*9+1)*32*784, ReLU 32*784, pool 32*196*4; conv2 (2*288+1)*64*196, ReLU 64*196,
    // pool 64*49*4; fc1 2*3136*128 + 2*128.
    let want = 476_672 + 25_088 + 25_088 + 7_237_888 + 12_544 + 12_544 + 803_072;
    assert_eq!(ConvnetBackbone::forward_flops_per_sample(), want);

    // Save, then reuse the backbone under a fresh 2-class head.
    let path = std::env::temp_dir().join(format!(
        "graft-nn-convnet-{}.safetensors",
        std::process::id()
    ));
    checkpoint::save(&path, &model, "convnet", None).unwrap();
    let mut cats_dogs = ConvnetClassifier::new(&dev, 2).unwrap();
    Checkpoint::open(&path)
        .unwrap()
        .load_into(
            &mut cats_dogs,
            "convnet",
            LoadScope::BackboneOnly { head: "fc2" },
        )
        .unwrap();
    assert_eq!(cats_dogs.backbone.snapshot(), model.backbone.snapshot());
    std::fs::remove_file(&path).unwrap();
}
