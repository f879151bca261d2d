//! [`BertEncoder`]: BERT as a dfdx graph (embeddings, post-LayerNorm blocks with masked
//! self-attention and an exact-GELU feed-forward), generic over the tape so the top blocks
//! can be fine-tuned.
//!
//! Hidden states are kept as `(batch * seq, hidden)` matrices; attention reshapes them to
//! `(batch, heads, seq, head_dim)` and back.

use dfdx::shapes::{Axes2, Axes4, Axis, HasShape};
use dfdx::tensor::{Cpu, NoneTape, Tape, Tensor, TensorFromVec};
use dfdx::tensor_ops::{BroadcastTo, GatherTo, PermuteTo, ReshapeTo, SumTo, TryMatMul};

use crate::config::BertConfig;
use crate::tokenize::TokenBatch;
use crate::TextError;

/// A matrix on tape `T`.
pub type Matrix<T = NoneTape> = Tensor<(usize, usize), f32, Cpu, T>;
/// A vector (no tape: parameters only).
pub type Vector = Tensor<(usize,), f32, Cpu>;

/// Added to the attention score of a padding key: `exp` of it is exactly 0 in f32, as with
/// PyTorch's `finfo.min`.
const MASKED: f32 = -1.0e9;

/// `Linear(in -> out)` stored as PyTorch does: `weight` is `(out, in)`.
#[derive(Debug, Clone)]
pub struct Linear {
    /// `(out, in)`.
    pub weight: Matrix,
    /// `(out,)`.
    pub bias: Vector,
}

impl Linear {
    /// `x W^T + b` for `x` of shape `(n, in)`.
    pub fn forward<T: Tape<f32, Cpu>>(&self, x: Matrix<T>) -> Matrix<T> {
        let w = self
            .weight
            .retaped::<T>()
            .permute::<(usize, usize), Axes2<1, 0>>();
        let y = x.matmul(w);
        let shape = *y.shape();
        y + self
            .bias
            .retaped::<T>()
            .broadcast_like::<_, Axis<0>>(&shape)
    }
}

/// LayerNorm over the last axis with a learned scale and shift.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    /// Scale (`gamma`).
    pub weight: Vector,
    /// Shift (`beta`).
    pub bias: Vector,
    /// Added to the variance.
    pub eps: f64,
}

impl LayerNorm {
    /// Normalises every row of `x` (population variance, as PyTorch).
    pub fn forward<T: Tape<f32, Cpu>>(&self, x: Matrix<T>) -> Matrix<T> {
        let shape = *x.shape();
        let y = x.normalize::<Axis<1>>(self.eps);
        y * self
            .weight
            .retaped::<T>()
            .broadcast_like::<_, Axis<0>>(&shape)
            + self
                .bias
                .retaped::<T>()
                .broadcast_like::<_, Axis<0>>(&shape)
    }
}

/// Word, position and token-type embeddings, summed and normalised.
#[derive(Debug, Clone)]
pub struct Embeddings {
    /// `(vocab, hidden)`.
    pub word: Matrix,
    /// `(max_positions, hidden)`.
    pub position: Matrix,
    /// `(type_vocab, hidden)`.
    pub token_type: Matrix,
    /// `embeddings.LayerNorm`.
    pub norm: LayerNorm,
}

/// One post-LayerNorm transformer block.
#[derive(Debug, Clone)]
pub struct BertLayer {
    /// `attention.self.query`.
    pub query: Linear,
    /// `attention.self.key`.
    pub key: Linear,
    /// `attention.self.value`.
    pub value: Linear,
    /// `attention.output.dense`.
    pub attention_out: Linear,
    /// `attention.output.LayerNorm`.
    pub attention_norm: LayerNorm,
    /// `intermediate.dense`.
    pub intermediate: Linear,
    /// `output.dense`.
    pub output: Linear,
    /// `output.LayerNorm`.
    pub output_norm: LayerNorm,
}

/// The six linear projections of a block, by their place in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Proj {
    /// `attention.self.query`.
    Query,
    /// `attention.self.key`.
    Key,
    /// `attention.self.value`.
    Value,
    /// `attention.output.dense`.
    AttentionOut,
    /// `intermediate.dense`.
    Intermediate,
    /// `output.dense`.
    Output,
}

impl Proj {
    /// Every projection, in block order.
    pub const ALL: [Proj; 6] = [
        Proj::Query,
        Proj::Key,
        Proj::Value,
        Proj::AttentionOut,
        Proj::Intermediate,
        Proj::Output,
    ];

    /// The module path inside `encoder.layer.N` (Hugging Face's names).
    pub fn path(self) -> &'static str {
        match self {
            Proj::Query => "attention.self.query",
            Proj::Key => "attention.self.key",
            Proj::Value => "attention.self.value",
            Proj::AttentionOut => "attention.output.dense",
            Proj::Intermediate => "intermediate.dense",
            Proj::Output => "output.dense",
        }
    }

    /// Position in [`Proj::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

