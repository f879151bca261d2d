//! Save, load and merge round trips on a small random BERT, and the refusals.

use graft_data::SplitMix64;

use super::{LoraAdapter, CONFIG_FILE, WEIGHTS_FILE};
use crate::bert::Proj;
use crate::infer::tests::tiny_bert;
use crate::infer::FastEncoder;
use crate::peft::{parse_targets, LoraSpec, PeftMethod, PeftNet};
use crate::tokenize::pad;

fn trained_net(targets: &str) -> (crate::bert::BertEncoder, PeftNet) {
    let bert = tiny_bert();
    let spec = LoraSpec {
        targets: parse_targets(targets).unwrap(),
        ..LoraSpec::new(2, 4.0)
    };
    let mut net = PeftNet::new(&bert, PeftMethod::Lora(spec), 3, 4);
    let mut rng = SplitMix64::new(1);
    for l in &mut net.layers {
        for a in l.adapters.iter_mut().flatten() {
            let v: Vec<f32> = (0..a.b.as_vec().len())
                .map(|_| rng.next_f32() - 0.5)
                .collect();
            a.b.copy_from(&v);
        }
    }
    (bert, net)
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("graft-adapter-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

#[test]
fn saved_adapter_loads_back_and_merges_as_the_network() {
    for targets in ["query,value", "key,dense"] {
        let (bert, net) = trained_net(targets);
        let adapter =
            LoraAdapter::from_net(&net, "sentence-transformers/all-MiniLM-L6-v2").unwrap();
        let dir = temp_dir(&targets.replace(',', "-"));
        adapter.save(&dir).unwrap();
        let back = LoraAdapter::load(&dir).unwrap();
        assert_eq!(back, adapter);
        let tokens = pad(&[vec![2, 7, 11, 4, 3], vec![2, 9]], 0);
        let via_adapter =
            FastEncoder::new(&back.merge_into(&bert).unwrap()).embed_sentences(&tokens);
        let via_net = FastEncoder::new(&net.merged_encoder(&bert)).embed_sentences(&tokens);
        assert_eq!(via_adapter, via_net);
        // PEFT's names and shapes.
        let bytes = std::fs::read(dir.join(WEIGHTS_FILE)).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let first = if targets.starts_with("query") {
            "attention.self.query"
        } else {
            "attention.self.key"
        };
        let a = st
            .tensor(&format!(
                "base_model.model.encoder.layer.1.{first}.lora_A.weight"
            ))
            .unwrap();
        assert_eq!(a.shape(), [2, 16]);
        let b = st
            .tensor(&format!(
                "base_model.model.encoder.layer.1.{first}.lora_B.weight"
            ))
            .unwrap();
        assert_eq!(b.shape(), [16, 2]);
        let per_layer = parse_targets(targets).unwrap().len();
        assert_eq!(st.names().len(), 2 * per_layer * 2 + 2);
        let cfg: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(CONFIG_FILE)).unwrap()).unwrap();
        assert_eq!(cfg["peft_type"], "LORA");
        assert_eq!(cfg["r"], 2);
        assert_eq!(cfg["lora_alpha"], 4);
        assert_eq!(cfg["bias"], "none");
        assert_eq!(cfg["lora_dropout"], serde_json::json!(0.1));
        assert!(cfg["task_type"].is_null());
        assert_eq!(cfg["modules_to_save"], serde_json::json!(["classifier"]));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[test]
fn loads_refuse_what_graft_cannot_apply() {
    let (_, net) = trained_net("query,value");
    let adapter = LoraAdapter::from_net(&net, "base").unwrap();
    let dir = temp_dir("refuse");
    adapter.save(&dir).unwrap();
    let cfg_path = dir.join(CONFIG_FILE);
    let good = std::fs::read_to_string(&cfg_path).unwrap();
    for (key, value) in [
        ("use_dora", serde_json::json!(true)),
        ("rank_pattern", serde_json::json!({"query": 8})),
        ("bias", serde_json::json!("all")),
        ("peft_type", serde_json::json!("IA3")),
        ("r", serde_json::json!(3)),
    ] {
        let mut cfg: serde_json::Value = serde_json::from_str(&good).unwrap();
        cfg[key] = value;
        std::fs::write(&cfg_path, serde_json::to_string(&cfg).unwrap()).unwrap();
        assert!(LoraAdapter::load(&dir).is_err(), "{key} accepted");
    }
    std::fs::write(&cfg_path, &good).unwrap();
    assert!(LoraAdapter::load(&dir).is_ok());
    // rsLoRA scales by alpha / sqrt(r).
    let mut cfg: serde_json::Value = serde_json::from_str(&good).unwrap();
    cfg["use_rslora"] = serde_json::json!(true);
    std::fs::write(&cfg_path, serde_json::to_string(&cfg).unwrap()).unwrap();
    let rs = LoraAdapter::load(&dir).unwrap();
    assert!((rs.scale() - 4.0 / 2f32.sqrt()).abs() < 1e-6);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn merging_refuses_blocks_the_model_lacks() {
    let (bert, net) = trained_net("query");
    let mut adapter = LoraAdapter::from_net(&net, "base").unwrap();
    let w = adapter.weights.values().next().unwrap().clone();
    adapter.weights.insert((7, Proj::Query), w);
    assert!(adapter.merge_into(&bert).is_err());
}
