//! The operators of MobileNet / EfficientNet-Lite backbones, as dfdx operations with their
//! own backward passes, on image batches whose channel counts are known only at run time.
//!
//! Every convolution uses TensorFlow's "SAME" padding ([`SamePad`]): `out = ceil(in / stride)`,
//! the smaller half of the padding before, the extra pixel after. Weights and BatchNorm
//! scales are [`OwnedParam`](crate::OwnedParam)s (read in place by the kernels, gradients in dfdx's
//! `Gradients`); BatchNorm running statistics are [`Buffer`]s, visited by name through
//! [`Buffers`].
//!
//! Memory: each operation keeps a copy of its input for its backward pass (freed when that
//! pass has run), and its backward pass *takes* its output's gradient out of dfdx's
//! `Gradients` instead of copying it: the buffer is released as soon as it is read (every
//! consumer of the output has already added to it by then), so a backward pass holds the
//! gradients of a few layers at a time instead of all of them. The one consequence: after a
//! backward pass, the gradient of an operation's *output* reads as empty; the gradients of
//! inputs and parameters are unaffected. In eval mode an MBConv block is one operation that
//! keeps only its input and its convolutions' outputs (`mbconv_eval`). Peak RSS of one
//! EfficientNet-Lite0 fine-tuning step at batch 32, 224x224, BatchNorm frozen (measured on
//! the 2-core machine): 4.5 GB with copied gradients and separate operations, 2.8 GB with
//! taken gradients, 1.6 GB with the fused eval-mode block.

pub mod batch_norm;
pub mod buffers;
pub mod depthwise;
pub(crate) mod folded;
pub mod global_pool;
pub mod mbconv;
mod mbconv_eval;
pub mod padding;
pub mod pointwise;
pub mod relu6;
pub mod residual;
pub mod same_conv;
mod tensors;

pub use batch_norm::{BatchNorm2d, BnMode};
pub use buffers::{Buffer, Buffers, WithBuffers};
pub use depthwise::DepthwiseConv2d;
pub use global_pool::global_avg_pool;
pub use mbconv::{MbConv, MbConvConfig};
pub use padding::SamePad;
pub use pointwise::PointwiseConv2d;
pub use relu6::relu6;
pub use residual::residual_add;
pub use same_conv::SameConv2d;
pub(crate) use tensors::{add_into, normal_values, owned_param, sample_parts, sum_over_batch};
pub use tensors::{Images, Shape4};
