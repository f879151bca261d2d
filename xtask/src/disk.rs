//! Free disk space for `cargo xtask ci`: a full disk otherwise shows up late, as a rustc
//! "IO failure on output stream" in whichever build happens to run out.

use std::path::Path;
use std::process::Command;

use anyhow::Result;

use crate::util::project_root;

/// What a clean CI run needs on target/'s file system, with room to spare (measured: a clean
/// clone's `cargo xtask ci` peaks near 2 GB in target/).
const CI_NEED_GIB: f64 = 4.0;

/// Below this, the test build outputs are removed before the benchmark's release build.
const PRUNE_BELOW_GIB: f64 = 1.5;

/// Prints the free space on the file system that holds target/, and warns plainly when it
/// is less than CI needs. Never fails: a machine without `df` only loses the report.
pub(crate) fn report(stage: &str) {
    let target = project_root().join("target");
    match free_gib(&target) {
        Some(free) => {
            eprintln!(
                "xtask: disk ({stage}): {free:.1} GiB free for {}",
                target.display()
            );
            if free < CI_NEED_GIB {
                eprintln!(
                    "xtask: warning: CI needs about {CI_NEED_GIB} GiB free for target/; free \
                     space (or run `cargo clean`) before a build fails with \"No space left \
                     on device\""
                );
            }
        }
        None => eprintln!(
            "xtask: disk ({stage}): `df -Pk {}` gave no reading",
            target.display()
        ),
    }
}

/// Removes target/debug's build outputs (deps, build scripts, examples, incremental) when
/// less than [`PRUNE_BELOW_GIB`] is free; the running xtask binary itself is left alone.
pub(crate) fn prune_debug_if_low() -> Result<()> {
    prune_debug_below(&project_root().join("target"), PRUNE_BELOW_GIB)
}

fn prune_debug_below(target: &Path, threshold_gib: f64) -> Result<()> {
    let Some(free) = free_gib(target) else {
        return Ok(());
    };
    if free >= threshold_gib {
        return Ok(());
    }
    eprintln!(
        "xtask: only {free:.1} GiB free: removing {}'s test build outputs before the \
         benchmark build",
        target.join("debug").display()
    );
    for dir in ["deps", "build", "examples", "incremental"] {
        let path = target.join("debug").join(dir);
        if path.exists() {
            std::fs::remove_dir_all(&path)?;
        }
    }
    if let Some(free) = free_gib(target) {
        eprintln!("xtask: disk (after pruning): {free:.1} GiB free");
    }
    Ok(())
}

/// Free GiB on the file system holding `path` (created if missing), from `df -Pk`.
fn free_gib(path: &Path) -> Option<f64> {
    std::fs::create_dir_all(path).ok()?;
    let out = Command::new("df").arg("-Pk").arg(path).output().ok()?;
    if !out.status.success() {
        return None;
    }
    parse_df_available_kib(&String::from_utf8_lossy(&out.stdout)).map(|kib| kib / 1_048_576.0)
}

/// The "Available" column (KiB) of POSIX `df -Pk` output for one file system: the fourth
/// field after the header (name, size, used, available), also when a long device name
/// has pushed the numbers onto a line of their own.
fn parse_df_available_kib(text: &str) -> Option<f64> {
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next()?.split_whitespace().collect();
    if header.get(3) != Some(&"Available") {
        return None;
    }
    lines.flat_map(str::split_whitespace).nth(3)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_available_column_of_df_output() {
        // Printed by `df -Pk target` on this machine (GNU coreutils).
        let gnu = "Filesystem     1024-blocks     Used Available Capacity Mounted on\n\
                   /dev/vda         263174212 90316468 159384844      37% /\n";
        assert_eq!(parse_df_available_kib(gnu), Some(159_384_844.0));
        // A device name that wraps the numbers onto the next line.
        let wrapped = "Filesystem 1024-blocks Used Available Capacity Mounted on\n\
                       /dev/mapper/a-very-long-volume-name\n 1000 400 600 40% /work\n";
        assert_eq!(parse_df_available_kib(wrapped), Some(600.0));
        assert_eq!(parse_df_available_kib(""), None);
        assert_eq!(parse_df_available_kib("Filesystem Size\n/dev/x 10\n"), None);
        let truncated = "Filesystem 1024-blocks Used Available Capacity Mounted on\n/dev/x 10 4\n";
        assert_eq!(parse_df_available_kib(truncated), None);
    }

    #[test]
    fn this_machine_reports_some_free_space() {
        let free = free_gib(&std::env::temp_dir()).expect("df answers for the temp folder");
        assert!(free > 0.0, "{free}");
    }

    #[test]
    fn pruning_removes_build_outputs_only_below_the_threshold() {
        let target = std::env::temp_dir().join(format!("xtask-prune-{}", std::process::id()));
        let debug = target.join("debug");
        for dir in ["deps", "build", "examples", "incremental"] {
            std::fs::create_dir_all(debug.join(dir)).unwrap();
            std::fs::write(debug.join(dir).join("artifact"), b"x").unwrap();
        }
        std::fs::write(debug.join("xtask"), b"runner").unwrap();
        // Some space is always free, so a zero threshold keeps everything.
        prune_debug_below(&target, 0.0).unwrap();
        assert!(debug.join("deps/artifact").exists());
        prune_debug_below(&target, f64::INFINITY).unwrap();
        for dir in ["deps", "build", "examples", "incremental"] {
            assert!(!debug.join(dir).exists(), "{dir} left behind");
        }
        assert!(
            debug.join("xtask").exists(),
            "the running runner was removed"
        );
        std::fs::remove_dir_all(&target).unwrap();
    }
}
