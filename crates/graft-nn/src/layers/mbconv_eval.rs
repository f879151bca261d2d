//! [`MbConv`] with BatchNorm in eval mode (inference, or BatchNorm frozen while the rest
//! trains) as one dfdx operation with its own backward pass.
//!
//! Run as separate operations, a block keeps the input of every operation for the backward
//! pass: the expand output, the first BatchNorm's ReLU6 mask, the depthwise input, ... This
//! operation keeps only the block's input and the outputs of its three convolutions (before
//! BatchNorm), and recomputes the BatchNorm and ReLU6 values in the backward pass (one cheap
//! elementwise pass each): about half the memory of the separate operations. Gradients: as
//! the separate operations (eval-mode BatchNorm `dx = γ dy / sqrt(σ² + eps)`, ReLU6 passing
//! only where `0 < z < 6`), checked against PyTorch through the MBConv and network tests.

use std::sync::Arc;

use dfdx::shapes::HasShape;
use dfdx::tensor::{Cpu, PutTape, SplitTape, Tape, TensorFromVec};
use dfdx::tensor_ops::ReshapeTo;
use rayon::prelude::*;

use super::depthwise::{depthwise_grads, depthwise_values};
use super::pointwise::{pointwise_grads, pointwise_values};
use super::{add_into, BatchNorm2d, Images, MbConv, Shape4};
use crate::conv::{values, InputGrad};
use crate::owned::GradSlot;

/// An eval-mode BatchNorm as per-channel constants.
struct EvalBn {
    mean: Vec<f32>,
    inv_std: Vec<f32>,
    /// `γ / sqrt(σ² + eps)`.
    scale: Vec<f32>,
    /// `β - μ scale`.
    shift: Vec<f32>,
    gamma_slot: GradSlot,
    beta_slot: GradSlot,
}

impl EvalBn {
    fn of(bn: &BatchNorm2d) -> Self {
        let mean = bn.running_mean.values();
        let inv_std = bn
            .running_var
            .values()
            .iter()
            .map(|v| 1.0 / (v + bn.eps).sqrt())
            .collect::<Vec<f32>>();
        let (scale, shift) = bn.scale_shift();
        Self {
            mean,
            inv_std,
            scale,
            shift,
            gamma_slot: bn.weight.grad_slot(),
            beta_slot: bn.bias.grad_slot(),
        }
    }

    /// `BN(z)` (then ReLU6 when `relu6`) of `z` (`(b, c, plane)`).
    fn apply(&self, z: &[f32], plane: usize, relu6: bool) -> Vec<f32> {
        let c = self.scale.len();
        let mut y = z.to_vec();
        y.par_chunks_mut(plane.max(1))
            .enumerate()
            .for_each(|(p, yp)| {
                let (s, t) = (self.scale[p % c], self.shift[p % c]);
                for v in yp.iter_mut() {
                    let bn = *v * s + t;
                    *v = if relu6 { bn.clamp(0.0, 6.0) } else { bn };
                }
            });
        y
    }

    /// The backward pass of `ReLU6(BN(z))` (or `BN(z)`): returns `dz` from `dy`, and adds
    /// `dγ`, `dβ` to their gradients.
    fn backward(
        &self,
        z: &[f32],
        gy: &[f32],
        plane: usize,
        relu6: bool,
        grads: &mut dfdx::tensor::Gradients<f32, Cpu>,
    ) -> Result<Vec<f32>, dfdx::tensor::CpuError> {
        let c = self.scale.len();
        let mut gz = vec![0.0f32; z.len()];
        let sums: Vec<(f64, f64)> = gz
            .par_chunks_mut(plane.max(1))
            .zip(z.par_chunks(plane.max(1)).zip(gy.par_chunks(plane.max(1))))
            .enumerate()
            .map(|(p, (gzp, (zp, gyp)))| {
                let ch = p % c;
                let (s, t, m, inv) = (
                    self.scale[ch],
                    self.shift[ch],
                    self.mean[ch],
                    self.inv_std[ch],
                );
                let (mut sum_g, mut sum_gx) = (0.0f64, 0.0f64);
                for ((d, &zv), &g) in gzp.iter_mut().zip(zp).zip(gyp) {
                    let pre = zv * s + t;
                    let g = if !relu6 || (pre > 0.0 && pre < 6.0) {
                        g
                    } else {
                        0.0
                    };
                    sum_g += g as f64;
                    sum_gx += (g * (zv - m) * inv) as f64;
                    *d = g * s;
                }
                (sum_g, sum_gx)
            })
            .collect();
        let (gamma, beta) = (&self.gamma_slot, &self.beta_slot);
        for (p, (sg, sgx)) in sums.iter().enumerate() {
            gamma(grads)?[p % c] += *sgx as f32;
            beta(grads)?[p % c] += *sg as f32;
        }
        Ok(gz)
    }
}

