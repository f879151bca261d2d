//! graft's CUDA C kernels run on the CPU, so that they are checked against their CPU
//! references on every machine, GPU or not (test-only).
//!
//! The host C++ compiler (`$CXX`, else `c++`) builds `emulator/launch.cpp`, which
//! includes `kernels/*.cu` unchanged after `emulator/cuda_host.h` (the CUDA names they
//! use: `threadIdx`, `__shared__`, `__syncthreads`, ...). Kernels are launched as the
//! driver launches them: one pointer per argument, over a grid of blocks whose threads
//! share memory and meet at real barriers, with the launch shapes of the CUDA path
//! ([`super::grid_stride`], [`super::block_per_row`], [`super::thread_per_item`]).
//! cuBLAS is stood in for by [`sgemm_reference`], a plain column-major GEMM, called
//! with the shapes of [`super::gemm`].
//!
//! What this cannot see: NVRTC's code generation, the device's own `expf`/`logf`,
//! cudarc, cuBLAS, and device memory. `cargo xtask gpu-check` covers those on a GPU.

mod kernel_tests;

use std::ffi::{c_char, c_void, CString};
use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use cudarc::cublas::{sys::cublasOperation_t, GemmConfig};
use cudarc::driver::LaunchConfig;

type LaunchFn = unsafe extern "C" fn(*const c_char, u32, u32, *mut *mut c_void) -> i32;

/// The compiled emulator library, loaded once per test process.
pub(crate) struct Emulator {
    launch: LaunchFn,
    _library: libloading::Library,
}

/// The emulator, or `None` (after saying why) when no C++ compiler can be run.
/// With `GRAFT_REQUIRE_EMULATOR` set (`cargo xtask ci`), a missing compiler panics.
pub(crate) fn emulator() -> Option<&'static Emulator> {
    static EMULATOR: OnceLock<Result<Emulator, String>> = OnceLock::new();
    match EMULATOR.get_or_init(build) {
        Ok(emu) => Some(emu),
        Err(reason) => {
            assert!(
                std::env::var_os("GRAFT_REQUIRE_EMULATOR").is_none(),
                "GRAFT_REQUIRE_EMULATOR is set but {reason}"
            );
            println!("skipped: {reason}");
            None
        }
    }
}

/// Compiles and loads the emulator. A compiler that cannot be started is an `Err`
/// (the tests skip); a compiler that rejects the kernels is a panic (the tests fail).
fn build() -> Result<Emulator, String> {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let source = crate_dir.join("emulator/launch.cpp");
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".to_owned());
    let out = std::env::temp_dir().join(format!("graft-cuda-emulator-{}.so", std::process::id()));
    let compiled = Command::new(&cxx)
        .args(["-std=c++20", "-O2", "-ffp-contract=off", "-fPIC", "-shared"])
        .args(["-pthread", "-Wall", "-Wextra", "-o"])
        .arg(&out)
        .arg(&source)
        .output()
        .map_err(|e| {
            format!("cannot run the C++ compiler `{cxx}` ({e}); install one (`apt-get install g++`) or set CXX")
        })?;
    assert!(
        compiled.status.success(),
        "`{cxx}` failed on {}:\n{}",
        source.display(),
        String::from_utf8_lossy(&compiled.stderr)
    );
    // SAFETY: the library is ours, built just now; its initialisers only set up globals.
    let library = unsafe { libloading::Library::new(&out) }
        .unwrap_or_else(|e| panic!("cannot load {}: {e}", out.display()));
    // The mapping stays valid after the file is gone; leave no file per test process.
    let _ = std::fs::remove_file(&out);
    // SAFETY: `graft_emu_launch` in launch.cpp has exactly the `LaunchFn` signature.
    let launch = unsafe { library.get::<LaunchFn>("graft_emu_launch") }
        .map(|symbol| *symbol)
        .unwrap_or_else(|e| panic!("emulator lacks graft_emu_launch: {e}"));
    Ok(Emulator {
        launch,
        _library: library,
    })
}

/// Kernel arguments as cuLaunchKernel takes them: each value in an 8-byte slot of its
/// own (the pointers to the slots are taken at launch, after the last push).
#[derive(Default)]
pub(crate) struct Args {
    slots: Vec<u64>,
}

impl Args {
    /// Appends a by-value argument (a scalar or a pointer, at most 8 bytes).
    pub(crate) fn val<T: Copy>(mut self, value: T) -> Self {
        assert!(
            std::mem::size_of::<T>() <= 8,
            "kernel argument wider than 8 bytes"
        );
        let mut slot = 0u64;
        // SAFETY: the slot is 8 bytes and `T` at most 8; unaligned writes are allowed.
        unsafe { std::ptr::write_unaligned((&mut slot as *mut u64).cast::<T>(), value) };
        self.slots.push(slot);
        self
    }

    /// Appends a device pointer: the start of `buf`'s values.
    pub(crate) fn buf<T: Copy + PartialEq + std::fmt::Debug>(self, buf: &mut Guarded<T>) -> Self {
        self.buf_at(buf, 0)
    }

    /// Appends a device pointer `offset` values into `buf` (a cudarc slice view).
    pub(crate) fn buf_at<T: Copy + PartialEq + std::fmt::Debug>(
        self,
        buf: &mut Guarded<T>,
        offset: usize,
    ) -> Self {
        assert!(
            offset <= buf.len,
            "view offset {offset} past {} values",
            buf.len
        );
        let ptr = buf.ptr().wrapping_add(offset);
        self.val(ptr)
    }
}

