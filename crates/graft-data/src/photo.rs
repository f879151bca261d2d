//! Photos as ImageNet networks take them: decoded to RGB, resized by bilinear interpolation
//! with half-pixel centres and no antialiasing (PyTorch's `F.interpolate(mode="bilinear",
//! align_corners=False)` on float pixels, so no rounding between steps), centre-cropped as
//! torchvision's `Resize(256)` + `CenterCrop(224)` do, and normalised per value.

use std::path::Path;

use crate::error::DataError;
use crate::images::bilinear_taps;

/// A planar image: `channels` planes of `height x width` f32 values (pixels 0..255 until
/// normalised).
#[derive(Debug, Clone, PartialEq)]
pub struct Planar {
    /// Number of planes (3 for RGB, 1 for grey).
    pub channels: usize,
    /// Rows.
    pub height: usize,
    /// Columns.
    pub width: usize,
    /// `channels * height * width` values, plane by plane, row-major.
    pub data: Vec<f32>,
}

impl Planar {
    /// A grey image of u8 pixels, as one plane.
    pub fn from_gray(height: usize, width: usize, pixels: &[u8]) -> Self {
        Planar {
            channels: 1,
            height,
            width,
            data: pixels.iter().map(|&p| f32::from(p)).collect(),
        }
    }

    /// Interleaved RGB8 pixels as three planes.
    pub fn from_rgb8(height: usize, width: usize, rgb: &[u8]) -> Self {
        let n = height * width;
        let mut data = vec![0.0f32; 3 * n];
        for (i, px) in rgb.chunks_exact(3).take(n).enumerate() {
            for c in 0..3 {
                data[c * n + i] = f32::from(px[c]);
            }
        }
        Planar {
            channels: 3,
            height,
            width,
            data,
        }
    }

    /// One plane copied to `channels` planes (grey to RGB).
    pub fn repeat_channels(&self, channels: usize) -> Self {
        let plane = self.height * self.width;
        let first = &self.data[..plane];
        Planar {
            channels,
            height: self.height,
            width: self.width,
            data: (0..channels).flat_map(|_| first.iter().copied()).collect(),
        }
    }

    /// `(v - mean) / std` for every value (EfficientNet-Lite: mean 127, std 128).
    pub fn normalize(&mut self, mean: f32, std: f32) {
        for v in &mut self.data {
            *v = (*v - mean) / std;
        }
    }
}

/// Decodes a PNG or JPEG file to RGB planes (alpha ignored, 16-bit reduced to 8).
pub fn load_rgb(path: &Path) -> Result<Planar, DataError> {
    let img = image::ImageReader::open(path)
        .and_then(|r| r.with_guessed_format())
        .map_err(|source| DataError::Io {
            path: path.to_path_buf(),
            action: "open",
            source,
        })?
        .decode()
        .map_err(|e| DataError::Image {
            path: path.to_path_buf(),
            reason: format!("cannot decode image: {e}; give a PNG or JPEG file"),
        })?;
    let rgb = img.to_rgb8();
    let (h, w) = (rgb.height() as usize, rgb.width() as usize);
    if h == 0 || w == 0 {
        return Err(DataError::Image {
            path: path.to_path_buf(),
            reason: "the image has no pixels".into(),
        });
    }
    Ok(Planar::from_rgb8(h, w, rgb.as_raw()))
}

/// Bilinear resize of every plane to `height x width` (both at least 1).
pub fn resize_bilinear(img: &Planar, height: usize, width: usize) -> Planar {
    let ys = bilinear_taps(img.height, height);
    let xs = bilinear_taps(img.width, width);
    let plane_in = img.height * img.width;
    let mut data = Vec::with_capacity(img.channels * height * width);
    for c in 0..img.channels {
        let src = &img.data[c * plane_in..(c + 1) * plane_in];
        let at = |y: usize, x: usize| src[y * img.width + x];
        for &(y0, y1, fy) in &ys {
            let fy = fy as f32;
            for &(x0, x1, fx) in &xs {
                let fx = fx as f32;
                let top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
                let bottom = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
                data.push(top * (1.0 - fy) + bottom * fy);
            }
        }
    }
    Planar {
        channels: img.channels,
        height,
        width,
        data,
    }
}

/// torchvision's `Resize(side)`: the shorter side becomes `side`, the longer one
/// `floor(side * long / short)`.
pub fn resize_shorter_side(img: &Planar, side: usize) -> Planar {
    let (h, w) = (img.height, img.width);
    let (nh, nw) = if h <= w {
        (side, side * w / h)
    } else {
        (side * h / w, side)
    };
    resize_bilinear(img, nh, nw)
}

/// torchvision's `CenterCrop`: the window starts at `round((size - crop) / 2)` on each axis,
/// rounded half to even as Python's `round` does. `crop` may not exceed the image.
pub fn center_crop(img: &Planar, height: usize, width: usize) -> Planar {
    let top = ((img.height - height) as f64 / 2.0).round_ties_even() as usize;
    let left = ((img.width - width) as f64 / 2.0).round_ties_even() as usize;
    let plane_in = img.height * img.width;
    let mut data = Vec::with_capacity(img.channels * height * width);
    for c in 0..img.channels {
        for y in top..top + height {
            let row = c * plane_in + y * img.width;
            data.extend_from_slice(&img.data[row + left..row + left + width]);
        }
    }
    Planar {
        channels: img.channels,
        height,
        width,
        data,
    }
}

/// A photo as an ImageNet network takes it: shorter side to `resize`, centre crop of
/// `crop x crop`, RGB planes of pixel values 0..255 (normalise with [`Planar::normalize`]).
pub fn photo_input(path: &Path, resize: usize, crop: usize) -> Result<Planar, DataError> {
    let img = resize_shorter_side(&load_rgb(path)?, resize.max(crop));
    Ok(center_crop(&img, crop, crop))
}