/// What the forward pass keeps for the backward pass.
struct Saved {
    x: Vec<f32>,
    /// The expand convolution's output, when the block has one.
    expanded: Option<Vec<f32>>,
    /// The depthwise convolution's output.
    depthwise: Vec<f32>,
    /// The project convolution's output.
    projected: Vec<f32>,
}

/// The block's sizes: input `(b, cin, h, w)`, `mid` channels, output `(cout, oh, ow)`.
#[derive(Clone, Copy)]
struct Sizes {
    input: Shape4,
    mid: usize,
    out: Shape4,
    k: usize,
    s: usize,
}

/// A weight for the backward pass: its values and where its gradient goes.
type WeightAndSlot = (Arc<Vec<f32>>, GradSlot);

/// The block's three BatchNorms in eval mode (the expand one only with an expansion).
struct EvalBns {
    bn0: Option<EvalBn>,
    bn1: EvalBn,
    bn2: EvalBn,
}

impl MbConv {
    /// The block with BatchNorm in eval mode as one operation (see the module docs).
    pub(crate) fn forward_eval_fused<T: Tape<f32, Cpu>>(
        &self,
        x: Images<T>,
        input_grad: InputGrad,
    ) -> Images<T> {
        let (x, mut tape) = x.contiguous().split_tape();
        let dev = x.device().clone();
        let sz = self.sizes(*x.shape());
        let bns = EvalBns {
            bn0: self.expand.as_ref().map(|(_, bn)| EvalBn::of(bn)),
            bn1: EvalBn::of(&self.bn1),
            bn2: EvalBn::of(&self.bn2),
        };
        let (y, saved) = self.forward_values(values(&x), sz, &bns);
        let out = dev.tensor_from_vec(y, sz.out);
        if !T::OWNS_TAPE {
            return out.put_tape(tape);
        }
        let backward = FusedBackward {
            saved,
            expand_w: self
                .expand
                .as_ref()
                .map(|(conv, _)| (conv.weight.shared(), conv.weight.grad_slot())),
            depthwise_w: (
                self.depthwise.weight.shared(),
                self.depthwise.weight.grad_slot(),
            ),
            project_w: (
                self.project.weight.shared(),
                self.project.weight.grad_slot(),
            ),
            bns,
            sz,
            residual: self.config.has_residual(),
            input_grad,
        };
        let (x_g, out_g) = (x.ghost(), out.ghost());
        drop(x);
        tape.add_backward_op(move |grads| {
            let gy: Vec<f32> = std::mem::take(&mut **grads.get_or_alloc_mut(&out_g)?);
            if let Some(gx) = backward.run(&gy, grads)? {
                add_into(grads.get_or_alloc_mut(&x_g)?, &gx);
            }
            Ok(())
        });
        out.put_tape(tape)
    }

    /// The block's sizes for an input of shape `input`.
    fn sizes(&self, input: Shape4) -> Sizes {
        let (b, cin, h, w) = input;
        assert_eq!(cin, self.config.in_channels, "mbconv: channel count");
        let (oh, ow) = self.depthwise.output_size(h, w);
        Sizes {
            input,
            mid: self.config.mid_channels(),
            out: (b, self.config.out_channels, oh, ow),
            k: self.depthwise.kernel(),
            s: self.depthwise.stride,
        }
    }

