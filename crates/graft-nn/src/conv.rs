//! 2-D convolution on stable dfdx: im2col + dfdx's (gemm) matmul, with its own backward pass.
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

use std::ops::Range;
use std::sync::Mutex;

use dfdx::shapes::{Const, HasShape, Rank1, Rank4, Shape};
use dfdx::tensor::{
    Cpu, CpuError, NoneTape, PutTape, SampleTensor, SplitTape, Tape, Tensor, TensorFromVec,
};
use dfdx::tensor_ops::ReshapeTo;

use crate::{Layer, Param};

/// A batch of images with `C` channels, `(batch, C, rows, columns)`, on tape `T`.
pub type ImageBatch<const C: usize, T = NoneTape> =
    Tensor<(usize, Const<C>, usize, usize), f32, Cpu, T>;

/// Output length of a convolution or pooling along one axis: `(n + 2p - k) / s + 1`, or
/// `None` when the (padded) input is shorter than the kernel or the stride is zero.
pub const fn conv_out_len(n: usize, k: usize, s: usize, p: usize) -> Option<usize> {
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

/// Unfolds `x` (`(b, c, h, w)`, contiguous) into `col` (`(c*k*k, b*oh*ow)`, exactly that
/// long), writing every element once.
fn im2col(x: &[f32], g: &Geom, col: &mut [f32]) {
    let (hw, ohw, ow) = (g.h * g.w, g.oh * g.ow, g.ow);
    let mut rows = col.chunks_exact_mut(g.ncols());
    for c in 0..g.c {
        for kh in 0..g.k {
            let (oy0, oy1) = valid_range(kh, g.p, g.s, g.h, g.oh);
            for kw in 0..g.k {
                let (ox0, ox1) = valid_range(kw, g.p, g.s, g.w, g.ow);
                let row = rows.next().expect("im2col: col is too short");
                for (bi, dst) in row.chunks_exact_mut(ohw).enumerate() {
                    let plane = &x[(bi * g.c + c) * hw..][..hw];
                    dst[..oy0 * ow].fill(0.0);
                    dst[oy1 * ow..].fill(0.0);
                    for oy in oy0..oy1 {
                        let iy = oy * g.s + kh - g.p;
                        let src = &plane[iy * g.w..][..g.w];
                        let d = &mut dst[oy * ow..][..ow];
                        d[..ox0].fill(0.0);
                        d[ox1.max(ox0)..].fill(0.0);
                        if ox1 <= ox0 {
                            // No column of this kernel tap falls inside the image.
                        } else if g.s == 1 {
                            let ix0 = ox0 + kw - g.p;
                            d[ox0..ox1].copy_from_slice(&src[ix0..ix0 + (ox1 - ox0)]);
                        } else {
                            let ix0 = ox0 * g.s + kw - g.p;
                            let from = src[ix0..].iter().step_by(g.s);
                            for (d, v) in d[ox0..ox1].iter_mut().zip(from) {
                                *d = *v;
                            }
                        }
                    }
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

/// Reusable scratch buffers (they only grow), shared by all threads, so that the kernels'
/// temporary matrices do not allocate and page-fault megabytes on every call.
static SCRATCH: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());

/// A buffer of exactly `n` elements taken from `SCRATCH` (contents unspecified) and given
/// back when dropped: it can be held from a forward pass into its backward pass.
pub(crate) struct ScratchBuf {
    buf: Vec<f32>,
    n: usize,
}

impl ScratchBuf {
    /// A buffer of `n` elements.
    pub(crate) fn take(n: usize) -> Self {
        let mut buf = {
            let mut pool = SCRATCH.lock().unwrap_or_else(|e| e.into_inner());
            // The smallest buffer that is large enough, else the largest one (to grow).
            let best = (0..pool.len())
                .filter(|&i| pool[i].len() >= n)
                .min_by_key(|&i| pool[i].len())
                .or_else(|| (0..pool.len()).max_by_key(|&i| pool[i].len()));
            best.map(|i| pool.swap_remove(i)).unwrap_or_default()
        };
        if buf.len() < n {
            buf.resize(n, 0.0);
        }
        Self { buf, n }
    }

    /// A copy of a contiguous tensor's values (one `memcpy`).
    pub(crate) fn copy_of<S: Shape, T>(t: &Tensor<S, f32, Cpu, T>) -> Self {
        let mut s = Self::take(t.shape().num_elements());
        t.copy_into(&mut s);
        s
    }
}

impl std::ops::Deref for ScratchBuf {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.buf[..self.n]
    }
}

impl std::ops::DerefMut for ScratchBuf {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buf[..self.n]
    }
}

impl Drop for ScratchBuf {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        SCRATCH.lock().unwrap_or_else(|e| e.into_inner()).push(buf);
    }
}

/// Runs `f` on a scratch buffer of exactly `n` elements (contents unspecified).
pub(crate) fn with_scratch<R>(n: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    f(&mut ScratchBuf::take(n))
}

/// A contiguous tensor's values in row-major order with one `memcpy` (dfdx's `as_vec` walks
/// every element through a strided index: ~18% of an mlp training step). Parameters are
/// contiguous; call `.contiguous()` on anything else first (a free no-op when it already is).
pub(crate) fn values<S: Shape, T>(t: &Tensor<S, f32, Cpu, T>) -> Vec<f32> {
    let mut v = vec![0.0f32; t.shape().num_elements()];
    t.copy_into(&mut v);
    v
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

/// Whether a convolution computes the gradient of its input (see [`Conv2d::forward_with`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputGrad {
    /// Gradients for the input, the weight and the bias (the default of [`Conv2d::forward`]).
    Compute,
    /// Gradients for the weight and the bias only: for a first layer, whose input is data.
    Skip,
}

/// What happens to the convolution's output `y + bias` before it is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Epilogue {
    /// Stored as is: `(b, co, oh, ow)`.
    Plain,
    /// 2x2 max pooling with stride 2 (floor), then ReLU: `(b, co, oh/2, ow/2)`.
    ReluPool2,
}

impl Epilogue {
    fn out_size(self, oh: usize, ow: usize) -> (usize, usize) {
        match self {
            Epilogue::Plain => (oh, ow),
            Epilogue::ReluPool2 => {
                assert!(
                    oh >= 2 && ow >= 2,
                    "max_pool2d: a {oh}x{ow} input is smaller than the 2x2 window"
                );
                (oh / 2, ow / 2)
            }
        }
    }
}

/// `c = a · b`, or `c += a · b` when `acc`, single-threaded, through the `gemm` crate (the
/// kernel dfdx's matmul uses); [`sgemm_par`] with [`gemm::Parallelism::None`]. `c` is `(m, n)` row-major; `a` is `(m, k)` row-major, or, when
/// `a_t`, stored as its `(k, m)` transpose; `b` likewise `(k, n)`, or `(n, k)` when `b_t`.
fn sgemm(
    mnk: (usize, usize, usize),
    c: &mut [f32],
    acc: bool,
    a: &[f32],
    a_t: bool,
    b: &[f32],
    b_t: bool,
) {
    sgemm_par(mnk, c, acc, (a, a_t), (b, b_t), gemm::Parallelism::None);
}

/// [`sgemm`] on `par`'s threads, with `a` and `b` given as `(values, transposed)`.
pub(crate) fn sgemm_par(
    (m, n, k): (usize, usize, usize),
    c: &mut [f32],
    acc: bool,
    (a, a_t): (&[f32], bool),
    (b, b_t): (&[f32], bool),
    par: gemm::Parallelism,
) {
    assert!(
        c.len() >= m * n && a.len() >= m * k && b.len() >= k * n,
        "sgemm: short buffer"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !acc {
            c[..m * n].fill(0.0);
        }
        return;
    }
    let (a_rs, a_cs) = if a_t { (1, m) } else { (k, 1) };
    let (b_rs, b_cs) = if b_t { (1, k) } else { (n, 1) };
    crate::gemm::gemm_strided(
        (m, n, k),
        (c, n, acc),
        (a, a_rs, a_cs),
        (b, b_rs, b_cs),
        par,
    );
}

/// Worker threads for graft's kernels: the current rayon pool's size (dfdx's and gemm's pool:
/// `RAYON_NUM_THREADS` if set, else the available parallelism; inside a sweep worker's own
/// pool, that pool's size).
pub(crate) fn num_threads() -> usize {
    rayon::current_num_threads()
}

/// Splits `0..b` into consecutive chunks of `cs` samples (the last may be shorter).
fn chunks(b: usize, cs: usize) -> Vec<Range<usize>> {
    (0..b.div_ceil(cs))
        .map(|i| i * cs..((i + 1) * cs).min(b))
        .collect()
}

/// Splits `v` into consecutive parts of `per * range.len()` elements, one per range.
fn split_parts<'a, E>(mut v: &'a mut [E], per: usize, ranges: &[Range<usize>]) -> Vec<&'a mut [E]> {
    ranges
        .iter()
        .map(|r| {
            let (head, tail) = std::mem::take(&mut v).split_at_mut(per * r.len());
            v = tail;
            head
        })
        .collect()
}

