//! Import of folders of PNG/JPEG images, one subfolder per class.
//!
//! `root/<class>/<image>.{png,jpg,jpeg}` (extensions case-insensitive).
//! Classes are the subfolders in byte order of their names (hidden ones,
//! starting with `.`, are skipped); within a class, images are taken in
//! byte order of their file names. Other files are ignored. Each image is
//! decoded, converted to grey with the ITU-R BT.601 luma weights
//! `Y = (299 R + 587 G + 114 B) / 1000` (rounded; alpha is ignored, 16-bit
//! channels are first reduced to 8 bits) and resized to the requested size
//! with [`Resample::Bilinear`] or [`Resample::Area`].

use std::path::{Path, PathBuf};

use crate::dataset::Dataset;
use crate::error::DataError;
use crate::format::ElementType;
use crate::metadata::Metadata;
use crate::writer::DatasetWriter;

/// The most pixels an imported image may be resized to (4096 x 4096): the resized samples
/// are held in memory, and a size beyond it is a typo rather than a data set.
pub const MAX_IMAGE_PIXELS: usize = 1 << 24;

/// How images are resized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resample {
    /// Bilinear interpolation with pixel centres at half-integers
    /// (`src = (dst + 0.5) * in / out - 0.5`, clamped at the edges; no
    /// anti-aliasing), like OpenCV's `INTER_LINEAR`.
    Bilinear,
    /// Area averaging: each output pixel is the mean of the input area it
    /// covers, fractional pixels weighted by their overlap. Best for
    /// shrinking; when enlarging it replicates pixels (blending only where
    /// an output pixel straddles two input pixels).
    #[default]
    Area,
}

/// Options of [`import_image_folder`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ImageFolderOptions {
    /// Output size `(rows, cols)`; samples have shape `[rows, cols]`.
    pub size: (usize, usize),
    /// Resampling method.
    pub resample: Resample,
}

impl Default for ImageFolderOptions {
    fn default() -> Self {
        ImageFolderOptions {
            size: (28, 28),
            resample: Resample::Area,
        }
    }
}

/// Converts interleaved RGB8 pixels to grey (BT.601 luma, rounded).
pub fn rgb_to_gray(rgb: &[u8]) -> Vec<u8> {
    rgb.chunks_exact(3)
        .map(|p| {
            let y = 299 * u32::from(p[0]) + 587 * u32::from(p[1]) + 114 * u32::from(p[2]);
            ((y + 500) / 1000) as u8
        })
        .collect()
}

/// Resizes a grey image of `from = (rows, cols)` (row-major, `rows * cols`
/// pixels) to `to = (rows, cols)`. Sizes must be non-zero and `src` must
/// hold `rows * cols` pixels; otherwise the result is empty.
pub fn resize_gray(
    src: &[u8],
    from: (usize, usize),
    to: (usize, usize),
    method: Resample,
) -> Vec<u8> {
    let (ih, iw) = from;
    let (oh, ow) = to;
    if ih == 0 || iw == 0 || oh == 0 || ow == 0 || Some(src.len()) != ih.checked_mul(iw) {
        return Vec::new();
    }
    let out: Vec<f64> = match method {
        Resample::Bilinear => {
            let ys = bilinear_taps(ih, oh);
            let xs = bilinear_taps(iw, ow);
            let mut out = Vec::with_capacity(oh * ow);
            for &(y0, y1, fy) in &ys {
                for &(x0, x1, fx) in &xs {
                    let p = |y: usize, x: usize| f64::from(src[y * iw + x]);
                    let top = p(y0, x0) * (1.0 - fx) + p(y0, x1) * fx;
                    let bottom = p(y1, x0) * (1.0 - fx) + p(y1, x1) * fx;
                    out.push(top * (1.0 - fy) + bottom * fy);
                }
            }
            out
        }
        Resample::Area => {
            let wy = area_weights(ih, oh);
            let wx = area_weights(iw, ow);
            // Horizontal pass: ih x ow.
            let mut tmp = vec![0.0f64; ih * ow];
            for y in 0..ih {
                for (x, taps) in wx.iter().enumerate() {
                    tmp[y * ow + x] = taps
                        .iter()
                        .map(|&(i, w)| w * f64::from(src[y * iw + i]))
                        .sum();
                }
            }
            let mut out = vec![0.0f64; oh * ow];
            for (y, taps) in wy.iter().enumerate() {
                for x in 0..ow {
                    out[y * ow + x] = taps.iter().map(|&(i, w)| w * tmp[i * ow + x]).sum();
                }
            }
            out
        }
    };
    out.iter()
        .map(|&v| v.round().clamp(0.0, 255.0) as u8)
        .collect()
}

/// For each output coordinate: the two input neighbours and the weight of
/// the second.
pub(crate) fn bilinear_taps(n_in: usize, n_out: usize) -> Vec<(usize, usize, f64)> {
    let scale = n_in as f64 / n_out as f64;
    (0..n_out)
        .map(|o| {
            let s = ((o as f64 + 0.5) * scale - 0.5).clamp(0.0, (n_in - 1) as f64);
            let i0 = s.floor() as usize;
            let i1 = (i0 + 1).min(n_in - 1);
            (i0, i1, s - i0 as f64)
        })
        .collect()
}

