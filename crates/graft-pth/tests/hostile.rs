//! What a hostile or damaged checkpoint gets: a typed error, never a call, a panic or an
//! unbounded allocation. Pickles that would run code under `pickle.load` (made by
//! `tests/data/make_cases.py`), truncations at every byte, and files that lie about sizes,
//! offsets, strides and zip entries (assembled in `build`).

mod build;

use std::path::{Path, PathBuf};

use build::{floats, legacy_file, legacy_header, state_dict_pickle, zip_file, Entry, Pickle};
use graft_pth::{read_bytes, read_file, Problem};
use proptest::prelude::*;

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(data(name)).unwrap()
}

const CANARY: &str = "/tmp/graft-pwned";

#[test]
fn pickles_that_run_code_are_refused_by_name() {
    let _ = std::fs::remove_file(CANARY);
    for (payload, module, name) in [
        ("os_system", "posix", "system"),
        ("builtins_eval", "__builtin__", "eval"),
        // Protocol 2 writes Python 2 names: builtins -> __builtin__, subprocess.Popen -> commands.
        ("subprocess_popen", "commands", "Popen"),
    ] {
        for format in ["zip", "legacy"] {
            let err = read_file(&data(&format!("hostile/{payload}-{format}.pth"))).unwrap_err();
            let problem = err.problem().cloned();
            assert_eq!(
                problem,
                Some(Problem::ForbiddenGlobal {
                    module: module.into(),
                    name: name.into()
                }),
                "{payload}-{format}"
            );
            assert!(err.to_string().contains(&format!("`{module}.{name}`")));
        }
        // The bare pickle: no torch header, so it is not even interpreted...
        let pkl = read(&format!("hostile/{payload}.pkl"));
        assert!(matches!(read_bytes(&pkl), Err(Problem::NotPyTorch(_))));
        // ...and inside a legacy container it is refused at its GLOBAL.
        let file = legacy_file(&pkl, &[], &[]);
        assert!(matches!(
            read_bytes(&file),
            Err(Problem::ForbiddenGlobal { .. })
        ));
    }
    assert!(!Path::new(CANARY).exists(), "a payload ran");
}

#[test]
fn a_reduce_of_anything_off_the_list_is_refused() {
    // GLOBAL + REDUCE of builtins.getattr (the usual way to reach os from an allowed module).
    let object = Pickle::new()
        .global("builtins", "getattr")
        .global("collections", "OrderedDict")
        .str("__init__")
        .op(0x86)
        .op(b'R')
        .stop();
    let err = read_bytes(&legacy_file(&object, &[], &[])).unwrap_err();
    assert!(matches!(err, Problem::ForbiddenGlobal { ref name, .. } if name == "getattr"));
    // STACK_GLOBAL reaches the same check.
    let object = Pickle::new().str("os").str("system").op(0x93).stop();
    let err = read_bytes(&legacy_file(&object, &[], &[])).unwrap_err();
    assert!(matches!(err, Problem::ForbiddenGlobal { ref module, .. } if module == "os"));
    // An allowed storage type called as a function.
    let object = Pickle::new()
        .global("torch", "FloatStorage")
        .op(b')')
        .op(b'R')
        .stop();
    assert!(matches!(
        read_bytes(&legacy_file(&object, &[], &[])),
        Err(Problem::Structure { .. })
    ));
}

#[test]
fn opcodes_a_state_dict_never_uses_are_refused() {
    for (op, name) in [
        (b'i', "INST"),
        (b'o', "OBJ"),
        (0x81, "NEWOBJ"),
        (0x92, "NEWOBJ_EX"),
        (0x82, "EXT1"),
        (b'P', "PERSID"),
        (0xff, "unknown"),
    ] {
        let object = Pickle::new().op(b'N').op(b'N').op(op).raw(b"x\ny\n").stop();
        let err = read_bytes(&legacy_file(&object, &[], &[])).unwrap_err();
        assert!(
            matches!(err, Problem::Opcode { byte, name: n, .. } if byte == op && n == name),
            "{name}: {err:?}"
        );
    }
}

#[test]
fn truncation_at_every_byte_is_an_error() {
    for case in ["dtypes", "views", "nested", "module"] {
        for format in ["zip", "legacy"] {
            let bytes = read(&format!("cases/{case}-{format}.pth"));
            for len in 0..bytes.len() {
                assert!(
                    read_bytes(&bytes[..len]).is_err(),
                    "{case}-{format} cut at {len} of {} bytes was accepted",
                    bytes.len()
                );
            }
        }
    }
}

