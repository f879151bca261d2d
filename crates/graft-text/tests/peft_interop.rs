//! LoRA on the real MiniLM, and interop with Hugging Face PEFT.
//!
//! `tests/data/peft_minilm` was made by PEFT 0.21.2 (`benches/peers/peft_lora.py make`): a
//! LoRA adapter (r = 4, lora_alpha = 8, query and value of every block) trained five Adam
//! steps so that every `lora_B` is nonzero, saved with `save_pretrained`, and the sentence
//! embeddings PEFT's model gives for the 8 sentences of `sentences.txt` (`embeddings.npy`).
//!
//! Needs the model (`cargo xtask fetch minilm`); without it each test prints why it skipped,
//! unless `GRAFT_REQUIRE_MINILM=1`, which turns the skip into a failure (for CI).

use std::path::{Path, PathBuf};

use graft_text::adapter::LoraAdapter;
use graft_text::bert::Proj;
use graft_text::peft::PeftNet;
use graft_text::peft::{embed_with, train_peft, EmbeddingSums, LoraSpec, PeftConfig, PeftMethod};
use graft_text::MiniLm;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn data() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/peft_minilm")
}

/// The model, or `None` (after saying why) when it has not been fetched.
fn model_or_skip(test: &str) -> Option<MiniLm> {
    let dir = graft_text::minilm::default_model_dir(&root());
    if !dir.join("model.safetensors").exists() {
        let msg = format!(
            "{test}: skipped: no MiniLM at {} (run `cargo xtask fetch minilm`)",
            dir.display()
        );
        if std::env::var("GRAFT_REQUIRE_MINILM").is_ok_and(|v| v == "1") {
            panic!("{msg}, and GRAFT_REQUIRE_MINILM=1");
        }
        eprintln!("{msg}");
        return None;
    }
    Some(MiniLm::open(&dir).expect("open MiniLM"))
}

