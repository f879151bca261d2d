//! Host sides of the CUDA kernels: copies, launches and cuBLAS GEMMs.
//!
//! Inputs have been checked by the callers in `crate::ops` / `crate::linear_probe`
//! (lengths consistent, dimensions fit `u32`, labels in range, non-empty), which is
//! what makes the kernel launches below memory-safe.

use cudarc::cublas::{CudaBlas, Gemm};
use cudarc::driver::{CudaSlice, CudaView, PushKernelArg};

use super::{block_per_row, drv, gemm, grid_stride, thread_per_item, Gpu};
use crate::error::CudaError;
use crate::kernels;
use crate::probe::guarded;
use crate::spec::{
    mean_loss, AdamConfig, AdamScalars, AdamState, Augment, ImageShape, Knn, SoftmaxXent,
};

/// Largest distance block (queries × references) materialised at once by [`Gpu::knn`].
const KNN_BLOCK_ELEMS: usize = 1 << 26;

pub(super) fn blas_err(
    call: &'static str,
) -> impl Fn(cudarc::cublas::result::CublasError) -> CudaError {
    move |e| CudaError::Blas(format!("{call}: {e:?}"))
}

pub(super) fn no_blas() -> CudaError {
    CudaError::Blas("no cuBLAS handle".to_owned())
}

impl Gpu {
    pub(crate) fn normalize_images(
        &self,
        pixels: &[u8],
        shape: ImageShape,
        mean: &[f32],
        std: &[f32],
        augment: Option<&Augment>,
    ) -> Result<Vec<f32>, CudaError> {
        guarded("normalize_images on CUDA", || {
            let f = self.function(&kernels::NORMALIZE, "normalize_images")?;
            let s = &self.stream;
            let src = s.clone_htod(pixels).map_err(drv("cuMemcpyHtoD"))?;
            let mean_d = s.clone_htod(mean).map_err(drv("cuMemcpyHtoD"))?;
            let std_d = s.clone_htod(std).map_err(drv("cuMemcpyHtoD"))?;
            let mut out = s
                .alloc_zeros::<f32>(pixels.len())
                .map_err(drv("cuMemAlloc"))?;
            let (n, c, h, w) = (
                shape.n as u32,
                shape.channels as u32,
                shape.height as u32,
                shape.width as u32,
            );
            let (pad, flip, on, seed, first) = match augment {
                Some(a) => (a.pad as u32, i32::from(a.flip), 1i32, a.seed, a.first_index),
                None => (0u32, 0i32, 0i32, 0u64, 0u64),
            };
            let mut b = s.launch_builder(&f);
            b.arg(&src).arg(&mut out).arg(&mean_d).arg(&std_d);
            b.arg(&n)
                .arg(&c)
                .arg(&h)
                .arg(&w)
                .arg(&pad)
                .arg(&flip)
                .arg(&on);
            b.arg(&seed).arg(&first);
            // SAFETY: the argument list matches `normalize_images` in normalize.cu; `src`
            // and `out` hold n·c·h·w elements (checked by the caller), mean/std hold c.
            unsafe { b.launch(grid_stride(pixels.len())) }.map_err(drv("cuLaunchKernel"))?;
            s.clone_dtoh(&out).map_err(drv("cuMemcpyDtoH"))
        })
    }

    pub(crate) fn softmax_xent(
        &self,
        logits: &[f32],
        labels: &[u32],
        classes: usize,
    ) -> Result<SoftmaxXent, CudaError> {
        guarded("softmax_xent on CUDA", || {
            let s = &self.stream;
            let x = s.clone_htod(logits).map_err(drv("cuMemcpyHtoD"))?;
            let y = s.clone_htod(labels).map_err(drv("cuMemcpyHtoD"))?;
            let mut grad = s
                .alloc_zeros::<f32>(logits.len())
                .map_err(drv("cuMemAlloc"))?;
            let mut rows = s
                .alloc_zeros::<f32>(labels.len())
                .map_err(drv("cuMemAlloc"))?;
            self.launch_softmax_xent(&x, &y, &mut grad, &mut rows, 0, labels.len(), classes)?;
            let row_losses = s.clone_dtoh(&rows).map_err(drv("cuMemcpyDtoH"))?;
            Ok(SoftmaxXent {
                loss: mean_loss(&row_losses),
                grad: s.clone_dtoh(&grad).map_err(drv("cuMemcpyDtoH"))?,
                row_losses,
            })
        })
    }

