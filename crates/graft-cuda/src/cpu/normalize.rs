//! Reference for `kernels/normalize.cu`.

use crate::spec::{check_normalize, Augment, ImageShape, OpError};

/// CPU reference of [`crate::normalize_images`].
pub fn normalize_images(
    pixels: &[u8],
    shape: ImageShape,
    mean: &[f32],
    std: &[f32],
    augment: Option<&Augment>,
) -> Result<Vec<f32>, OpError> {
    check_normalize(pixels, shape, mean, std, augment)?;
    let ImageShape {
        n,
        channels,
        height,
        width,
    } = shape;
    let plane = height * width;
    let mut out = Vec::with_capacity(pixels.len());
    for s in 0..n {
        let (pad, aug) = match augment {
            Some(a) => (a.pad as isize, Some(a.for_sample(s as u64))),
            None => (0, None),
        };
        for c in 0..channels {
            let src = &pixels[(s * channels + c) * plane..][..plane];
            for y in 0..height {
                for x in 0..width {
                    let (sy, sx) = match aug {
                        None => (y as isize, x as isize),
                        Some(a) => {
                            let cx = if a.flipped { width - 1 - x } else { x };
                            (
                                y as isize + a.offset_y as isize - pad,
                                cx as isize + a.offset_x as isize - pad,
                            )
                        }
                    };
                    let inside =
                        (0..height as isize).contains(&sy) && (0..width as isize).contains(&sx);
                    let p = if inside {
                        f32::from(src[sy as usize * width + sx as usize])
                    } else {
                        0.0
                    };
                    out.push((p / 255.0 - mean[c]) / std[c]);
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::sample_hash;
    use proptest::prelude::*;

    #[test]
    fn mix64_matches_splitmix64_reference_values() {
        // First outputs of SplitMix64 seeded with 0 (Vigna's reference implementation).
        assert_eq!(sample_hash(0, 0), 0xE220_A839_7B1D_CDAF);
        assert_eq!(sample_hash(0, 1), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(sample_hash(0, 2), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn plain_normalisation_by_hand() {
        let shape = ImageShape {
            n: 1,
            channels: 2,
            height: 1,
            width: 2,
        };
        let out =
            normalize_images(&[0, 255, 51, 102], shape, &[0.5, 0.0], &[0.5, 2.0], None).unwrap();
        assert_eq!(out, vec![-1.0, 1.0, 0.1, 0.2]);
    }

    #[test]
    fn bad_shapes_are_errors() {
        let shape = ImageShape {
            n: 2,
            channels: 1,
            height: 2,
            width: 2,
        };
        assert!(normalize_images(&[0; 7], shape, &[0.0], &[1.0], None).is_err());
        assert!(normalize_images(&[0; 8], shape, &[0.0, 0.0], &[1.0], None).is_err());
        let big = Augment {
            pad: Augment::MAX_PAD + 1,
            flip: false,
            seed: 0,
            first_index: 0,
        };
        assert!(normalize_images(&[0; 8], shape, &[0.0], &[1.0], Some(&big)).is_err());
    }

    #[test]
    fn flip_without_padding_mirrors_rows() {
        let shape = ImageShape {
            n: 64,
            channels: 1,
            height: 2,
            width: 3,
        };
        let pixels: Vec<u8> = (0..64 * 6).map(|i| (i % 6) as u8).collect();
        let aug = Augment {
            pad: 0,
            flip: true,
            seed: 7,
            first_index: 100,
        };
        let out = normalize_images(&pixels, shape, &[0.0], &[1.0 / 255.0], Some(&aug)).unwrap();
        let mut flipped = 0;
        for s in 0..64 {
            let img = &out[s * 6..][..6];
            if aug.for_sample(s as u64).flipped {
                flipped += 1;
                assert_eq!(img, &[2.0, 1.0, 0.0, 5.0, 4.0, 3.0]);
            } else {
                assert_eq!(img, &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
            }
        }
        assert!((16..=48).contains(&flipped), "{flipped} of 64 flipped");
    }

    #[test]
    fn augmentation_depends_on_global_index_only() {
        let a = Augment {
            pad: 4,
            flip: true,
            seed: 3,
            first_index: 10,
        };
        let b = Augment {
            first_index: 12,
            ..a
        };
        assert_eq!(a.for_sample(5), b.for_sample(3));
        let offsets: std::collections::BTreeSet<_> = (0..500)
            .map(|i| (a.for_sample(i).offset_y, a.for_sample(i).offset_x))
            .collect();
        assert_eq!(offsets.len(), 81, "every offset in 0..=8 x 0..=8 occurs");
    }

    fn shapes() -> impl Strategy<Value = (ImageShape, Vec<u8>)> {
        (1usize..4, 1usize..4, 1usize..7, 1usize..7).prop_flat_map(
            |(n, channels, height, width)| {
                let shape = ImageShape {
                    n,
                    channels,
                    height,
                    width,
                };
                (
                    Just(shape),
                    proptest::collection::vec(any::<u8>(), n * channels * height * width),
                )
            },
        )
    }

    proptest! {
        /// Against a direct index computation on an explicitly padded copy.
        #[test]
        fn crop_and_flip_match_explicit_padding(
            (shape, pixels) in shapes(),
            pad in 0usize..4,
            flip in any::<bool>(),
            seed in any::<u64>(),
            first_index in any::<u64>(),
        ) {
            let aug = Augment { pad, flip, seed, first_index };
            let mean: Vec<f32> = (0..shape.channels).map(|c| 0.1 * c as f32).collect();
            let std: Vec<f32> = (0..shape.channels).map(|c| 0.5 + c as f32).collect();
            let out = normalize_images(&pixels, shape, &mean, &std, Some(&aug)).unwrap();
            let (h, w) = (shape.height, shape.width);
            let (ph, pw) = (h + 2 * pad, w + 2 * pad);
            for s in 0..shape.n {
                let a = aug.for_sample(s as u64);
                prop_assert!(a.offset_y <= 2 * pad && a.offset_x <= 2 * pad);
                prop_assert!(flip || !a.flipped);
                for c in 0..shape.channels {
                    // Build the zero-padded image explicitly.
                    let mut padded = vec![0u8; ph * pw];
                    for y in 0..h {
                        for x in 0..w {
                            padded[(y + pad) * pw + x + pad] = pixels[((s * shape.channels + c) * h + y) * w + x];
                        }
                    }
                    // Crop, then flip the crop.
                    for y in 0..h {
                        for x in 0..w {
                            let cx = if a.flipped { w - 1 - x } else { x };
                            let p = f32::from(padded[(y + a.offset_y) * pw + cx + a.offset_x]);
                            let want = (p / 255.0 - mean[c]) / std[c];
                            prop_assert_eq!(out[((s * shape.channels + c) * h + y) * w + x], want);
                        }
                    }
                }
            }
        }

        #[test]
        fn no_augmentation_is_pointwise((shape, pixels) in shapes()) {
            let mean = vec![0.25; shape.channels];
            let std = vec![0.5; shape.channels];
            let out = normalize_images(&pixels, shape, &mean, &std, None).unwrap();
            for (o, &p) in out.iter().zip(&pixels) {
                prop_assert!((o - (f32::from(p) / 255.0 - 0.25) / 0.5).abs() <= 1e-6);
            }
        }
    }
}
