//! The text strategies of the `fortunes` protocol.

use std::str::FromStr;

use crate::bert::Proj;
use crate::peft::{LoraSpec, PeftMethod};
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
    /// LoRA adapters of rank `rank` (scale `alpha / rank`) on MiniLM's chosen projections
    /// and a new head; everything else frozen (`lora[:RANK[:ALPHA]]`).
    Lora {
        /// `r`.
        rank: usize,
        /// `lora_alpha` (an integer, as PEFT's configurations hold it).
        alpha: u32,
    },
    /// Every bias and LayerNorm of MiniLM and a new head (`bitfit`).
    BitFit,
}

/// Rank of `lora` without one.
pub const DEFAULT_LORA_RANK: usize = 8;

impl TextStrategy {
    /// Every strategy, in report order.
    pub const ALL: [TextStrategy; 4] = [
        TextStrategy::Scratch,
        TextStrategy::LinearProbe,
        TextStrategy::FineTune,
        TextStrategy::LpFt,
    ];

    /// The id used on the command line and in reports (`lora:R:A` with both numbers).
    pub fn name(self) -> String {
        match self {
            TextStrategy::Scratch => "scratch".into(),
            TextStrategy::LinearProbe => "linear-probe".into(),
            TextStrategy::FineTune => "fine-tune".into(),
            TextStrategy::LpFt => "lp-ft".into(),
            TextStrategy::Lora { rank, alpha } => format!("lora:{rank}:{alpha}"),
            TextStrategy::BitFit => "bitfit".into(),
        }
    }

    /// The parameter-efficient method of `lora` (adapters on `targets`, `dropout` on their
    /// input) and `bitfit`; `None` for the others.
    pub fn peft_method(self, targets: &[Proj], dropout: f32) -> Option<PeftMethod> {
        match self {
            TextStrategy::Lora { rank, alpha } => Some(PeftMethod::Lora(LoraSpec {
                rank,
                alpha: alpha as f32,
                dropout,
                targets: targets.to_vec(),
            })),
            TextStrategy::BitFit => Some(PeftMethod::BitFit),
            _ => None,
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
        if s == "bitfit" {
            return Ok(TextStrategy::BitFit);
        }
        if let Some(rest) = s
            .strip_prefix("lora")
            .filter(|r| r.is_empty() || r.starts_with(':'))
        {
            let parts: Vec<&str> = rest.split(':').skip(1).collect();
            let bad = || {
                TextError::Invalid(format!(
                    "`{s}`: write lora, lora:RANK or lora:RANK:ALPHA (positive integers)"
                ))
            };
            if parts.len() > 2 {
                return Err(bad());
            }
            let rank = match parts.first() {
                Some(r) => r.parse::<usize>().ok().filter(|&r| r > 0).ok_or_else(bad)?,
                None => DEFAULT_LORA_RANK,
            };
            let alpha = match parts.get(1) {
                Some(a) => a.parse::<u32>().ok().filter(|&a| a > 0).ok_or_else(bad)?,
                None => 2 * rank as u32,
            };
            return Ok(TextStrategy::Lora { rank, alpha });
        }
        Self::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                TextError::Invalid(format!(
                    "unknown text strategy `{s}`: use scratch, linear-probe, fine-tune, lp-ft, \
                     lora[:RANK[:ALPHA]] or bitfit"
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

#[cfg(test)]
mod tests {
    use super::TextStrategy;

    #[test]
    fn lora_and_bitfit_parse() {
        let p = |s: &str| s.parse::<TextStrategy>();
        assert_eq!(
            p("lora:4").unwrap(),
            TextStrategy::Lora { rank: 4, alpha: 8 }
        );
        assert_eq!(
            p("lora:4:32").unwrap(),
            TextStrategy::Lora { rank: 4, alpha: 32 }
        );
        assert_eq!(
            p("lora").unwrap(),
            TextStrategy::Lora { rank: 8, alpha: 16 }
        );
        assert_eq!(p("bitfit").unwrap(), TextStrategy::BitFit);
        for bad in [
            "lora:0",
            "lora:4:0",
            "lora:x",
            "lora:1:2:3",
            "loraa",
            "lora:",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
        assert_eq!(TextStrategy::Lora { rank: 4, alpha: 8 }.name(), "lora:4:8");
        assert_eq!(
            p(&p("lora:2:3").unwrap().name()).unwrap(),
            p("lora:2:3").unwrap()
        );
    }
}
