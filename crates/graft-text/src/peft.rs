//! `lora` and `bitfit` on MiniLM: every block on the tape, every weight matrix frozen.
//!
//! Each projection runs through [`frozen_linear`]: the frozen weight gets no gradient and
//! its forward keeps nothing for one; `lora` adds an adapter to the chosen projections
//! (`query` and `value` by default) and trains the adapters and the head; `bitfit` trains
//! every bias (the six projections' and the LayerNorms', the embeddings' LayerNorm
//! included), every LayerNorm scale, and the head. Trained models are evaluated through the
//! inference path ([`FastEncoder`](crate::FastEncoder)) on the merged encoder
//! ([`PeftNet::merged_encoder`]).

use std::sync::Arc;

use dfdx::losses::cross_entropy_with_logits_loss;
use dfdx::shapes::HasShape;
use dfdx::tensor::{Cpu, Gradients, Tape, TensorFromVec, Trace};
use dfdx::tensor_ops::Backward;
use graft_data::SplitMix64;

use crate::adam::{Adam, Trainable, TrainedTensors};
use crate::bert::{block_forward, l2_normalize, BertEncoder, EncoderInput, LayerNorm, Linear};
use crate::bert::{Matrix, Proj};
use crate::finetune::{check_one_label_each, one_hot, Shuffled};
use crate::head::LinearHead;
use crate::lora::{frozen_linear, Dropout, FrozenLinear, LoraParams};
use crate::minilm::MiniLm;
use crate::tokenize::TokenBatch;
use crate::TextError;

/// Where LoRA adapters go and how large they are.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraSpec {
    /// Rank `r`.
    pub rank: usize,
    /// `lora_alpha` (the update is scaled by `alpha / r`).
    pub alpha: f32,
    /// Dropout on the adapter input during training (PEFT's `lora_dropout`).
    pub dropout: f32,
    /// The adapted projections of every block.
    pub targets: Vec<Proj>,
}

impl LoraSpec {
    /// Adapters of rank `rank` on `query` and `value`, dropout 0.1.
    pub fn new(rank: usize, alpha: f32) -> Self {
        Self {
            rank,
            alpha,
            dropout: 0.1,
            targets: vec![Proj::Query, Proj::Value],
        }
    }
}

/// Parses `--lora-targets` (PEFT's module names): `query`, `key`, `value`, and `dense`, which
/// (as in PEFT, a suffix match) is every `*.dense` projection: `attention.output.dense`,
/// `intermediate.dense` and `output.dense`.
pub fn parse_targets(list: &str) -> Result<Vec<Proj>, TextError> {
    let mut out = Vec::new();
    for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let ps: &[Proj] = match name {
            "query" => &[Proj::Query],
            "key" => &[Proj::Key],
            "value" => &[Proj::Value],
            "dense" => &[Proj::AttentionOut, Proj::Intermediate, Proj::Output],
            other => {
                return Err(TextError::Invalid(format!(
                    "unknown LoRA target `{other}`: use query, key, value or dense"
                )))
            }
        };
        for p in ps {
            if !out.contains(p) {
                out.push(*p);
            }
        }
    }
    if out.is_empty() {
        return Err(TextError::Invalid("--lora-targets names no module".into()));
    }
    out.sort();
    Ok(out)
}

/// PEFT's `target_modules` for `targets` (`dense` for the three dense projections).
pub fn target_names(targets: &[Proj]) -> Vec<String> {
    let mut names: Vec<String> = targets
        .iter()
        .map(|p| match p {
            Proj::Query => "query",
            Proj::Key => "key",
            Proj::Value => "value",
            _ => "dense",
        })
        .map(String::from)
        .collect();
    names.dedup();
    names
}

/// Which parameter-efficient method.
#[derive(Debug, Clone, PartialEq)]
pub enum PeftMethod {
    /// LoRA adapters (and the head).
    Lora(LoraSpec),
    /// Every bias and LayerNorm (and the head).
    BitFit,
}

