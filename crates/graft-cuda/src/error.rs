//! Errors raised while probing or using CUDA.

/// Why CUDA cannot be used (or a CUDA call failed).
///
/// Every message says what the user can do about it; graft's CPU path always
/// works, so none of these is fatal for graft as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CudaError {
    /// The CUDA driver library (`libcuda.so` / `nvcuda.dll`) could not be loaded.
    #[error(
        "no CUDA driver library (libcuda.so) found: install the NVIDIA driver, or use the CPU path"
    )]
    NoDriver,
    /// The NVRTC runtime-compilation library could not be loaded.
    #[error(
        "no NVRTC library (libnvrtc.so) found: install the CUDA toolkit (or its nvrtc package) \
         and make sure it is on the library search path, or use the CPU path"
    )]
    NoNvrtc,
    /// The driver loaded but reports no usable CUDA device.
    #[error(
        "the CUDA driver reports no device: check that a GPU is present and visible \
         (nvidia-smi, CUDA_VISIBLE_DEVICES), or use the CPU path"
    )]
    NoDevice,
    /// A CUDA driver call failed; the payload names the call and the driver's error.
    #[error(
        "CUDA driver call failed: {0}; check the driver installation (nvidia-smi), \
         or use the CPU path"
    )]
    Driver(String),
    /// NVRTC failed to compile one of graft's kernels; the payload names the kernel
    /// file and architecture and carries NVRTC's log.
    #[error(
        "NVRTC could not compile a graft kernel: {0}; check that NVRTC matches the driver \
         (CUDA 13), or use the CPU path"
    )]
    Compile(String),
    /// A cuBLAS call failed (or cuBLAS could not be loaded).
    #[error(
        "cuBLAS call failed: {0}; install cuBLAS (libcublas.so) for CUDA 13, or use the CPU path"
    )]
    Blas(String),
    /// A kernel failed graft's self-check against its CPU reference on this device
    /// ([`crate::self_check`]), so graft does not use the device.
    #[error(
        "the CUDA kernel `{kernel}` failed graft's self-check on this device ({detail}); \
         graft uses the CPU. Run `cargo xtask gpu-check` for the full comparison and report it"
    )]
    SelfCheck {
        /// The operation that failed or disagreed.
        kernel: &'static str,
        /// What went wrong.
        detail: String,
    },
}
