//! The legacy container of `torch.save` (before torch 1.6, and `_use_new_zipfile_serialization=False`):
//! five pickles in a row (magic number, protocol version, system info, the object, the
//! storage keys), then each storage as an 8-byte little-endian element count and its bytes.

use std::collections::HashMap;

use crate::error::Problem;
use crate::pickle::{self, Arena, Value};
use crate::torch::Storages;

/// `torch.serialization.MAGIC_NUMBER` (0x1950a86a20f9469cfc6c), little-endian.
pub(crate) const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
/// `torch.serialization.PROTOCOL_VERSION`.
const PROTOCOL_VERSION: i64 = 1001;

/// The object pickle's value, its storages and each storage's bytes.
pub(crate) struct Legacy<'a> {
    pub object: Value,
    /// Keeps the object's containers; empties them when the reader is done.
    pub _arena: Arena,
    pub storages: Storages,
    pub data: HashMap<String, &'a [u8]>,
}

struct Nothing;

impl pickle::PersistentLoad for Nothing {
    fn load(&mut self, _: &Value, offset: usize) -> Result<Value, Problem> {
        Err(Problem::Structure {
            what: "a storage in a header pickle".into(),
            offset,
        })
    }
}

/// True when `bytes` start with the pickled magic number (`PROTO 2, LONG1 10, MAGIC`).
pub(crate) fn is_legacy(bytes: &[u8]) -> bool {
    bytes.len() >= 14
        && bytes[0] == 0x80
        && bytes[2] == 0x8a
        && bytes[3] == 10
        && bytes[4..14] == MAGIC
}

/// Reads the five pickles and the storages that follow them.
pub(crate) fn read(bytes: &[u8]) -> Result<Legacy<'_>, Problem> {
    let mut arena = Arena::default();
    let (magic, at) = pickle::unpickle(bytes, 0, "the magic number", &mut Nothing, &mut arena)?;
    if !matches!(&magic, Value::BigInt(b) if b[..] == MAGIC) {
        return Err(Problem::NotPyTorch(
            "a pickle without torch.save's magic number".into(),
        ));
    }
    let (version, at) =
        pickle::unpickle(bytes, at, "the protocol version", &mut Nothing, &mut arena)?;
    if version.as_int() != Some(PROTOCOL_VERSION) {
        return Err(Problem::Structure {
            what: format!("legacy protocol version {version:?} (graft reads {PROTOCOL_VERSION})"),
            offset: at,
        });
    }
    let (info, at) = pickle::unpickle(bytes, at, "the system info", &mut Nothing, &mut arena)?;
    check_little_endian(&info, at)?;
    let mut storages = Storages::default();
    let (object, at) = pickle::unpickle(bytes, at, "the object pickle", &mut storages, &mut arena)?;
    let (keys, at) = pickle::unpickle(bytes, at, "the storage key list", &mut Nothing, &mut arena)?;
    let data = storage_data(bytes, at, &keys, &storages)?;
    Ok(Legacy {
        object,
        _arena: arena,
        storages,
        data,
    })
}

fn check_little_endian(info: &Value, offset: usize) -> Result<(), Problem> {
    let Value::Dict(d) = info else {
        return Err(Problem::Structure {
            what: format!("system info that is {}", info.kind()),
            offset,
        });
    };
    let big = d
        .borrow()
        .iter()
        .any(|(k, v)| k.as_str() == Some("little_endian") && matches!(v, Value::Bool(false)));
    if big {
        return Err(Problem::Structure {
            what: "a big-endian checkpoint (graft reads little-endian ones)".into(),
            offset,
        });
    }
    Ok(())
}

/// Each storage listed in `keys`, in order: an element count that must match the pickle's
/// declaration, then that many elements.
fn storage_data<'a>(
    bytes: &'a [u8],
    mut at: usize,
    keys: &Value,
    storages: &Storages,
) -> Result<HashMap<String, &'a [u8]>, Problem> {
    let Value::List(keys) = keys else {
        return Err(Problem::Structure {
            what: format!("a storage key list that is {}", keys.kind()),
            offset: at,
        });
    };
    let mut data = HashMap::new();
    for key in keys.borrow().iter() {
        let key = key.as_str().ok_or_else(|| Problem::Structure {
            what: "a storage key that is not a str".into(),
            offset: at,
        })?;
        let storage_err = |what: String| Problem::Storage {
            key: key.to_string(),
            what,
        };
        let &(elem, numel) = storages
            .declared
            .get(key)
            .ok_or_else(|| storage_err("listed but never used by a tensor".into()))?;
        let count_bytes = bytes.get(at..at + 8).ok_or(Problem::Truncated {
            section: "a storage's element count",
            offset: bytes.len(),
        })?;
        let count = u64::from_le_bytes(count_bytes.try_into().unwrap());
        if count != numel {
            return Err(storage_err(format!(
                "its data says {count} elements, the pickle declares {numel}"
            )));
        }
        let len = usize::try_from(numel)
            .ok()
            .and_then(|n| n.checked_mul(elem.size()))
            .ok_or_else(|| storage_err(format!("{numel} elements overflow")))?;
        let start = at + 8;
        let slice = start
            .checked_add(len)
            .and_then(|end| bytes.get(start..end))
            .ok_or(Problem::Truncated {
                section: "a storage's data",
                offset: bytes.len(),
            })?;
        if data.insert(key.to_string(), slice).is_some() {
            return Err(storage_err("listed twice".into()));
        }
        at = start + len;
    }
    if let Some(missing) = storages.declared.keys().find(|k| !data.contains_key(*k)) {
        return Err(Problem::Storage {
            key: missing.clone(),
            what: "used by a tensor but its data is not in the file".into(),
        });
    }
    Ok(data)
}