fn sentences() -> Vec<String> {
    std::fs::read_to_string(data().join("sentences.txt"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// The adapter PEFT wrote loads (names, shapes, config) and gives PEFT's embeddings.
#[test]
fn peft_adapter_gives_peft_embeddings() {
    let adapter = LoraAdapter::load(&data()).expect("load PEFT's adapter");
    assert_eq!((adapter.rank, adapter.alpha), (4, 8.0));
    assert_eq!(adapter.weights.len(), 12, "query and value of 6 blocks");
    assert!(adapter
        .weights
        .keys()
        .all(|(_, p)| matches!(p, Proj::Query | Proj::Value)));
    assert!(adapter
        .weights
        .values()
        .all(|w| w.b.iter().any(|&v| v != 0.0)));
    assert!(adapter.head.is_none());
    let Some(model) = model_or_skip("peft_adapter_gives_peft_embeddings") else {
        return;
    };
    let expected = graft_data::read_npy(data().join("embeddings.npy")).unwrap();
    assert_eq!(expected.shape, vec![8, model.dim()]);
    let graft_data::NpyData::F32(expected) = expected.data else {
        panic!("embeddings.npy is not float32");
    };
    let texts = sentences();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let merged = adapter.merge_into(&model.encoder).unwrap();
    let adapted = model.adapted(merged, adapter.content_hash());
    let got = adapted.embed_all(&texts, 8, |_| {}).unwrap();
    let diff = max_diff(&got, &expected);
    eprintln!("max |graft - PEFT| = {diff:e}");
    assert!(
        diff <= 1e-4,
        "graft's embeddings differ from PEFT's by {diff}"
    );
    let base = model.embed_all(&texts, 8, |_| {}).unwrap();
    assert!(
        max_diff(&base, &expected) > 1e-3,
        "the adapter must change the embeddings for this test to mean anything"
    );
}

/// With `B = 0` (the initialisation) the adapted model's embeddings are the base model's,
/// bit for bit; a few training steps change only the adapters and the head, and the saved
/// adapter gives the trained network's embeddings back.
#[test]
fn lora_on_minilm_starts_at_the_base_model_and_round_trips() {
    let Some(model) = model_or_skip("lora_on_minilm_starts_at_the_base_model_and_round_trips")
    else {
        return;
    };
    let texts = sentences();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let spec = LoraSpec::new(4, 8.0);
    let fresh = PeftNet::new(&model.encoder, PeftMethod::Lora(spec.clone()), 4, 0);
    let base = model.embed_all(&texts, 8, |_| {}).unwrap();
    assert_eq!(embed_with(&model, &fresh, &texts, 8).unwrap(), base);

    let labels = [0u32, 0, 1, 1, 2, 3, 2, 3];
    let sums = EmbeddingSums::new(&model.encoder);
    let cfg = PeftConfig {
        steps: 3,
        batch: 4,
        ..PeftConfig::default()
    };
    let out = train_peft(
        &model,
        &sums,
        &texts,
        &labels,
        4,
        PeftMethod::Lora(spec),
        &cfg,
        &mut |_, _, _| Ok(()),
    )
    .unwrap();
    // 12 adapters of 4 x 384 + 384 x 4, and a 4 x 384 head with its bias.
    assert_eq!(out.trainable, 12 * 2 * 4 * 384 + 4 * 384 + 4);
    let adapter = LoraAdapter::from_net(&out.net, "all-MiniLM-L6-v2").unwrap();
    assert!(adapter
        .weights
        .values()
        .all(|w| w.b.iter().any(|&v| v != 0.0)));
    let dir = std::env::temp_dir().join(format!("graft-lora-minilm-{}", std::process::id()));
    adapter.save(&dir).unwrap();
    let back = LoraAdapter::load(&dir).unwrap();
    assert_eq!(back, adapter);
    let trained = embed_with(&model, &out.net, &texts, 8).unwrap();
    let loaded = model
        .adapted(
            back.merge_into(&model.encoder).unwrap(),
            back.content_hash(),
        )
        .embed_all(&texts, 8, |_| {})
        .unwrap();
    assert_eq!(trained, loaded);
    assert!(max_diff(&trained, &base) > 1e-5);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `bitfit` trains biases, LayerNorms and the head only; its saved folder loads back onto
/// the base model with the trained network's embeddings and head.
#[test]
fn bitfit_on_minilm_round_trips() {
    let Some(model) = model_or_skip("bitfit_on_minilm_round_trips") else {
        return;
    };
    let texts = sentences();
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let labels = [0u32, 0, 1, 1, 2, 3, 2, 3];
    let sums = EmbeddingSums::new(&model.encoder);
    let cfg = PeftConfig {
        steps: 2,
        batch: 4,
        ..PeftConfig::default()
    };
    let out = train_peft(
        &model,
        &sums,
        &texts,
        &labels,
        4,
        PeftMethod::BitFit,
        &cfg,
        &mut |_, _, _| Ok(()),
    )
    .unwrap();
    // Per block: 4 x 384 + 1536 + 384 projection biases, two LayerNorms (4 x 384); the
    // embeddings' LayerNorm (2 x 384); the head (4 x 384 + 4).
    assert_eq!(
        out.trainable,
        6 * (5 * 384 + 1536 + 4 * 384) + 2 * 384 + 4 * 384 + 4
    );
    let dir = std::env::temp_dir().join(format!("graft-bitfit-minilm-{}", std::process::id()));
    graft_text::transfer::save_bitfit(&out.net, &dir).unwrap();
    let (adapted, head) = graft_text::transfer::load_adapted(&model, &dir).unwrap();
    assert_eq!(head.unwrap(), out.net.linear_head());
    let trained = embed_with(&model, &out.net, &texts, 8).unwrap();
    assert_eq!(adapted.embed_all(&texts, 8, |_| {}).unwrap(), trained);
    let base = model.embed_all(&texts, 8, |_| {}).unwrap();
    assert!(max_diff(&trained, &base) > 1e-5);
    std::fs::remove_dir_all(&dir).unwrap();
}
