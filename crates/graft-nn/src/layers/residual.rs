//! [`residual_add`]: an inverted-residual block's output plus its input.

use dfdx::tensor::{Cpu, NoneTape, Tape};

use super::Images;

/// `branch + skip`, where `skip` is the block's input without its tape (a clone sharing its
/// id: `x.retaped::<NoneTape>()`). The gradient reaches the input twice, through the branch
/// and through this sum, and dfdx adds the two under the input's id.
///
/// # Panics
/// If the shapes differ.
pub fn residual_add<T: Tape<f32, Cpu>>(branch: Images<T>, skip: Images<NoneTape>) -> Images<T> {
    branch + skip
}
