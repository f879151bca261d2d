//! Breaking a kernel on purpose makes the benchmark suite fail: the suite's convolution check
//! (`checks::check_conv_kernels`, run before any timing) rejects a convolution whose backward
//! pass has an off-by-one, and accepts graft's. Run with `cargo test -p graft --bench mutation`.
#![allow(missing_docs)]

#[path = "baseline/mod.rs"]
mod baseline;
#[path = "checks.rs"]
mod checks;

use checks::{check_conv_kernels, graft_conv, ConvOut};

#[test]
fn graft_conv_passes_the_suite_checks() {
    check_conv_kernels(&graft_conv);
}

#[test]
fn off_by_one_in_conv_backward_fails_the_suite() {
    // The input gradient folded back one column off (col2im's classic off-by-one).
    let broken = |fused: bool, x: &[f32], w: &[f32], b: &[f32], gy: &[f32], dims| {
        let ConvOut { y, mut gx, gw, gb } = graft_conv(fused, x, w, b, gy, dims);
        gx.rotate_right(1);
        ConvOut { y, gx, gw, gb }
    };
    let r = std::panic::catch_unwind(|| check_conv_kernels(&broken));
    let msg = r.expect_err("the suite accepted a broken conv backward");
    let msg = msg.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(msg.contains("grad x"), "failed for another reason: {msg}");
}