impl Emulator {
    /// Runs kernel `name` with `cfg` (one-dimensional grids and blocks, as graft's are);
    /// panics if the emulator refuses the launch.
    pub(crate) fn launch(&self, name: &str, cfg: LaunchConfig, args: Args) {
        assert_eq!((cfg.grid_dim.1, cfg.grid_dim.2), (1, 1), "{name}: 1-D grid");
        assert_eq!(
            (cfg.block_dim.1, cfg.block_dim.2),
            (1, 1),
            "{name}: 1-D block"
        );
        assert_eq!(cfg.shared_mem_bytes, 0, "{name}: no dynamic shared memory");
        let mut args = args;
        let mut params: Vec<*mut c_void> = args
            .slots
            .iter_mut()
            .map(|slot| (slot as *mut u64).cast::<c_void>())
            .collect();
        let cname = CString::new(name).expect("kernel name without NUL");
        // SAFETY: `params` points at live slots in the order of the kernel's parameters
        // (the caller's `Args`), and every pointer argument is a `Guarded` buffer that
        // outlives this call.
        let rc = unsafe {
            (self.launch)(
                cname.as_ptr(),
                cfg.grid_dim.0,
                cfg.block_dim.0,
                params.as_mut_ptr(),
            )
        };
        let why = match rc {
            0 => return,
            -1 => "unknown kernel",
            -2 => "a kernel listed as barrier-free called __syncthreads",
            -3 => "invalid launch shape",
            _ => "unexpected return code",
        };
        panic!("emulated launch of {name} {cfg:?} failed: {why} ({rc})");
    }
}

/// Canary elements on each side of a [`Guarded`] buffer.
const GUARD: usize = 64;

/// A kernel buffer with canaries before and after it, so an out-of-bounds write by a
/// kernel is caught when the values are read back.
pub(crate) struct Guarded<T> {
    data: Vec<T>,
    len: usize,
    canary: T,
}

impl<T: Copy + PartialEq + std::fmt::Debug> Guarded<T> {
    /// A buffer holding `values`.
    pub(crate) fn new(values: &[T], canary: T) -> Self {
        let mut data = vec![canary; values.len() + 2 * GUARD];
        data[GUARD..GUARD + values.len()].copy_from_slice(values);
        Guarded {
            data,
            len: values.len(),
            canary,
        }
    }

    /// A buffer of `len` copies of `fill`.
    pub(crate) fn filled(len: usize, fill: T, canary: T) -> Self {
        Self::new(&vec![fill; len], canary)
    }

    /// The values, writable (for the stand-in GEMM).
    pub(crate) fn values_mut(&mut self) -> &mut [T] {
        let len = self.len;
        &mut self.data[GUARD..GUARD + len]
    }

    fn ptr(&mut self) -> *mut T {
        self.data[GUARD..].as_mut_ptr()
    }

    /// The values, after checking that no canary was overwritten.
    pub(crate) fn values(&self) -> &[T] {
        let (before, rest) = self.data.split_at(GUARD);
        let after = &rest[self.len..];
        assert!(
            before.iter().chain(after).all(|&v| v == self.canary),
            "a kernel wrote outside its buffer of {} values",
            self.len
        );
        &rest[..self.len]
    }
}

/// `f32` canary: of ordinary magnitude, so that a stray read-modify-write (`+= 1`,
/// `*= 0.999`) changes it, which a huge value or a NaN would absorb.
pub(crate) const F32_CANARY: f32 = -7.654_321;
/// `u32` canary.
pub(crate) const U32_CANARY: u32 = 0xDEAD_BEEF;

/// cuBLAS's `sgemm` by its definition: column-major `C = alpha op(A) op(B) + beta C`,
/// `op(A)` `m × k` (A stored `m × k` with `lda ≥ m`, or `k × m` with `lda ≥ k` when
/// transposed), `op(B)` `k × n`, C `m × n` with `ldc ≥ m`. C is not read when
/// `beta == 0`. Sums in `k` order. Panics on a leading dimension cuBLAS would reject or
/// a buffer too short for the shape.
pub(crate) fn sgemm_reference(cfg: &GemmConfig<f32>, a: &[f32], b: &[f32], c: &mut [f32]) {
    let as_usize = |v: i32| usize::try_from(v).expect("negative GEMM dimension");
    let (m, n, k) = (as_usize(cfg.m), as_usize(cfg.n), as_usize(cfg.k));
    let (lda, ldb, ldc) = (as_usize(cfg.lda), as_usize(cfg.ldb), as_usize(cfg.ldc));
    let a_t = cfg.transa == cublasOperation_t::CUBLAS_OP_T;
    let b_t = cfg.transb == cublasOperation_t::CUBLAS_OP_T;
    assert!(lda >= if a_t { k } else { m }.max(1), "lda {lda} too small");
    assert!(ldb >= if b_t { n } else { k }.max(1), "ldb {ldb} too small");
    assert!(ldc >= m.max(1), "ldc {ldc} too small");
    for j in 0..n {
        for i in 0..m {
            let mut sum = 0.0f32;
            for p in 0..k {
                let a_ip = if a_t { a[p + i * lda] } else { a[i + p * lda] };
                let b_pj = if b_t { b[j + p * ldb] } else { b[p + j * ldb] };
                sum += a_ip * b_pj;
            }
            let out = &mut c[i + j * ldc];
            *out = if cfg.beta == 0.0 {
                cfg.alpha * sum
            } else {
                cfg.alpha * sum + cfg.beta * *out
            };
        }
    }
}