/// Processes `parts` on up to [`num_threads`] workers (this thread and scoped threads) that
/// take the next part from a shared queue (so a worker the OS preempts delays nobody), each
/// with its own state from `init`; returns every worker's final state.
fn run_parts<P: Send, W: Send>(
    parts: Vec<P>,
    init: impl Fn() -> W + Sync,
    work: impl Fn(&mut W, P) + Sync,
) -> Vec<W> {
    let workers = num_threads().min(parts.len()).max(1);
    let queue = Mutex::new(parts.into_iter());
    let worker = || {
        let mut state = init();
        loop {
            let next = queue.lock().unwrap_or_else(|e| e.into_inner()).next();
            match next {
                Some(p) => work(&mut state, p),
                None => return state,
            }
        }
    };
    if workers == 1 {
        return vec![worker()];
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = (1..workers).map(|_| s.spawn(worker)).collect();
        let mut out = vec![worker()];
        out.extend(
            handles
                .into_iter()
                .map(|h| h.join().expect("conv2d worker panicked")),
        );
        out
    })
}

/// Samples per work chunk: a column matrix plus output of about 128 Ki floats (512 KiB, in
/// L2), and at least two chunks per worker when the batch allows.
fn chunk_samples(g: &Geom, co: usize) -> usize {
    let per_sample = ((g.nrows() + co) * g.oh * g.ow).max(1);
    let by_cache = ((128 * 1024) / per_sample).max(1);
    by_cache.min(g.b.div_ceil(2 * num_threads())).max(1)
}

