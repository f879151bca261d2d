//! graft-cuda's cuBLAS GEMMs as pure shape functions.
//!
//! cuBLAS is column-major; graft's buffers are row-major. A row-major `r × c` buffer is
//! the column-major `c × r` matrix, i.e. the transpose, so each product below is asked
//! of cuBLAS transposed. Keeping the shapes here, apart from the calls, lets the tests
//! check them against a plain cuBLAS-semantics GEMM on the CPU (`emulator.rs`).

use cudarc::cublas::{sys::cublasOperation_t, GemmConfig};

use crate::error::CudaError;

/// `i32` for a cuBLAS dimension (callers checked that dimensions fit `u32`).
fn dim(v: usize) -> Result<i32, CudaError> {
    i32::try_from(v).map_err(|_| CudaError::Blas(format!("dimension {v} exceeds cuBLAS's i32")))
}

/// `D = -2 Q Rᵀ` into row-major D (`nq × nr`), from row-major Q (`nq × d`) and
/// R (`nr × d`); called as `gemm(cfg, R, Q, D)`.
///
/// Row-major D is column-major Dᵀ (`nr × nq`) = R · Qᵀ. The R buffer is column-major
/// Rᵀ (`d × nr`), so A = R buffer transposed; the Q buffer is column-major Qᵀ
/// (`d × nq`), so B = Q buffer as is.
pub(crate) fn neg2_q_rt(nq: usize, nr: usize, d: usize) -> Result<GemmConfig<f32>, CudaError> {
    Ok(GemmConfig {
        transa: cublasOperation_t::CUBLAS_OP_T,
        transb: cublasOperation_t::CUBLAS_OP_N,
        m: dim(nr)?,
        n: dim(nq)?,
        k: dim(d)?,
        alpha: -2.0,
        lda: dim(d)?,
        ldb: dim(d)?,
        beta: 0.0,
        ldc: dim(nr)?,
    })
}

/// Logits `L = X Wᵀ` into row-major L (`rows × classes`), from row-major X
/// (`rows × d`) and W (`classes × d`); called as `gemm(cfg, W, X, L)`.
///
/// Row-major L is column-major Lᵀ (`classes × rows`) = W · Xᵀ: A = W buffer
/// (column-major `d × classes`) transposed, B = X buffer (column-major `d × rows`) as is.
pub(crate) fn logits(rows: usize, classes: usize, d: usize) -> Result<GemmConfig<f32>, CudaError> {
    Ok(GemmConfig {
        transa: cublasOperation_t::CUBLAS_OP_T,
        transb: cublasOperation_t::CUBLAS_OP_N,
        m: dim(classes)?,
        n: dim(rows)?,
        k: dim(d)?,
        alpha: 1.0,
        lda: dim(d)?,
        ldb: dim(d)?,
        beta: 0.0,
        ldc: dim(classes)?,
    })
}

/// Weight gradient `gW = Gᵀ X` into row-major gW (`classes × d`), from row-major
/// G (`rows × classes`) and X (`rows × d`); called as `gemm(cfg, X, G, gW)`.
///
/// Row-major gW is column-major gWᵀ (`d × classes`) = Xᵀ · G: A = X buffer
/// (column-major `d × rows`) as is, B = G buffer (column-major `classes × rows`)
/// transposed.
pub(crate) fn weight_grad(
    rows: usize,
    classes: usize,
    d: usize,
) -> Result<GemmConfig<f32>, CudaError> {
    Ok(GemmConfig {
        transa: cublasOperation_t::CUBLAS_OP_N,
        transb: cublasOperation_t::CUBLAS_OP_T,
        m: dim(d)?,
        n: dim(classes)?,
        k: dim(rows)?,
        alpha: 1.0,
        lda: dim(d)?,
        ldb: dim(classes)?,
        beta: 0.0,
        ldc: dim(d)?,
    })
}
