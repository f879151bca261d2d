//! The cluster job files in `examples/` are valid and run a command graft accepts: the Slurm
//! array script passes `bash -n` and the Kubernetes Indexed Job manifest parses, and each
//! one's `graft` command line is parsed by graft itself, which then reads the shard from the
//! scheduler's variables the job would set.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs graft with `args` and only the scheduler variables given (none inherited).
fn graft_under(args: &[String], vars: &[(&str, String)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_graft"));
    cmd.args(args).current_dir(root());
    for (name, _) in std::env::vars() {
        let scheduler = [
            "SLURM_",
            "JOB_COMPLETION_INDEX",
            "GRAFT_SHARD",
            "OMPI_",
            "PMI_",
        ];
        if scheduler.iter().any(|p| name.starts_with(p)) {
            cmd.env_remove(name);
        }
    }
    cmd.envs(vars.iter().map(|(k, v)| (k, v)));
    cmd.output().expect("run graft")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The `graft ...` command of a shell script: its continuation lines joined, split on
/// whitespace, quotes dropped, `${VAR}` replaced from `vars`.
fn script_command(script: &str, vars: &[(&str, &str)]) -> Vec<String> {
    let mut joined = String::new();
    let mut in_command = false;
    for line in script.lines() {
        in_command |= line.starts_with("graft ");
        if in_command {
            joined.push_str(line.trim_end().trim_end_matches('\\'));
            joined.push(' ');
            if !line.trim_end().ends_with('\\') {
                break;
            }
        }
    }
    for (name, value) in vars {
        joined = joined.replace(&format!("${{{name}}}"), value);
    }
    joined
        .split_whitespace()
        .map(|w| w.trim_matches('"').to_string())
        .collect()
}

#[test]
fn the_slurm_array_script_is_valid_and_its_command_parses() {
    let path = root().join("examples/slurm/sweep.sbatch");
    let syntax = Command::new("bash").arg("-n").arg(&path).output().unwrap();
    assert!(syntax.status.success(), "{}", stderr(&syntax));
    let script = std::fs::read_to_string(&path).unwrap();
    let array = script
        .lines()
        .find_map(|l| l.strip_prefix("#SBATCH --array="))
        .expect("an #SBATCH --array line");
    let (first, last) = array.split_once('-').expect("an array range a-b");
    let (first, last): (usize, usize) = (first.parse().unwrap(), last.parse().unwrap());
    let count = last - first + 1;
    let argv = script_command(&script, &[("SLURM_ARRAY_JOB_ID", "4242")]);
    assert_eq!(argv[..2], ["graft", "sweep"]);
    assert!(
        argv.windows(2).any(|w| w == ["--shard", "auto"]),
        "{argv:?}"
    );
    // One past the last task: graft parses every flag, then refuses the shard index, which
    // shows it read the array's variables.
    let o = graft_under(
        &argv[1..],
        &[
            ("SLURM_ARRAY_TASK_ID", (last + 1).to_string()),
            ("SLURM_ARRAY_TASK_MIN", first.to_string()),
            ("SLURM_ARRAY_TASK_COUNT", count.to_string()),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!("must be below {count} (from SLURM_ARRAY_TASK_ID)")),
        "{}",
        stderr(&o)
    );
}

#[test]
fn the_kubernetes_indexed_job_is_valid_and_its_command_parses() {
    let path = root().join("examples/kubernetes/sweep-job.json");
    let job: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).unwrap()).expect("valid JSON");
    assert_eq!(job["apiVersion"], "batch/v1");
    assert_eq!(job["kind"], "Job");
    let spec = &job["spec"];
    assert_eq!(spec["completionMode"], "Indexed");
    let completions = spec["completions"].as_u64().expect("completions");
    let container = &spec["template"]["spec"]["containers"][0];
    let argv: Vec<String> = container["command"]
        .as_array()
        .expect("a command")
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    assert_eq!(argv[..2], ["graft", "sweep"]);
    assert!(
        argv.windows(2).any(|w| w == ["--shard", "auto"]),
        "{argv:?}"
    );
    let env: Vec<(&str, String)> = container["env"]
        .as_array()
        .expect("env")
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap(),
                e["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert!(
        env.contains(&("GRAFT_SHARD_COUNT", completions.to_string())),
        "GRAFT_SHARD_COUNT must equal completions ({completions}): {env:?}"
    );
    let mut vars = env.clone();
    vars.push(("JOB_COMPLETION_INDEX", completions.to_string()));
    let o = graft_under(&argv[1..], &vars);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains(&format!(
            "must be below {completions} (from JOB_COMPLETION_INDEX)"
        )),
        "{}",
        stderr(&o)
    );
}
