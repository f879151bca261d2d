//! The `mlp` reference network's backbone: `Linear(784->512) ReLU Linear(512->256) ReLU`.

use dfdx::tensor::{Cpu, PutTape, Tape};

use crate::conv::InputGrad;
use crate::{Backbone, Dense, Features, InputBatch, Layer, Param, Parameters, INPUT_LEN};

/// Width of the `mlp` backbone's features.
pub const MLP_FEATURES: usize = 256;

/// Blocks `fc1` (784->512, ReLU) and `fc2` (512->256, ReLU); the head is `fc3`.
#[derive(Debug, Clone)]
pub struct MlpBackbone {
    /// First block: `Linear(784 -> 512)` then ReLU.
    pub fc1: Dense<INPUT_LEN, 512>,
    /// Second block: `Linear(512 -> 256)` then ReLU.
    pub fc2: Dense<512, MLP_FEATURES>,
}

impl Backbone<MLP_FEATURES> for MlpBackbone {
    const NAME: &'static str = "mlp";
    const HEAD_NAME: &'static str = "fc3";
    const BLOCKS: &'static [&'static str] = &["fc1", "fc2"];

    fn build(dev: &Cpu) -> Self {
        Self {
            fc1: Dense::new(dev),
            fc2: Dense::new(dev),
        }
    }

    fn forward<T: Tape<f32, Cpu>>(&self, x: InputBatch<T>) -> Features<MLP_FEATURES, T> {
        // The input is data: its gradient is never needed.
        let h = self.fc1.forward_relu(x, InputGrad::Skip);
        self.fc2.forward_relu(h, InputGrad::Compute)
    }

    fn forward_frozen<T: Tape<f32, Cpu>>(
        &self,
        x: InputBatch,
        frozen_blocks: usize,
        tape: T,
    ) -> Features<MLP_FEATURES, T> {
        match frozen_blocks {
            0 => self.forward(x.put_tape(tape)),
            1 => {
                let h = self.fc1.forward_relu(x, InputGrad::Skip).put_tape(tape);
                self.fc2.forward_relu(h, InputGrad::Skip)
            }
            _ => {
                let h = self.fc1.forward_relu(x, InputGrad::Skip);
                self.fc2.forward_relu(h, InputGrad::Skip).put_tape(tape)
            }
        }
    }

    fn forward_flops_per_sample() -> u64 {
        Self::block_forward_flops().iter().sum()
    }

    fn block_forward_flops() -> Vec<u64> {
        // 2*I*O for the matmul, O for the bias, O for the ReLU, per layer.
        let layer = |i: u64, o: u64| 2 * i * o + 2 * o;
        vec![
            layer(INPUT_LEN as u64, 512),
            layer(512, MLP_FEATURES as u64),
        ]
    }
}

/// No BatchNorm: no buffers.
impl crate::Buffers for MlpBackbone {}

impl Parameters for MlpBackbone {
    fn visit_params(&self, f: &mut dyn FnMut(&str, &dyn Param)) {
        self.fc1.visit("fc1", f);
        self.fc2.visit("fc2", f);
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn Param)) {
        self.fc1.visit_mut("fc1", f);
        self.fc2.visit_mut("fc2", f);
    }
}
