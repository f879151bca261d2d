//! graft's MiniLM against Hugging Face `transformers` (tests/data/minilm_ref.safetensors,
//! copied from shared/reference: 8 sentences, their ids, last hidden states and
//! sentence-transformers embeddings computed by PyTorch).
//!
//! Needs the model (`cargo xtask fetch minilm`); without it the test prints why it skipped,
//! unless `GRAFT_REQUIRE_MINILM=1`, which turns the skip into a failure (for CI).

use std::path::{Path, PathBuf};

use graft_text::MiniLm;
use safetensors::SafeTensors;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The model, or `None` (after saying why) when it has not been fetched.
pub fn model_or_skip(test: &str) -> Option<MiniLm> {
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

struct Reference {
    sentences: Vec<String>,
    ids: Vec<i64>,
    mask: Vec<i64>,
    seq: usize,
    hidden: Vec<f32>,
    embedding: Vec<f32>,
}

fn reference() -> Reference {
    let bytes = std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/minilm_ref.safetensors"),
    )
    .expect("tests/data/minilm_ref.safetensors");
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let sentences = meta.metadata().as_ref().unwrap()["sentences"]
        .lines()
        .map(str::to_string)
        .collect();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let i64s = |n: &str| -> Vec<i64> {
        st.tensor(n)
            .unwrap()
            .data()
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let f32s = |n: &str| -> Vec<f32> {
        st.tensor(n)
            .unwrap()
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    Reference {
        sentences,
        ids: i64s("input_ids"),
        mask: i64s("attention_mask"),
        seq: st.tensor("input_ids").unwrap().shape()[1],
        hidden: f32s("last_hidden_state"),
        embedding: f32s("embedding"),
    }
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum();
    let na: f64 = a.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[test]
fn minilm_matches_transformers() {
    let Some(model) = model_or_skip("minilm_matches_transformers") else {
        return;
    };
    let r = reference();
    assert_eq!(r.sentences.len(), 8);
    let texts: Vec<&str> = r.sentences.iter().map(String::as_str).collect();
    let tokens = model.tokenizer.encode_batch(&texts).unwrap();
    assert_eq!(tokens.seq, r.seq, "padded length");
    let ids: Vec<i64> = tokens.ids.iter().map(|&i| i as i64).collect();
    assert_eq!(ids, r.ids, "token ids");
    let mask: Vec<i64> = tokens.mask.iter().map(|&m| m as i64).collect();
    assert_eq!(mask, r.mask, "attention mask");

    let hidden = model.hidden_states(&tokens).unwrap();
    assert_eq!(hidden.len(), r.hidden.len());
    let max_err = hidden
        .iter()
        .zip(&r.hidden)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    println!("last_hidden_state max abs error {max_err:.3e}");
    assert!(max_err <= 1e-4, "last hidden state differs by {max_err}");

    let d = model.dim();
    let emb = model.embed_tokens(&tokens).unwrap();
    let min_cos = (0..8)
        .map(|i| cosine(&emb[i * d..(i + 1) * d], &r.embedding[i * d..(i + 1) * d]))
        .fold(1.0f64, f64::min);
    println!("sentence embedding min cosine {min_cos:.8}");
    assert!(min_cos >= 0.99999, "cosine {min_cos}");

    // Each sentence alone (no padding) and all of them through `embed_all` (length-sorted
    // batches of 3) give the same embeddings: padding is masked out.
    let all = model.embed_all(&texts, 3, |_| {}).unwrap();
    for i in 0..8 {
        let alone = model.embed(&texts[i..i + 1]).unwrap();
        let c = cosine(&alone, &r.embedding[i * d..(i + 1) * d]);
        assert!(c >= 0.99999, "sentence {i} alone: cosine {c}");
        let c = cosine(&all[i * d..(i + 1) * d], &r.embedding[i * d..(i + 1) * d]);
        assert!(c >= 0.99999, "sentence {i} in embed_all: cosine {c}");
    }
    assert_eq!(
        model.load_report.unused,
        vec![
            "embeddings.position_ids".to_string(),
            "pooler.dense.bias".to_string(),
            "pooler.dense.weight".to_string()
        ]
    );
}
