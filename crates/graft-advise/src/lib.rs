#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

pub mod advise;
pub mod candidate;
pub mod dissent;
pub mod eigen;
pub mod error;
pub mod evaluate;
pub mod features;
pub mod gram;
pub mod hscore;
pub mod knn;
pub mod labelled;
pub mod leep;
pub mod logme;
pub mod network;
pub mod rank;
pub mod recommend;
pub mod score;
pub mod spectrum;

pub use advise::{advise, Advice, AdviseConfig};
pub use candidate::Candidate;
pub use dissent::{dissent, Dissent};
pub use error::AdviseError;
pub use hscore::hscore;
pub use knn::{knn_loo_accuracy, DEFAULT_NEIGHBOURS};
pub use labelled::LabelledFeatures;
pub use leep::{leep, nce, SourcePredictions};
pub use logme::logme;
pub use rank::spearman;
pub use recommend::{recommend, Recommendation};
pub use score::CandidateScore;
pub use spectrum::{ProjectedSpectrum, Spectrum};
