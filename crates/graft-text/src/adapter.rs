//! LoRA adapters in Hugging Face PEFT's layout: a folder with `adapter_config.json` and
//! `adapter_model.safetensors`, read and written so that `PeftModel.from_pretrained(
//! AutoModel.from_pretrained(base), dir)` loads graft's adapters and graft loads PEFT's.
//!
//! Tensor names are PEFT's for a BERT `AutoModel`:
//! `base_model.model.encoder.layer.N.attention.self.query.lora_A.weight` (`(r, in)`) and
//! `...lora_B.weight` (`(out, r)`). graft's classification head is saved beside them as
//! `base_model.model.classifier.{weight,bias}` and named in `modules_to_save` (PEFT's
//! convention for a trained module that is not an adapter); a Hugging Face `AutoModel` has
//! no `classifier`, so PEFT leaves those two tensors aside, and graft reads them back.

use std::collections::BTreeMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors};
use serde_json::{json, Value};

use crate::bert::{BertEncoder, Proj};
use crate::head::LinearHead;
use crate::peft::{target_names, PeftMethod, PeftNet};
use crate::TextError;

/// The config file's name.
pub const CONFIG_FILE: &str = "adapter_config.json";
/// The weights file's name.
pub const WEIGHTS_FILE: &str = "adapter_model.safetensors";
/// PEFT's prefix of every tensor name.
const PREFIX: &str = "base_model.model.";
/// The PEFT release whose `adapter_config.json` graft writes (its keys checked by running
/// it: `benches/peers/peft_lora.py`).
pub const PEFT_VERSION: &str = "0.21.2";
/// The head's module name (in `modules_to_save`).
pub const HEAD_MODULE: &str = "classifier";

/// One adapted projection's matrices.
#[derive(Debug, Clone, PartialEq)]
pub struct AdapterWeights {
    /// Rank of this adapter.
    pub rank: usize,
    /// `(r, in)`.
    pub a: Vec<f32>,
    /// `(out, r)`.
    pub b: Vec<f32>,
    /// Input width.
    pub inp: usize,
    /// Output width.
    pub out: usize,
}

/// A LoRA adapter for a BERT encoder (and optionally a head), as PEFT stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraAdapter {
    /// `r`.
    pub rank: usize,
    /// `lora_alpha`.
    pub alpha: f32,
    /// `lora_dropout` (training only).
    pub dropout: f32,
    /// `use_rslora`: scale `alpha / sqrt(r)` instead of `alpha / r`.
    pub rslora: bool,
    /// `target_modules`, as written.
    pub target_modules: Vec<String>,
    /// `base_model_name_or_path`.
    pub base_model: String,
    /// Adapters by (block, projection).
    pub weights: BTreeMap<(usize, Proj), AdapterWeights>,
    /// The head on L2-normalised sentence embeddings, when saved.
    pub head: Option<LinearHead>,
}

fn invalid(dir: &Path, reason: impl Into<String>) -> TextError {
    TextError::Weights {
        path: dir.to_path_buf(),
        reason: reason.into(),
    }
}

fn tensor_name(layer: usize, p: Proj, which: char) -> String {
    format!(
        "{PREFIX}encoder.layer.{layer}.{}.lora_{which}.weight",
        p.path()
    )
}

impl LoraAdapter {
    /// The adapter of a trained `lora` network (its head included).
    pub fn from_net(net: &PeftNet, base_model: &str) -> Result<Self, TextError> {
        let PeftMethod::Lora(spec) = &net.method else {
            return Err(TextError::Invalid(
                "only a `lora` network has a LoRA adapter".into(),
            ));
        };
        let mut weights = BTreeMap::new();
        for (li, l) in net.layers.iter().enumerate() {
            for (&p, (fl, ad)) in Proj::ALL.iter().zip(l.linears.iter().zip(&l.adapters)) {
                if let Some(a) = ad {
                    weights.insert(
                        (li, p),
                        AdapterWeights {
                            rank: a.rank(),
                            a: a.a.as_vec(),
                            b: a.b.as_vec(),
                            inp: fl.inp,
                            out: fl.out,
                        },
                    );
                }
            }
        }
        Ok(Self {
            rank: spec.rank,
            alpha: spec.alpha,
            dropout: spec.dropout,
            rslora: false,
            target_modules: target_names(&spec.targets),
            base_model: base_model.to_string(),
            weights,
            head: Some(net.linear_head()),
        })
    }

