//! One function per data subcommand of the CLI: [`import`] (format
//! detected), [`inspect`], [`verify`], [`split`] and [`concat()`].

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::csv::{import_csv, CsvOptions};
use crate::dataset::Dataset;
use crate::error::DataError;
use crate::format::{ElementType, MAGIC};
use crate::idx::{import_idx, IDX3_U8_MAGIC};
use crate::images::{import_image_folder, ImageFolderOptions};
use crate::metadata::Metadata;
use crate::npy::{import_npy, NPY_MAGIC};
use crate::split::{Part, SplitRule};
use crate::writer::DatasetWriter;

/// An input format [`import`] understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputFormat {
    /// IDX3 u8 images, uncompressed (magic `00 00 08 03`).
    Idx,
    /// IDX3 u8 images, gzip'd (gzip magic, then the IDX magic).
    IdxGzip,
    /// NumPy `.npy` (magic `\x93NUMPY`).
    Npy,
    /// CSV (by the `.csv` extension).
    Csv,
    /// A directory of class subfolders of images.
    ImageFolder,
    /// Already a graft data set (magic `GRAFTDS\0`).
    GraftDs,
}

impl fmt::Display for InputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InputFormat::Idx => "IDX",
            InputFormat::IdxGzip => "IDX (gzip)",
            InputFormat::Npy => "NPY",
            InputFormat::Csv => "CSV",
            InputFormat::ImageFolder => "image folder",
            InputFormat::GraftDs => "graft data set",
        })
    }
}

/// Detects the format of `input`: a directory is an image folder; a file is
/// recognised by its magic bytes (IDX, gzip'd IDX, NPY, graft data set) or,
/// failing that, by a `.csv` extension.
pub fn detect_format(input: impl AsRef<Path>) -> Result<InputFormat, DataError> {
    let path = input.as_ref();
    let io = |action| {
        move |source| DataError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    };
    let meta = std::fs::metadata(path).map_err(io("stat"))?;
    if meta.is_dir() {
        return Ok(InputFormat::ImageFolder);
    }
    let mut head = Vec::new();
    std::fs::File::open(path)
        .map_err(io("open"))?
        .take(8)
        .read_to_end(&mut head)
        .map_err(io("read"))?;
    let idx3 = IDX3_U8_MAGIC.to_be_bytes();
    if head.starts_with(&idx3) {
        return Ok(InputFormat::Idx);
    }
    if head.starts_with(&NPY_MAGIC) {
        return Ok(InputFormat::Npy);
    }
    if head.starts_with(&MAGIC) {
        return Ok(InputFormat::GraftDs);
    }
    if head.starts_with(&[0x1f, 0x8b]) {
        let file = std::fs::File::open(path).map_err(io("open"))?;
        let mut inner = Vec::new();
        // A gzip that fails to decode is reported as unknown below.
        let _ = MultiGzDecoder::new(file).take(4).read_to_end(&mut inner);
        if inner == idx3 {
            return Ok(InputFormat::IdxGzip);
        }
        return Err(DataError::UnknownFormat {
            path: path.to_path_buf(),
            reason: "gzip file that does not hold IDX3 u8 images; pass the images file of an IDX pair (e.g. train-images-idx3-ubyte.gz)".into(),
        });
    }
    let is_csv = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv {
        return Ok(InputFormat::Csv);
    }
    Err(DataError::UnknownFormat {
        path: path.to_path_buf(),
        reason: "unknown input format; pass IDX images (raw or .gz), an .npy file, a .csv file or a folder with one subfolder of PNG/JPEG images per class".into(),
    })
}

/// Options of [`import`]; only those of the detected format are used.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Labels file, required for IDX (IDX1 u8) and NPY (integer array).
    pub labels: Option<PathBuf>,
    /// Class names (default: `"0"`, `"1"`, ... or the CSV label texts /
    /// folder names).
    pub class_names: Option<Vec<String>>,
    /// Free-text provenance (default: `imported from <input> (<format>)`).
    pub provenance: Option<String>,
    /// CSV options (label column, header, shape, delimiter).
    pub csv: CsvOptions,
    /// Image-folder options (size, resampling).
    pub images: ImageFolderOptions,
}

