//! [`SamePad`]: TensorFlow's "SAME" padding along one axis.
//!
//! `out = ceil(in / stride)`, `total = max((out - 1) * stride + kernel - in, 0)`, `total / 2`
//! before and the rest after: a 3x3 stride-2 convolution of a 224-pixel axis pads 0 before
//! and 1 after. Padded positions read as zero; the kernels skip them instead of copying.

use std::ops::Range;

/// The geometry of one axis of a SAME-padded convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SamePad {
    /// Input length.
    pub input: usize,
    /// Kernel length.
    pub kernel: usize,
    /// Stride.
    pub stride: usize,
    /// Output length, `ceil(input / stride)`.
    pub out: usize,
    /// Zeros before the input.
    pub before: usize,
    /// Zeros after the input.
    pub after: usize,
}

impl SamePad {
    /// The padding of an `input`-long axis for `kernel` and `stride`.
    ///
    /// # Panics
    /// If any of the three is zero.
    pub fn new(input: usize, kernel: usize, stride: usize) -> Self {
        assert!(
            input > 0 && kernel > 0 && stride > 0,
            "SAME padding needs input {input}, kernel {kernel} and stride {stride} >= 1"
        );
        let out = input.div_ceil(stride);
        let total = ((out - 1) * stride + kernel).saturating_sub(input);
        Self {
            input,
            kernel,
            stride,
            out,
            before: total / 2,
            after: total - total / 2,
        }
    }

    /// The input index that kernel tap `tap` of output `o` reads, or `None` in the padding.
    #[inline]
    pub fn input_of(&self, o: usize, tap: usize) -> Option<usize> {
        (o * self.stride + tap)
            .checked_sub(self.before)
            .filter(|&i| i < self.input)
    }

    /// The outputs whose kernel tap `tap` reads inside the input (a contiguous range).
    pub fn valid_outputs(&self, tap: usize) -> Range<usize> {
        let s = self.stride;
        let lo = self.before.saturating_sub(tap).div_ceil(s);
        let hi = if self.input + self.before > tap {
            (self.input + self.before - tap).div_ceil(s).min(self.out)
        } else {
            0
        };
        lo.min(hi)..hi
    }
}

#[cfg(test)]
mod tests {
    use super::SamePad;

    /// The README's examples, and `valid_outputs` agrees with `input_of` on every tap.
    #[test]
    fn same_padding_matches_tensorflow() {
        let p = SamePad::new(224, 3, 2);
        assert_eq!((p.out, p.before, p.after), (112, 0, 1));
        let p = SamePad::new(11, 5, 2);
        assert_eq!((p.out, p.before, p.after), (6, 2, 2));
        let p = SamePad::new(9, 3, 1);
        assert_eq!((p.out, p.before, p.after), (9, 1, 1));
        let p = SamePad::new(1, 5, 2);
        assert_eq!((p.out, p.before, p.after), (1, 2, 2));
        for (n, k, s) in [
            (7, 3, 1),
            (10, 3, 2),
            (11, 5, 2),
            (8, 5, 1),
            (1, 5, 2),
            (2, 5, 2),
        ] {
            let p = SamePad::new(n, k, s);
            for tap in 0..k {
                let want: Vec<usize> = (0..p.out)
                    .filter(|&o| p.input_of(o, tap).is_some())
                    .collect();
                let got: Vec<usize> = p.valid_outputs(tap).collect();
                assert_eq!(got, want, "n {n} k {k} s {s} tap {tap}");
            }
        }
    }
}
