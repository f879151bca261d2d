//! The `convnet` reference network's backbone (PROTOCOLS.md):
//!
//! ```text
//! conv1: Conv(1->32, 3x3, pad 1) ReLU MaxPool(2)
//! conv2: Conv(32->64, 3x3, pad 1) ReLU MaxPool(2)
//! fc1:   Flatten (3136) -> Linear(3136->128) ReLU      <- 128-d features
//! fc2:   Linear(128->C)                                 <- the head
//! ```
//!
//! ```
//! use dfdx::prelude::*;
//! use graft_nn::{ConvnetClassifier, InputBatch};
//!
//! let dev = Cpu::seed_from_u64(0);
//! let model = ConvnetClassifier::new(&dev, 10)?;
//! let x: InputBatch = dev.zeros_like(&(2, Const));
//! assert_eq!(*model.forward(x).shape(), (2, 10));
//! # Ok::<(), graft_nn::NnError>(())
//! ```
//!
//! The feature width is part of the type, so a head of another width is rejected at compile
//! time: `Classifier<ConvnetBackbone, 256>` does not compile.
//!
//! ```compile_fail
//! use graft_nn::{Classifier, ConvnetBackbone};
//! // error: the trait bound `ConvnetBackbone: Backbone<256>` is not satisfied
//! type Wrong = Classifier<ConvnetBackbone, 256>;
//! let _ = Wrong::new(&dfdx::tensor::Cpu::default(), 10);
//! ```

use dfdx::shapes::{Const, HasShape};
use dfdx::tensor::{Cpu, NoneTape, PutTape, Tape};
use dfdx::tensor_ops::ReshapeTo;

use crate::conv::{Conv2d, ImageBatch, InputGrad};
use crate::pool::{flatten, MaxPool2d};
use crate::{
    Backbone, Classifier, Dense, Features, InputBatch, Layer, Param, Parameters, IMAGE_SIDE,
};

/// Width of the `convnet` backbone's features.
pub const CONVNET_FEATURES: usize = 128;

/// Values after the second block: 64 channels of 7x7.
pub const CONVNET_FLAT: usize = 64 * 7 * 7;

/// The `convnet` reference network: [`ConvnetBackbone`] and a `fc2` head.
pub type ConvnetClassifier = Classifier<ConvnetBackbone, CONVNET_FEATURES>;

/// Blocks `conv1`, `conv2` and `fc1` of the `convnet` reference network; the head is `fc2`.
#[derive(Debug, Clone)]
pub struct ConvnetBackbone {
    /// Block `conv1`: `Conv(1->32, 3x3, pad 1)`, then ReLU and 2x2 max pooling.
    pub conv1: Conv2d<1, 32, 3, 1, 1>,
    /// Block `conv2`: `Conv(32->64, 3x3, pad 1)`, then ReLU and 2x2 max pooling.
    pub conv2: Conv2d<32, 64, 3, 1, 1>,
    /// Block `fc1`: flatten to 3136 values, `Linear(3136->128)`, ReLU.
    pub fc1: Dense<CONVNET_FLAT, CONVNET_FEATURES>,
}

impl ConvnetBackbone {
    /// `(batch, 784)` to `(batch, 1, 28, 28)` (no copy).
    fn to_image<T: Tape<f32, Cpu>>(x: InputBatch<T>) -> ImageBatch<1, T> {
        let b = x.shape().0;
        x.reshape_like(&(b, Const::<1>, IMAGE_SIDE, IMAGE_SIDE))
    }

    // ReLU and max pooling commute (both are monotone, and ReLU's gradient is 0 where the
    // window's maximum is <= 0), so the blocks pool first and apply ReLU to a 4x smaller
    // tensor: the same values and the same gradients as PyTorch's `conv, relu, pool`. Each
    // block is one fused op (`Conv2d::forward_relu_pool2`): im2col and GEMM in cache-sized
    // chunks, bias, pooling and ReLU in one pass, no intermediate tensors.

