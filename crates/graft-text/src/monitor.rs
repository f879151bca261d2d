//! The text sweep's monitor set and training curves, from which the `fortunes` report reads
//! the time and FLOPs each strategy needs to reach scratch's accuracy (as the image sweeps do).

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use graft_data::TextView;
use graft_transfer::train::CurvePoint;

/// Monitor texts per class, taken from the pool outside each k-shot set.
pub const MONITOR_PER_CLASS: usize = 20;

/// Evaluations on the monitor set per training run (phase).
pub const CURVE_POINTS: usize = 10;

/// Pool texts held out of a k-shot set that track a run's accuracy while it trains. The
/// monitor never chooses anything (no early stopping, no model selection); the test split is
/// not touched.
#[derive(Debug, Clone, PartialEq)]
pub struct MonitorSet {
    /// Record indices into the data set.
    pub ids: Vec<usize>,
    /// Their labels.
    pub labels: Vec<u32>,
}

impl MonitorSet {
    /// The first `per_class` texts of each class of `pool`, in pool order, that are not in
    /// `shot`.
    pub fn new(pool: &TextView<'_>, shot: &TextView<'_>, per_class: usize) -> Self {
        let in_shot: HashSet<u32> = shot.indices().iter().copied().collect();
        let mut taken: BTreeMap<u32, usize> = BTreeMap::new();
        let (mut ids, mut labels) = (Vec::new(), Vec::new());
        for (&id, &label) in pool.indices().iter().zip(pool.labels()) {
            let n = taken.entry(label).or_default();
            if *n < per_class && !in_shot.contains(&id) {
                *n += 1;
                ids.push(id as usize);
                labels.push(label);
            }
        }
        Self { ids, labels }
    }

    /// Fraction of the set whose prediction (one per text, in order) equals its label.
    pub fn accuracy(&self, predicted: &[usize]) -> f64 {
        let hits = predicted
            .iter()
            .zip(&self.labels)
            .filter(|(p, &l)| **p == l as usize)
            .count();
        hits as f64 / self.labels.len().max(1) as f64
    }
}

/// Records a run's training curve; its clock leaves out the time spent evaluating.
#[derive(Debug)]
pub struct CurveRecorder {
    started: Instant,
    excluded: f64,
    per_phase: usize,
    every: usize,
    total: usize,
    flops_before: f64,
    /// The points so far.
    pub points: Vec<CurvePoint>,
}

impl CurveRecorder {
    /// A recorder, started now, for a phase of `total_steps` evaluated `points` times (every
    /// `total_steps / points` steps and at the last step).
    pub fn new(total_steps: usize, points: usize) -> Self {
        Self {
            started: Instant::now(),
            excluded: 0.0,
            per_phase: points.max(1),
            every: (total_steps / points.max(1)).max(1),
            total: total_steps,
            flops_before: 0.0,
            points: Vec::new(),
        }
    }

    /// Starts a new phase of `total_steps`, evaluated as often as the first, whose FLOPs add
    /// to `flops_before` (lp-ft's fine-tuning after its probe); time keeps running.
    pub fn next_phase(&mut self, total_steps: usize, flops_before: f64) {
        self.every = (total_steps / self.per_phase).max(1);
        self.total = total_steps;
        self.flops_before = flops_before;
    }

    /// Training seconds so far (evaluation excluded).
    pub fn seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64() - self.excluded
    }

    /// Runs `f` without counting its time as training (monitor-only work).
    pub fn exclude<R>(&mut self, f: impl FnOnce() -> R) -> R {
        let t = Instant::now();
        let r = f();
        self.excluded += t.elapsed().as_secs_f64();
        r
    }

    /// After step `step` (1-based) with `flops` spent in this phase: at every `every`-th step
    /// and the last, evaluates the monitor accuracy with `eval` and appends a point.
    pub fn observe<E>(
        &mut self,
        step: usize,
        flops: f64,
        eval: impl FnOnce() -> Result<f64, E>,
    ) -> Result<(), E> {
        if step % self.every != 0 && step != self.total {
            return Ok(());
        }
        let seconds = self.seconds();
        let accuracy = self.exclude(eval)?;
        self.points.push(CurvePoint {
            step,
            seconds,
            flops: self.flops_before + flops,
            accuracy,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points at every `every`-th step and the last; FLOPs continue across phases; time spent
    /// evaluating is not training time.
    #[test]
    fn recorder_samples_steps_and_leaves_evaluation_out_of_the_clock() {
        let wall = Instant::now();
        let mut rec = CurveRecorder::new(25, 10);
        for step in 1..=25 {
            rec.observe(step, step as f64, || {
                std::thread::sleep(std::time::Duration::from_millis(20));
                Ok::<_, ()>(0.5)
            })
            .unwrap();
        }
        let steps: Vec<usize> = rec.points.iter().map(|p| p.step).collect();
        assert_eq!(steps, (2..=24).step_by(2).chain([25]).collect::<Vec<_>>());
        // 13 evaluations of at least 20 ms each are not training time.
        let wall = wall.elapsed().as_secs_f64();
        assert!(rec.seconds() <= wall - 0.26, "{} of {wall}", rec.seconds());
        rec.next_phase(3, 100.0);
        rec.observe(3, 7.0, || Ok::<_, ()>(0.9)).unwrap();
        let last = rec.points.last().unwrap();
        assert_eq!((last.step, last.flops, last.accuracy), (3, 107.0, 0.9));
        assert!(rec.points.windows(2).all(|w| w[0].seconds <= w[1].seconds));
    }

    /// At most `per_class` texts of each class, none of them in the k-shot set, in pool order.
    #[test]
    fn monitor_set_holds_out_the_shot_and_caps_each_class() {
        let path =
            std::env::temp_dir().join(format!("graft-monitor-{}.grafttx", std::process::id()));
        let texts: Vec<String> = (0..30).map(|i| format!("text {i}")).collect();
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let labels: Vec<u32> = (0..30).map(|i| (i % 3) as u32).collect();
        let meta = graft_data::Metadata {
            class_names: vec!["a".into(), "b".into(), "c".into()],
            provenance: "test".into(),
            ..Default::default()
        };
        graft_data::write_text_dataset(&path, &refs, &labels, &meta).unwrap();
        let ds = graft_data::TextDataset::open(&path).unwrap();
        let pool = ds.view();
        let shot = pool.k_shot(2, 7).unwrap();
        let m = MonitorSet::new(&pool, &shot, 4);
        std::fs::remove_file(&path).unwrap();
        let in_shot: HashSet<usize> = shot.indices().iter().map(|&i| i as usize).collect();
        assert_eq!(m.ids.len(), 12);
        assert!(m.ids.iter().all(|i| !in_shot.contains(i)));
        for c in 0..3u32 {
            let ids: Vec<usize> = m
                .ids
                .iter()
                .zip(&m.labels)
                .filter(|(_, &l)| l == c)
                .map(|(&i, _)| i)
                .collect();
            let want: Vec<usize> = (0..30)
                .filter(|&i| i % 3 == c as usize && !in_shot.contains(&i))
                .take(4)
                .collect();
            assert_eq!(ids, want, "class {c}");
        }
    }

    /// Accuracy counts matching labels over the whole set.
    #[test]
    fn monitor_accuracy_counts_matches() {
        let m = MonitorSet {
            ids: vec![4, 7, 9, 12],
            labels: vec![0, 1, 1, 2],
        };
        assert_eq!(m.accuracy(&[0, 1, 2, 2]), 0.75);
    }
}
