//! Loading a [`BertEncoder`] from a Hugging Face `model.safetensors` by its tensor names.
//!
//! Every tensor the encoder uses must be present with the shape `config.json` implies; the
//! file's other tensors (the pooler, the `position_ids` buffer) are reported as unused.

use std::collections::BTreeSet;
use std::path::Path;

use dfdx::tensor::{Cpu, TensorFromVec};
use safetensors::{Dtype, SafeTensors};

use crate::bert::{BertEncoder, BertLayer, Embeddings, LayerNorm, Linear, Matrix, Vector};
use crate::config::BertConfig;
use crate::TextError;

/// What a load found besides the weights it used.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadReport {
    /// Tensors read, by name.
    pub used: Vec<String>,
    /// Tensors of the file that the encoder does not use (e.g. `pooler.dense.weight`).
    pub unused: Vec<String>,
}

struct Reader<'a> {
    st: SafeTensors<'a>,
    used: BTreeSet<String>,
    problems: Vec<String>,
    dev: Cpu,
}

impl Reader<'_> {
    fn values(&mut self, name: &str, shape: &[usize]) -> Vec<f32> {
        let n: usize = shape.iter().product();
        let view = match self.st.tensor(name) {
            Ok(v) => v,
            Err(_) => {
                self.problems
                    .push(format!("missing tensor {name} {shape:?}"));
                return vec![0.0; n];
            }
        };
        self.used.insert(name.to_string());
        if view.shape() != shape {
            self.problems.push(format!(
                "{name}: shape {:?}, config.json implies {shape:?}",
                view.shape()
            ));
            return vec![0.0; n];
        }
        match view.dtype() {
            Dtype::F32 => view
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect(),
            Dtype::F16 | Dtype::BF16 => {
                let bf = view.dtype() == Dtype::BF16;
                view.data()
                    .chunks_exact(2)
                    .map(|c| half_to_f32(u16::from_le_bytes([c[0], c[1]]), bf))
                    .collect()
            }
            other => {
                self.problems.push(format!(
                    "{name}: dtype {other:?}, expected F32, F16 or BF16"
                ));
                vec![0.0; n]
            }
        }
    }

    fn matrix(&mut self, name: &str, rows: usize, cols: usize) -> Matrix {
        let v = self.values(name, &[rows, cols]);
        self.dev.tensor_from_vec(v, (rows, cols))
    }

    fn vector(&mut self, name: &str, len: usize) -> Vector {
        let v = self.values(name, &[len]);
        self.dev.tensor_from_vec(v, (len,))
    }

    fn linear(&mut self, prefix: &str, inp: usize, out: usize) -> Linear {
        Linear {
            weight: self.matrix(&format!("{prefix}.weight"), out, inp),
            bias: self.vector(&format!("{prefix}.bias"), out),
        }
    }

    fn norm(&mut self, prefix: &str, len: usize, eps: f64) -> LayerNorm {
        LayerNorm {
            weight: self.vector(&format!("{prefix}.weight"), len),
            bias: self.vector(&format!("{prefix}.bias"), len),
            eps,
        }
    }
}

/// IEEE binary16 (or bfloat16 when `bf`) to f32, by value.
fn half_to_f32(h: u16, bf: bool) -> f32 {
    if bf {
        return f32::from_bits((h as u32) << 16);
    }
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, f) => {
            // Subnormal: value = f * 2^-24.
            let v = f as f32 * (1.0 / 16_777_216.0);
            return if sign != 0 { -v } else { v };
        }
        (31, f) => sign | 0x7f80_0000 | (f << 13),
        (e, f) => sign | ((e + 112) << 23) | (f << 13),
    };
    f32::from_bits(bits)
}