    /// Block `conv1`. Its input is the images: their gradient is never computed.
    fn block1<T: Tape<f32, Cpu>>(&self, x: ImageBatch<1, T>) -> ImageBatch<32, T> {
        self.conv1.forward_relu_pool2(x, InputGrad::Skip)
    }

    /// Block `conv2`; `input_grad` is `Skip` when `conv1` is frozen (nothing reads it).
    fn block2<T: Tape<f32, Cpu>>(
        &self,
        x: ImageBatch<32, T>,
        input_grad: InputGrad,
    ) -> ImageBatch<64, T> {
        self.conv2.forward_relu_pool2(x, input_grad)
    }

    /// Block `fc1`; `input_grad` is `Skip` when `conv2` is frozen.
    fn block3<T: Tape<f32, Cpu>>(
        &self,
        x: ImageBatch<64, T>,
        input_grad: InputGrad,
    ) -> Features<CONVNET_FEATURES, T> {
        self.fc1
            .forward_relu(flatten::<64, CONVNET_FLAT, T>(x), input_grad)
    }
}

impl Backbone<CONVNET_FEATURES> for ConvnetBackbone {
    const NAME: &'static str = "convnet";
    const HEAD_NAME: &'static str = "fc2";
    const BLOCKS: &'static [&'static str] = &["conv1", "conv2", "fc1"];

    fn build(dev: &Cpu) -> Self {
        Self {
            conv1: Conv2d::new(dev),
            conv2: Conv2d::new(dev),
            fc1: Dense::new(dev),
        }
    }

    fn forward<T: Tape<f32, Cpu>>(&self, x: InputBatch<T>) -> Features<CONVNET_FEATURES, T> {
        let images = self.block1(Self::to_image(x));
        self.block3(self.block2(images, InputGrad::Compute), InputGrad::Compute)
    }

    fn forward_frozen<T: Tape<f32, Cpu>>(
        &self,
        x: InputBatch,
        frozen_blocks: usize,
        tape: T,
    ) -> Features<CONVNET_FEATURES, T> {
        if frozen_blocks == 0 {
            return self.forward(x.put_tape(tape));
        }
        let x = Self::to_image::<NoneTape>(x);
        match frozen_blocks {
            1 => self.block3(
                self.block2(self.block1(x).put_tape(tape), InputGrad::Skip),
                InputGrad::Compute,
            ),
            2 => self.block3(
                self.block2(self.block1(x), InputGrad::Skip).put_tape(tape),
                InputGrad::Skip,
            ),
            _ => self
                .block3(
                    self.block2(self.block1(x), InputGrad::Skip),
                    InputGrad::Skip,
                )
                .put_tape(tape),
        }
    }

    fn forward_flops_per_sample() -> u64 {
        let s = IMAGE_SIDE;
        // Counted as PyTorch's order would be: ReLU over the whole convolution output.
        let relu = |c: usize, h: usize| (c * h * h) as u64;
        Conv2d::<1, 32, 3, 1, 1>::forward_flops(s, s)
            + relu(32, s)
            + MaxPool2d::<2, 2>::forward_flops(32, s, s)
            + Conv2d::<32, 64, 3, 1, 1>::forward_flops(s / 2, s / 2)
            + relu(64, s / 2)
            + MaxPool2d::<2, 2>::forward_flops(64, s / 2, s / 2)
            + (2 * CONVNET_FLAT * CONVNET_FEATURES + 2 * CONVNET_FEATURES) as u64
    }
}

/// No BatchNorm: no buffers.
impl crate::Buffers for ConvnetBackbone {}

impl Parameters for ConvnetBackbone {
    fn visit_params(&self, f: &mut dyn FnMut(&str, &dyn Param)) {
        self.conv1.visit("conv1", f);
        self.conv2.visit("conv2", f);
        self.fc1.visit("fc1", f);
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn Param)) {
        self.conv1.visit_mut("conv1", f);
        self.conv2.visit_mut("conv2", f);
        self.fc1.visit_mut("fc1", f);
    }
}
