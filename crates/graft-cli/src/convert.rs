//! `graft convert`: a PyTorch checkpoint (`torch.save`, zip or legacy format) to
//! safetensors, read without running its pickle.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use graft_pth::{ConvertOptions, ConvertReport};

/// `graft convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The PyTorch checkpoint (`.pth`, `.pt`, `.bin`) written by `torch.save`.
    pub input: PathBuf,
    /// The safetensors file to write (same tensor names, same element types).
    pub output: PathBuf,
    /// Strip this prefix from tensor names that have it (e.g. `module.`).
    #[arg(long)]
    pub prefix_strip: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Converts and prints what was written and what was left out.
pub fn run(a: &ConvertArgs) -> Result<()> {
    let options = ConvertOptions {
        prefix_strip: a.prefix_strip.clone(),
        ..ConvertOptions::default()
    };
    let report = graft_pth::convert(&a.input, &a.output, &options)?;
    if a.json {
        return crate::common::print_json(&report);
    }
    print!("{}", table(&report));
    Ok(())
}

/// One line per tensor written, one per entry skipped, then a summary line.
fn table(r: &ConvertReport) -> String {
    let width = r
        .written
        .iter()
        .map(|t| t.name.len())
        .chain(r.skipped.iter().map(|s| s.name.len()))
        .max()
        .unwrap_or(4)
        .max(4);
    let mut out = format!("{:<width$}  {:<8}  shape\n", "name", "dtype");
    for t in &r.written {
        out += &format!("{:<width$}  {:<8}  {:?}\n", t.name, t.dtype, t.shape);
    }
    for s in &r.skipped {
        out += &format!("{:<width$}  skipped   {}\n", s.name, s.reason);
    }
    out += &format!(
        "wrote {} tensors ({} values, {} bytes) from {} ({} format, {}) to {}; skipped {}\n",
        r.written.len(),
        r.values,
        r.bytes,
        r.input.display(),
        r.format.name(),
        r.location,
        r.output.display(),
        r.skipped.len()
    );
    out
}
