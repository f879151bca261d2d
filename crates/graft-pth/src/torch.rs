//! The closed list of globals a state dict may name, and the values they build: storages
//! (from persistent ids) and tensors (from `_rebuild_tensor_v2` and its relatives).

use std::collections::HashMap;
use std::rc::Rc;

use crate::error::Problem;
pub use crate::value::ElemType;
pub(crate) use crate::value::{Global, StorageRef, TensorRef};
use crate::value::{PersistentLoad, Value};

/// Maps a `GLOBAL module name` to the allow-list, or refuses it.
pub(crate) fn resolve_global(module: &str, name: &str) -> Result<Global, Problem> {
    let g = match (module, name) {
        ("collections", "OrderedDict") => Global::OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2") => Global::RebuildTensorV2,
        ("torch._utils", "_rebuild_tensor") => Global::RebuildTensor,
        ("torch._utils", "_rebuild_parameter") => Global::RebuildParameter,
        ("torch._utils", "_rebuild_parameter_with_state") => Global::RebuildParameterWithState,
        ("torch", storage) => {
            Global::StorageType(storage_type(storage).ok_or_else(|| forbid(module, name))?)
        }
        _ => return Err(forbid(module, name)),
    };
    Ok(g)
}

fn forbid(module: &str, name: &str) -> Problem {
    Problem::ForbiddenGlobal {
        module: module.chars().take(200).collect(),
        name: name.chars().take(200).collect(),
    }
}

fn storage_type(name: &str) -> Option<ElemType> {
    Some(match name {
        "FloatStorage" => ElemType::F32,
        "HalfStorage" => ElemType::F16,
        "BFloat16Storage" => ElemType::BF16,
        "DoubleStorage" => ElemType::F64,
        "LongStorage" => ElemType::I64,
        "IntStorage" => ElemType::I32,
        "ShortStorage" => ElemType::I16,
        "CharStorage" => ElemType::I8,
        "ByteStorage" => ElemType::U8,
        "BoolStorage" => ElemType::Bool,
        _ => return None,
    })
}

fn structure(what: impl Into<String>, offset: usize) -> Problem {
    Problem::Structure {
        what: what.into(),
        offset,
    }
}

/// `REDUCE` of an allowed global: builds data, calls nothing.
pub(crate) fn apply(g: Global, args: &[Value], offset: usize) -> Result<Value, Problem> {
    match g {
        Global::OrderedDict => ordered_dict(args, offset),
        Global::RebuildTensorV2 if (6..=7).contains(&args.len()) => rebuild_tensor(args, offset),
        Global::RebuildTensor if args.len() == 4 => rebuild_tensor(args, offset),
        Global::RebuildParameter if args.len() == 3 => parameter(args, offset),
        Global::RebuildParameterWithState if args.len() == 4 => parameter(args, offset),
        Global::StorageType(t) => Err(structure(
            format!("a call of torch's {} storage type", t.name()),
            offset,
        )),
        _ => Err(structure(
            format!("{g:?} with {} arguments", args.len()),
            offset,
        )),
    }
}

fn ordered_dict(args: &[Value], offset: usize) -> Result<Value, Problem> {
    let mut items = Vec::new();
    match args {
        [] => {}
        [Value::List(pairs)] => {
            for pair in pairs.borrow().iter() {
                match pair {
                    Value::Tuple(kv) if kv.len() == 2 => items.push((kv[0].clone(), kv[1].clone())),
                    other => {
                        return Err(structure(
                            format!("OrderedDict item {}", other.kind()),
                            offset,
                        ))
                    }
                }
            }
        }
        _ => return Err(structure("OrderedDict with unexpected arguments", offset)),
    }
    Ok(Value::Dict(Rc::new(std::cell::RefCell::new(items))))
}

fn parameter(args: &[Value], offset: usize) -> Result<Value, Problem> {
    match &args[0] {
        Value::Tensor(t) => Ok(Value::Tensor(t.clone())),
        other => Err(structure(
            format!("a Parameter of {}", other.kind()),
            offset,
        )),
    }
}

