//! `graft predict`'s library path against PyTorch: the top-5 ImageNet classes and their
//! probabilities for two photos through EfficientNet-Lite0 (`tests/data/photos`, the
//! PyTorch values written by `benches/peers/effnet_predict.py`).

use std::path::{Path, PathBuf};

use graft_transfer::predict::{imagenet_class_names, predict};

fn photos() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/photos")
}

#[test]
fn the_class_list_has_the_thousand_imagenet_classes() {
    let names = imagenet_class_names();
    assert_eq!(names.len(), 1000);
    assert_eq!(names[281], "tabby cat");
    assert_eq!(names[967], "espresso");
}

#[test]
fn top5_classes_and_probabilities_equal_pytorch() {
    let Some(weights) = graft_test_support::effnet_weights() else {
        return;
    };
    let want: serde_json::Value =
        serde_json::from_slice(&std::fs::read(photos().join("torch_top5.json")).unwrap()).unwrap();
    let files: Vec<PathBuf> = ["chelsea.png", "rocket.jpg"]
        .iter()
        .map(|f| photos().join(f))
        .collect();
    let got = predict(&weights, &files, 5).unwrap();
    for (g, w) in got.iter().zip(want["predictions"].as_array().unwrap()) {
        // PNG decodes identically; JPEG decoders (PIL's libjpeg, the image crate) differ by a
        // level here and there, which moves probabilities in the third decimal.
        let tol = if g.file.extension().unwrap() == "jpg" {
            3e-3
        } else {
            1e-4
        };
        for (gc, wc) in g.top5.iter().zip(w["top5"].as_array().unwrap()) {
            assert_eq!(
                gc.class as u64,
                wc["class"].as_u64().unwrap(),
                "{}",
                g.file.display()
            );
            let p = wc["probability"].as_f64().unwrap();
            assert!(
                (f64::from(gc.probability) - p).abs() <= tol,
                "{}: class {} {} vs {p}",
                g.file.display(),
                gc.class,
                gc.probability
            );
        }
    }
    // Chelsea is a tabby: the three cat classes lead.
    let cats: Vec<usize> = got[0].top5[..3].iter().map(|c| c.class).collect();
    assert!(cats.iter().all(|c| (281..=285).contains(c)), "{cats:?}");
}
