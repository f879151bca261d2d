//! Import of MNIST-style IDX files (raw or gzip'd).
//!
//! Gzip is detected by the magic bytes `1f 8b`, never by the file name.
//! IDX integers are big endian: images are magic `0x00000803`, count, rows,
//! cols, then `count * rows * cols` u8 pixels; labels are magic
//! `0x00000801`, count, then `count` u8 labels.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use flate2::read::MultiGzDecoder;

use crate::dataset::Dataset;
use crate::error::DataError;
use crate::format::write_u8_dataset;
use crate::metadata::Metadata;

pub use crate::pixel_stats::{histogram_stats, pixel_stats};

/// Magic number of an IDX file of u8 3-D data (images).
pub const IDX3_U8_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of u8 1-D data (labels).
pub const IDX1_U8_MAGIC: u32 = 0x0000_0801;

/// Images read from an IDX3 file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdxImages {
    /// Number of images.
    pub count: usize,
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
    /// `count * rows * cols` pixels, image-major then row-major.
    pub pixels: Vec<u8>,
}

/// Reads an IDX3 u8 images file (raw or gzip'd).
pub fn read_idx_images(path: impl AsRef<Path>) -> Result<IdxImages, DataError> {
    let path = path.as_ref();
    let (dims, pixels) = read_idx(path, IDX3_U8_MAGIC, 3, "images")?;
    let [count, rows, cols] = [dims[0], dims[1], dims[2]];
    if rows == 0 || cols == 0 {
        return Err(DataError::IdxInvalid {
            path: path.to_path_buf(),
            reason: format!("images are {rows}x{cols}; both sides must be at least 1"),
        });
    }
    Ok(IdxImages {
        count,
        rows,
        cols,
        pixels,
    })
}

/// Reads an IDX1 u8 labels file (raw or gzip'd).
pub fn read_idx_labels(path: impl AsRef<Path>) -> Result<Vec<u8>, DataError> {
    let (_, labels) = read_idx(path.as_ref(), IDX1_U8_MAGIC, 1, "labels")?;
    Ok(labels)
}

/// Imports an IDX images file and its labels file into a graft data set at
/// `out_path` (written atomically) and opens it.
///
/// Samples get shape `[rows, cols]`. `class_names` defaults to `"0"`,
/// `"1"`, ... `"C-1"` with `C = max label + 1`; if given, it must have a
/// name for every label. The metadata records `provenance` and the mean and
/// population standard deviation of all pixels divided by 255.
pub fn import_idx(
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
    let images = read_idx_images(images_path)?;
    let labels = read_idx_labels(labels_path)?;
    if images.count != labels.len() {
        return Err(DataError::IdxCountMismatch {
            images_path: images_path.to_path_buf(),
            labels_path: labels_path.to_path_buf(),
            images: images.count as u64,
            labels: labels.len() as u64,
        });
    }
    let wide: Vec<u32> = labels.iter().map(|&l| u32::from(l)).collect();
    let class_names = crate::npy::class_names_for(&wide, class_names, labels_path, out_path)?;
    let stats = pixel_stats(&images.pixels);
    let metadata = Metadata {
        class_names,
        provenance,
        mean: stats.map(|s| s.0),
        std: stats.map(|s| s.1),
    };
    let labels32: Vec<u32> = labels.iter().map(|&l| u32::from(l)).collect();
    write_u8_dataset(
        out_path,
        &[images.rows, images.cols],
        &images.pixels,
        &labels32,
        &metadata,
    )?;
    tracing::info!(
        images = %images_path.display(),
        labels = %labels_path.display(),
        out = %out_path.display(),
        count = images.count,
        "imported IDX data set"
    );
    Dataset::open(out_path)
}

/// Opens `path`, transparently un-gzipping it when it starts with `1f 8b`.
fn open_maybe_gz(path: &Path) -> Result<(Box<dyn Read>, bool), DataError> {
    let io = |action| {
        move |source| DataError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    };
    let mut file = File::open(path).map_err(io("open"))?;
    let mut magic = Vec::with_capacity(2);
    (&mut file)
        .take(2)
        .read_to_end(&mut magic)
        .map_err(io("read"))?;
    file.seek(SeekFrom::Start(0)).map_err(io("seek"))?;
    let reader = BufReader::new(file);
    if magic == [0x1f, 0x8b] {
        Ok((Box::new(MultiGzDecoder::new(reader)), true))
    } else {
        Ok((Box::new(reader), false))
    }
}

/// Reads at most `n` bytes (fewer only at end of stream).
fn read_up_to(r: &mut dyn Read, n: u64) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    r.take(n).read_to_end(&mut out)?;
    Ok(out)
}

/// Reads an IDX file of u8 data with `ndim` dimensions; returns the
/// dimensions and the data, after checking magic and exact size.
fn read_idx(
    path: &Path,
    magic: u32,
    ndim: usize,
    kind: &'static str,
) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let p = || path.to_path_buf();
    let (mut reader, gz) = open_maybe_gz(path)?;
    let action = if gz { "decompress (gzip)" } else { "read" };
    let io = |source| DataError::Io {
        path: p(),
        action,
        source,
    };
    let header_len = 4 + 4 * ndim as u64;
    let header = read_up_to(&mut reader, header_len).map_err(io)?;
    let word = |i: usize| {
        header
            .get(4 * i..4 * i + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let Some(found) = word(0) else {
        return Err(DataError::IdxTruncated {
            path: p(),
            declared: header_len,
            actual: header.len() as u64,
        });
    };
    if found != magic {
        return Err(DataError::IdxMagic {
            path: p(),
            kind,
            found,
            expected: magic,
        });
    }
    let mut dims = Vec::with_capacity(ndim);
    for i in 1..=ndim {
        let Some(d) = word(i) else {
            return Err(DataError::IdxTruncated {
                path: p(),
                declared: header_len,
                actual: header.len() as u64,
            });
        };
        dims.push(d);
    }
    let data_len = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(u64::from(d)))
        .filter(|&n| n < u64::MAX - header_len)
        .ok_or_else(|| DataError::IdxInvalid {
            path: p(),
            reason: format!("dimensions {dims:?} overflow"),
        })?;
    let declared = header_len + data_len;
    // Reading one byte more than declared detects trailing data; the buffer
    // only grows as bytes actually arrive, so a lying header cannot make us
    // allocate more than the file holds.
    let data = read_up_to(&mut reader, data_len + 1).map_err(io)?;
    let got = data.len() as u64;
    if got < data_len {
        return Err(DataError::IdxTruncated {
            path: p(),
            declared,
            actual: header_len + got,
        });
    }
    if got > data_len {
        return Err(DataError::IdxTrailingData {
            path: p(),
            declared,
        });
    }
    let dims = dims
        .iter()
        .map(|&d| usize::try_from(d))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| DataError::IdxInvalid {
            path: p(),
            reason: "dimensions do not fit in memory".into(),
        })?;
    Ok((dims, data))
}
