//! `graft transfer --protocol fortunes`: one parameter-efficient run (`lora` or `bitfit`) on
//! a k-shot draw, evaluated once on the test split, its trained parts written to a folder.
//!
//! `lora` writes the adapter as Hugging Face PEFT does ([`LoraAdapter`], the head in
//! `modules_to_save`); `bitfit` writes `bitfit_model.safetensors`: the trained biases and
//! LayerNorms under MiniLM's own tensor names and the head as `classifier.*`
//! ([`save_bitfit`]). [`load_adapted`] reads either folder back onto the base model.

use std::path::{Path, PathBuf};
use std::time::Instant;

use dfdx::shapes::HasShape;
use dfdx::tensor::TensorFromVec;
use safetensors::{Dtype, SafeTensors};

use crate::adapter::{LoraAdapter, CONFIG_FILE, HEAD_MODULE};
use crate::bert::{BertEncoder, LayerNorm, Proj};
use crate::head::LinearHead;
use crate::minilm::MiniLm;
use crate::peft::{train_peft, EmbeddingSums, PeftConfig, PeftMethod, PeftNet};
use crate::strategy::TextStrategy;
use crate::TextError;

/// `bitfit`'s weights file.
pub const BITFIT_FILE: &str = "bitfit_model.safetensors";

/// One `fortunes` transfer run.
#[derive(Debug, Clone)]
pub struct TextTransferConfig {
    /// `lora:R:A` or `bitfit`.
    pub strategy: TextStrategy,
    /// Labelled texts per class.
    pub k: usize,
    /// Seed of the k-shot draw, initial values, dropout and batch order.
    pub seed: u64,
    /// Folder with the fortune files.
    pub fortunes_dir: PathBuf,
    /// MiniLM's folder.
    pub model_dir: PathBuf,
    /// Imported data sets.
    pub cache_dir: PathBuf,
    /// Receives the adapter (or bitfit) folder and `transfer.json`.
    pub out: PathBuf,
    /// Training settings (the seed is replaced by `seed`).
    pub peft: PeftConfig,
    /// Projections `lora` adapts.
    pub lora_targets: Vec<Proj>,
    /// Dropout on the adapters' input.
    pub lora_dropout: f32,
    /// Texts per batch when embedding.
    pub embed_batch: usize,
}

/// What a run did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TextTransferOutcome {
    /// The strategy's name.
    pub strategy: String,
    /// Test accuracy (one evaluation).
    pub accuracy: f64,
    /// Test texts.
    pub test_examples: usize,
    /// Trained parameters, the head included.
    pub trainable_parameters: usize,
    /// Parameters of the whole model (encoder and head).
    pub total_parameters: usize,
    /// Bytes written to the output folder (what must be stored per target task).
    pub stored_bytes: u64,
    /// Training seconds.
    pub train_seconds: f64,
    /// The output folder.
    pub out: PathBuf,
}

fn encoder_parameters(e: &BertEncoder) -> usize {
    let emb = &e.embeddings;
    let n = |s: usize| s;
    let mut total = n(emb.word.shape().0 * emb.word.shape().1)
        + emb.position.shape().0 * emb.position.shape().1
        + emb.token_type.shape().0 * emb.token_type.shape().1
        + 2 * emb.norm.weight.shape().0;
    for l in &e.layers {
        for p in Proj::ALL {
            let lin = l.linear(p);
            let (o, i) = *lin.weight.shape();
            total += o * i + o;
        }
        total += 2 * l.attention_norm.weight.shape().0 + 2 * l.output_norm.weight.shape().0;
    }
    total
}

