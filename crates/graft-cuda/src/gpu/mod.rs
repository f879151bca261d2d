//! The CUDA side: one [`Gpu`] per device (context, stream, loaded modules, cuBLAS
//! handle), created on first use and kept for the process.
//!
//! Every entry point runs under [`guarded`], so a panic inside cudarc (for example a
//! library that vanished) becomes a [`CudaError`]. Nothing here is reached unless
//! [`crate::select_backend`] (or the caller) chose [`crate::Backend::Cuda`].

#[cfg(test)]
mod emulator;
mod gemm;
mod linear_head;
mod ops;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use cudarc::cublas::CudaBlas;
use cudarc::driver::{
    CudaContext, CudaFunction, CudaModule, CudaStream, DriverError, LaunchConfig,
};

use crate::error::CudaError;
use crate::kernels::{arch_for, ptx_for_arch, KernelSource};
use crate::probe::{cublas_library_present, driver_error, guarded, DeviceInfo};

/// An opened CUDA device with graft's kernels.
pub(crate) struct Gpu {
    ctx: Arc<CudaContext>,
    stream: Arc<CudaStream>,
    arch: String,
    modules: Mutex<HashMap<&'static str, Arc<CudaModule>>>,
    blas: Mutex<Option<CudaBlas>>,
}

/// The [`Gpu`] for `info.ordinal`, opened on first use and cached for the process.
pub(crate) fn device(info: &DeviceInfo) -> Result<Arc<Gpu>, CudaError> {
    static DEVICES: OnceLock<Mutex<HashMap<usize, Arc<Gpu>>>> = OnceLock::new();
    let devices = DEVICES.get_or_init(Default::default);
    let mut map = lock(devices);
    if let Some(gpu) = map.get(&info.ordinal) {
        return Ok(gpu.clone());
    }
    let gpu = Arc::new(guarded("opening CUDA device", || Gpu::open(info))?);
    map.insert(info.ordinal, gpu.clone());
    Ok(gpu)
}

/// Whether cuBLAS can be loaded (checked once). The kNN and linear-probe paths need it
/// and fall back to the CPU without it.
pub(crate) fn cublas_usable() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    *PRESENT.get_or_init(|| {
        let present = cublas_library_present();
        if !present {
            tracing::warn!("cuBLAS (libcublas.so) not found: kNN and linear probe run on the CPU");
        }
        present
    })
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Maps a driver error of `call` to a [`CudaError`].
pub(crate) fn drv(call: &'static str) -> impl Fn(DriverError) -> CudaError {
    move |e| driver_error(call, e)
}

/// Grid-stride launch configuration for `total` elements (256 threads per block).
pub(crate) fn grid_stride(total: usize) -> LaunchConfig {
    let blocks = total.div_ceil(256).clamp(1, 65_535) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// One thread per item (256 threads per block; threads past `total` return at once).
pub(crate) fn thread_per_item(total: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (total.div_ceil(256).max(1) as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// One block per row, `threads` (a power of two from 32 to 256) chosen for `cols`.
pub(crate) fn block_per_row(rows: usize, cols: usize) -> LaunchConfig {
    let threads = cols.next_power_of_two().clamp(32, 256) as u32;
    LaunchConfig {
        grid_dim: (rows as u32, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

impl Gpu {
    fn open(info: &DeviceInfo) -> Result<Gpu, CudaError> {
        let ctx = CudaContext::new(info.ordinal).map_err(drv("cuCtx (primary context)"))?;
        let stream = ctx.default_stream();
        Ok(Gpu {
            ctx,
            stream,
            arch: arch_for(info.compute_capability),
            modules: Mutex::new(HashMap::new()),
            blas: Mutex::new(None),
        })
    }

    /// The kernel `name` of `source`, compiling (once per process and architecture) and
    /// loading (once per device) its module on first use.
    pub(crate) fn function(
        &self,
        source: &KernelSource,
        name: &str,
    ) -> Result<CudaFunction, CudaError> {
        let module = {
            let mut modules = lock(&self.modules);
            match modules.get(source.file) {
                Some(m) => m.clone(),
                None => {
                    let ptx = ptx_for_arch(source, &self.arch)?;
                    let m = self.ctx.load_module(ptx).map_err(drv("cuModuleLoadData"))?;
                    modules.insert(source.file, m.clone());
                    m
                }
            }
        };
        module
            .load_function(name)
            .map_err(|e| driver_error("cuModuleGetFunction", e))
    }

    /// The cuBLAS handle (created on first use), locked for the caller.
    pub(crate) fn blas(&self) -> Result<MutexGuard<'_, Option<CudaBlas>>, CudaError> {
        let mut guard = lock(&self.blas);
        if guard.is_none() {
            if !cublas_library_present() {
                return Err(CudaError::Blas(
                    "libcublas.so could not be loaded".to_owned(),
                ));
            }
            let blas = CudaBlas::new(self.stream.clone())
                .map_err(|e| CudaError::Blas(format!("cublasCreate: {e:?}")))?;
            *guard = Some(blas);
        }
        Ok(guard)
    }
}