fn one_tensor(
    entry: Entry,
    keys: &[&str],
    storages: &[(u64, Vec<u8>)],
) -> Result<graft_pth::StateDict, Problem> {
    read_bytes(&legacy_file(
        &state_dict_pickle(&[entry], None),
        keys,
        storages,
    ))
}

#[test]
fn a_hand_made_legacy_file_reads() {
    let sd = one_tensor(Entry::f32("w", "0", 4), &["0"], &[(4, floats(4))]).unwrap();
    assert_eq!(sd.tensors[0].data, floats(4));
}

#[test]
fn storage_sizes_that_lie_are_refused() {
    // The data's count disagrees with the pickle's declaration.
    let err = one_tensor(Entry::f32("w", "0", 4), &["0"], &[(5, floats(5))]).unwrap_err();
    assert!(
        matches!(err, Problem::Storage { ref what, .. } if what.contains("5 elements")),
        "{err:?}"
    );
    // The declaration is larger than the bytes that follow.
    let err = one_tensor(Entry::f32("w", "0", 1000), &["0"], &[(1000, floats(4))]).unwrap_err();
    assert!(matches!(err, Problem::Truncated { .. }), "{err:?}");
    // A count of 2^61 elements: refused before any allocation.
    let err = one_tensor(Entry::f32("w", "0", 4), &["0"], &[(1 << 61, floats(4))]).unwrap_err();
    assert!(matches!(err, Problem::Storage { .. }), "{err:?}");
    // A storage used by a tensor but missing from the key list, and the reverse.
    let err = one_tensor(Entry::f32("w", "0", 4), &[], &[]).unwrap_err();
    assert!(
        matches!(err, Problem::Storage { ref what, .. } if what.contains("not in the file")),
        "{err:?}"
    );
    let object = Pickle::new().op(b'}').stop();
    let err = read_bytes(&legacy_file(&object, &["7"], &[(1, floats(1))])).unwrap_err();
    assert!(
        matches!(err, Problem::Storage { ref what, .. } if what.contains("never used")),
        "{err:?}"
    );
}

#[test]
fn views_past_their_storage_are_refused() {
    let storage = || vec![(6, floats(6))];
    let view = |offset, shape: Vec<i32>, strides: Vec<i32>| Entry {
        offset,
        shape,
        strides,
        ..Entry::f32("w", "0", 6)
    };
    for (entry, why) in [
        (view(3, vec![4], vec![1]), "offset + size"),
        (view(0, vec![2, 3], vec![4, 1]), "stride"),
        (view(0, vec![100], vec![0]), "repeats"),
        (
            view(0, vec![1 << 30, 1 << 30], vec![1, 1]),
            "overflow-free check",
        ),
        (view(-1, vec![1], vec![1]), "negative offset"),
        (view(0, vec![2], vec![-1]), "negative stride"),
    ] {
        let err = one_tensor(entry, &["0"], &storage()).unwrap_err();
        assert!(
            matches!(err, Problem::Tensor { .. } | Problem::Structure { .. }),
            "{why}: {err:?}"
        );
    }
    // Legacy storage views must lie inside their root storage.
    let object = state_dict_pickle(&[Entry::f32("w", "0", 6)], Some(("v", 4, 4)));
    let err = read_bytes(&legacy_file(&object, &["0"], &storage())).unwrap_err();
    assert!(matches!(err, Problem::Storage { .. }), "{err:?}");
    // ...and a view inside it reads its window.
    let mut e = Entry::f32("w", "0", 6);
    e.shape = vec![2];
    let object = state_dict_pickle(&[e], Some(("v", 3, 2)));
    let sd = read_bytes(&legacy_file(&object, &["0"], &storage())).unwrap();
    assert_eq!(sd.tensors[0].data, floats(6)[12..20]);
}

#[test]
fn one_storage_declared_two_ways_is_refused() {
    let a = Entry::f32("a", "0", 4);
    let b = Entry {
        storage_type: "DoubleStorage",
        ..Entry::f32("b", "0", 4)
    };
    let object = state_dict_pickle(&[a, b], None);
    let err = read_bytes(&legacy_file(&object, &["0"], &[(4, floats(4))])).unwrap_err();
    assert!(
        matches!(err, Problem::Storage { ref what, .. } if what.contains("again")),
        "{err:?}"
    );
}

