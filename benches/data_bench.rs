//! Batch assembly from the memory map (u8 -> normalised f32, shuffled) against a plain copy
//! of the same number of output bytes, and against one convnet training step (criterion).
//!
//! `cargo bench -p graft --bench data_bench`. Before timing, one epoch of batches is checked
//! against a naive computation (`checks::check_batches`, shared with `graft_bench`, which
//! reports the same comparison in `target/bench/summary.json`); a wrong batch fails the run.
#![allow(missing_docs)] // criterion_group! generates an undocumented function

#[path = "baseline/mod.rs"]
mod baseline;
#[path = "checks.rs"]
mod checks;

use checks::{animal_mnist, check_batches};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use dfdx::prelude::*;
use graft::data::Normalize;
use graft::nn::ConvnetClassifier;

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
