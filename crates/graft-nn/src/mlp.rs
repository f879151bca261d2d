//! The `mlp` reference network's backbone: `Linear(784->512) ReLU Linear(512->256) ReLU`.

use dfdx::nn::modules::Linear;
use dfdx::nn::{builders, BuildOnDevice};
use dfdx::tensor::{Cpu, PutTape, Tape};

use crate::conv::InputGrad;
use crate::linear::linear_relu;
use crate::{Backbone, Features, InputBatch, Param, Parameters, INPUT_LEN};

/// Width of the `mlp` backbone's features.
pub const MLP_FEATURES: usize = 256;

/// Blocks `fc1` (784->512, ReLU) and `fc2` (512->256, ReLU); the head is `fc3`.
#[derive(Debug, Clone)]
pub struct MlpBackbone {
    /// First block: `Linear(784 -> 512)` then ReLU.
    pub fc1: Linear<INPUT_LEN, 512, f32, Cpu>,
    /// Second block: `Linear(512 -> 256)` then ReLU.
    pub fc2: Linear<512, MLP_FEATURES, f32, Cpu>,
}

impl Backbone<MLP_FEATURES> for MlpBackbone {
    const NAME: &'static str = "mlp";
    const HEAD_NAME: &'static str = "fc3";
    const BLOCKS: &'static [&'static str] = &["fc1", "fc2"];

    fn build(dev: &Cpu) -> Self {
        Self {
            fc1: builders::Linear::<INPUT_LEN, 512>::build_on_device(dev),
            fc2: builders::Linear::<512, MLP_FEATURES>::build_on_device(dev),
        }
    }

    fn forward<T: Tape<f32, Cpu>>(&self, x: InputBatch<T>) -> Features<MLP_FEATURES, T> {
        // The input is data: its gradient is never needed.
        let h = linear_relu(&self.fc1, x, InputGrad::Skip);
        linear_relu(&self.fc2, h, InputGrad::Compute)
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
                let h = linear_relu(&self.fc1, x, InputGrad::Skip).put_tape(tape);
                linear_relu(&self.fc2, h, InputGrad::Skip)
            }
            _ => {
                let h = linear_relu(&self.fc1, x, InputGrad::Skip);
                linear_relu(&self.fc2, h, InputGrad::Skip).put_tape(tape)
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

impl Parameters for MlpBackbone {
    fn visit_params(&self, f: &mut dyn FnMut(&str, &dyn Param)) {
        f("fc1.weight", &self.fc1.weight);
        f("fc1.bias", &self.fc1.bias);
        f("fc2.weight", &self.fc2.weight);
        f("fc2.bias", &self.fc2.bias);
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn Param)) {
        f("fc1.weight", &mut self.fc1.weight);
        f("fc1.bias", &mut self.fc1.bias);
        f("fc2.weight", &mut self.fc2.weight);
        f("fc2.bias", &mut self.fc2.bias);
    }
}