/// Adds `src` to `dst` elementwise.
fn add_into(dst: &mut [f32], src: &[f32]) {
    for (d, s) in dst.iter_mut().zip(src) {
        *d += *s;
    }
}

/// A worker's scratch buffers (taken from and returned to the shared pool).
struct Scratch {
    col: Vec<f32>,
    y: Vec<f32>,
    dcol: Vec<f32>,
}

impl Scratch {
    fn new() -> Self {
        let mut pool = SCRATCH.lock().unwrap_or_else(|e| e.into_inner());
        let mut take = || pool.pop().unwrap_or_default();
        Self {
            col: take(),
            y: take(),
            dcol: take(),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let mut pool = SCRATCH.lock().unwrap_or_else(|e| e.into_inner());
        for v in [&mut self.col, &mut self.y, &mut self.dcol] {
            let v = std::mem::take(v);
            if v.capacity() > 0 {
                pool.push(v);
            }
        }
    }
}

/// Grows `v` to at least `n` elements and returns its first `n` (contents unspecified).
fn prefix(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    if v.len() < n {
        v.resize(n, 0.0);
    }
    &mut v[..n]
}

/// The forward pass of a batch: `out` (`(b, co, oh', ow')` after the epilogue) from `x`
/// (`(b, c, h, w)`), the weight `(co, c*k*k)` and the bias. With `arg`, also records for every
/// pooled output which element of its 2x2 window was the maximum (0..4, row-major), or
/// [`RELU_OFF`] where ReLU clamped it.
#[allow(clippy::too_many_arguments)]
fn conv_forward(
    g: &Geom,
    co: usize,
    epi: Epilogue,
    x: &[f32],
    w: &[f32],
    bias: &[f32],
    out: &mut [f32],
    arg: Option<&mut [u8]>,
) {
    let (oh, ow) = epi.out_size(g.oh, g.ow);
    let out_per = co * oh * ow;
    let ranges = chunks(g.b, chunk_samples(g, co));
    let outs = split_parts(out, out_per, &ranges);
    let args: Vec<Option<&mut [u8]>> = match arg {
        Some(a) => split_parts(a, out_per, &ranges)
            .into_iter()
            .map(Some)
            .collect(),
        None => ranges.iter().map(|_| None).collect(),
    };
    let parts: Vec<_> = ranges.iter().cloned().zip(outs).zip(args).collect();
    let (in_per, ohw, kk) = (g.c * g.h * g.w, g.oh * g.ow, g.nrows());
    run_parts(parts, Scratch::new, |sc, ((r, out), arg)| {
        let n = r.len();
        let gc = Geom { b: n, ..*g };
        let ncols = n * ohw;
        let col = prefix(&mut sc.col, kk * ncols);
        im2col(&x[r.start * in_per..r.end * in_per], &gc, col);
        let y = prefix(&mut sc.y, co * ncols);
        sgemm((co, ncols, kk), y, false, w, false, col, false);
        match epi {
            Epilogue::Plain => {
                for bi in 0..n {
                    for (c, &bv) in bias.iter().enumerate() {
                        let src = &y[c * ncols + bi * ohw..][..ohw];
                        let dst = &mut out[(bi * co + c) * ohw..][..ohw];
                        for (d, v) in dst.iter_mut().zip(src) {
                            *d = v + bv;
                        }
                    }
                }
            }
            Epilogue::ReluPool2 => pool_relu_forward(y, g, (n, co), bias, out, arg),
        }
    });
}

/// The backward pass of a batch: returns `(dW, db)` and, with `gx`, adds `dX` into it.
/// `gy` is the gradient of the forward output (after the epilogue); `arg` the pooling
/// argmaxes recorded by [`conv_forward`] (for [`Epilogue::ReluPool2`]).
#[allow(clippy::too_many_arguments)]
fn conv_backward(
    g: &Geom,
    co: usize,
    epi: Epilogue,
    x: &[f32],
    w: &[f32],
    gy: &[f32],
    arg: &[u8],
    gx: Option<&mut [f32]>,
) -> (Vec<f32>, Vec<f32>) {
    let (oh, ow) = epi.out_size(g.oh, g.ow);
    let out_per = co * oh * ow;
    let (in_per, ohw, kk) = (g.c * g.h * g.w, g.oh * g.ow, g.nrows());
    let ranges = chunks(g.b, chunk_samples(g, co));
    let gxs: Vec<Option<&mut [f32]>> = match gx {
        Some(gx) => split_parts(gx, in_per, &ranges)
            .into_iter()
            .map(Some)
            .collect(),
        None => ranges.iter().map(|_| None).collect(),
    };
    let parts: Vec<_> = ranges.iter().cloned().zip(gxs).collect();
    let init = || (Scratch::new(), vec![0.0f32; co * kk], vec![0.0f32; co]);
    let partials = run_parts(parts, init, |(sc, gw, gb), (r, gx)| {
        let n = r.len();
        let gc = Geom { b: n, ..*g };
        let ncols = n * ohw;
        let dy = prefix(&mut sc.y, co * ncols);
        let gy = &gy[r.start * out_per..r.end * out_per];
        match epi {
            Epilogue::Plain => {
                for bi in 0..n {
                    for c in 0..co {
                        dy[c * ncols + bi * ohw..][..ohw]
                            .copy_from_slice(&gy[(bi * co + c) * ohw..][..ohw]);
                    }
                }
            }
            Epilogue::ReluPool2 => {
                let arg = &arg[r.start * out_per..r.end * out_per];
                pool_relu_backward(gy, arg, g, (n, co), dy);
            }
        }
        for (c, gbv) in gb.iter_mut().enumerate() {
            *gbv += dy[c * ncols..(c + 1) * ncols].iter().sum::<f32>();
        }
        let col = prefix(&mut sc.col, kk * ncols);
        im2col(&x[r.start * in_per..r.end * in_per], &gc, col);
        // dW += dY · colᵀ
        sgemm((co, kk, ncols), gw, true, dy, false, col, true);
        if let Some(gx) = gx {
            // dcol = Wᵀ · dY, folded back onto the input.
            let dcol = prefix(&mut sc.dcol, kk * ncols);
            sgemm((kk, ncols, co), dcol, false, w, true, dy, false);
            col2im(dcol, &gc, gx);
        }
    });
    let mut it = partials.into_iter().map(|(_, gw, gb)| (gw, gb));
    let (mut gw, mut gb) = it
        .next()
        .unwrap_or_else(|| (vec![0.0; co * kk], vec![0.0; co]));
    for (w2, b2) in it {
        add_into(&mut gw, &w2);
        add_into(&mut gb, &b2);
    }
    (gw, gb)
}

/// The pooling argmax recorded for an output that ReLU clamped to 0 (its gradient is 0).
const RELU_OFF: usize = 4;

/// The maximum of a 2x2 window `[a, b, c, d]` (row-major) plus `bias`, and its index:
/// the first maximum on ties, NaN counts as the maximum (the last NaN wins), exactly like
/// [`crate::MaxPool2d`]'s sequential scan. Branch-free (selects), since the comparisons are
/// unpredictable.
#[inline(always)]
fn max4(v: [f32; 4], bias: f32) -> (f32, u8) {
    let (mut max, mut best) = (f32::NEG_INFINITY, 0u8);
    for (i, v) in v.into_iter().enumerate() {
        let v = v + bias;
        let take = v > max || v.is_nan();
        max = if take { v } else { max };
        best = if take { i as u8 } else { best };
    }
    (max, best)
}

/// 2x2/2 max pooling of `y + bias` (`y` is `(co, n*oh*ow)`) into `out` (`(n, co, oh/2, ow/2)`),
/// then ReLU; first maximum on ties, NaN counts as the maximum (like [`crate::MaxPool2d`]).
fn pool_relu_forward(
    y: &[f32],
    g: &Geom,
    (n, co): (usize, usize),
    bias: &[f32],
    out: &mut [f32],
    mut arg: Option<&mut [u8]>,
) {
    let (ohw, ncols) = (g.oh * g.ow, n * g.oh * g.ow);
    let (ph, pw, ow) = (g.oh / 2, g.ow / 2, g.ow);
    for bi in 0..n {
        for (c, &bv) in bias.iter().enumerate().take(co) {
            let plane = &y[c * ncols + bi * ohw..][..ohw];
            let o0 = (bi * co + c) * ph * pw;
            for py in 0..ph {
                let r0 = &plane[2 * py * ow..][..2 * pw];
                let r1 = &plane[(2 * py + 1) * ow..][..2 * pw];
                let o = &mut out[o0 + py * pw..][..pw];
                let windows = r0.chunks_exact(2).zip(r1.chunks_exact(2));
                match arg.as_deref_mut() {
                    Some(a) => {
                        let a = &mut a[o0 + py * pw..][..pw];
                        for ((o, a), (t, u)) in o.iter_mut().zip(a).zip(windows) {
                            let (max, best) = max4([t[0], t[1], u[0], u[1]], bv);
                            *o = max.max(0.0);
                            *a = if max > 0.0 { best } else { RELU_OFF as u8 };
                        }
                    }
                    None => {
                        for (o, (t, u)) in o.iter_mut().zip(windows) {
                            *o = max4([t[0], t[1], u[0], u[1]], bv).0.max(0.0);
                        }
                    }
                }
            }
        }
    }
}

/// Scatters the pooled gradient `gy` (`(n, co, oh/2, ow/2)`), masked by ReLU (zero where the
/// output was not positive, i.e. where `gy`'s forward value was clamped), onto the window
/// maxima in `dy` (`(co, n*oh*ow)`, zeroed here).
fn pool_relu_backward(gy: &[f32], arg: &[u8], g: &Geom, (n, co): (usize, usize), dy: &mut [f32]) {
    let (ohw, ncols) = (g.oh * g.ow, n * g.oh * g.ow);
    let (ph, pw) = (g.oh / 2, g.ow / 2);
    dy.fill(0.0);
    for bi in 0..n {
        for c in 0..co {
            let plane = &mut dy[c * ncols + bi * ohw..][..ohw];
            let o0 = (bi * co + c) * ph * pw;
            for py in 0..ph {
                for px in 0..pw {
                    let (v, a) = (gy[o0 + py * pw + px], arg[o0 + py * pw + px] as usize);
                    if a != RELU_OFF {
                        plane[(2 * py + a / 2) * g.ow + 2 * px + a % 2] = v;
                    }
                }
            }
        }
    }
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
        self.forward_impl(x, Epilogue::Plain, InputGrad::Compute)
    }

