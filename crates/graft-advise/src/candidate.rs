//! [`Candidate`]: a source to score, as named on the command line: a checkpoint path, or
//! `random:NETWORK[:SEED]` for a randomly initialised network (the stand-in for training from
//! scratch).

use std::path::PathBuf;

use graft_nn::NetworkKind;

use crate::AdviseError;

/// Where a candidate's backbone comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Candidate {
    /// A graft (safetensors) checkpoint holding a whole network, head included.
    Checkpoint(PathBuf),
    /// A randomly initialised network.
    Random {
        /// Which reference network.
        kind: NetworkKind,
        /// Seed of dfdx's device generator (PyTorch's default initialisation).
        seed: u64,
    },
}

impl Candidate {
    /// Whether this is a randomly initialised network.
    pub fn is_random(&self) -> bool {
        matches!(self, Candidate::Random { .. })
    }
}

impl std::fmt::Display for Candidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Candidate::Checkpoint(p) => write!(f, "{}", p.display()),
            Candidate::Random { kind, seed: 0 } => write!(f, "random:{}", kind.name()),
            Candidate::Random { kind, seed } => write!(f, "random:{}:{seed}", kind.name()),
        }
    }
}

impl std::str::FromStr for Candidate {
    type Err = AdviseError;
    /// `random:convnet`, `random:mlp:7`, or a checkpoint path.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let Some(rest) = s.strip_prefix("random:") else {
            if s.is_empty() {
                return Err(AdviseError::Config(
                    "an empty candidate: give a checkpoint path or random:NETWORK".into(),
                ));
            }
            return Ok(Candidate::Checkpoint(PathBuf::from(s)));
        };
        let bad = |reason: String| AdviseError::Candidate {
            candidate: s.to_string(),
            reason,
        };
        let (kind, seed) = match rest.split_once(':') {
            Some((k, seed)) => (
                k,
                seed.parse::<u64>()
                    .map_err(|_| bad(format!("seed `{seed}` is not a whole number")))?,
            ),
            None => (rest, 0),
        };
        let kind = kind.parse::<NetworkKind>().map_err(bad)?;
        Ok(Candidate::Random { kind, seed })
    }
}
