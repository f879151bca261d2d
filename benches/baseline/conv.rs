//! graft-nn's convolution before the fused kernels (a verbatim copy, for the before/after
//! ratio measured in one run): 2-D convolution on stable dfdx: im2col + dfdx's (gemm) matmul, with its own backward pass.
//!
//! dfdx 0.13's `Conv2D` needs a nightly compiler; [`Conv2d`] is a drop-in for graft's CPU
//! networks. Kernel size, stride and padding are const generics, channel counts are static, and
//! batch size and image size are known only at run time. Layouts are PyTorch's: images are
//! `(batch, channels, rows, columns)`, the weight is `(out, in, k, k)`.
//!
//! Forward: the input is unfolded into a `(CI*K*K, batch*OH*OW)` column matrix (im2col), then
//! `Y = W · col` is one large matrix product (dfdx's CPU matmul: gemm, multi-threaded).
//! Backward: `dW = dY · colᵀ`, `db = Σ dY`, `dcol = Wᵀ · dY` folded back into `dX` (col2im).
//! Gradients are accumulated into [`dfdx::tensor::Gradients`] under the ids of the input,
//! the weight and the bias, exactly like dfdx's own layers, so optimisers find them with
//! `grads.get_or_alloc_mut(&conv.weight)`.

use std::cell::RefCell;

use dfdx::shapes::{Axes2, Const, HasShape, Rank1, Rank4, Shape};
use dfdx::tensor::{Cpu, NoneTape, PutTape, SampleTensor, SplitTape, Tape, Tensor, TensorFromVec};
use dfdx::tensor_ops::{PermuteTo, ReshapeTo, TryMatMul};

/// A batch of images with `C` channels, `(batch, C, rows, columns)`, on tape `T`.
pub type ImageBatch<const C: usize, T = NoneTape> =
    Tensor<(usize, Const<C>, usize, usize), f32, Cpu, T>;

/// Output length of a convolution or pooling along one axis: `(n + 2p - k) / s + 1`, or
/// `None` when the (padded) input is shorter than the kernel or the stride is zero.
pub(crate) const fn conv_out_len(n: usize, k: usize, s: usize, p: usize) -> Option<usize> {
    if s == 0 || k == 0 || n + 2 * p < k {
        None
    } else {
        Some((n + 2 * p - k) / s + 1)
    }
}

/// The geometry of one convolution call (all sizes concrete).
#[derive(Debug, Clone, Copy)]
struct Geom {
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    k: usize,
    s: usize,
    p: usize,
}

impl Geom {
    fn new(b: usize, c: usize, (h, w): (usize, usize), k: usize, s: usize, p: usize) -> Self {
        let (Some(oh), Some(ow)) = (conv_out_len(h, k, s, p), conv_out_len(w, k, s, p)) else {
            panic!(
                "conv2d: a {h}x{w} input with padding {p} is smaller than the {k}x{k} kernel \
                 (or the stride is 0)"
            );
        };
        Self {
            b,
            c,
            h,
            w,
            oh,
            ow,
            k,
            s,
            p,
        }
    }

    /// Columns of the im2col matrix: one per output pixel of the whole batch.
    fn ncols(&self) -> usize {
        self.b * self.oh * self.ow
    }

    /// Rows of the im2col matrix: `c * k * k`.
    fn nrows(&self) -> usize {
        self.c * self.k * self.k
    }
}

/// The output indices `o` in `0..n_out` with `0 <= o*s + kk - p < n_in`, as a half-open range.
fn valid_range(kk: usize, p: usize, s: usize, n_in: usize, n_out: usize) -> (usize, usize) {
    let lo = if kk >= p { 0 } else { (p - kk).div_ceil(s) };
    let hi = if n_in + p > kk {
        (n_in + p - kk).div_ceil(s).min(n_out)
    } else {
        0
    };
    (lo.min(hi), hi)
}

/// Unfolds `x` (`(b, c, h, w)`, contiguous) into `col` (`(c*k*k, b*oh*ow)`), appending every
/// value once, in order (no zero-filled buffer first).
fn im2col(x: &[f32], g: &Geom, col: &mut Vec<f32>) {
    let hw = g.h * g.w;
    for c in 0..g.c {
        for kh in 0..g.k {
            let (oy0, oy1) = valid_range(kh, g.p, g.s, g.h, g.oh);
            for kw in 0..g.k {
                let (ox0, ox1) = valid_range(kw, g.p, g.s, g.w, g.ow);
                for bi in 0..g.b {
                    let plane = &x[(bi * g.c + c) * hw..][..hw];
                    col.resize(col.len() + oy0 * g.ow, 0.0);
                    for oy in oy0..oy1 {
                        let iy = oy * g.s + kh - g.p;
                        let src = &plane[iy * g.w..][..g.w];
                        col.resize(col.len() + ox0, 0.0);
                        if ox1 == ox0 {
                            // No column of this kernel tap falls inside the image.
                        } else if g.s == 1 {
                            let ix0 = ox0 + kw - g.p;
                            col.extend_from_slice(&src[ix0..ix0 + (ox1 - ox0)]);
                        } else {
                            let ix0 = ox0 * g.s + kw - g.p;
                            col.extend(src[ix0..].iter().step_by(g.s).take(ox1 - ox0));
                        }
                        col.resize(col.len() + (g.ow - ox1), 0.0);
                    }
                    col.resize(col.len() + (g.oh - oy1) * g.ow, 0.0);
                }
            }
        }
    }
}

