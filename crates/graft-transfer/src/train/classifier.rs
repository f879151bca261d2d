//! The classifier loop: a whole classifier (backbone and head at their own learning rates)
//! trained on a batch stream, with watchers after each step (the monitor's curve, early
//! stopping on a validation set) and a checkpointer (training-state files, the stop check).

use std::path::PathBuf;
use std::time::Instant;

use dfdx::prelude::*;
use graft_data::checksum::fnv1a64;
use graft_nn::{Backbone, Classifier, INPUT_LEN};
use indicatif::ProgressBar;

use crate::control::{diverged, StateFiles, TrainControl, Validation};
use crate::examples::Examples;
use crate::metrics::{accuracy, check_width, mean_loss};
use crate::state;
use crate::train::plan::{CurvePoint, Monitor, TrainPlan, TrainStats};
use crate::train::progress::{patient, Progress};
use crate::train::step::{loss_and_grads, update, StepCost};
use crate::TransferError;

/// Trains `model` on `data` following `plan` (a plain run: see [`train_classifier_with`]).
pub fn train_classifier<B: Backbone<F>, const F: usize>(
    dev: &Cpu,
    model: &mut Classifier<B, F>,
    data: &Examples,
    plan: &TrainPlan,
    seed: u64,
    monitor: Option<Monitor<'_>>,
    bar: &ProgressBar,
) -> Result<TrainStats, TransferError> {
    let ctl = TrainControl::default();
    train_classifier_with(dev, model, data, plan, seed, monitor, bar, ctl)
}

/// [`train_classifier`] with early stopping, training-state files, resumption and a stop
/// check (`ctl`). A resumed run continues with the saved weights, optimiser moments, batch
/// order and step, and ends with the same weights as an uninterrupted one.
#[allow(clippy::too_many_arguments)]
pub fn train_classifier_with<B: Backbone<F>, const F: usize>(
    dev: &Cpu,
    model: &mut Classifier<B, F>,
    data: &Examples,
    plan: &TrainPlan,
    seed: u64,
    monitor: Option<Monitor<'_>>,
    bar: &ProgressBar,
    ctl: TrainControl<'_>,
) -> Result<TrainStats, TransferError> {
    check_width(data, INPUT_LEN)?;
    if let Some(v) = ctl.validation {
        check_width(v.data, INPUT_LEN)?;
    }
    let mut run = Progress::fresh(data, plan, seed);
    let mut saver = Checkpointer::new(&ctl, plan, seed, data.len());
    if let Some(saved) = ctl.resume {
        saved.check_fits(&saver.plan_hash, &saver.source_hash, plan, data.len(), seed)?;
        run.restore(saved, model, data, plan, seed)?;
        bar.inc(saved.header.step as u64);
        tracing::info!(path = %saved.path.display(), step = saved.header.step, "resuming training");
    }
    let cost = StepCost::of(model);
    let (mut xb, mut yb) = (Vec::new(), Vec::new());
    while run.step < plan.schedule.steps && patient(ctl.validation, &run.stopper) {
        let step = run.step;
        if ctl.should_stop(step) {
            let saved_to = saver.save(&run, model)?;
            return Err(TransferError::Interrupted { step, saved_to });
        }
        let started = Instant::now();
        data.gather(run.shuffler.next_batch(), &mut xb, &mut yb);
        let frozen = plan.frozen_prefix(step);
        let (value, mut grads) = loss_and_grads(dev, model, &xb, &yb, frozen);
        if !value.is_finite() {
            let last_saved = saver.last_saved.as_deref();
            return Err(diverged(step, value, model, B::NAME, ctl.state, last_saved));
        }
        run.flops += cost.flops(frozen, yb.len());
        update(&mut run.opt, model, &mut grads, plan, step)?;
        run.recent.push(value);
        run.seconds += started.elapsed().as_secs_f64();
        run.step += 1;
        bar.inc(1);
        let done = run.step == plan.schedule.steps;
        watch_curve(dev, model, monitor, &mut run, done)?;
        watch_validation(dev, model, ctl.validation, &mut run, done)?;
        saver.save_if_due(&run, model, done)?;
    }
    saver.save(&run, model)?;
    Ok(finish(model, run, ctl.validation.is_some()))
}

