//! [`TextTokenizer`]: a Hugging Face `tokenizer.json` through the `tokenizers` crate, and
//! [`TokenBatch`]: token ids padded to the longest sequence of a batch.

use std::path::{Path, PathBuf};

use tokenizers::{Tokenizer, TruncationParams};

use crate::TextError;

/// Token ids of a batch of texts, padded on the right to the longest one.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBatch {
    /// Number of texts.
    pub batch: usize,
    /// Padded sequence length.
    pub seq: usize,
    /// `batch * seq` token ids, row-major, padding = the pad id.
    pub ids: Vec<u32>,
    /// `batch * seq` flags: 1 for a real token, 0 for padding.
    pub mask: Vec<u8>,
}

impl TokenBatch {
    /// Real (unpadded) length of sequence `b`.
    pub fn length(&self, b: usize) -> usize {
        self.mask[b * self.seq..(b + 1) * self.seq]
            .iter()
            .map(|&m| m as usize)
            .sum()
    }
}

/// A tokenizer read from `tokenizer.json`, truncating to `max_len` tokens (special tokens
/// included) and padding per batch, not to a fixed length.
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    path: PathBuf,
    pad_id: u32,
    max_len: usize,
}

impl std::fmt::Debug for TextTokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TextTokenizer")
            .field("path", &self.path)
            .field("pad_id", &self.pad_id)
            .field("max_len", &self.max_len)
            .finish()
    }
}

impl TextTokenizer {
    /// Loads `tokenizer.json`. Sequences are truncated to the file's own truncation length
    /// (128 for MiniLM) or `max_positions`, whichever is smaller; the file's fixed-length
    /// padding is replaced by padding to the longest sequence of each batch.
    pub fn from_file(path: &Path, max_positions: usize) -> Result<Self, TextError> {
        if !path.exists() {
            return Err(TextError::MissingModelFile {
                path: path.to_path_buf(),
            });
        }
        let err = |reason: String| TextError::Tokenizer {
            path: path.to_path_buf(),
            reason,
        };
        let mut inner = Tokenizer::from_file(path).map_err(|e| err(e.to_string()))?;
        let pad_id = inner.get_padding().map(|p| p.pad_id).unwrap_or(0);
        let max_len = inner
            .get_truncation()
            .map(|t| t.max_length)
            .unwrap_or(max_positions)
            .min(max_positions);
        inner.with_padding(None);
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_len,
                ..Default::default()
            }))
            .map_err(|e| err(e.to_string()))?;
        Ok(Self {
            inner,
            path: path.to_path_buf(),
            pad_id,
            max_len,
        })
    }

    /// Longest sequence produced, in tokens.
    pub fn max_len(&self) -> usize {
        self.max_len
    }

    /// The padding id.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Token ids of one text, with the special tokens (`[CLS] ... [SEP]`).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, TextError> {
        let enc = self
            .inner
            .encode(text, true)
            .map_err(|e| TextError::Tokenizer {
                path: self.path.clone(),
                reason: e.to_string(),
            })?;
        Ok(enc.get_ids().to_vec())
    }

    /// Tokenises `texts` and pads them to the longest.
    pub fn encode_batch(&self, texts: &[&str]) -> Result<TokenBatch, TextError> {
        if texts.is_empty() {
            return Err(TextError::Invalid("cannot tokenise an empty batch".into()));
        }
        let seqs = texts
            .iter()
            .map(|t| self.encode(t))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(pad(&seqs, self.pad_id))
    }
}

/// Pads `seqs` on the right with `pad_id` to the longest of them.
pub fn pad(seqs: &[Vec<u32>], pad_id: u32) -> TokenBatch {
    let seq = seqs.iter().map(Vec::len).max().unwrap_or(0).max(1);
    let mut ids = vec![pad_id; seqs.len() * seq];
    let mut mask = vec![0u8; seqs.len() * seq];
    for (b, s) in seqs.iter().enumerate() {
        ids[b * seq..b * seq + s.len()].copy_from_slice(s);
        mask[b * seq..b * seq + s.len()].fill(1);
    }
    TokenBatch {
        batch: seqs.len(),
        seq,
        ids,
        mask,
    }
}
