//! The GPU probe path (`head_gpu::train_head_on_backend`, graft-cuda's linear-head trainer)
//! against graft-transfer's own head trainer (`train_head_with`, dfdx): the same start, the
//! same plan and seed must give the same head within f32 rounding. Run here on graft-cuda's
//! CPU backend; on a GPU the same trainer runs on the device (graft-cuda checks that the two
//! backends agree).

use dfdx::prelude::*;
use graft_cuda::Backend;
use graft_nn::{Head, Param};
use graft_transfer::head_gpu::train_head_on_backend;
use graft_transfer::optim::{AdamConfig, SgdConfig};
use graft_transfer::train::{
    progress_bar, train_head_with, LearningRates, Schedule, TrainControl, TrainPlan,
};
use graft_transfer::{Examples, LrSchedule, OptimizerConfig};

const F: usize = 16;

/// `n` rows of width F in 3 classes, each class shifted along its own features.
fn features(n: usize, seed: u64) -> Examples {
    let mut rng = graft_data::SplitMix64::new(seed);
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for i in 0..n {
        let c = i % 3;
        x.extend((0..F).map(|j| if j % 3 == c { 1.0 } else { 0.0 } + rng.next_f32() - 0.5));
        y.push(c);
    }
    Examples {
        x,
        y,
        width: F,
        num_classes: 3,
    }
}

fn plan(batch: usize, steps: usize, optimizer: OptimizerConfig, lr: LrSchedule) -> TrainPlan {
    let mut p = TrainPlan::uniform(
        Schedule { batch, steps },
        0,
        LearningRates {
            backbone: None,
            head: 1e-2,
        },
    );
    p.optimizer = optimizer;
    p.lr_schedule = lr;
    p
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn the_gpu_probe_path_trains_the_same_head_as_the_cpu_trainer() {
    let data = features(50, 1);
    let dev = Cpu::seed_from_u64(7);
    let start = Head::<F>::new(&dev, 3).unwrap();
    let bar = progress_bar(0, "test");
    let adamw = OptimizerConfig::AdamW {
        adam: AdamConfig::default(),
        weight_decay: 0.05,
    };
    for (name, plan) in [
        (
            "adam, constant",
            plan(8, 40, OptimizerConfig::default(), LrSchedule::Constant),
        ),
        (
            "adamw, warm-up cosine, uneven batches",
            plan(7, 30, adamw, LrSchedule::WarmupCosine { warmup: 0.2 }),
        ),
    ] {
        let mut cpu = start.clone();
        let want = train_head_with(
            &dev,
            &mut cpu,
            &data,
            &plan,
            3,
            &bar,
            TrainControl::default(),
        )
        .unwrap();
        let mut via_cuda_crate = start.clone();
        let got = train_head_on_backend(&Backend::Cpu, &mut via_cuda_crate, &data, &plan, 3, &bar)
            .unwrap()
            .expect("Adam and AdamW plans run on graft-cuda");
        let moved = max_diff(&cpu.weight.to_vec(), &start.weight.to_vec());
        assert!(moved > 0.05, "{name}: the head barely trained ({moved})");
        let dw = max_diff(&via_cuda_crate.weight.to_vec(), &cpu.weight.to_vec());
        let db = max_diff(&via_cuda_crate.bias.to_vec(), &cpu.bias.to_vec());
        assert!(
            dw <= 1e-4 && db <= 1e-4,
            "{name}: weights differ by {dw}, bias by {db}"
        );
        assert_eq!(got.steps, want.steps, "{name}");
        assert_eq!(got.flops, want.flops, "{name}");
        assert!(
            (got.final_loss - want.final_loss).abs() <= 1e-5 * (1.0 + want.final_loss),
            "{name}: final loss {} vs {}",
            got.final_loss,
            want.final_loss
        );
    }
}

#[test]
fn sgd_plans_are_left_to_the_cpu_trainer() {
    let data = features(20, 2);
    let dev = Cpu::seed_from_u64(3);
    let mut head = Head::<F>::new(&dev, 3).unwrap();
    let before = head.weight.to_vec();
    let sgd = plan(
        4,
        5,
        OptimizerConfig::Sgd(SgdConfig::default()),
        LrSchedule::Constant,
    );
    let bar = progress_bar(0, "test");
    let out = train_head_on_backend(&Backend::Cpu, &mut head, &data, &sgd, 0, &bar).unwrap();
    assert!(out.is_none());
    assert_eq!(head.weight.to_vec(), before);
}
