//! Import of NumPy `.npy` files (format versions 1.0, 2.0 and 3.0).
//!
//! An NPY file is the magic `\x93NUMPY`, a major and a minor version byte,
//! the header length (u16 LE for version 1, u32 LE for 2 and 3), and a
//! Python dict literal such as
//! `{'descr': '<f4', 'fortran_order': False, 'shape': (60000, 28, 28), }`,
//! followed by the array data. Images must be C order with dtype `|u1`
//! (u8) or `<f4` (f32 LE); labels are a 1-D array (or `(N, 1)`) of an
//! integer dtype (`|u1`, `|i1`, `<u2`, `<i2`, `<u4`, `<i4`, `<u8`, `<i8`,
//! or the same with `>`).

use std::path::Path;

use crate::dataset::Dataset;
use crate::error::DataError;
use crate::format::ElementType;
use crate::metadata::Metadata;
use crate::writer::DatasetWriter;

/// The magic bytes every NPY file starts with.
pub const NPY_MAGIC: [u8; 6] = *b"\x93NUMPY";

/// A parsed and validated NPY header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// Format version `(major, minor)`: `(1, 0)`, `(2, 0)` or `(3, 0)`.
    pub version: (u8, u8),
    /// The dtype string, e.g. `<f4`.
    pub descr: String,
    /// Whether the data is in Fortran (column-major) order.
    pub fortran_order: bool,
    /// The array shape (may be empty for a scalar).
    pub shape: Vec<usize>,
    /// Byte offset of the data (end of the header).
    pub data_offset: usize,
}

impl NpyHeader {
    /// Number of elements (product of the shape), `None` on overflow.
    pub fn element_count(&self) -> Option<usize> {
        self.shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
    }
}

/// Parses the header at the start of `bytes` (which may hold the whole file
/// or just a prefix long enough for the header). Checks magic, version,
/// header length and the dict (exactly the keys `descr`, `fortran_order`,
/// `shape`). Never panics; the error says what is wrong.
pub fn parse_npy_header(bytes: &[u8]) -> Result<NpyHeader, String> {
    if bytes.len() < 8 || bytes[..6] != NPY_MAGIC {
        return Err(
            "not an NPY file (magic \\x93NUMPY missing); save the array with numpy.save".into(),
        );
    }
    let version = (bytes[6], bytes[7]);
    let (len_bytes, utf8) = match version {
        (1, 0) => (2, false),
        (2, 0) => (4, false),
        (3, 0) => (4, true),
        (a, b) => {
            return Err(format!(
                "NPY format version {a}.{b} is not supported (1.0, 2.0, 3.0 are); re-save with numpy.save"
            ))
        }
    };
    let start = 8 + len_bytes;
    let Some(len_field) = bytes.get(8..start) else {
        return Err("truncated NPY file: header length missing".into());
    };
    let header_len = len_field
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    let data_offset = start
        .checked_add(header_len)
        .ok_or("NPY header length overflows")?;
    let Some(text) = bytes.get(start..data_offset) else {
        return Err(format!(
            "truncated NPY file: header declares {header_len} bytes but the file ends before"
        ));
    };
    let text = if utf8 {
        std::str::from_utf8(text)
            .map_err(|_| "NPY 3.0 header is not valid UTF-8".to_string())?
            .to_string()
    } else {
        // Versions 1 and 2 use latin-1.
        text.iter().map(|&b| char::from(b)).collect()
    };
    let (descr, fortran_order, shape) = parse_dict(&text)?;
    Ok(NpyHeader {
        version,
        descr,
        fortran_order,
        shape,
        data_offset,
    })
}

/// A tiny parser for the dict literal numpy writes.
struct DictParser<'t> {
    chars: std::iter::Peekable<std::str::Chars<'t>>,
}

#[derive(Debug)]
enum PyValue {
    Str(String),
    Bool(bool),
    Tuple(Vec<usize>),
}

