//! A backbone and a head: the whole network that trains and predicts.

use dfdx::tensor::{Cpu, Tape};

use crate::mlp::MLP_FEATURES;
use crate::{
    Backbone, Buffers, Head, InputBatch, Layer, Logits, MlpBackbone, NnError, Param, Parameters,
};

/// A backbone `B` producing `F` features, followed by a [`Head`] of the same width.
#[derive(Debug, Clone)]
pub struct Classifier<B: Backbone<F>, const F: usize> {
    /// The reusable feature extractor.
    pub backbone: B,
    /// The task-specific classifier.
    pub head: Head<F>,
}

/// The `mlp` reference network.
pub type MlpClassifier = Classifier<MlpBackbone, MLP_FEATURES>;

impl<B: Backbone<F>, const F: usize> Classifier<B, F> {
    /// A randomly initialised network for `classes` classes.
    pub fn new(dev: &Cpu, classes: usize) -> Result<Self, NnError> {
        let backbone = B::build(dev);
        let head = Head::new(dev, classes)?;
        Ok(Self { backbone, head })
    }

    /// Puts a freshly initialised head for `classes` classes on `backbone`.
    pub fn with_new_head(dev: &Cpu, backbone: B, classes: usize) -> Result<Self, NnError> {
        Ok(Self {
            backbone,
            head: Head::new(dev, classes)?,
        })
    }

    /// Number of classes predicted.
    pub fn num_classes(&self) -> usize {
        self.head.num_classes()
    }

    /// Logits for a batch of flattened images.
    pub fn forward<T: Tape<f32, Cpu>>(&self, x: InputBatch<T>) -> Logits<T> {
        self.head.forward(self.backbone.forward(x))
    }

    /// FLOPs of one forward pass, per sample.
    pub fn forward_flops_per_sample(&self) -> u64 {
        B::forward_flops_per_sample() + self.head.forward_flops_per_sample()
    }
}

impl<B: Backbone<F>, const F: usize> Parameters for Classifier<B, F> {
    fn visit_params(&self, f: &mut dyn FnMut(&str, &dyn Param)) {
        self.backbone.visit_params(f);
        self.head.visit(B::HEAD_NAME, f);
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn Param)) {
        self.backbone.visit_params_mut(f);
        self.head.visit_mut(B::HEAD_NAME, f);
    }
}

impl<B: Backbone<F>, const F: usize> Buffers for Classifier<B, F> {
    fn visit_buffers(&self, f: &mut dyn FnMut(&str, &dyn Param)) {
        self.backbone.visit_buffers(f);
    }
    fn visit_buffers_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn Param)) {
        self.backbone.visit_buffers_mut(f);
    }
}
