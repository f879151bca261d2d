//! The text strategies of the `fortunes` protocol.

use std::str::FromStr;

use crate::TextError;

/// How a text classifier is obtained from the k-shot texts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextStrategy {
    /// A TF-IDF bag of words (hashed unigrams and bigrams) and a linear head, trained on
    /// the k-shot texts only.
    Scratch,
    /// A linear head on cached MiniLM sentence embeddings.
    LinearProbe,
    /// MiniLM's top blocks and a new head trained together, the lower blocks frozen.
    FineTune,
    /// `linear-probe` first, then `fine-tune` starting from the probe's head.
    LpFt,
}

impl TextStrategy {
    /// Every strategy, in report order.
    pub const ALL: [TextStrategy; 4] = [
        TextStrategy::Scratch,
        TextStrategy::LinearProbe,
        TextStrategy::FineTune,
        TextStrategy::LpFt,
    ];

    /// The id used on the command line and in reports.
    pub fn name(self) -> &'static str {
        match self {
            TextStrategy::Scratch => "scratch",
            TextStrategy::LinearProbe => "linear-probe",
            TextStrategy::FineTune => "fine-tune",
            TextStrategy::LpFt => "lp-ft",
        }
    }

    /// Whether it trains MiniLM's blocks (and so needs the frozen states).
    pub fn trains_blocks(self) -> bool {
        matches!(self, TextStrategy::FineTune | TextStrategy::LpFt)
    }
}

impl FromStr for TextStrategy {
    type Err = TextError;
    fn from_str(s: &str) -> Result<Self, TextError> {
        Self::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                TextError::Invalid(format!(
                    "unknown text strategy `{s}`: use scratch, linear-probe, fine-tune or lp-ft"
                ))
            })
    }
}

/// Parses a comma-separated list (`all` = every strategy).
pub fn parse_list(names: &[String]) -> Result<Vec<TextStrategy>, TextError> {
    let mut out = Vec::new();
    for n in names {
        if n == "all" {
            out.extend(TextStrategy::ALL);
        } else {
            out.push(n.parse()?);
        }
    }
    Ok(out)
}
