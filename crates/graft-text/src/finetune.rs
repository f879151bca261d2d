//! `fine-tune` and `lp-ft`: MiniLM's top blocks and a new linear head trained together on
//! the k-shot texts, the lower blocks frozen.
//!
//! The frozen part runs once per text ([`FrozenStates`]); training then runs only the top
//! blocks, with dfdx's tape, and graft's own Adam over the trained tensors.

use dfdx::losses::cross_entropy_with_logits_loss;
use dfdx::shapes::HasShape;
use dfdx::tensor::{Cpu, Gradients, NoneTape, Tape, TensorFromVec, Trace};
use dfdx::tensor_ops::Backward;
use graft_data::SplitMix64;

use crate::adam::{Adam, Trainable, TrainedTensors};
use crate::bert::{l2_normalize, BertLayer, EncoderInput, LayerNorm, Linear, Matrix};
use crate::head::LinearHead;
use crate::infer::Layout;
use crate::minilm::MiniLm;
use crate::tokenize::TokenBatch;
use crate::TextError;

/// Hidden states of each text entering the first trained block (real tokens only), and its
/// sentence embedding from the whole (pretrained) encoder.
#[derive(Debug, Clone)]
pub struct FrozenStates {
    /// Index of the first trained block.
    pub from_block: usize,
    /// Hidden width.
    pub dim: usize,
    /// Per text: `tokens * dim` values.
    pub states: Vec<Vec<f32>>,
    /// Per text: its sentence embedding (`dim` values).
    pub embeddings: Vec<Vec<f32>>,
}

impl FrozenStates {
    /// Runs `model` on `texts` (`batch` at a time, grouped by length) and keeps the states
    /// entering block `from_block` and the final sentence embeddings.
    pub fn compute(
        model: &MiniLm,
        texts: &[&str],
        from_block: usize,
        batch: usize,
        mut progress: impl FnMut(usize),
    ) -> Result<Self, TextError> {
        let layers = model.encoder.layers.len();
        if from_block > layers {
            return Err(TextError::Invalid(format!(
                "cannot train blocks from {from_block}: the model has {layers}"
            )));
        }
        let d = model.dim();
        let seqs = texts
            .iter()
            .map(|t| model.tokenizer.encode(t))
            .collect::<Result<Vec<_>, _>>()?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| seqs[i].len());
        let mut states = vec![Vec::new(); texts.len()];
        let mut embeddings = vec![Vec::new(); texts.len()];
        let mut done = 0;
        for chunk in order.chunks(batch.max(1)) {
            let group: Vec<Vec<u32>> = chunk.iter().map(|&i| seqs[i].clone()).collect();
            let tokens = crate::tokenize::pad(&group, model.tokenizer.pad_id());
            model.encoder.input(&tokens)?; // checks the batch against the configuration
            let (fast, layout) = (model.fast(), Layout::packed(&tokens));
            let mut x = fast.embed(&layout);
            fast.blocks(0..from_block, &mut x, &layout);
            let xv = x.clone();
            fast.blocks(from_block..layers, &mut x, &layout);
            let emb = fast.sentence_embeddings(&x, &layout);
            for (r, &i) in chunk.iter().enumerate() {
                let (at, len) = layout.text(r);
                states[i] = xv[at * d..(at + len) * d].to_vec();
                embeddings[i] = emb[r * d..(r + 1) * d].to_vec();
            }
            done += chunk.len();
            progress(done);
        }
        Ok(Self {
            from_block,
            dim: d,
            states,
            embeddings,
        })
    }

    /// A padded batch of the texts `ids`: the input tensors (mask, pooling) and the states
    /// as a `(batch * seq, dim)` matrix (padding rows zero).
    fn batch(&self, model: &MiniLm, ids: &[usize]) -> Result<(EncoderInput, Matrix), TextError> {
        let d = self.dim;
        let lens: Vec<usize> = ids.iter().map(|&i| self.states[i].len() / d).collect();
        let seqs: Vec<Vec<u32>> = lens.iter().map(|&l| vec![0u32; l]).collect();
        let tokens: TokenBatch = crate::tokenize::pad(&seqs, 0);
        let input = model.encoder.input(&tokens)?;
        let mut x = vec![0.0f32; ids.len() * tokens.seq * d];
        for (r, &i) in ids.iter().enumerate() {
            let at = r * tokens.seq * d;
            x[at..at + self.states[i].len()].copy_from_slice(&self.states[i]);
        }
        let x = model
            .encoder
            .dev
            .tensor_from_vec(x, (ids.len() * tokens.seq, d));
        Ok((input, x))
    }
}

/// Settings of [`fine_tune`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FineTuneConfig {
    /// Adam steps.
    pub steps: usize,
    /// Texts per step.
    pub batch: usize,
    /// Learning rate of the trained blocks.
    pub block_lr: f32,
    /// Learning rate of the head.
    pub head_lr: f32,
    /// Seed of the head's initial weights (when not given) and of the batch order.
    pub seed: u64,
}

