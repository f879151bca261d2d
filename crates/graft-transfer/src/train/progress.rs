//! Where a classifier run stands (what a training-state file holds besides the tensors), the
//! running loss, the patience test of early stopping and the progress bar.

use graft_nn::Parameters;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::control::Validation;
use crate::early_stop::Stopper;
use crate::examples::{Examples, Shuffler};
use crate::optim::Optimizer;
use crate::state::{StateHeader, TrainingState};
use crate::train::plan::{CurvePoint, TrainPlan};
use crate::TransferError;

/// A progress bar on stderr, drawn only when stderr is a terminal.
pub fn progress_bar(len: u64, label: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template("{msg:>24} [{bar:30}] {pos}/{len} {elapsed}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message(label.to_string());
    bar
}

/// Where a classifier run stands; what a training-state file holds besides the tensors.
pub(crate) struct Progress {
    pub(crate) shuffler: Shuffler,
    pub(crate) opt: Optimizer,
    pub(crate) stopper: Stopper,
    pub(crate) step: usize,
    pub(crate) flops: f64,
    pub(crate) seconds: f64,
    pub(crate) curve: Vec<CurvePoint>,
    pub(crate) recent: Recent,
}

impl Progress {
    /// A run on `data` that has not taken a step.
    pub(crate) fn fresh(data: &Examples, plan: &TrainPlan, seed: u64) -> Self {
        let batch = plan.schedule.batch;
        Progress {
            shuffler: Shuffler::new(data.len(), batch, seed),
            opt: Optimizer::new(plan.optimizer),
            stopper: Stopper::default(),
            step: 0,
            flops: 0.0,
            seconds: 0.0,
            curve: Vec::new(),
            recent: Recent::new(data.len().div_ceil(batch)),
        }
    }

    /// Continues from `saved` (already checked to fit this run): its weights into `model`,
    /// its optimiser moments, batch order, step, costs, curve and recent losses.
    pub(crate) fn restore(
        &mut self,
        saved: &TrainingState,
        model: &mut impl Parameters,
        data: &Examples,
        plan: &TrainPlan,
        seed: u64,
    ) -> Result<(), TransferError> {
        let h = &saved.header;
        saved.restore_weights(model)?;
        saved.optimizer(&mut self.opt)?;
        let batch = plan.schedule.batch;
        self.shuffler = Shuffler::resume(data.len(), batch, seed, h.shuffles, h.pos);
        self.stopper = saved.stopper();
        (self.step, self.flops, self.seconds) = (h.step, h.flops, h.seconds);
        self.curve = h.curve.clone();
        h.recent.iter().for_each(|&v| self.recent.push(v));
        Ok(())
    }

    /// The state file's header for this point of the run (without the plan and source
    /// hashes, which the saver adds).
    pub(crate) fn header(
        &self,
        plan: &TrainPlan,
        seed: u64,
        examples: usize,
        early: bool,
    ) -> StateHeader {
        let (shuffles, pos) = self.shuffler.position();
        StateHeader {
            step: self.step,
            total_steps: plan.schedule.steps,
            seed,
            examples,
            batch: plan.schedule.batch,
            shuffles,
            pos,
            optimizer: self.opt.config().name().into(),
            optimizer_step: self.opt.steps(),
            flops: self.flops,
            seconds: self.seconds,
            recent: self.recent.values.iter().copied().collect(),
            curve: self.curve.clone(),
            early: early
                .then_some(self.stopper.best_loss)
                .flatten()
                .map(|l| (l, self.stopper.best_step, self.stopper.bad)),
            plan: String::new(),
            source: String::new(),
        }
    }
}

/// Whether training may go on: no early stopping, or patience not yet exhausted.
pub(crate) fn patient(validation: Option<Validation<'_>>, s: &Stopper) -> bool {
    validation.map_or(true, |v| s.bad < v.early.patience)
}

/// Running mean of the last `n` losses.
pub(crate) struct Recent {
    values: std::collections::VecDeque<f32>,
    n: usize,
}

impl Recent {
    pub(crate) fn new(n: usize) -> Self {
        Self {
            values: Default::default(),
            n: n.max(1),
        }
    }
    pub(crate) fn push(&mut self, v: f32) {
        if self.values.len() == self.n {
            self.values.pop_front();
        }
        self.values.push_back(v);
    }
    pub(crate) fn mean(&self) -> f32 {
        self.values.iter().sum::<f32>() / self.values.len().max(1) as f32
    }
}