impl BertLayer {
    /// The projection `p`.
    pub fn linear(&self, p: Proj) -> &Linear {
        match p {
            Proj::Query => &self.query,
            Proj::Key => &self.key,
            Proj::Value => &self.value,
            Proj::AttentionOut => &self.attention_out,
            Proj::Intermediate => &self.intermediate,
            Proj::Output => &self.output,
        }
    }

    /// The projection `p`, mutably.
    pub fn linear_mut(&mut self, p: Proj) -> &mut Linear {
        match p {
            Proj::Query => &mut self.query,
            Proj::Key => &mut self.key,
            Proj::Value => &mut self.value,
            Proj::AttentionOut => &mut self.attention_out,
            Proj::Intermediate => &mut self.intermediate,
            Proj::Output => &mut self.output,
        }
    }

    /// Self-attention over the real tokens (padding keys masked), residual and LayerNorm,
    /// then the GELU feed-forward, residual and LayerNorm. `x` is `(batch * seq, hidden)`.
    pub fn forward<T: Tape<f32, Cpu>>(
        &self,
        heads: usize,
        x: Matrix<T>,
        input: &EncoderInput,
    ) -> Matrix<T> {
        block_forward(
            heads,
            x,
            input,
            |p, x| self.linear(p).forward(x),
            (&self.attention_norm, &self.output_norm),
        )
    }
}

/// One post-LayerNorm block whose projections are computed by `linear` (a plain
/// [`Linear`], or a frozen one with a LoRA adapter): the attention and feed-forward of
/// [`BertLayer::forward`]. `norms` are the attention and output LayerNorms.
pub fn block_forward<T: Tape<f32, Cpu>>(
    heads: usize,
    x: Matrix<T>,
    input: &EncoderInput,
    mut linear: impl FnMut(Proj, Matrix<T>) -> Matrix<T>,
    norms: (&LayerNorm, &LayerNorm),
) -> Matrix<T> {
    let (b, s) = (input.batch, input.seq);
    let h = x.shape().1;
    let hd = h / heads;
    let split = |t: Matrix<T>| {
        t.reshape_like(&(b, s, heads, hd))
            .permute::<(usize, usize, usize, usize), Axes4<0, 2, 1, 3>>()
    };
    let q = split(linear(Proj::Query, x.retaped::<T>()));
    let k = linear(Proj::Key, x.retaped::<T>())
        .reshape_like(&(b, s, heads, hd))
        .permute::<(usize, usize, usize, usize), Axes4<0, 2, 3, 1>>();
    let v = split(linear(Proj::Value, x.retaped::<T>()));
    let scores = q.matmul(k) * (1.0 / (hd as f32).sqrt());
    let shape = *scores.shape();
    let scores = scores
        + input
            .mask
            .retaped::<T>()
            .broadcast_like::<_, Axes2<1, 2>>(&shape);
    let probs = scores.softmax::<Axis<3>>();
    let ctx = probs
        .matmul(v)
        .permute::<(usize, usize, usize, usize), Axes4<0, 2, 1, 3>>()
        .reshape_like(&(b * s, h));
    let a = norms.0.forward(linear(Proj::AttentionOut, ctx) + x);
    let inter = linear(Proj::Intermediate, a.retaped::<T>()).accurate_gelu();
    let f = linear(Proj::Output, inter);
    norms.1.forward(f + a)
}

/// The inputs of one batch as tensors: ids, positions, the additive attention mask and the
/// mean-pooling matrix.
#[derive(Debug, Clone)]
pub struct EncoderInput {
    /// Texts in the batch.
    pub batch: usize,
    /// Padded length.
    pub seq: usize,
    ids: Tensor<(usize,), usize, Cpu>,
    positions: Tensor<(usize,), usize, Cpu>,
    types: Tensor<(usize,), usize, Cpu>,
    /// `(batch, seq)`: 0 for a real key, a large negative number for padding.
    mask: Matrix,
    /// `(batch, batch * seq)`: `1 / length` at the real tokens of each text, else 0.
    pool: Matrix,
}

