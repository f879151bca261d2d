//! graft's CUDA C kernels, embedded in the binary and compiled to PTX by NVRTC.
//!
//! Each file under `crates/graft-cuda/kernels/` is one [`KernelSource`]. At run time a
//! source is compiled once per process for the device's architecture
//! (`compute_<major><minor>`) and the PTX is cached (`ptx_for_arch`). NVRTC needs
//! no GPU or driver, so CI can check with [`compile_ptx`] that every kernel compiles.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, OnceLock};

use cudarc::nvrtc::{CompileError, CompileOptions, Ptx};

use crate::error::CudaError;
use crate::probe::panic_message;

/// One CUDA C source file and the `extern "C"` kernels it defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelSource {
    /// File name under `crates/graft-cuda/kernels/`, e.g. `adam.cu`.
    pub file: &'static str,
    /// The CUDA C text (embedded with `include_str!`).
    pub source: &'static str,
    /// The `extern "C" __global__` functions the file defines.
    pub functions: &'static [&'static str],
}

/// u8 images to normalised f32, with seeded crop-with-padding and flip.
pub const NORMALIZE: KernelSource = KernelSource {
    file: "normalize.cu",
    source: include_str!("../kernels/normalize.cu"),
    functions: &["normalize_images"],
};

/// Fused row softmax + cross-entropy loss + gradient.
pub const SOFTMAX_XENT: KernelSource = KernelSource {
    file: "softmax_xent.cu",
    source: include_str!("../kernels/softmax_xent.cu"),
    functions: &["softmax_xent"],
};

/// Fused Adam / AdamW update.
pub const ADAM: KernelSource = KernelSource {
    file: "adam.cu",
    source: include_str!("../kernels/adam.cu"),
    functions: &["adam_step"],
};

/// Squared norms, distance finishing and per-row top-k for the kNN probe.
pub const KNN: KernelSource = KernelSource {
    file: "knn.cu",
    source: include_str!("../kernels/knn.cu"),
    functions: &["row_sq_norms", "finish_sq_distances", "topk_smallest"],
};

/// Row gather, bias add and column sums for the linear-probe trainer.
pub const LINEAR_PROBE: KernelSource = KernelSource {
    file: "linear_probe.cu",
    source: include_str!("../kernels/linear_probe.cu"),
    functions: &["gather_rows", "add_bias", "column_sums"],
};

/// Every kernel source file of the crate.
pub const SOURCES: &[KernelSource] = &[NORMALIZE, SOFTMAX_XENT, ADAM, KNN, LINEAR_PROBE];

/// The NVRTC virtual architecture for a compute capability, e.g. `(9, 0)` -> `compute_90`.
pub fn arch_for(compute_capability: (u32, u32)) -> String {
    format!("compute_{}{}", compute_capability.0, compute_capability.1)
}

/// Compiles `kernel` to PTX text for `arch` (e.g. `compute_80`) with NVRTC.
///
/// Returns [`CudaError::NoNvrtc`] when NVRTC cannot be loaded and
/// [`CudaError::Compile`] (with NVRTC's log) when compilation fails. Needs no GPU.
/// Never panics.
pub fn compile_ptx(kernel: &KernelSource, arch: &str) -> Result<String, CudaError> {
    compile(kernel, arch).map(|ptx| ptx.to_src())
}

fn compile(kernel: &KernelSource, arch: &str) -> Result<Ptx, CudaError> {
    if !crate::probe::nvrtc_library_present() {
        return Err(CudaError::NoNvrtc);
    }
    let opts = CompileOptions {
        options: vec![format!("--gpu-architecture={arch}")],
        name: Some(kernel.file.to_owned()),
        ..Default::default()
    };
    let result = catch_unwind(AssertUnwindSafe(|| {
        cudarc::nvrtc::compile_ptx_with_opts(kernel.source, opts)
    }));
    match result {
        Ok(Ok(ptx)) => Ok(ptx),
        Ok(Err(err)) => Err(compile_error(kernel, arch, err)),
        Err(payload) => Err(CudaError::Compile(format!(
            "{} for {arch}: NVRTC panicked ({})",
            kernel.file,
            panic_message(payload.as_ref())
        ))),
    }
}

fn compile_error(kernel: &KernelSource, arch: &str, err: CompileError) -> CudaError {
    let detail = match err {
        CompileError::CompileError { nvrtc, log, .. } => {
            format!("{nvrtc:?}\n{}", log.to_string_lossy())
        }
        other => format!("{other:?}"),
    };
    CudaError::Compile(format!("{} for {arch}: {detail}", kernel.file))
}

/// The PTX of `kernel` for `arch`, compiled on first use and cached for the process.
pub(crate) fn ptx_for_arch(kernel: &KernelSource, arch: &str) -> Result<Ptx, CudaError> {
    type Cache = Mutex<HashMap<(String, &'static str), Ptx>>;
    static CACHE: OnceLock<Cache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (arch.to_owned(), kernel.file);
    if let Some(ptx) = cache.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(ptx.clone());
    }
    // Compile outside the lock: NVRTC takes a while and other kernels may be wanted meanwhile.
    let ptx = compile(kernel, arch)?;
    tracing::debug!(
        kernel = kernel.file,
        arch,
        "compiled CUDA kernel with NVRTC"
    );
    let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
    Ok(map.entry(key).or_insert(ptx).clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_source_defines_its_functions() {
        for k in SOURCES {
            for f in k.functions {
                let decl = format!("__global__ void {f}(");
                assert!(k.source.contains(&decl), "{} lacks {decl}", k.file);
            }
            assert!(k.source.matches("extern \"C\" __global__").count() == k.functions.len());
        }
    }

    #[test]
    fn arch_names() {
        assert_eq!(arch_for((9, 0)), "compute_90");
        assert_eq!(arch_for((8, 6)), "compute_86");
    }

    #[test]
    fn compile_without_nvrtc_is_an_error_not_a_panic() {
        if crate::probe::nvrtc_library_present() {
            println!("skipped: NVRTC is present");
            return;
        }
        assert_eq!(compile_ptx(&ADAM, "compute_80"), Err(CudaError::NoNvrtc));
    }
}
