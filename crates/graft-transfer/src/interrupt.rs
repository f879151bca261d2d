//! Ctrl-C: a SIGINT sets a flag that the training loops check between steps; they save the
//! training state and return [`crate::TransferError::Interrupted`]. A second Ctrl-C exits at
//! once (status 130).
//!
//! A few lines over the C library's `signal` rather than a dependency: the handler only
//! stores to an atomic (async-signal-safe) or calls `_exit`. On non-Unix targets
//! [`install`] does nothing and Ctrl-C keeps its default effect.

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Whether Ctrl-C was pressed since [`install`].
pub fn requested() -> bool {
    REQUESTED.load(Ordering::Relaxed)
}

/// Asks the training loops to stop, as Ctrl-C does; returns whether a stop was already
/// requested. For a binary that receives signals itself (graft-cli's signal thread) instead
/// of through [`install`].
pub fn request() -> bool {
    REQUESTED.swap(true, Ordering::SeqCst)
}

/// Installs the SIGINT handler (idempotent). Call it from a binary, not from a library.
pub fn install() {
    #[cfg(unix)]
    unix::install();
}

#[cfg(unix)]
mod unix {
    use std::ffi::c_int;
    use std::sync::atomic::Ordering;

    const SIGINT: c_int = 2;

    extern "C" {
        fn signal(signum: c_int, handler: extern "C" fn(c_int)) -> usize;
        fn _exit(status: c_int) -> !;
    }

    extern "C" fn on_sigint(_: c_int) {
        if super::REQUESTED.swap(true, Ordering::Relaxed) {
            // SAFETY: `_exit` is async-signal-safe and takes any status.
            unsafe { _exit(130) }
        }
    }

    pub(super) fn install() {
        // SAFETY: `on_sigint` has the `void (*)(int)` signature `signal` expects and only
        // touches an atomic or calls `_exit`, both allowed in a signal handler.
        unsafe {
            signal(SIGINT, on_sigint);
        }
    }
}