    /// The factor of `B A`: `alpha / r` (or `alpha / sqrt(r)` with rsLoRA).
    pub fn scale(&self) -> f32 {
        if self.rslora {
            self.alpha / (self.rank as f32).sqrt()
        } else {
            self.alpha / self.rank as f32
        }
    }

    /// Values stored (adapters and head).
    pub fn parameters(&self) -> usize {
        let heads = self
            .head
            .as_ref()
            .map_or(0, |h| h.weight.len() + h.bias.len());
        self.weights
            .values()
            .map(|w| w.a.len() + w.b.len())
            .sum::<usize>()
            + heads
    }

    /// `adapter_config.json` with every key PEFT 0.21.2's `save_pretrained` writes for a BERT
    /// `AutoModel` (its defaults for the ones graft does not use).
    pub fn config_json(&self) -> Value {
        let alpha = if self.alpha.fract() == 0.0 {
            json!(self.alpha as i64)
        } else {
            json!(self.alpha)
        };
        let modules_to_save = if self.head.is_some() {
            json!([HEAD_MODULE])
        } else {
            Value::Null
        };
        json!({
            "alora_invocation_tokens": null,
            "alpha_pattern": {},
            "arrow_config": null,
            "auto_mapping": {
                "base_model_class": "BertModel",
                "parent_library": "transformers.models.bert.modeling_bert"
            },
            "base_model_name_or_path": self.base_model,
            "bias": "none",
            "corda_config": null,
            "ensure_weight_tying": false,
            "eva_config": null,
            "exclude_modules": null,
            "fan_in_fan_out": false,
            "inference_mode": true,
            "init_lora_weights": true,
            "kasa_config": null,
            "layer_replication": null,
            "layers_pattern": null,
            "layers_to_transform": null,
            "loftq_config": {},
            "lora_alpha": alpha,
            "lora_bias": false,
            // Through its shortest decimal form, so that 0.1 is written 0.1, not the f32's
            // 0.10000000149011612.
            "lora_dropout": self.dropout.to_string().parse::<f64>().unwrap_or(0.0),
            "lora_ga_config": null,
            "megatron_config": null,
            "megatron_core": "megatron.core",
            "modules_to_save": modules_to_save,
            "monteclora_config": null,
            "peft_type": "LORA",
            "peft_version": PEFT_VERSION,
            "qalora_group_size": 16,
            "r": self.rank,
            "rank_pattern": {},
            "revision": null,
            "target_modules": self.target_modules,
            "target_parameters": null,
            "task_type": null,
            "trainable_token_indices": null,
            "use_bdlora": null,
            "use_dora": false,
            "use_qalora": false,
            "use_rslora": self.rslora,
            "velora_config": null
        })
    }

    /// Writes `dir/adapter_config.json` and `dir/adapter_model.safetensors` (each atomically;
    /// `dir` is created).
    pub fn save(&self, dir: &Path) -> Result<(), TextError> {
        std::fs::create_dir_all(dir).map_err(TextError::io("create", dir))?;
        let mut tensors: Vec<(String, Vec<usize>, Vec<u8>)> = Vec::new();
        let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        for (&(l, p), w) in &self.weights {
            tensors.push((tensor_name(l, p, 'A'), vec![w.rank, w.inp], bytes(&w.a)));
            tensors.push((tensor_name(l, p, 'B'), vec![w.out, w.rank], bytes(&w.b)));
        }
        if let Some(h) = &self.head {
            tensors.push((
                format!("{PREFIX}{HEAD_MODULE}.weight"),
                vec![h.classes, h.dim],
                bytes(&h.weight),
            ));
            tensors.push((
                format!("{PREFIX}{HEAD_MODULE}.bias"),
                vec![h.classes],
                bytes(&h.bias),
            ));
        }
        let path = dir.join(WEIGHTS_FILE);
        let mut views = Vec::with_capacity(tensors.len());
        for (name, dims, data) in &tensors {
            let view = safetensors::tensor::TensorView::new(Dtype::F32, dims.clone(), data)
                .map_err(|e| invalid(&path, format!("{name}: {e}")))?;
            views.push((name.clone(), view));
        }
        let meta = std::collections::HashMap::from([("format".to_string(), "pt".to_string())]);
        let st =
            safetensors::serialize(views, Some(meta)).map_err(|e| invalid(&path, e.to_string()))?;
        let write = |path: &Path, data: &[u8]| {
            graft_nn::checkpoint::write_atomically(path, data)
                .map_err(|e| invalid(path, e.to_string()))
        };
        write(&path, &st)?;
        let config = serde_json::to_vec_pretty(&self.config_json())
            .map_err(|e| invalid(dir, e.to_string()))?;
        write(&dir.join(CONFIG_FILE), &config)
    }

