//! Runtime probe: is there a CUDA driver, which devices does it see, is NVRTC loadable?
//!
//! cudarc is built with `dynamic-loading`: it opens `libcuda.so` / `libnvrtc.so` on
//! first use and *panics* if they are missing. Every entry point here therefore
//! first asks cudarc's `is_culib_present()` whether the library can be opened, and
//! only then calls into it. As a last line of defence each call into cudarc runs
//! under [`std::panic::catch_unwind`], so a panic inside cudarc (for example a
//! symbol missing from an old driver) becomes a [`CudaError`] rather than tearing
//! down graft. The default panic hook may still print that panic to stderr.

use std::any::Any;
use std::panic::{catch_unwind, AssertUnwindSafe};

use cudarc::driver::{sys as driver_sys, CudaContext, DriverError};

use crate::error::CudaError;

/// One CUDA device as seen by the driver.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceInfo {
    /// Device ordinal, as used in `cuda:<ordinal>`.
    pub ordinal: usize,
    /// Marketing name reported by the driver, e.g. `NVIDIA H200`.
    pub name: String,
    /// Total device memory in bytes.
    pub total_memory_bytes: u64,
    /// Compute capability `(major, minor)`, e.g. `(9, 0)` for `sm_90`.
    pub compute_capability: (u32, u32),
}

/// Lists the CUDA devices visible to this process.
///
/// Returns [`CudaError::NoDriver`] when the driver library cannot be loaded,
/// [`CudaError::NoDevice`] when the driver sees no device, and
/// [`CudaError::Driver`] when a driver call fails. Never panics.
///
/// Devices that exist but cannot be opened (e.g. a GPU in "prohibited" compute
/// mode) are skipped with a `tracing` warning; if none can be opened the first
/// such error is returned.
pub fn probe() -> Result<Vec<DeviceInfo>, CudaError> {
    if !driver_library_present() {
        return Err(CudaError::NoDriver);
    }
    guarded("probing CUDA devices", probe_devices)
}

/// Whether the NVRTC runtime compiler can be loaded (needed for graft's CUDA kernels).
///
/// Opens the library and calls `nvrtcVersion`; never panics.
pub fn nvrtc_available() -> bool {
    // SAFETY: `is_culib_present` only tries `dlopen` on NVRTC's candidate names and
    // closes what it opened; loading the vendor's NVRTC is what we mean to do anyway.
    let present =
        catch_unwind(|| unsafe { cudarc::nvrtc::sys::is_culib_present() }).unwrap_or(false);
    if !present {
        return false;
    }
    catch_unwind(|| {
        let (mut major, mut minor) = (0, 0);
        // SAFETY: the library is present (checked above); both pointers refer to
        // live, writable `c_int`s for the duration of the call.
        let status = unsafe { cudarc::nvrtc::sys::nvrtcVersion(&mut major, &mut minor) };
        status == cudarc::nvrtc::sys::nvrtcResult::NVRTC_SUCCESS
    })
    .unwrap_or(false)
}

/// Human-readable text for `graft devices`.
///
/// One line per device, e.g. `cuda:0  NVIDIA H200  139.8 GiB  sm_90`, or a single
/// line `no CUDA device: <reason>; graft uses the CPU` when there is none.
/// Lines are separated by `\n`; there is no trailing newline.
pub fn describe(result: &Result<Vec<DeviceInfo>, CudaError>) -> String {
    match result {
        Ok(devices) if devices.is_empty() => {
            format!(
                "no CUDA device: {}; graft uses the CPU",
                CudaError::NoDevice
            )
        }
        Ok(devices) => devices
            .iter()
            .map(describe_device)
            .collect::<Vec<_>>()
            .join("\n"),
        Err(err) => format!("no CUDA device: {err}; graft uses the CPU"),
    }
}

fn describe_device(d: &DeviceInfo) -> String {
    const GIB: f64 = (1u64 << 30) as f64;
    let (major, minor) = d.compute_capability;
    format!(
        "cuda:{}  {}  {:.1} GiB  sm_{}{}",
        d.ordinal,
        d.name,
        d.total_memory_bytes as f64 / GIB,
        major,
        minor
    )
}

/// Whether cudarc can open the NVRTC library (without calling into it). Never panics.
pub(crate) fn nvrtc_library_present() -> bool {
    // SAFETY: `is_culib_present` only tries `dlopen` on NVRTC's candidate names and
    // closes what it opened; loading the vendor's NVRTC is what we mean to do anyway.
    catch_unwind(|| unsafe { cudarc::nvrtc::sys::is_culib_present() }).unwrap_or(false)
}

/// Whether cudarc can open the cuBLAS library. Never panics.
pub(crate) fn cublas_library_present() -> bool {
    // SAFETY: `is_culib_present` only tries `dlopen` on cuBLAS's candidate names and
    // closes what it opened; loading the vendor's cuBLAS is what we mean to do anyway.
    catch_unwind(|| unsafe { cudarc::cublas::sys::is_culib_present() }).unwrap_or(false)
}

/// Whether cudarc can open the CUDA driver library. Never panics.
pub(crate) fn driver_library_present() -> bool {
    // SAFETY: `is_culib_present` only tries `dlopen` on the driver's candidate names
    // and closes what it opened; loading the vendor's driver is what we mean to do.
    catch_unwind(|| unsafe { driver_sys::is_culib_present() }).unwrap_or(false)
}

