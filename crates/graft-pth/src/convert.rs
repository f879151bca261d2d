//! A state dict to safetensors: same names (optionally with a prefix stripped), same element
//! types, written atomically.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use safetensors::tensor::{Dtype, TensorView};

use crate::error::{Problem, PthError};
use crate::state_dict::Skipped;
use crate::torch::ElemType;
use crate::{read_file, Format, StateDict};

/// How to convert.
#[derive(Debug, Clone, Default)]
pub struct ConvertOptions {
    /// Strip this prefix from every tensor name that has it (`module.` after DataParallel).
    pub prefix_strip: Option<String>,
    /// Metadata written into the safetensors header (source, licence, preprocessing, ...).
    pub metadata: BTreeMap<String, String>,
}

/// One tensor written.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WrittenTensor {
    /// Its name in the output.
    pub name: String,
    /// PyTorch's name of its element type.
    pub dtype: &'static str,
    /// Its shape.
    pub shape: Vec<usize>,
}

/// What a conversion wrote and left out.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ConvertReport {
    /// The checkpoint read.
    pub input: PathBuf,
    /// The safetensors file written.
    pub output: PathBuf,
    /// The input's container.
    pub format: Format,
    /// Where the tensors were found in the pickled object.
    pub location: String,
    /// The tensors written, in order.
    pub written: Vec<WrittenTensor>,
    /// The entries left out, with reasons.
    pub skipped: Vec<Skipped>,
    /// Number of values written.
    pub values: usize,
    /// Size of the output file in bytes.
    pub bytes: usize,
}

fn dtype(e: ElemType) -> Dtype {
    match e {
        ElemType::F32 => Dtype::F32,
        ElemType::F16 => Dtype::F16,
        ElemType::BF16 => Dtype::BF16,
        ElemType::F64 => Dtype::F64,
        // Only float tensors reach a StateDict's `tensors`.
        _ => unreachable!("non-float tensors are skipped before conversion"),
    }
}

/// The output names after `prefix_strip`; two tensors may not end up with one name.
fn output_names(sd: &StateDict, prefix: Option<&str>) -> Result<Vec<String>, Problem> {
    let mut seen = HashSet::new();
    let mut names = Vec::with_capacity(sd.tensors.len());
    for t in &sd.tensors {
        let name = match prefix {
            Some(p) => t.name.strip_prefix(p).unwrap_or(&t.name),
            None => &t.name,
        };
        if name.is_empty() || !seen.insert(name.to_string()) {
            return Err(Problem::Tensor {
                name: t.name.clone(),
                what: format!("after stripping the prefix its name {name:?} is empty or taken"),
            });
        }
        names.push(name.to_string());
    }
    Ok(names)
}

/// The safetensors bytes of `sd`.
pub fn to_safetensors(sd: &StateDict, options: &ConvertOptions) -> Result<Vec<u8>, Problem> {
    let names = output_names(sd, options.prefix_strip.as_deref())?;
    let mut views = Vec::with_capacity(sd.tensors.len());
    for (t, name) in sd.tensors.iter().zip(&names) {
        let view = TensorView::new(dtype(t.dtype), t.shape.clone(), &t.data).map_err(|e| {
            Problem::Tensor {
                name: t.name.clone(),
                what: e.to_string(),
            }
        })?;
        views.push((name.clone(), view));
    }
    let meta: HashMap<String, String> = options.metadata.clone().into_iter().collect();
    let meta = (!meta.is_empty()).then_some(meta);
    safetensors::serialize(views, meta).map_err(|e| Problem::Zip(format!("safetensors: {e}")))
}

/// Reads `input` and writes its tensors to `output` as safetensors, atomically. The output
/// may not be the input, nor an existing file that is not a regular file.
pub fn convert(
    input: &Path,
    output: &Path,
    options: &ConvertOptions,
) -> Result<ConvertReport, PthError> {
    check_output(input, output)?;
    let sd = read_file(input)?;
    let invalid = |problem| PthError::Invalid {
        path: input.to_path_buf(),
        problem,
    };
    let bytes = to_safetensors(&sd, options).map_err(invalid)?;
    write_atomically(output, &bytes)?;
    let names = output_names(&sd, options.prefix_strip.as_deref()).map_err(invalid)?;
    Ok(ConvertReport {
        input: input.to_path_buf(),
        output: output.to_path_buf(),
        format: sd.format,
        location: sd.location,
        written: sd
            .tensors
            .iter()
            .zip(names)
            .map(|(t, name)| WrittenTensor {
                name,
                dtype: t.dtype.name(),
                shape: t.shape.clone(),
            })
            .collect(),
        values: sd.tensors.iter().map(|t| t.numel()).sum(),
        skipped: sd.skipped,
        bytes: bytes.len(),
    })
}

fn check_output(input: &Path, output: &Path) -> Result<(), PthError> {
    let refuse = |why: &str| PthError::Io {
        path: output.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, why.to_string()),
    };
    if let Ok(meta) = std::fs::metadata(output) {
        if !meta.is_file() {
            return Err(refuse("not a regular file; name a new .safetensors file"));
        }
        let same = std::fs::canonicalize(input).ok() == std::fs::canonicalize(output).ok();
        if same {
            return Err(refuse(
                "this is the input file; name a new .safetensors file",
            ));
        }
    }
    Ok(())
}

/// Writes `bytes` to `<path>.tmp-<pid>-<n>`, syncs it and renames it over `path`; the
/// temporary file is removed if anything fails.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), PthError> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
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
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        PthError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}
