//! Transfer strategies: how a pretrained backbone is reused on the target task.

use std::time::Instant;

use dfdx::tensor::Cpu;
use graft_nn::{Backbone, Classifier, Head};

use crate::examples::Examples;
use crate::train::{
    accuracy, extract_features, progress_bar, train_classifier, train_head, LearningRates, Schedule,
};
use crate::TransferError;

/// Learning rate of anything trained from scratch and of every new head (PROTOCOLS.md).
pub const HEAD_LR: f32 = 1e-3;
/// Learning rate of a pretrained backbone when fine-tuning (PROTOCOLS.md).
pub const FINE_TUNE_BACKBONE_LR: f32 = 1e-4;

/// How the target network is obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Strategy {
    /// The same network, randomly initialised, trained on the target only (the baseline).
    Scratch,
    /// Pretrained backbone frozen; features computed once; a new head trained on them.
    LinearProbe,
    /// Pretrained backbone and a new head trained together, the backbone at a lower rate.
    FineTune,
}

impl Strategy {
    /// Every strategy, baseline first.
    pub const ALL: [Strategy; 3] = [Strategy::Scratch, Strategy::LinearProbe, Strategy::FineTune];

    /// The strategy's id in PROTOCOLS.md and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Strategy::Scratch => "scratch",
            Strategy::LinearProbe => "linear-probe",
            Strategy::FineTune => "fine-tune",
        }
    }
}

impl std::fmt::Display for Strategy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Strategy {
    type Err = TransferError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Strategy::ALL
            .into_iter()
            .find(|st| st.name() == s)
            .ok_or_else(|| {
                TransferError::Config(format!(
                    "unknown strategy `{s}`: expected one of scratch, linear-probe, fine-tune"
                ))
            })
    }
}

/// The outcome of one strategy on one k-shot training set.
#[derive(Debug, Clone)]
pub struct StrategyRun<B: Backbone<F>, const F: usize> {
    /// The trained target network.
    pub model: Classifier<B, F>,
    /// Seconds from start to trained model (feature extraction included).
    pub wall_seconds: f64,
    /// Training FLOPs (feature extraction included).
    pub flops: f64,
}

/// Runs `strategy` on `train`, reusing `pretrained` where the strategy does. `seed` seeds
/// the new weights and the batch order.
pub fn run_strategy<B: Backbone<F>, const F: usize>(
    strategy: Strategy,
    pretrained: &B,
    train: &Examples,
    seed: u64,
) -> Result<StrategyRun<B, F>, TransferError> {
    let dev = Cpu::seed_from_u64(seed);
    let schedule = Schedule::target_default(train.len());
    let bar = progress_bar(schedule.steps as u64, strategy.name());
    let start = Instant::now();
    let classes = train.num_classes;
    let (model, flops) = match strategy {
        Strategy::Scratch => {
            let mut model = Classifier::<B, F>::new(&dev, classes)?;
            let lrs = LearningRates {
                backbone: Some(HEAD_LR),
                head: HEAD_LR,
            };
            let stats = train_classifier(&dev, &mut model, train, lrs, schedule, seed, &bar)?;
            (model, stats.flops)
        }
        Strategy::FineTune => {
            let mut model = Classifier::with_new_head(&dev, pretrained.clone(), classes)?;
            let lrs = LearningRates {
                backbone: Some(FINE_TUNE_BACKBONE_LR),
                head: HEAD_LR,
            };
            let stats = train_classifier(&dev, &mut model, train, lrs, schedule, seed, &bar)?;
            (model, stats.flops)
        }
        Strategy::LinearProbe => {
            let features = extract_features(&dev, pretrained, train)?;
            let extract_flops = B::forward_flops_per_sample() as f64 * train.len() as f64;
            let mut head = Head::<F>::new(&dev, classes)?;
            let stats = train_head(&dev, &mut head, &features, HEAD_LR, schedule, seed, &bar)?;
            let model = Classifier {
                backbone: pretrained.clone(),
                head,
            };
            (model, extract_flops + stats.flops)
        }
    };
    bar.finish_and_clear();
    Ok(StrategyRun {
        model,
        wall_seconds: start.elapsed().as_secs_f64(),
        flops,
    })
}

/// Test accuracy of a trained run.
pub fn evaluate<B: Backbone<F>, const F: usize>(
    run: &StrategyRun<B, F>,
    test: &Examples,
) -> Result<f64, TransferError> {
    accuracy(&Cpu::default(), &run.model, test)
}