impl DictParser<'_> {
    fn skip_ws(&mut self) {
        while self.chars.peek().is_some_and(|c| c.is_whitespace()) {
            self.chars.next();
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.chars.peek() == Some(&c) {
            self.chars.next();
            true
        } else {
            false
        }
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(format!(
                "NPY header: expected `{c}`, found {}",
                self.chars
                    .peek()
                    .map_or("end of header".to_string(), |c| format!("`{c}`"))
            ))
        }
    }

    fn string(&mut self) -> Result<String, String> {
        self.skip_ws();
        let quote = match self.chars.next() {
            Some(q @ ('\'' | '"')) => q,
            _ => return Err("NPY header: expected a quoted string".into()),
        };
        let mut out = String::new();
        loop {
            match self.chars.next() {
                Some(c) if c == quote => return Ok(out),
                Some('\\') => return Err("NPY header: escapes in strings are not supported".into()),
                Some(c) => out.push(c),
                None => return Err("NPY header: unterminated string".into()),
            }
        }
    }

    fn value(&mut self) -> Result<PyValue, String> {
        self.skip_ws();
        match self.chars.peek() {
            Some('\'' | '"') => Ok(PyValue::Str(self.string()?)),
            Some('(') => {
                self.chars.next();
                let mut dims = Vec::new();
                loop {
                    if self.eat(')') {
                        return Ok(PyValue::Tuple(dims));
                    }
                    self.skip_ws();
                    let mut digits = String::new();
                    while let Some(&c) = self.chars.peek().filter(|c| c.is_ascii_digit()) {
                        digits.push(c);
                        self.chars.next();
                    }
                    if digits.is_empty() {
                        return Err(
                            "NPY header: shape must be a tuple of non-negative integers".into()
                        );
                    }
                    // Python 2 wrote longs as `3L`.
                    self.eat('L');
                    let d = digits
                        .parse::<usize>()
                        .map_err(|_| format!("NPY header: dimension {digits} is too large"))?;
                    dims.push(d);
                    if !self.eat(',') {
                        self.expect(')')?;
                        return Ok(PyValue::Tuple(dims));
                    }
                }
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = self.chars.peek().filter(|c| c.is_ascii_alphabetic()) {
                    word.push(c);
                    self.chars.next();
                }
                match word.as_str() {
                    "True" => Ok(PyValue::Bool(true)),
                    "False" => Ok(PyValue::Bool(false)),
                    "" => Err(format!(
                        "NPY header: unexpected value starting with {}",
                        self.chars
                            .peek()
                            .map_or("end of header".to_string(), |c| format!("`{c}`"))
                    )),
                    _ => Err(format!("NPY header: unexpected value `{word}`")),
                }
            }
        }
    }
}

fn parse_dict(text: &str) -> Result<(String, bool, Vec<usize>), String> {
    let mut p = DictParser {
        chars: text.chars().peekable(),
    };
    p.expect('{')?;
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        if p.eat('}') {
            break;
        }
        let key = p.string()?;
        p.expect(':')?;
        let value = p.value()?;
        let slot_taken = match (key.as_str(), value) {
            ("descr", PyValue::Str(s)) => descr.replace(s).is_some(),
            ("fortran_order", PyValue::Bool(b)) => fortran.replace(b).is_some(),
            ("shape", PyValue::Tuple(t)) => shape.replace(t).is_some(),
            ("descr" | "fortran_order" | "shape", v) => {
                return Err(format!(
                    "NPY header: key `{key}` has an invalid value {v:?}"
                ))
            }
            _ => return Err(format!("NPY header: unexpected key `{key}`")),
        };
        if slot_taken {
            return Err(format!("NPY header: key `{key}` appears twice"));
        }
        if !p.eat(',') {
            p.expect('}')?;
            break;
        }
    }
    p.skip_ws();
    if p.chars.next().is_some() {
        return Err("NPY header: text after the dict".into());
    }
    match (descr, fortran, shape) {
        (Some(d), Some(f), Some(s)) => Ok((d, f, s)),
        _ => Err("NPY header: keys `descr`, `fortran_order` and `shape` are all required".into()),
    }
}

