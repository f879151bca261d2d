//! Photo preprocessing against PyTorch (`tests/fixtures/make_photo_reference.py`):
//! `F.interpolate(mode="bilinear", align_corners=False)` on float pixels, and torchvision's
//! shorter-side resize and centre crop.

use std::path::{Path, PathBuf};

use graft_data::photo::{center_crop, load_rgb, photo_input, resize_bilinear, Planar};
use proptest::prelude::*;
use safetensors::SafeTensors;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn reference(name: &str) -> (Vec<usize>, Vec<f32>) {
    let bytes = std::fs::read(fixture("photo_reference.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let t = st.tensor(name).unwrap();
    let v = t
        .data()
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    (t.shape().to_vec(), v)
}

fn planar(name: &str) -> Planar {
    let (shape, data) = reference(name);
    Planar {
        channels: shape[0],
        height: shape[1],
        width: shape[2],
        data,
    }
}

/// Every value within 1e-4 of PyTorch's, relative to the 0..255 pixel scale.
fn assert_close(what: &str, got: &Planar, want: &Planar) {
    assert_eq!(
        (got.channels, got.height, got.width),
        (want.channels, want.height, want.width),
        "{what}"
    );
    let worst = got
        .data
        .iter()
        .zip(&want.data)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst <= 255.0 * 1e-4 / 10.0,
        "{what}: worst difference {worst}"
    );
}

#[test]
fn bilinear_resize_equals_pytorch_down_and_up() {
    let x = planar("x");
    assert_close("down", &resize_bilinear(&x, 20, 29), &planar("down"));
    assert_close("up", &resize_bilinear(&x, 64, 90), &planar("up"));
    let grey = planar("grey");
    assert_close(
        "28 to 224",
        &resize_bilinear(&grey, 224, 224),
        &planar("grey224"),
    );
}

#[test]
fn photo_pipeline_equals_torchvision_resize_and_center_crop() {
    // photo.png: 50x70 random RGB; shorter side to 64 (64x89), then the centre 56x56.
    let got = photo_input(&fixture("photo.png"), 64, 56).unwrap();
    assert_close("photo", &got, &planar("photo_pipeline"));
}

#[test]
fn grey_images_become_three_equal_planes() {
    let g = Planar::from_gray(2, 2, &[0, 50, 100, 255]);
    let rgb = g.repeat_channels(3);
    assert_eq!(
        rgb.data,
        [0., 50., 100., 255., 0., 50., 100., 255., 0., 50., 100., 255.]
    );
    let mut n = rgb.clone();
    n.normalize(127.0, 128.0);
    assert_eq!(n.data[3], 1.0);
    assert_eq!(n.data[0], -127.0 / 128.0);
}

#[test]
fn a_file_that_is_not_an_image_is_an_error_naming_it() {
    let err = load_rgb(&fixture("make_photo_reference.py")).unwrap_err();
    assert!(err.to_string().contains("make_photo_reference.py"), "{err}");
}

/// The naive definition: each output pixel from its two neighbours on each axis, in f64.
fn naive(img: &Planar, h: usize, w: usize) -> Vec<f64> {
    let src = |n_in: usize, n_out: usize, o: usize| {
        let s = ((o as f64 + 0.5) * n_in as f64 / n_out as f64 - 0.5).max(0.0);
        let i0 = (s.floor() as usize).min(n_in - 1);
        let i1 = (i0 + 1).min(n_in - 1);
        (i0, i1, s - i0 as f64)
    };
    let mut out = Vec::new();
    for c in 0..img.channels {
        for y in 0..h {
            let (y0, y1, fy) = src(img.height, h, y);
            for x in 0..w {
                let (x0, x1, fx) = src(img.width, w, x);
                let p = |yy: usize, xx: usize| {
                    f64::from(img.data[(c * img.height + yy) * img.width + xx])
                };
                let fx = if x0 == x1 { 0.0 } else { fx };
                let fy = if y0 == y1 { 0.0 } else { fy };
                let top = p(y0, x0) * (1.0 - fx) + p(y0, x1) * fx;
                let bottom = p(y1, x0) * (1.0 - fx) + p(y1, x1) * fx;
                out.push(top * (1.0 - fy) + bottom * fy);
            }
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn resize_matches_the_naive_definition(
        (h, w, pixels) in (1usize..12, 1usize..12).prop_flat_map(|(h, w)| (Just(h), Just(w), prop::collection::vec(0u8..=255, 2 * h * w))),
        oh in 1usize..20, ow in 1usize..20,
    ) {
        let img = Planar { channels: 2, height: h, width: w, data: pixels.iter().map(|&p| f32::from(p)).collect() };
        let got = resize_bilinear(&img, oh, ow);
        for (a, b) in got.data.iter().zip(naive(&img, oh, ow)) {
            prop_assert!((f64::from(*a) - b).abs() < 1e-3, "{a} vs {b}");
        }
        let crop = center_crop(&got, oh.min(3), ow.min(3));
        prop_assert_eq!(crop.data.len(), 2 * oh.min(3) * ow.min(3));
    }
}
