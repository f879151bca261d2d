//! The source networks a candidate can be: a `convnet` or `mlp` checkpoint, or a randomly
//! initialised one; and the activations of each of their blocks on target images.
//!
//! Block outputs are taken where PROTOCOLS.md's networks end a block: `conv1` (32 x 14 x 14
//! after ReLU and pooling, flattened in channel, row, column order), `conv2` (64 x 7 x 7) and
//! `fc1` (128) for `convnet`; `fc1` (512) and `fc2` (256) for `mlp`; for EfficientNet-Lite0
//! each of its 18 units, averaged over rows and columns (its channels: 32 for `_conv_stem`
//! ... 1280 for `_conv_head`), on the images resized as `imagenet-animals` resizes them. The
//! source head's softmax is taken too, for LEEP and NCE.

use std::path::Path;

use dfdx::shapes::{Const, HasShape};
use dfdx::tensor::{Cpu, TensorFromVec};
use dfdx::tensor_ops::ReshapeTo;
use graft_nn::conv::InputGrad;
use graft_nn::convnet::{CONVNET_FEATURES, CONVNET_FLAT};
use graft_nn::efficientnet::{block_configs, EFFNET_FEATURES, LITE0_GROUPS};
use graft_nn::lite0_grey::{GREY_SIDE, LITE0_UNITS};
use graft_nn::mlp::MLP_FEATURES;
use graft_nn::{
    flatten, Backbone, Checkpoint, Classifier, ConvnetBackbone, InputBatch, Lite0Grey, LoadScope,
    MlpBackbone, NetworkKind, Normalization, WithBuffers, IMAGE_SIDE, INPUT_LEN,
};
use graft_transfer::pretrain::IMAGENET_LITE_NORMALIZATION;

use crate::AdviseError;

/// Images per forward pass.
const CHUNK: usize = 256;

/// Source classes of a randomly initialised head (its LEEP and NCE describe a random labeller).
pub const RANDOM_HEAD_CLASSES: usize = 10;

/// A source network with its head.
#[derive(Debug, Clone)]
pub enum SourceNetwork {
    /// PROTOCOLS.md's `convnet`.
    Convnet(Classifier<ConvnetBackbone, CONVNET_FEATURES>),
    /// PROTOCOLS.md's `mlp`.
    Mlp(Classifier<MlpBackbone, MLP_FEATURES>),
    /// The ImageNet EfficientNet-Lite0 on the images resized as the `imagenet-animals`
    /// protocols resize them, its 1000-class `_fc` head kept (for LEEP and NCE).
    Lite0(Box<Classifier<Lite0, EFFNET_FEATURES>>),
}

/// EfficientNet-Lite0 at the `imagenet-animals` protocols' resolution.
type Lite0 = Lite0Grey<GREY_SIDE>;

/// Activations of every block, and the head's softmax, for a batch of images.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Activations {
    /// One `(block name, rows * width values)` per block, input first.
    pub blocks: Vec<(&'static str, Vec<f32>)>,
    /// Softmax over the source classes, `rows * source_classes` values.
    pub probs: Vec<f32>,
}

impl SourceNetwork {
    /// The network's kind.
    pub fn kind(&self) -> NetworkKind {
        match self {
            SourceNetwork::Convnet(_) => NetworkKind::Convnet,
            SourceNetwork::Mlp(_) => NetworkKind::Mlp,
            SourceNetwork::Lite0(_) => NetworkKind::Lite0,
        }
    }

