//! House rules checked by `cargo test` (rust-analyzer's tidy pattern): the dependency
//! invariants of ARCHITECTURE.md, read from `cargo metadata`, docs on every crate, no module
//! import cycles within a crate and no long functions (read from the sources with
//! `rust_source`).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::rust_source::{function_spans, FnSpan, ModPath, ModuleGraph};
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

/// The root file of each crate target in the workspace (libraries and binaries).
fn crate_roots() -> Vec<(String, PathBuf)> {
    let mut dirs = vec![root(), root().join("xtask")];
    let mut crates: Vec<PathBuf> = std::fs::read_dir(root().join("crates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    crates.sort();
    dirs.extend(crates);
    let mut roots = Vec::new();
    for dir in dirs {
        let name = dir.file_name().unwrap().to_string_lossy().into_owned();
        for target in ["src/lib.rs", "src/main.rs"] {
            if dir.join(target).exists() {
                roots.push((format!("{name} ({target})"), dir.join(target)));
            }
        }
    }
    roots
}

/// A module's name from its crate root (`crate` for the root).
fn module_name(m: &ModPath) -> String {
    if m.is_empty() {
        "crate".to_string()
    } else {
        m.join("::")
    }
}

/// `a -> b -> a (src/a.rs, src/b.rs)`, and the other modules of the group when it is larger.
fn describe_cycle(
    graph: &ModuleGraph,
    (cycle, group): &(Vec<ModPath>, BTreeSet<ModPath>),
    crate_dir: &Path,
) -> String {
    let files: Vec<String> = cycle[..cycle.len() - 1]
        .iter()
        .map(|m| {
            let file = &graph.files[m];
            file.strip_prefix(crate_dir)
                .unwrap_or(file)
                .display()
                .to_string()
        })
        .collect();
    let walk: Vec<String> = cycle.iter().map(module_name).collect();
    let others: Vec<String> = group
        .iter()
        .filter(|m| !cycle.contains(m))
        .map(module_name)
        .collect();
    let also = if others.is_empty() {
        String::new()
    } else {
        format!("; in the same cycle group: {}", others.join(", "))
    };
    format!("{} ({}){also}", walk.join(" -> "), files.join(", "))
}

/// Every module cycle of the crate whose root file is `root_file`, described.
fn module_cycles(root_file: &Path) -> Vec<String> {
    let graph = ModuleGraph::read(root_file);
    let crate_dir = root_file.parent().unwrap().parent().unwrap();
    graph
        .cycles()
        .iter()
        .map(|cycle| describe_cycle(&graph, cycle, crate_dir))
        .collect()
}

/// Cycle groups not broken yet: (crate target, every module of the group, why). A group
/// must match exactly, so breaking part of one means updating its entry, and an entry whose
/// group is gone fails the test until it is removed.
const KNOWN_CYCLES: &[(&str, &[&str], &str)] = &[];

#[test]
fn no_module_imports_from_a_module_that_imports_it() {
    let mut found = Vec::new();
    let mut known_and_found = BTreeSet::new();
    for (name, root_file) in crate_roots() {
        let graph = ModuleGraph::read(&root_file);
        let crate_dir = root_file.parent().unwrap().parent().unwrap();
        for cycle in graph.cycles() {
            let modules: Vec<String> = cycle.1.iter().map(module_name).collect();
            let known = KNOWN_CYCLES
                .iter()
                .position(|(k, group, _)| *k == name && *group == modules.as_slice());
            match known {
                Some(entry) => {
                    known_and_found.insert(entry);
                }
                None => found.push(format!(
                    "{name}: {}",
                    describe_cycle(&graph, &cycle, crate_dir)
                )),
            }
        }
    }
    assert!(
        found.is_empty(),
        "module import cycles (move what both sides need into a module that imports \
         neither):\n{}",
        found.join("\n")
    );
    let stale: Vec<_> = (0..KNOWN_CYCLES.len())
        .filter(|i| !known_and_found.contains(i))
        .map(|i| (KNOWN_CYCLES[i].0, KNOWN_CYCLES[i].1))
        .collect();
    assert!(
        stale.is_empty(),
        "KNOWN_CYCLES entries whose group changed or is gone (update or remove them): {stale:?}"
    );
}

/// Writes `files` (path, text) under a fresh temporary `src/` and returns its `lib.rs`.
fn synthetic_crate(name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = crate::util::temp_dir(name);
    for (path, text) in files {
        let path = dir.join("src").join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir.join("src/lib.rs")
}

#[test]
fn the_cycle_check_finds_cycles_through_re_exports_super_and_folders() {
    // state imports Plan through train/mod.rs's re-export, so from train/plan.rs; plan.rs
    // names the root's re-export of state's Saved through `super::super`: a cycle of two
    // files, behind a comment and a string that name other modules and must not count.
    let lib = synthetic_crate(
        "cycle-found",
        &[
            ("lib.rs", "mod state;\nmod train;\npub use state::Saved;\n"),
            ("state.rs", "use crate::train::Plan;\npub struct Saved(Plan);\n"),
            ("train/mod.rs", "mod plan;\npub use plan::Plan;\n"),
            (
                "train/plan.rs",
                "/// crate::nothing in a comment\npub struct Plan;\nfn f() { let s = \"super::x\"; super::super::Saved::new(); }\n",
            ),
        ],
    );
    let cycles = module_cycles(&lib);
    assert_eq!(
        cycles,
        ["state -> train::plan -> state (src/state.rs, src/train/plan.rs)"],
        "the planted cycle, found through `pub use`, a folder module and `super::super`"
    );

    let acyclic = synthetic_crate(
        "cycle-free",
        &[
            (
                "lib.rs",
                "mod state;\nmod train;\npub use state::Saved;\npub use train::Plan;\n",
            ),
            (
                "state.rs",
                "use crate::train::Plan;\npub struct Saved(Plan);\n",
            ),
            (
                "train/mod.rs",
                "mod plan;\npub use plan::Plan;\n#[cfg(test)]\nmod tests { use super::*; }\n",
            ),
            ("train/plan.rs", "pub struct Plan;\n"),
        ],
    );
    assert_eq!(module_cycles(&acyclic), Vec::<String>::new());
}

/// The longest a non-test function may be in the crates below, in lines from `fn` to its
/// closing brace.
const MAX_FUNCTION_LINES: usize = 80;

/// Functions allowed to be longer: (crate, file under `src/`, function, why).
const LONG_FUNCTIONS: &[(&str, &str, &str, &str)] = &[];

#[test]
fn no_function_is_longer_than_80_lines() {
    let mut too_long = Vec::new();
    let mut allowed_and_used = BTreeSet::new();
    for krate in ["graft-transfer", "graft-nn", "graft-text", "graft-cli"] {
        let src = root().join("crates").join(krate).join("src");
        for file in rust_files(&src) {
            let rel = file.strip_prefix(&src).unwrap().display().to_string();
            let text = std::fs::read_to_string(&file).unwrap();
            for span in function_spans(&text)
                .into_iter()
                .filter(|s| s.lines > MAX_FUNCTION_LINES)
            {
                let allowed = LONG_FUNCTIONS.iter().position(|&(k, f, n, _)| {
                    (k, f, n) == (krate, rel.as_str(), span.name.as_str())
                });
                match allowed {
                    Some(entry) => {
                        allowed_and_used.insert(entry);
                    }
                    None => too_long.push(format!(
                        "crates/{krate}/src/{rel}:{} `{}` is {} lines",
                        span.line, span.name, span.lines
                    )),
                }
            }
        }
    }
    assert!(
        too_long.is_empty(),
        "functions over {MAX_FUNCTION_LINES} lines (split them, or add an entry to \
         LONG_FUNCTIONS that says why not):\n{}",
        too_long.join("\n")
    );
    let stale: Vec<_> = (0..LONG_FUNCTIONS.len())
        .filter(|i| !allowed_and_used.contains(i))
        .map(|i| LONG_FUNCTIONS[i])
        .collect();
    assert!(
        stale.is_empty(),
        "LONG_FUNCTIONS entries no longer needed (the function is short now or gone): {stale:?}"
    );
}

/// Every `.rs` file under `dir`, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

#[test]
fn the_length_check_counts_signature_to_brace_and_skips_tests() {
    let body = "    let x = 1;\n".repeat(79);
    let src = format!(
        "fn long(\n    a: u8,\n) -> u8 {{\n{body}}}\n\
         fn short() {{ let s = \"{{\"; let c = '}}'; }}\n\
         #[test]\nfn long_test() {{\n{body}{body}}}\n\
         #[cfg(test)]\nmod tests {{\n    fn helper() {{\n{body}{body}    }}\n}}\n\
         trait T {{ fn declared(&self); }}\n"
    );
    let spans = function_spans(&src);
    assert_eq!(
        spans,
        [
            FnSpan {
                name: "long".into(),
                line: 1,
                lines: 83
            },
            FnSpan {
                name: "short".into(),
                line: 84,
                lines: 1
            },
        ]
    );
}