impl EncoderInput {
    /// Checks `tokens` against `config` and builds the tensors.
    pub fn new(dev: &Cpu, config: &BertConfig, tokens: &TokenBatch) -> Result<Self, TextError> {
        let (b, s) = (tokens.batch, tokens.seq);
        if b == 0 || s == 0 || tokens.ids.len() != b * s || tokens.mask.len() != b * s {
            return Err(TextError::Invalid(format!(
                "token batch of {b} x {s} holds {} ids and {} mask flags",
                tokens.ids.len(),
                tokens.mask.len()
            )));
        }
        if s > config.max_position_embeddings {
            return Err(TextError::Invalid(format!(
                "sequence of {s} tokens is longer than the model's {} positions",
                config.max_position_embeddings
            )));
        }
        if let Some(&bad) = tokens
            .ids
            .iter()
            .find(|&&i| i as usize >= config.vocab_size)
        {
            return Err(TextError::Invalid(format!(
                "token id {bad} is outside the vocabulary of {}",
                config.vocab_size
            )));
        }
        let ids = tokens.ids.iter().map(|&i| i as usize).collect();
        let positions = (0..b).flat_map(|_| 0..s).collect();
        let mask = tokens
            .mask
            .iter()
            .map(|&m| if m != 0 { 0.0 } else { MASKED })
            .collect();
        let mut pool = vec![0.0f32; b * b * s];
        for r in 0..b {
            let len = tokens.length(r).max(1) as f32;
            for j in 0..s {
                if tokens.mask[r * s + j] != 0 {
                    pool[r * b * s + r * s + j] = 1.0 / len;
                }
            }
        }
        Ok(Self {
            batch: b,
            seq: s,
            ids: dev.tensor_from_vec(ids, (b * s,)),
            positions: dev.tensor_from_vec(positions, (b * s,)),
            types: dev.tensor_from_vec(vec![0usize; b * s], (b * s,)),
            mask: dev.tensor_from_vec(mask, (b, s)),
            pool: dev.tensor_from_vec(pool, (b, b * s)),
        })
    }
}

impl EncoderInput {
    /// Mean of `hidden` (`(batch * seq, hidden)`) over each text's real tokens,
    /// `(batch, hidden)`.
    pub fn mean_pool<T: Tape<f32, Cpu>>(&self, hidden: Matrix<T>) -> Matrix<T> {
        self.pool.retaped::<T>().matmul(hidden)
    }
}

/// The whole encoder: embeddings and `num_hidden_layers` blocks (the pooler is not part of
/// it: sentence embeddings are mean-pooled).
#[derive(Debug, Clone)]
pub struct BertEncoder {
    /// The configuration the weights were checked against.
    pub config: BertConfig,
    /// The embedding layer.
    pub embeddings: Embeddings,
    /// The blocks, bottom first.
    pub layers: Vec<BertLayer>,
    /// The device (seeded CPU).
    pub dev: Cpu,
}

impl BertEncoder {
    /// The input tensors for `tokens`.
    pub fn input(&self, tokens: &TokenBatch) -> Result<EncoderInput, TextError> {
        EncoderInput::new(&self.dev, &self.config, tokens)
    }

    /// Embedding output, `(batch * seq, hidden)`.
    pub fn embed<T: Tape<f32, Cpu>>(&self, input: &EncoderInput) -> Matrix<T> {
        let e = &self.embeddings;
        let rows = |table: &Matrix, idx: &Tensor<(usize,), usize, Cpu>| -> Matrix<T> {
            table.retaped::<T>().gather(idx.clone())
        };
        let x = rows(&e.word, &input.ids)
            + rows(&e.position, &input.positions)
            + rows(&e.token_type, &input.types);
        e.norm.forward(x)
    }

    /// Runs block `layer` on `x` (`(batch * seq, hidden)`).
    pub fn block<T: Tape<f32, Cpu>>(
        &self,
        layer: usize,
        x: Matrix<T>,
        input: &EncoderInput,
    ) -> Matrix<T> {
        self.layers[layer].forward(self.config.num_attention_heads, x, input)
    }

    /// Runs blocks `from..to` on `x`.
    pub fn blocks<T: Tape<f32, Cpu>>(
        &self,
        range: std::ops::Range<usize>,
        mut x: Matrix<T>,
        input: &EncoderInput,
    ) -> Matrix<T> {
        for i in range {
            x = self.block(i, x, input);
        }
        x
    }

    /// Last hidden states of the whole encoder, `(batch * seq, hidden)`, without a tape.
    pub fn forward(&self, input: &EncoderInput) -> Matrix {
        let x = self.embed::<NoneTape>(input);
        self.blocks(0..self.layers.len(), x, input)
    }

    /// Mean over the real tokens of each text, `(batch, hidden)`.
    pub fn mean_pool<T: Tape<f32, Cpu>>(
        &self,
        hidden: Matrix<T>,
        input: &EncoderInput,
    ) -> Matrix<T> {
        input.mean_pool(hidden)
    }

    /// A constant matrix on this encoder's device.
    pub fn constant(&self, values: Vec<f32>, rows: usize, cols: usize) -> Matrix {
        self.dev.tensor_from_vec(values, (rows, cols))
    }
}

/// Each row of `x` divided by its Euclidean norm (rows of zeros stay zero), on the tape.
pub fn l2_normalize<T: Tape<f32, Cpu>>(x: Matrix<T>) -> Matrix<T> {
    let shape = *x.shape();
    let norm = x.retaped::<T>().square().sum::<(usize,), Axis<1>>() + 1e-24;
    x / norm.sqrt().broadcast_like::<_, Axis<1>>(&shape)
}