#[test]
fn lengths_beyond_the_file_are_refused_without_allocating() {
    for op in [b'X', b'B', b'T'] {
        let object = Pickle::new()
            .op(op)
            .raw(&u32::MAX.to_le_bytes())
            .raw(b"abc")
            .stop();
        let err = read_bytes(&legacy_file(&object, &[], &[])).unwrap_err();
        assert!(matches!(err, Problem::Truncated { .. }), "{err:?}");
    }
    let object = Pickle::new().op(0x8d).raw(&u64::MAX.to_le_bytes()).stop();
    assert!(matches!(
        read_bytes(&legacy_file(&object, &[], &[])),
        Err(Problem::Truncated { .. })
    ));
    let object = Pickle::new().op(0x8b).raw(&u32::MAX.to_le_bytes()).stop();
    assert!(matches!(
        read_bytes(&legacy_file(&object, &[], &[])),
        Err(Problem::Truncated { .. })
    ));
}

#[test]
fn stack_and_memo_misuse_is_a_structure_error() {
    for object in [
        Pickle::new().op(b'h').raw(&[9]).stop(), // GET before PUT
        Pickle::new().op(b'R').stop(),           // REDUCE on an empty stack
        Pickle::new().op(b'(').op(b's').stop(),  // SETITEM across a MARK
        Pickle::new().op(b']').op(b'N').op(b's').stop(), // SETITEM on a list
        Pickle::new().op(b'u').stop(),           // SETITEMS without a MARK
        Pickle::new().op(b'N').op(b'N').op(b'b').stop(), // BUILD of None
    ] {
        let err = read_bytes(&legacy_file(&object, &[], &[])).unwrap_err();
        assert!(matches!(err, Problem::Structure { .. }), "{err:?}");
    }
}

#[test]
fn containers_that_hold_themselves_end_cleanly() {
    // l = []; l.append(l); d = {}; d["d"] = d: cycles through the memo.
    let list = Pickle::new()
        .op(b']')
        .op(b'q')
        .raw(&[0])
        .op(b'h')
        .raw(&[0])
        .op(b'a')
        .stop();
    let dict = Pickle::new()
        .op(b'}')
        .op(b'q')
        .raw(&[0])
        .str("d")
        .op(b'h')
        .raw(&[0])
        .op(b's')
        .stop();
    for object in [list, dict] {
        let err = read_bytes(&legacy_file(&object, &[], &[])).unwrap_err();
        assert!(matches!(err, Problem::NoTensors(_)), "{err:?}");
    }
}

#[test]
fn a_big_endian_file_is_refused() {
    let mut file = legacy_header(false);
    file.extend(Pickle::new().op(b'}').stop());
    file.extend(Pickle::new().op(b']').stop());
    assert!(
        matches!(read_bytes(&file), Err(Problem::Structure { ref what, .. }) if what.contains("big-endian"))
    );
}

#[test]
fn files_that_are_not_checkpoints_say_what_they_are() {
    let list = Pickle::new().op(b']').int(1).op(b'a').stop();
    for (bytes, says) in [
        (Vec::new(), "empty"),
        (b"hello, world\n".to_vec(), "text"),
        (list.clone(), "plain pickle"),
        (read("expected.safetensors"), "safetensors"),
    ] {
        let err = read_bytes(&bytes).unwrap_err();
        assert!(
            matches!(err, Problem::NotPyTorch(ref m) if m.contains(says)),
            "{says}: {err}"
        );
    }
    // A torch.save of a plain list: a readable file with no tensor dict.
    let err = read_bytes(&legacy_file(&list, &[], &[])).unwrap_err();
    assert!(
        matches!(err, Problem::NoTensors(ref m) if m.contains("list")),
        "{err}"
    );
}

/// `views-zip.pth` with `f` applied to its bytes.
fn patched_zip(f: impl Fn(&mut Vec<u8>)) -> Result<graft_pth::StateDict, Problem> {
    let mut bytes = read("cases/views-zip.pth");
    f(&mut bytes);
    read_bytes(&bytes)
}

fn central_entries(bytes: &[u8]) -> Vec<usize> {
    (0..bytes.len() - 4)
        .filter(|&i| bytes[i..i + 4] == [0x50, 0x4b, 0x01, 0x02])
        .collect()
}