/// Imports `input` into a graft data set at `out` (written atomically) and
/// opens it, dispatching on [`detect_format`]. Errors if the format needs a
/// labels file that is missing, or if `input` already is a data set.
pub fn import(
    input: impl AsRef<Path>,
    out: impl AsRef<Path>,
    options: &ImportOptions,
) -> Result<Dataset, DataError> {
    let (input, out) = (input.as_ref(), out.as_ref());
    let mut inputs = vec![input];
    inputs.extend(options.labels.as_deref());
    crate::output::check_outputs(&inputs, &[out])?;
    let format = detect_format(input)?;
    let provenance = options
        .provenance
        .clone()
        .unwrap_or_else(|| format!("imported from {} ({format})", input.display()));
    let labels = || {
        options
            .labels
            .as_deref()
            .ok_or_else(|| DataError::InvalidInput {
                path: out.to_path_buf(),
                reason: format!(
                    "{} is {format}, which keeps labels in a separate file; pass the labels file",
                    input.display()
                ),
            })
    };
    let class_names = options.class_names.clone();
    match format {
        InputFormat::Idx | InputFormat::IdxGzip => {
            import_idx(input, labels()?, out, class_names, provenance)
        }
        InputFormat::Npy => import_npy(input, labels()?, out, class_names, provenance),
        InputFormat::Csv => import_csv(input, out, &options.csv, class_names, provenance),
        InputFormat::ImageFolder => {
            if class_names.is_some() {
                return Err(DataError::InvalidInput {
                    path: out.to_path_buf(),
                    reason: "an image folder's class names are its subfolder names; do not pass class names".into(),
                });
            }
            import_image_folder(input, out, &options.images, provenance)
        }
        InputFormat::GraftDs => Err(DataError::UnknownFormat {
            path: input.to_path_buf(),
            reason: "already a graft data set; use it as is (or `verify` it)".into(),
        }),
    }
}

/// What [`inspect`] and [`verify`] report about a data set.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// The file.
    pub path: PathBuf,
    /// File size in bytes.
    pub file_len: u64,
    /// Element type of the samples.
    pub element_type: ElementType,
    /// Shape of one sample.
    pub shape: Vec<usize>,
    /// Number of samples.
    pub count: usize,
    /// Class names and the number of samples of each.
    pub classes: Vec<(String, usize)>,
    /// Metadata mean and std, if recorded.
    pub mean_std: Option<(f32, f32)>,
    /// Provenance text.
    pub provenance: String,
    /// Checksum stored in the header.
    pub checksum: u64,
    /// `Some(true)` once [`verify`] recomputed the checksum; `None` if not checked.
    pub checksum_verified: Option<bool>,
}

impl Summary {
    fn of(ds: &Dataset) -> Summary {
        Summary {
            path: ds.path().to_path_buf(),
            file_len: std::fs::metadata(ds.path()).map_or(0, |m| m.len()),
            element_type: ds.element_type(),
            shape: ds.sample_shape().to_vec(),
            count: ds.len(),
            classes: ds
                .class_names()
                .iter()
                .cloned()
                .zip(ds.class_counts())
                .collect(),
            mean_std: ds.metadata().mean.zip(ds.metadata().std),
            provenance: ds.metadata().provenance.clone(),
            checksum: ds.header().checksum,
            checksum_verified: None,
        }
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "file:       {} ({} bytes)",
            self.path.display(),
            self.file_len
        )?;
        writeln!(
            f,
            "samples:    {} x {:?} {}",
            self.count,
            self.shape,
            self.element_type.name()
        )?;
        match self.mean_std {
            Some((m, s)) => writeln!(f, "mean/std:   {m} / {s}")?,
            None => writeln!(f, "mean/std:   (not recorded)")?,
        }
        writeln!(f, "provenance: {}", self.provenance)?;
        let verified = match self.checksum_verified {
            Some(true) => "verified",
            Some(false) => "MISMATCH",
            None => "not verified",
        };
        writeln!(f, "checksum:   {:#018x} ({verified})", self.checksum)?;
        writeln!(f, "classes:    {}", self.classes.len())?;
        for (i, (name, n)) in self.classes.iter().enumerate() {
            writeln!(f, "  {i:>4} {name}: {n}")?;
        }
        Ok(())
    }
}

/// Opens a data set (validating header, sections, labels and metadata) and
/// summarises it, without hashing the payload.
pub fn inspect(path: impl AsRef<Path>) -> Result<Summary, DataError> {
    Ok(Summary::of(&Dataset::open(path)?))
}

/// Opens a data set and recomputes its checksum; errors with
/// [`DataError::ChecksumMismatch`] if it differs from the stored one.
pub fn verify(path: impl AsRef<Path>) -> Result<Summary, DataError> {
    let ds = Dataset::open(path)?;
    ds.verify_checksum()?;
    Ok(Summary {
        checksum_verified: Some(true),
        ..Summary::of(&ds)
    })
}