    /// The block's output values from the input's (`xv`), and what the backward pass keeps.
    fn forward_values(&self, xv: Vec<f32>, sz: Sizes, bns: &EvalBns) -> (Vec<f32>, Saved) {
        let (b, _, h, w) = sz.input;
        let (_, _, oh, ow) = sz.out;
        let expanded = self
            .expand
            .as_ref()
            .map(|(conv, _)| pointwise_values(&xv, sz.input, conv.weight.values(), sz.mid));
        let r1 = match (&expanded, &bns.bn0) {
            (Some(e), Some(bn0)) => bn0.apply(e, h * w, true),
            _ => xv.clone(),
        };
        let depthwise = depthwise_values(
            &r1,
            (b, sz.mid, h, w),
            self.depthwise.weight.values(),
            (sz.k, sz.s),
        );
        drop(r1);
        let r2 = bns.bn1.apply(&depthwise, oh * ow, true);
        let projected = pointwise_values(
            &r2,
            (b, sz.mid, oh, ow),
            self.project.weight.values(),
            sz.out.1,
        );
        drop(r2);
        let mut y = bns.bn2.apply(&projected, oh * ow, false);
        if self.config.has_residual() {
            add_into(&mut y, &xv);
        }
        let saved = Saved {
            x: xv,
            expanded,
            depthwise,
            projected,
        };
        (y, saved)
    }
}

/// The fused block's backward pass: what the forward pass kept, the weights and where
/// their gradients go.
struct FusedBackward {
    saved: Saved,
    expand_w: Option<WeightAndSlot>,
    depthwise_w: WeightAndSlot,
    project_w: WeightAndSlot,
    bns: EvalBns,
    sz: Sizes,
    residual: bool,
    input_grad: InputGrad,
}

type Grads = dfdx::tensor::Gradients<f32, Cpu>;
type BackwardResult<T> = Result<T, dfdx::tensor::CpuError>;

impl FusedBackward {
    /// From the output's gradient `gy`, adds every weight's and BatchNorm parameter's
    /// gradient; returns the input's gradient when it is wanted (or the residual needs it).
    fn run(&self, gy: &[f32], grads: &mut Grads) -> BackwardResult<Option<Vec<f32>>> {
        let g_r2 = self.project(gy, grads)?;
        let g_r1 = self.depthwise(g_r2, grads)?;
        let mut gx = self.expand(&g_r1, grads)?;
        if let (Some(gx), true) = (gx.as_deref_mut(), self.residual) {
            add_into(gx, gy);
        }
        Ok(gx)
    }

    /// Project: BN2, then the 1x1 convolution. Returns the gradient of its input, r2.
    fn project(&self, gy: &[f32], grads: &mut Grads) -> BackwardResult<Vec<f32>> {
        let (b, _, oh, ow) = self.sz.out;
        let cout = self.sz.out.1;
        let (proj_w, proj_slot) = &self.project_w;
        let g_proj = self
            .bns
            .bn2
            .backward(&self.saved.projected, gy, oh * ow, false, grads)?;
        let r2 = self.bns.bn1.apply(&self.saved.depthwise, oh * ow, true);
        let mut g_r2 = vec![0.0f32; r2.len()];
        let gw = pointwise_grads(
            &r2,
            proj_w,
            &g_proj,
            (b, self.sz.mid, cout, oh * ow),
            Some(&mut g_r2),
        );
        add_into(proj_slot(grads)?, &gw);
        Ok(g_r2)
    }

    /// Depthwise: ReLU6(BN1), then the depthwise convolution. Returns the gradient of its
    /// input, r1 (the expansion's output, or the block's input).
    fn depthwise(&self, g_r2: Vec<f32>, grads: &mut Grads) -> BackwardResult<Vec<f32>> {
        let (b, _, h, w) = self.sz.input;
        let (_, _, oh, ow) = self.sz.out;
        let (dw_w, dw_slot) = &self.depthwise_w;
        let g_dw = self
            .bns
            .bn1
            .backward(&self.saved.depthwise, &g_r2, oh * ow, true, grads)?;
        drop(g_r2);
        let r1 = match (&self.saved.expanded, &self.bns.bn0) {
            (Some(e), Some(bn0)) => bn0.apply(e, h * w, true),
            _ => self.saved.x.clone(),
        };
        let mut g_r1 = vec![0.0f32; r1.len()];
        let gw = depthwise_grads(
            &r1,
            dw_w,
            &g_dw,
            (b, self.sz.mid, h, w),
            (self.sz.k, self.sz.s),
            Some(&mut g_r1),
        );
        add_into(dw_slot(grads)?, &gw);
        Ok(g_r1)
    }