/// Draws the next point of the monitor's accuracy curve when one is due.
fn watch_curve<B: Backbone<F>, const F: usize>(
    dev: &Cpu,
    model: &Classifier<B, F>,
    monitor: Option<Monitor<'_>>,
    run: &mut Progress,
    done: bool,
) -> Result<(), TransferError> {
    let Some(m) = monitor else {
        return Ok(());
    };
    if run.step % m.every.max(1) == 0 || done {
        let accuracy = accuracy(dev, model, m.data)?;
        run.curve.push(CurvePoint {
            step: run.step,
            seconds: run.seconds,
            flops: run.flops,
            accuracy,
        });
    }
    Ok(())
}

/// Scores the validation set when due and tells early stopping (which keeps the best
/// weights and counts the evaluations without improvement).
fn watch_validation<B: Backbone<F>, const F: usize>(
    dev: &Cpu,
    model: &Classifier<B, F>,
    validation: Option<Validation<'_>>,
    run: &mut Progress,
    done: bool,
) -> Result<(), TransferError> {
    let Some(v) = validation else {
        return Ok(());
    };
    if run.step % v.early.every.max(1) == 0 || done {
        let loss = mean_loss(dev, model, v.data)?;
        run.stopper.observe(loss, run.step, model, v.early.patience);
    }
    Ok(())
}

/// The run's statistics; with early stopping, the best weights put back into `model`.
fn finish<B: Backbone<F>, const F: usize>(
    model: &mut Classifier<B, F>,
    run: Progress,
    early: bool,
) -> TrainStats {
    let best_step = early.then_some(run.stopper.best_step);
    if early && run.stopper.best_loss.is_some() {
        run.stopper.restore(model);
        tracing::info!(
            stopped_at = run.step,
            best_step = run.stopper.best_step,
            "early stopping restored the best weights"
        );
    }
    TrainStats {
        steps: run.step,
        best_step,
        final_loss: run.recent.mean(),
        flops: run.flops,
        seconds: run.seconds,
        curve: run.curve,
    }
}

/// Writes the run's training state: every `files.every` steps, on a stop and at the end;
/// remembers the last periodic save for the divergence error.
struct Checkpointer<'a> {
    files: Option<&'a StateFiles>,
    plan: &'a TrainPlan,
    seed: u64,
    examples: usize,
    early: bool,
    /// The plan's hash: a state saved under another plan is refused on resume.
    plan_hash: String,
    /// The source weights' hash, empty when unknown.
    source_hash: String,
    last_saved: Option<PathBuf>,
}

impl<'a> Checkpointer<'a> {
    fn new(ctl: &TrainControl<'a>, plan: &'a TrainPlan, seed: u64, examples: usize) -> Self {
        Checkpointer {
            files: ctl.state,
            plan,
            seed,
            examples,
            early: ctl.validation.is_some(),
            plan_hash: format!("{:016x}", fnv1a64(&[format!("{plan:?}").as_bytes()])),
            source_hash: ctl.source.map(|h| format!("{h:016x}")).unwrap_or_default(),
            last_saved: None,
        }
    }

    /// Saves the state now, if the run has a state folder: the file written.
    fn save<B: Backbone<F>, const F: usize>(
        &self,
        run: &Progress,
        model: &Classifier<B, F>,
    ) -> Result<Option<PathBuf>, TransferError> {
        let Some(files) = self.files else {
            return Ok(None);
        };
        let path = files.state_path();
        let header = state::StateHeader {
            plan: self.plan_hash.clone(),
            source: self.source_hash.clone(),
            ..run.header(self.plan, self.seed, self.examples, self.early)
        };
        let stopper = self.early.then_some(&run.stopper);
        state::save(&path, header, model, &run.opt, stopper)?;
        Ok(Some(path))
    }

    /// Saves when a periodic save is due (not on the last step: the end saves anyway).
    fn save_if_due<B: Backbone<F>, const F: usize>(
        &mut self,
        run: &Progress,
        model: &Classifier<B, F>,
        done: bool,
    ) -> Result<(), TransferError> {
        let due = self
            .files
            .and_then(|f| f.every)
            .is_some_and(|e| run.step % e.max(1) == 0 && !done);
        if due {
            self.last_saved = self.save(run, model)?;
        }
        Ok(())
    }
}