    /// Convolves a batch like [`Conv2d::forward`] but, with [`InputGrad::Skip`], records
    /// gradients for the weight and bias only: for a network's first layer, whose input (the
    /// images) needs no gradient. `x`'s gradient is then never allocated.
    ///
    /// # Panics
    /// If the padded image is smaller than the kernel.
    pub fn forward_with<T: Tape<f32, Cpu>>(
        &self,
        x: ImageBatch<CI, T>,
        input_grad: InputGrad,
    ) -> ImageBatch<CO, T> {
        self.forward_impl(x, Epilogue::Plain, input_grad)
    }

    /// One fused `conv, ReLU, max_pool2d(2)` block: the same values and gradients as
    /// `MaxPool2d::<2, 2>.forward(conv.forward(x)).relu()` (pooling and ReLU commute; ties go
    /// to the first maximum of the window, NaN counts as the maximum), computed without
    /// materialising the convolution's output or its gradient as tensors.
    ///
    /// ```
    /// use dfdx::prelude::*;
    /// use graft_nn::conv::{Conv2d, InputGrad};
    ///
    /// let dev = Cpu::seed_from_u64(0);
    /// let conv = Conv2d::<1, 8, 3, 1, 1>::new(&dev);
    /// let x: Tensor<(usize, Const<1>, usize, usize), f32, _> = dev.zeros_like(&(4, Const, 28, 28));
    /// let y = conv.forward_relu_pool2(x, InputGrad::Skip);
    /// assert_eq!(*y.shape(), (4, Const::<8>, 14, 14));
    /// ```
    ///
    /// # Panics
    /// If the padded image is smaller than the kernel, or the convolution's output is smaller
    /// than the 2x2 window.
    pub fn forward_relu_pool2<T: Tape<f32, Cpu>>(
        &self,
        x: ImageBatch<CI, T>,
        input_grad: InputGrad,
    ) -> ImageBatch<CO, T> {
        self.forward_impl(x, Epilogue::ReluPool2, input_grad)
    }

