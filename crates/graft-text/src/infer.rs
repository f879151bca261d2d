//! [`FastEncoder`]: the BERT forward pass for inference only (no tape), on plain `f32`
//! buffers: every linear layer is one GEMM with its bias fused (the `gemm` crate dfdx itself
//! calls, on all of rayon's threads); attention runs per text on its real keys only (padding
//! keys have weight exactly 0 in the masked softmax, so leaving them out is the same sum);
//! GELU, LayerNorm, softmax and pooling are single passes split over rayon's threads. For
//! sentence embeddings the batch is packed ([`Layout::packed`]): padding rows are never
//! computed, since no real token attends to them and pooling skips them.
//!
//! It computes what [`BertEncoder::forward`] computes (the tests check the two against each
//! other, and `tests/reference.rs` checks this one against Hugging Face's outputs); the dfdx
//! graph stays the path for training. GELU is the exact one, `x/2 (1 + erf(x/sqrt 2))`, with
//! `erf` from Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7), as PyTorch's
//! vectorised CPU kernel does.

use dfdx::shapes::HasShape;
use rayon::prelude::*;

use graft_nn::gemm::gemm_strided;

use crate::bert::{BertEncoder, LayerNorm, Linear};
use crate::tokenize::TokenBatch;

/// Rows per rayon task in the row-wise passes.
const ROWS_PER_TASK: usize = 16;

/// A linear layer's values: `weight` `(out, in)` row-major, `bias` `(out,)`.
#[derive(Debug, Clone)]
struct FastLinear {
    weight: Vec<f32>,
    bias: Vec<f32>,
    out: usize,
    inp: usize,
}

impl FastLinear {
    fn of(l: &Linear) -> Self {
        let (out, inp) = (l.weight.shape().0, l.weight.shape().1);
        Self {
            weight: l.weight.as_vec(),
            bias: l.bias.as_vec(),
            out,
            inp,
        }
    }

    /// `x W^T + b` for `x` of `rows` rows: one GEMM accumulating onto the broadcast bias.
    fn forward(&self, x: &[f32], rows: usize) -> Vec<f32> {
        let mut y = Vec::with_capacity(rows * self.out);
        for _ in 0..rows {
            y.extend_from_slice(&self.bias);
        }
        let threads = rayon::current_num_threads();
        let par = if threads > 1 {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        };
        gemm_strided(
            (rows, self.out, self.inp),
            (&mut y, self.out, true),
            (x, self.inp, 1),
            // W^T as the right operand: element (k, j) is W[j][k].
            (&self.weight, 1, self.inp),
            par,
        );
        y
    }
}

/// LayerNorm values.
#[derive(Debug, Clone)]
struct FastNorm {
    weight: Vec<f32>,
    bias: Vec<f32>,
    eps: f32,
}

impl FastNorm {
    fn of(n: &LayerNorm) -> Self {
        Self {
            weight: n.weight.as_vec(),
            bias: n.bias.as_vec(),
            eps: n.eps as f32,
        }
    }

    /// Normalises each row of `x` in place (population variance, as PyTorch), after adding
    /// the same row of `residual` when given.
    fn forward(&self, x: &mut [f32], residual: Option<&[f32]>) {
        let h = self.weight.len();
        x.par_chunks_mut(h * ROWS_PER_TASK)
            .enumerate()
            .for_each(|(task, rows)| {
                for (r, row) in rows.chunks_mut(h).enumerate() {
                    if let Some(res) = residual {
                        let at = (task * ROWS_PER_TASK + r) * h;
                        for (v, a) in row.iter_mut().zip(&res[at..at + h]) {
                            *v += a;
                        }
                    }
                    let mean = row.iter().sum::<f32>() / h as f32;
                    let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / h as f32;
                    let inv = 1.0 / (var + self.eps).sqrt();
                    for ((v, g), b) in row.iter_mut().zip(&self.weight).zip(&self.bias) {
                        *v = (*v - mean) * inv * g + b;
                    }
                }
            });
    }
}

/// One block's values.
#[derive(Debug, Clone)]
struct FastLayer {
    query: FastLinear,
    key: FastLinear,
    value: FastLinear,
    attention_out: FastLinear,
    attention_norm: FastNorm,
    intermediate: FastLinear,
    output: FastLinear,
    output_norm: FastNorm,
}

/// Where each text's rows are in a `(rows, hidden)` buffer of hidden states.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    /// Per text: first row, number of rows, number of real tokens (its first rows).
    segments: Vec<(usize, usize, usize)>,
    /// Per row: token id and position.
    tokens: Vec<(u32, usize)>,
}