    /// Reads an adapter folder written by graft or by PEFT (`save_pretrained`). Refuses what
    /// graft cannot apply exactly (DoRA, per-module ranks, `fan_in_fan_out`, trained
    /// biases, tensors it does not know).
    pub fn load(dir: &Path) -> Result<Self, TextError> {
        let cfg = read_config(&dir.join(CONFIG_FILE))?;
        let wpath = dir.join(WEIGHTS_FILE);
        let bytes = std::fs::read(&wpath).map_err(TextError::io("read", &wpath))?;
        let st = SafeTensors::deserialize(&bytes)
            .map_err(|e| invalid(&wpath, format!("not a safetensors file ({e})")))?;
        let found = sort_tensors(&st, &wpath, cfg.rank)?;
        let mut problems = found.problems;
        let head = head_of(found.head_w, found.head_b, &mut problems);
        if found.weights.is_empty() {
            problems.push("no lora_A/lora_B tensors".into());
        }
        if !problems.is_empty() {
            return Err(invalid(&wpath, problems.join("; ")));
        }
        Ok(Self {
            rank: cfg.rank,
            alpha: cfg.alpha,
            dropout: cfg.dropout,
            rslora: cfg.rslora,
            target_modules: cfg.target_modules,
            base_model: cfg.base_model,
            weights: found.weights,
            head,
        })
    }

    /// `encoder` with every adapter merged (`W + scale B A`); refuses adapters whose block or
    /// shapes the encoder does not have.
    pub fn merge_into(&self, encoder: &BertEncoder) -> Result<BertEncoder, TextError> {
        let mut out = encoder.clone();
        let s = self.scale();
        for (&(l, p), w) in &self.weights {
            let layers = out.layers.len();
            let lin = out
                .layers
                .get_mut(l)
                .ok_or_else(|| {
                    TextError::Invalid(format!("the adapter has block {l}; the model has {layers}"))
                })?
                .linear_mut(p);
            let (o, i) = *dfdx::shapes::HasShape::shape(&lin.weight);
            if (o, i) != (w.out, w.inp) {
                return Err(TextError::Invalid(format!(
                    "adapter of encoder.layer.{l}.{} is {}x{}, the model's weight {o}x{i}",
                    p.path(),
                    w.out,
                    w.inp
                )));
            }
            let params = crate::lora::LoraParams {
                a: dfdx::tensor::TensorFromVec::tensor_from_vec(
                    &encoder.dev,
                    w.a.clone(),
                    (w.rank, w.inp),
                ),
                b: dfdx::tensor::TensorFromVec::tensor_from_vec(
                    &encoder.dev,
                    w.b.clone(),
                    (w.out, w.rank),
                ),
                scale: s,
            };
            let merged = params.merged(&lin.weight.as_vec(), o, i);
            lin.weight = dfdx::tensor::TensorFromVec::tensor_from_vec(&encoder.dev, merged, (o, i));
        }
        Ok(out)
    }