    fn forward_impl<T: Tape<f32, Cpu>>(
        &self,
        x: ImageBatch<CI, T>,
        epi: Epilogue,
        input_grad: InputGrad,
    ) -> ImageBatch<CO, T> {
        let (x, mut tape) = x.contiguous().split_tape();
        let dev = x.device().clone();
        let (b, _, h, w) = *x.shape();
        let g = Geom::new(b, CI, (h, w), K, S, P);
        let (oh, ow) = epi.out_size(g.oh, g.ow);
        let wv = values(&self.weight);
        let bias = values(&self.bias);
        let keep_arg = T::OWNS_TAPE && epi == Epilogue::ReluPool2;
        let mut out = vec![0.0f32; b * CO * oh * ow];
        let mut arg = vec![0u8; if keep_arg { out.len() } else { 0 }];
        let xv = values(&x);
        conv_forward(
            &g,
            CO,
            epi,
            &xv,
            &wv,
            &bias,
            &mut out,
            keep_arg.then_some(&mut arg[..]),
        );
        let out = dev.tensor_from_vec(out, (b, Const::<CO>, oh, ow));

        if T::OWNS_TAPE {
            let x_g = x.ghost();
            let out_g = out.ghost();
            let w_g = self.weight.ghost();
            let b_g = self.bias.ghost();
            drop(x);
            tape.add_backward_op(move |grads| {
                with_scratch(b * CO * oh * ow, |gy| -> Result<(), CpuError> {
                    gy.copy_from_slice(grads.get_or_alloc_mut(&out_g)?);
                    let gx = match input_grad {
                        InputGrad::Compute => Some(&mut grads.get_or_alloc_mut(&x_g)?[..]),
                        InputGrad::Skip => None,
                    };
                    let (gw, gb) = conv_backward(&g, CO, epi, &xv, &wv, gy, &arg, gx);
                    add_into(grads.get_or_alloc_mut(&w_g)?, &gw);
                    add_into(grads.get_or_alloc_mut(&b_g)?, &gb);
                    Ok(())
                })
            });
        }
        out.put_tape(tape)
    }
}