    /// Expand: ReLU6(BN0), then the 1x1 convolution; or straight to the input. Returns the
    /// input's gradient so far when it is wanted (the residual's part is added by `run`).
    fn expand(&self, g_r1: &[f32], grads: &mut Grads) -> BackwardResult<Option<Vec<f32>>> {
        let (b, cin, h, w) = self.sz.input;
        let compute = self.input_grad == InputGrad::Compute;
        let mut gx = (compute || self.residual).then(|| vec![0.0f32; b * cin * h * w]);
        match (&self.saved.expanded, &self.bns.bn0, &self.expand_w) {
            (Some(e), Some(bn0), Some((ew, eslot))) => {
                let g_e = bn0.backward(e, g_r1, h * w, true, grads)?;
                let gx_part = if compute { gx.as_deref_mut() } else { None };
                let shape = (b, cin, self.sz.mid, h * w);
                let gw = pointwise_grads(&self.saved.x, ew, &g_e, shape, gx_part);
                add_into(eslot(grads)?, &gw);
            }
            _ => {
                if let (Some(gx), true) = (gx.as_deref_mut(), compute) {
                    add_into(gx, g_r1);
                }
            }
        }
        Ok(gx)
    }
}

#[cfg(test)]
mod tests {
    use dfdx::prelude::*;

    use crate::conv::InputGrad;
    use crate::layers::{relu6, residual_add, BnMode, Buffers, Images, MbConv, MbConvConfig};
    use crate::Parameters;

    /// The chain of separate operations that train mode runs, here with BatchNorm in eval mode.
    fn separate_ops<T: Tape<f32, Cpu>>(block: &MbConv, x: Images<T>) -> Images<T> {
        let skip = block.config.has_residual().then(|| x.retaped::<NoneTape>());
        let mode = BnMode::Eval;
        let h = match &block.expand {
            Some((conv, bn)) => relu6(bn.forward(conv.forward(x, InputGrad::Compute), mode)),
            None => x,
        };
        let h = relu6(
            block
                .bn1
                .forward(block.depthwise.forward(h, InputGrad::Compute), mode),
        );
        let y = block
            .bn2
            .forward(block.project.forward(h, InputGrad::Compute), mode);
        match skip {
            Some(skip) => residual_add(y, skip),
            None => y,
        }
    }

    /// The fused eval-mode block and the chain of separate operations agree in values and every
    /// gradient, with and without expansion and residual, on random BatchNorm statistics.
    #[test]
    fn fused_block_equals_the_separate_operations() {
        let dev = Cpu::seed_from_u64(5);
        for (expand_ratio, stride, out) in [(6, 1, 4), (1, 2, 6), (3, 2, 4)] {
            let config = MbConvConfig {
                in_channels: 4,
                out_channels: out,
                expand_ratio,
                kernel: 3,
                stride,
            };
            let mut block = MbConv::new(&dev, config);
            let mut draw = 0.0f32;
            block.visit_buffers_mut(&mut |name, p| {
                draw += 0.37;
                let base = if name.ends_with("running_var") {
                    0.5
                } else {
                    -0.2
                };
                let v: Vec<f32> = (0..p.numel())
                    .map(|i| base + ((i as f32 + draw) * 0.61).sin().abs())
                    .collect();
                p.write_from(&v);
            });
            let x: Images = dev.sample_normal_like(&(2, 4, 7, 6));
            let fused = block.forward(x.leaky_trace(), BnMode::Eval, InputGrad::Compute);
            let chain = separate_ops(&block, x.leaky_trace());
            let close = |a: &[f32], b: &[f32], what: &str| {
                let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
                let diff = a
                    .iter()
                    .zip(b)
                    .fold(0.0f32, |m, (p, q)| m.max((p - q).abs()));
                assert!(diff <= 1e-5 * scale, "{what}: {diff} (scale {scale})");
            };
            close(&fused.as_vec(), &chain.as_vec(), "values");
            let mut gf = fused.square().sum().backward();
            let mut gc = chain.square().sum().backward();
            close(&gf.get(&x).as_vec(), &gc.get(&x).as_vec(), "grad x");
            block.visit_params(&mut |name, p| {
                let a = p.grad(&mut gf).unwrap().to_vec();
                close(&a, p.grad(&mut gc).unwrap(), name);
            });
        }
    }
}