    /// FNV-1a 64 of the adapter's values and scale (for cache keys).
    pub fn content_hash(&self) -> u64 {
        let mut parts: Vec<Vec<u8>> = vec![self.scale().to_le_bytes().to_vec()];
        for (&(l, p), w) in &self.weights {
            parts.push(format!("{l}.{}", p.path()).into_bytes());
            parts.push(
                w.a.iter()
                    .chain(&w.b)
                    .flat_map(|v| v.to_le_bytes())
                    .collect(),
            );
        }
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        graft_data::checksum::fnv1a64(&refs)
    }
}

/// What graft reads of `adapter_config.json`.
struct AdapterConfig {
    rank: usize,
    alpha: f32,
    dropout: f32,
    rslora: bool,
    target_modules: Vec<String>,
    base_model: String,
}

/// `cfg[k]` when present and not `null`.
fn present<'a>(cfg: &'a Value, k: &str) -> Option<&'a Value> {
    cfg.get(k).filter(|v| !v.is_null())
}

/// `cfg[k]` as a boolean, `false` when absent.
fn flag(cfg: &Value, k: &str) -> bool {
    present(cfg, k).and_then(Value::as_bool).unwrap_or(false)
}

/// Reads and checks `adapter_config.json` at `cpath`.
fn read_config(cpath: &Path) -> Result<AdapterConfig, TextError> {
    let text = std::fs::read_to_string(cpath).map_err(TextError::io("read", cpath))?;
    let cfg: Value =
        serde_json::from_str(&text).map_err(|e| invalid(cpath, format!("not JSON: {e}")))?;
    parse_config(&cfg, cpath)
}

/// The settings of a LoRA config, refusing what graft cannot apply exactly.
fn parse_config(cfg: &Value, cpath: &Path) -> Result<AdapterConfig, TextError> {
    let get = |k: &str| present(cfg, k);
    if get("peft_type").and_then(Value::as_str) != Some("LORA") {
        return Err(invalid(cpath, "peft_type is not \"LORA\""));
    }
    let rank = get("r")
        .and_then(Value::as_u64)
        .filter(|&r| r > 0)
        .ok_or_else(|| invalid(cpath, "r is missing or not a positive integer"))?
        as usize;
    let alpha = get("lora_alpha")
        .and_then(Value::as_f64)
        .ok_or_else(|| invalid(cpath, "lora_alpha is missing"))? as f32;
    let dropout = get("lora_dropout").and_then(Value::as_f64).unwrap_or(0.0) as f32;
    refuse_unsupported(cfg, cpath)?;
    let target_modules = match get("target_modules") {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    };
    let base_model = get("base_model_name_or_path")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    Ok(AdapterConfig {
        rank,
        alpha,
        dropout,
        rslora: flag(cfg, "use_rslora"),
        target_modules,
        base_model,
    })
}

/// Refuses DoRA, `fan_in_fan_out`, per-module ranks or alphas and trained biases.
fn refuse_unsupported(cfg: &Value, cpath: &Path) -> Result<(), TextError> {
    for k in ["use_dora", "fan_in_fan_out"] {
        if flag(cfg, k) {
            return Err(invalid(
                cpath,
                format!("{k} is true: graft applies plain LoRA only"),
            ));
        }
    }
    for k in ["rank_pattern", "alpha_pattern"] {
        if present(cfg, k)
            .and_then(Value::as_object)
            .is_some_and(|m| !m.is_empty())
        {
            return Err(invalid(
                cpath,
                format!("{k} is not empty: graft applies one rank and alpha"),
            ));
        }
    }
    match present(cfg, "bias").and_then(Value::as_str) {
        None | Some("none") => Ok(()),
        Some(b) => Err(invalid(
            cpath,
            format!("bias \"{b}\": graft reads \"none\" only"),
        )),
    }
}

/// A tensor's shape and values (F32, or F64 converted).
type ShapedValues = (Vec<usize>, Vec<f32>);

/// The tensor `name` of the file at `wpath` as f32 values.
fn read_values(st: &SafeTensors<'_>, wpath: &Path, name: &str) -> Result<ShapedValues, TextError> {
    let v = st
        .tensor(name)
        .map_err(|e| invalid(wpath, format!("{name}: {e}")))?;
    let vals = match v.dtype() {
        Dtype::F32 => v
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F64 => v
            .data()
            .chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect(),
        other => {
            return Err(invalid(
                wpath,
                format!("{name}: dtype {other:?}, expected F32 or F64"),
            ))
        }
    };
    Ok((v.shape().to_vec(), vals))
}