impl Default for FineTuneConfig {
    fn default() -> Self {
        Self {
            steps: 30,
            batch: 16,
            block_lr: 1e-4,
            head_lr: 1e-2,
            seed: 0,
        }
    }
}

/// The trained top of the network: copies of the top blocks and a linear head on the
/// L2-normalised mean-pooled states.
#[derive(Debug, Clone)]
pub struct TextClassifier {
    /// The trained blocks, bottom first.
    pub layers: Vec<BertLayer>,
    /// The head.
    pub head: Linear,
    heads: usize,
}

impl TextClassifier {
    /// Logits of a batch.
    fn forward<T: Tape<f32, Cpu>>(&self, mut x: Matrix<T>, input: &EncoderInput) -> Matrix<T> {
        for l in &self.layers {
            x = l.forward(self.heads, x, input);
        }
        let pooled = input.mean_pool(x);
        self.head.forward(l2_normalize(pooled))
    }

    /// Predicted classes of the texts `ids`.
    pub fn predict(
        &self,
        model: &MiniLm,
        states: &FrozenStates,
        ids: &[usize],
    ) -> Result<Vec<usize>, TextError> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(64) {
            let (input, x) = states.batch(model, chunk)?;
            let logits = self.forward::<NoneTape>(x, &input);
            let c = logits.shape().1;
            let z = logits.as_vec();
            for r in 0..chunk.len() {
                let row = &z[r * c..(r + 1) * c];
                out.push((0..c).fold(0, |b, j| if row[j] > row[b] { j } else { b }));
            }
        }
        Ok(out)
    }

    fn visit_trained(
        &mut self,
        block_lr: f32,
        head_lr: f32,
        f: &mut dyn FnMut(&mut dyn Trainable, f32),
    ) {
        let lin = |l: &mut Linear, lr: f32, f: &mut dyn FnMut(&mut dyn Trainable, f32)| {
            f(&mut l.weight, lr);
            f(&mut l.bias, lr);
        };
        let norm = |n: &mut LayerNorm, lr: f32, f: &mut dyn FnMut(&mut dyn Trainable, f32)| {
            f(&mut n.weight, lr);
            f(&mut n.bias, lr);
        };
        for l in &mut self.layers {
            lin(&mut l.query, block_lr, f);
            lin(&mut l.key, block_lr, f);
            lin(&mut l.value, block_lr, f);
            lin(&mut l.attention_out, block_lr, f);
            norm(&mut l.attention_norm, block_lr, f);
            lin(&mut l.intermediate, block_lr, f);
            lin(&mut l.output, block_lr, f);
            norm(&mut l.output_norm, block_lr, f);
        }
        lin(&mut self.head, head_lr, f);
    }
}

impl TrainedTensors for TextClassifier {
    /// The trained blocks at `lr`, the head at `head_lr`.
    fn visit(&mut self, lr: f32, head_lr: f32, f: &mut dyn FnMut(&mut dyn Trainable, f32)) {
        self.visit_trained(lr, head_lr, f);
    }
}

/// What [`fine_tune`] returns.
#[derive(Debug, Clone)]
pub struct FineTuned {
    /// The trained top blocks and head.
    pub model: TextClassifier,
    /// Training FLOPs (analytic estimate).
    pub flops: f64,
}

/// Calls after each fine-tuning step: `(network so far, step, FLOPs so far)`.
pub type FineTuneObserver<'a> =
    &'a mut dyn FnMut(&TextClassifier, usize, f64) -> Result<(), TextError>;

/// Trains copies of `model`'s blocks from `states.from_block` up and a head on the texts
/// `train` (indices into `states`) with `labels`. The head starts from `init` (`lp-ft`) or
/// from PyTorch's `Linear` initialisation drawn with `cfg.seed` (`fine-tune`). `observe` is
/// called after every step (for a training curve; `&mut |_, _, _| Ok(())` for none).
#[allow(clippy::too_many_arguments)]
pub fn fine_tune(
    model: &MiniLm,
    states: &FrozenStates,
    train: &[usize],
    labels: &[u32],
    classes: usize,
    init: Option<&LinearHead>,
    cfg: &FineTuneConfig,
    observe: FineTuneObserver<'_>,
) -> Result<FineTuned, TextError> {
    check_one_label_each("fine-tune", train.len(), labels.len())?;
    let mut rng = SplitMix64::new(cfg.seed);
    let head = initial_head(init, classes, states.dim, &mut rng);
    let mut net = TextClassifier::top_of(model, states, head, classes);
    let mut adam = Adam::new(&mut net);
    let mut order = Shuffled::new(train.len());
    let batch = cfg.batch.clamp(1, train.len());
    let mut tokens_seen = 0usize;
    let flops_of = fine_tune_flops(model, net.layers.len());
    for step in 1..=cfg.steps {
        let (picked, ys) = order.next_batch(&mut rng, labels, batch);
        let ids: Vec<usize> = picked.iter().map(|&p| train[p]).collect();
        let (input, x) = states.batch(model, &ids)?;
        tokens_seen += input.batch * input.seq;
        let logits = net.forward(x.traced(Gradients::leaky()), &input);
        let target = one_hot(&model.encoder.dev, &ys, classes);
        let mut grads = cross_entropy_with_logits_loss(logits, target).backward();
        adam.update(&mut net, &mut grads, cfg.block_lr, cfg.head_lr, step)?;
        observe(&net, step, flops_of(tokens_seen))?;
    }
    let flops = flops_of(tokens_seen);
    Ok(FineTuned { model: net, flops })
}

