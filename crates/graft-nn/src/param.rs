//! Named parameters: one object-safe view over dfdx tensors of any shape.
//!
//! Optimisers, checkpoints and freezing all walk a network through [`Parameters`], which
//! yields every trainable tensor with its PyTorch `state_dict` name (`fc1.weight`, ...).

use dfdx::shapes::{HasShape, Shape};
use dfdx::tensor::{Cpu, Gradients, Tensor};

use crate::NnError;

/// One trainable tensor, seen without its static shape.
pub trait Param {
    /// The tensor's shape, outermost dimension first (PyTorch order).
    fn dims(&self) -> Vec<usize>;
    /// Number of elements.
    fn numel(&self) -> usize;
    /// Copies the values (row-major) into `out`, which must hold [`Param::numel`] elements.
    fn read_into(&self, out: &mut [f32]);
    /// Overwrites the values from `src` (row-major, [`Param::numel`] elements).
    fn write_from(&mut self, src: &[f32]);
    /// The gradient of this tensor in `grads` (zeros if it took no part in the loss).
    fn grad<'g>(&self, grads: &'g mut Gradients<f32, Cpu>) -> Result<&'g [f32], NnError>;
    /// The values as a new vector.
    fn to_vec(&self) -> Vec<f32> {
        let mut v = vec![0.0; self.numel()];
        self.read_into(&mut v);
        v
    }
}

impl<S: Shape> Param for Tensor<S, f32, Cpu> {
    fn dims(&self) -> Vec<usize> {
        self.shape().concrete().into_iter().collect()
    }
    fn numel(&self) -> usize {
        self.shape().num_elements()
    }
    fn read_into(&self, out: &mut [f32]) {
        self.copy_into(out);
    }
    fn write_from(&mut self, src: &[f32]) {
        self.copy_from(src);
    }
    fn grad<'g>(&self, grads: &'g mut Gradients<f32, Cpu>) -> Result<&'g [f32], NnError> {
        let g = grads
            .get_or_alloc_mut(self)
            .map_err(|e| NnError::Shape(format!("gradient allocation failed: {e:?}")))?;
        Ok(g.as_slice())
    }
}

/// A network (or part of one) whose trainable tensors can be visited by name.
pub trait Parameters {
    /// Calls `f` with every parameter's full name and tensor, in a fixed order.
    fn visit_params(&self, f: &mut dyn FnMut(&str, &dyn Param));
    /// Calls `f` with every parameter's full name and mutable tensor, in the same order.
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn Param));
    /// Total number of trainable scalars.
    fn num_params(&self) -> usize {
        let mut n = 0;
        self.visit_params(&mut |_, p| n += p.numel());
        n
    }
    /// Every parameter's name and values, in visiting order (a snapshot, e.g. for L2-SP or tests).
    fn snapshot(&self) -> Vec<(String, Vec<f32>)> {
        let mut out = Vec::new();
        self.visit_params(&mut |name, p| out.push((name.to_string(), p.to_vec())));
        out
    }
}

/// A layer with one weight and one bias, named `<prefix>.weight` and `<prefix>.bias` as in
/// PyTorch's `state_dict` (convolutions, fully connected layers, heads).
pub trait Layer {
    /// The weight and the bias.
    fn weight_and_bias(&self) -> (&dyn Param, &dyn Param);
    /// The weight and the bias, mutably.
    fn weight_and_bias_mut(&mut self) -> (&mut dyn Param, &mut dyn Param);
    /// Visits `weight` and `bias` under `prefix` (e.g. `fc1.weight`).
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, &dyn Param)) {
        let (w, b) = self.weight_and_bias();
        f(&format!("{prefix}.weight"), w);
        f(&format!("{prefix}.bias"), b);
    }
    /// Visits `weight` and `bias` under `prefix`, mutably.
    fn visit_mut(&mut self, prefix: &str, f: &mut dyn FnMut(&str, &mut dyn Param)) {
        let (w, b) = self.weight_and_bias_mut();
        f(&format!("{prefix}.weight"), w);
        f(&format!("{prefix}.bias"), b);
    }
}