impl Layout {
    /// Every text padded to the batch's length, as [`TokenBatch`] holds them (`batch * seq`
    /// rows; padding rows are computed too, as Hugging Face does).
    pub fn padded(tokens: &TokenBatch) -> Self {
        let s = tokens.seq;
        Self {
            segments: (0..tokens.batch)
                .map(|r| (r * s, s, tokens.length(r).max(1)))
                .collect(),
            tokens: (0..tokens.batch * s)
                .map(|i| (tokens.ids[i], i % s))
                .collect(),
        }
    }

    /// Only the real tokens of each text, one text after another (padding must be on the
    /// right, as [`crate::tokenize::pad`] puts it).
    pub fn packed(tokens: &TokenBatch) -> Self {
        let (mut segments, mut rows) = (Vec::new(), Vec::new());
        for r in 0..tokens.batch {
            let len = tokens.length(r).max(1);
            segments.push((rows.len(), len, len));
            rows.extend((0..len).map(|j| (tokens.ids[r * tokens.seq + j], j)));
        }
        Self {
            segments,
            tokens: rows,
        }
    }

    /// Rows of the buffer.
    pub fn rows(&self) -> usize {
        self.tokens.len()
    }

    /// Text `r`'s first row and number of real tokens.
    pub fn text(&self, r: usize) -> (usize, usize) {
        let (start, _, len) = self.segments[r];
        (start, len)
    }
}

/// The encoder's values for [`FastEncoder::forward`]: a copy of a [`BertEncoder`]'s
/// parameters taken when it is built.
#[derive(Debug, Clone)]
pub struct FastEncoder {
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    norm: FastNorm,
    layers: Vec<FastLayer>,
    hidden: usize,
    heads: usize,
}

impl FastEncoder {
    /// Copies `encoder`'s parameters (later changes to `encoder` are not seen).
    pub fn new(encoder: &BertEncoder) -> Self {
        let e = &encoder.embeddings;
        let layers = encoder
            .layers
            .iter()
            .map(|l| FastLayer {
                query: FastLinear::of(&l.query),
                key: FastLinear::of(&l.key),
                value: FastLinear::of(&l.value),
                attention_out: FastLinear::of(&l.attention_out),
                attention_norm: FastNorm::of(&l.attention_norm),
                intermediate: FastLinear::of(&l.intermediate),
                output: FastLinear::of(&l.output),
                output_norm: FastNorm::of(&l.output_norm),
            })
            .collect();
        Self {
            word: e.word.as_vec(),
            position: e.position.as_vec(),
            token_type: e.token_type.as_vec(),
            norm: FastNorm::of(&e.norm),
            layers,
            hidden: encoder.config.hidden_size,
            heads: encoder.config.num_attention_heads,
        }
    }

    /// Number of blocks.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// The embedding output for `layout`, `(rows, hidden)` row-major. The token ids must
    /// have been checked against the configuration (as [`BertEncoder::input`] does).
    pub fn embed(&self, layout: &Layout) -> Vec<f32> {
        let h = self.hidden;
        let mut x = vec![0.0f32; layout.rows() * h];
        for (row, &(id, pos)) in x.chunks_mut(h).zip(&layout.tokens) {
            let word = &self.word[id as usize * h..(id as usize + 1) * h];
            let position = &self.position[pos * h..(pos + 1) * h];
            for (j, v) in row.iter_mut().enumerate() {
                *v = word[j] + position[j] + self.token_type[j];
            }
        }
        self.norm.forward(&mut x, None);
        x
    }

    /// Runs blocks `range` on `x` (`(rows, hidden)` for `layout`), in place.
    pub fn blocks(&self, range: std::ops::Range<usize>, x: &mut Vec<f32>, layout: &Layout) {
        for layer in &self.layers[range] {
            *x = self.block(layer, x, layout);
        }
    }

    /// Last hidden states of the padded batch, `(batch * seq, hidden)` row-major.
    pub fn forward(&self, tokens: &TokenBatch) -> Vec<f32> {
        let layout = Layout::padded(tokens);
        let mut x = self.embed(&layout);
        self.blocks(0..self.layers.len(), &mut x, &layout);
        x
    }

    /// Sentence embeddings of a token batch (the packed layout), `(batch, hidden)`.
    pub fn embed_sentences(&self, tokens: &TokenBatch) -> Vec<f32> {
        let layout = Layout::packed(tokens);
        let mut x = self.embed(&layout);
        self.blocks(0..self.layers.len(), &mut x, &layout);
        self.sentence_embeddings(&x, &layout)
    }

