//! Batch assembly from the memory map (u8 -> normalised f32, shuffled) against a plain copy
//! of the same number of output bytes, and against one convnet training step (criterion).
//!
//! `cargo bench -p graft --bench data_bench`. Before timing, one epoch of batches is checked
//! against a naive computation; a wrong batch fails the run.
#![allow(missing_docs)] // criterion_group! generates an undocumented function

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dfdx::prelude::*;
use graft::data::{import_idx, Dataset, Normalize};
use graft::nn::ConvnetClassifier;

fn animal_mnist() -> Dataset {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = std::env::temp_dir().join(format!("graft-data-bench-{}.gds", std::process::id()));
    let data = root.join("data/animal-mnist");
    import_idx(
        data.join("images-idx3-ubyte.gz"),
        data.join("labels-idx1-ubyte.gz"),
        &out,
        None,
        "bench".into(),
    )
    .expect("import Animal-MNIST")
}

/// Every batch of one shuffled epoch equals `(p / 255 - mean) / std` of the sample it names.
fn check_batches(ds: &Dataset, norm: Normalize) {
    let view = ds.view();
    let mut it = view.batches(64, 1, norm, true).unwrap();
    let mut seen = 0;
    while let Some(b) = it.next_batch() {
        for (row, &pos) in b.images.chunks(784).zip(b.positions) {
            let pixels = view.sample(pos).unwrap();
            for (got, &p) in row.iter().zip(pixels) {
                let want = (p as f32 / 255.0 - norm.mean) / norm.std;
                assert!(
                    (got - want).abs() < 1e-6,
                    "batch value {got} != {want} at sample {pos}"
                );
            }
            seen += 1;
        }
    }
    assert_eq!(seen, ds.len(), "an epoch must visit every sample once");
}

fn bench_batches(c: &mut Criterion) {
    let ds = animal_mnist();
    let norm = Normalize {
        mean: 0.2728,
        std: 0.4056,
    };
    check_batches(&ds, norm);
    let view = ds.view();
    let epoch_bytes = (ds.len() * 784 * 4) as u64;
    let mut group = c.benchmark_group("batch-assembly");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(epoch_bytes));
    let mut epoch = 0u64;
    group.bench_function("shuffled-epoch-b64", |b| {
        b.iter(|| {
            epoch += 1;
            let mut it = view.batches(64, epoch, norm, true).unwrap();
            let mut sum = 0.0f32;
            while let Some(batch) = it.next_batch() {
                sum += batch.images[0];
            }
            sum
        })
    });
    let src = vec![1.0f32; ds.len() * 784];
    let mut dst = vec![0.0f32; ds.len() * 784];
    group.bench_function("plain-copy", |b| {
        b.iter(|| {
            dst.copy_from_slice(std::hint::black_box(&src));
            dst[0]
        })
    });
    group.finish();

    // One batch of 64 against one convnet training step on it.
    let dev = Cpu::seed_from_u64(0);
    let model = ConvnetClassifier::new(&dev, 10).unwrap();
    let mut group = c.benchmark_group("batch-vs-step");
    group.sample_size(10);
    group.bench_function("assemble-b64", |b| {
        b.iter(|| {
            epoch += 1;
            let mut it = view.batches(64, epoch, norm, true).unwrap();
            it.next_batch().map(|b| b.images[0])
        })
    });
    let x: Vec<f32> = (0..64 * 784).map(|i| (i % 255) as f32 / 255.0).collect();
    group.bench_function("convnet-train-step-b64", |b| {
        b.iter(|| {
            let t = dev.tensor_from_vec(x.clone(), (64, Const::<784>));
            let logits = model.forward(t.traced(Gradients::leaky()));
            let loss = logits.log_softmax::<Axis<1>>().mean::<Rank0, _>().negate();
            loss.backward()
        })
    });
    group.finish();
    let _ = std::fs::remove_file(ds.path());
}

criterion_group!(benches, bench_batches);
criterion_main!(benches);