/// Settings of [`train_peft`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PeftConfig {
    /// Adam steps.
    pub steps: usize,
    /// Texts per step.
    pub batch: usize,
    /// Learning rate of the adapters (`lora`) or biases and LayerNorms (`bitfit`).
    pub lr: f32,
    /// Learning rate of the head.
    pub head_lr: f32,
    /// Seed of the adapters' and head's initial values, the dropout masks and the batch order.
    pub seed: u64,
}

impl Default for PeftConfig {
    fn default() -> Self {
        Self {
            steps: 30,
            batch: 16,
            lr: 1e-3,
            head_lr: 1e-2,
            seed: 0,
        }
    }
}

/// One block with frozen weights: its projections (with adapters where chosen) and norms.
#[derive(Debug, Clone)]
pub struct PeftLayer {
    /// The six projections, in [`Proj::ALL`] order.
    pub linears: Vec<FrozenLinear>,
    /// Their adapters, in the same order.
    pub adapters: Vec<Option<LoraParams>>,
    /// `attention.output.LayerNorm`.
    pub attention_norm: LayerNorm,
    /// `output.LayerNorm`.
    pub output_norm: LayerNorm,
}

/// MiniLM with frozen weights, adapters or trainable biases, and a linear head on the
/// L2-normalised mean-pooled states.
#[derive(Debug, Clone)]
pub struct PeftNet {
    /// The method.
    pub method: PeftMethod,
    /// `embeddings.LayerNorm` (trained by `bitfit`).
    pub embed_norm: LayerNorm,
    /// The blocks, bottom first.
    pub layers: Vec<PeftLayer>,
    /// The head.
    pub head: Linear,
    heads: usize,
}

/// Tensors that are copies of the encoder's, with their own ids (gradients of one run are
/// never another's).
fn fresh_norm(n: &LayerNorm) -> LayerNorm {
    let dev = n.weight.device().clone();
    let len = n.weight.shape().0;
    LayerNorm {
        weight: dev.tensor_from_vec(n.weight.as_vec(), (len,)),
        bias: dev.tensor_from_vec(n.bias.as_vec(), (len,)),
        eps: n.eps,
    }
}

impl PeftNet {
    /// The network for `method` on `encoder`, with a head of `classes` outputs (PyTorch's
    /// `Linear` initialisation) and adapters initialised as PEFT does, drawn from `seed`.
    pub fn new(encoder: &BertEncoder, method: PeftMethod, classes: usize, seed: u64) -> Self {
        let dev = &encoder.dev;
        let d = encoder.config.hidden_size;
        let mut rng = SplitMix64::new(seed);
        let bound = 1.0 / (d as f32).sqrt();
        let u = |rng: &mut SplitMix64| (2.0 * rng.next_f32() - 1.0) * bound;
        let w: Vec<f32> = (0..classes * d).map(|_| u(&mut rng)).collect();
        let b: Vec<f32> = (0..classes).map(|_| u(&mut rng)).collect();
        let head = Linear {
            weight: dev.tensor_from_vec(w, (classes, d)),
            bias: dev.tensor_from_vec(b, (classes,)),
        };
        let layers = encoder
            .layers
            .iter()
            .map(|l| {
                let linears: Vec<FrozenLinear> = Proj::ALL
                    .iter()
                    .map(|&p| FrozenLinear::of(l.linear(p)))
                    .collect();
                let adapters = Proj::ALL
                    .iter()
                    .zip(&linears)
                    .map(|(p, fl)| match &method {
                        PeftMethod::Lora(spec) if spec.targets.contains(p) => Some(
                            LoraParams::init(dev, fl.inp, fl.out, spec.rank, spec.alpha, &mut rng),
                        ),
                        _ => None,
                    })
                    .collect();
                PeftLayer {
                    linears,
                    adapters,
                    attention_norm: fresh_norm(&l.attention_norm),
                    output_norm: fresh_norm(&l.output_norm),
                }
            })
            .collect();
        Self {
            method,
            embed_norm: fresh_norm(&encoder.embeddings.norm),
            layers,
            head,
            heads: encoder.config.num_attention_heads,
        }
    }