    /// Launches `softmax_xent` over `rows` rows; row losses go to
    /// `row_loss[loss_offset..loss_offset + rows]`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn launch_softmax_xent(
        &self,
        logits: &CudaSlice<f32>,
        labels: &CudaSlice<u32>,
        grad: &mut CudaSlice<f32>,
        row_loss: &mut CudaSlice<f32>,
        loss_offset: usize,
        rows: usize,
        classes: usize,
    ) -> Result<(), CudaError> {
        let f = self.function(&kernels::SOFTMAX_XENT, "softmax_xent")?;
        let mut loss_view = row_loss.slice_mut(loss_offset..loss_offset + rows);
        let (r, c) = (rows as u32, classes as u32);
        let inv_batch = 1.0f32 / rows as f32;
        let mut b = self.stream.launch_builder(&f);
        b.arg(logits).arg(labels).arg(grad).arg(&mut loss_view);
        b.arg(&r).arg(&c).arg(&inv_batch);
        // SAFETY: matches `softmax_xent` in softmax_xent.cu; `logits` and `grad` hold at
        // least rows·classes values, `labels` and the loss view at least `rows`; one block
        // per row with a power-of-two block of at most 256 threads.
        unsafe { b.launch(block_per_row(rows, classes)) }.map_err(drv("cuLaunchKernel"))?;
        Ok(())
    }

    pub(crate) fn adam_step(
        &self,
        params: &mut [f32],
        grads: &[f32],
        state: &mut AdamState,
        cfg: &AdamConfig,
    ) -> Result<(), CudaError> {
        guarded("adam_step on CUDA", || {
            let s = &self.stream;
            let mut p = s.clone_htod(params).map_err(drv("cuMemcpyHtoD"))?;
            let g = s.clone_htod(grads).map_err(drv("cuMemcpyHtoD"))?;
            let mut m = s.clone_htod(&state.m).map_err(drv("cuMemcpyHtoD"))?;
            let mut v = s.clone_htod(&state.v).map_err(drv("cuMemcpyHtoD"))?;
            let step = state.step + 1;
            self.launch_adam(&mut p, &g, &mut m, &mut v, cfg, step)?;
            s.memcpy_dtoh(&p, params).map_err(drv("cuMemcpyDtoH"))?;
            s.memcpy_dtoh(&m, state.m.as_mut_slice())
                .map_err(drv("cuMemcpyDtoH"))?;
            s.memcpy_dtoh(&v, state.v.as_mut_slice())
                .map_err(drv("cuMemcpyDtoH"))?;
            s.synchronize().map_err(drv("cuStreamSynchronize"))?;
            state.step = step;
            Ok(())
        })
    }

    /// Launches `adam_step` on equally long device buffers for step number `step`.
    pub(super) fn launch_adam(
        &self,
        p: &mut CudaSlice<f32>,
        g: &CudaSlice<f32>,
        m: &mut CudaSlice<f32>,
        v: &mut CudaSlice<f32>,
        cfg: &AdamConfig,
        step: u64,
    ) -> Result<(), CudaError> {
        let f = self.function(&kernels::ADAM, "adam_step")?;
        let k = AdamScalars::new(cfg, step);
        let n = p.len() as u64;
        let decoupled = i32::from(cfg.decoupled);
        let mut b = self.stream.launch_builder(&f);
        b.arg(p).arg(g).arg(m).arg(v).arg(&n);
        b.arg(&cfg.beta1)
            .arg(&cfg.beta2)
            .arg(&cfg.eps)
            .arg(&cfg.weight_decay);
        b.arg(&decoupled)
            .arg(&k.decay)
            .arg(&k.step_size)
            .arg(&k.bc2_sqrt);
        // SAFETY: matches `adam_step` in adam.cu; p, g, m and v all hold `n` values
        // (allocated together by the callers).
        unsafe { b.launch(grid_stride(n as usize)) }.map_err(drv("cuLaunchKernel"))?;
        Ok(())
    }

    /// `out[r] = ||x_r||²` for the `rows` rows of width `dim`.
    fn row_sq_norms(
        &self,
        x: &CudaSlice<f32>,
        rows: usize,
        dim: usize,
    ) -> Result<CudaSlice<f32>, CudaError> {
        let f = self.function(&kernels::KNN, "row_sq_norms")?;
        let mut out = self
            .stream
            .alloc_zeros::<f32>(rows)
            .map_err(drv("cuMemAlloc"))?;
        let (r, d) = (rows as u32, dim as u32);
        let mut b = self.stream.launch_builder(&f);
        b.arg(x).arg(&mut out).arg(&r).arg(&d);
        // SAFETY: matches `row_sq_norms` in knn.cu; `x` holds rows·dim values and `out`
        // holds `rows`; threads past the last row return immediately.
        unsafe { b.launch(thread_per_item(rows)) }.map_err(drv("cuLaunchKernel"))?;
        Ok(out)
    }

    /// Squared distances of `cq` queries (starting at query row `q0`) to all `nr`
    /// references into `d` (`cq × nr`, row-major): cuBLAS `-2 Q Rᵀ`, then norms and clamp.
    #[allow(clippy::too_many_arguments)]
    fn distance_block(
        &self,
        blas: &CudaBlas,
        q: &CudaSlice<f32>,
        qn: &CudaSlice<f32>,
        r: &CudaSlice<f32>,
        rn: &CudaSlice<f32>,
        q0: usize,
        cq: usize,
        nr: usize,
        d_dim: usize,
        d: &mut CudaSlice<f32>,
    ) -> Result<(), CudaError> {
        let q_view: CudaView<'_, f32> = q.slice(q0 * d_dim..(q0 + cq) * d_dim);
        let cfg = gemm::neg2_q_rt(cq, nr, d_dim)?;
        // SAFETY: A is nr × d (lda = d, r holds nr·d values), B is d × cq (ldb = d, the
        // view holds cq·d values), C is nr × cq (ldc = nr, d holds at least cq·nr values).
        unsafe { blas.gemm(cfg, r, &q_view, d) }.map_err(blas_err("cublasSgemm"))?;

        let f = self.function(&kernels::KNN, "finish_sq_distances")?;
        let qn_view = qn.slice(q0..q0 + cq);
        let (cq32, nr32) = (cq as u32, nr as u32);
        let mut b = self.stream.launch_builder(&f);
        b.arg(&mut *d).arg(&qn_view).arg(rn).arg(&cq32).arg(&nr32);
        // SAFETY: matches `finish_sq_distances` in knn.cu; d holds cq·nr values, the norm
        // view cq and rn nr.
        unsafe { b.launch(grid_stride(cq * nr)) }.map_err(drv("cuLaunchKernel"))?;
        Ok(())
    }

    pub(crate) fn sq_distances(
        &self,
        queries: &[f32],
        references: &[f32],
        d_dim: usize,
    ) -> Result<Vec<f32>, CudaError> {
        guarded("sq_distances on CUDA", || {
            let s = &self.stream;
            let (nq, nr) = (queries.len() / d_dim, references.len() / d_dim);
            let q = s.clone_htod(queries).map_err(drv("cuMemcpyHtoD"))?;
            let r = s.clone_htod(references).map_err(drv("cuMemcpyHtoD"))?;
            let qn = self.row_sq_norms(&q, nq, d_dim)?;
            let rn = self.row_sq_norms(&r, nr, d_dim)?;
            let mut d = s.alloc_zeros::<f32>(nq * nr).map_err(drv("cuMemAlloc"))?;
            {
                let blas = self.blas()?;
                let blas = blas.as_ref().ok_or_else(no_blas)?;
                self.distance_block(blas, &q, &qn, &r, &rn, 0, nq, nr, d_dim, &mut d)?;
            }
            s.clone_dtoh(&d).map_err(drv("cuMemcpyDtoH"))
        })
    }

    pub(crate) fn knn(
        &self,
        queries: &[f32],
        references: &[f32],
        d_dim: usize,
        k: usize,
    ) -> Result<Knn, CudaError> {
        guarded("knn on CUDA", || {
            let s = &self.stream;
            let (nq, nr) = (queries.len() / d_dim, references.len() / d_dim);
            let q = s.clone_htod(queries).map_err(drv("cuMemcpyHtoD"))?;
            let r = s.clone_htod(references).map_err(drv("cuMemcpyHtoD"))?;
            let qn = self.row_sq_norms(&q, nq, d_dim)?;
            let rn = self.row_sq_norms(&r, nr, d_dim)?;
            let block_rows = (KNN_BLOCK_ELEMS / nr).clamp(1, nq);
            let mut d = s
                .alloc_zeros::<f32>(block_rows * nr)
                .map_err(drv("cuMemAlloc"))?;
            let mut idx = s.alloc_zeros::<u32>(nq * k).map_err(drv("cuMemAlloc"))?;
            let mut dist = s.alloc_zeros::<f32>(nq * k).map_err(drv("cuMemAlloc"))?;
            let topk = self.function(&kernels::KNN, "topk_smallest")?;
            let blas = self.blas()?;
            let blas = blas.as_ref().ok_or_else(no_blas)?;
            for q0 in (0..nq).step_by(block_rows) {
                let cq = block_rows.min(nq - q0);
                self.distance_block(blas, &q, &qn, &r, &rn, q0, cq, nr, d_dim, &mut d)?;
                let mut idx_view = idx.slice_mut(q0 * k..(q0 + cq) * k);
                let mut dist_view = dist.slice_mut(q0 * k..(q0 + cq) * k);
                let (cq32, nr32, k32) = (cq as u32, nr as u32, k as u32);
                let mut b = s.launch_builder(&topk);
                b.arg(&d).arg(&cq32).arg(&nr32).arg(&k32);
                b.arg(&mut idx_view).arg(&mut dist_view);
                // SAFETY: matches `topk_smallest` in knn.cu; d holds at least cq·nr values,
                // both views cq·k; k <= nr (checked by the caller); power-of-two block <= 256.
                unsafe { b.launch(block_per_row(cq, nr)) }.map_err(drv("cuLaunchKernel"))?;
            }
            Ok(Knn {
                k,
                indices: s.clone_dtoh(&idx).map_err(drv("cuMemcpyDtoH"))?,
                distances: s.clone_dtoh(&dist).map_err(drv("cuMemcpyDtoH"))?,
            })
        })
    }
}