impl<const CI: usize, const CO: usize, const K: usize, const S: usize, const P: usize> Layer
    for Conv2d<CI, CO, K, S, P>
{
    fn weight_and_bias(&self) -> (&dyn Param, &dyn Param) {
        (&self.weight, &self.bias)
    }
    fn weight_and_bias_mut(&mut self) -> (&mut dyn Param, &mut dyn Param) {
        (&mut self.weight, &mut self.bias)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dfdx::prelude::*;

    fn max_diff(a: &[f32], b: &[f32]) -> f32 {
        assert_eq!(a.len(), b.len());
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max)
    }

    /// The fused block equals `MaxPool2d(conv(x)).relu()` in values and all gradients, on odd
    /// sizes (a dropped last row and column), several chunks and both `InputGrad` settings.
    #[test]
    fn fused_block_matches_composition() {
        let dev = Cpu::seed_from_u64(3);
        let conv = Conv2d::<3, 5, 3, 1, 1>::new(&dev);
        let x: ImageBatch<3> = dev.sample_uniform_like(&(9, Const, 9, 7));
        let x = x * 2.0 - 1.0;
        let want = crate::MaxPool2d::<2, 2>
            .forward(conv.forward(x.leaky_trace()))
            .relu();
        let wv = want.as_vec();
        let wg = (want.square().mean()).backward();
        for ig in [InputGrad::Compute, InputGrad::Skip] {
            let got = conv.forward_relu_pool2(x.leaky_trace(), ig);
            assert!(max_diff(&got.as_vec(), &wv) < 1e-5);
            let gg = got.square().mean().backward();
            assert!(
                max_diff(
                    &gg.get(&conv.weight).as_vec(),
                    &wg.get(&conv.weight).as_vec()
                ) < 1e-5
            );
            assert!(max_diff(&gg.get(&conv.bias).as_vec(), &wg.get(&conv.bias).as_vec()) < 1e-5);
            if ig == InputGrad::Compute {
                assert!(max_diff(&gg.get(&x).as_vec(), &wg.get(&x).as_vec()) < 1e-5);
            }
        }
        // Without a tape: the same values.
        let y0 = conv.forward_relu_pool2(x.clone(), InputGrad::Skip);
        assert!(max_diff(&y0.as_vec(), &wv) < 1e-5);
    }

    #[test]
    fn valid_ranges() {
        // k=3, p=1, s=1, n=5: kk=0 -> o in 1..5, kk=1 -> 0..5, kk=2 -> 0..4.
        assert_eq!(valid_range(0, 1, 1, 5, 5), (1, 5));
        assert_eq!(valid_range(1, 1, 1, 5, 5), (0, 5));
        assert_eq!(valid_range(2, 1, 1, 5, 5), (0, 4));
        // k=5, p=2, s=2, n=11 -> out 6: kk=0 -> o*2-2 >= 0 -> o>=1; o*2-2 < 11 -> o<=6.
        assert_eq!(valid_range(0, 2, 2, 11, 6), (1, 6));
        assert_eq!(valid_range(4, 2, 2, 11, 6), (0, 5));
        assert_eq!(conv_out_len(2, 3, 1, 0), None);
        assert_eq!(conv_out_len(28, 3, 1, 1), Some(28));
    }
}