    fn bitfit(&self) -> bool {
        matches!(self.method, PeftMethod::BitFit)
    }

    /// Logits of a batch whose embedding sums (before `embeddings.LayerNorm`) are `x`,
    /// `(batch * seq, hidden)`. `dropout_seed` turns on the adapters' dropout (training).
    pub fn forward<T: Tape<f32, Cpu>>(
        &self,
        x: Matrix<T>,
        input: &EncoderInput,
        dropout_seed: Option<u64>,
    ) -> Matrix<T> {
        let pooled = self.encode(x, input, dropout_seed);
        self.head.forward(l2_normalize(pooled))
    }

    /// Mean-pooled last hidden states (before L2 normalisation), `(batch, hidden)`.
    pub fn encode<T: Tape<f32, Cpu>>(
        &self,
        x: Matrix<T>,
        input: &EncoderInput,
        dropout_seed: Option<u64>,
    ) -> Matrix<T> {
        let p_drop = match &self.method {
            PeftMethod::Lora(spec) => spec.dropout,
            PeftMethod::BitFit => 0.0,
        };
        let bitfit = self.bitfit();
        let mut x = self.embed_norm.forward(x);
        for (li, l) in self.layers.iter().enumerate() {
            x = block_forward(
                self.heads,
                x,
                input,
                |p, x| {
                    let i = p.index();
                    let dropout = dropout_seed.map(|s| Dropout {
                        p: p_drop,
                        seed: SplitMix64::new(s ^ ((li * 8 + i) as u64).wrapping_mul(0x9e37))
                            .next_u64(),
                    });
                    frozen_linear(x, &l.linears[i], l.adapters[i].as_ref(), dropout, bitfit)
                },
                (&l.attention_norm, &l.output_norm),
            );
        }
        input.mean_pool(x)
    }

    /// `encoder` with this network's adapters merged into its weights (`W + (alpha/r) B A`)
    /// or its trained biases and LayerNorms in place: the inference path's model.
    pub fn merged_encoder(&self, encoder: &BertEncoder) -> BertEncoder {
        let mut out = encoder.clone();
        let dev = encoder.dev.clone();
        if self.bitfit() {
            out.embeddings.norm = fresh_norm(&self.embed_norm);
        }
        for (l, pl) in out.layers.iter_mut().zip(&self.layers) {
            for (&p, (fl, ad)) in Proj::ALL.iter().zip(pl.linears.iter().zip(&pl.adapters)) {
                let lin = l.linear_mut(p);
                if let Some(a) = ad {
                    let w = a.merged(&fl.weight, fl.out, fl.inp);
                    lin.weight = dev.tensor_from_vec(w, (fl.out, fl.inp));
                }
                if self.bitfit() {
                    lin.bias = dev.tensor_from_vec(fl.bias.as_vec(), (fl.out,));
                }
            }
            if self.bitfit() {
                l.attention_norm = fresh_norm(&pl.attention_norm);
                l.output_norm = fresh_norm(&pl.output_norm);
            }
        }
        out
    }

    /// The head as a [`LinearHead`] (on L2-normalised sentence embeddings).
    pub fn linear_head(&self) -> LinearHead {
        let (classes, dim) = *self.head.weight.shape();
        LinearHead {
            dim,
            classes,
            weight: self.head.weight.as_vec(),
            bias: self.head.bias.as_vec(),
        }
    }

