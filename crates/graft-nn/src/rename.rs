//! Rename rules: map a checkpoint's tensor names onto graft's PyTorch names.
//!
//! Checkpoints from other code often nest the network (`model.backbone.conv1.weight`) or
//! carry extra tensors. Rules apply to every tensor name in the file, in order; a rule whose
//! replacement is empty drops the tensor.

use regex::Regex;

use crate::NnError;

/// One rule.
#[derive(Debug, Clone)]
pub enum RenameRule {
    /// Remove this prefix where present (`model.` turns `model.fc1.weight` into `fc1.weight`).
    StripPrefix(String),
    /// Replace matches of the regex (`$1` etc. refer to groups); an empty result drops the tensor.
    Regex(Regex, String),
}

/// An ordered list of rules; the default (no rules) keeps every name.
#[derive(Debug, Clone, Default)]
pub struct RenameRules(pub Vec<RenameRule>);

impl RenameRules {
    /// Parses `PATTERN=REPLACEMENT` (the command line's `--rename`).
    pub fn regex_rule(spec: &str) -> Result<RenameRule, NnError> {
        let (pattern, replacement) = spec.split_once('=').ok_or_else(|| {
            NnError::Shape(format!(
                "rename rule `{spec}` must look like PATTERN=REPLACEMENT"
            ))
        })?;
        let re = Regex::new(pattern)
            .map_err(|e| NnError::Shape(format!("rename rule `{spec}`: bad regex: {e}")))?;
        Ok(RenameRule::Regex(re, replacement.to_string()))
    }

    /// The graft name for a file's tensor `name`, or `None` if a rule drops it.
    pub fn apply(&self, name: &str) -> Option<String> {
        let mut out = name.to_string();
        for rule in &self.0 {
            match rule {
                RenameRule::StripPrefix(p) => {
                    if let Some(rest) = out.strip_prefix(p.as_str()) {
                        out = rest.to_string();
                    }
                }
                RenameRule::Regex(re, rep) => {
                    if re.is_match(&out) {
                        out = re.replace_all(&out, rep.as_str()).into_owned();
                    }
                }
            }
            if out.is_empty() {
                return None;
            }
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_apply_in_order_and_empty_drops() {
        let rules = RenameRules(vec![
            RenameRule::StripPrefix("param.".into()),
            RenameRules::regex_rule(r"^(grad\..*|input|labels|logits|loss_sum)$=").unwrap(),
            RenameRules::regex_rule(r"^backbone\.(.*)$=$1").unwrap(),
        ]);
        assert_eq!(
            rules.apply("param.conv1.weight").as_deref(),
            Some("conv1.weight")
        );
        assert_eq!(rules.apply("grad.conv1.weight"), None);
        assert_eq!(rules.apply("logits"), None);
        assert_eq!(
            rules.apply("backbone.fc1.bias").as_deref(),
            Some("fc1.bias")
        );
        assert_eq!(RenameRules::default().apply("x").as_deref(), Some("x"));
        assert!(RenameRules::regex_rule("no-equals-sign").is_err());
        assert!(RenameRules::regex_rule("(unclosed=x").is_err());
    }
}