/// An adapter file's tensors, sorted out.
#[derive(Default)]
struct FoundTensors {
    weights: BTreeMap<(usize, Proj), AdapterWeights>,
    head_w: Option<ShapedValues>,
    head_b: Option<ShapedValues>,
    /// Unknown tensors and adapters whose shapes do not hold the rank.
    problems: Vec<String>,
}

/// Reads every tensor of the file at `wpath`, in name order: the head's two, and each
/// adapter's `lora_A` with its `lora_B`.
fn sort_tensors(
    st: &SafeTensors<'_>,
    wpath: &Path,
    rank: usize,
) -> Result<FoundTensors, TextError> {
    let mut found = FoundTensors::default();
    let mut names: Vec<&str> = st.names();
    names.sort();
    for name in names {
        let rest = name
            .strip_prefix(PREFIX)
            .map(|r| r.strip_prefix("bert.").unwrap_or(r));
        if rest == Some(&format!("{HEAD_MODULE}.weight")[..]) {
            found.head_w = Some(read_values(st, wpath, name)?);
            continue;
        }
        if rest == Some(&format!("{HEAD_MODULE}.bias")[..]) {
            found.head_b = Some(read_values(st, wpath, name)?);
            continue;
        }
        let Some((layer, p, which)) = rest.and_then(parse_adapter_name) else {
            found.problems.push(format!("unknown tensor {name}"));
            continue;
        };
        if which != "A" {
            continue; // read with its A
        }
        match read_adapter(st, wpath, name, (layer, p), rank)? {
            Ok(w) => {
                found.weights.insert((layer, p), w);
            }
            Err(problem) => found.problems.push(problem),
        }
    }
    Ok(found)
}

/// `encoder.layer.N.<projection>.lora_X.weight` as (N, projection, X).
fn parse_adapter_name(rest: &str) -> Option<(usize, Proj, String)> {
    let r = rest.strip_prefix("encoder.layer.")?;
    let (layer, r) = r.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (path, which) = r.strip_suffix(".weight")?.rsplit_once(".lora_")?;
    let p = Proj::ALL.into_iter().find(|p| p.path() == path)?;
    Some((layer, p, which.to_string()))
}

/// The adapter whose `lora_A` is `a_name`, with its `lora_B`; `Ok(Err(problem))` when their
/// shapes do not hold rank `rank`.
fn read_adapter(
    st: &SafeTensors<'_>,
    wpath: &Path,
    a_name: &str,
    (layer, p): (usize, Proj),
    rank: usize,
) -> Result<Result<AdapterWeights, String>, TextError> {
    let (sa, a) = read_values(st, wpath, a_name)?;
    let bname = tensor_name(layer, p, 'B');
    let bname = if st.tensor(&bname).is_ok() {
        bname
    } else {
        a_name.replace(".lora_A.", ".lora_B.")
    };
    let (sb, b) = read_values(st, wpath, &bname)?;
    if sa.len() != 2 || sb.len() != 2 || sa[0] != rank || sb[1] != rank {
        return Ok(Err(format!(
            "{a_name}: shapes {sa:?} and {sb:?} do not hold rank {rank} (r)"
        )));
    }
    Ok(Ok(AdapterWeights {
        rank,
        a,
        b,
        inp: sa[1],
        out: sb[0],
    }))
}

/// The head from its weight and bias; a problem when only one is there or their shapes
/// disagree.
fn head_of(
    head_w: Option<ShapedValues>,
    head_b: Option<ShapedValues>,
    problems: &mut Vec<String>,
) -> Option<LinearHead> {
    match (head_w, head_b) {
        (Some((sw, w)), Some((sb, b))) if sw.len() == 2 && sb == [sw[0]] => Some(LinearHead {
            dim: sw[1],
            classes: sw[0],
            weight: w,
            bias: b,
        }),
        (None, None) => None,
        _ => {
            problems.push(format!(
                "{HEAD_MODULE}: weight and bias missing or of mismatched shapes"
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests;
