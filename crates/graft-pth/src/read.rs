//! Reading a checkpoint: which container a file is (zip or legacy), the pickled object
//! unpickled without running code, the state dict found in it and its tensors copied out.

use std::collections::HashMap;
use std::path::Path;

use crate::error::{Problem, PthError};
use crate::pickle::{self, Value};
use crate::state_dict::{self, Skipped, Tensor};
use crate::torch::{ElemType, Storages};
use crate::{legacy, zip};

/// Which of `torch.save`'s two containers a file uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// The zip archive of torch >= 1.6.
    Zip,
    /// The legacy stream of pickles (before 1.6, or `_use_new_zipfile_serialization=False`).
    Legacy,
}

impl Format {
    /// `zip` or `legacy`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Zip => "zip",
            Format::Legacy => "legacy",
        }
    }
}

/// A checkpoint's tensors, read without running any of its code.
#[derive(Debug, Clone)]
pub struct StateDict {
    /// The container the file used.
    pub format: Format,
    /// Where in the pickled object the tensors were found (`the top-level dict`,
    /// `the dict under `state_dict``).
    pub location: String,
    /// The floating-point tensors, in the file's order.
    pub tensors: Vec<Tensor>,
    /// Entries that are not converted (integer counters, non-tensor values), with reasons.
    pub skipped: Vec<Skipped>,
}

/// Reads a `.pth` / `.pt` / `.bin` file written by `torch.save`.
pub fn read_file(path: &Path) -> Result<StateDict, PthError> {
    let bytes = std::fs::read(path).map_err(|source| PthError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read_bytes(&bytes).map_err(|problem| PthError::Invalid {
        path: path.to_path_buf(),
        problem,
    })
}

/// Reads a checkpoint from memory. Never panics and never runs anything: every problem is
/// a [`Problem`].
pub fn read_bytes(bytes: &[u8]) -> Result<StateDict, Problem> {
    if bytes.starts_with(b"PK\x03\x04") {
        read_zip(bytes)
    } else if legacy::is_legacy(bytes) {
        let l = legacy::read(bytes)?;
        tensors(Format::Legacy, &l.object, &l.storages, &l.data)
    } else {
        Err(Problem::NotPyTorch(describe(bytes)))
    }
}

/// True when `bytes` start like a file `torch.save` writes (either format).
pub fn looks_like_pytorch(bytes: &[u8]) -> bool {
    legacy::is_legacy(bytes) || (bytes.starts_with(b"PK\x03\x04") && contains(bytes, b"data.pkl"))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// What a file that is not a PyTorch checkpoint looks like, for the error message.
fn describe(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return "the file is empty".into();
    }
    if is_safetensors(bytes) {
        return "it is already a safetensors file: use it as it is".into();
    }
    if bytes.get(257..262) == Some(b"ustar") {
        return "a tar archive, torch's format before 0.4: load and re-save it with a recent torch"
            .into();
    }
    if bytes[0] == 0x80 {
        return "a pickle without torch.save's header (a plain pickle.dump?): save the state dict with torch.save".into();
    }
    let head = &bytes[..bytes.len().min(512)];
    if std::str::from_utf8(head).is_ok() {
        return "it is a text file".into();
    }
    "unrecognised bytes: neither torch.save's zip nor its legacy format".into()
}

fn is_safetensors(bytes: &[u8]) -> bool {
    bytes.len() > 9
        && bytes[8] == b'{'
        && u64::from_le_bytes(bytes[..8].try_into().unwrap()) <= bytes.len() as u64 - 8
}

fn read_zip(bytes: &[u8]) -> Result<StateDict, Problem> {
    let archive = zip::open(bytes)?;
    let mut pickles = archive.entries.iter().filter(|(name, _)| {
        name.ends_with("data.pkl") && (*name == "data.pkl" || name.ends_with("/data.pkl"))
    });
    let Some((pkl_name, pkl)) = pickles.next() else {
        return Err(Problem::NotPyTorch("a zip archive without data.pkl".into()));
    };
    if pickles.next().is_some() {
        return Err(Problem::Zip("more than one data.pkl".into()));
    }
    let prefix = &pkl_name[..pkl_name.len() - "data.pkl".len()];
    if let Some(order) = archive.entries.get(&format!("{prefix}byteorder")) {
        if *order != b"little" {
            return Err(Problem::Zip(format!(
                "byteorder is {:?}; graft reads little-endian checkpoints",
                String::from_utf8_lossy(order)
            )));
        }
    }
    let mut storages = Storages::default();
    let mut arena = pickle::Arena::default();
    let (object, _) = pickle::unpickle(pkl, 0, "data.pkl", &mut storages, &mut arena)?;
    let mut data = HashMap::new();
    for (key, &(elem, numel)) in &storages.declared {
        let record = archive
            .entries
            .get(&format!("{prefix}data/{key}"))
            .ok_or_else(|| Problem::Storage {
                key: key.clone(),
                what: "used by a tensor but the archive has no data for it".into(),
            })?;
        let want = numel.checked_mul(elem.size() as u64);
        if want != Some(record.len() as u64) {
            return Err(Problem::Storage {
                key: key.clone(),
                what: format!(
                    "the archive holds {} bytes, the pickle declares {numel} x {} bytes",
                    record.len(),
                    elem.size()
                ),
            });
        }
        data.insert(key.clone(), *record);
    }
    tensors(Format::Zip, &object, &storages, &data)
}

/// Finds the tensor dict in `object` and copies each tensor out of its storage.
fn tensors(
    format: Format,
    object: &Value,
    storages: &Storages,
    data: &HashMap<String, &[u8]>,
) -> Result<StateDict, Problem> {
    let found = state_dict::find(object)?;
    let stored: u64 = data.values().map(|d| d.len() as u64).sum();
    let mut budget = stored.saturating_mul(4).saturating_add(1 << 20);
    let mut out = StateDict {
        format,
        location: found.location,
        tensors: Vec::new(),
        skipped: found.skipped,
    };
    for (name, value) in found.entries {
        let Value::Tensor(t) = &value else {
            out.skipped.push(Skipped {
                name,
                reason: format!("not a tensor ({})", value.kind()),
            });
            continue;
        };
        debug_assert!(storages.declared.contains_key(&t.storage.key));
        let bytes = data[&t.storage.key];
        let copied = state_dict::materialize(&name, t, bytes, &mut budget)?;
        let elem = t.storage.elem;
        if !elem.is_float() {
            out.skipped.push(Skipped {
                reason: skip_reason(&name, elem),
                name,
            });
            continue;
        }
        out.tensors.push(Tensor {
            name,
            dtype: elem,
            shape: t.shape.iter().map(|&d| d as usize).collect(),
            data: copied,
        });
    }
    Ok(out)
}

fn skip_reason(name: &str, elem: ElemType) -> String {
    if name.ends_with("num_batches_tracked") {
        format!(
            "a BatchNorm step counter ({}); graft does not use it",
            elem.name()
        )
    } else {
        format!(
            "an {} buffer; graft converts floating-point tensors only",
            elem.name()
        )
    }
}