/// Writes `values` (`rows x cols`, row-major) as a NumPy `.npy` file (version 1.0, dtype
/// `<f4`, C order), atomically: a temporary file beside `path`, synced, then renamed.
pub fn write_npy_f32(
    path: impl AsRef<Path>,
    rows: usize,
    cols: usize,
    values: &[f32],
) -> Result<(), DataError> {
    use std::io::Write;
    let path = path.as_ref();
    if rows.checked_mul(cols) != Some(values.len()) {
        return Err(npy_err(
            path,
            format!("{} values do not fill {rows} x {cols}", values.len()),
        ));
    }
    crate::output::prepare_target(path)?;
    let mut header =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // Magic (6) + version (2) + header length (2) + header + '\n', padded to 64 bytes.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.next_multiple_of(64) - unpadded));
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + values.len() * 4);
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    let tmp = crate::format::unique_temp_path(path);
    let io = |p: &Path, action: &'static str| {
        let p = p.to_path_buf();
        move |source| DataError::Io {
            path: p,
            action,
            source,
        }
    };
    let written = (|| {
        let mut f = std::fs::File::create(&tmp).map_err(io(&tmp, "create"))?;
        f.write_all(&bytes).map_err(io(&tmp, "write"))?;
        f.sync_all().map_err(io(&tmp, "sync"))?;
        std::fs::rename(&tmp, path).map_err(io(path, "rename"))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// Data of an NPY array, converted to a Rust type.
#[derive(Debug, Clone, PartialEq)]
pub enum NpyData {
    /// dtype `|u1`.
    U8(Vec<u8>),
    /// dtype `<f4`.
    F32(Vec<f32>),
    /// Any integer dtype, widened.
    I64(Vec<i64>),
}

/// An NPY array: shape and data (C order).
#[derive(Debug, Clone, PartialEq)]
pub struct NpyArray {
    /// The array shape.
    pub shape: Vec<usize>,
    /// The elements, row-major.
    pub data: NpyData,
}

fn npy_err(path: &Path, reason: impl Into<String>) -> DataError {
    DataError::Npy {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// Integer dtypes accepted for labels: (descr without byte order, size, signed).
fn int_dtype(descr: &str) -> Option<(usize, bool, bool)> {
    let (order, code) = descr.split_at_checked(1)?;
    let big = match order {
        "<" | "|" => false,
        ">" => true,
        _ => return None,
    };
    let (size, signed) = match code {
        "u1" => (1, false),
        "i1" => (1, true),
        "u2" => (2, false),
        "i2" => (2, true),
        "u4" => (4, false),
        "i4" => (4, true),
        "u8" => (8, false),
        "i8" => (8, true),
        _ => return None,
    };
    if size > 1 && order == "|" {
        return None;
    }
    Some((size, signed, big))
}

/// Reads an NPY file: `|u1` and `<f4` arrays, and integer arrays (for
/// labels). Checks that the data is exactly as long as the shape says and
/// that it is in C order.
pub fn read_npy(path: impl AsRef<Path>) -> Result<NpyArray, DataError> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        action: "read",
        source,
    })?;
    let h = parse_npy_header(&bytes).map_err(|r| npy_err(path, r))?;
    if h.fortran_order {
        return Err(npy_err(
            path,
            "array is in Fortran order; save it with numpy.save(path, numpy.ascontiguousarray(a))",
        ));
    }
    let count = h
        .element_count()
        .ok_or_else(|| npy_err(path, format!("shape {:?} overflows", h.shape)))?;
    let data = &bytes[h.data_offset..];
    let check_len = |size: usize| {
        let expected = count
            .checked_mul(size)
            .ok_or_else(|| npy_err(path, format!("shape {:?} overflows", h.shape)))?;
        if data.len() != expected {
            return Err(npy_err(
                path,
                format!(
                    "shape {:?} of {} needs {expected} data bytes but the file has {}; the file is truncated or corrupt, re-save it",
                    h.shape,
                    h.descr,
                    data.len()
                ),
            ));
        }
        Ok(())
    };
    let data = match h.descr.as_str() {
        "|u1" | "<u1" => {
            check_len(1)?;
            NpyData::U8(data.to_vec())
        }
        "<f4" => {
            check_len(4)?;
            NpyData::F32(
                data.chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect(),
            )
        }
        d => match int_dtype(d) {
            Some((size, signed, big)) => {
                check_len(size)?;
                let mut out = Vec::with_capacity(count);
                for c in data.chunks_exact(size) {
                    let mut b = [0u8; 8];
                    if big {
                        for (dst, src) in b.iter_mut().zip(c.iter().rev()) {
                            *dst = *src;
                        }
                    } else {
                        b[..size].copy_from_slice(c);
                    }
                    let raw = u64::from_le_bytes(b);
                    let shift = 64 - 8 * size as u32;
                    let v = if signed {
                        ((raw << shift) as i64) >> shift
                    } else if size == 8 && raw > i64::MAX as u64 {
                        return Err(npy_err(path, format!("value {raw} does not fit in i64")));
                    } else {
                        raw as i64
                    };
                    out.push(v);
                }
                NpyData::I64(out)
            }
            None => {
                return Err(npy_err(
                    path,
                    format!(
                        "dtype {d:?} is not supported; images must be '|u1' (uint8) or '<f4' (float32 little endian), labels an integer dtype — convert with a.astype(...)"
                    ),
                ))
            }
        },
    };
    Ok(NpyArray {
        shape: h.shape,
        data,
    })
}

/// Reads an NPY labels file: a 1-D (or `(N, 1)`) array of an integer
/// dtype with values in `0..2^32`.
pub fn read_npy_labels(path: impl AsRef<Path>) -> Result<Vec<u32>, DataError> {
    let path = path.as_ref();
    let arr = read_npy(path)?;
    let ok_shape = matches!(arr.shape.as_slice(), [_] | [_, 1]);
    if !ok_shape {
        return Err(npy_err(
            path,
            format!(
                "labels must be a 1-D array, found shape {:?}; pass labels.ravel()",
                arr.shape
            ),
        ));
    }
    let values: Vec<i64> = match arr.data {
        NpyData::I64(v) => v,
        NpyData::U8(v) => v.into_iter().map(i64::from).collect(),
        NpyData::F32(_) => {
            return Err(npy_err(
                path,
                "labels are float32; save them as integers (labels.astype('int64'))",
            ))
        }
    };
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            u32::try_from(v).map_err(|_| {
                npy_err(
                    path,
                    format!("label {v} of sample {i} is negative or too large; labels must be class indices 0, 1, ..."),
                )
            })
        })
        .collect()
}