fn rebuild_tensor(args: &[Value], offset: usize) -> Result<Value, Problem> {
    let Value::Storage(storage) = &args[0] else {
        return Err(structure(format!("a tensor of {}", args[0].kind()), offset));
    };
    let storage_offset = non_negative(&args[1], "storage offset", offset)?;
    let shape = int_tuple(&args[2], "size", offset)?;
    let strides = int_tuple(&args[3], "stride", offset)?;
    if shape.len() != strides.len() {
        return Err(structure(
            format!(
                "a tensor with {} sizes and {} strides",
                shape.len(),
                strides.len()
            ),
            offset,
        ));
    }
    Ok(Value::Tensor(Rc::new(TensorRef {
        storage: storage.clone(),
        offset: storage_offset,
        shape,
        strides,
    })))
}

fn non_negative(v: &Value, what: &str, offset: usize) -> Result<u64, Problem> {
    match v.as_int() {
        Some(i) if i >= 0 => Ok(i as u64),
        _ => Err(structure(
            format!("{what} {} (want an int >= 0)", v.kind()),
            offset,
        )),
    }
}

fn int_tuple(v: &Value, what: &str, offset: usize) -> Result<Vec<u64>, Problem> {
    let items: Vec<Value> = match v {
        Value::Tuple(t) => t.to_vec(),
        Value::List(l) => l.borrow().clone(),
        other => {
            return Err(structure(
                format!("{what} given as {}", other.kind()),
                offset,
            ))
        }
    };
    if items.len() > 64 {
        return Err(Problem::Limit {
            what: "tensor rank",
            limit: 64,
        });
    }
    items
        .iter()
        .map(|i| non_negative(i, what, offset))
        .collect()
}

/// The storages a pickle declares through persistent ids, shared by both formats:
/// `('storage', storage_type, key, location, numel)`, plus `view_metadata` in the legacy
/// format (`None` or `(view_key, offset, size)`).
#[derive(Debug, Default)]
pub(crate) struct Storages {
    /// Key -> (element type, number of elements), as first declared.
    pub declared: HashMap<String, (ElemType, u64)>,
}

impl PersistentLoad for Storages {
    fn load(&mut self, pid: &Value, offset: usize) -> Result<Value, Problem> {
        let Value::Tuple(t) = pid else {
            return Err(structure(
                format!("a persistent id that is {}", pid.kind()),
                offset,
            ));
        };
        if !(5..=6).contains(&t.len()) || t[0].as_str() != Some("storage") {
            return Err(structure(
                "a persistent id that is not a torch storage",
                offset,
            ));
        }
        let Value::Global(Global::StorageType(elem)) = t[1] else {
            return Err(structure(
                format!("a storage type that is {}", t[1].kind()),
                offset,
            ));
        };
        let key = t[2]
            .as_str()
            .ok_or_else(|| structure("a storage key that is not a str", offset))?
            .to_string();
        let numel = non_negative(&t[4], "storage size", offset)?;
        self.declare(&key, elem, numel)?;
        let (start, len) = match t.get(5) {
            None | Some(Value::None) => (0, numel),
            Some(Value::Tuple(view)) if view.len() == 3 => {
                let start = non_negative(&view[1], "storage view offset", offset)?;
                let len = non_negative(&view[2], "storage view size", offset)?;
                if start.checked_add(len).map_or(true, |end| end > numel) {
                    return Err(Problem::Storage {
                        key,
                        what: format!("a view of elements {start}..+{len} of a storage of {numel}"),
                    });
                }
                (start, len)
            }
            Some(other) => {
                return Err(structure(
                    format!("storage view metadata {}", other.kind()),
                    offset,
                ))
            }
        };
        Ok(Value::Storage(Rc::new(StorageRef {
            key,
            elem,
            root_len: numel,
            start,
            len,
        })))
    }
}

impl Storages {
    fn declare(&mut self, key: &str, elem: ElemType, numel: u64) -> Result<(), Problem> {
        match self.declared.get(key) {
            Some(&(e, n)) if e != elem || n != numel => Err(Problem::Storage {
                key: key.to_string(),
                what: format!(
                    "declared as {} x {n} and again as {} x {numel}",
                    e.name(),
                    elem.name()
                ),
            }),
            Some(_) => Ok(()),
            None => {
                self.declared.insert(key.to_string(), (elem, numel));
                Ok(())
            }
        }
    }
}
