//! The linear-head trainer with everything on the device: cuBLAS GEMMs for the logits and
//! the weight gradient, `softmax_xent` and `adam_step` kernels, `gather_rows`, `add_bias`
//! and `column_sums`. Only the step rows and the start weights go up, and the row losses and
//! final weights come down, once each.
//!
//! The step for step mirror of [`crate::cpu::train_linear_head`]; the emulator test
//! (`emulator/kernel_tests.rs`) replays the same sequence of kernels and GEMM shapes.

use cudarc::cublas::Gemm;
use cudarc::driver::PushKernelArg;

use super::ops::{blas_err, no_blas};
use super::{drv, gemm, grid_stride, thread_per_item, Gpu};
use crate::error::CudaError;
use crate::kernels;
use crate::probe::guarded;
use crate::spec::{CachedFeatures, HeadOptimizer, HeadSteps};

impl Gpu {
    /// See [`crate::train_linear_head_on`]; inputs checked by it.
    pub(crate) fn train_linear_head(
        &self,
        data: &CachedFeatures<'_>,
        weights: &mut [f32],
        bias: &mut [f32],
        steps: &HeadSteps,
        opt: &HeadOptimizer,
    ) -> Result<Vec<f32>, CudaError> {
        let Some(&batch) = steps.batch_sizes.iter().max() else {
            return Ok(Vec::new());
        };
        guarded("linear head on CUDA", || {
            let (d_dim, classes) = (data.dim, data.classes);
            let s = &self.stream;
            let up = |v: &[f32]| s.clone_htod(v).map_err(drv("cuMemcpyHtoD"));
            let zeros = |len: usize| s.alloc_zeros::<f32>(len).map_err(drv("cuMemAlloc"));
            let x = up(data.values)?;
            let y = s.clone_htod(data.labels).map_err(drv("cuMemcpyHtoD"))?;
            let rows = s.clone_htod(&steps.rows).map_err(drv("cuMemcpyHtoD"))?;
            let (mut w, mut wm, mut wv, mut gw) = (
                up(weights)?,
                zeros(weights.len())?,
                zeros(weights.len())?,
                zeros(weights.len())?,
            );
            let (mut b_d, mut bm, mut bv, mut gb) =
                (up(bias)?, zeros(classes)?, zeros(classes)?, zeros(classes)?);
            let mut xb = zeros(batch * d_dim)?;
            let mut yb = s.alloc_zeros::<u32>(batch).map_err(drv("cuMemAlloc"))?;
            let mut logits = zeros(batch * classes)?;
            let mut grad = zeros(batch * classes)?;
            let mut row_loss = zeros(steps.rows.len())?;

            let gather = self.function(&kernels::LINEAR_PROBE, "gather_rows")?;
            let add_bias = self.function(&kernels::LINEAR_PROBE, "add_bias")?;
            let column_sums = self.function(&kernels::LINEAR_PROBE, "column_sums")?;
            let blas_guard = self.blas()?;
            let blas = blas_guard.as_ref().ok_or_else(no_blas)?;
            let (d32, c32) = (d_dim as u32, classes as u32);

            let mut start = 0usize;
            for (i, (&bsz, &scale)) in steps.batch_sizes.iter().zip(&steps.lr_scale).enumerate() {
                let (start32, b32) = (start as u32, bsz as u32);
                let mut b = s.launch_builder(&gather);
                b.arg(&x)
                    .arg(&y)
                    .arg(&rows)
                    .arg(&start32)
                    .arg(&b32)
                    .arg(&d32);
                b.arg(&mut xb).arg(&mut yb);
                // SAFETY: matches `gather_rows` in linear_probe.cu; rows holds indices < n
                // (checked), start + bsz <= rows.len(), xb holds batch·d >= bsz·d values and
                // yb batch >= bsz.
                unsafe { b.launch(grid_stride(bsz * d_dim)) }.map_err(drv("cuLaunchKernel"))?;

                let fwd = gemm::logits(bsz, classes, d_dim)?;
                // SAFETY: w holds C·d values (A: C × d, lda = d), xb at least bsz·d
                // (B: d × bsz, ldb = d), logits at least bsz·C (C: C × bsz, ldc = C).
                unsafe { blas.gemm(fwd, &w, &xb, &mut logits) }
                    .map_err(blas_err("cublasSgemm (logits)"))?;

                let mut b = s.launch_builder(&add_bias);
                b.arg(&mut logits).arg(&b_d).arg(&b32).arg(&c32);
                // SAFETY: matches `add_bias`; logits holds at least bsz·C values, bias C.
                unsafe { b.launch(grid_stride(bsz * classes)) }.map_err(drv("cuLaunchKernel"))?;

                self.launch_softmax_xent(
                    &logits,
                    &yb,
                    &mut grad,
                    &mut row_loss,
                    start,
                    bsz,
                    classes,
                )?;

                let bwd = gemm::weight_grad(bsz, classes, d_dim)?;
                // SAFETY: xb holds at least bsz·d values (A: d × bsz, lda = d), grad at
                // least bsz·C (B: C × bsz, ldb = C), gw C·d (C: d × C, ldc = d).
                unsafe { blas.gemm(bwd, &xb, &grad, &mut gw) }
                    .map_err(blas_err("cublasSgemm (weight gradient)"))?;

                let mut b = s.launch_builder(&column_sums);
                b.arg(&grad).arg(&mut gb).arg(&b32).arg(&c32);
                // SAFETY: matches `column_sums`; grad holds at least bsz·C values, gb C;
                // threads past the last column return immediately.
                unsafe { b.launch(thread_per_item(classes)) }.map_err(drv("cuLaunchKernel"))?;

                let step = i as u64 + 1;
                self.launch_adam(
                    &mut w,
                    &gw,
                    &mut wm,
                    &mut wv,
                    &opt.weight.scaled(scale),
                    step,
                )?;
                self.launch_adam(
                    &mut b_d,
                    &gb,
                    &mut bm,
                    &mut bv,
                    &opt.bias.scaled(scale),
                    step,
                )?;
                start += bsz;
            }
            drop(blas_guard);
            s.memcpy_dtoh(&w, weights).map_err(drv("cuMemcpyDtoH"))?;
            s.memcpy_dtoh(&b_d, bias).map_err(drv("cuMemcpyDtoH"))?;
            let losses = s.clone_dtoh(&row_loss).map_err(drv("cuMemcpyDtoH"))?;
            s.synchronize().map_err(drv("cuStreamSynchronize"))?;
            Ok(losses)
        })
    }
}
