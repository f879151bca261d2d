//! graft's benchmarks (criterion). Each benchmark first checks its result against a
//! reference and panics if it differs, so a fast wrong kernel can never look good.
#![allow(missing_docs)] // criterion_group! generates an undocumented function

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use dfdx::prelude::*;
use graft::nn::{Backbone, Classifier, ConvnetClassifier, MlpClassifier, Parameters};

/// Loads `param.*` of a PyTorch reference file into `model` and checks its logits.
fn check_against_pytorch<B: Backbone<F>, const F: usize>(model: &mut Classifier<B, F>, file: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(file);
    let bytes = std::fs::read(&path).expect("reference tensors");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("safetensors");
    let f32s = |name: &str| -> Vec<f32> {
        st.tensor(name)
            .expect(name)
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    };
    model.visit_params_mut(&mut |name, p| p.write_from(&f32s(&format!("param.{name}"))));
    let dev = Cpu::default();
    let x = dev.tensor_from_vec(f32s("input"), (8, Const::<784>));
    let got = model.forward(x).as_vec();
    let want = f32s("logits");
    let err = got
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(err < 1e-4, "{file}: logits differ from PyTorch by {err}");
}

fn train_step<B: Backbone<F>, const F: usize>(
    dev: &Cpu,
    model: &Classifier<B, F>,
    x: &[f32],
    b: usize,
) -> f32 {
    let x = dev.tensor_from_vec(x.to_vec(), (b, Const::<784>));
    let logits = model.forward(x.traced(Gradients::leaky()));
    let loss = logits.log_softmax::<Axis<1>>().mean::<Rank0, _>().negate();
    let v = loss.array();
    let _grads = loss.backward();
    v
}

fn bench_networks(c: &mut Criterion) {
    let dev = Cpu::seed_from_u64(0);
    let mut mlp = MlpClassifier::new(&dev, 10).unwrap();
    check_against_pytorch(&mut mlp, "mlp_ref.safetensors");
    let mut convnet = ConvnetClassifier::new(&dev, 10).unwrap();
    check_against_pytorch(&mut convnet, "convnet_ref.safetensors");

    let mut group = c.benchmark_group("train");
    group.sample_size(10);
    {
        let b = 64usize;
        let x: Vec<f32> = (0..b * 784)
            .map(|i| ((i * 7919) % 255) as f32 / 255.0)
            .collect();
        group.throughput(Throughput::Elements(b as u64));
        group.bench_with_input(BenchmarkId::new("mlp", b), &x, |bench, x| {
            bench.iter(|| train_step(&dev, &mlp, x, b))
        });
        group.bench_with_input(BenchmarkId::new("convnet", b), &x, |bench, x| {
            bench.iter(|| train_step(&dev, &convnet, x, b))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_networks);
criterion_main!(benches);
