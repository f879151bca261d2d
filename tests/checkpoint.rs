//! Checkpoints: save/load equality, backbone-only loads, and errors that list every problem.

use dfdx::prelude::*;
use graft::nn::checkpoint::{self, LoadScope, Normalization};
use graft::nn::{Checkpoint, MlpClassifier, NnError, Parameters};

use crate::util::temp_dir;

fn model(seed: u64, classes: usize) -> MlpClassifier {
    MlpClassifier::new(&Cpu::seed_from_u64(seed), classes).unwrap()
}

#[test]
fn save_then_load_gives_identical_parameters_and_normalization() {
    let dir = temp_dir("ckpt-roundtrip");
    let path = dir.join("m.safetensors");
    let a = model(1, 8);
    let norm = Normalization {
        mean: 0.2706,
        std: 0.4018,
    };
    checkpoint::save(&path, &a, "mlp", Some(norm)).unwrap();
    let mut b = model(2, 8);
    assert_ne!(a.snapshot(), b.snapshot());
    let ckpt = Checkpoint::open(&path).unwrap();
    ckpt.load_into(&mut b, "mlp", LoadScope::Whole).unwrap();
    assert_eq!(a.snapshot(), b.snapshot());
    assert_eq!(ckpt.normalization().unwrap(), Some(norm));
    assert_eq!(ckpt.network().as_deref(), Some("mlp"));
    assert!(
        std::fs::read_dir(&dir).unwrap().count() == 1,
        "no temporary file is left behind"
    );
}

#[test]
fn backbone_only_load_keeps_the_new_head() {
    let dir = temp_dir("ckpt-backbone");
    let path = dir.join("m.safetensors");
    let source = model(1, 8);
    checkpoint::save(&path, &source, "mlp", None).unwrap();
    let mut target = model(3, 2);
    let head_before = target.head.weight.as_vec();
    Checkpoint::open(&path)
        .unwrap()
        .load_into(&mut target, "mlp", LoadScope::BackboneOnly { head: "fc3" })
        .unwrap();
    assert_eq!(target.backbone.snapshot(), source.backbone.snapshot());
    assert_eq!(target.head.weight.as_vec(), head_before);
}

#[test]
fn wrong_shape_lists_every_problem_in_one_error() {
    let dir = temp_dir("ckpt-mismatch");
    let path = dir.join("m.safetensors");
    checkpoint::save(&path, &model(1, 8), "mlp", None).unwrap();
    let mut ten = model(1, 10);
    let err = Checkpoint::open(&path)
        .unwrap()
        .load_into(&mut ten, "mlp", LoadScope::Whole)
        .unwrap_err();
    let NnError::Mismatch { problems, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(problems.len(), 2, "{problems:?}");
    let line = err.to_string();
    assert!(
        line.contains("m.safetensors")
            && line.contains("fc3.weight has shape [8, 256], expected [10, 256]"),
        "{line}"
    );
    assert!(!line.contains('\n'));
}

#[test]
fn truncated_and_garbage_checkpoints_are_errors_naming_the_file() {
    let dir = temp_dir("ckpt-corrupt");
    let path = dir.join("m.safetensors");
    checkpoint::save(&path, &model(1, 8), "mlp", None).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    for cut in [0, 5, 8, 100, bytes.len() / 2, bytes.len() - 1] {
        let bad = dir.join(format!("cut{cut}.safetensors"));
        std::fs::write(&bad, &bytes[..cut]).unwrap();
        let err = Checkpoint::open(&bad).unwrap_err();
        assert!(matches!(err, NnError::Format { .. }), "cut {cut}: {err}");
        assert!(err.to_string().contains(&format!("cut{cut}.safetensors")));
    }
    let missing = Checkpoint::open(&dir.join("nope.safetensors")).unwrap_err();
    assert!(matches!(missing, NnError::Io { .. }));
}
