//! Streams a data set several times larger than the memory a process may
//! use.
//!
//! ```text
//! cargo run -p graft-data --example larger_than_memory -- [SIZE_MIB [LIMIT_MIB [DIR]]]
//! ```
//!
//! 1. Writes a generated u8 data set of `SIZE_MIB` (default 2048) MiB with
//!    [`DatasetWriter`], one sample at a time (the parent's heap stays
//!    small; its peak RSS is printed).
//! 2. Runs itself as a child under `bash -c 'ulimit -v LIMIT_KIB; exec ...'`
//!    (default limit 256 MiB of *address space*: heap, stacks, code and
//!    every mapping together). The child first shows that mapping the whole
//!    file with `Dataset::open` fails under that limit, then opens it with
//!    [`WindowedReader`] (8 MiB windows), streams every batch of 256
//!    normalised samples, recomputes the checksum and the sum of all pixel
//!    values, and compares them with what the writer produced. It prints
//!    its `VmPeak` / `VmHWM` from `/proc/self/status`.
//!
//! Exit status 0 means every sample was read under the limit and matched.

use std::path::{Path, PathBuf};
use std::process::Command;

use graft_data::{Dataset, DatasetWriter, ElementType, Metadata, Normalize, WindowedReader};

const SIDE: usize = 64; // samples are 64 x 64 u8 = 4 KiB
const CLASSES: u32 = 10;

fn pixel(i: usize, j: usize) -> u8 {
    ((i.wrapping_mul(31) ^ j.wrapping_mul(7)) ^ (i >> 5)) as u8
}

fn status_line(key: &str) -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .map(|l| l.split_whitespace().skip(1).collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_else(|| "n/a".into())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let code = if args.get(1).map(String::as_str) == Some("--child") {
        child(&args[2..])
    } else {
        parent(&args[1..])
    };
    std::process::exit(code);
}

fn parent(args: &[String]) -> i32 {
    let size_mib: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(2048);
    let limit_mib: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(256);
    let dir = args
        .get(2)
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let path = dir.join(format!(
        "graft-larger-than-memory-{}.graftds",
        std::process::id()
    ));
    let count = size_mib * (1 << 20) / (SIDE * SIDE);
    println!(
        "writing {count} samples of {SIDE}x{SIDE} u8 ({size_mib} MiB) to {}",
        path.display()
    );
    let t = std::time::Instant::now();
    let mut w = DatasetWriter::create(&path, ElementType::U8, &[SIDE, SIDE]).expect("create");
    let mut sample = vec![0u8; SIDE * SIDE];
    let mut sum: u64 = 0;
    for i in 0..count {
        for (j, p) in sample.iter_mut().enumerate() {
            *p = pixel(i, j);
            sum += u64::from(*p);
        }
        w.push_bytes(&sample, (i % CLASSES as usize) as u32)
            .expect("push");
    }
    let stats = w.stats();
    w.finish(&Metadata {
        class_names: (0..CLASSES).map(|c| c.to_string()).collect(),
        provenance: "larger_than_memory example".into(),
        mean: stats.map(|s| s.0),
        std: stats.map(|s| s.1),
    })
    .expect("finish");
    let file_len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    let checksum = graft_data::inspect(&path).expect("inspect").checksum;
    println!(
        "wrote {file_len} bytes in {:.1?}; checksum {checksum:#018x}; parent VmHWM {}",
        t.elapsed(),
        status_line("VmHWM:")
    );
    let exe = std::env::current_exe().expect("current_exe");
    let limit_kib = limit_mib * 1024;
    println!("running the reader under `ulimit -v {limit_kib}` ({limit_mib} MiB address space, file is {:.1}x that)", file_len as f64 / (limit_mib << 20) as f64);
    let status = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "ulimit -v {limit_kib} && exec \"$0\" --child \"$1\" \"$2\" \"$3\""
        ))
        .arg(&exe)
        .arg(&path)
        .arg(sum.to_string())
        .arg(count.to_string())
        .status();
    let _ = std::fs::remove_file(&path);
    match status {
        Ok(s) if s.success() => {
            println!("OK: every batch streamed and verified under the limit");
            0
        }
        Ok(s) => {
            eprintln!("child failed: {s}");
            1
        }
        Err(e) => {
            eprintln!("cannot run bash: {e}");
            1
        }
    }
}

fn child(args: &[String]) -> i32 {
    let (Some(path), Some(sum), Some(count)) = (args.first(), args.get(1), args.get(2)) else {
        eprintln!("usage: --child PATH SUM COUNT");
        return 2;
    };
    let path = Path::new(path);
    let expected_sum: u64 = sum.parse().unwrap_or(0);
    let expected_count: usize = count.parse().unwrap_or(0);
    println!("child: limits {}", status_line("VmPeak:"));
    match Dataset::open(path) {
        Ok(_) => println!("child: note: Dataset::open mapped the whole file (limit not binding?)"),
        Err(e) => println!("child: Dataset::open (whole-file map) fails as expected: {e}"),
    }
    let t = std::time::Instant::now();
    let reader = match WindowedReader::open(path, 8 << 20) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("child: {e}");
            return 1;
        }
    };
    let (mut sum, mut seen, mut batches, mut label_errors) = (0u64, 0usize, 0usize, 0usize);
    let result = reader.stream_batches(256, Normalize::IDENTITY, |b| {
        batches += 1;
        for &v in b.images {
            sum += (v * 255.0).round() as u64;
        }
        for (&l, &p) in b.labels.iter().zip(b.positions) {
            label_errors += usize::from(l != p % CLASSES as usize);
        }
        seen += b.len;
        Ok(())
    });
    println!(
        "child: streamed {seen} samples in {batches} batches in {:.1?}; VmPeak {}, VmHWM {}",
        t.elapsed(),
        status_line("VmPeak:"),
        status_line("VmHWM:")
    );
    if let Err(e) = result {
        eprintln!("child: {e}");
        return 1;
    }
    println!("child: checksum verified while streaming");
    if seen != expected_count || sum != expected_sum || label_errors != 0 {
        eprintln!("child: mismatch: {seen}/{expected_count} samples, sum {sum} vs {expected_sum}, {label_errors} wrong labels");
        return 1;
    }
    println!("child: pixel sum {sum} and all labels match the generator");
    0
}
