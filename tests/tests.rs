//! graft's integration tests, compiled as one binary (ripgrep's layout).

mod util;

mod checkpoint;
mod protocol;
mod reference;
mod rust_source;
mod tidy;
