//! A linear softmax classifier trained full-batch with Adam on fixed feature rows (sparse
//! bag-of-words rows or dense sentence embeddings): the head of `scratch` and
//! `linear-probe`, and the initial head of `lp-ft`.

use crate::bow::SparseRow;

/// Settings of [`LinearHead::train`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeadConfig {
    /// Adam learning rate.
    pub lr: f32,
    /// Full-batch steps.
    pub steps: usize,
    /// L2 penalty on the weights (added to the gradient).
    pub weight_decay: f32,
}

impl Default for HeadConfig {
    fn default() -> Self {
        Self {
            lr: 1e-2,
            steps: 300,
            weight_decay: 1e-4,
        }
    }
}

/// `logits = W x + b`, `W` of shape `(classes, dim)` as PyTorch's `Linear`.
#[derive(Debug, Clone, PartialEq)]
pub struct LinearHead {
    /// Input width.
    pub dim: usize,
    /// Number of classes.
    pub classes: usize,
    /// `classes * dim` weights, row-major.
    pub weight: Vec<f32>,
    /// `classes` biases.
    pub bias: Vec<f32>,
}

/// Softmax of `z` in place (numerically stable).
pub fn softmax(z: &mut [f32]) {
    let m = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut s = 0.0;
    for v in z.iter_mut() {
        *v = (*v - m).exp();
        s += *v;
    }
    for v in z.iter_mut() {
        *v /= s;
    }
}

impl LinearHead {
    /// An all-zero head (the start of full-batch training: convex, so no seed is needed).
    pub fn zeros(dim: usize, classes: usize) -> Self {
        Self {
            dim,
            classes,
            weight: vec![0.0; dim * classes],
            bias: vec![0.0; classes],
        }
    }

    /// Logits of one row.
    pub fn logits(&self, row: &SparseRow) -> Vec<f32> {
        let mut z = self.bias.clone();
        for (c, zc) in z.iter_mut().enumerate() {
            let w = &self.weight[c * self.dim..(c + 1) * self.dim];
            *zc += row.iter().map(|&(i, v)| w[i as usize] * v).sum::<f32>();
        }
        z
    }

    /// The predicted class of one row.
    pub fn predict(&self, row: &SparseRow) -> usize {
        let z = self.logits(row);
        (0..z.len()).fold(0, |best, c| if z[c] > z[best] { c } else { best })
    }

    /// Fraction of `rows` predicted as `labels`.
    pub fn accuracy(&self, rows: &[SparseRow], labels: &[u32]) -> f64 {
        if rows.is_empty() {
            return 0.0;
        }
        let hits = rows
            .iter()
            .zip(labels)
            .filter(|(r, &l)| self.predict(r) == l as usize)
            .count();
        hits as f64 / rows.len() as f64
    }

    /// Trains a head from zero on `rows` with `labels` (< `classes`) by minimising the mean
    /// cross-entropy full-batch with Adam; returns it and the training FLOPs.
    pub fn train(
        rows: &[SparseRow],
        labels: &[u32],
        dim: usize,
        classes: usize,
        cfg: &HeadConfig,
    ) -> (Self, f64) {
        let mut head = Self::zeros(dim, classes);
        let flops = head.fit(rows, labels, cfg);
        (head, flops)
    }

    /// Continues training this head (see [`Self::train`]); returns the FLOPs spent.
    pub fn fit(&mut self, rows: &[SparseRow], labels: &[u32], cfg: &HeadConfig) -> f64 {
        self.fit_observed(rows, labels, cfg, &mut |_, _, _| {})
    }

    /// [`Self::fit`], calling `observe(head, step, FLOPs so far)` after every Adam step (for a
    /// training curve).
    pub fn fit_observed(
        &mut self,
        rows: &[SparseRow],
        labels: &[u32],
        cfg: &HeadConfig,
        observe: &mut dyn FnMut(&Self, usize, f64),
    ) -> f64 {
        let (d, c) = (self.dim, self.classes);
        let n = rows.len().max(1) as f32;
        let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        let mut m = vec![0.0f32; d * c + c];
        let mut v = vec![0.0f32; d * c + c];
        let mut g = vec![0.0f32; d * c + c];
        let nnz: usize = rows.iter().map(Vec::len).sum();
        // Forward and backward over the non-zeros, plus the Adam update of every parameter.
        let step_flops = 4.0 * nnz as f64 * c as f64 + 10.0 * (d * c + c) as f64;
        for step in 1..=cfg.steps {
            g.fill(0.0);
            for (row, &y) in rows.iter().zip(labels) {
                let mut p = self.logits(row);
                softmax(&mut p);
                p[y as usize] -= 1.0;
                for (k, &pk) in p.iter().enumerate() {
                    let gk = pk / n;
                    let gw = &mut g[k * d..(k + 1) * d];
                    for &(i, x) in row {
                        gw[i as usize] += gk * x;
                    }
                    g[d * c + k] += gk;
                }
            }
            for (i, w) in self.weight.iter().enumerate() {
                g[i] += cfg.weight_decay * w;
            }
            let (bc1, bc2) = (1.0 - b1.powi(step as i32), 1.0 - b2.powi(step as i32));
            for i in 0..d * c + c {
                m[i] = b1 * m[i] + (1.0 - b1) * g[i];
                v[i] = b2 * v[i] + (1.0 - b2) * g[i] * g[i];
                let upd = cfg.lr * (m[i] / bc1) / ((v[i] / bc2).sqrt() + eps);
                if i < d * c {
                    self.weight[i] -= upd;
                } else {
                    self.bias[i - d * c] -= upd;
                }
            }
            observe(self, step, step as f64 * step_flops);
        }
        cfg.steps as f64 * step_flops
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bow::dense_row;

    #[test]
    fn separable_points_are_learned_and_loss_gradient_is_right() {
        // Class = which coordinate is largest: a linear rule the head must find.
        let rows: Vec<SparseRow> = [
            [1.0, 0.1, 0.0],
            [0.0, 1.0, 0.2],
            [0.1, 0.0, 1.0],
            [0.9, 0.0, 0.2],
        ]
        .iter()
        .map(|r| dense_row(r))
        .collect();
        let labels = [0, 1, 2, 0];
        let (head, flops) = LinearHead::train(&rows, &labels, 3, 3, &HeadConfig::default());
        assert_eq!(head.accuracy(&rows, &labels), 1.0);
        assert!(flops > 0.0);
        // One plain gradient step from zero, checked by hand: with all logits 0 the
        // softmax is 1/3 each, so dL/db_k = mean over rows of (1/3 - [y == k]).
        let cfg = HeadConfig {
            lr: 1e-3,
            steps: 1,
            weight_decay: 0.0,
        };
        let (one, _) = LinearHead::train(&rows, &labels, 3, 3, &cfg);
        // Adam's first step moves every parameter with a non-zero gradient by lr in the
        // direction opposite to the gradient's sign: class 0 has 2 of 4 rows, so its bias
        // gradient 1/3 - 1/2 < 0 and the bias rises.
        assert!((one.bias[0] - 1e-3).abs() < 1e-6);
        assert!((one.bias[1] + 1e-3).abs() < 1e-6);
    }
}