    /// Visits every trained tensor with its learning rate.
    fn visit_trained(&mut self, lr: f32, head_lr: f32, f: &mut dyn FnMut(&mut dyn Trainable, f32)) {
        let bitfit = self.bitfit();
        if bitfit {
            f(&mut self.embed_norm.weight, lr);
            f(&mut self.embed_norm.bias, lr);
        }
        for l in &mut self.layers {
            for (fl, ad) in l.linears.iter_mut().zip(&mut l.adapters) {
                if let Some(a) = ad {
                    f(&mut a.a, lr);
                    f(&mut a.b, lr);
                }
                if bitfit {
                    f(&mut fl.bias, lr);
                }
            }
            if bitfit {
                for n in [&mut l.attention_norm, &mut l.output_norm] {
                    f(&mut n.weight, lr);
                    f(&mut n.bias, lr);
                }
            }
        }
        f(&mut self.head.weight, head_lr);
        f(&mut self.head.bias, head_lr);
    }

    /// Trained parameters (the head included).
    pub fn trainable_parameters(&mut self) -> usize {
        let mut n = 0;
        self.visit_trained(0.0, 0.0, &mut |t, _| n += t.values().len());
        n
    }
}

impl TrainedTensors for PeftNet {
    /// The adapters (or biases and norms) at `lr`, the head at `head_lr`.
    fn visit(&mut self, lr: f32, head_lr: f32, f: &mut dyn FnMut(&mut dyn Trainable, f32)) {
        self.visit_trained(lr, head_lr, f);
    }
}

/// Word, position and token-type embedding tables (a copy of the encoder's, shared).
#[derive(Debug, Clone)]
pub struct EmbeddingSums {
    word: Arc<Vec<f32>>,
    position: Arc<Vec<f32>>,
    token_type: Arc<Vec<f32>>,
    dim: usize,
}

impl EmbeddingSums {
    /// Copies `encoder`'s tables.
    pub fn new(encoder: &BertEncoder) -> Self {
        let e = &encoder.embeddings;
        Self {
            word: Arc::new(e.word.as_vec()),
            position: Arc::new(e.position.as_vec()),
            token_type: Arc::new(e.token_type.as_vec()),
            dim: encoder.config.hidden_size,
        }
    }

    /// `word + position + token_type` of every position of the padded batch, `(batch * seq,
    /// hidden)` (the input of `embeddings.LayerNorm`). Ids must have been checked.
    pub fn rows(&self, tokens: &TokenBatch) -> Vec<f32> {
        let h = self.dim;
        let mut x = vec![0.0f32; tokens.batch * tokens.seq * h];
        for (i, row) in x.chunks_mut(h).enumerate() {
            let (id, pos) = (tokens.ids[i] as usize, i % tokens.seq);
            let w = &self.word[id * h..(id + 1) * h];
            let p = &self.position[pos * h..(pos + 1) * h];
            for (j, v) in row.iter_mut().enumerate() {
                *v = w[j] + p[j] + self.token_type[j];
            }
        }
        x
    }
}

/// What [`train_peft`] returns.
#[derive(Debug, Clone)]
pub struct PeftTrained {
    /// The trained network.
    pub net: PeftNet,
    /// Training FLOPs (analytic estimate).
    pub flops: f64,
    /// Trained parameters (the head included).
    pub trainable: usize,
}

/// Calls after each step: `(network so far, step, FLOPs so far)`.
pub type PeftObserver<'a> = &'a mut dyn FnMut(&PeftNet, usize, f64) -> Result<(), TextError>;

