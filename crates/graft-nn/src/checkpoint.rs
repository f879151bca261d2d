//! Checkpoints as safetensors files with PyTorch `state_dict` names.
//!
//! graft writes every parameter as little-endian f32 under its PyTorch name, plus metadata:
//! `graft_network` (e.g. `mlp`) and the input normalisation `input_mean` / `input_std`
//! (decimal strings). On load every tensor's shape and dtype is checked; f16, bf16 and f64
//! are converted to f32 by value. All problems are reported together in one
//! [`NnError::Mismatch`].

use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, SafeTensors, TensorView};

use crate::rename::RenameRules;
use crate::{NnError, Parameters};

/// Metadata key holding the mean of the inputs (pixels scaled to [0, 1]).
pub const META_INPUT_MEAN: &str = "input_mean";
/// Metadata key holding the standard deviation of the inputs.
pub const META_INPUT_STD: &str = "input_std";
/// Metadata key holding the network's name.
pub const META_NETWORK: &str = "graft_network";

/// Input normalisation `(x - mean) / std`, applied to pixels scaled to [0, 1].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normalization {
    /// Mean of the training inputs.
    pub mean: f32,
    /// Standard deviation of the training inputs (positive).
    pub std: f32,
}

/// Which parameters of a network a load fills.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadScope {
    /// Every parameter, head included.
    Whole,
    /// Every parameter except those under the given head name (e.g. `fc3`), which keep
    /// their fresh initialisation; the file's head tensors are ignored.
    BackboneOnly {
        /// The head's module name.
        head: &'static str,
    },
}

