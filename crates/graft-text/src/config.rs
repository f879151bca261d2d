//! [`BertConfig`]: the subset of a Hugging Face `config.json` a BERT encoder needs.

use std::path::Path;

use serde::Deserialize;

use crate::TextError;

/// BERT hyper-parameters, read from `config.json` (Hugging Face names).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BertConfig {
    /// Vocabulary size (rows of the word embedding).
    pub vocab_size: usize,
    /// Width of every hidden state.
    pub hidden_size: usize,
    /// Number of transformer blocks.
    pub num_hidden_layers: usize,
    /// Attention heads per block (`hidden_size` must be a multiple).
    pub num_attention_heads: usize,
    /// Width of the feed-forward layer.
    pub intermediate_size: usize,
    /// Rows of the position embedding (longest sequence).
    pub max_position_embeddings: usize,
    /// Rows of the token-type embedding.
    pub type_vocab_size: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f64,
    /// Feed-forward activation; only `gelu` (the exact, erf-based one) is supported.
    pub hidden_act: String,
    /// Padding token id.
    #[serde(default)]
    pub pad_token_id: usize,
    /// Position encoding; only `absolute` is supported.
    #[serde(default = "absolute")]
    pub position_embedding_type: String,
}

fn absolute() -> String {
    "absolute".into()
}

impl BertConfig {
    /// Reads and checks `config.json`.
    pub fn from_file(path: &Path) -> Result<Self, TextError> {
        if !path.exists() {
            return Err(TextError::MissingModelFile {
                path: path.to_path_buf(),
            });
        }
        let bytes = std::fs::read(path).map_err(TextError::io("read", path))?;
        let config: BertConfig = serde_json::from_slice(&bytes).map_err(|e| TextError::Config {
            path: path.to_path_buf(),
            reason: format!("not a BERT config.json: {e}"),
        })?;
        config.validate().map_err(|reason| TextError::Config {
            path: path.to_path_buf(),
            reason,
        })?;
        Ok(config)
    }

    /// Checks that graft can run this configuration.
    pub fn validate(&self) -> Result<(), String> {
        if self.hidden_act != "gelu" {
            return Err(format!(
                "hidden_act {:?} is not supported (only \"gelu\")",
                self.hidden_act
            ));
        }
        if self.position_embedding_type != "absolute" {
            return Err(format!(
                "position_embedding_type {:?} is not supported (only \"absolute\")",
                self.position_embedding_type
            ));
        }
        let sizes = [
            self.vocab_size,
            self.hidden_size,
            self.num_hidden_layers,
            self.num_attention_heads,
            self.intermediate_size,
            self.max_position_embeddings,
            self.type_vocab_size,
        ];
        if sizes.iter().any(|&s| s == 0 || s > 1 << 20) {
            return Err(format!("implausible sizes in config: {sizes:?}"));
        }
        if self.hidden_size % self.num_attention_heads != 0 {
            return Err(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if !(self.layer_norm_eps > 0.0 && self.layer_norm_eps < 1.0) {
            return Err(format!(
                "layer_norm_eps {} out of range",
                self.layer_norm_eps
            ));
        }
        Ok(())
    }

    /// Width of one attention head.
    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}
