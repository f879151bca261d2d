//! Where graft runs its tensor work: the CPU or a CUDA device. A leaf: choosing one is
//! `backend`'s work.

use crate::probe::DeviceInfo;

/// Where graft runs its tensor work.
#[derive(Debug, Clone, PartialEq)]
pub enum Backend {
    /// The CPU path; always available.
    Cpu,
    /// A CUDA device (the first one the driver lists), with the NVRTC compiler available.
    Cuda(DeviceInfo),
}

impl Backend {
    /// Whether this is the CUDA backend.
    pub fn is_cuda(&self) -> bool {
        matches!(self, Backend::Cuda(_))
    }
}
