//! The classification head: a linear layer whose class count is known only at run time.

use dfdx::shapes::HasShape;
use dfdx::shapes::{Axis, Const};
use dfdx::tensor::{Cpu, SampleTensor, Tape, Tensor, TensorFromVec};
use dfdx::tensor_ops::{BroadcastTo, PermuteTo, TryMatMul};

use crate::{Features, Layer, Logits, NnError, Param};

/// Largest class count a head accepts.
pub const MAX_CLASSES: usize = 1000;

/// `Linear(F -> classes)`, stored as PyTorch does: `weight` is `(classes, F)`, `bias` is `(classes,)`.
///
/// The input width `F` is a const generic, so a head that does not fit its backbone fails to
/// compile; the class count is a run-time value (2..=1000), read from a data set or checkpoint.
#[derive(Debug, Clone)]
pub struct Head<const F: usize> {
    /// Weight matrix, `(classes, F)`.
    pub weight: Tensor<(usize, Const<F>), f32, Cpu>,
    /// Bias vector, `(classes,)`.
    pub bias: Tensor<(usize,), f32, Cpu>,
}

impl<const F: usize> Head<F> {
    /// A new head initialised like PyTorch's `nn.Linear`: uniform in `±1/sqrt(F)`, drawn
    /// from the device's seeded generator.
    pub fn new(dev: &Cpu, classes: usize) -> Result<Self, NnError> {
        if !(2..=MAX_CLASSES).contains(&classes) {
            return Err(NnError::ClassCount {
                got: classes,
                max: MAX_CLASSES,
            });
        }
        let bound = 1.0 / (F as f32).sqrt();
        let scale = |t: Vec<f32>| t.into_iter().map(|u| (2.0 * u - 1.0) * bound).collect();
        let w: Tensor<(usize, Const<F>), f32, Cpu> = dev.sample_uniform_like(&(classes, Const));
        let b: Tensor<(usize,), f32, Cpu> = dev.sample_uniform_like(&(classes,));
        Ok(Self {
            weight: dev.tensor_from_vec(scale(w.as_vec()), (classes, Const)),
            bias: dev.tensor_from_vec(scale(b.as_vec()), (classes,)),
        })
    }

    /// Number of classes this head predicts.
    pub fn num_classes(&self) -> usize {
        self.bias.numel()
    }

    /// `x W^T + b`.
    pub fn forward<T: Tape<f32, Cpu>>(&self, x: Features<F, T>) -> Logits<T> {
        let w = self.weight.retaped::<T>().permute::<(Const<F>, usize), _>();
        let out = x.matmul(w);
        let shape = *out.shape();
        out + self
            .bias
            .retaped::<T>()
            .broadcast_like::<_, Axis<0>>(&shape)
    }

    /// Multiply-adds and additions of one forward pass, per sample.
    pub fn forward_flops_per_sample(&self) -> u64 {
        (2 * F * self.num_classes() + self.num_classes()) as u64
    }
}

impl<const F: usize> Layer for Head<F> {
    fn weight_and_bias(&self) -> (&dyn Param, &dyn Param) {
        (&self.weight, &self.bias)
    }
    fn weight_and_bias_mut(&mut self) -> (&mut dyn Param, &mut dyn Param) {
        (&mut self.weight, &mut self.bias)
    }
}