/// Folds `col` (`(c*k*k, b*oh*ow)`) back onto `gx` (`(b, c, h, w)`), adding.
fn col2im(col: &[f32], g: &Geom, gx: &mut [f32]) {
    let (hw, ohw, ncol) = (g.h * g.w, g.oh * g.ow, g.ncols());
    for c in 0..g.c {
        for kh in 0..g.k {
            let (oy0, oy1) = valid_range(kh, g.p, g.s, g.h, g.oh);
            for kw in 0..g.k {
                let (ox0, ox1) = valid_range(kw, g.p, g.s, g.w, g.ow);
                let r = (c * g.k + kh) * g.k + kw;
                let row = &col[r * ncol..(r + 1) * ncol];
                for bi in 0..g.b {
                    let plane = &mut gx[(bi * g.c + c) * hw..][..hw];
                    let srcp = &row[bi * ohw..][..ohw];
                    for oy in oy0..oy1 {
                        let iy = oy * g.s + kh - g.p;
                        let dst = &mut plane[iy * g.w..][..g.w];
                        let s = &srcp[oy * g.ow..][..g.ow];
                        if ox1 == ox0 {
                            // No column of this kernel tap falls inside the image.
                        } else if g.s == 1 {
                            let ix0 = ox0 + kw - g.p;
                            let d = &mut dst[ix0..ix0 + (ox1 - ox0)];
                            for (d, v) in d.iter_mut().zip(&s[ox0..ox1]) {
                                *d += *v;
                            }
                        } else {
                            for (ox, v) in s.iter().enumerate().take(ox1).skip(ox0) {
                                dst[ox * g.s + kw - g.p] += *v;
                            }
                        }
                    }
                }
            }
        }
    }
}

