//! [`on_workers`]: run a training step on the thread pool its kernels split work over.

/// Runs `f` on a worker thread of the current rayon pool (the pool graft's and dfdx's GEMMs
/// run on) and returns its result; runs it in place when already on one.
///
/// Called from outside the pool, every parallel GEMM of a step is injected into the pool and
/// its caller sleeps until the workers finish; called from a worker, the GEMMs split with
/// `join` and the calling thread works on one half. For the mlp's training step at batch 64
/// that was ~20 % more samples/s on this 2-core machine (`cargo xtask bench`).
pub fn on_workers<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    if rayon::current_thread_index().is_some() {
        f()
    } else {
        rayon::scope(|_| f())
    }
}

#[cfg(test)]
mod tests {
    use super::on_workers;

    /// The closure runs on a pool worker, and in place when already on one.
    #[test]
    fn runs_on_a_pool_worker() {
        assert!(rayon::current_thread_index().is_none());
        let outer = on_workers(rayon::current_thread_index);
        assert!(outer.is_some());
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let inner = pool.install(|| {
            let here = rayon::current_thread_index();
            (here, on_workers(rayon::current_thread_index))
        });
        assert_eq!(inner.0, inner.1);
    }
}
