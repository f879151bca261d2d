//! Backend selection: the single place graft asks "is CUDA available?".

use std::sync::OnceLock;

use crate::error::CudaError;
use crate::probe::{nvrtc_available, probe, DeviceInfo};

/// Where graft runs its tensor work.
#[derive(Debug, Clone, PartialEq)]
pub enum Backend {
    /// The CPU path; always available.
    Cpu,
    /// A CUDA device (the first one the driver lists), with the NVRTC compiler available.
    Cuda(DeviceInfo),
}

impl Backend {
    /// Whether this is the CUDA backend.
    pub fn is_cuda(&self) -> bool {
        matches!(self, Backend::Cuda(_))
    }
}

/// Chooses the backend for this process.
///
/// Probes CUDA once (the result is cached for the life of the process) and logs
/// with `tracing::info!` which path is taken and why. CUDA is chosen only when the
/// driver lists at least one device *and* NVRTC can be loaded, since graft's CUDA
/// kernels are compiled at run time; otherwise the CPU path is used. Never panics.
pub fn select_backend() -> Backend {
    static BACKEND: OnceLock<Backend> = OnceLock::new();
    BACKEND
        .get_or_init(|| {
            let probed = probe();
            // Only look for NVRTC when there is a device to compile for.
            let nvrtc = probed.as_ref().is_ok_and(|d| !d.is_empty()) && nvrtc_available();
            let (backend, reason) = choose(probed, nvrtc);
            match (&backend, reason) {
                (Backend::Cuda(info), _) => tracing::info!(
                    ordinal = info.ordinal,
                    device = %info.name,
                    "graft backend: CUDA (cuda:{}, {})",
                    info.ordinal,
                    info.name
                ),
                (Backend::Cpu, Some(err)) => {
                    tracing::info!(reason = %err, "graft backend: CPU (CUDA unavailable)")
                }
                (Backend::Cpu, None) => tracing::info!("graft backend: CPU"),
            }
            backend
        })
        .clone()
}

/// Pure decision rule behind [`select_backend`]: the backend plus, for the CPU
/// fallback, the reason CUDA was not used.
fn choose(probed: Result<Vec<DeviceInfo>, CudaError>, nvrtc: bool) -> (Backend, Option<CudaError>) {
    match probed {
        Err(err) => (Backend::Cpu, Some(err)),
        Ok(devices) => match devices.into_iter().next() {
            None => (Backend::Cpu, Some(CudaError::NoDevice)),
            Some(_) if !nvrtc => (Backend::Cpu, Some(CudaError::NoNvrtc)),
            Some(first) => (Backend::Cuda(first), None),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::driver_library_present;

    fn device(ordinal: usize) -> DeviceInfo {
        DeviceInfo {
            ordinal,
            name: format!("Test GPU {ordinal}"),
            total_memory_bytes: 8 << 30,
            compute_capability: (8, 0),
        }
    }

    #[test]
    fn select_backend_is_cpu_without_driver_and_stable() {
        let first = select_backend();
        if !driver_library_present() {
            assert_eq!(first, Backend::Cpu);
            assert!(!first.is_cuda());
        }
        assert_eq!(first, select_backend(), "cached: same answer every call");
    }

    #[test]
    fn choose_falls_back_to_cpu_with_a_reason() {
        assert_eq!(
            choose(Err(CudaError::NoDriver), true),
            (Backend::Cpu, Some(CudaError::NoDriver))
        );
        assert_eq!(
            choose(Ok(Vec::new()), true),
            (Backend::Cpu, Some(CudaError::NoDevice))
        );
        assert_eq!(
            choose(Ok(vec![device(0)]), false),
            (Backend::Cpu, Some(CudaError::NoNvrtc))
        );
    }

    #[test]
    fn choose_takes_the_first_device_when_cuda_is_usable() {
        assert_eq!(
            choose(Ok(vec![device(0), device(1)]), true),
            (Backend::Cuda(device(0)), None)
        );
    }

    #[test]
    fn select_backend_on_gpu_is_cuda() {
        match probe() {
            Err(err) => println!("skipped: {err}"),
            Ok(_) if !nvrtc_available() => println!("skipped: {}", CudaError::NoNvrtc),
            Ok(devices) => assert_eq!(select_backend(), Backend::Cuda(devices[0].clone())),
        }
    }
}