/// Writes the part `rule` assigns to [`Part::Train`] to `train_out` and the
/// [`Part::Test`] part to `test_out` (both atomically, in file order, with
/// the input's class names) and opens both.
///
/// Each part's metadata records its own value mean/std (train statistics
/// are what a model should normalise with) and the provenance
/// `<input provenance>; split <rule> <part> of <input>`.
pub fn split(
    input: impl AsRef<Path>,
    rule: SplitRule,
    train_out: impl AsRef<Path>,
    test_out: impl AsRef<Path>,
) -> Result<(Dataset, Dataset), DataError> {
    let (input, train_out, test_out) = (input.as_ref(), train_out.as_ref(), test_out.as_ref());
    crate::output::check_outputs(&[input], &[train_out, test_out])?;
    let ds = Dataset::open(input)?;
    rule.validate()
        .map_err(|reason| DataError::InvalidArgument {
            path: input.to_path_buf(),
            reason,
        })?;
    let mut train_w = DatasetWriter::create(train_out, ds.element_type(), ds.sample_shape())?;
    let mut test_w = DatasetWriter::create(test_out, ds.element_type(), ds.sample_shape())?;
    for (i, (&label, &rank)) in ds.labels().iter().zip(ds.class_ranks()).enumerate() {
        let bytes = ds.sample_bytes(i).unwrap_or(&[]);
        match rule.part_of(rank as usize) {
            Part::Train => train_w.push_bytes(bytes, label)?,
            Part::Test => test_w.push_bytes(bytes, label)?,
        }
    }
    for (w, part, path) in [(train_w, "train", train_out), (test_w, "test", test_out)] {
        let stats = w.stats();
        w.finish(&Metadata {
            class_names: ds.class_names().to_vec(),
            provenance: format!(
                "{}; split {rule:?} {part} of {}",
                ds.metadata().provenance,
                input.display()
            ),
            mean: stats.map(|s| s.0),
            std: stats.map(|s| s.1),
        })?;
        tracing::info!(out = %path.display(), part, "wrote split");
    }
    Ok((Dataset::open(train_out)?, Dataset::open(test_out)?))
}

/// Concatenates data sets with the same element type and sample shape into
/// a new file at `out` (written atomically, streaming sample by sample) and
/// opens it. See [`Dataset::concat`].
pub fn concat(parts: &[&Dataset], out: impl AsRef<Path>) -> Result<Dataset, DataError> {
    let out = out.as_ref();
    let inputs: Vec<&Path> = parts.iter().map(|p| p.path()).collect();
    crate::output::check_outputs(&inputs, &[out])?;
    let invalid = |reason: String| DataError::InvalidInput {
        path: out.to_path_buf(),
        reason,
    };
    let Some(first) = parts.first() else {
        return Err(invalid(
            "nothing to concatenate; pass at least one data set".into(),
        ));
    };
    for p in &parts[1..] {
        if p.element_type() != first.element_type() || p.sample_shape() != first.sample_shape() {
            return Err(invalid(format!(
                "{} holds {} samples of shape {:?} but {} holds {} samples of shape {:?}; only data sets with the same element type and sample shape can be concatenated",
                first.path().display(),
                first.element_type().name(),
                first.sample_shape(),
                p.path().display(),
                p.element_type().name(),
                p.sample_shape()
            )));
        }
    }
    // Union of class names, in order of first appearance.
    let mut class_names: Vec<String> = Vec::new();
    let maps: Vec<Vec<u32>> = parts
        .iter()
        .map(|p| {
            p.class_names()
                .iter()
                .map(|n| match class_names.iter().position(|c| c == n) {
                    Some(i) => i as u32,
                    None => {
                        class_names.push(n.clone());
                        (class_names.len() - 1) as u32
                    }
                })
                .collect()
        })
        .collect();
    let mut w = DatasetWriter::create(out, first.element_type(), first.sample_shape())?;
    for (p, map) in parts.iter().zip(&maps) {
        for (i, &l) in p.labels().iter().enumerate() {
            w.push_bytes(p.sample_bytes(i).unwrap_or(&[]), map[l as usize])?;
        }
    }
    let stats = w.stats();
    let provenance = format!(
        "concatenation of {}",
        parts
            .iter()
            .map(|p| format!("{} ({})", p.path().display(), p.metadata().provenance))
            .collect::<Vec<_>>()
            .join(" + ")
    );
    w.finish(&Metadata {
        class_names,
        provenance,
        mean: stats.map(|s| s.0),
        std: stats.map(|s| s.1),
    })?;
    Dataset::open(out)
}

impl Dataset {
    /// Concatenates `parts` (same element type and sample shape) into a new
    /// data set file at `out` and opens it; zero-copy views spanning several
    /// files are not supported, so this writes a copy (streaming, so it
    /// works for files larger than memory).
    ///
    /// Samples keep their order (all of `parts[0]`, then `parts[1]`, ...).
    /// Class names are the union of the parts' names in order of first
    /// appearance, and labels are renumbered by name, so parts with
    /// different or differently ordered classes combine correctly. The
    /// metadata records the concatenated values' mean/std.
    pub fn concat(parts: &[&Dataset], out: impl AsRef<Path>) -> Result<Dataset, DataError> {
        concat(parts, out)
    }
}
