//! One training step's forward + backward of the reference networks at batch 64, timed and
//! printed (not asserted). Run with `cargo test -p graft-nn --test timing -- --nocapture`.

use std::time::Instant;

use dfdx::prelude::*;
use graft_nn::{Backbone, Classifier, ConvnetBackbone, InputBatch, MlpBackbone, Parameters};

fn time_step<B: Backbone<F>, const F: usize>(name: &str) {
    let dev = Cpu::seed_from_u64(0);
    let model = Classifier::<B, F>::new(&dev, 10).unwrap();
    let batch = 64;
    let x: InputBatch = dev.sample_uniform_like(&(batch, Const));
    let step = || {
        let logits = model.forward(x.leaky_trace());
        let mut grads = logits.square().mean().backward();
        let mut s = 0.0;
        model.visit_params(&mut |_, p| s += p.grad(&mut grads).unwrap()[0]);
        s
    };
    step();
    let reps = 10;
    let t = Instant::now();
    let mut acc = 0.0;
    for _ in 0..reps {
        acc += step();
    }
    let per_step = t.elapsed().as_secs_f64() / reps as f64;
    let t = Instant::now();
    for _ in 0..reps {
        acc += model.forward(x.clone()).as_vec()[0];
    }
    let fwd = t.elapsed().as_secs_f64() / reps as f64;
    let gflop = (B::forward_flops_per_sample() * batch as u64) as f64 * 1e-9;
    println!(
        "{name}: batch {batch}: forward+backward {:.2} ms, forward alone {:.2} ms \
         ({gflop:.2} GFLOP forward, {:.1} GFLOP/s forward) [{acc:.1e}]",
        per_step * 1e3,
        fwd * 1e3,
        gflop / fwd
    );
}

#[test]
fn step_time_batch_64() {
    time_step::<ConvnetBackbone, 128>("convnet");
    time_step::<MlpBackbone, 256>("mlp");
}
