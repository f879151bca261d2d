//! Non-trainable state visited by name: [`Buffer`] (a BatchNorm running statistic),
//! [`Buffers`] (the visitor beside [`Parameters`]) and [`WithBuffers`] (both at once, so a
//! checkpoint's `running_mean` / `running_var` load and save with the weights).
//!
//! A buffer sits behind a mutex so that a train-mode forward pass, which takes the network
//! by shared reference like every other forward pass, can update it.

use std::fmt;
use std::sync::Mutex;

use dfdx::tensor::{Cpu, Gradients};

use crate::{NnError, Param, Parameters};

/// A non-trainable vector of values (e.g. a running mean), with no gradient.
pub struct Buffer {
    values: Mutex<Vec<f32>>,
}

impl Buffer {
    /// A buffer holding `values`.
    pub fn new(values: Vec<f32>) -> Self {
        Self {
            values: Mutex::new(values),
        }
    }

    /// A copy of the current values.
    pub fn values(&self) -> Vec<f32> {
        self.lock().clone()
    }

    /// Runs `f` on the values, mutably (the running-statistics update).
    pub fn update(&self, f: impl FnOnce(&mut [f32])) {
        f(&mut self.lock());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<f32>> {
        self.values.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Clone for Buffer {
    fn clone(&self) -> Self {
        Self::new(self.values())
    }
}

impl fmt::Debug for Buffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Buffer")
            .field("len", &self.lock().len())
            .finish()
    }
}

impl Param for Buffer {
    fn dims(&self) -> Vec<usize> {
        vec![self.lock().len()]
    }
    fn numel(&self) -> usize {
        self.lock().len()
    }
    fn read_into(&self, out: &mut [f32]) {
        out.copy_from_slice(&self.lock());
    }
    fn write_from(&mut self, src: &[f32]) {
        self.lock().copy_from_slice(src);
    }
    fn grad<'g>(&self, _grads: &'g mut Gradients<f32, Cpu>) -> Result<&'g [f32], NnError> {
        Err(NnError::Shape(
            "a buffer (running statistic) has no gradient".to_string(),
        ))
    }
}

/// A network (or part of one) whose non-trainable buffers can be visited by their PyTorch
/// `state_dict` names (`_bn0.running_mean`, ...), beside its [`Parameters`]. A network
/// without buffers (no BatchNorm) keeps the defaults, which visit nothing.
pub trait Buffers {
    /// Calls `f` with every buffer's full name and value, in a fixed order.
    fn visit_buffers(&self, _f: &mut dyn FnMut(&str, &dyn Param)) {}
    /// Calls `f` with every buffer's full name and mutable value, in the same order.
    fn visit_buffers_mut(&mut self, _f: &mut dyn FnMut(&str, &mut dyn Param)) {}
}

/// A network's parameters followed by its buffers, as one [`Parameters`]: what a checkpoint
/// of a network with BatchNorm loads and saves
/// (`Checkpoint::load_into(&mut WithBuffers(&mut net), ..)`). Not for optimisers: a buffer
/// has no gradient.
#[derive(Debug)]
pub struct WithBuffers<'a, M>(pub &'a mut M);

impl<M: Parameters + Buffers> Parameters for WithBuffers<'_, M> {
    fn visit_params(&self, f: &mut dyn FnMut(&str, &dyn Param)) {
        self.0.visit_params(f);
        self.0.visit_buffers(f);
    }
    fn visit_params_mut(&mut self, f: &mut dyn FnMut(&str, &mut dyn Param)) {
        self.0.visit_params_mut(f);
        self.0.visit_buffers_mut(f);
    }
}
