//! `graft advise`: arguments, the target data set, and the printed answer. The estimators and
//! the recommendation live in graft-advise.

use std::path::Path;

use anyhow::{Context, Result};
use clap::Args;
use graft_advise::{advise, Advice, AdviseConfig, Candidate};
use graft_data::{Dataset, Part, SplitRule, View};
use graft_transfer::tasks::SplitChoice;
use graft_transfer::Protocol;

use crate::common::{parse_split, Locations};

/// `graft advise`.
#[derive(Debug, Args)]
pub struct AdviseArgs {
    /// The labelled target: a graft data set file, or a protocol id (`animals`,
    /// `fashion-split`, `fashion-to-animals`) for its target pool.
    #[arg(long)]
    pub target: String,
    /// Keep these original labels of a data set file, renumbered 0.. in the order given
    /// (e.g. `2,4`).
    #[arg(long, value_delimiter = ',')]
    pub classes: Option<Vec<u32>>,
    /// Which part of a data set file to draw from (Animal-MNIST split rule).
    #[arg(long, default_value = "all", value_parser = parse_split)]
    pub split: SplitChoice,
    /// Labelled images per class drawn from the target (the label budget).
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Seed of the k-shot draw (the same draw as `graft sweep`'s seed).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Candidate sources, comma separated: checkpoints (whole networks, head included: graft's
    /// own, or the ImageNet `runs/cache/efficientnet-lite0.safetensors`) and `random:convnet`
    /// / `random:mlp[:SEED]` / `random:efficientnet-lite0` (randomly initialised; one per
    /// network is added as the scratch baseline when none is given).
    #[arg(long, value_delimiter = ',', required = true)]
    pub candidates: Vec<String>,
    /// Blocks to score, comma separated (default: every block of each network).
    #[arg(long, value_delimiter = ',')]
    pub layers: Option<Vec<String>>,
    /// Neighbours of the leave-one-out kNN estimate.
    #[arg(long, default_value_t = graft_advise::DEFAULT_NEIGHBOURS)]
    pub neighbours: usize,
    /// Do not read or write the feature cache (`<cache>/advise-features`).
    #[arg(long)]
    pub no_cache: bool,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub loc: Locations,
    /// Print one JSON object: `{"candidates": [...], "recommendation": {...}}`.
    #[arg(long)]
    pub json: bool,
}

impl AdviseArgs {
    fn config(&self) -> Result<AdviseConfig> {
        let candidates = self
            .candidates
            .iter()
            .map(|c| c.parse::<Candidate>())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AdviseConfig {
            candidates,
            layers: self.layers.clone(),
            k: self.k,
            seed: self.seed,
            neighbours: self.neighbours,
            cache_dir: (!self.no_cache).then(|| self.loc.cache.join("advise-features")),
        })
    }
}

/// Runs `graft advise` and prints its answer.
pub fn run(a: &AdviseArgs) -> Result<()> {
    anyhow::ensure!(
        a.k >= 2,
        "--k {} is too small: advise needs at least 2 labelled images per class",
        a.k
    );
    let cfg = a.config()?;
    // The feature cache is written after every extraction: a bad one fails before them.
    if let Some(dir) = &cfg.cache_dir {
        graft_transfer::options::check_writable_dir("--cache (advise feature cache)", dir)?;
    }
    let path = Path::new(&a.target);
    let advice = match a.target.parse::<Protocol>() {
        Ok(protocol) if !path.exists() => {
            let data = protocol.open(&a.loc.dirs(), &a.loc.cache)?;
            advise(&protocol.target_pool(&data)?, &cfg)?
        }
        _ => {
            let ds = Dataset::open(path).with_context(|| {
                format!("--target {}: not a graft data set file nor a protocol id (animals, fashion-split, fashion-to-animals)", a.target)
            })?;
            advise(&file_view(&ds, a)?, &cfg)?
        }
    };
    if a.json {
        println!("{}", serde_json::to_string_pretty(&advice)?);
    } else {
        print!("{}", table(&advice));
    }
    Ok(())
}

fn file_view<'a>(ds: &'a Dataset, a: &AdviseArgs) -> Result<View<'a>> {
    let view = ds.view();
    let mut view = match a.split {
        SplitChoice::All => view,
        SplitChoice::Train => view.split(SplitRule::ANIMAL_MNIST, Part::Train)?,
        SplitChoice::Test => view.split(SplitRule::ANIMAL_MNIST, Part::Test)?,
    };
    if let Some(c) = &a.classes {
        view = view.select_classes(c)?;
    }
    Ok(view)
}

/// The ranked candidates and the recommendation as text.
fn table(advice: &Advice) -> String {
    // As wide as the longest block name (EfficientNet's `_blocks.15`).
    let w = advice
        .candidates
        .iter()
        .map(|c| c.layer.len())
        .max()
        .unwrap_or(0)
        .max(6);
    let mut out = format!(
        "{:<48} {:<w$} {:>9} {:>8} {:>8} {:>8} {:>6}\n",
        "candidate", "layer", "LogME", "LEEP", "NCE", "H-score", "kNN"
    );
    for c in &advice.candidates {
        out += &format!(
            "{:<48} {:<w$} {:>9.4} {:>8.4} {:>8.4} {:>8.3} {:>5.1}%\n",
            shorten(&c.checkpoint, 48),
            c.layer,
            c.logme,
            c.leep,
            c.nce,
            c.hscore,
            100.0 * c.knn
        );
    }
    let r = &advice.recommendation;
    out += &format!(
        "\nrecommendation: {}{} ({} labels per class, {} classes; {:.1} s)\n{}\n",
        r.strategy,
        match (&r.checkpoint, &r.layer) {
            (Some(c), Some(l)) => format!(" from {c} (block {l})"),
            _ => String::new(),
        },
        advice.k,
        advice.classes,
        advice.seconds,
        r.reason
    );
    out
}

/// The last `width` characters of `s`, marked with `...` when cut.
fn shorten(s: &str, width: usize) -> String {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() <= width {
        return s.to_string();
    }
    let tail: String = chars[chars.len() - (width - 3)..].iter().collect();
    format!("...{tail}")
}
