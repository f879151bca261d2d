//! Image folders: grey conversion and resampling against naive references,
//! and a folder of PNG and JPEG files.

use graft_data::images::{resize_gray, rgb_to_gray};
use graft_data::{import_image_folder, DataError, ImageFolderOptions, Resample};

use super::common::TempDir;

#[test]
fn grey_is_bt601_luma() {
    assert_eq!(
        rgb_to_gray(&[255, 0, 0, 0, 255, 0, 0, 0, 255]),
        vec![76, 150, 29]
    );
    for v in [0u8, 1, 77, 128, 254, 255] {
        assert_eq!(rgb_to_gray(&[v, v, v]), vec![v]);
    }
    assert_eq!(rgb_to_gray(&[10, 20, 30]), vec![18]); // 2.99 + 11.74 + 3.42 = 18.15
}

#[test]
fn area_integer_factor_is_block_mean() {
    let (h, w) = (6, 9);
    let src: Vec<u8> = (0..h * w).map(|i| ((i * 37) % 251) as u8).collect();
    let out = resize_gray(&src, (h, w), (2, 3), Resample::Area);
    for oy in 0..2 {
        for ox in 0..3 {
            let mut sum = 0u32;
            for y in 0..3 {
                for x in 0..3 {
                    sum += u32::from(src[(oy * 3 + y) * w + ox * 3 + x]);
                }
            }
            let want = (f64::from(sum) / 9.0).round() as u8;
            assert_eq!(out[oy * 3 + ox], want, "({oy}, {ox})");
        }
    }
    // Factor 2: bilinear with half-pixel centres samples exactly between
    // the four source pixels, which is the block mean too.
    let src: Vec<u8> = (0..16).map(|i| (i * 16) as u8).collect();
    assert_eq!(
        resize_gray(&src, (4, 4), (2, 2), Resample::Bilinear),
        resize_gray(&src, (4, 4), (2, 2), Resample::Area)
    );
}

#[test]
fn area_fractional_and_bilinear_by_hand() {
    // 1x3 -> 1x2: out0 covers [0, 1.5): (a + b/2) / 1.5; out1 covers [1.5, 3).
    let out = resize_gray(&[30, 60, 90], (1, 3), (1, 2), Resample::Area);
    assert_eq!(out, vec![40, 80]);
    // Bilinear 1x2 -> 1x4: src x = (o + 0.5) / 2 - 0.5 = -0.25 (clamped 0), 0.25, 0.75, 1.25 (clamped 1).
    let out = resize_gray(&[0, 100], (1, 2), (1, 4), Resample::Bilinear);
    assert_eq!(out, vec![0, 25, 75, 100]);
    // 2x2 -> 3x3 bilinear: centre pixel is the mean of all four.
    let out = resize_gray(&[0, 40, 80, 120], (2, 2), (3, 3), Resample::Bilinear);
    assert_eq!(out[4], 60);
    // Identity.
    let src: Vec<u8> = (0..12).collect();
    assert_eq!(resize_gray(&src, (3, 4), (3, 4), Resample::Bilinear), src);
    assert_eq!(resize_gray(&src, (3, 4), (3, 4), Resample::Area), src);
    // Invalid sizes give nothing instead of panicking.
    assert!(resize_gray(&src, (3, 5), (1, 1), Resample::Area).is_empty());
    assert!(resize_gray(&src, (3, 4), (0, 1), Resample::Area).is_empty());
}

fn save_png_rgb(path: &std::path::Path, w: u32, h: u32, rgb: Vec<u8>) {
    image::RgbImage::from_raw(w, h, rgb)
        .unwrap()
        .save(path)
        .unwrap();
}

