//! Checks on output paths, made before anything is written: an output must be a regular file
//! or a new path, must not be one of the command's inputs, and no two outputs may share a file.
//! Also sweeps the temporary files (`<target>.tmp-<pid>-<n>`) that a killed writer left beside
//! a target.

use std::path::{Path, PathBuf};

use crate::DataError;

fn refuse(path: &Path, reason: impl Into<String>) -> DataError {
    DataError::UnsafeOutput {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Errors unless `path` is a new path or an existing regular file (symbolic links followed):
/// renaming a finished file over a device node, a pipe or a folder would replace it.
pub fn check_target(path: &Path) -> Result<(), DataError> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(m) => {
            let kind = if m.is_dir() {
                "a folder"
            } else {
                "not a regular file (a device, pipe or socket)"
            };
            Err(refuse(
                path,
                format!("it exists and is {kind}; name a new file or a regular file to replace"),
            ))
        }
        // A new path (or one the write itself will report on).
        Err(_) => Ok(()),
    }
}

/// What a path refers to: the file itself where it exists (device and inode on Unix, so hard
/// links and symbolic links compare equal), else its canonical folder joined with its name.
#[derive(Debug, PartialEq, Eq)]
enum Identity {
    #[cfg(unix)]
    Inode(u64, u64),
    Path(PathBuf),
}

fn identity(path: &Path) -> Identity {
    #[cfg(unix)]
    if let Ok(m) = std::fs::metadata(path) {
        use std::os::unix::fs::MetadataExt;
        return Identity::Inode(m.dev(), m.ino());
    }
    if let Ok(p) = path.canonicalize() {
        return Identity::Path(p);
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match (parent.canonicalize(), path.file_name()) {
        (Ok(dir), Some(name)) => Identity::Path(dir.join(name)),
        _ => Identity::Path(path.to_path_buf()),
    }
}

/// Errors if an output is one of `inputs` or shares its file with another output, or if an
/// output exists and is not a regular file ([`check_target`]). Call it before reading or
/// writing anything, with every path the command reads and writes.
pub fn check_outputs(inputs: &[&Path], outputs: &[&Path]) -> Result<(), DataError> {
    let ins: Vec<Identity> = inputs.iter().map(|p| identity(p)).collect();
    let mut outs: Vec<(Identity, &Path)> = Vec::with_capacity(outputs.len());
    for &out in outputs {
        check_target(out)?;
        let id = identity(out);
        if let Some(i) = ins.iter().position(|x| *x == id) {
            return Err(refuse(
                out,
                format!(
                    "it is the input {}, which would be replaced; name another output file",
                    inputs[i].display()
                ),
            ));
        }
        if let Some((_, other)) = outs.iter().find(|(x, _)| *x == id) {
            return Err(refuse(
                out,
                format!(
                    "it is also the output {}; give each output its own file",
                    other.display()
                ),
            ));
        }
        outs.push((id, out));
    }
    Ok(())
}

/// Removes `<target>.tmp-<pid>...` files beside `target` left by processes that no longer
/// run (a kill, a power cut). Files of live processes, this one included, are left alone.
/// Only where process ids can be checked (`/proc`); elsewhere it does nothing.
pub fn sweep_stale_temps(target: &Path) {
    let (Some(name), dir) = (target.file_name(), target.parent()) else {
        return;
    };
    let dir = match dir {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !Path::new("/proc/self").exists() {
        return;
    }
    let prefix = format!("{}.tmp-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        let Some(rest) = file_name.strip_prefix(&prefix) else {
            continue;
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let Ok(pid) = digits.parse::<u32>() else {
            continue;
        };
        let rest = &rest[digits.len()..];
        if !(rest.is_empty() || rest.starts_with('-')) || pid == std::process::id() {
            continue;
        }
        if !Path::new("/proc").join(pid.to_string()).exists()
            && entry.file_type().is_ok_and(|t| t.is_file())
        {
            let stale = entry.path();
            match std::fs::remove_file(&stale) {
                Ok(()) => tracing::info!(path = %stale.display(), "removed a stale temporary file"),
                Err(e) => tracing::warn!(path = %stale.display(), "stale temporary file: {e}"),
            }
        }
    }
}

/// Both checks a writer makes before creating its temporary file beside `target`.
pub(crate) fn prepare_target(target: &Path) -> Result<(), DataError> {
    check_target(target)?;
    sweep_stale_temps(target);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("graft-output-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn an_output_equal_to_an_input_or_another_output_is_refused() {
        let d = dir("same");
        let a = d.join("a");
        std::fs::write(&a, b"x").unwrap();
        let via_dot = d.join(".").join("a");
        let e = check_outputs(&[&a], &[&via_dot]).unwrap_err().to_string();
        assert!(e.contains("is the input"), "{e}");
        let (n1, n2) = (d.join("new"), d.join("./new"));
        let e = check_outputs(&[&a], &[&n1, &n2]).unwrap_err().to_string();
        assert!(e.contains("also the output"), "{e}");
        check_outputs(&[&a], &[&n1, &d.join("other")]).unwrap();
        assert!(check_target(&d).is_err());
    }

    #[test]
    fn stale_temps_of_dead_processes_are_swept_and_live_ones_kept() {
        let d = dir("sweep");
        let target = d.join("t.gds");
        // Process ids above the kernel's maximum (2^22) never run.
        let dead = d.join("t.gds.tmp-4999999-0");
        let mine = d.join(format!("t.gds.tmp-{}-0", std::process::id()));
        let other = d.join("u.gds.tmp-4999999-0");
        for p in [&dead, &mine, &other] {
            std::fs::write(p, b"x").unwrap();
        }
        sweep_stale_temps(&target);
        assert_eq!(dead.exists(), !Path::new("/proc/self").exists());
        assert!(mine.exists() && other.exists());
    }
}
