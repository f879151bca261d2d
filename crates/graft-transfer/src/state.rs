//! Training-state files: everything needed to continue a run exactly where it stopped —
//! weights, optimiser moments and step counts, the batch shuffler's position, the cost so
//! far and the early-stopping record — written atomically (temporary file + rename).
//!
//! Format (little-endian): the 8 bytes `GRAFTST1`, a u64 header length, the header as JSON
//! ([`StateHeader`] plus a tensor table), then every tensor's f32 values in table order.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use graft_nn::Parameters;
use serde::{Deserialize, Serialize};

use crate::early_stop::Stopper;
use crate::optim::{Moments, Optimizer};
use crate::train::plan::{CurvePoint, TrainPlan};
use crate::TransferError;

const MAGIC: &[u8; 8] = b"GRAFTST1";

/// The scalar part of a training state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StateHeader {
    /// Optimiser updates done.
    pub step: usize,
    /// Updates the run was planned for.
    pub total_steps: usize,
    /// The run's seed.
    pub seed: u64,
    /// Training examples.
    pub examples: usize,
    /// Batch size.
    pub batch: usize,
    /// Permutations the shuffler has drawn.
    pub shuffles: u64,
    /// Position in the current permutation.
    pub pos: usize,
    /// Optimiser name (`adam`, `adamw`, `sgd`).
    pub optimizer: String,
    /// Optimiser updates (its own count).
    pub optimizer_step: u32,
    /// Training FLOPs so far.
    pub flops: f64,
    /// Training seconds so far.
    pub seconds: f64,
    /// The last epoch's losses.
    pub recent: Vec<f32>,
    /// Monitor curve so far.
    pub curve: Vec<CurvePoint>,
    /// Early stopping: best validation loss, its step and evaluations since.
    pub early: Option<(f32, usize, usize)>,
    /// FNV-1a 64 of the training plan (strategy's learning rates and freezing, schedule,
    /// optimiser, regulariser), hex; empty in files written before it was recorded.
    #[serde(default)]
    pub plan: String,
    /// FNV-1a 64 of the source backbone's weights (the checkpoint the run reuses), hex;
    /// empty where the caller gave none and in files written before it was recorded.
    #[serde(default)]
    pub source: String,
}

#[derive(Debug, Serialize, Deserialize)]
struct TensorEntry {
    name: String,
    /// `weight`, `m`, `v` or `best`.
    role: String,
    /// Per-parameter update count (optimiser moments only).
    t: u32,
    len: usize,
}

#[derive(Debug, Serialize, Deserialize)]
struct FileHeader {
    state: StateHeader,
    tensors: Vec<TensorEntry>,
}

/// A training state read back from disk.
#[derive(Debug, Clone)]
pub struct TrainingState {
    /// Where it was read from.
    pub path: PathBuf,
    /// Scalars.
    pub header: StateHeader,
    /// Weights by parameter name.
    pub weights: Vec<(String, Vec<f32>)>,
    pub(crate) moments: HashMap<String, Moments>,
    pub(crate) best: Vec<(String, Vec<f32>)>,
}

impl TrainingState {
    /// Refuses to continue a run other than the one that saved this state: another plan
    /// (`plan_hash`), other source weights (`source_hash`, when both are known), or another
    /// number of examples, batch, step count or seed.
    pub(crate) fn check_fits(
        &self,
        plan_hash: &str,
        source_hash: &str,
        plan: &TrainPlan,
        examples: usize,
        seed: u64,
    ) -> Result<(), TransferError> {
        let h = &self.header;
        let refuse = |what: &str, how: &str| {
            TransferError::Config(format!(
                "{}: saved by a run with {what}; resume with {how}, or start afresh without \
                 --resume",
                self.path.display()
            ))
        };
        if !h.plan.is_empty() && h.plan != plan_hash {
            return Err(refuse(
                "another training plan (strategy, schedule, optimiser or learning rates)",
                "the same --strategy, --schedule, --optimizer and rates",
            ));
        }
        if !h.source.is_empty() && !source_hash.is_empty() && h.source != source_hash {
            return Err(refuse(
                "another source checkpoint (other backbone weights)",
                "the same --checkpoint",
            ));
        }
        let schedule = plan.schedule;
        if (h.examples, h.batch, h.total_steps, h.seed)
            != (examples, schedule.batch, schedule.steps, seed)
        {
            return Err(TransferError::Config(format!(
                "{}: saved for {} examples, batch {}, {} steps, seed {}; this run has {}, {}, \
                 {}, {}; resume with the same --k, --seed and strategy",
                self.path.display(),
                h.examples,
                h.batch,
                h.total_steps,
                h.seed,
                examples,
                schedule.batch,
                schedule.steps,
                seed
            )));
        }
        Ok(())
    }
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> TransferError + '_ {
    move |source| TransferError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes `model`'s weights, `opt`'s state and the early-stopping record with `header`
/// to `path` atomically.
pub(crate) fn save(
    path: &Path,
    header: StateHeader,
    model: &impl Parameters,
    opt: &Optimizer,
    stopper: Option<&Stopper>,
) -> Result<(), TransferError> {
    let mut tensors = Vec::new();
    let mut data: Vec<u8> = Vec::new();
    let mut push = |name: &str, role: &str, t: u32, values: &[f32]| {
        tensors.push(TensorEntry {
            name: name.to_string(),
            role: role.to_string(),
            t,
            len: values.len(),
        });
        data.extend(values.iter().flat_map(|v| v.to_le_bytes()));
    };
    let mut buf = Vec::new();
    model.visit_params(&mut |name, p| {
        buf.resize(p.numel(), 0.0);
        p.read_into(&mut buf);
        push(name, "weight", 0, &buf);
    });
    let mut names: Vec<&String> = opt.state.keys().collect();
    names.sort();
    for name in names {
        let m = &opt.state[name];
        push(name, "m", m.t, &m.m);
        push(name, "v", m.t, &m.v);
    }
    for (name, w) in stopper.map_or(&[][..], |s| &s.best) {
        push(name, "best", 0, w);
    }
    let json = serde_json::to_vec(&FileHeader {
        state: header,
        tensors,
    })
    .map_err(|e| TransferError::Config(format!("{}: {e}", path.display())))?;
    let mut bytes = Vec::with_capacity(16 + json.len() + data.len());
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&(json.len() as u64).to_le_bytes());
    bytes.extend_from_slice(&json);
    bytes.extend_from_slice(&data);
    graft_nn::checkpoint::write_atomically(path, &bytes)?;
    Ok(())
}