/// Trains `cfg.strategy` on a k-shot draw of `fortunes`, evaluates it once on the test split
/// and writes its trained parts to `cfg.out`.
pub fn transfer_fortunes(cfg: &TextTransferConfig) -> Result<TextTransferOutcome, TextError> {
    let method = cfg
        .strategy
        .peft_method(&cfg.lora_targets, cfg.lora_dropout)
        .ok_or_else(|| {
            TextError::Invalid(format!(
                "graft transfer --protocol fortunes runs lora[:RANK[:ALPHA]] or bitfit, not {} \
                 (graft sweep --protocol fortunes runs every strategy)",
                cfg.strategy.name()
            ))
        })?;
    let ds = crate::fortunes::open(&cfg.fortunes_dir, &cfg.cache_dir)?;
    let (pool, test_view) = crate::fortunes::pool_and_test(&ds)?;
    let classes = ds.class_names().len();
    let model = MiniLm::open(&cfg.model_dir)?;
    let shot = pool.k_shot(cfg.k, cfg.seed)?;
    let texts = shot.texts()?;
    let pcfg = PeftConfig {
        seed: cfg.seed,
        ..cfg.peft
    };
    let start = Instant::now();
    let sums = EmbeddingSums::new(&model.encoder);
    let out = train_peft(
        &model,
        &sums,
        &texts,
        shot.labels(),
        classes,
        method,
        &pcfg,
        &mut |_, _, _| Ok(()),
    )?;
    let train_seconds = start.elapsed().as_secs_f64();
    let test_texts = test_view.texts()?;
    let pred = crate::peft::predict(&model, &out.net, &test_texts, cfg.embed_batch)?;
    let hits = pred
        .iter()
        .zip(test_view.labels())
        .filter(|(p, &l)| **p == l as usize)
        .count();
    let accuracy = hits as f64 / test_texts.len().max(1) as f64;
    let base_name = model.dir.display().to_string();
    match &out.net.method {
        PeftMethod::Lora(_) => LoraAdapter::from_net(&out.net, &base_name)?.save(&cfg.out)?,
        PeftMethod::BitFit => save_bitfit(&out.net, &cfg.out)?,
    }
    let mut stored_bytes = 0;
    for e in std::fs::read_dir(&cfg.out).map_err(TextError::io("read", &cfg.out))? {
        let e = e.map_err(TextError::io("read", &cfg.out))?;
        stored_bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
    }
    let outcome = TextTransferOutcome {
        strategy: cfg.strategy.name(),
        accuracy,
        test_examples: test_texts.len(),
        trainable_parameters: out.trainable,
        total_parameters: encoder_parameters(&model.encoder) + (model.dim() + 1) * classes,
        stored_bytes,
        train_seconds,
        out: cfg.out.clone(),
    };
    let json =
        serde_json::to_vec_pretty(&outcome).map_err(|e| TextError::Invalid(e.to_string()))?;
    let path = cfg.out.join("transfer.json");
    graft_nn::checkpoint::write_atomically(&path, &json).map_err(|e| TextError::Weights {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    Ok(outcome)
}

fn norm_names(prefix: &str) -> [String; 2] {
    [format!("{prefix}.weight"), format!("{prefix}.bias")]
}

/// Writes `bitfit`'s trained tensors (every bias and LayerNorm, by MiniLM's names) and the
/// head (`classifier.weight`, `classifier.bias`) to `dir/bitfit_model.safetensors`.
pub fn save_bitfit(net: &PeftNet, dir: &Path) -> Result<(), TextError> {
    std::fs::create_dir_all(dir).map_err(TextError::io("create", dir))?;
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = Vec::new();
    let mut norm = |prefix: &str, n: &LayerNorm| {
        let [w, b] = norm_names(prefix);
        tensors.push((w, vec![n.weight.shape().0], n.weight.as_vec()));
        tensors.push((b, vec![n.bias.shape().0], n.bias.as_vec()));
    };
    norm("embeddings.LayerNorm", &net.embed_norm);
    for (i, l) in net.layers.iter().enumerate() {
        norm(
            &format!("encoder.layer.{i}.attention.output.LayerNorm"),
            &l.attention_norm,
        );
        norm(
            &format!("encoder.layer.{i}.output.LayerNorm"),
            &l.output_norm,
        );
    }
    for (i, l) in net.layers.iter().enumerate() {
        for (p, fl) in Proj::ALL.iter().zip(&l.linears) {
            tensors.push((
                format!("encoder.layer.{i}.{}.bias", p.path()),
                vec![fl.out],
                fl.bias.as_vec(),
            ));
        }
    }
    let h = net.linear_head();
    tensors.push((
        format!("{HEAD_MODULE}.weight"),
        vec![h.classes, h.dim],
        h.weight,
    ));
    tensors.push((format!("{HEAD_MODULE}.bias"), vec![h.classes], h.bias));
    let path = dir.join(BITFIT_FILE);
    let bytes: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(n, s, v)| (n, s, v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let mut views = Vec::new();
    for (n, s, b) in &bytes {
        let v = safetensors::tensor::TensorView::new(Dtype::F32, s.clone(), b).map_err(|e| {
            TextError::Weights {
                path: path.clone(),
                reason: format!("{n}: {e}"),
            }
        })?;
        views.push((n.clone(), v));
    }
    let st = safetensors::serialize(views, None).map_err(|e| TextError::Weights {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    graft_nn::checkpoint::write_atomically(&path, &st).map_err(|e| TextError::Weights {
        path: path.clone(),
        reason: e.to_string(),
    })
}

/// `model` with the adapter folder `dir` applied: a LoRA adapter (`adapter_config.json`,
/// graft's or PEFT's) merged into its weights, or `bitfit`'s tensors put in place; and the
/// head the folder holds, if any.
pub fn load_adapted(model: &MiniLm, dir: &Path) -> Result<(MiniLm, Option<LinearHead>), TextError> {
    if dir.join(CONFIG_FILE).exists() {
        let adapter = LoraAdapter::load(dir)?;
        let merged = adapter.merge_into(&model.encoder)?;
        return Ok((model.adapted(merged, adapter.content_hash()), adapter.head));
    }
    let path = dir.join(BITFIT_FILE);
    if !path.exists() {
        return Err(TextError::Invalid(format!(
            "{} holds neither {CONFIG_FILE} (a LoRA adapter) nor {BITFIT_FILE}",
            dir.display()
        )));
    }
    let bytes = std::fs::read(&path).map_err(TextError::io("read", &path))?;
    let bad = |reason: String| TextError::Weights {
        path: path.clone(),
        reason,
    };
    let st = SafeTensors::deserialize(&bytes).map_err(|e| bad(e.to_string()))?;
    let read = |name: &str, shape: &[usize]| -> Result<Vec<f32>, TextError> {
        let v = st.tensor(name).map_err(|e| bad(format!("{name}: {e}")))?;
        if v.dtype() != Dtype::F32 || v.shape() != shape {
            return Err(bad(format!(
                "{name}: {:?} {:?}, expected F32 {shape:?}",
                v.dtype(),
                v.shape()
            )));
        }
        Ok(v.data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    };
    let mut enc = model.encoder.clone();
    let dev = enc.dev.clone();
    let set_norm = |n: &mut LayerNorm, prefix: &str| -> Result<(), TextError> {
        let len = n.weight.shape().0;
        let [w, b] = norm_names(prefix);
        n.weight = dev.tensor_from_vec(read(&w, &[len])?, (len,));
        n.bias = dev.tensor_from_vec(read(&b, &[len])?, (len,));
        Ok(())
    };
    set_norm(&mut enc.embeddings.norm, "embeddings.LayerNorm")?;
    for (i, l) in enc.layers.iter_mut().enumerate() {
        set_norm(
            &mut l.attention_norm,
            &format!("encoder.layer.{i}.attention.output.LayerNorm"),
        )?;
        set_norm(
            &mut l.output_norm,
            &format!("encoder.layer.{i}.output.LayerNorm"),
        )?;
        for p in Proj::ALL {
            let lin = l.linear_mut(p);
            let out = lin.bias.shape().0;
            let name = format!("encoder.layer.{i}.{}.bias", p.path());
            lin.bias = dev.tensor_from_vec(read(&name, &[out])?, (out,));
        }
    }
    let w = st
        .tensor(&format!("{HEAD_MODULE}.weight"))
        .map_err(|e| bad(e.to_string()))?;
    let (classes, dim) = match w.shape() {
        [c, d] => (*c, *d),
        s => return Err(bad(format!("{HEAD_MODULE}.weight has shape {s:?}"))),
    };
    let head = LinearHead {
        dim,
        classes,
        weight: read(&format!("{HEAD_MODULE}.weight"), &[classes, dim])?,
        bias: read(&format!("{HEAD_MODULE}.bias"), &[classes])?,
    };
    let tag = graft_data::checksum::fnv1a64(&[bytes.as_slice()]);
    Ok((model.adapted(enc, tag), Some(head)))
}