/// Class names for `labels`: `given` (checked to cover every label) or
/// `"0"`, `"1"`, ... up to the largest label.
///
/// Labels are class indices below [`crate::format::MAX_CLASSES`]. Without `given`, every class
/// up to the largest label must have a sample: a stray label (255 among 0..9) would otherwise
/// make hundreds of empty classes without a word. Both errors name the label and its sample.
pub(crate) fn class_names_for(
    labels: &[u32],
    given: Option<Vec<String>>,
    labels_path: &Path,
    out_path: &Path,
) -> Result<Vec<String>, DataError> {
    let invalid = |reason: String| DataError::InvalidInput {
        path: out_path.to_path_buf(),
        reason: format!("{}: {reason}", labels_path.display()),
    };
    let max_classes = crate::format::MAX_CLASSES;
    if let Some((i, &l)) = labels
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= max_classes)
    {
        return Err(invalid(format!(
            "label {l} (sample {i}) is not a class index: labels must be below {max_classes}; fix the label"
        )));
    }
    let max = labels.iter().copied().max();
    match given {
        Some(names) => {
            if let Some(m) = max.filter(|&m| m as usize >= names.len()) {
                return Err(invalid(format!(
                    "contains label {m} but only {} class names were given; give one name per class",
                    names.len()
                )));
            }
            Ok(names)
        }
        None => {
            let classes = max.map_or(0, |m| m as usize + 1);
            let mut seen = vec![false; classes];
            for &l in labels {
                seen[l as usize] = true;
            }
            let empty = seen.iter().filter(|&&s| !s).count();
            if let (Some(m), true) = (max, empty > 0) {
                let i = labels.iter().position(|&l| l == m).unwrap_or(0);
                let first = seen.iter().position(|&s| !s).unwrap_or(0);
                return Err(invalid(format!(
                    "label {m} (sample {i}) makes {classes} classes, {empty} of them without a \
                     sample (the first is class {first}); fix the label, or pass \
                     --num-classes {classes} to keep empty classes"
                )));
            }
            Ok((0..classes).map(|c| c.to_string()).collect())
        }
    }
}

