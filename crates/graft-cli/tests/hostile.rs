//! A hostile battery: what a careless user, a full disk or a closed pipe does to `graft`.
//! Each bad input must give exit 1 and one `error:` line naming the file or value; inputs stay
//! byte-identical and no temporary file is left behind.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn graft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(args)
        .current_dir(root())
        .output()
        .expect("run graft")
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A test's own folder under the system's temp folder, removed when the test passes (kept
/// for a look when it fails).
struct TempDir(PathBuf);

impl std::ops::Deref for TempDir {
    type Target = PathBuf;
    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

impl AsRef<Path> for TempDir {
    fn as_ref(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn temp_dir(name: &str) -> TempDir {
    let dir = std::env::temp_dir().join(format!("graft-hostile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Exit 1, one `error:` line containing every one of `needles`, no panic text.
fn assert_clean_error(o: &Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "expected exit 1: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one error line expected: {err}");
    assert!(lines[0].starts_with("error: "), "{err}");
    for n in needles {
        assert!(lines[0].contains(n), "`{n}` not in: {err}");
    }
}

/// Files in `dir` whose name holds `.tmp-`.
fn temp_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp-"))
        .collect()
}

/// Animal-MNIST's IDX files copied into `dir` (images, labels).
fn idx_copies(dir: &Path) -> (PathBuf, PathBuf) {
    let (images, labels) = (dir.join("x.idx.gz"), dir.join("y.idx.gz"));
    std::fs::copy(
        root().join("data/animal-mnist/images-idx3-ubyte.gz"),
        &images,
    )
    .unwrap();
    std::fs::copy(
        root().join("data/animal-mnist/labels-idx1-ubyte.gz"),
        &labels,
    )
    .unwrap();
    (images, labels)
}

fn import(images: &Path, labels: &Path, out: &Path) -> Output {
    graft(&[
        "data",
        "import",
        "--images",
        s(images),
        "--labels",
        s(labels),
        "--out",
        s(out),
    ])
}

/// A character device node (the same numbers as /dev/null) made in `dir`, or `None` where
/// this user cannot make one (not root).
fn device_node(dir: &Path) -> Option<PathBuf> {
    let node = dir.join("node");
    let made = Command::new("mknod")
        .args([s(&node), "c", "1", "3"])
        .status()
        .is_ok_and(|st| st.success());
    if !made {
        eprintln!("skipped: mknod needs root");
        return None;
    }
    Some(node)
}

fn is_char_device(p: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_char_device())
}

#[test]
fn outputs_that_are_devices_or_folders_are_refused_and_left_alone() {
    let dir = temp_dir("device");
    let (images, labels) = idx_copies(&dir);
    if let Some(node) = device_node(&dir) {
        let o = import(&images, &labels, &node);
        assert_clean_error(&o, &["node", "not a regular file"]);
        assert!(is_char_device(&node), "the device node was replaced");
        let o = graft(&[
            "pretrain",
            "--cache",
            s(&dir.join("cache")),
            "--out",
            s(&node),
        ]);
        assert_clean_error(&o, &["node", "not a regular file"]);
        assert!(is_char_device(&node), "the device node was replaced");
    }
    let folder = dir.join("folder");
    std::fs::create_dir(&folder).unwrap();
    let o = import(&images, &labels, &folder);
    assert_clean_error(&o, &["folder", "is a folder"]);
    assert!(temp_files(&dir).is_empty(), "{:?}", temp_files(&dir));
}

#[test]
fn an_output_that_is_an_input_or_another_output_is_refused() {
    let dir = temp_dir("same");
    let (images, labels) = idx_copies(&dir);
    let before = std::fs::read(&images).unwrap();
    // The same file by another spelling.
    let again = dir.join(".").join("x.idx.gz");
    let o = import(&images, &labels, &again);
    assert_clean_error(&o, &["x.idx.gz", "is the input"]);
    let o = import(&images, &labels, &labels);
    assert_clean_error(&o, &["y.idx.gz", "is the input"]);
    assert_eq!(std::fs::read(&images).unwrap(), before);

    let ds = dir.join("a.gds");
    assert!(import(&images, &labels, &ds).status.success());
    let ds_bytes = std::fs::read(&ds).unwrap();
    let shared = dir.join("s.gds");
    let o = graft(&[
        "data",
        "split",
        s(&ds),
        "--train-out",
        s(&shared),
        "--test-out",
        s(&shared),
    ]);
    assert_clean_error(&o, &["s.gds", "also the output"]);
    assert!(!shared.exists());
    let o = graft(&[
        "data",
        "split",
        s(&ds),
        "--train-out",
        s(&ds),
        "--test-out",
        s(&shared),
    ]);
    assert_clean_error(&o, &["a.gds", "is the input"]);
    assert_eq!(std::fs::read(&ds).unwrap(), ds_bytes);

    let ckpt = dir.join("t.safetensors");
    std::fs::copy(root().join("tests/data/mlp_ref.safetensors"), &ckpt).unwrap();
    let ckpt_bytes = std::fs::read(&ckpt).unwrap();
    let o = graft(&[
        "transfer",
        "--checkpoint",
        s(&ckpt),
        "--cache",
        s(&dir.join("cache")),
        "--out",
        s(&ckpt),
    ]);
    assert_clean_error(&o, &["t.safetensors", "is the input"]);
    assert_eq!(std::fs::read(&ckpt).unwrap(), ckpt_bytes);
    assert!(temp_files(&dir).is_empty(), "{:?}", temp_files(&dir));
}

#[test]
fn stale_temp_files_of_dead_writers_are_swept_and_failed_writes_leave_none() {
    let dir = temp_dir("stale");
    let (images, labels) = idx_copies(&dir);
    let out = dir.join("out.gds");
    // Process ids above the kernel's limit (2^22) never run: these writers are dead.
    let stale = dir.join("out.gds.tmp-4999999-0");
    std::fs::write(&stale, vec![0u8; 4096]).unwrap();
    let unrelated = dir.join("other.gds.tmp-4999999-0");
    std::fs::write(&unrelated, b"x").unwrap();
    let o = import(&images, &labels, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stale.exists(), "stale temporary file left");
    assert!(
        unrelated.exists(),
        "another target's temporary file removed"
    );
    // A failed import (the labels do not match the images) leaves nothing.
    std::fs::remove_file(&unrelated).unwrap();
    let short = dir.join("short.idx");
    std::fs::write(&short, [0, 0, 8, 1, 0, 0, 0, 1, 0]).unwrap();
    let o = import(&images, &short, &dir.join("bad.gds"));
    assert_clean_error(&o, &["short.idx"]);
    assert!(temp_files(&dir).is_empty(), "{:?}", temp_files(&dir));
}

#[test]
fn a_closed_stdout_ends_graft_quietly() {
    use std::os::unix::process::ExitStatusExt;
    use std::process::Stdio;
    let dir = temp_dir("pipe");
    let (images, labels) = idx_copies(&dir);
    let ds = dir.join("a.gds");
    assert!(import(&images, &labels, &ds).status.success());
    // As `graft data inspect a.gds | head -0`: the reader is gone before graft writes.
    let mut child = Command::new(env!("CARGO_BIN_EXE_graft"))
        .args(["data", "inspect", s(&ds)])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let err = stderr(&o);
    assert!(err.is_empty(), "{err}");
    // Ended by SIGPIPE, as `cat` or `grep` are; or exit 0 if it finished writing first.
    assert!(
        o.status.signal() == Some(SIGPIPE) || o.status.success(),
        "{:?}",
        o.status
    );
}

/// SIGPIPE's number on Linux and the BSDs.
const SIGPIPE: i32 = 13;

#[test]
fn a_file_size_limit_is_a_write_error_and_leaves_no_temp_file() {
    let dir = temp_dir("fsize");
    let (images, labels) = idx_copies(&dir);
    let out = dir.join("big.gds");
    // 64 KiB is far below the 7.8 MB data set; SIGXFSZ would kill graft mid-write.
    let script = format!(
        "ulimit -f 64 && exec \"$0\" data import --images '{}' --labels '{}' --out '{}'",
        s(&images),
        s(&labels),
        s(&out)
    );
    let o = Command::new("bash")
        .args(["-c", &script, env!("CARGO_BIN_EXE_graft")])
        .output()
        .unwrap();
    assert_clean_error(
        &o,
        &["big.gds", "write failed", "File too large", "ulimit -f"],
    );
    assert!(!out.exists());
    assert!(temp_files(&dir).is_empty(), "{:?}", temp_files(&dir));
}

/// An IDX3 file of `n` 1x1 images and an IDX1 file with `labels`.
fn tiny_idx(dir: &Path, labels: &[u8]) -> (PathBuf, PathBuf) {
    let n = labels.len() as u32;
    let mut img = vec![0, 0, 8, 3];
    img.extend(n.to_be_bytes());
    img.extend(1u32.to_be_bytes());
    img.extend(1u32.to_be_bytes());
    img.extend((0..n).map(|i| i as u8));
    let mut lab = vec![0, 0, 8, 1];
    lab.extend(n.to_be_bytes());
    lab.extend(labels);
    let (i, l) = (dir.join("tiny-images.idx"), dir.join("tiny-labels.idx"));
    std::fs::write(&i, img).unwrap();
    std::fs::write(&l, lab).unwrap();
    (i, l)
}

#[test]
fn labels_beyond_the_classes_and_huge_sizes_are_errors_naming_the_value() {
    let dir = temp_dir("bounds");
    // IDX label 255 among 0..2: 253 empty classes.
    let (images, labels) = tiny_idx(&dir, &[0, 1, 2, 255]);
    let out = dir.join("o.gds");
    let o = import(&images, &labels, &out);
    assert_clean_error(
        &o,
        &[
            "tiny-labels.idx",
            "label 255 (sample 3)",
            "--num-classes 256",
        ],
    );
    assert!(!out.exists());
    let o = graft(&[
        "data",
        "import",
        "--images",
        s(&images),
        "--labels",
        s(&labels),
        "--num-classes",
        "256",
        "--out",
        s(&out),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    // A CSV label of four billion (was: an abort allocating the class names).
    let csv = dir.join("huge.csv");
    std::fs::write(&csv, "0,1,2\n4000000000,3,4\n").unwrap();
    let o = graft(&["data", "import", "--images", s(&csv), "--out", s(&out)]);
    assert_clean_error(&o, &["huge.csv:2", "4000000000", "not a class index"]);
    // One stray non-integer label (was: every label silently became a text class).
    std::fs::write(&csv, "0,1,2\n1,3,4\n10,5,6\nx,7,8\n").unwrap();
    let o = graft(&["data", "import", "--images", s(&csv), "--out", s(&out)]);
    assert_clean_error(&o, &["huge.csv:4", "label `x`", "--label-names"]);
    // An image size of 10^10 pixels (was: an abort allocating the samples).
    let folder = dir.join("folder");
    std::fs::create_dir_all(folder.join("cat")).unwrap();
    let o = graft(&[
        "data",
        "import",
        "--images",
        s(&folder),
        "--size",
        "100000x100000",
        "--out",
        s(&dir.join("f.gds")),
    ]);
    assert_clean_error(&o, &["f.gds", "100000x100000", "limit"]);
    assert!(temp_files(&dir).is_empty(), "{:?}", temp_files(&dir));
}

/// The PyTorch reference MLP's parameters as a checkpoint, with `poison` written into the
/// first element of `fc2.weight`.
fn mlp_checkpoint(path: &Path, poison: f32) {
    let bytes = std::fs::read(root().join("tests/data/mlp_ref.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut params: Vec<(String, Vec<usize>, Vec<u8>)> = st
        .tensors()
        .into_iter()
        .filter_map(|(n, t)| {
            let name = n.strip_prefix("param.")?.to_string();
            Some((name, t.shape().to_vec(), t.data().to_vec()))
        })
        .collect();
    let fc2 = params.iter_mut().find(|p| p.0 == "fc2.weight").unwrap();
    fc2.2[..4].copy_from_slice(&poison.to_le_bytes());
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = params
        .iter()
        .map(|(n, s, b)| {
            let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b);
            (n.clone(), view.unwrap())
        })
        .collect();
    let meta = [
        ("input_mean".to_string(), "0.27".to_string()),
        ("input_std".to_string(), "0.4".to_string()),
    ];
    safetensors::serialize_to_file(views, Some(meta.into_iter().collect()), path).unwrap();
}

#[test]
fn non_finite_weights_zero_samples_and_repeated_seeds_are_refused() {
    let dir = temp_dir("silent");
    let (images, labels) = idx_copies(&dir);
    // Eleven classes, the last without a sample, kept on purpose.
    let ds = dir.join("a.gds");
    let o = graft(&[
        "data",
        "import",
        "--images",
        s(&images),
        "--labels",
        s(&labels),
        "--num-classes",
        "11",
        "--out",
        s(&ds),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let eval = |ckpt: &Path, classes: &str| {
        graft(&[
            "eval",
            "--model",
            "mlp",
            "--checkpoint",
            s(ckpt),
            "--data",
            s(&ds),
            "--classes",
            classes,
        ])
    };
    let good = dir.join("good.safetensors");
    mlp_checkpoint(&good, 0.5);
    let o = eval(&good, "2,4");
    assert!(o.status.success(), "{}", stderr(&o));
    // Was: 0 % on 0 samples, exit 0.
    let o = eval(&good, "10");
    assert_clean_error(&o, &["a.gds", "no samples to evaluate on"]);
    // Was: chance accuracy, exit 0.
    for (name, poison) in [("nan", f32::NAN), ("inf", f32::INFINITY)] {
        let bad = dir.join(format!("{name}.safetensors"));
        mlp_checkpoint(&bad, poison);
        let o = eval(&bad, "2,4");
        assert_clean_error(
            &o,
            &[&format!("{name}.safetensors"), "fc2.weight", "index 0"],
        );
    }
    // Was: three "independent" runs of one seed and an interval of zero width.
    let sweep = |extra: &[&str]| {
        let mut args = vec![
            "sweep",
            "--runs",
            s(&dir),
            "--cache",
            s(&dir),
            "--strategies",
            "linear-probe",
        ];
        args.extend_from_slice(extra);
        graft(&args)
    };
    let o = sweep(&["--seeds", "0,1,0"]);
    assert_clean_error(&o, &["--seeds", "seed 0 twice"]);
    let o = sweep(&["--seeds", "0", "--k", "5,10,5"]);
    assert_clean_error(&o, &["--k", "label budget 5 twice"]);
    // Nothing was trained or written.
    let names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 6, "{names:?}");
}

#[test]
fn resume_refuses_a_state_saved_by_another_plan_or_source() {
    let dir = temp_dir("resume");
    let (source, other) = (
        dir.join("source.safetensors"),
        dir.join("other.safetensors"),
    );
    mlp_checkpoint(&source, 0.5);
    mlp_checkpoint(&other, 0.25);
    let states = dir.join("state");
    let transfer = |ckpt: &Path, out: &str, extra: &[&str]| {
        let out = dir.join(out);
        let mut args = vec![
            "transfer",
            "--checkpoint",
            s(ckpt),
            "--strategy",
            "fine-tune",
            "--k",
            "5",
            "--seed",
            "0",
            "--cache",
            s(&dir),
            "--state-dir",
            s(&states),
            "--out",
            s(&out),
        ];
        args.extend_from_slice(extra);
        graft(&args)
    };
    let o = transfer(&source, "a.safetensors", &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let saved: Vec<PathBuf> = std::fs::read_dir(&states)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| !p.to_string_lossy().contains("last-good"))
        .collect();
    assert_eq!(saved.len(), 1, "{saved:?}");
    let state = s(&saved[0]);
    let name = saved[0].file_name().unwrap().to_str().unwrap();
    // Was: the old run continued under the new settings' name.
    let o = transfer(
        &source,
        "b.safetensors",
        &["--resume", state, "--schedule", "cosine"],
    );
    assert_clean_error(&o, &[name, "another training plan", "--schedule"]);
    let o = transfer(&other, "b.safetensors", &["--resume", state]);
    assert_clean_error(&o, &[name, "another source checkpoint", "--checkpoint"]);
    // The same settings resume.
    let o = transfer(&source, "b.safetensors", &["--resume", state]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn a_damaged_cached_data_set_is_imported_again() {
    let dir = temp_dir("cache");
    let source = dir.join("source.safetensors");
    mlp_checkpoint(&source, 0.5);
    let transfer = || {
        graft(&[
            "transfer",
            "--checkpoint",
            s(&source),
            "--strategy",
            "linear-probe",
            "--k",
            "5",
            "--cache",
            s(&dir),
            "--out",
            s(&dir.join("t.safetensors")),
        ])
    };
    let o = transfer();
    assert!(o.status.success(), "{}", stderr(&o));
    let cached: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("animal-mnist-"))
        .collect();
    assert_eq!(cached.len(), 1, "{cached:?}");
    // One flipped pixel byte: the header still validates, only the checksum tells.
    let mut bytes = std::fs::read(&cached[0]).unwrap();
    bytes[100_000] ^= 0xff;
    std::fs::write(&cached[0], &bytes).unwrap();
    assert!(!graft(&["data", "verify", s(&cached[0])]).status.success());
    let o = transfer();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = graft(&["data", "verify", s(&cached[0])]);
    assert!(
        o.status.success(),
        "the damaged cache was reused: {}",
        stderr(&o)
    );
}

/// `graft sweep` with a tiny plan (fine-tune, k = 2, one job), its folders in `dir`.
fn tiny_sweep(dir: &Path, seeds: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_graft"));
    c.args([
        "sweep",
        "--strategies",
        "fine-tune",
        "--k",
        "2",
        "--jobs",
        "1",
    ])
    .args(["--seeds", seeds, "--runs"])
    .arg(dir.join("runs"))
    .arg("--cache")
    .arg(dir.join("cache"))
    .current_dir(root());
    c
}

/// (strategy, k, seed, accuracy) of every run in a report.json.
fn report_runs(json: &serde_json::Value) -> Vec<(String, String, u64, f64)> {
    json["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["strategy"].as_str().unwrap().to_string(),
                r["k"].to_string(),
                r["seed"].as_u64().unwrap(),
                r["accuracy"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[cfg(unix)]
#[test]
fn ctrl_c_in_a_sweep_keeps_the_finished_runs_and_resume_completes_the_report() {
    use std::io::{BufRead, BufReader};
    let dir = temp_dir("sweep-ctrl-c");
    // The uninterrupted sweep (it also pretrains the source network into the cache).
    let o = tiny_sweep(&dir, "0,1,2").arg("--json").output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let whole: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report_runs(&whole).len(), 3);

    // Ctrl-C once the first run has finished (graft logs each finished run at info level);
    // the second run (about a second) is in progress then.
    let mut child = tiny_sweep(&dir, "0,1,2")
        .env("RUST_LOG", "graft_transfer::sweep=info")
        .env("NO_COLOR", "1")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let finished = line.contains("run finished");
        seen.push(line);
        if finished {
            break;
        }
    }
    // SAFETY: kill(2) on the child's pid; it sends a signal and touches no memory.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    seen.extend(lines.map(|l| l.unwrap()));
    let status = child.wait().unwrap();
    let err = seen.join("\n");
    assert_eq!(status.code(), Some(130), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let last = seen.last().unwrap();
    assert!(
        last.starts_with("error: ")
            && last.contains("sweep interrupted")
            && last.contains("--resume"),
        "{err}"
    );
    // The folder it names holds the finished runs, marked partial.
    let folder = last.split("--resume ").nth(1).unwrap();
    let folder = folder.split_whitespace().next().unwrap();
    let partial: serde_json::Value =
        serde_json::from_slice(&std::fs::read(Path::new(folder).join("report.json")).unwrap())
            .unwrap();
    assert_eq!(partial["partial"], true, "{partial}");
    let kept = report_runs(&partial);
    assert!((1..3).contains(&kept.len()), "{kept:?}");
    assert_eq!(kept[..], report_runs(&whole)[..kept.len()]);
    let md = std::fs::read_to_string(Path::new(folder).join("report.md")).unwrap();
    assert!(
        md.contains(&format!("{} of 3 runs finished", kept.len())),
        "{md}"
    );

    // Resumed: the missing runs train, the report is complete and equals the uninterrupted one.
    let o = tiny_sweep(&dir, "0,1,2")
        .args(["--json", "--resume", folder])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let resumed: serde_json::Value =
        serde_json::from_slice(&std::fs::read(Path::new(folder).join("report.json")).unwrap())
            .unwrap();
    assert_eq!(resumed["partial"], false);
    assert_eq!(report_runs(&resumed), report_runs(&whole));
    assert_eq!(resumed["test_evaluations"], 3);
    // Resuming with another plan is refused, naming the run it does not plan.
    let o = tiny_sweep(&dir, "0,1")
        .args(["--resume", folder])
        .output()
        .unwrap();
    assert_clean_error(&o, &["report.json", "seed 2", "--seeds"]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn every_output_location_is_checked_before_training() {
    let dir = temp_dir("locations");
    let source = dir.join("source.safetensors");
    mlp_checkpoint(&source, 0.5);
    // A regular file where a folder is needed: unwritable as a folder even for root.
    let blocker = dir.join("blocker");
    std::fs::write(&blocker, b"not a folder").unwrap();
    let out = dir.join("out.safetensors");
    let transfer = |cache: &Path, extra: &[&str]| {
        let mut args = vec![
            "transfer",
            "--checkpoint",
            s(&source),
            "--strategy",
            "linear-probe",
            "--k",
            "5",
            "--cache",
            s(cache),
            "--out",
            s(&out),
        ];
        args.extend_from_slice(extra);
        graft(&args)
    };
    let state = blocker.join("state");
    let o = transfer(&dir.join("cache"), &["--state-dir", s(&state)]);
    assert_clean_error(
        &o,
        &["--state-dir", s(&state), "pass a folder you can write to"],
    );
    let o = transfer(&blocker, &[]);
    assert_clean_error(
        &o,
        &["--cache", s(&blocker), "pass a folder you can write to"],
    );
    // The feature cache under a good --cache.
    let cache = dir.join("cache2");
    std::fs::create_dir_all(&cache).unwrap();
    std::fs::write(cache.join("features"), b"x").unwrap();
    let o = transfer(&cache, &["--state-dir", s(&dir.join("states"))]);
    assert_clean_error(&o, &["feature cache", "features"]);
    assert!(!out.exists());
    // A sweep: nothing imported, pretrained or trained, no report folder made.
    let runs = dir.join("runs");
    let o = graft(&[
        "sweep",
        "--strategies",
        "linear-probe",
        "--seeds",
        "0",
        "--cache",
        s(&blocker),
        "--runs",
        s(&runs),
    ]);
    assert_clean_error(&o, &["--cache", s(&blocker)]);
    assert!(!runs.exists());
    // A read-only folder (permissions do not bind root, who is checked with files above).
    #[cfg(unix)]
    if unsafe { libc::geteuid() } != 0 {
        use std::os::unix::fs::PermissionsExt;
        let locked = dir.join("locked");
        std::fs::create_dir_all(&locked).unwrap();
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
        let o = transfer(&dir.join("cache"), &["--state-dir", s(&locked)]);
        assert_clean_error(&o, &["--state-dir", s(&locked), "cannot write there"]);
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    assert_eq!(
        std::fs::read(&blocker).unwrap(),
        b"not a folder",
        "the blocker was changed"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn two_sweeps_started_together_leave_two_report_folders() {
    let dir = temp_dir("two-sweeps");
    // Started at once, into the same --runs and the same (empty) cache: both import the data
    // and pretrain side by side, and their folders are named in the same second.
    let start = || {
        Command::new(env!("CARGO_BIN_EXE_graft"))
            .args(["sweep", "--strategies", "linear-probe", "--k", "2"])
            .args(["--seeds", "0,1", "--jobs", "1", "--json", "--runs"])
            .arg(dir.join("runs"))
            .arg("--cache")
            .arg(dir.join("cache"))
            .current_dir(root())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (start(), start());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    for o in [&a, &b] {
        assert!(o.status.success(), "{}", stderr(o));
    }
    let mut folders: Vec<PathBuf> = std::fs::read_dir(dir.join("runs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    folders.sort();
    assert_eq!(folders.len(), 2, "{folders:?}");
    let reports: Vec<serde_json::Value> = folders
        .iter()
        .map(|f| serde_json::from_slice(&std::fs::read(f.join("report.json")).unwrap()).unwrap())
        .collect();
    for r in &reports {
        assert_eq!(r["partial"], false);
        assert_eq!(report_runs(r).len(), 2);
    }
    // Each printed its own report, and the same seeds gave the same runs.
    let printed: Vec<serde_json::Value> = [&a, &b]
        .iter()
        .map(|o| serde_json::from_slice(&o.stdout).unwrap())
        .collect();
    assert_eq!(report_runs(&printed[0]), report_runs(&printed[1]));
    assert_eq!(report_runs(&reports[0]), report_runs(&reports[1]));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[cfg(unix)]
#[test]
fn sigterm_or_a_second_ctrl_c_removes_the_commands_own_temp_files() {
    for (name, signals, code) in [
        ("term", &[libc::SIGTERM][..], 143),
        ("int-int", &[libc::SIGINT, libc::SIGINT][..], 130),
    ] {
        let dir = temp_dir(&format!("signal-{name}"));
        // A fresh cache: the sweep imports and pretrains for a second or two first.
        let mut child = tiny_sweep(&dir, "0")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Temporary files as graft's writers name them: this process's, mid-write, and one
        // of another live process (pid 1), which must stay.
        let pid = child.id();
        let (cache, runs) = (dir.join("cache"), dir.join("runs"));
        std::fs::create_dir_all(cache.join("features")).unwrap();
        std::fs::create_dir_all(&runs).unwrap();
        let mine = [
            cache.join(format!("animals.gds.tmp-{pid}-0")),
            cache.join("features").join(format!("f.gds.tmp-{pid}-3")),
            runs.join(format!("report.json.tmp-{pid}-1")),
        ];
        let other = cache.join("x.gds.tmp-1-0");
        for f in mine.iter().chain([&other]) {
            std::fs::write(f, b"partial").unwrap();
        }
        // The run folder is made once the command has started (signal thread included).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::fs::read_dir(&runs)
            .unwrap()
            .flatten()
            .all(|e| !e.path().is_dir())
        {
            assert!(std::time::Instant::now() < deadline, "no run folder");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        for &sig in signals {
            // SAFETY: kill(2) on the child's pid; it sends a signal and touches no memory.
            assert_eq!(unsafe { libc::kill(pid as i32, sig) }, 0);
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(code), "{name}");
        for f in &mine {
            assert!(!f.exists(), "{name}: {} left", f.display());
        }
        assert!(
            other.exists(),
            "{name}: another process's temp file removed"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
