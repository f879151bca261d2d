//! `graft embed`: sentence embeddings of a text data set, written in the feature-cache format.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Args;
use graft_data::text::{import_text_csv, TextCsvOptions};
use graft_data::TextDataset;
use graft_text::MiniLm;

/// `graft embed`.
#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// `minilm` (the model `cargo xtask fetch minilm` unpacks under --cache) or a folder
    /// holding config.json, tokenizer.json and model.safetensors.
    #[arg(long, default_value = "minilm")]
    pub model: String,
    /// A graft text data set (`.grafttx`), or a CSV file with a header and the columns
    /// `label,text` (imported first into --cache).
    #[arg(long)]
    pub data: PathBuf,
    /// Output: a graft data set of f32 rows (the feature-cache format), one per record; or,
    /// when it ends in `.npy`, a NumPy array (float32, one row per text).
    #[arg(long)]
    pub out: PathBuf,
    /// A LoRA adapter folder (adapter_config.json + adapter_model.safetensors, written by
    /// `graft transfer` or Hugging Face PEFT) or a bitfit folder, applied to the model.
    #[arg(long)]
    pub adapter: Option<PathBuf>,
    /// Texts per batch.
    #[arg(long, default_value_t = 64)]
    pub batch: usize,
    /// Folder of fetched models and imported data sets.
    #[arg(long, default_value = "runs/cache")]
    pub cache: PathBuf,
    /// Print a JSON summary.
    #[arg(long)]
    pub json: bool,
}

/// The model folder `--model` names.
fn model_dir(model: &str, cache: &Path) -> PathBuf {
    if model == graft_text::minilm::MODEL_NAME {
        match std::env::var_os("GRAFT_MINILM_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => cache.join("minilm").join(graft_text::minilm::MODEL_SUBDIR),
        }
    } else {
        PathBuf::from(model)
    }
}

/// The text data set `--data` names, importing a CSV file first.
fn open_data(data: &Path, cache: &Path) -> Result<TextDataset> {
    if data
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
    {
        let bytes =
            std::fs::read(data).with_context(|| format!("cannot read {}", data.display()))?;
        let hash = graft_data::checksum::fnv1a64(&[bytes.as_slice()]);
        std::fs::create_dir_all(cache)?;
        let out = cache.join(format!("text-{hash:016x}.grafttx"));
        if TextDataset::open(&out).is_err() {
            import_text_csv(data, &out, &TextCsvOptions::default())?;
        }
        return Ok(TextDataset::open(&out)?);
    }
    TextDataset::open(data).with_context(|| {
        format!(
            "{} is not a graft text data set (pass a .grafttx file or a CSV with columns label,text)",
            data.display()
        )
    })
}

/// Runs `graft embed`.
pub fn run(a: &EmbedArgs) -> Result<()> {
    if a.batch == 0 {
        bail!("--batch must be at least 1");
    }
    graft_data::output::check_outputs(&[&a.data], &[&a.out])?;
    let ds = open_data(&a.data, &a.cache)?;
    let mut model = MiniLm::open(&model_dir(&a.model, &a.cache))?;
    if let Some(dir) = &a.adapter {
        model = graft_text::transfer::load_adapted(&model, dir)
            .with_context(|| format!("cannot apply the adapter {}", dir.display()))?
            .0;
    }
    let bar = graft_text::progress::bar(ds.len() as u64, "embedding");
    let npy = a
        .out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("npy"));
    let progress = |n: usize| bar.set_position(n as u64);
    let summary = if npy {
        graft_text::embed_dataset_npy(&model, &ds, &a.out, a.batch, progress)?
    } else {
        graft_text::embed_dataset(&model, &ds, &a.out, a.batch, progress)?
    };
    bar.finish_and_clear();
    let rate = summary.rows as f64 / summary.seconds.max(1e-9);
    if a.json {
        crate::common::print_json(&serde_json::json!({
            "out": a.out,
            "rows": summary.rows,
            "dim": summary.dim,
            "seconds": summary.seconds,
            "sentences_per_second": rate,
            "provenance": summary.key.describe(),
        }))?;
    } else {
        println!(
            "{} embeddings of width {} written to {} ({:.1} s, {:.0} sentences/s)",
            summary.rows,
            summary.dim,
            a.out.display(),
            summary.seconds,
            rate
        );
    }
    Ok(())
}