/// Imports an NPY images file (`(N, d1, ..., dk)` with `k <= 4`, dtype
/// `|u1` or `<f4`; `(N,)` gives samples of shape `[1]`) and an NPY labels
/// file into a graft data set at `out_path`, written atomically, and opens
/// it. Class names as in [`crate::import_idx`]; the metadata records
/// `provenance` and the value mean/std (u8 scaled to `[0, 1]`).
pub fn import_npy(
    images_path: impl AsRef<Path>,
    labels_path: impl AsRef<Path>,
    out_path: impl AsRef<Path>,
    class_names: Option<Vec<String>>,
    provenance: String,
) -> Result<Dataset, DataError> {
    let (images_path, labels_path, out_path) = (
        images_path.as_ref(),
        labels_path.as_ref(),
        out_path.as_ref(),
    );
    let images = read_npy(images_path)?;
    let labels = read_npy_labels(labels_path)?;
    let Some((&n, sample_shape)) = images.shape.split_first() else {
        return Err(npy_err(
            images_path,
            "images array is a scalar; it needs a first axis of samples",
        ));
    };
    if sample_shape.len() > 4 {
        return Err(npy_err(
            images_path,
            format!(
                "images have shape {:?}: at most 4 dimensions per sample are supported; reshape the array",
                images.shape
            ),
        ));
    }
    if let Some(d) = sample_shape.iter().find(|&&d| d == 0) {
        return Err(npy_err(
            images_path,
            format!(
                "images have shape {:?} with a dimension of {d}; samples must not be empty",
                images.shape
            ),
        ));
    }
    if n != labels.len() {
        return Err(DataError::InvalidInput {
            path: out_path.to_path_buf(),
            reason: format!(
                "{} holds {n} samples but {} holds {} labels; pass matching files",
                images_path.display(),
                labels_path.display(),
                labels.len()
            ),
        });
    }
    let shape: Vec<usize> = if sample_shape.is_empty() {
        vec![1]
    } else {
        sample_shape.to_vec()
    };
    let class_names = class_names_for(&labels, class_names, labels_path, out_path)?;
    let sample_len: usize = shape.iter().product();
    let w = match &images.data {
        NpyData::U8(px) => {
            let mut w = DatasetWriter::create(out_path, ElementType::U8, &shape)?;
            for (s, &l) in px.chunks_exact(sample_len).zip(&labels) {
                w.push_bytes(s, l)?;
            }
            w
        }
        NpyData::F32(v) => {
            // NaN or infinity would reach every batch and every normalisation statistic.
            if let Some(i) = v.iter().position(|x| !x.is_finite()) {
                return Err(npy_err(
                    images_path,
                    format!(
                        "value {} of sample {} (element {}) is not finite; float images must be \
                         finite: fix or drop that sample",
                        v[i],
                        i / sample_len.max(1),
                        i % sample_len.max(1)
                    ),
                ));
            }
            let mut w = DatasetWriter::create(out_path, ElementType::F32, &shape)?;
            for (s, &l) in v.chunks_exact(sample_len).zip(&labels) {
                w.push_f32(s, l)?;
            }
            w
        }
        NpyData::I64(_) => {
            return Err(npy_err(
                images_path,
                "images have an integer dtype other than uint8; convert with a.astype('uint8') or a.astype('float32')",
            ))
        }
    };
    let stats = w.stats();
    w.finish(&Metadata {
        class_names,
        provenance,
        mean: stats.map(|s| s.0),
        std: stats.map(|s| s.1),
    })?;
    tracing::info!(images = %images_path.display(), out = %out_path.display(), count = n, "imported NPY data set");
    Dataset::open(out_path)
}

#[cfg(test)]
mod write_tests {
    use super::{read_npy, write_npy_f32, NpyData};

    /// A written file reads back through the NPY reader with its shape and values, and its
    /// header is padded so the data starts at a multiple of 64 bytes (NumPy's layout).
    #[test]
    fn written_npy_reads_back() {
        let dir = std::env::temp_dir().join(format!("graft-npy-write-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("e.npy");
        let values: Vec<f32> = (0..12).map(|i| i as f32 * 0.25 - 1.0).collect();
        write_npy_f32(&path, 3, 4, &values).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!((bytes.len() - 12 * 4) % 64, 0);
        let back = read_npy(&path).unwrap();
        assert_eq!(back.shape, vec![3, 4]);
        assert_eq!(back.data, NpyData::F32(values.clone()));
        assert!(write_npy_f32(&path, 5, 4, &values).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
