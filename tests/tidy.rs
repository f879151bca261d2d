//! House rules checked by `cargo test` (rust-analyzer's tidy pattern): the dependency
//! invariants of ARCHITECTURE.md, read from `cargo metadata`, and docs on every crate.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use crate::util::root;

/// Package name -> names of its normal (non-dev, non-build) dependencies, resolved.
fn dependency_graph() -> BTreeMap<String, BTreeSet<String>> {
    let metadata = |extra: &[&str]| {
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["metadata", "--format-version", "1"])
            .args(extra)
            .current_dir(root())
            .output()
            .expect("run cargo metadata")
    };
    // Offline first; a build fetches only the host's packages, and metadata wants every
    // target's (gemm's), so a fresh checkout fetches the rest from the registry once.
    let mut out = metadata(&["--offline"]);
    if !out.status.success() {
        out = metadata(&[]);
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta: Value = serde_json::from_slice(&out.stdout).unwrap();
    let name_of: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["name"].as_str().unwrap()))
        .collect();
    meta["resolve"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|node| {
            let deps = node["deps"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| {
                    d["dep_kinds"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .any(|k| k["kind"].is_null())
                })
                .map(|d| name_of[d["pkg"].as_str().unwrap()].to_string())
                .collect();
            (name_of[node["id"].as_str().unwrap()].to_string(), deps)
        })
        .collect()
}

/// Every package `name` depends on, directly or not.
fn closure(graph: &BTreeMap<String, BTreeSet<String>>, name: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut todo = vec![name.to_string()];
    while let Some(n) = todo.pop() {
        for d in graph.get(&n).into_iter().flatten() {
            if seen.insert(d.clone()) {
                todo.push(d.clone());
            }
        }
    }
    seen
}

#[test]
fn data_and_cuda_do_not_depend_on_dfdx() {
    let g = dependency_graph();
    for krate in ["graft-data", "graft-cuda"] {
        assert!(
            !closure(&g, krate).contains("dfdx"),
            "{krate} must not depend on dfdx"
        );
    }
}

#[test]
fn only_graft_cuda_depends_on_cudarc() {
    // `cargo metadata` lists optional dependencies too (dfdx's unused `cuda` feature names
    // an old cudarc), so the rule is checked on graft's own packages.
    let g = dependency_graph();
    for (name, deps) in g
        .iter()
        .filter(|(n, _)| n.starts_with("graft") || *n == "xtask")
    {
        if deps.contains("cudarc") {
            assert_eq!(name, "graft-cuda", "{name} depends on cudarc directly");
        }
    }
    assert!(g["graft-cuda"].contains("cudarc"));
}

#[test]
fn cli_holds_no_training_logic() {
    let g = dependency_graph();
    assert!(
        !g["graft-cli"].contains("dfdx"),
        "graft-cli must reach dfdx only through graft-transfer"
    );
    for entry in std::fs::read_dir(root().join("crates/graft-cli/src")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        for word in [
            "backward(",
            "Adam",
            "train_classifier",
            "train_head",
            "Gradients",
            "log_softmax",
        ] {
            assert!(
                !text.contains(word),
                "{} mentions `{word}`: training belongs in graft-transfer",
                path.display()
            );
        }
    }
}

#[test]
fn advise_reads_features_and_stays_off_the_gpu_and_the_cli() {
    // graft-advise may depend on graft-data, graft-nn, graft-transfer (protocols, probes),
    // dfdx (forward passes) and nalgebra (eigendecompositions); never on the CLI, and on
    // graft-cuda only through graft-transfer (whose linear probe uses a GPU when present).
    // (cudarc is not checked on the closure: `cargo metadata` lists dfdx's optional one.)
    let g = dependency_graph();
    assert!(
        !closure(&g, "graft-advise").contains("graft-cli"),
        "graft-advise must not depend on graft-cli"
    );
    assert!(
        !g["graft-advise"].contains("graft-cuda"),
        "graft-advise must not depend on graft-cuda directly"
    );
    let graft_deps: BTreeSet<&str> = g["graft-advise"]
        .iter()
        .map(String::as_str)
        .filter(|d| d.starts_with("graft"))
        .collect();
    assert!(
        graft_deps.is_subset(&BTreeSet::from([
            "graft-data",
            "graft-nn",
            "graft-transfer"
        ])),
        "graft-advise depends on {graft_deps:?}; allowed: graft-data, graft-nn, graft-transfer"
    );
}

#[test]
fn text_stays_off_the_gpu_and_the_cli() {
    // graft-text (BERT encoder, tokenizer, fortunes protocol) reuses graft-data and
    // graft-transfer's reports; it never reaches the CLI, and graft-cuda only through
    // graft-transfer. (cudarc is not checked on the closure: `cargo metadata` lists dfdx's
    // optional one.)
    let g = dependency_graph();
    assert!(
        !closure(&g, "graft-text").contains("graft-cli"),
        "graft-text must not depend on graft-cli"
    );
    assert!(
        !g["graft-text"].contains("graft-cuda"),
        "graft-text must not depend on graft-cuda directly"
    );
}

#[test]
fn only_the_cli_and_graft_transfer_use_graft_cuda() {
    // The CUDA layer is reached through `graft devices` and graft-transfer's linear probe;
    // it depends on neither (no cycle, no dfdx in it: see above).
    let g = dependency_graph();
    let users: BTreeSet<&str> = g
        .iter()
        .filter(|(_, deps)| deps.contains("graft-cuda"))
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(
        users,
        BTreeSet::from(["graft", "graft-cli", "graft-transfer"])
    );
    let cuda = closure(&g, "graft-cuda");
    assert!(!cuda.contains("graft-transfer") && !cuda.contains("graft-nn"));
}

#[test]
fn the_pth_reader_stands_alone() {
    // graft-pth parses untrusted files: it depends on no graft crate, no network code and
    // nothing that could run what a checkpoint names (graft-nn and xtask depend on it).
    let g = dependency_graph();
    let deps = closure(&g, "graft-pth");
    for banned in ["dfdx", "cudarc", "graft-data", "graft-nn"] {
        assert!(
            !deps.contains(banned),
            "graft-pth must not depend on {banned}"
        );
    }
    assert!(g["graft-nn"].contains("graft-pth") && g["xtask"].contains("graft-pth"));
}

#[test]
fn every_crate_has_a_readme_doctest_and_denies_missing_docs() {
    for krate in [
        "graft-data",
        "graft-cuda",
        "graft-nn",
        "graft-transfer",
        "graft-advise",
        "graft-text",
        "graft-pth",
    ] {
        let dir = root().join("crates").join(krate);
        let readme = std::fs::read_to_string(dir.join("README.md")).unwrap_or_default();
        assert!(
            readme.contains("```rust"),
            "{krate}/README.md needs a Rust example"
        );
        let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
        assert!(
            lib.contains("#![doc = include_str!(\"../README.md\")]"),
            "{krate}: README is not the crate doc, so its example is not a doctest"
        );
        assert!(
            lib.contains("#![deny(missing_docs)]"),
            "{krate} must deny missing docs"
        );
    }
}
