//! EfficientNet-Lite's operators against PyTorch (`mbconv_cases.safetensors`: depthwise
//! convolutions, the SAME-padded stem, BatchNorm in eval and train mode with its running
//! statistics, ReLU6 and whole MBConv blocks): the forward pass and every gradient of
//! `sum(y * grad_y)`.
//!
//! Tolerance, per element: `|ours - ref| <= 1e-4 * max(|ref|, 1)`.

mod common;

use common::Refs;
use dfdx::prelude::*;
use graft_nn::conv::InputGrad;
use graft_nn::layers::{
    relu6, BatchNorm2d, BnMode, Buffers, DepthwiseConv2d, Images, MbConv, MbConvConfig, SameConv2d,
    SamePad,
};
use graft_nn::{Param, Parameters};

const TOL: f64 = 1e-4;

/// The worst `|a - b| / max(|b|, 1)` over the elements, or a message naming the first element
/// over `tol`.
fn elementwise_error(got: &[f32], want: &[f32], tol: f64) -> Result<f64, String> {
    if got.len() != want.len() {
        return Err(format!("length {} vs {}", got.len(), want.len()));
    }
    let mut worst = 0.0f64;
    for (i, (a, b)) in got.iter().zip(want).enumerate() {
        let err = (*a as f64 - *b as f64).abs() / (*b as f64).abs().max(1.0);
        if err > tol || err.is_nan() {
            return Err(format!("element {i}: {a} vs {b} (error {err:.2e})"));
        }
        worst = worst.max(err);
    }
    Ok(worst)
}

/// Asserts [`elementwise_error`] is within [`TOL`] and prints the worst error.
fn assert_close(what: &str, got: &[f32], want: &[f32]) {
    match elementwise_error(got, want, TOL) {
        Ok(worst) => println!("{what}: worst relative error {worst:.2e}"),
        Err(e) => panic!("{what}: {e}"),
    }
}

/// Tensor `name` as an image batch of its own shape.
fn images(dev: &Cpu, r: &Refs, name: &str) -> Images {
    let s = r.shape(name);
    dev.tensor_from_vec(r.f32(name), (s[0], s[1], s[2], s[3]))
}

/// The SAME padding of an axis, as `(before, after)`.
fn pads(input: usize, k: usize, s: usize) -> (usize, usize) {
    let p = SamePad::new(input, k, s);
    (p.before, p.after)
}

fn check_depthwise(r: &Refs, i: usize) {
    let key = |s: &str| format!("depthwise{i}.{s}");
    let cfg = r.sizes(&key("config"));
    let (c, h, w, k, s) = (cfg[1], cfg[2], cfg[3], cfg[4], cfg[5]);
    assert_eq!(
        (pads(h, k, s), pads(w, k, s)),
        ((cfg[6], cfg[7]), (cfg[8], cfg[9]))
    );
    let dev = Cpu::seed_from_u64(0);
    let mut conv = DepthwiseConv2d::new(&dev, c, k, s);
    conv.weight.write_from(&r.f32(&key("weight")));
    let x = images(&dev, r, &key("x"));
    let y = conv.forward(x.leaky_trace(), InputGrad::Compute);
    assert_close(&key("y"), &y.as_vec(), &r.f32(&key("y")));
    let mut grads = (y * images(&dev, r, &key("grad_y"))).sum().backward();
    assert_close(
        &key("grad_x"),
        &grads.get(&x).as_vec(),
        &r.f32(&key("grad_x")),
    );
    let gw = conv.weight.grad(&mut grads).unwrap().to_vec();
    assert_close(&key("grad_weight"), &gw, &r.f32(&key("grad_weight")));
}

#[test]
fn depthwise_matches_pytorch() {
    let r = Refs::open("mbconv_cases");
    for i in 0..5 {
        check_depthwise(&r, i);
    }
}

#[test]
fn same_conv_stem_matches_pytorch() {
    let r = Refs::open("mbconv_cases");
    for i in 0..2 {
        let key = |s: &str| format!("stem{i}.{s}");
        let cfg = r.sizes(&key("config"));
        let (ci, h, w, co, k, s) = (cfg[1], cfg[2], cfg[3], cfg[4], cfg[5], cfg[6]);
        assert_eq!(
            (pads(h, k, s), pads(w, k, s)),
            ((cfg[7], cfg[8]), (cfg[9], cfg[10]))
        );
        let dev = Cpu::seed_from_u64(0);
        let mut conv = SameConv2d::new(&dev, (ci, co), k, s);
        conv.weight.write_from(&r.f32(&key("weight")));
        let x = images(&dev, &r, &key("x"));
        let y = conv.forward(x.leaky_trace(), InputGrad::Compute);
        assert_close(&key("y"), &y.as_vec(), &r.f32(&key("y")));
        let mut grads = (y * images(&dev, &r, &key("grad_y"))).sum().backward();
        assert_close(
            &key("grad_x"),
            &grads.get(&x).as_vec(),
            &r.f32(&key("grad_x")),
        );
        let gw = conv.weight.grad(&mut grads).unwrap().to_vec();
        assert_close(&key("grad_weight"), &gw, &r.f32(&key("grad_weight")));
    }
}

