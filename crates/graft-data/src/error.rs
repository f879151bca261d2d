//! The crate's single error type.

use std::path::PathBuf;

/// Every error `graft-data` can return.
///
/// Each message names the file involved (for views: the data set the view
/// borrows from) and says what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// An I/O operation on a file failed.
    #[error("{}: {action} failed: {source}; {}", path.display(), io_hint(source))]
    Io {
        /// The file involved.
        path: PathBuf,
        /// What was being done ("open", "read", "write", ...).
        action: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },

    /// An IDX file starts with the wrong magic number.
    #[error("{}: not an IDX {kind} file: magic is {found:#010x}, expected {expected:#010x}; pass the {kind} file (raw or gzip'd)", path.display())]
    IdxMagic {
        /// The IDX file.
        path: PathBuf,
        /// "images" or "labels".
        kind: &'static str,
        /// The magic number found.
        found: u32,
        /// The magic number expected.
        expected: u32,
    },

    /// An IDX file holds fewer bytes than its header declares.
    #[error("{}: truncated IDX file: the header declares {declared} bytes in total but only {actual} are present; re-download or re-extract it", path.display())]
    IdxTruncated {
        /// The IDX file.
        path: PathBuf,
        /// Total bytes declared by the header (header included).
        declared: u64,
        /// Bytes actually present (after gzip decoding, if any).
        actual: u64,
    },

    /// An IDX file holds more bytes than its header declares.
    #[error("{}: IDX file has trailing data after the {declared} bytes its header declares; the file is corrupt or not an IDX file — re-download it", path.display())]
    IdxTrailingData {
        /// The IDX file.
        path: PathBuf,
        /// Total bytes declared by the header (header included).
        declared: u64,
    },

    /// An IDX file's header is structurally invalid (e.g. zero rows).
    #[error("{}: invalid IDX file: {reason}; re-download it", path.display())]
    IdxInvalid {
        /// The IDX file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// The image and label IDX files hold different numbers of items.
    #[error("{} holds {images} images but {} holds {labels} labels; pass an images file and the labels file that belongs to it", images_path.display(), labels_path.display())]
    IdxCountMismatch {
        /// The images file.
        images_path: PathBuf,
        /// The labels file.
        labels_path: PathBuf,
        /// Number of images.
        images: u64,
        /// Number of labels.
        labels: u64,
    },

    /// A file does not start with the graft data-set magic `GRAFTDS\0`.
    #[error("{}: not a graft data set (bad magic bytes); pass a file written by graft-data (e.g. by `import_idx`)", path.display())]
    NotADataset {
        /// The file.
        path: PathBuf,
    },

    /// A data set was written with a format version this build cannot read.
    #[error("{}: data-set format version {found} is not supported (this build reads version {supported}); re-create the file with this version of graft", path.display())]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// Version found in the header.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },

    /// A data set uses an element type this build cannot read.
    #[error("{}: element type code {code} is not supported (supported: 0 = u8, 1 = f16, 2 = f32); re-create the file with this version of graft", path.display())]
    UnsupportedElementType {
        /// The file.
        path: PathBuf,
        /// The element-type code found in the header.
        code: u8,
    },

    /// A data-set file is shorter than its fixed header.
    #[error("{}: truncated data set: {actual} bytes, but the header alone needs {needed}; re-create the file", path.display())]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes needed.
        needed: u64,
        /// Bytes present.
        actual: u64,
    },

    /// A section of a data set lies (partly) outside the file.
    #[error("{}: section `{section}` (offset {offset}, length {len}) does not fit in the file ({file_len} bytes); the file is truncated or corrupt — re-create it", path.display())]
    SectionOutOfBounds {
        /// The file.
        path: PathBuf,
        /// "samples", "labels" or "metadata".
        section: &'static str,
        /// Declared offset.
        offset: u64,
        /// Declared length.
        len: u64,
        /// Actual file length.
        file_len: u64,
    },

    /// A size computed from the header overflows 64-bit arithmetic.
    #[error("{}: corrupt data set: {what} overflows; the header is corrupt — re-create the file", path.display())]
    SizeOverflow {
        /// The file.
        path: PathBuf,
        /// Which computation overflowed.
        what: &'static str,
    },

    /// A data set violates a structural rule of the format.
    #[error("{}: corrupt data set: {reason}; re-create the file", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// A label is not smaller than the number of class names.
    #[error("{}: label {label} of sample {index} is out of range (the data set has {num_classes} class names); re-create the file with matching class names", path.display())]
    LabelOutOfRange {
        /// The file (or output file, when writing).
        path: PathBuf,
        /// Sample index.
        index: usize,
        /// Offending label.
        label: u32,
        /// Number of class names.
        num_classes: usize,
    },

    /// The recomputed checksum differs from the stored one.
    #[error("{}: checksum mismatch (stored {stored:#018x}, computed {computed:#018x}); the file is damaged — re-create it", path.display())]
    ChecksumMismatch {
        /// The file.
        path: PathBuf,
        /// Checksum stored in the header.
        stored: u64,
        /// Checksum of the sections as read.
        computed: u64,
    },

    /// An output path would destroy something: it is a device, folder or pipe, one of the
    /// command's inputs, or another output.
    #[error("refusing to write {}: {reason}", path.display())]
    UnsafeOutput {
        /// The output path.
        path: PathBuf,
        /// What it is and what to do.
        reason: String,
    },

    /// Arguments passed to a writer or importer are inconsistent.
    #[error("cannot write {}: {reason}", path.display())]
    InvalidInput {
        /// The output file.
        path: PathBuf,
        /// What is wrong with the input.
        reason: String,
    },

    /// A sample index is out of range.
    #[error("{}: sample index {index} is out of range (length {len}); use an index below the length", path.display())]
    IndexOutOfRange {
        /// The data set.
        path: PathBuf,
        /// Requested index.
        index: usize,
        /// Length of the data set or view.
        len: usize,
    },

    /// A typed accessor was used on a data set with another element type.
    #[error("{}: samples are {found}, not {expected}; use `sample_bytes` or the f32 conversions (`to_f32`, `batches`)", path.display())]
    ElementTypeMismatch {
        /// The data set.
        path: PathBuf,
        /// Element type the accessor needs.
        expected: &'static str,
        /// Element type of the data set.
        found: &'static str,
    },

    /// A class index is out of range for a view.
    #[error("{}: class {class} is out of range (the view has {num_classes} classes); pick classes below {num_classes}", path.display())]
    ClassOutOfRange {
        /// The data set.
        path: PathBuf,
        /// Offending class.
        class: u32,
        /// Number of classes of the view.
        num_classes: usize,
    },

    /// A class was listed twice in `select_classes`.
    #[error("{}: class {class} is selected twice; list each class once", path.display())]
    DuplicateClass {
        /// The data set.
        path: PathBuf,
        /// Repeated class.
        class: u32,
    },

    /// A class has fewer samples than a k-shot request needs.
    #[error("{}: class {class} (`{name}`) has only {available} samples in this view but {k} were requested; lower k or use a larger view", path.display())]
    NotEnoughSamples {
        /// The data set.
        path: PathBuf,
        /// The class (view label space).
        class: u32,
        /// The class name.
        name: String,
        /// Samples of that class in the view.
        available: usize,
        /// Requested samples per class.
        k: usize,
    },

    /// An argument to a view operation is invalid (e.g. batch size 0).
    #[error("{}: {reason}", path.display())]
    InvalidArgument {
        /// The data set.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },

    /// The build closure of a feature cache failed.
    #[error("{}: building features for [{key}] failed: {source}; fix the cause and run again (nothing was cached)", path.display())]
    FeatureBuild {
        /// The cache file that would have been written.
        path: PathBuf,
        /// The key's description.
        key: String,
        /// The closure's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// An NPY file is malformed or holds an unsupported array.
    #[error("{}: {reason}", path.display())]
    Npy {
        /// The NPY file.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },

    /// A CSV file is malformed.
    #[error("{}:{line}: {reason}", path.display())]
    Csv {
        /// The CSV file.
        path: PathBuf,
        /// 1-based line number (0 when not about one line).
        line: usize,
        /// What is wrong and what to do.
        reason: String,
    },

    /// An image file or image folder cannot be imported.
    #[error("{}: {reason}", path.display())]
    Image {
        /// The image file or folder.
        path: PathBuf,
        /// What is wrong and what to do.
        reason: String,
    },

    /// The input format of an import cannot be recognised.
    #[error("{}: {reason}", path.display())]
    UnknownFormat {
        /// The input.
        path: PathBuf,
        /// What was found and which inputs are supported.
        reason: String,
    },
}

/// What to do about an I/O error: a full disk and a file-size limit (`ulimit -f`, reported
/// once SIGXFSZ is ignored) call for other fixes than a missing or unreadable path.
fn io_hint(e: &std::io::Error) -> &'static str {
    // EFBIG and ENOSPC on Linux and the BSDs (ErrorKind names them only from Rust 1.83).
    match e.raw_os_error() {
        Some(27) if cfg!(unix) => {
            "the file is larger than a file-size limit (ulimit -f) or the file system allows: raise the limit or write elsewhere"
        }
        Some(28) if cfg!(unix) => "the disk is full: free some space or write elsewhere",
        _ => "check that the path exists and is readable/writable",
    }
}