/// Writes `model` to `path` atomically (temporary file, fsync, rename).
pub fn save(
    path: &Path,
    model: &impl Parameters,
    network: &str,
    norm: Option<Normalization>,
) -> Result<(), NnError> {
    let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
    model.visit_params(&mut |name, p| {
        let bytes = p.to_vec().iter().flat_map(|v| v.to_le_bytes()).collect();
        tensors.push((name.to_string(), p.dims(), bytes));
    });
    let mut views = Vec::with_capacity(tensors.len());
    for (name, dims, bytes) in &tensors {
        let view =
            TensorView::new(Dtype::F32, dims.clone(), bytes).map_err(|e| NnError::Format {
                path: path.to_path_buf(),
                reason: format!("{name}: {e}"),
            })?;
        views.push((name.clone(), view));
    }
    let mut meta = HashMap::new();
    meta.insert(META_NETWORK.to_string(), network.to_string());
    if let Some(n) = norm {
        meta.insert(META_INPUT_MEAN.to_string(), n.mean.to_string());
        meta.insert(META_INPUT_STD.to_string(), n.std.to_string());
    }
    let bytes = safetensors::serialize(views, Some(meta)).map_err(|e| NnError::Format {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    write_atomically(path, &bytes)
}

/// Writes `bytes` to a temporary file beside `path` (`<path>.tmp-<pid>-<n>`, unique within
/// the process), syncs it and renames it over `path`; the temporary file is removed on error.
///
/// `path` must be a new path or a regular file: a device node, pipe or folder is refused, not
/// replaced. Temporary files of `path` left by processes that no longer run are removed first.
/// (graft-data's writers make the same checks; graft-nn does not depend on graft-data.)
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), NnError> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let io = |source| NnError::Io {
        path: path.to_path_buf(),
        source,
    };
    if let Ok(m) = std::fs::metadata(path) {
        if !m.is_file() {
            return Err(NnError::UnsafeOutput {
                path: path.to_path_buf(),
                reason: "it exists and is not a regular file (a device, folder, pipe or socket); \
                         name a new file or a regular file to replace"
                    .into(),
            });
        }
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    sweep_stale_temps(path);
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.map_err(io)
}

/// Removes `<path>.tmp-<pid>...` files beside `path` whose process no longer runs (checked in
/// `/proc`; does nothing where there is none).
fn sweep_stale_temps(path: &Path) {
    let Some(name) = path.file_name() else {
        return;
    };
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !Path::new("/proc/self").exists() {
        return;
    }
    let prefix = format!("{}.tmp-", name.to_string_lossy());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(rest) = file_name
            .to_string_lossy()
            .strip_prefix(&prefix)
            .map(String::from)
        else {
            continue;
        };
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        let tail_ok = rest[digits.len()..].is_empty() || rest[digits.len()..].starts_with('-');
        let Ok(pid) = digits.parse::<u32>() else {
            continue;
        };
        if tail_ok
            && pid != std::process::id()
            && !Path::new("/proc").join(pid.to_string()).exists()
            && entry.file_type().is_ok_and(|t| t.is_file())
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// A PyTorch checkpoint's tensors as safetensors bytes (names and element types kept).
fn from_pytorch(path: &Path, bytes: &[u8]) -> Result<Vec<u8>, NnError> {
    let format = |problem| NnError::PyTorch {
        path: path.to_path_buf(),
        problem,
    };
    let sd = graft_pth::read_bytes(bytes).map_err(format)?;
    tracing::info!(
        "{}: PyTorch {} checkpoint converted in memory ({} tensors; `graft convert` writes it as safetensors)",
        path.display(),
        sd.format.name(),
        sd.tensors.len()
    );
    graft_pth::to_safetensors(&sd, &graft_pth::ConvertOptions::default()).map_err(format)
}

/// A checkpoint file read into memory and validated as safetensors (or converted from
/// PyTorch's format on the way in).
#[derive(Debug)]
pub struct Checkpoint {
    path: PathBuf,
    bytes: Vec<u8>,
}

impl Checkpoint {
    /// Reads and validates `path`. A PyTorch checkpoint (`torch.save`, zip or legacy) is
    /// converted in memory by graft-pth, which runs nothing from the file.
    pub fn open(path: &Path) -> Result<Self, NnError> {
        let bytes = std::fs::read(path).map_err(|source| NnError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let bytes = if graft_pth::looks_like_pytorch(&bytes) {
            from_pytorch(path, &bytes)?
        } else {
            bytes
        };
        let ckpt = Self {
            path: path.to_path_buf(),
            bytes,
        };
        ckpt.tensors()?;
        Ok(ckpt)
    }

    /// The file this checkpoint came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn tensors(&self) -> Result<SafeTensors<'_>, NnError> {
        SafeTensors::deserialize(&self.bytes).map_err(|e| NnError::Format {
            path: self.path.clone(),
            reason: e.to_string(),
        })
    }

    fn metadata(&self) -> HashMap<String, String> {
        SafeTensors::read_metadata(&self.bytes)
            .ok()
            .and_then(|(_, m)| m.metadata().clone())
            .unwrap_or_default()
    }

    /// A metadata value, if the file has that key (`input_size`, `source`, ...).
    pub fn metadata_value(&self, key: &str) -> Option<String> {
        self.metadata().get(key).cloned()
    }

    /// The network name recorded by graft, if any.
    pub fn network(&self) -> Option<String> {
        self.metadata().get(META_NETWORK).cloned()
    }

    /// The input normalisation stored in the metadata, if both keys are present.
    pub fn normalization(&self) -> Result<Option<Normalization>, NnError> {
        let meta = self.metadata();
        let parse = |key: &str| -> Result<Option<f32>, NnError> {
            match meta.get(key) {
                None => Ok(None),
                Some(v) => match v.trim().parse::<f32>() {
                    Ok(x) if x.is_finite() => Ok(Some(x)),
                    _ => Err(NnError::BadNormalization {
                        path: self.path.clone(),
                        key: key.to_string(),
                        value: v.clone(),
                    }),
                },
            }
        };
        match (parse(META_INPUT_MEAN)?, parse(META_INPUT_STD)?) {
            (Some(mean), Some(std)) if std > 0.0 => Ok(Some(Normalization { mean, std })),
            (Some(_), Some(std)) => Err(NnError::BadNormalization {
                path: self.path.clone(),
                key: META_INPUT_STD.to_string(),
                value: std.to_string(),
            }),
            _ => Ok(None),
        }
    }

    /// The names of every tensor in the file.
    pub fn names(&self) -> Vec<String> {
        self.tensors()
            .map(|st| st.names().into_iter().map(String::from).collect())
            .unwrap_or_default()
    }

    /// The shape of tensor `name`, if the file holds it.
    pub fn shape_of(&self, name: &str) -> Option<Vec<usize>> {
        self.tensors()
            .ok()?
            .tensor(name)
            .ok()
            .map(|t| t.shape().to_vec())
    }

    /// Fills `model`'s parameters from this file, checking names, shapes and dtypes.
    ///
    /// Every missing, unexpected, mis-shaped or unconvertible tensor is listed in one
    /// [`NnError::Mismatch`]; on error the model may be partly overwritten.
    pub fn load_into(
        &self,
        model: &mut impl Parameters,
        network: &str,
        scope: LoadScope,
    ) -> Result<(), NnError> {
        self.load_into_renamed(model, network, scope, &RenameRules::default())
    }

    /// [`Checkpoint::load_into`] after mapping the file's tensor names through `rules`.
    pub fn load_into_renamed(
        &self,
        model: &mut impl Parameters,
        network: &str,
        scope: LoadScope,
        rules: &RenameRules,
    ) -> Result<(), NnError> {
        let st = self.tensors()?;
        let mut problems = Vec::new();
        let by_name = renamed(&st, rules, &mut problems);
        let skip = |name: &str| match scope {
            LoadScope::Whole => false,
            LoadScope::BackboneOnly { head } => name
                .strip_prefix(head)
                .is_some_and(|rest| rest.starts_with('.')),
        };
        let mut used = BTreeSet::new();
        let mut non_finite = None;
        model.visit_params_mut(&mut |name, p| {
            if skip(name) {
                return;
            }
            let Some(view) = by_name.get(name).and_then(|f| st.tensor(f).ok()) else {
                problems.push(format!("missing tensor {name} (shape {:?})", p.dims()));
                return;
            };
            used.insert(name.to_string());
            if view.shape() != p.dims().as_slice() {
                problems.push(format!(
                    "{name} has shape {:?}, expected {:?}",
                    view.shape(),
                    p.dims()
                ));
                return;
            }
            match to_f32(view.dtype(), view.data()) {
                Some(values) if values.len() == p.numel() => {
                    if let Some(i) = values.iter().position(|v| !v.is_finite()) {
                        non_finite.get_or_insert((name.to_string(), i, values[i]));
                    }
                    p.write_from(&values)
                }
                Some(_) => problems.push(format!("{name}: data length does not match its shape")),
                None => problems.push(format!(
                    "{name} has dtype {:?}; graft reads F32, F16, BF16 and F64",
                    view.dtype()
                )),
            }
        });
        let mut unexpected: Vec<&str> = by_name
            .keys()
            .map(String::as_str)
            .filter(|n| !used.contains(*n) && !skip(n))
            .collect();
        unexpected.sort_unstable();
        problems.extend(unexpected.iter().map(|n| format!("unexpected tensor {n}")));
        self.load_outcome(network, problems, non_finite)
    }

    /// Every problem of a load in one error; non-finite values only when nothing else is
    /// wrong.
    fn load_outcome(
        &self,
        network: &str,
        problems: Vec<String>,
        non_finite: Option<(String, usize, f32)>,
    ) -> Result<(), NnError> {
        if let (Some((tensor, index, value)), true) = (non_finite, problems.is_empty()) {
            return Err(NnError::NonFinite {
                path: self.path.clone(),
                tensor,
                index,
                value,
            });
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(NnError::Mismatch {
                path: self.path.clone(),
                network: network.to_string(),
                problems,
            })
        }
    }
}

/// Model name -> file name of every tensor `rules` maps, each collision a problem.
fn renamed(
    st: &SafeTensors<'_>,
    rules: &RenameRules,
    problems: &mut Vec<String>,
) -> HashMap<String, String> {
    let mut by_name: HashMap<String, String> = HashMap::new();
    for file_name in st.names() {
        if let Some(name) = rules.apply(file_name) {
            if let Some(other) = by_name.insert(name.clone(), file_name.to_string()) {
                problems.push(format!("{other} and {file_name} both map to {name}"));
            }
        }
    }
    by_name
}

/// Converts little-endian tensor bytes of a float dtype to f32 values (by value, never by
/// reinterpreting bits of another width). `None` for dtypes that are not floats.
pub fn to_f32(dtype: Dtype, data: &[u8]) -> Option<Vec<f32>> {
    let values = match dtype {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F64 => data
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().unwrap_or([0; 8])) as f32)
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|c| f32::from_bits((u16::from_le_bytes([c[0], c[1]]) as u32) << 16))
            .collect(),
        _ => return None,
    };
    Some(values)
}

/// IEEE 754 half precision to single precision, exactly.
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0f32 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f32;
    match exp {
        0 => sign * frac * 2f32.powi(-24),
        31 if frac == 0.0 => sign * f32::INFINITY,
        31 => f32::NAN,
        e => sign * (1.0 + frac / 1024.0) * 2f32.powi(e - 15),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f16_known_values() {
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 5.960_464_5e-8);
        assert_eq!(f16_to_f32(0x3555), 0.333_251_95);
        assert!(f16_to_f32(0x7c00).is_infinite());
    }

    #[test]
    fn bf16_and_f64_convert_by_value() {
        let bf = 0x3fc0u16.to_le_bytes(); // 1.5
        assert_eq!(to_f32(Dtype::BF16, &bf), Some(vec![1.5]));
        let f = 0.1f64.to_le_bytes();
        assert_eq!(to_f32(Dtype::F64, &f), Some(vec![0.1f32]));
        assert_eq!(to_f32(Dtype::I64, &[0; 8]), None);
    }
}
