//! graft-pth against PyTorch: small checkpoints written by `torch.save` in both formats
//! (`tests/data/make_cases.py`) and the real EfficientNet-Lite0 `.pth`, compared bit for bit
//! with what `torch.load` gave.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use graft_pth::{read_file, ElemType, Format};
use safetensors::SafeTensors;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn dtype_name(d: safetensors::Dtype) -> &'static str {
    match d {
        safetensors::Dtype::F32 => "float32",
        safetensors::Dtype::F16 => "float16",
        safetensors::Dtype::BF16 => "bfloat16",
        safetensors::Dtype::F64 => "float64",
        other => panic!("unexpected dtype {other:?} in expected.safetensors"),
    }
}

const CASES: [&str; 5] = ["dtypes", "views", "nested", "params", "module"];

#[test]
fn every_case_equals_torch_load_bit_for_bit() {
    let expected_bytes = std::fs::read(data("expected.safetensors")).unwrap();
    let expected = SafeTensors::deserialize(&expected_bytes).unwrap();
    let mut compared = 0;
    for case in CASES {
        for format in ["zip", "legacy"] {
            let file = format!("{case}-{format}.pth");
            let sd = read_file(&data(&format!("cases/{file}"))).unwrap();
            assert_eq!(sd.format.name(), format, "{file}");
            let want: BTreeMap<String, _> = expected
                .tensors()
                .into_iter()
                .filter_map(|(k, v)| {
                    k.strip_prefix(&format!("{file}::"))
                        .map(|n| (n.to_string(), v))
                })
                .collect();
            let got: Vec<&str> = sd.tensors.iter().map(|t| t.name.as_str()).collect();
            let names: Vec<&str> = want.keys().map(String::as_str).collect();
            let mut sorted = got.clone();
            sorted.sort();
            assert_eq!(sorted, names, "{file}: tensor names");
            for t in &sd.tensors {
                let w = &want[&t.name];
                assert_eq!(t.dtype.name(), dtype_name(w.dtype()), "{file} {}", t.name);
                assert_eq!(t.shape, w.shape(), "{file} {}: shape", t.name);
                assert!(
                    t.data == w.data(),
                    "{file} {}: values differ from torch.load",
                    t.name
                );
                compared += 1;
            }
        }
    }
    assert!(compared >= 40, "only {compared} tensors compared");
}

#[test]
fn integer_counters_are_left_out_with_a_note() {
    for format in ["zip", "legacy"] {
        let sd = read_file(&data(&format!("cases/module-{format}.pth"))).unwrap();
        let skipped: Vec<&str> = sd.skipped.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(skipped, ["1.num_batches_tracked"], "{format}");
        assert!(sd.skipped[0].reason.contains("BatchNorm step counter"));
        assert!(sd.tensors.iter().any(|t| t.name == "1.running_var"));
    }
}

#[test]
fn nested_state_dicts_are_found_and_other_values_ignored() {
    for format in ["zip", "legacy"] {
        let sd = read_file(&data(&format!("cases/nested-{format}.pth"))).unwrap();
        assert_eq!(sd.location, "the dict under `state_dict`");
        let names: Vec<&str> = sd.tensors.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["layer.weight", "layer.bias"]);
    }
}

#[test]
fn shared_storages_give_each_view_its_own_values() {
    // views-*.pth: `slice` (offset 5) and `matrix` share one 24-element storage of k/7.
    let sd = read_file(&data("cases/views-legacy.pth")).unwrap();
    let get = |n: &str| sd.tensors.iter().find(|t| t.name == n).unwrap();
    let values = |n: &str| -> Vec<f32> {
        get(n)
            .data
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect()
    };
    let slice = values("slice");
    let matrix = values("matrix");
    assert_eq!(slice.len(), 12);
    assert_eq!(matrix.len(), 24);
    assert_eq!(slice[..], matrix[5..17]);
    assert_eq!(matrix[7], 7.0f32 / 7.0);
    assert_eq!(get("transposed").shape, [5, 3]);
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

#[test]
fn efficientnet_lite0_equals_torch_load() {
    let Some(path) = graft_test_support::effnet_pth() else {
        return;
    };
    let sd = read_file(&path).unwrap();
    assert_eq!(sd.format, Format::Legacy);
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data("effnet_lite0_tensors.json")).unwrap()).unwrap();
    let want = json["tensors"].as_object().unwrap();
    assert_eq!(want.len(), 296);
    let counters: Vec<&String> = want
        .keys()
        .filter(|k| k.ends_with("num_batches_tracked"))
        .collect();
    assert_eq!(sd.skipped.len(), counters.len());
    assert_eq!(sd.tensors.len() + sd.skipped.len(), 296);
    for t in &sd.tensors {
        let w = &want[&t.name];
        assert_eq!(t.dtype, ElemType::F32);
        assert_eq!(w["dtype"], "float32", "{}", t.name);
        let shape: Vec<usize> = serde_json::from_value(w["shape"].clone()).unwrap();
        assert_eq!(t.shape, shape, "{}", t.name);
        let mut crc = flate2::Crc::new();
        crc.update(&t.data);
        assert_eq!(
            u64::from(crc.sum()),
            w["crc32"].as_u64().unwrap(),
            "{}: CRC-32 of the values",
            t.name
        );
        let v = f32s(&t.data);
        let ends = |key: &str| -> Vec<u32> {
            w[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| (x.as_f64().unwrap() as f32).to_bits())
                .collect()
        };
        let first: Vec<u32> = v.iter().take(8).map(|x| x.to_bits()).collect();
        let last: Vec<u32> = v[v.len().saturating_sub(8)..]
            .iter()
            .map(|x| x.to_bits())
            .collect();
        assert_eq!(first, ends("first8"), "{}: first values", t.name);
        assert_eq!(last, ends("last8"), "{}: last values", t.name);
        let sum: f64 = v.iter().map(|&x| f64::from(x)).sum();
        let want_sum = w["sum"].as_f64().unwrap();
        assert!(
            (sum - want_sum).abs() <= 1e-9 * want_sum.abs().max(1.0),
            "{}: sum {sum} vs {want_sum}",
            t.name
        );
    }
    let values: usize = sd.tensors.iter().map(|t| t.numel()).sum();
    assert_eq!(values + counters.len(), 4_694_073);
}