#[test]
fn batch_norm_matches_pytorch_in_eval_and_train_mode() {
    let r = Refs::open("mbconv_cases");
    for i in 0..3 {
        let key = |s: &str| format!("batchnorm{i}.{s}");
        let cfg = r.sizes(&key("config"));
        let mode = if cfg[4] == 1 {
            BnMode::Train
        } else {
            BnMode::Eval
        };
        let dev = Cpu::seed_from_u64(0);
        let mut bn = BatchNorm2d::new(&dev, cfg[1]);
        bn.weight.write_from(&r.f32(&key("weight")));
        bn.bias.write_from(&r.f32(&key("bias")));
        bn.running_mean.write_from(&r.f32(&key("running_mean")));
        bn.running_var.write_from(&r.f32(&key("running_var")));
        let x = images(&dev, &r, &key("x"));
        let y = bn.forward(x.leaky_trace(), mode);
        assert_close(&key("y"), &y.as_vec(), &r.f32(&key("y")));
        let mut grads = (y * images(&dev, &r, &key("grad_y"))).sum().backward();
        assert_close(
            &key("grad_x"),
            &grads.get(&x).as_vec(),
            &r.f32(&key("grad_x")),
        );
        let gw = bn.weight.grad(&mut grads).unwrap().to_vec();
        assert_close(&key("grad_weight"), &gw, &r.f32(&key("grad_weight")));
        let gb = bn.bias.grad(&mut grads).unwrap().to_vec();
        assert_close(&key("grad_bias"), &gb, &r.f32(&key("grad_bias")));
        let rm = bn.running_mean.values();
        assert_close(
            &key("running_mean_after"),
            &rm,
            &r.f32(&key("running_mean_after")),
        );
        let rv = bn.running_var.values();
        assert_close(
            &key("running_var_after"),
            &rv,
            &r.f32(&key("running_var_after")),
        );
    }
}

#[test]
fn relu6_matches_pytorch_at_the_edges() {
    let r = Refs::open("mbconv_cases");
    let dev = Cpu::seed_from_u64(0);
    let x: Tensor<(usize,), f32, Cpu> = dev.tensor_from_vec(r.f32("relu6.x"), (7,));
    let gy: Tensor<(usize,), f32, Cpu> = dev.tensor_from_vec(r.f32("relu6.grad_y"), (7,));
    let y = relu6(x.leaky_trace());
    assert_close("relu6.y", &y.as_vec(), &r.f32("relu6.y"));
    let grads = (y * gy).sum().backward();
    assert_close(
        "relu6.grad_x",
        &grads.get(&x).as_vec(),
        &r.f32("relu6.grad_x"),
    );
}

/// Fills a block's parameters and buffers from `mbconv{i}.param.<name>`, checking that every
/// tensor of the file is used.
fn load_block(block: &mut MbConv, r: &Refs, prefix: &str) {
    let mut used = 0;
    let mut fill = |name: &str, p: &mut dyn Param| {
        let key = format!("{prefix}.param.{name}");
        assert_eq!(r.shape(&key), p.dims(), "{key}");
        p.write_from(&r.f32(&key));
        used += 1;
    };
    block.visit_params_mut(&mut fill);
    block.visit_buffers_mut(&mut fill);
    let in_file = r
        .names()
        .iter()
        .filter(|n| n.starts_with(&format!("{prefix}.param.")))
        .count();
    assert_eq!(
        used, in_file,
        "{prefix}: parameters and buffers in the file vs the block"
    );
}

#[test]
fn mbconv_blocks_match_pytorch() {
    let r = Refs::open("mbconv_cases");
    for i in 0..2 {
        let prefix = format!("mbconv{i}");
        let key = |s: &str| format!("{prefix}.{s}");
        let cfg = r.sizes(&key("config"));
        let config = MbConvConfig {
            in_channels: cfg[1],
            expand_ratio: cfg[4],
            out_channels: cfg[5],
            kernel: cfg[6],
            stride: cfg[7],
        };
        let dev = Cpu::seed_from_u64(0);
        let mut block = MbConv::new(&dev, config);
        load_block(&mut block, &r, &prefix);
        let x = images(&dev, &r, &key("x"));
        let y = block.forward(x.leaky_trace(), BnMode::Eval, InputGrad::Compute);
        assert_close(&key("y"), &y.as_vec(), &r.f32(&key("y")));
        let mut grads = (y * images(&dev, &r, &key("grad_y"))).sum().backward();
        assert_close(
            &key("grad_x"),
            &grads.get(&x).as_vec(),
            &r.f32(&key("grad_x")),
        );
        let mut checked = 0;
        block.visit_params(&mut |name, p| {
            let g = p.grad(&mut grads).unwrap().to_vec();
            assert_close(
                &key(&format!("grad.{name}")),
                &g,
                &r.f32(&key(&format!("grad.{name}"))),
            );
            checked += 1;
        });
        let in_file = r
            .names()
            .iter()
            .filter(|n| n.starts_with(&key("grad.")))
            .count();
        assert_eq!(checked, in_file);
        // Without a tape: the same output, and with BatchNorm folded into the convolutions.
        let y0 = block.forward(x.clone(), BnMode::Eval, InputGrad::Compute);
        assert_close(&key("y (no tape)"), &y0.as_vec(), &r.f32(&key("y")));
        let folded = block.forward_inference(x);
        assert_close(&key("y (folded)"), &folded.as_vec(), &r.f32(&key("y")));
    }
}

/// The comparison can fail: the depthwise output with one element moved by twice the
/// tolerance is rejected, and a wrong padding (everything shifted by one column) is too.
#[test]
fn the_tolerance_rejects_small_errors() {
    let r = Refs::open("mbconv_cases");
    let want = r.f32("depthwise1.y");
    assert!(elementwise_error(&want, &want, TOL).is_ok());
    let mut off = want.clone();
    off[7] += (2.0 * TOL * (want[7].abs() as f64).max(1.0)) as f32;
    assert!(elementwise_error(&off, &want, TOL).is_err());
    let mut shifted = want.clone();
    shifted.rotate_left(1);
    assert!(elementwise_error(&shifted, &want, TOL).is_err());
}