thread_local! {
    /// Reusable scratch buffers (they only grow), so that copying tensors out of dfdx does
    /// not allocate and zero-fill megabytes on every call.
    static SCRATCH: RefCell<Vec<Vec<f32>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on a scratch buffer of exactly `n` elements (contents unspecified).
pub(crate) fn with_scratch<R>(n: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut buf = SCRATCH.with(|s| s.borrow_mut().pop()).unwrap_or_default();
    if buf.len() < n {
        buf.resize(n, 0.0);
    }
    let r = f(&mut buf[..n]);
    SCRATCH.with(|s| s.borrow_mut().push(buf));
    r
}

/// Runs `f` on a copy of a contiguous tensor's values (one `memcpy` into a scratch buffer).
pub(crate) fn with_values<S: Shape, T, R>(
    t: &Tensor<S, f32, Cpu, T>,
    f: impl FnOnce(&[f32]) -> R,
) -> R {
    with_scratch(t.shape().num_elements(), |buf| {
        t.copy_into(buf);
        f(buf)
    })
}

/// `Conv2d(CI -> CO, kernel K, stride S, padding P)` with bias, like PyTorch's `nn.Conv2d`.
///
/// ```
/// use dfdx::prelude::*;
/// use graft_nn::conv::Conv2d;
///
/// let dev = Cpu::seed_from_u64(0);
/// let conv = Conv2d::<1, 8, 3, 2, 1>::new(&dev);
/// let x: Tensor<(usize, Const<1>, usize, usize), f32, _> = dev.zeros_like(&(4, Const, 28, 27));
/// let y = conv.forward(x);
/// assert_eq!(*y.shape(), (4, Const::<8>, 14, 14));
/// ```
#[derive(Debug, Clone)]
pub struct Conv2d<const CI: usize, const CO: usize, const K: usize, const S: usize, const P: usize>
{
    /// Filters, `(CO, CI, K, K)` (PyTorch layout).
    pub weight: Tensor<Rank4<CO, CI, K, K>, f32, Cpu>,
    /// Bias, `(CO,)`.
    pub bias: Tensor<Rank1<CO>, f32, Cpu>,
}

impl<const CI: usize, const CO: usize, const K: usize, const S: usize, const P: usize>
    Conv2d<CI, CO, K, S, P>
{
    /// Elements of one filter: `CI * K * K` (the fan-in).
    pub const FAN_IN: usize = CI * K * K;

    /// A layer initialised like PyTorch's `nn.Conv2d` (Kaiming uniform with `a = sqrt(5)`):
    /// weight and bias uniform in `±1/sqrt(CI*K*K)`, drawn from the device's seeded generator.
    pub fn new(dev: &Cpu) -> Self {
        const {
            assert!(
                CI > 0 && CO > 0 && K > 0 && S > 0,
                "conv2d needs channels, kernel and stride >= 1"
            )
        };
        let bound = 1.0 / (Self::FAN_IN as f32).sqrt();
        let scale =
            |t: Vec<f32>| -> Vec<f32> { t.into_iter().map(|u| (2.0 * u - 1.0) * bound).collect() };
        let w: Tensor<Rank4<CO, CI, K, K>, f32, Cpu> = dev.sample_uniform();
        let b: Tensor<Rank1<CO>, f32, Cpu> = dev.sample_uniform();
        Self {
            weight: dev.tensor_from_vec(scale(w.as_vec()), Default::default()),
            bias: dev.tensor_from_vec(scale(b.as_vec()), Default::default()),
        }
    }

    /// Output size `(rows, columns)` for an input of `h x w`, or `None` if it is too small.
    pub const fn output_size(h: usize, w: usize) -> Option<(usize, usize)> {
        match (conv_out_len(h, K, S, P), conv_out_len(w, K, S, P)) {
            (Some(oh), Some(ow)) => Some((oh, ow)),
            _ => None,
        }
    }

    /// FLOPs of one forward pass for one `h x w` image: 2 per multiply-add plus the bias.
    ///
    /// # Panics
    /// If the image is smaller than the kernel (see [`Conv2d::output_size`]).
    pub fn forward_flops(h: usize, w: usize) -> u64 {
        let (oh, ow) = Self::output_size(h, w).expect("conv2d: input smaller than the kernel");
        ((2 * Self::FAN_IN + 1) * CO * oh * ow) as u64
    }

    /// Convolves a batch; gradients for the input, weight and bias are recorded when `x`
    /// carries an owned tape.
    ///
    /// # Panics
    /// If the padded image is smaller than the kernel.
    pub fn forward<T: Tape<f32, Cpu>>(&self, x: ImageBatch<CI, T>) -> ImageBatch<CO, T> {
        let (x, mut tape) = x.contiguous().split_tape();
        let dev = x.device().clone();
        let (b, _, h, w) = *x.shape();
        let g = Geom::new(b, CI, (h, w), K, S, P);
        let (nrows, ncols, ohw) = (g.nrows(), g.ncols(), g.oh * g.ow);

        let mut col = Vec::with_capacity(nrows * ncols);
        with_values(&x, |xs| im2col(xs, &g, &mut col));
        let col = dev.tensor_from_vec(col, (nrows, ncols));
        let w2 = self.weight.clone().reshape_like(&(CO, nrows));
        let y = w2.clone().matmul(col.clone()); // (CO, b*oh*ow)

        // (CO, b, oh*ow) to (b, CO, oh*ow), adding the bias.
        let bias = self.bias.as_vec();
        let mut out = Vec::with_capacity(b * CO * ohw);
        with_values(&y, |y| {
            for bi in 0..b {
                for (co, &bv) in bias.iter().enumerate() {
                    let src = &y[co * ncols + bi * ohw..][..ohw];
                    out.extend(src.iter().map(|v| v + bv));
                }
            }
        });
        drop(y);
        let out = dev.tensor_from_vec(out, (b, Const::<CO>, g.oh, g.ow));

        if T::OWNS_TAPE {
            let x_g = x.ghost();
            let out_g = out.ghost();
            let w_g = self.weight.ghost();
            let b_g = self.bias.ghost();
            drop(x);
            tape.add_backward_op(move |grads| {
                // dY transposed to (CO, b*oh*ow), and the bias gradient on the way.
                let mut gt = Vec::with_capacity(CO * ncols);
                let mut gb = vec![0.0f32; CO];
                {
                    let gy = grads.get_or_alloc_mut(&out_g)?;
                    for (co, gbv) in gb.iter_mut().enumerate() {
                        for bi in 0..b {
                            let src = &gy[(bi * CO + co) * ohw..][..ohw];
                            gt.extend_from_slice(src);
                            *gbv += src.iter().sum::<f32>();
                        }
                    }
                }
                for (d, s) in grads.get_or_alloc_mut(&b_g)?.iter_mut().zip(&gb) {
                    *d += s;
                }
                let gt = dev.tensor_from_vec(gt, (CO, ncols));

                let gw = gt
                    .clone()
                    .try_matmul(col.permute::<(usize, usize), Axes2<1, 0>>())?;
                let gwb = grads.get_or_alloc_mut(&w_g)?;
                with_values(&gw, |gw| {
                    for (d, s) in gwb.iter_mut().zip(gw) {
                        *d += s;
                    }
                });

                let gcol = w2.permute::<(usize, usize), Axes2<1, 0>>().try_matmul(gt)?;
                let gx = grads.get_or_alloc_mut(&x_g)?;
                with_values(&gcol, |gcol| col2im(gcol, &g, gx));
                Ok(())
            });
        }
        out.put_tape(tape)
    }
}
