//! Runs one network's training step (forward, summed cross-entropy, backward; no optimiser)
//! in a loop, for a profiler: `perf record -g target/release/examples/profile_step mlp 64 500`.
//!
//! Arguments: network (`mlp` or `convnet`), batch size, steps. Prints samples/s.

use std::time::Instant;

use dfdx::prelude::*;
use graft::nn::{on_workers, Backbone, Classifier, ConvnetClassifier, MlpClassifier};

fn steps<B: Backbone<F> + Sync, const F: usize>(
    model: &Classifier<B, F>,
    b: usize,
    n: usize,
) -> f64 {
    let dev = Cpu::seed_from_u64(1);
    let x: Tensor<(usize, Const<784>), f32, Cpu> = dev.sample_uniform_like(&(b, Const));
    let mut onehot = vec![0.0f32; b * 10];
    for i in 0..b {
        onehot[i * 10 + i % 10] = 1.0;
    }
    let t: Tensor<(usize, usize), f32, Cpu> = dev.tensor_from_vec(onehot, (b, 10));
    let started = Instant::now();
    for _ in 0..n {
        drop(on_workers(|| {
            let logits = model.forward(x.clone().traced(Gradients::leaky()));
            (logits.log_softmax::<Axis<1>>() * t.clone())
                .sum()
                .negate()
                .backward()
        }));
    }
    (b * n) as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let net = args.get(1).map_or("mlp", String::as_str);
    let b: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(64);
    let n: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(500);
    let dev = Cpu::seed_from_u64(0);
    let rate = match net {
        "mlp" => steps(&MlpClassifier::new(&dev, 10).expect("10 classes"), b, n),
        "convnet" => steps(&ConvnetClassifier::new(&dev, 10).expect("10 classes"), b, n),
        other => {
            eprintln!("profile_step: unknown network `{other}`: expected mlp or convnet");
            std::process::exit(2);
        }
    };
    println!("{net} b{b}: {rate:.0} samples/s");
}