/// Runs `f`, turning a panic inside cudarc into [`CudaError::Driver`].
pub(crate) fn guarded<T>(
    what: &str,
    f: impl FnOnce() -> Result<T, CudaError>,
) -> Result<T, CudaError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        Err(CudaError::Driver(format!(
            "{what}: cudarc panicked ({})",
            panic_message(payload.as_ref())
        )))
    })
}

pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

pub(crate) fn driver_error(call: &str, err: DriverError) -> CudaError {
    if err.0 == driver_sys::CUresult::CUDA_ERROR_NO_DEVICE {
        CudaError::NoDevice
    } else {
        CudaError::Driver(format!("{call}: {err}"))
    }
}

/// Body of [`probe`]; only called once the driver library is known to be present.
fn probe_devices() -> Result<Vec<DeviceInfo>, CudaError> {
    let count = CudaContext::device_count().map_err(|e| driver_error("cuDeviceGetCount", e))?;
    let count = usize::try_from(count)
        .map_err(|_| CudaError::Driver(format!("cuDeviceGetCount: invalid count {count}")))?;
    if count == 0 {
        return Err(CudaError::NoDevice);
    }
    let mut devices = Vec::with_capacity(count);
    let mut first_error = None;
    for ordinal in 0..count {
        match device_info(ordinal) {
            Ok(info) => devices.push(info),
            Err(err) => {
                tracing::warn!(ordinal, error = %err, "skipping CUDA device that cannot be opened");
                first_error.get_or_insert(err);
            }
        }
    }
    match (devices.is_empty(), first_error) {
        (true, Some(err)) => Err(err),
        _ => Ok(devices),
    }
}

fn device_info(ordinal: usize) -> Result<DeviceInfo, CudaError> {
    let ctx = CudaContext::new(ordinal).map_err(|e| driver_error("cuCtx (primary context)", e))?;
    let name = ctx.name().map_err(|e| driver_error("cuDeviceGetName", e))?;
    let total_mem = ctx
        .total_mem()
        .map_err(|e| driver_error("cuDeviceTotalMem", e))?;
    let (major, minor) = ctx
        .compute_capability()
        .map_err(|e| driver_error("cuDeviceGetAttribute(compute capability)", e))?;
    let to_u32 = |v: i32| {
        u32::try_from(v).map_err(|_| {
            CudaError::Driver(format!(
                "cuDeviceGetAttribute: invalid compute capability {v}"
            ))
        })
    };
    Ok(DeviceInfo {
        ordinal,
        name: name.trim().to_owned(),
        total_memory_bytes: total_mem as u64,
        compute_capability: (to_u32(major)?, to_u32(minor)?),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h200() -> DeviceInfo {
        DeviceInfo {
            ordinal: 0,
            name: "NVIDIA H200".to_owned(),
            total_memory_bytes: 150_119_022_592,
            compute_capability: (9, 0),
        }
    }

    #[test]
    fn describe_formats_hand_made_devices() {
        let second = DeviceInfo {
            ordinal: 1,
            name: "NVIDIA GeForce RTX 4090".to_owned(),
            total_memory_bytes: 24 * (1u64 << 30),
            compute_capability: (8, 9),
        };
        let text = describe(&Ok(vec![h200(), second]));
        assert_eq!(
            text,
            "cuda:0  NVIDIA H200  139.8 GiB  sm_90\ncuda:1  NVIDIA GeForce RTX 4090  24.0 GiB  sm_89"
        );
    }

    #[test]
    fn describe_errors_say_no_cuda_device_and_cpu() {
        for err in [
            CudaError::NoDriver,
            CudaError::NoNvrtc,
            CudaError::NoDevice,
            CudaError::Driver("cuInit: boom".to_owned()),
        ] {
            let text = describe(&Err(err.clone()));
            assert!(text.starts_with("no CUDA device: "), "{text}");
            assert!(text.ends_with("; graft uses the CPU"), "{text}");
            assert!(text.contains(&err.to_string()), "{text}");
        }
        let empty = describe(&Ok(Vec::new()));
        assert!(empty.starts_with("no CUDA device: "), "{empty}");
    }

    #[test]
    fn probe_never_panics_and_reports_missing_driver() {
        let result = probe();
        if !driver_library_present() {
            assert_eq!(result, Err(CudaError::NoDriver));
        }
        let text = describe(&result);
        match &result {
            Ok(devices) => assert_eq!(text.lines().count(), devices.len()),
            Err(_) => assert!(text.starts_with("no CUDA device"), "{text}"),
        }
    }

    #[test]
    fn nvrtc_probe_never_panics() {
        let first = nvrtc_available();
        assert_eq!(first, nvrtc_available());
    }

    #[test]
    fn probe_on_gpu_lists_consistent_devices() {
        let devices = match probe() {
            Ok(devices) => devices,
            Err(err) => {
                println!("skipped: {err}");
                return;
            }
        };
        assert!(!devices.is_empty());
        for (i, d) in devices.iter().enumerate() {
            assert!(d.ordinal >= i, "ordinals increase");
            assert!(!d.name.is_empty());
            assert!(d.total_memory_bytes > 0);
            assert!(d.compute_capability.0 >= 3, "{:?}", d.compute_capability);
        }
        assert_eq!(
            describe(&Ok(devices.clone())).lines().count(),
            devices.len()
        );
    }

    #[test]
    fn panics_inside_guard_become_driver_errors() {
        // The default hook prints the panic; the test harness captures that output.
        let result: Result<(), CudaError> = guarded("testing", || panic!("library vanished"));
        match result {
            Err(CudaError::Driver(msg)) => assert!(msg.contains("library vanished"), "{msg}"),
            other => panic!("expected Driver error, got {other:?}"),
        }
    }
}
