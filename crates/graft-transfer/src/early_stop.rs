//! Early stopping on a validation part carved from the k labelled examples (PROTOCOLS.md:
//! selection never touches the test split), restoring the best weights at the end.
//!
//! The carve takes `fraction` of each class's labelled examples (rounded, at least 1) as
//! validation, only when every class has at least `min_per_class` examples; otherwise
//! training uses all of them and early stopping is off for that run. The k-shot set is
//! already a seeded random draw, so the validation rows are the last ones of each class.

use graft_nn::Parameters;

use crate::examples::Examples;
use crate::TransferError;

/// Early-stopping settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EarlyStopping {
    /// Share of each class's labelled examples held out for validation.
    pub fraction: f32,
    /// Fewest labelled examples per class for which a validation part is carved.
    pub min_per_class: usize,
    /// Steps between validation evaluations.
    pub every: usize,
    /// Evaluations without a lower validation loss before training stops.
    pub patience: usize,
}

impl Default for EarlyStopping {
    /// 20% of each class (at least 1) from 5 labels per class on, checked every 25 steps,
    /// patience 4 evaluations.
    fn default() -> Self {
        Self {
            fraction: 0.2,
            min_per_class: 5,
            every: 25,
            patience: 4,
        }
    }
}

impl std::str::FromStr for EarlyStopping {
    type Err = TransferError;
    /// `on` (the defaults) or `PATIENCE` or `PATIENCE:EVERY`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            TransferError::Config(format!(
                "bad early-stopping setting `{s}`: expected `on`, PATIENCE or PATIENCE:EVERY \
                 (positive integers, e.g. 4:25)"
            ))
        };
        let mut es = EarlyStopping::default();
        if s == "on" {
            return Ok(es);
        }
        let (p, e) = s.split_once(':').unwrap_or((s, ""));
        es.patience = p.parse().map_err(|_| bad())?;
        if !e.is_empty() {
            es.every = e.parse().map_err(|_| bad())?;
        }
        if es.patience == 0 || es.every == 0 {
            return Err(bad());
        }
        Ok(es)
    }
}

/// Splits `data` into (training, validation) as the [module docs](self) say, or `None`
/// when a class has fewer than `min_per_class` examples.
pub fn carve(data: &Examples, es: &EarlyStopping) -> Option<(Examples, Examples)> {
    let mut counts = vec![0usize; data.num_classes];
    for &c in &data.y {
        counts[c] += 1;
    }
    if counts.iter().any(|&n| n < es.min_per_class.max(2)) {
        return None;
    }
    let held: Vec<usize> = counts
        .iter()
        .map(|&n| ((n as f32 * es.fraction).round() as usize).clamp(1, n - 1))
        .collect();
    // Rows are validation when they are among the last `held[c]` of their class.
    let mut seen = vec![0usize; data.num_classes];
    let (mut train, mut val) = (Vec::new(), Vec::new());
    for (i, &c) in data.y.iter().enumerate() {
        seen[c] += 1;
        if seen[c] > counts[c] - held[c] {
            val.push(i);
        } else {
            train.push(i);
        }
    }
    let part = |rows: &[usize]| {
        let (mut x, mut y) = (Vec::new(), Vec::new());
        data.gather(rows, &mut x, &mut y);
        Examples {
            x,
            y,
            width: data.width,
            num_classes: data.num_classes,
        }
    };
    Some((part(&train), part(&val)))
}

/// Tracks the best validation loss and keeps a copy of the weights that reached it (the
/// buffers are reused: a copy is made only on improvement).
#[derive(Debug, Clone, Default)]
pub struct Stopper {
    /// Best validation loss so far.
    pub best_loss: Option<f32>,
    /// Step (updates done) at which it was reached.
    pub best_step: usize,
    /// Evaluations since the last improvement.
    pub bad: usize,
    /// The best weights, by parameter name in visiting order.
    pub best: Vec<(String, Vec<f32>)>,
}

impl Stopper {
    /// Records the validation loss after `step` updates; returns `true` when patience is
    /// exhausted.
    pub fn observe(
        &mut self,
        loss: f32,
        step: usize,
        model: &impl Parameters,
        patience: usize,
    ) -> bool {
        if self.best_loss.map_or(true, |b| loss < b) {
            self.best_loss = Some(loss);
            self.best_step = step;
            self.bad = 0;
            let mut i = 0;
            let best = &mut self.best;
            model.visit_params(&mut |name, p| {
                if best.len() <= i {
                    best.push((name.to_string(), Vec::new()));
                }
                let slot = &mut best[i].1;
                slot.resize(p.numel(), 0.0);
                p.read_into(slot);
                i += 1;
            });
            false
        } else {
            self.bad += 1;
            self.bad >= patience
        }
    }

    /// Writes the best weights back into `model` (nothing if none was recorded).
    pub fn restore(&self, model: &mut impl Parameters) {
        let mut i = 0;
        let best = &self.best;
        model.visit_params_mut(&mut |_, p| {
            if let Some((_, w)) = best.get(i) {
                p.write_from(w);
            }
            i += 1;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::{carve, EarlyStopping};
    use crate::examples::Examples;

    fn data(per_class: usize) -> Examples {
        let n = 2 * per_class;
        Examples {
            x: (0..n).map(|i| i as f32).collect(),
            y: (0..n).map(|i| i % 2).collect(),
            width: 1,
            num_classes: 2,
        }
    }

    #[test]
    fn carves_a_fifth_of_each_class_and_never_overlaps() {
        let es = EarlyStopping::default();
        let (train, val) = carve(&data(10), &es).unwrap();
        assert_eq!((train.len(), val.len()), (16, 4));
        assert_eq!(val.y.iter().filter(|&&c| c == 0).count(), 2);
        // The last two of each class: rows 16..20.
        assert_eq!(val.x, [16.0, 17.0, 18.0, 19.0]);
        assert!(train.x.iter().all(|v| !val.x.contains(v)));
        // k = 5 keeps at least one per class; below the minimum there is no carve.
        let (t5, v5) = carve(&data(5), &es).unwrap();
        assert_eq!((t5.len(), v5.len()), (8, 2));
        assert!(carve(&data(4), &es).is_none());
    }

    #[test]
    fn settings_parse() {
        assert_eq!(
            "on".parse::<EarlyStopping>().unwrap(),
            EarlyStopping::default()
        );
        let es: EarlyStopping = "3:10".parse().unwrap();
        assert_eq!((es.patience, es.every), (3, 10));
        assert!("0".parse::<EarlyStopping>().is_err());
        assert!("x".parse::<EarlyStopping>().is_err());
    }
}
