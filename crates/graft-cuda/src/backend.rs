//! Backend selection: the single place graft asks "is CUDA available?".

use std::sync::OnceLock;

use crate::device::Backend;
use crate::error::CudaError;
use crate::probe::{nvrtc_available, probe, DeviceInfo};
use crate::self_check::self_check;

/// The backend chosen for this process, and why CUDA is not used when it is the CPU.
#[derive(Debug, Clone, PartialEq)]
pub struct BackendChoice {
    /// Where graft runs its tensor work.
    pub backend: Backend,
    /// With [`Backend::Cpu`], why CUDA was not taken (`None` only if none was asked for).
    pub cpu_reason: Option<CudaError>,
}

impl std::fmt::Display for BackendChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.backend, &self.cpu_reason) {
            (Backend::Cuda(info), _) => write!(
                f,
                "graft uses cuda:{} ({}); its kernels passed the self-check against the CPU",
                info.ordinal, info.name
            ),
            (Backend::Cpu, Some(reason)) => write!(f, "graft uses the CPU: {reason}"),
            (Backend::Cpu, None) => write!(f, "graft uses the CPU"),
        }
    }
}

/// Chooses the backend for this process.
///
/// Probes CUDA once (the result is cached for the life of the process) and logs
/// with `tracing` which path is taken and why. CUDA is chosen only when the driver lists
/// at least one device, NVRTC can be loaded (graft's CUDA kernels are compiled at run
/// time) *and* every kernel passes [`crate::self_check`] on that device; otherwise the
/// CPU path is used. Never panics.
pub fn select_backend() -> Backend {
    backend_choice().backend.clone()
}

/// [`select_backend`]'s decision with its reason (cached; the same every call).
pub fn backend_choice() -> &'static BackendChoice {
    static CHOICE: OnceLock<BackendChoice> = OnceLock::new();
    CHOICE.get_or_init(|| {
        let choice = choose(usable_device(), |info| {
            self_check(&Backend::Cuda(info.clone())).map(|_| ())
        });
        match (&choice.backend, &choice.cpu_reason) {
            (Backend::Cuda(info), _) => tracing::info!(
                ordinal = info.ordinal,
                device = %info.name,
                "graft backend: CUDA (cuda:{}, {})",
                info.ordinal,
                info.name
            ),
            (Backend::Cpu, Some(err @ CudaError::SelfCheck { .. })) => {
                tracing::warn!(reason = %err, "graft backend: CPU (CUDA self-check failed)")
            }
            (Backend::Cpu, Some(err)) => {
                tracing::info!(reason = %err, "graft backend: CPU (CUDA unavailable)")
            }
            (Backend::Cpu, None) => tracing::info!("graft backend: CPU"),
        }
        choice
    })
}

/// The first CUDA device, if the driver lists one and NVRTC loads: what
/// [`select_backend`] tries, before the self-check. Probes afresh at every call.
pub fn usable_device() -> Result<DeviceInfo, CudaError> {
    first_usable(probe(), nvrtc_available)
}

/// The first of the `probed` devices, if `nvrtc` (asked only when there is one) says NVRTC
/// loads.
fn first_usable(
    probed: Result<Vec<DeviceInfo>, CudaError>,
    nvrtc: impl FnOnce() -> bool,
) -> Result<DeviceInfo, CudaError> {
    let first = probed?.into_iter().next().ok_or(CudaError::NoDevice)?;
    if nvrtc() {
        Ok(first)
    } else {
        Err(CudaError::NoNvrtc)
    }
}

/// Pure decision rule behind [`backend_choice`]: CUDA on the usable device if it passes
/// `self_check`, else the CPU with the reason.
fn choose(
    usable: Result<DeviceInfo, CudaError>,
    self_check: impl FnOnce(&DeviceInfo) -> Result<(), CudaError>,
) -> BackendChoice {
    let cpu = |reason| BackendChoice {
        backend: Backend::Cpu,
        cpu_reason: Some(reason),
    };
    match usable {
        Err(reason) => cpu(reason),
        Ok(info) => match self_check(&info) {
            Ok(()) => BackendChoice {
                backend: Backend::Cuda(info),
                cpu_reason: None,
            },
            Err(reason) => cpu(reason),
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
    fn first_usable_needs_a_device_and_nvrtc() {
        let never = || -> bool { panic!("NVRTC is looked for only when there is a device") };
        assert_eq!(
            first_usable(Err(CudaError::NoDriver), never),
            Err(CudaError::NoDriver)
        );
        assert_eq!(
            first_usable(Ok(Vec::new()), never),
            Err(CudaError::NoDevice)
        );
        assert_eq!(
            first_usable(Ok(vec![device(0)]), || false),
            Err(CudaError::NoNvrtc)
        );
        assert_eq!(
            first_usable(Ok(vec![device(0), device(1)]), || true),
            Ok(device(0))
        );
    }

    #[test]
    fn choose_takes_cuda_only_after_the_self_check() {
        let passed = choose(Ok(device(1)), |_| Ok(()));
        assert_eq!(passed.backend, Backend::Cuda(device(1)));
        assert_eq!(passed.cpu_reason, None);
        assert!(
            passed
                .to_string()
                .starts_with("graft uses cuda:1 (Test GPU 1)"),
            "{passed}"
        );

        let bad = CudaError::SelfCheck {
            kernel: "knn",
            detail: "neighbour indices differ".into(),
        };
        let failed = choose(Ok(device(0)), |info| {
            assert_eq!(info, &device(0), "the self-check runs on the chosen device");
            Err(bad.clone())
        });
        assert_eq!(failed.backend, Backend::Cpu);
        assert_eq!(failed.cpu_reason, Some(bad));
        assert!(
            failed
                .to_string()
                .contains("`knn` failed graft's self-check"),
            "{failed}"
        );

        let unusable = choose(Err(CudaError::NoNvrtc), |_| panic!("no device to check"));
        assert_eq!(unusable.cpu_reason, Some(CudaError::NoNvrtc));
        assert!(
            unusable
                .to_string()
                .starts_with("graft uses the CPU: no NVRTC"),
            "{unusable}"
        );
    }

    #[test]
    fn select_backend_on_gpu_is_cuda() {
        match probe() {
            Err(err) => println!("skipped: {err}"),
            Ok(_) if !nvrtc_available() => println!("skipped: {}", CudaError::NoNvrtc),
            // On a GPU, CUDA is taken unless a kernel fails the self-check.
            Ok(devices) => assert_eq!(
                backend_choice(),
                &BackendChoice {
                    backend: Backend::Cuda(devices[0].clone()),
                    cpu_reason: None
                }
            ),
        }
    }
}