/// Trains `method` on `texts` with `labels` (`classes` classes) from `model`.
#[allow(clippy::too_many_arguments)]
pub fn train_peft(
    model: &MiniLm,
    sums: &EmbeddingSums,
    texts: &[&str],
    labels: &[u32],
    classes: usize,
    method: PeftMethod,
    cfg: &PeftConfig,
    observe: PeftObserver<'_>,
) -> Result<PeftTrained, TextError> {
    check_method_and_data(&method, texts.len(), labels.len())?;
    let enc = &model.encoder;
    let seqs = texts
        .iter()
        .map(|t| model.tokenizer.encode(t))
        .collect::<Result<Vec<_>, _>>()?;
    let mut net = PeftNet::new(enc, method, classes, cfg.seed);
    let trainable = net.trainable_parameters();
    let mut adam = Adam::new(&mut net);
    let mut rng = SplitMix64::new(cfg.seed ^ 0x5eed_1a7a);
    let mut order = Shuffled::new(texts.len());
    let batch = cfg.batch.clamp(1, texts.len());
    let flops_of = peft_flops(&enc.config);
    let mut tokens_seen = 0usize;
    for step in 1..=cfg.steps {
        let (ids, ys) = order.next_batch(&mut rng, labels, batch);
        let group: Vec<Vec<u32>> = ids.iter().map(|&i| seqs[i].clone()).collect();
        let tokens = crate::tokenize::pad(&group, model.tokenizer.pad_id());
        let input = enc.input(&tokens)?;
        tokens_seen += tokens.batch * tokens.seq;
        let x: Matrix = enc.dev.tensor_from_vec(
            sums.rows(&tokens),
            (tokens.batch * tokens.seq, enc.config.hidden_size),
        );
        let logits = net.forward(x.traced(Gradients::leaky()), &input, Some(rng.next_u64()));
        let target = one_hot(&enc.dev, &ys, classes);
        let mut grads = cross_entropy_with_logits_loss(logits, target).backward();
        adam.update(&mut net, &mut grads, cfg.lr, cfg.head_lr, step)?;
        observe(&net, step, flops_of(tokens_seen))?;
    }
    Ok(PeftTrained {
        net,
        flops: flops_of(tokens_seen),
        trainable,
    })
}

/// Refuses texts without one label each, and a LoRA of rank 0 or a dropout outside [0, 1).
fn check_method_and_data(
    method: &PeftMethod,
    texts: usize,
    labels: usize,
) -> Result<(), TextError> {
    let name = match method {
        PeftMethod::Lora(_) => "lora",
        PeftMethod::BitFit => "bitfit",
    };
    check_one_label_each(name, texts, labels)?;
    if let PeftMethod::Lora(spec) = method {
        if spec.rank == 0 || !(0.0..1.0).contains(&spec.dropout) {
            return Err(TextError::Invalid(format!(
                "LoRA needs a rank of at least 1 and a dropout in [0, 1) (rank {}, dropout {})",
                spec.rank, spec.dropout
            )));
        }
    }
    Ok(())
}

/// Training FLOPs after `tokens` padded tokens: the forward, and a backward that computes
/// input gradients but no weight gradients (about the forward's cost again), over every
/// token of every block.
fn peft_flops(c: &crate::config::BertConfig) -> impl Fn(usize) -> f64 {
    let block_params = c.hidden_size * c.hidden_size * 4 + 2 * c.hidden_size * c.intermediate_size;
    let layers = c.num_hidden_layers;
    move |tokens: usize| 2.0 * 2.0 * tokens as f64 * (block_params * layers) as f64
}

/// Sentence embeddings of `texts` through `net` merged into `model` (the inference path),
/// `batch` at a time.
pub fn embed_with(
    model: &MiniLm,
    net: &PeftNet,
    texts: &[&str],
    batch: usize,
) -> Result<Vec<f32>, TextError> {
    let adapted = model.adapted(net.merged_encoder(&model.encoder), 0);
    adapted.embed_all(texts, batch, |_| {})
}

/// Predicted classes of `texts` through `net` merged into `model`.
pub fn predict(
    model: &MiniLm,
    net: &PeftNet,
    texts: &[&str],
    batch: usize,
) -> Result<Vec<usize>, TextError> {
    let d = model.dim();
    let emb = embed_with(model, net, texts, batch)?;
    let head = net.linear_head();
    Ok(emb
        .chunks(d)
        .map(|row| {
            let z = head.logits(&crate::bow::dense_row(row));
            (0..z.len()).fold(0, |b, j| if z[j] > z[b] { j } else { b })
        })
        .collect())
}

#[cfg(test)]
mod tests;
