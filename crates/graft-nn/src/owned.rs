//! [`OwnedParam`]: a trainable tensor whose values graft holds itself.
//!
//! dfdx 0.13 lends no slice of a tensor's values: every kernel that reads a weight through
//! dfdx copies it first (`copy_into`), on every forward pass. A fully connected layer's
//! weight is the largest operand of an mlp step (784 x 512 floats), and those copies were
//! ~6 % of the step. An `OwnedParam` keeps its values in an `Arc<Vec<f32>>` that kernels read
//! in place and that a backward pass shares instead of copying; writes go through
//! [`Param::write_from`] (copy-on-write, so a pending backward pass still sees the values its
//! forward pass used). Its gradient lives in dfdx's [`Gradients`] like any tensor's, under the
//! id of the dfdx tensor it was made from, so the tape, the optimisers and the checkpoints see
//! no difference.

use std::fmt;
use std::sync::Arc;

use dfdx::shapes::{HasShape, Shape};
use dfdx::tensor::{Cpu, CpuError, Gradients, Tensor, TensorFromVec};

use crate::{NnError, Param};

/// Finds (allocating zeros if absent) this parameter's gradient in a gradient store. dfdx's
/// gradient key type is private to it, so the key is held inside this closure.
pub(crate) type GradSlot = Arc<
    dyn for<'g> Fn(&'g mut Gradients<f32, Cpu>) -> Result<&'g mut [f32], CpuError> + Send + Sync,
>;

/// A trainable tensor of shape `S` with graft-held values (see the module docs).
#[derive(Clone)]
pub struct OwnedParam<S: Shape> {
    values: Arc<Vec<f32>>,
    shape: S,
    grad_slot: GradSlot,
}

impl<S: Shape> OwnedParam<S> {
    /// Takes `t`'s values and identity: gradients recorded for this parameter are stored
    /// under `t`'s id (so `t`, if kept, and this parameter share one gradient).
    pub fn from_tensor<T>(t: &Tensor<S, f32, Cpu, T>) -> Self {
        let mut values = vec![0.0; t.shape().num_elements()];
        t.copy_into(&mut values);
        let key = t.ghost();
        Self {
            values: Arc::new(values),
            shape: *t.shape(),
            grad_slot: Arc::new(move |grads: &mut Gradients<f32, Cpu>| {
                grads.get_or_alloc_mut(&key).map(|g| &mut g[..])
            }),
        }
    }

    /// The values, row-major, read in place.
    pub fn values(&self) -> &[f32] {
        &self.values
    }

    /// A shared handle on the current values, for a backward pass to hold (no copy).
    pub(crate) fn shared(&self) -> Arc<Vec<f32>> {
        Arc::clone(&self.values)
    }

    /// The finder of this parameter's gradient, for a backward pass to hold (it holds no values).
    pub(crate) fn grad_slot(&self) -> GradSlot {
        Arc::clone(&self.grad_slot)
    }

    /// This parameter's gradient in `grads`, allocated (zeros) if absent.
    pub(crate) fn grad_mut<'g>(
        &self,
        grads: &'g mut Gradients<f32, Cpu>,
    ) -> Result<&'g mut [f32], CpuError> {
        (self.grad_slot)(grads)
    }

    /// A dfdx tensor holding a copy of the values (a new tensor: its gradients are its own).
    pub fn to_tensor(&self, dev: &Cpu) -> Tensor<S, f32, Cpu> {
        dev.tensor_from_vec(self.values.to_vec(), self.shape)
    }
}

impl<S: Shape> fmt::Debug for OwnedParam<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedParam")
            .field("shape", &self.shape)
            .field("numel", &self.values.len())
            .finish()
    }
}

impl<S: Shape> Param for OwnedParam<S> {
    fn dims(&self) -> Vec<usize> {
        self.shape.concrete().into_iter().collect()
    }
    fn numel(&self) -> usize {
        self.values.len()
    }
    fn read_into(&self, out: &mut [f32]) {
        out.copy_from_slice(&self.values);
    }
    fn write_from(&mut self, src: &[f32]) {
        Arc::make_mut(&mut self.values).copy_from_slice(src);
    }
    fn grad<'g>(&self, grads: &'g mut Gradients<f32, Cpu>) -> Result<&'g [f32], NnError> {
        self.grad_mut(grads)
            .map(|g| &*g)
            .map_err(|e| NnError::Shape(format!("gradient allocation failed: {e:?}")))
    }
}

#[cfg(test)]
mod tests {
    use super::OwnedParam;
    use crate::Param;
    use dfdx::prelude::*;

    /// Values, shape and writes behave like the dfdx tensor's; a clone taken before a write
    /// keeps the old values (copy-on-write).
    #[test]
    fn owned_param_reads_writes_and_copies_on_write() {
        let dev = Cpu::seed_from_u64(1);
        let t: Tensor<Rank2<2, 3>, f32, Cpu> = dev.sample_normal();
        let mut p = OwnedParam::from_tensor(&t);
        assert_eq!(p.values(), t.as_vec().as_slice());
        assert_eq!(p.dims(), vec![2, 3]);
        let before = p.clone();
        p.write_from(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(p.to_vec(), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(before.values(), t.as_vec().as_slice());
    }

    /// The gradient slot is the source tensor's: a gradient dfdx records for `t` is the one
    /// `Param::grad` returns.
    #[test]
    fn owned_param_gradient_is_the_source_tensors() {
        let dev = Cpu::seed_from_u64(2);
        let t: Tensor<Rank1<4>, f32, Cpu> = dev.sample_normal();
        let p = OwnedParam::from_tensor(&t);
        let mut grads = (t.leaky_trace() * 3.0).sum().backward();
        assert_eq!(p.grad(&mut grads).unwrap(), &[3.0; 4]);
    }
}