    fn block(&self, l: &FastLayer, x: &[f32], layout: &Layout) -> Vec<f32> {
        let rows = layout.rows();
        let (q, k, v) = (
            l.query.forward(x, rows),
            l.key.forward(x, rows),
            l.value.forward(x, rows),
        );
        let ctx = self.attention(&q, &k, &v, layout);
        let mut a = l.attention_out.forward(&ctx, rows);
        l.attention_norm.forward(&mut a, Some(x));
        let mut f = l.intermediate.forward(&a, rows);
        f.par_chunks_mut(4096)
            .for_each(|c| c.iter_mut().for_each(|v| *v = gelu(*v)));
        let mut out = l.output.forward(&f, rows);
        l.output_norm.forward(&mut out, Some(&a));
        out
    }

    /// Multi-head attention: each text's rows attend to its real tokens only.
    fn attention(&self, q: &[f32], k: &[f32], v: &[f32], layout: &Layout) -> Vec<f32> {
        let h = self.hidden;
        let hd = h / self.heads;
        let scale = 1.0 / (hd as f32).sqrt();
        let mut ctx = vec![0.0f32; layout.rows() * h];
        // Each text's rows of `ctx`, as disjoint mutable slices.
        let mut parts = Vec::with_capacity(layout.segments.len());
        let mut rest = ctx.as_mut_slice();
        for &(start, rows, keys) in &layout.segments {
            let (part, tail) = std::mem::take(&mut rest).split_at_mut(rows * h);
            parts.push((start, rows, keys, part));
            rest = tail;
        }
        parts.into_par_iter().for_each(|(start, rows, keys, out)| {
            let mut scores = vec![0.0f32; rows * keys];
            for head in 0..self.heads {
                let at = start * h + head * hd;
                // scores (rows x keys) = Q (rows x hd) K^T (hd x keys).
                gemm_strided(
                    (rows, keys, hd),
                    (&mut scores, keys, false),
                    (&q[at..], h, 1),
                    (&k[at..], 1, h),
                    gemm::Parallelism::None,
                );
                for row in scores.chunks_mut(keys) {
                    let max = row.iter().fold(f32::NEG_INFINITY, |m, &x| m.max(x)) * scale;
                    let mut sum = 0.0f32;
                    for x in row.iter_mut() {
                        *x = (*x * scale - max).exp();
                        sum += *x;
                    }
                    let inv = 1.0 / sum;
                    row.iter_mut().for_each(|x| *x *= inv);
                }
                // context (rows x hd) = P (rows x keys) V (keys x hd), into this head's columns.
                gemm_strided(
                    (rows, hd, keys),
                    (&mut out[head * hd..], h, false),
                    (&scores, keys, 1),
                    (&v[at..], h, 1),
                    gemm::Parallelism::None,
                );
            }
        });
        ctx
    }

    /// Mean over each text's real tokens of `hidden` (`(rows, hidden)` for `layout`), then
    /// L2 normalised (rows of zeros stay zero): `(batch, hidden)`.
    pub fn sentence_embeddings(&self, hidden: &[f32], layout: &Layout) -> Vec<f32> {
        let h = self.hidden;
        let mut out = vec![0.0f32; layout.segments.len() * h];
        for (row, &(start, _, keys)) in out.chunks_mut(h).zip(&layout.segments) {
            for t in hidden[start * h..(start + keys) * h].chunks(h) {
                row.iter_mut().zip(t).for_each(|(o, x)| *o += x);
            }
            let inv = 1.0 / keys as f32;
            row.iter_mut().for_each(|o| *o *= inv);
            let norm = (row.iter().map(|o| o * o).sum::<f32>() + 1e-24).sqrt();
            row.iter_mut().for_each(|o| *o /= norm);
        }
        out
    }
}

/// Exact GELU, `x/2 (1 + erf(x / sqrt 2))`.
fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2))
}

/// `erf` by Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7).
fn erf(x: f32) -> f32 {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [
        0.254_829_6,
        -0.284_496_74,
        1.421_413_7,
        -1.453_152,
        1.061_405_4,
    ];
    let ax = x.abs();
    let t = 1.0 / (1.0 + P * ax);
    let poly = ((((A[4] * t + A[3]) * t + A[2]) * t + A[1]) * t + A[0]) * t;
    let y = 1.0 - poly * (-ax * ax).exp();
    y.copysign(x)
}

#[cfg(test)]
pub(crate) mod tests;