/// Reads the encoder of `config` from the safetensors bytes of `path`. A model prefix
/// (`bert.`) is stripped when every name carries it.
pub fn load_encoder(
    dev: &Cpu,
    config: &BertConfig,
    path: &Path,
    bytes: &[u8],
) -> Result<(BertEncoder, LoadReport), TextError> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| TextError::Weights {
        path: path.to_path_buf(),
        reason: format!(
            "not a safetensors file ({e}); fetch it again with `cargo xtask fetch minilm`"
        ),
    })?;
    let names: Vec<String> = st.names().into_iter().map(str::to_string).collect();
    let prefix = model_prefix(&names);
    let mut r = Reader {
        st,
        used: BTreeSet::new(),
        problems: Vec::new(),
        dev: dev.clone(),
    };
    let embeddings = r.embeddings(prefix, config);
    let layers = (0..config.num_hidden_layers)
        .map(|l| r.layer(&format!("{prefix}encoder.layer.{l}."), config))
        .collect();
    if !r.problems.is_empty() {
        return Err(TextError::Weights {
            path: path.to_path_buf(),
            reason: format!("does not match config.json:\n  {}", r.problems.join("\n  ")),
        });
    }
    let report = load_report(&names, r.used, path);
    Ok((
        BertEncoder {
            config: config.clone(),
            embeddings,
            layers,
            dev: dev.clone(),
        },
        report,
    ))
}

/// `bert.` when every one of `names` carries it (a model with a head), else nothing.
fn model_prefix(names: &[String]) -> &'static str {
    if !names.is_empty() && names.iter().all(|n| n.starts_with("bert.")) {
        "bert."
    } else {
        ""
    }
}

impl Reader<'_> {
    /// The three embedding tables and their LayerNorm, under `prefix`.
    fn embeddings(&mut self, prefix: &str, config: &BertConfig) -> Embeddings {
        let (h, eps) = (config.hidden_size, config.layer_norm_eps);
        let p = |n: &str| format!("{prefix}{n}");
        Embeddings {
            word: self.matrix(
                &p("embeddings.word_embeddings.weight"),
                config.vocab_size,
                h,
            ),
            position: self.matrix(
                &p("embeddings.position_embeddings.weight"),
                config.max_position_embeddings,
                h,
            ),
            token_type: self.matrix(
                &p("embeddings.token_type_embeddings.weight"),
                config.type_vocab_size,
                h,
            ),
            norm: self.norm(&p("embeddings.LayerNorm"), h, eps),
        }
    }

    /// One block, its tensors named `{prefix}attention.self.query.weight` and so on.
    fn layer(&mut self, prefix: &str, config: &BertConfig) -> BertLayer {
        let (h, i, eps) = (
            config.hidden_size,
            config.intermediate_size,
            config.layer_norm_eps,
        );
        let q = |n: &str| format!("{prefix}{n}");
        BertLayer {
            query: self.linear(&q("attention.self.query"), h, h),
            key: self.linear(&q("attention.self.key"), h, h),
            value: self.linear(&q("attention.self.value"), h, h),
            attention_out: self.linear(&q("attention.output.dense"), h, h),
            attention_norm: self.norm(&q("attention.output.LayerNorm"), h, eps),
            intermediate: self.linear(&q("intermediate.dense"), h, i),
            output: self.linear(&q("output.dense"), i, h),
            output_norm: self.norm(&q("output.LayerNorm"), h, eps),
        }
    }
}

/// The tensors used and those of `names` not used (sorted), the latter logged.
fn load_report(names: &[String], used: BTreeSet<String>, path: &Path) -> LoadReport {
    let mut unused: Vec<String> = names
        .iter()
        .filter(|n| !used.contains(*n))
        .cloned()
        .collect();
    unused.sort();
    let report = LoadReport {
        used: used.into_iter().collect(),
        unused,
    };
    if !report.unused.is_empty() {
        tracing::info!(path = %path.display(), unused = ?report.unused, "tensors not used by the encoder");
    }
    report
}

#[cfg(test)]
mod tests {
    use super::half_to_f32;

    #[test]
    fn half_conversion_by_value() {
        assert_eq!(half_to_f32(0x3c00, false), 1.0);
        assert_eq!(half_to_f32(0xc000, false), -2.0);
        assert_eq!(half_to_f32(0x0001, false), 2f32.powi(-24));
        assert_eq!(half_to_f32(0x7bff, false), 65504.0);
        assert_eq!(half_to_f32(0x3f80, true), 1.0);
    }
}