/// An edit of a file's bytes.
type Patch = dyn Fn(&mut Vec<u8>);

#[test]
fn zip_entries_that_lie_are_refused() {
    assert!(patched_zip(|_| {}).is_ok());
    let cases: Vec<(&str, Box<Patch>)> = vec![
        (
            "size past the end",
            Box::new(|b: &mut Vec<u8>| {
                for at in central_entries(b) {
                    b[at + 20..at + 28]
                        .copy_from_slice(&[0xf0, 0xff, 0xff, 0x0f, 0xf0, 0xff, 0xff, 0x0f]);
                }
            }),
        ),
        (
            "local offset past the end",
            Box::new(|b: &mut Vec<u8>| {
                let at = central_entries(b)[0];
                b[at + 42..at + 46].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
            }),
        ),
        (
            "compressed entry",
            Box::new(|b: &mut Vec<u8>| {
                let at = central_entries(b)[0];
                b[at + 10] = 8;
            }),
        ),
        (
            "sizes differ",
            Box::new(|b: &mut Vec<u8>| {
                let at = *central_entries(b).last().unwrap();
                b[at + 20] ^= 1;
            }),
        ),
        (
            "directory past the end",
            Box::new(|b: &mut Vec<u8>| {
                let n = b.len();
                b[n - 6..n - 2].copy_from_slice(&0x7fff_0000u32.to_le_bytes());
            }),
        ),
        (
            "zip64 directory past the end",
            Box::new(|b: &mut Vec<u8>| {
                let n = b.len();
                b[n - 6..n - 2].copy_from_slice(&u32::MAX.to_le_bytes());
                let at = (0..n - 4)
                    .rev()
                    .find(|&i| b[i..i + 4] == [0x50, 0x4b, 0x06, 0x06])
                    .unwrap();
                b[at + 48..at + 56].copy_from_slice(&(1u64 << 40).to_le_bytes());
            }),
        ),
        (
            "more entries than listed",
            Box::new(|b: &mut Vec<u8>| {
                let n = b.len();
                b[n - 12] = b[n - 12].wrapping_add(1);
            }),
        ),
    ];
    for (why, f) in cases {
        assert!(patched_zip(f).is_err(), "{why}");
    }
}

#[test]
fn zip_records_must_match_their_storages() {
    let pickle = state_dict_pickle(&[Entry::f32("w", "0", 4)], None);
    let ok = zip_file(&[
        ("a/data.pkl", &pickle),
        ("a/byteorder", b"little"),
        ("a/data/0", &floats(4)),
    ]);
    assert_eq!(read_bytes(&ok).unwrap().tensors[0].data, floats(4));
    for (entries, why) in [
        (
            vec![("a/data.pkl", &pickle[..]), ("a/data/0", &floats(3)[..])],
            "short record",
        ),
        (vec![("a/data.pkl", &pickle[..])], "missing record"),
        (
            vec![
                ("a/data.pkl", &pickle[..]),
                ("a/data/0", &floats(4)[..]),
                ("a/data/0", &floats(4)[..]),
            ],
            "duplicate",
        ),
        (
            vec![("a/data.pkl", &pickle[..]), ("b/data.pkl", &pickle[..])],
            "two pickles",
        ),
        (
            vec![
                ("a/data.pkl", &pickle[..]),
                ("a/byteorder", b"big"),
                ("a/data/0", &floats(4)[..]),
            ],
            "big-endian",
        ),
        (vec![("a/other", &pickle[..])], "no data.pkl"),
    ] {
        assert!(read_bytes(&zip_file(&entries)).is_err(), "{why}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Damaged copies of real checkpoints never panic (an error or, rarely, other values).
    #[test]
    fn corrupted_checkpoints_never_panic(
        case in prop::sample::select(vec!["dtypes-zip", "dtypes-legacy", "views-zip", "views-legacy", "nested-legacy"]),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
    ) {
        let mut bytes = read(&format!("cases/{case}.pth"));
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let _ = read_bytes(&bytes);
    }

    /// Random bytes behind a valid legacy header never panic.
    #[test]
    fn random_pickles_never_panic(tail in prop::collection::vec(any::<u8>(), 0..256)) {
        let mut bytes = legacy_header(true);
        bytes.extend(tail);
        let _ = read_bytes(&bytes);
    }
}
