//! Ctrl-C and SIGTERM: graft's own temporary files (`<target>.tmp-<pid>-<n>`) are removed
//! before it exits, instead of being left beside their targets until a later writer sweeps
//! them.
//!
//! SIGINT and SIGTERM are blocked in every thread (the mask is set before any thread starts
//! and inherited) and received by one thread in `sigwait`, which may then do ordinary work:
//! a first Ctrl-C in `graft transfer` or `graft sweep` asks their training loops to stop
//! (they save what they have and end normally: a training state, a partial sweep report);
//! a Ctrl-C anywhere else, a second Ctrl-C or a SIGTERM removes this process's temporary
//! files under the command's output folders and exits with 128 + the signal number.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Whether a first Ctrl-C is handed to graft-transfer's training loops.
static GRACEFUL: AtomicBool = AtomicBool::new(false);
/// Folders (searched three levels deep) where this command writes.
static OUTPUT_DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Blocks SIGINT and SIGTERM and starts the thread that receives them. Call first in `main`,
/// before any other thread exists.
pub fn start() {
    #[cfg(unix)]
    // SAFETY: plain libc calls on a local, initialised signal set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return;
        }
        let spawned = std::thread::Builder::new()
            .name("signals".into())
            .spawn(move || loop {
                let mut sig: libc::c_int = 0;
                if libc::sigwait(&set, &mut sig) != 0 {
                    continue;
                }
                if sig == libc::SIGINT
                    && GRACEFUL.load(Ordering::SeqCst)
                    && !graft_transfer::interrupt::request()
                {
                    continue;
                }
                remove_own_temp_files();
                libc::_exit(128 + sig);
            });
        if spawned.is_err() {
            // No receiver: restore the default effect rather than ignore the signals.
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        }
    }
}

/// Hands the first Ctrl-C to graft-transfer's training loops (`graft transfer`, `sweep`).
pub fn stop_training_on_ctrl_c() {
    GRACEFUL.store(true, Ordering::SeqCst);
}

/// Records folders the command writes into (a file's folder for a file output).
pub fn outputs<'a>(dirs: impl IntoIterator<Item = &'a Path>) {
    let mut all = OUTPUT_DIRS.lock().unwrap_or_else(|e| e.into_inner());
    all.extend(dirs.into_iter().map(Path::to_path_buf));
}

/// The folder of a file output (`.` for a bare name).
pub fn parent(file: &Path) -> &Path {
    match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Removes `*.tmp-<this pid>-*` under the recorded folders.
pub fn remove_own_temp_files() {
    let marker = format!(".tmp-{}-", std::process::id());
    let dirs = OUTPUT_DIRS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    for dir in dirs {
        remove_in(&dir, &marker, 3);
    }
}

fn remove_in(dir: &Path, marker: &str, depth: usize) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let Ok(kind) = e.file_type() else { continue };
        if kind.is_file() && e.file_name().to_string_lossy().contains(marker) {
            let _ = std::fs::remove_file(e.path());
        } else if kind.is_dir() && depth > 1 {
            remove_in(&e.path(), marker, depth - 1);
        }
    }
}
