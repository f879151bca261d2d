//! Embedding throughput of graft's MiniLM (sentences per second, batch 64, 2 threads), and
//! its ratio to Hugging Face `transformers` on PyTorch measured side by side.
//!
//! `cargo bench -p graft-text --bench embed_bench`. Needs the model (`cargo xtask fetch
//! minilm`); skips with a message otherwise. The peer (`benches/peers/minilm_peer.py`) runs
//! with `$GRAFT_PYTHON` (default `python3`) when it can import torch and transformers: the
//! two then alternate, 5 rounds of 5 batches each, and the median ratio is printed.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use criterion::{black_box, Criterion, Throughput};
use graft_text::MiniLm;

const THREADS: usize = 2;
const ROUNDS: usize = 5;
const BATCHES_PER_ROUND: usize = 5;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sentences_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/sentences.txt")
}

/// The persistent peer process, or why there is none.
struct Peer {
    child: std::process::Child,
    out: BufReader<std::process::ChildStdout>,
}

impl Peer {
    fn start(model_dir: &Path) -> Result<Peer, String> {
        let python = std::env::var("GRAFT_PYTHON").unwrap_or_else(|_| "python3".into());
        let script = root().join("benches/peers/minilm_peer.py");
        let mut child = Command::new(&python)
            .arg(&script)
            .arg(model_dir)
            .arg(sentences_path())
            .arg(THREADS.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {python}: {e}"))?;
        let mut out = BufReader::new(child.stdout.take().ok_or("no stdout")?);
        let mut line = String::new();
        out.read_line(&mut line).map_err(|e| e.to_string())?;
        if !line.starts_with("ready") {
            let _ = child.kill();
            return Err(format!(
                "{python} could not load torch + transformers (set GRAFT_PYTHON to a Python that has them)"
            ));
        }
        eprintln!("peer: {}", line.trim());
        Ok(Peer { child, out })
    }

    fn ask(&mut self, cmd: &str) -> Result<String, String> {
        let stdin = self.child.stdin.as_mut().ok_or("no stdin")?;
        writeln!(stdin, "{cmd}").map_err(|e| e.to_string())?;
        stdin.flush().map_err(|e| e.to_string())?;
        let mut line = String::new();
        self.out.read_line(&mut line).map_err(|e| e.to_string())?;
        Ok(line.trim().to_string())
    }

    fn seconds(&mut self, n: usize) -> Result<f64, String> {
        let reply = self.ask(&format!("run {n}"))?;
        reply
            .strip_prefix("seconds ")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("unexpected peer reply `{reply}`"))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.ask("quit");
        let _ = self.child.wait();
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // dfdx's GEMM runs on rayon's global pool: fix it at 2 threads before first use.
    std::env::set_var("RAYON_NUM_THREADS", THREADS.to_string());
    let dir = graft_text::minilm::default_model_dir(&root());
    if !dir.join("model.safetensors").exists() {
        eprintln!(
            "embed_bench: skipped: no MiniLM at {} (run `cargo xtask fetch minilm`)",
            dir.display()
        );
        return;
    }
    let model = MiniLm::open(&dir).expect("open MiniLM");
    let text = std::fs::read_to_string(sentences_path()).expect("benches/sentences.txt");
    let sentences: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(sentences.len(), 64, "the benchmark batch is 64 sentences");

    let mut c = Criterion::default().configure_from_args().sample_size(10);
    let mut group = c.benchmark_group("minilm");
    group.throughput(Throughput::Elements(sentences.len() as u64));
    group.bench_function("embed batch 64, 2 threads", |b| {
        b.iter(|| black_box(model.embed(black_box(&sentences)).unwrap()))
    });
    group.finish();
    c.final_summary();

    let mut peer = match Peer::start(&dir) {
        Ok(p) => p,
        Err(why) => {
            eprintln!("embed_bench: no side-by-side comparison: {why}");
            return;
        }
    };
    // Same inputs on both sides: compare the first embedding before timing anything.
    let ours = model.embed(&sentences).unwrap();
    let theirs: Vec<f32> = peer
        .ask("check")
        .unwrap()
        .split_whitespace()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    for (a, b) in ours.iter().zip(&theirs) {
        assert!(
            (a - b).abs() < 1e-4,
            "graft {a} vs transformers {b}: not the same computation"
        );
    }
    let (mut graft_rates, mut torch_rates, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let n = (sentences.len() * BATCHES_PER_ROUND) as f64;
    for round in 0..ROUNDS {
        let start = Instant::now();
        for _ in 0..BATCHES_PER_ROUND {
            black_box(model.embed(black_box(&sentences)).unwrap());
        }
        let g = n / start.elapsed().as_secs_f64();
        let t = n / peer.seconds(BATCHES_PER_ROUND).expect("peer timing");
        eprintln!("round {round}: graft {g:.1} sentences/s, transformers {t:.1} sentences/s");
        graft_rates.push(g);
        torch_rates.push(t);
        ratios.push(g / t);
    }
    println!(
        "minilm embed, batch 64, {THREADS} threads: graft {:.1} sentences/s, transformers {:.1} sentences/s, ratio graft/transformers {:.2}x (median of {ROUNDS} alternating rounds)",
        median(graft_rates),
        median(torch_rates),
        median(ratios)
    );
}