#[test]
fn folder_of_png_and_jpeg() {
    let dir = TempDir::new("imgs");
    let root = dir.join("set");
    for class in ["b_cat", "a_dog"] {
        std::fs::create_dir_all(root.join(class)).unwrap();
    }
    // a_dog/1.png: 4x4 grey gradient (stored as L8).
    let grad: Vec<u8> = (0..16).map(|i| (i * 16) as u8).collect();
    image::GrayImage::from_raw(4, 4, grad.clone())
        .unwrap()
        .save(root.join("a_dog").join("1.png"))
        .unwrap();
    // a_dog/0.PNG: 2x2 RGB, sorted before 1.png.
    save_png_rgb(
        &root.join("a_dog").join("0.PNG"),
        2,
        2,
        vec![255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30],
    );
    // b_cat/x.jpg: constant grey 8x8 JPEG (lossless enough for a flat image).
    image::GrayImage::from_pixel(8, 8, image::Luma([200u8]))
        .save(root.join("b_cat").join("x.jpg"))
        .unwrap();
    std::fs::write(root.join("b_cat").join("notes.txt"), b"ignored").unwrap();
    std::fs::write(root.join("README"), b"ignored").unwrap();
    std::fs::create_dir_all(root.join(".hidden")).unwrap();

    let opts = ImageFolderOptions {
        size: (2, 2),
        resample: Resample::Area,
    };
    let ds = import_image_folder(&root, dir.join("o"), &opts, "folder".into()).unwrap();
    ds.verify_checksum().unwrap();
    assert_eq!(
        ds.class_names(),
        &["a_dog".to_string(), "b_cat".to_string()]
    );
    assert_eq!(ds.labels(), &[0, 0, 1]);
    assert_eq!(ds.sample_shape(), &[2, 2]);
    assert_eq!(ds.sample(0).unwrap(), &[76, 150, 29, 18]);
    assert_eq!(
        ds.sample(1).unwrap(),
        &resize_gray(&grad, (4, 4), (2, 2), Resample::Area)[..]
    );
    // Block means of the gradient, by hand: (0+16+64+80)/4 = 40, ...
    assert_eq!(ds.sample(1).unwrap(), &[40, 72, 168, 200]);
    for &p in ds.sample(2).unwrap() {
        assert!((198..=202).contains(&p), "jpeg pixel {p}");
    }
}

#[test]
fn folder_errors() {
    let dir = TempDir::new("imgs-bad");
    let root = dir.join("set");
    std::fs::create_dir_all(root.join("c")).unwrap();
    let opts = ImageFolderOptions::default();
    let err = import_image_folder(&root, dir.join("o"), &opts, String::new()).unwrap_err();
    assert!(
        err.to_string().contains("no .png/.jpg/.jpeg images"),
        "{err}"
    );
    std::fs::write(root.join("c").join("bad.png"), b"not a png at all").unwrap();
    let err = import_image_folder(&root, dir.join("o"), &opts, String::new()).unwrap_err();
    assert!(matches!(err, DataError::Image { .. }), "{err:?}");
    assert!(
        err.to_string().contains("bad.png") && err.to_string().contains("re-save"),
        "{err}"
    );
    std::fs::remove_file(root.join("c").join("bad.png")).unwrap();
    image::GrayImage::from_pixel(3, 3, image::Luma([1u8]))
        .save(root.join("c").join("ok.png"))
        .unwrap();
    image::GrayImage::from_pixel(3, 3, image::Luma([1u8]))
        .save(root.join("stray.png"))
        .unwrap();
    let err = import_image_folder(&root, dir.join("o"), &opts, String::new()).unwrap_err();
    assert!(
        err.to_string().contains("stray.png") && err.to_string().contains("subfolder"),
        "{err}"
    );
    let err = import_image_folder(
        dir.join("empty-missing"),
        dir.join("o"),
        &opts,
        String::new(),
    )
    .unwrap_err();
    assert!(matches!(err, DataError::Io { .. }));
    let err = import_image_folder(
        &root,
        dir.join("o"),
        &ImageFolderOptions {
            size: (0, 3),
            ..opts
        },
        String::new(),
    );
    assert!(err.is_err());
    assert!(!dir.join("o").exists());
}