    /// Names of its blocks, input first.
    pub fn blocks(kind: NetworkKind) -> &'static [&'static str] {
        match kind {
            NetworkKind::Convnet => ConvnetBackbone::BLOCKS,
            NetworkKind::Mlp => MlpBackbone::BLOCKS,
            NetworkKind::Lite0 | NetworkKind::Lite0At224 => &LITE0_UNITS,
        }
    }

    /// Width of block `name`'s output, if the network has that block.
    pub fn block_width(kind: NetworkKind, name: &str) -> Option<usize> {
        match (kind, name) {
            (NetworkKind::Convnet, "conv1") => Some(32 * 14 * 14),
            (NetworkKind::Convnet, "conv2") => Some(CONVNET_FLAT),
            (NetworkKind::Convnet, "fc1") => Some(CONVNET_FEATURES),
            (NetworkKind::Mlp, "fc1") => Some(512),
            (NetworkKind::Mlp, "fc2") => Some(MLP_FEATURES),
            (NetworkKind::Lite0, unit) => {
                let at = LITE0_UNITS.iter().position(|u| *u == unit)?;
                let channels = block_configs(&LITE0_GROUPS);
                Some(match at {
                    0 => channels.first().map_or(32, |c| c.in_channels),
                    at if at <= channels.len() => channels[at - 1].out_channels,
                    _ => EFFNET_FEATURES,
                })
            }
            _ => None,
        }
    }

    /// Classes of the source head.
    pub fn source_classes(&self) -> usize {
        match self {
            SourceNetwork::Convnet(m) => m.num_classes(),
            SourceNetwork::Mlp(m) => m.num_classes(),
            SourceNetwork::Lite0(m) => m.num_classes(),
        }
    }

    /// A randomly initialised network (PyTorch's default initialisation) from `seed`.
    pub fn random(kind: NetworkKind, seed: u64) -> Result<Self, AdviseError> {
        let dev = Cpu::seed_from_u64(seed);
        Ok(match kind {
            NetworkKind::Convnet => {
                SourceNetwork::Convnet(Classifier::new(&dev, RANDOM_HEAD_CLASSES)?)
            }
            NetworkKind::Mlp => SourceNetwork::Mlp(Classifier::new(&dev, RANDOM_HEAD_CLASSES)?),
            NetworkKind::Lite0 => {
                SourceNetwork::Lite0(Box::new(Classifier::new(&dev, RANDOM_HEAD_CLASSES)?))
            }
            other => return Err(not_scored(other)),
        })
    }

    /// The network in `ckpt` (its kind from the `graft_network` metadata, else from its tensor
    /// names), head included, and the input normalisation it was trained with, if recorded.
    pub fn load(ckpt: &Checkpoint) -> Result<(Self, Option<Normalization>), AdviseError> {
        let names = ckpt.names();
        let kind = match ckpt.network().as_deref() {
            Some(name) => name
                .parse()
                .map_err(|e: String| candidate_error(ckpt.path(), e))?,
            None if names.iter().any(|n| n == "_conv_stem.weight") => NetworkKind::Lite0,
            None if names.iter().any(|n| n.starts_with("conv1.")) => NetworkKind::Convnet,
            None => NetworkKind::Mlp,
        };
        let head = match kind {
            NetworkKind::Convnet => ConvnetBackbone::HEAD_NAME,
            NetworkKind::Mlp => MlpBackbone::HEAD_NAME,
            NetworkKind::Lite0 => Lite0::HEAD_NAME,
            other => return Err(not_scored(other)),
        };
        let classes = ckpt
            .shape_of(&format!("{head}.bias"))
            .and_then(|s| s.first().copied())
            .ok_or_else(|| {
                candidate_error(
                    ckpt.path(),
                    format!(
                        "no tensor {head}.bias, so the source head is unknown; advise needs a whole {} checkpoint (backbone and head)",
                        kind.name()
                    ),
                )
            })?;
        let dev = Cpu::default();
        let net = match kind {
            NetworkKind::Convnet => {
                let mut m = Classifier::new(&dev, classes)?;
                ckpt.load_into(&mut m, kind.name(), LoadScope::Whole)?;
                SourceNetwork::Convnet(m)
            }
            NetworkKind::Mlp => {
                let mut m = Classifier::new(&dev, classes)?;
                ckpt.load_into(&mut m, kind.name(), LoadScope::Whole)?;
                SourceNetwork::Mlp(m)
            }
            NetworkKind::Lite0 => {
                let mut m = Classifier::new(&dev, classes)?;
                ckpt.load_into(&mut WithBuffers(&mut m), kind.name(), LoadScope::Whole)?;
                SourceNetwork::Lite0(Box::new(m))
            }
            other => return Err(not_scored(other)),
        };
        // The ImageNet network's preprocessing is its own, whatever the metadata holds.
        let norm = match kind {
            NetworkKind::Lite0 => Some(IMAGENET_LITE_NORMALIZATION),
            _ => ckpt.normalization()?,
        };
        Ok((net, norm))
    }

    /// Activations of every block and the head's softmax on `images` (normalised rows of 784).
    pub fn activations(&self, images: &[f32]) -> Result<Activations, AdviseError> {
        if images.len() % INPUT_LEN != 0 {
            return Err(AdviseError::Config(format!(
                "{} input values are not whole 28x28 images",
                images.len()
            )));
        }
        let dev = Cpu::default();
        let names = Self::blocks(self.kind());
        let mut out = Activations {
            blocks: names.iter().map(|&n| (n, Vec::new())).collect(),
            probs: Vec::new(),
        };
        for chunk in images.chunks(CHUNK * INPUT_LEN) {
            let b = chunk.len() / INPUT_LEN;
            let x: InputBatch = dev.tensor_from_vec(chunk.to_vec(), (b, Const));
            let logits = match self {
                SourceNetwork::Convnet(m) => {
                    let bb = &m.backbone;
                    let img = x.reshape_like(&(b, Const::<1>, IMAGE_SIDE, IMAGE_SIDE));
                    let a1 = bb.conv1.forward_relu_pool2(img, InputGrad::Skip);
                    out.blocks[0].1.extend(a1.as_vec());
                    let a2 = bb.conv2.forward_relu_pool2(a1, InputGrad::Skip);
                    out.blocks[1].1.extend(a2.as_vec());
                    let a3 = bb
                        .fc1
                        .forward_relu(flatten::<64, CONVNET_FLAT, _>(a2), InputGrad::Skip);
                    out.blocks[2].1.extend(a3.as_vec());
                    m.head.forward(a3)
                }
                SourceNetwork::Mlp(m) => {
                    let bb = &m.backbone;
                    let a1 = bb.fc1.forward_relu(x, InputGrad::Skip);
                    out.blocks[0].1.extend(a1.as_vec());
                    let a2 = bb.fc2.forward_relu(a1, InputGrad::Skip);
                    out.blocks[1].1.extend(a2.as_vec());
                    m.head.forward(a2)
                }
                SourceNetwork::Lite0(m) => {
                    let pooled = m.backbone.net.pooled_unit_outputs(Lite0::to_rgb(&x));
                    let features = pooled.last().cloned().unwrap_or_default();
                    for (block, values) in out.blocks.iter_mut().zip(pooled) {
                        block.1.extend(values);
                    }
                    m.head.forward(dev.tensor_from_vec(features, (b, Const)))
                }
            };
            let c = logits.shape().1;
            for row in logits.as_vec().chunks(c) {
                out.probs.extend(softmax(row));
            }
        }
        Ok(out)
    }
}

/// Softmax of one row, computed in f64.
fn softmax(row: &[f32]) -> Vec<f32> {
    let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
    let e: Vec<f64> = row.iter().map(|&v| (v as f64 - max).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| (v / s) as f32).collect()
}

/// The networks advise does not score yet.
fn not_scored(kind: NetworkKind) -> AdviseError {
    AdviseError::Config(format!(
        "graft advise scores convnet and mlp sources; {} is not scored yet",
        kind.name()
    ))
}

fn candidate_error(path: &Path, reason: String) -> AdviseError {
    AdviseError::Candidate {
        candidate: path.display().to_string(),
        reason,
    }
}
