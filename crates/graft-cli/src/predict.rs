//! `graft predict`: the top ImageNet classes of photos through an ImageNet checkpoint.

use std::path::PathBuf;

use anyhow::{bail, Result};
use clap::Args;

/// `graft predict`.
#[derive(Debug, Args)]
pub struct PredictArgs {
    /// The ImageNet checkpoint (`cargo xtask fetch efficientnet-lite0` leaves it at
    /// runs/cache/efficientnet-lite0.safetensors; a `.pth` is converted on the way in).
    #[arg(long, default_value = "runs/cache/efficientnet-lite0.safetensors")]
    pub checkpoint: PathBuf,
    /// PNG or JPEG photos.
    #[arg(required = true)]
    pub photos: Vec<PathBuf>,
    /// How many classes to print per photo.
    #[arg(long, default_value_t = 5)]
    pub top: usize,
    /// Print `{"predictions": [{"file", "top5": [{"class", "name", "probability"}]}]}`.
    #[arg(long)]
    pub json: bool,
}

/// Classifies every photo and prints its best classes.
pub fn run(a: &PredictArgs) -> Result<()> {
    if a.top == 0 || a.top > 1000 {
        bail!("--top must be between 1 and 1000 (got {})", a.top);
    }
    if !a.checkpoint.exists() {
        bail!(
            "{}: no such checkpoint; run `cargo xtask fetch efficientnet-lite0` or give --checkpoint",
            a.checkpoint.display()
        );
    }
    let predictions = graft_transfer::predict::predict(&a.checkpoint, &a.photos, a.top)?;
    if a.json {
        return crate::common::print_json(&serde_json::json!({ "predictions": predictions }));
    }
    for p in &predictions {
        println!("{}", p.file.display());
        for c in &p.top5 {
            println!(
                "  {:>6.2}%  {:>3}  {}",
                c.probability * 100.0,
                c.class,
                c.name
            );
        }
    }
    Ok(())
}