/// For each output coordinate: input indices and normalised overlap
/// weights of the interval `[o * in / out, (o + 1) * in / out)`.
fn area_weights(n_in: usize, n_out: usize) -> Vec<Vec<(usize, f64)>> {
    let scale = n_in as f64 / n_out as f64;
    (0..n_out)
        .map(|o| {
            let (lo, hi) = (o as f64 * scale, (o as f64 + 1.0) * scale);
            let first = lo.floor() as usize;
            let last = (hi.ceil() as usize).min(n_in);
            let taps: Vec<(usize, f64)> = (first..last)
                .map(|i| (i, (hi.min(i as f64 + 1.0) - lo.max(i as f64)).max(0.0)))
                .filter(|&(_, w)| w > 0.0)
                .collect();
            let total: f64 = taps.iter().map(|t| t.1).sum();
            taps.into_iter().map(|(i, w)| (i, w / total)).collect()
        })
        .collect()
}

fn image_err(path: &Path, reason: impl Into<String>) -> DataError {
    DataError::Image {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| ["png", "jpg", "jpeg"].contains(&e.to_ascii_lowercase().as_str()))
}

fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let io = |action| {
        move |source| DataError::Io {
            path: dir.to_path_buf(),
            action,
            source,
        }
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io("list directory"))? {
        let entry = entry.map_err(io("list directory"))?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        out.push(entry.path());
    }
    out.sort();
    Ok(out)
}

/// Decodes one PNG or JPEG file to grey pixels; returns `(rows, cols, pixels)`.
pub fn load_gray(path: &Path) -> Result<(usize, usize, Vec<u8>), DataError> {
    let reader = image::ImageReader::open(path)
        .map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            action: "open",
            source,
        })?
        .with_guessed_format()
        .map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            action: "read",
            source,
        })?;
    let img = reader.decode().map_err(|e| {
        image_err(
            path,
            format!(
                "cannot decode image: {e}; re-save it as PNG or JPEG or remove it from the folder"
            ),
        )
    })?;
    let rgb = img.to_rgb8();
    let (w, h) = (rgb.width() as usize, rgb.height() as usize);
    if w == 0 || h == 0 {
        return Err(image_err(path, "image is empty (0 pixels); remove it"));
    }
    Ok((h, w, rgb_to_gray(rgb.as_raw())))
}

/// Imports a folder of class subfolders of PNG/JPEG images (see the
/// [module docs](self)) into a u8 data set of shape `[rows, cols]` at
/// `out_path`, written atomically, and opens it. Class names are the
/// subfolder names. Errors name the offending file or folder.
pub fn import_image_folder(
    root: impl AsRef<Path>,
    out_path: impl AsRef<Path>,
    options: &ImageFolderOptions,
    provenance: String,
) -> Result<Dataset, DataError> {
    let (root, out_path) = (root.as_ref(), out_path.as_ref());
    let (rows, cols) = options.size;
    if rows == 0 || cols == 0 {
        return Err(DataError::InvalidInput {
            path: out_path.to_path_buf(),
            reason: format!("image size {rows}x{cols} is empty; give a size of at least 1x1"),
        });
    }
    if rows.saturating_mul(cols) > MAX_IMAGE_PIXELS {
        return Err(DataError::InvalidInput {
            path: out_path.to_path_buf(),
            reason: format!(
                "image size {rows}x{cols} has {} pixels per sample, more than the limit of \
                 {MAX_IMAGE_PIXELS} (4096x4096); give a smaller size",
                rows as u128 * cols as u128
            ),
        });
    }
    let mut class_names = Vec::new();
    let mut files: Vec<(PathBuf, u32)> = Vec::new();
    for entry in sorted_entries(root)? {
        if entry.is_dir() {
            let label = class_names.len() as u32;
            let images: Vec<PathBuf> = sorted_entries(&entry)?
                .into_iter()
                .filter(|p| p.is_file() && is_image(p))
                .collect();
            if images.is_empty() {
                return Err(image_err(
                    &entry,
                    "class folder holds no .png/.jpg/.jpeg images; add images or remove the folder",
                ));
            }
            class_names.push(
                entry
                    .file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            );
            files.extend(images.into_iter().map(|p| (p, label)));
        } else if is_image(&entry) {
            return Err(image_err(
                &entry,
                "image lies directly in the data-set folder; move it into a subfolder named after its class",
            ));
        }
    }
    if class_names.is_empty() {
        return Err(image_err(
            root,
            "no class subfolders found; lay the images out as <folder>/<class>/<image>.png",
        ));
    }
    let mut w = DatasetWriter::create(out_path, ElementType::U8, &[rows, cols])?;
    for (path, label) in &files {
        let (h, wd, grey) = load_gray(path)?;
        let pixels = if (h, wd) == (rows, cols) {
            grey
        } else {
            resize_gray(&grey, (h, wd), (rows, cols), options.resample)
        };
        w.push_bytes(&pixels, *label)?;
    }
    let stats = w.stats();
    w.finish(&Metadata {
        class_names,
        provenance,
        mean: stats.map(|s| s.0),
        std: stats.map(|s| s.1),
    })?;
    tracing::info!(root = %root.display(), out = %out_path.display(), count = files.len(), "imported image folder");
    Dataset::open(out_path)
}