/// Refuses an empty training set or one whose texts and labels differ in number.
pub(crate) fn check_one_label_each(
    what: &str,
    texts: usize,
    labels: usize,
) -> Result<(), TextError> {
    if texts == 0 || texts != labels {
        return Err(TextError::Invalid(format!(
            "{what} needs texts with one label each ({texts} texts, {labels} labels)"
        )));
    }
    Ok(())
}

/// The head's starting weight and bias: `init`'s, or PyTorch's `Linear` initialisation
/// (uniform in `±1/sqrt(d)`, weight then bias) drawn from `rng`.
fn initial_head(
    init: Option<&LinearHead>,
    classes: usize,
    d: usize,
    rng: &mut SplitMix64,
) -> (Vec<f32>, Vec<f32>) {
    match init {
        Some(h) => (h.weight.clone(), h.bias.clone()),
        None => {
            let bound = 1.0 / (d as f32).sqrt();
            let mut u = || (2.0 * rng.next_f32() - 1.0) * bound;
            let w = (0..classes * d).map(|_| u()).collect();
            let b = (0..classes).map(|_| u()).collect();
            (w, b)
        }
    }
}

impl TextClassifier {
    /// Copies of `model`'s blocks from `states.from_block` up, under a head of `classes`
    /// outputs with the values `head` (weight, bias).
    fn top_of(
        model: &MiniLm,
        states: &FrozenStates,
        head: (Vec<f32>, Vec<f32>),
        classes: usize,
    ) -> Self {
        let dev = &model.encoder.dev;
        let d = states.dim;
        Self {
            layers: model.encoder.layers[states.from_block..].to_vec(),
            head: Linear {
                weight: dev.tensor_from_vec(head.0, (classes, d)),
                bias: dev.tensor_from_vec(head.1, (classes,)),
            },
            heads: model.encoder.config.num_attention_heads,
        }
    }
}

/// Training FLOPs after `tokens` padded tokens: forward and backward (3x forward) over every
/// token of every one of the `trained_blocks`.
fn fine_tune_flops(model: &MiniLm, trained_blocks: usize) -> impl Fn(usize) -> f64 {
    let block_params = model.encoder.config.hidden_size * model.encoder.config.hidden_size * 4
        + 2 * model.encoder.config.hidden_size * model.encoder.config.intermediate_size;
    move |tokens: usize| 3.0 * 2.0 * tokens as f64 * (block_params * trained_blocks) as f64
}

/// A walk through `0..len` in an order reshuffled at the start of every pass.
pub(crate) struct Shuffled {
    order: Vec<usize>,
    pos: usize,
}

impl Shuffled {
    /// The walk before its first shuffle.
    pub(crate) fn new(len: usize) -> Self {
        Self {
            order: (0..len).collect(),
            pos: len,
        }
    }

    /// The next `batch` positions and their labels (`labels[position]`), shuffling the
    /// order with `rng` whenever a pass ends.
    pub(crate) fn next_batch(
        &mut self,
        rng: &mut SplitMix64,
        labels: &[u32],
        batch: usize,
    ) -> (Vec<usize>, Vec<usize>) {
        let mut ids = Vec::with_capacity(batch);
        let mut ys = Vec::with_capacity(batch);
        while ids.len() < batch {
            if self.pos == self.order.len() {
                rng.shuffle(&mut self.order);
                self.pos = 0;
            }
            ids.push(self.order[self.pos]);
            ys.push(labels[self.order[self.pos]] as usize);
            self.pos += 1;
        }
        (ids, ys)
    }
}

/// The `(rows, classes)` one-hot targets of the labels `ys`.
pub(crate) fn one_hot(dev: &Cpu, ys: &[usize], classes: usize) -> Matrix {
    let mut onehot = vec![0.0f32; ys.len() * classes];
    for (r, &y) in ys.iter().enumerate() {
        onehot[r * classes + y] = 1.0;
    }
    dev.tensor_from_vec(onehot, (ys.len(), classes))
}
