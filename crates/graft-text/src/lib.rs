#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

mod adam;
pub mod adapter;
pub mod bert;
pub mod bow;
pub mod config;
pub mod error;
pub mod features;
pub mod finetune;
pub mod fortunes;
pub mod head;
pub mod infer;
pub mod lora;
pub mod minilm;
pub mod monitor;
pub mod peft;
pub mod progress;
pub mod strategy;
pub mod sweep;
pub mod tokenize;
pub mod transfer;
pub mod weights;

pub use bert::BertEncoder;
pub use config::BertConfig;
pub use error::TextError;
pub use features::{embed_dataset, embed_dataset_npy, EmbedSummary};
pub use infer::{FastEncoder, Layout};
pub use minilm::MiniLm;
pub use strategy::TextStrategy;
pub use sweep::{run_fortunes_sweep, TextSweepConfig, TextSweepOutcome};
pub use tokenize::{TextTokenizer, TokenBatch};
pub use weights::LoadReport;
