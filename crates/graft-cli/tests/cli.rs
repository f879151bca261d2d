//! The `graft` binary's contract: error lines for bad input, JSON forms, exit codes.

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
    let dir = std::env::temp_dir().join(format!("graft-cli-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    TempDir(dir)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// One line, naming the file, non-zero exit, and no panic message.
fn assert_clean_error(o: &Output, file: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure, got success: {err}");
    assert_ne!(o.status.code(), Some(101), "panicked: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one error line expected: {err}");
    assert!(
        lines[0].starts_with("error: ") && lines[0].contains(file),
        "{err}"
    );
}

fn import_animals(dir: &Path) -> PathBuf {
    let out = dir.join("animals.gds");
    let o = graft(&[
        "data",
        "import",
        "--images",
        "data/animal-mnist/images-idx3-ubyte.gz",
        "--labels",
        "data/animal-mnist/labels-idx1-ubyte.gz",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    out
}

/// `graft eval --json` of `checkpoint` (a `model`) on Animal-MNIST's Cat/Dog test split.
fn eval_cat_dog_test(dir: &Path, model: &str, checkpoint: &Path) -> serde_json::Value {
    let ds = import_animals(dir);
    let o = graft(&[
        "eval",
        "--model",
        model,
        "--checkpoint",
        checkpoint.to_str().unwrap(),
        "--data",
        ds.to_str().unwrap(),
        "--classes",
        "2,4",
        "--split",
        "test",
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

#[test]
fn corrupt_truncated_and_missing_data_files_give_one_clear_line() {
    let dir = temp_dir("bad-data");
    let good = import_animals(&dir);
    let bytes = std::fs::read(&good).unwrap();
    let truncated = dir.join("truncated.gds");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    let garbage = dir.join("garbage.gds");
    std::fs::write(&garbage, b"this is not a data set at all, not even close....................................................................").unwrap();
    for bad in [&truncated, &garbage, &dir.join("missing.gds")] {
        let o = graft(&["data", "inspect", bad.to_str().unwrap()]);
        assert_clean_error(&o, bad.file_name().unwrap().to_str().unwrap());
    }
    // A truncated IDX input.
    let idx = std::fs::read(root().join("data/animal-mnist/labels-idx1-ubyte.gz")).unwrap();
    let cut = dir.join("labels-cut.gz");
    std::fs::write(&cut, &idx[..idx.len() / 2]).unwrap();
    let o = graft(&[
        "data",
        "import",
        "--images",
        "data/animal-mnist/images-idx3-ubyte.gz",
        "--labels",
        cut.to_str().unwrap(),
        "--out",
        dir.join("x.gds").to_str().unwrap(),
    ]);
    assert_clean_error(&o, "labels-cut.gz");
}

#[test]
fn inspect_json_reports_counts_and_classes() {
    let dir = temp_dir("inspect");
    let ds = import_animals(&dir);
    let o = graft(&["data", "inspect", ds.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["count"], 10_000);
    assert_eq!(v["sample_shape"], serde_json::json!([28, 28]));
    assert_eq!(v["class_counts"].as_array().unwrap().len(), 10);
}

#[test]
fn eval_of_bad_checkpoints_gives_one_clear_line() {
    let dir = temp_dir("bad-ckpt");
    let ds = import_animals(&dir);
    let garbage = dir.join("garbage.safetensors");
    std::fs::write(
        &garbage,
        b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all",
    )
    .unwrap();
    let o = graft(&[
        "eval",
        "--model",
        "mlp",
        "--checkpoint",
        garbage.to_str().unwrap(),
        "--data",
        ds.to_str().unwrap(),
        "--json",
    ]);
    assert_clean_error(&o, "garbage.safetensors");
    // The PyTorch reference convnet is not an mlp: every mismatch is listed on one line.
    let wrong = root().join("tests/data/convnet_ref.safetensors");
    let o = graft(&[
        "eval",
        "--model",
        "mlp",
        "--checkpoint",
        wrong.to_str().unwrap(),
        "--data",
        ds.to_str().unwrap(),
        "--mean",
        "0.27",
        "--std",
        "0.4",
        "--json",
    ]);
    assert_clean_error(&o, "convnet_ref.safetensors");
}

#[test]
fn pretrain_transfer_and_eval_work_end_to_end() {
    let dir = temp_dir("e2e");
    let cache = dir.join("cache");
    let ckpt = dir.join("source.safetensors");
    let o = graft(&[
        "pretrain",
        "--protocol",
        "animals",
        "--model",
        "mlp",
        "--cache",
        cache.to_str().unwrap(),
        "--out",
        ckpt.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let target = dir.join("catdog.safetensors");
    let o = graft(&[
        "transfer",
        "--checkpoint",
        ckpt.to_str().unwrap(),
        "--strategy",
        "linear-probe",
        "--k",
        "10",
        "--seed",
        "0",
        "--cache",
        cache.to_str().unwrap(),
        "--out",
        target.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let t: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(t["n"], 400);
    // The JSON says where the head trained: on the CPU unless graft takes a GPU.
    let head_device = t["head_device"].as_str().expect("head_device in the JSON");
    if graft_cuda::select_backend().is_cuda() {
        assert!(
            head_device == "cpu" || head_device.starts_with("cuda:"),
            "{head_device}"
        );
    } else {
        assert_eq!(head_device, "cpu");
    }
    // `graft eval` on the same test split (Cat=2, Dog=4 renumbered 0, 1) agrees.
    let e = eval_cat_dog_test(&dir, "mlp", &target);
    assert_eq!(e["n"], 400);
    assert!((e["accuracy"].as_f64().unwrap() - t["accuracy"].as_f64().unwrap()).abs() < 1e-12);
    assert!(e["accuracy"].as_f64().unwrap() > 0.6);
}

#[test]
fn an_imagenet_transfer_saves_its_running_statistics_and_eval_agrees() {
    let Some(weights) = graft_test_support::effnet_weights() else {
        return;
    };
    let dir = temp_dir("imagenet");
    let target = dir.join("catdog.safetensors");
    // --model left out: the protocol's own network, EfficientNet-Lite0.
    let o = graft(&[
        "transfer",
        "--protocol",
        "imagenet-animals",
        "--checkpoint",
        weights.to_str().unwrap(),
        "--strategy",
        "linear-probe",
        "--k",
        "5",
        "--cache",
        dir.join("cache").to_str().unwrap(),
        "--out",
        target.to_str().unwrap(),
        "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let t: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let bytes = std::fs::read(&target).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    assert!(st.names().contains(&"_blocks.15._bn2.running_var"));
    let e = eval_cat_dog_test(&dir, "efficientnet-lite0", &target);
    assert_eq!(e["accuracy"], t["accuracy"]);
    // The ImageNet network is not pretrained on 28x28 silhouettes, and the reverse.
    let o = graft(&[
        "sweep",
        "--protocol",
        "animals",
        "--model",
        "efficientnet-lite0",
        "--runs",
        dir.join("runs").to_str().unwrap(),
    ]);
    assert_clean_error(&o, "--protocol imagenet-animals");
}

#[test]
fn devices_exits_zero_without_a_gpu() {
    let o = graft(&["devices"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!String::from_utf8_lossy(&o.stdout).trim().is_empty());
}

/// Reads `name` of a safetensors file as f32 values (F32 or I64).
fn tensor(st: &safetensors::SafeTensors<'_>, name: &str) -> (Vec<usize>, Vec<f32>) {
    let t = st.tensor(name).unwrap();
    let v = match t.dtype() {
        safetensors::Dtype::F32 => t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        safetensors::Dtype::I64 => t
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f32)
            .collect(),
        d => panic!("{name}: {d:?}"),
    };
    (t.shape().to_vec(), v)
}

/// A checkpoint laid out as `safetensors.torch.save_file(model.state_dict(), f,
/// metadata={"input_mean": ..., "input_std": ...})` writes it: PyTorch names, f32 or bf16.
fn write_pytorch_checkpoint(
    path: &Path,
    params: &[(String, Vec<usize>, Vec<f32>)],
    bf16: bool,
    prefix: &str,
) {
    let bytes: Vec<Vec<u8>> = params
        .iter()
        .map(|(_, _, v)| {
            if bf16 {
                v.iter()
                    .flat_map(|x| ((x.to_bits() >> 16) as u16).to_le_bytes())
                    .collect()
            } else {
                v.iter().flat_map(|x| x.to_le_bytes()).collect()
            }
        })
        .collect();
    let dtype = if bf16 {
        safetensors::Dtype::BF16
    } else {
        safetensors::Dtype::F32
    };
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = params
        .iter()
        .zip(&bytes)
        .map(|((n, s, _), b)| {
            (
                format!("{prefix}{n}"),
                safetensors::tensor::TensorView::new(dtype, s.clone(), b).unwrap(),
            )
        })
        .collect();
    let meta = [
        ("input_mean".to_string(), "0".to_string()),
        ("input_std".to_string(), "1".to_string()),
        ("format".to_string(), "pt".to_string()),
    ];
    safetensors::serialize_to_file(views, Some(meta.into_iter().collect()), path).unwrap();
}

#[test]
fn eval_runs_a_convnet_checkpoint_written_with_pytorch_names() {
    let dir = temp_dir("pytorch-convnet");
    let bytes = std::fs::read(root().join("tests/data/convnet_ref.safetensors")).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let params: Vec<(String, Vec<usize>, Vec<f32>)> = [
        "conv1.weight",
        "conv1.bias",
        "conv2.weight",
        "conv2.bias",
        "fc1.weight",
        "fc1.bias",
        "fc2.weight",
        "fc2.bias",
    ]
    .iter()
    .map(|n| {
        let (s, v) = tensor(&st, &format!("param.{n}"));
        (n.to_string(), s, v)
    })
    .collect();
    // The reference's 8 input images (already in [0, 1]) as an f32 data set, labelled with the
    // class PyTorch's logits rank first: graft must classify all 8 the same way.
    let (_, input) = tensor(&st, "input");
    let (_, logits) = tensor(&st, "logits");
    let argmax: Vec<u32> = logits
        .chunks(10)
        .map(|row| (0..10).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap() as u32)
        .collect();
    let data = dir.join("eight.gds");
    let meta = graft_data::Metadata {
        class_names: (0..10).map(|c| c.to_string()).collect(),
        provenance: "convnet_ref inputs".into(),
        mean: None,
        std: None,
    };
    graft_data::write_f32_dataset(&data, &[1, 28, 28], &input, &argmax, &meta).unwrap();

    for (bf16, prefix, extra) in [
        (false, "", vec![]),
        (true, "model.", vec!["--strip-prefix", "model."]),
    ] {
        let ckpt = dir.join(format!("convnet-{bf16}.safetensors"));
        write_pytorch_checkpoint(&ckpt, &params, bf16, prefix);
        let mut args = vec![
            "eval",
            "--model",
            "convnet",
            "--checkpoint",
            ckpt.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
            "--split",
            "all",
            "--json",
        ];
        args.extend(extra);
        let o = graft(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let e: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(e["n"], 8);
        assert_eq!(e["accuracy"], 1.0, "bf16={bf16}");
    }
}

/// A PyTorch test checkpoint of graft-pth's (written by `torch.save`).
fn pth_case(name: &str) -> PathBuf {
    root().join("crates/graft-pth/tests/data").join(name)
}

#[test]
fn convert_writes_safetensors_with_the_same_names_and_a_table() {
    let dir = temp_dir("convert");
    let out = dir.join("views.safetensors");
    let input = pth_case("cases/views-legacy.pth");
    let o = graft(&["convert", input.to_str().unwrap(), out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(
        table.contains("wrote 6 tensors") && table.contains("legacy format"),
        "{table}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("transposed") && l.contains("[5, 3]")),
        "{table}"
    );
    let bytes = std::fs::read(&out).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names = st.names();
    names.sort();
    assert_eq!(
        names,
        ["block", "column", "matrix", "slice", "transposed", "whole"]
    );
    // --json, with the BatchNorm counter reported as skipped.
    let input = pth_case("cases/module-zip.pth");
    let o = graft(&[
        "convert",
        input.to_str().unwrap(),
        out.to_str().unwrap(),
        "--json",
        "--prefix-strip",
        "1.",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["format"], "zip");
    assert_eq!(v["skipped"][0]["name"], "1.num_batches_tracked");
    let written: Vec<&str> = v["written"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        written,
        [
            "0.weight",
            "0.bias",
            "weight",
            "bias",
            "running_mean",
            "running_var"
        ]
    );
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .contains(".tmp-")
        })
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn convert_of_what_is_not_a_checkpoint_gives_one_clear_line() {
    let dir = temp_dir("convert-bad");
    let text = dir.join("notes.txt");
    std::fs::write(&text, "not weights\n").unwrap();
    // torch.save([1, 2]) in the legacy format: a checkpoint with no tensors.
    let mut list = vec![
        0x80, 2, 0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, b'.',
    ];
    list.extend(b"\x80\x02M\xe9\x03.\x80\x02}.\x80\x02](K\x01K\x02e.\x80\x02].");
    let list_file = dir.join("list.pth");
    std::fs::write(&list_file, &list).unwrap();
    let safetensors_file = root().join("tests/data/convnet_ref.safetensors");
    let out = dir.join("out.safetensors");
    for (input, says) in [
        (dir.join("missing.pth"), "No such file"),
        (safetensors_file, "already a safetensors file"),
        (text, "text file"),
        (list_file.clone(), "no dict of tensors"),
        (pth_case("hostile/os_system-legacy.pth"), "`posix.system`"),
    ] {
        let o = graft(&["convert", input.to_str().unwrap(), out.to_str().unwrap()]);
        assert_clean_error(&o, input.file_name().unwrap().to_str().unwrap());
        assert_eq!(o.status.code(), Some(1));
        assert!(stderr(&o).contains(says), "{}", stderr(&o));
        assert!(!out.exists());
    }
    // The output may not be the input.
    let before = std::fs::read(&list_file).unwrap();
    let o = graft(&[
        "convert",
        list_file.to_str().unwrap(),
        list_file.to_str().unwrap(),
    ]);
    assert_clean_error(&o, "list.pth");
    assert_eq!(std::fs::read(&list_file).unwrap(), before);
}

#[test]
fn eval_reads_a_pytorch_checkpoint_without_running_it() {
    let dir = temp_dir("eval-pth");
    let ds = import_animals(&dir);
    let run = |ckpt: &Path| {
        graft(&[
            "eval",
            "--model",
            "convnet",
            "--checkpoint",
            ckpt.to_str().unwrap(),
            "--data",
            ds.to_str().unwrap(),
            "--mean",
            "0.3",
            "--std",
            "0.3",
        ])
    };
    let o = run(&pth_case("hostile/os_system-zip.pth"));
    assert_clean_error(&o, "os_system-zip.pth");
    assert!(stderr(&o).contains("`posix.system`"), "{}", stderr(&o));
    // A real torch.save file is converted on the way in: its tensors are read, and the
    // error is about the network (no convnet head), not the file's format.
    let o = run(&pth_case("cases/module-zip.pth"));
    assert_clean_error(&o, "module-zip.pth");
    let err = stderr(&o);
    assert!(
        err.contains("no tensor fc2.bias") && !err.contains("safetensors"),
        "{err}"
    );
}

#[test]
fn predict_without_weights_or_with_a_bad_photo_gives_one_clear_line() {
    let dir = temp_dir("predict");
    let missing = dir.join("none.safetensors");
    let photo = root().join("crates/graft-transfer/tests/data/photos/chelsea.png");
    let o = graft(&[
        "predict",
        "--checkpoint",
        missing.to_str().unwrap(),
        photo.to_str().unwrap(),
    ]);
    assert_clean_error(&o, "none.safetensors");
    assert!(stderr(&o).contains("cargo xtask fetch efficientnet-lite0"));
    let weights = root().join("runs/cache/efficientnet-lite0.safetensors");
    if weights.exists() {
        let text = dir.join("notes.txt");
        std::fs::write(&text, "not a photo").unwrap();
        let o = graft(&[
            "predict",
            "--checkpoint",
            weights.to_str().unwrap(),
            text.to_str().unwrap(),
        ]);
        assert_clean_error(&o, "notes.txt");
    }
}

#[test]
fn import_size_is_width_by_height() {
    let dir = temp_dir("size");
    let photo = root().join("crates/graft-transfer/tests/data/photos/chelsea.png");
    for class in ["a", "b"] {
        std::fs::create_dir_all(dir.join("folder").join(class)).unwrap();
        std::fs::copy(&photo, dir.join("folder").join(class).join("x.png")).unwrap();
    }
    let out = dir.join("wide.gds");
    let folder = dir.join("folder");
    let o = graft(&[
        "data",
        "import",
        "--images",
        folder.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--size",
        "30x20",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = graft(&["data", "inspect", out.to_str().unwrap(), "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        v["sample_shape"],
        serde_json::json!([20, 30]),
        "30 wide, 20 high"
    );
}
