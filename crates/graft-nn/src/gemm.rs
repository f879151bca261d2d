//! [`gemm_strided`]: the one call into the `gemm` crate (the GEMM dfdx itself uses) that
//! graft's own kernels share, with its bounds checked.

/// `c (m x n, row stride ldc) = [c +] a (m x k) b (k x n)`, `a` and `b` given by their
/// (row, column) strides; `acc` adds to `c` instead of overwriting it. Runs on `par`'s
/// threads.
///
/// # Panics
/// If a stride reaches past the end of its buffer.
pub fn gemm_strided(
    (m, n, k): (usize, usize, usize),
    (c, ldc, acc): (&mut [f32], usize, bool),
    (a, a_rs, a_cs): (&[f32], usize, usize),
    (b, b_rs, b_cs): (&[f32], usize, usize),
    par: gemm::Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    let last = |rows: usize, cols: usize, rs: usize, cs: usize| (rows - 1) * rs + (cols - 1) * cs;
    assert!(last(m, n, ldc, 1) < c.len(), "gemm_strided: short output");
    if k == 0 {
        if !acc {
            for row in c.chunks_mut(ldc).take(m) {
                row[..n].fill(0.0);
            }
        }
        return;
    }
    assert!(
        last(m, k, a_rs, a_cs) < a.len() && last(k, n, b_rs, b_cs) < b.len(),
        "gemm_strided: short input"
    );
    // SAFETY: the assertions bound the last element each operand's strides reach; `c` is a
    // `&mut` borrow, so it aliases neither `a` nor `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            ldc as isize,
            acc,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        );
    }
}
