//! Adam over the tensors a text network trains (the fine-tuned blocks and head, or the LoRA
//! adapters / BitFit vectors and head): one optimiser for both, over [`TrainedTensors`].
//! Imports no other training module.

use dfdx::shapes::Shape;
use dfdx::tensor::{Cpu, Gradients, Tensor};

use crate::TextError;

/// A trained tensor seen without its shape.
pub(crate) trait Trainable {
    fn values(&self) -> Vec<f32>;
    fn set(&mut self, v: &[f32]);
    fn grad(&self, grads: &mut Gradients<f32, Cpu>) -> Result<Vec<f32>, TextError>;
}

impl<S: Shape> Trainable for Tensor<S, f32, Cpu> {
    fn values(&self) -> Vec<f32> {
        self.as_vec()
    }
    fn set(&mut self, v: &[f32]) {
        self.copy_from(v);
    }
    fn grad(&self, grads: &mut Gradients<f32, Cpu>) -> Result<Vec<f32>, TextError> {
        let g = grads
            .get_or_alloc_mut(self)
            .map_err(|e| TextError::Tensor(format!("{e:?}")))?;
        Ok(g.to_vec())
    }
}

/// A network whose trained tensors can be visited, each with its learning rate: `lr` for the
/// body's (blocks, adapters, biases), `head_lr` for the head's; the same order every call.
pub(crate) trait TrainedTensors {
    fn visit(&mut self, lr: f32, head_lr: f32, f: &mut dyn FnMut(&mut dyn Trainable, f32));
}

/// Adam's first and second moments of every trained tensor, in `visit` order.
pub(crate) struct Adam {
    moments: Vec<(Vec<f32>, Vec<f32>)>,
}

impl Adam {
    /// Zero moments for every tensor `net` trains.
    pub(crate) fn new(net: &mut dyn TrainedTensors) -> Self {
        let mut moments = Vec::new();
        net.visit(0.0, 0.0, &mut |t, _| {
            let n = t.values().len();
            moments.push((vec![0.0; n], vec![0.0; n]));
        });
        Self { moments }
    }

    /// One Adam step (`step` counted from 1) of every trained tensor from its gradient in
    /// `grads`.
    pub(crate) fn update(
        &mut self,
        net: &mut dyn TrainedTensors,
        grads: &mut Gradients<f32, Cpu>,
        lr: f32,
        head_lr: f32,
        step: usize,
    ) -> Result<(), TextError> {
        let mut slot = 0;
        let mut failed = None;
        net.visit(lr, head_lr, &mut |t, lr| {
            match t.grad(grads) {
                Ok(g) => {
                    let (m, v) = &mut self.moments[slot];
                    let mut w = t.values();
                    adam_step(&mut w, &g, m, v, lr, step);
                    t.set(&w);
                }
                Err(e) => failed = Some(e),
            }
            slot += 1;
        });
        failed.map_or(Ok(()), Err)
    }
}

/// One Adam step (PyTorch's defaults: betas 0.9, 0.999, eps 1e-8) on `w`.
pub(crate) fn adam_step(
    w: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    lr: f32,
    step: usize,
) {
    let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let (bc1, bc2) = (1.0 - b1.powi(step as i32), 1.0 - b2.powi(step as i32));
    for i in 0..w.len() {
        m[i] = b1 * m[i] + (1.0 - b1) * g[i];
        v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
        w[i] -= lr * (m[i] / bc1) / ((v[i] / bc2).sqrt() + eps);
    }
}