/// Reads a training state written by a training loop (`graft transfer --state-dir`).
pub fn load(path: &Path) -> Result<TrainingState, TransferError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let bad = |why: &str| {
        TransferError::Config(format!(
            "{}: not a usable graft training state ({why}); pass a `.state` file written by \
             --state-dir, or start without --resume",
            path.display()
        ))
    };
    if bytes.len() < 16 || &bytes[..8] != MAGIC {
        return Err(bad("missing the GRAFTST1 signature"));
    }
    let hlen = u64::from_le_bytes(bytes[8..16].try_into().unwrap_or_default());
    let hend = usize::try_from(hlen)
        .ok()
        .and_then(|h| h.checked_add(16))
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| bad("header length beyond the end of the file"))?;
    let header: FileHeader =
        serde_json::from_slice(&bytes[16..hend]).map_err(|e| bad(&format!("header: {e}")))?;
    let mut at = hend;
    let mut state = TrainingState {
        path: path.to_path_buf(),
        header: header.state,
        weights: Vec::new(),
        moments: HashMap::new(),
        best: Vec::new(),
    };
    for entry in header.tensors {
        let end = entry
            .len
            .checked_mul(4)
            .and_then(|n| n.checked_add(at))
            .filter(|&e| e <= bytes.len())
            .ok_or_else(|| {
                bad(&format!(
                    "tensor {} runs past the end of the file",
                    entry.name
                ))
            })?;
        let values: Vec<f32> = bytes[at..end]
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        at = end;
        match entry.role.as_str() {
            "weight" => state.weights.push((entry.name, values)),
            "best" => state.best.push((entry.name, values)),
            "m" | "v" => {
                let m = state.moments.entry(entry.name).or_default();
                m.t = entry.t;
                if entry.role == "m" {
                    m.m = values;
                } else {
                    m.v = values;
                }
            }
            other => return Err(bad(&format!("unknown tensor role `{other}`"))),
        }
    }
    if at != bytes.len() {
        return Err(bad("trailing bytes after the last tensor"));
    }
    Ok(state)
}

impl TrainingState {
    /// Writes the saved weights into `model`, checking every name and size first.
    pub fn restore_weights(&self, model: &mut impl Parameters) -> Result<(), TransferError> {
        let mut problems = Vec::new();
        let mut seen = 0;
        model.visit_params(
            &mut |name, p| match self.weights.iter().find(|(n, _)| n == name) {
                Some((_, w)) if w.len() == p.numel() => seen += 1,
                Some((_, w)) => problems.push(format!(
                    "{name}: {} values, the network has {}",
                    w.len(),
                    p.numel()
                )),
                None => problems.push(format!("{name}: missing")),
            },
        );
        if seen != self.weights.len() && problems.is_empty() {
            problems.push(format!(
                "{} tensors the network does not have",
                self.weights.len() - seen
            ));
        }
        if !problems.is_empty() {
            return Err(TransferError::Config(format!(
                "{}: training state does not fit this network ({}); resume with the same \
                 --model and --strategy that wrote it",
                self.path.display(),
                problems.join("; ")
            )));
        }
        model.visit_params_mut(&mut |name, p| {
            if let Some((_, w)) = self.weights.iter().find(|(n, _)| n == name) {
                p.write_from(w);
            }
        });
        Ok(())
    }

    /// The optimiser as saved, for `config` (which must have the saved name).
    pub(crate) fn optimizer(&self, opt: &mut Optimizer) -> Result<(), TransferError> {
        if opt.config().name() != self.header.optimizer {
            return Err(TransferError::Config(format!(
                "{}: saved with optimizer {}, resumed with {}; pass --optimizer {}",
                self.path.display(),
                self.header.optimizer,
                opt.config().name(),
                self.header.optimizer
            )));
        }
        opt.step = self.header.optimizer_step;
        opt.state = self.moments.clone();
        Ok(())
    }

    /// The early-stopping record as saved.
    pub(crate) fn stopper(&self) -> Stopper {
        let (best_loss, best_step, bad) = match self.header.early {
            Some((l, s, b)) => (Some(l), s, b),
            None => (None, 0, 0),
        };
        Stopper {
            best_loss,
            best_step,
            bad,
            best: self.best.clone(),
        }
    }
}
