#![doc = include_str!("../README.md")]
#![deny(missing_docs)]

/// Calls `$func::<Backbone, FEATURES>(args...)` for the network chosen at run time.
macro_rules! for_network {
    ($kind:expr, $func:ident ( $($arg:expr),* $(,)? )) => {
        match $kind {
            graft_nn::NetworkKind::Mlp => {
                $func::<graft_nn::MlpBackbone, { graft_nn::mlp::MLP_FEATURES }>($($arg),*)
            }
            graft_nn::NetworkKind::Convnet => {
                $func::<graft_nn::ConvnetBackbone, { graft_nn::convnet::CONVNET_FEATURES }>($($arg),*)
            }
            graft_nn::NetworkKind::Lite0 => {
                $func::<
                    graft_nn::Lite0Grey<{ graft_nn::lite0_grey::GREY_SIDE }>,
                    { graft_nn::efficientnet::EFFNET_FEATURES },
                >($($arg),*)
            }
            graft_nn::NetworkKind::Lite0At224 => {
                $func::<graft_nn::Lite0Grey<224>, { graft_nn::efficientnet::EFFNET_FEATURES }>(
                    $($arg),*
                )
            }
        }
    };
}

pub mod control;
pub mod csv;
pub mod early_stop;
pub mod energy;
pub mod error;
pub mod examples;
pub mod head_gpu;
pub mod head_train;
pub mod interrupt;
pub mod l2sp;
pub mod lr_schedule;
pub mod merge;
pub mod metrics;
pub mod optim;
pub mod options;
pub mod plot;
pub mod predict;
pub mod pretrain;
pub mod protocol;
pub mod report;
pub mod shard;
pub mod state;
pub mod stats;
pub mod strategy;
pub mod sweep;
pub mod tasks;
pub mod train;

pub use error::TransferError;
pub use examples::Examples;
pub use lr_schedule::LrSchedule;
pub use optim::OptimizerConfig;
pub use protocol::Protocol;
pub use strategy::Strategy;
pub use sweep::{run_sweep, SweepConfig, SweepOutcome};
