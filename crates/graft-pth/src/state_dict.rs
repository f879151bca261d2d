//! From the unpickled object to named contiguous tensors: find the dict of tensors (at the
//! top, or nested under `state_dict`, `model`, ...), check every view against its storage
//! and copy it out contiguously.

use std::collections::{HashMap, HashSet, VecDeque};
use std::rc::Rc;

use crate::error::Problem;
use crate::pickle::{Shared, Value};
use crate::torch::{ElemType, TensorRef};

/// Keys under which training scripts nest the model's state dict, tried first in this order.
const PREFERRED_KEYS: [&str; 8] = [
    "state_dict",
    "model_state_dict",
    "model",
    "module",
    "net",
    "network",
    "weights",
    "params",
];

/// How many containers the search for the tensor dict looks at, at most.
const MAX_SEARCHED: usize = 100_000;
/// How deep the search goes.
const MAX_DEPTH: usize = 6;

/// One tensor of a state dict: contiguous, little-endian, in its stored element type.
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    /// The state-dict name (`_blocks.0._bn1.weight`).
    pub name: String,
    /// The element type as stored (float types only; others are [`Skipped`]).
    pub dtype: ElemType,
    /// The shape (empty for a scalar).
    pub shape: Vec<usize>,
    /// The values in row-major order, little-endian.
    pub data: Vec<u8>,
}

impl Tensor {
    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }
}

/// An entry of the state dict that is not converted, and why.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Skipped {
    /// The entry's name.
    pub name: String,
    /// Why it is left out.
    pub reason: String,
}

/// Where the tensor dict was found and its entries, in file order.
pub(crate) struct Found {
    pub location: String,
    pub entries: Vec<(String, Value)>,
    pub skipped: Vec<Skipped>,
}

/// Finds the dict of tensors in `root`: `root` itself if it holds tensors, else the first
/// nested dict that does, preferring [`PREFERRED_KEYS`], then breadth-first.
pub(crate) fn find(root: &Value) -> Result<Found, Problem> {
    let mut queue: VecDeque<(String, Value, usize)> =
        VecDeque::from([(String::new(), root.clone(), 0)]);
    let mut seen: HashSet<*const ()> = HashSet::new();
    let mut searched = 0usize;
    while let Some((path, value, depth)) = queue.pop_front() {
        searched += 1;
        if searched > MAX_SEARCHED {
            return Err(Problem::Limit {
                what: "objects searched for the tensor dict",
                limit: MAX_SEARCHED,
            });
        }
        let Value::Dict(dict) = &value else {
            continue;
        };
        if !seen.insert(Rc::as_ptr(dict) as *const ()) {
            continue;
        }
        if holds_tensors(dict) {
            return Ok(entries(path, dict));
        }
        if depth < MAX_DEPTH {
            for (key, child) in ordered_children(dict) {
                let child_path = if path.is_empty() {
                    key
                } else {
                    format!("{path}.{key}")
                };
                queue.push_back((child_path, child, depth + 1));
            }
        }
    }
    Err(Problem::NoTensors(root.kind().to_string()))
}

fn holds_tensors(dict: &Shared<Vec<(Value, Value)>>) -> bool {
    dict.borrow()
        .iter()
        .any(|(_, v)| matches!(v, Value::Tensor(_)))
}

/// A dict's dict-valued children, those under a preferred key first.
fn ordered_children(dict: &Shared<Vec<(Value, Value)>>) -> Vec<(String, Value)> {
    let dict = dict.borrow();
    let mut children: Vec<(usize, String, Value)> = dict
        .iter()
        .filter(|(_, v)| matches!(v, Value::Dict(_)))
        .map(|(k, v)| {
            let key = key_text(k);
            let rank = PREFERRED_KEYS
                .iter()
                .position(|p| *p == key)
                .unwrap_or(PREFERRED_KEYS.len());
            (rank, key, v.clone())
        })
        .collect();
    children.sort_by_key(|(rank, _, _)| *rank);
    children.into_iter().map(|(_, k, v)| (k, v)).collect()
}

fn key_text(k: &Value) -> String {
    match k {
        Value::Str(s) => s.to_string(),
        Value::Int(i) => i.to_string(),
        other => format!("<{}>", other.kind()),
    }
}

/// The dict's entries with string keys (a later duplicate wins, as in Python); the rest
/// become notes.
fn entries(path: String, dict: &Shared<Vec<(Value, Value)>>) -> Found {
    let mut skipped = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<(String, Value)> = Vec::new();
    for (k, v) in dict.borrow().iter() {
        let Value::Str(name) = k else {
            skipped.push(Skipped {
                name: key_text(k),
                reason: "a key that is not a str".into(),
            });
            continue;
        };
        match index.get(name.as_ref()) {
            Some(&i) => out[i].1 = v.clone(),
            None => {
                index.insert(name.to_string(), out.len());
                out.push((name.to_string(), v.clone()));
            }
        }
    }
    let location = if path.is_empty() {
        "the top-level dict".to_string()
    } else {
        format!("the dict under `{path}`")
    };
    Found {
        location,
        entries: out,
        skipped,
    }
}

/// Copies tensor `name`'s view out of its storage's bytes, contiguously. `budget` is the
/// number of bytes the conversion may still produce; views that repeat elements or reach
/// past their storage are refused.
pub(crate) fn materialize(
    name: &str,
    t: &TensorRef,
    root_bytes: &[u8],
    budget: &mut u64,
) -> Result<Vec<u8>, Problem> {
    let bad = |what: String| Problem::Tensor {
        name: name.to_string(),
        what,
    };
    let elem = t.storage.elem.size();
    let numel = t
        .shape
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d))
        .ok_or_else(|| bad(format!("shape {:?} overflows", t.shape)))?;
    if numel == 0 {
        return Ok(Vec::new());
    }
    let last = t
        .shape
        .iter()
        .zip(&t.strides)
        .try_fold(t.offset, |acc, (&d, &s)| {
            (d - 1).checked_mul(s).and_then(|x| acc.checked_add(x))
        })
        .ok_or_else(|| bad("its strides overflow".into()))?;
    if last >= t.storage.len {
        return Err(bad(format!(
            "its view (offset {}, shape {:?}, strides {:?}) reaches element {last} of a storage of {}",
            t.offset, t.shape, t.strides, t.storage.len
        )));
    }
    if numel > t.storage.len {
        return Err(bad(format!(
            "{numel} elements from a storage of {}: a view that repeats elements (stride 0) is not converted",
            t.storage.len
        )));
    }
    let out_bytes = numel * elem as u64;
    if out_bytes > *budget {
        return Err(Problem::Limit {
            what: "bytes produced from shared storages",
            limit: usize::try_from(*budget).unwrap_or(usize::MAX),
        });
    }
    *budget -= out_bytes;
    let base = (t.storage.start as usize) * elem;
    let view = &root_bytes[base..base + t.storage.len as usize * elem];
    Ok(copy_strided(view, elem, t))
}

/// Row-major copy of a checked view; one slice copy when the view is contiguous.
fn copy_strided(view: &[u8], elem: usize, t: &TensorRef) -> Vec<u8> {
    let shape: Vec<usize> = t.shape.iter().map(|&d| d as usize).collect();
    let strides: Vec<usize> = t.strides.iter().map(|&s| s as usize).collect();
    let numel: usize = shape.iter().product();
    let offset = t.offset as usize;
    if is_contiguous(&shape, &strides) {
        return view[offset * elem..(offset + numel) * elem].to_vec();
    }
    let mut out = Vec::with_capacity(numel * elem);
    let mut index = vec![0usize; shape.len()];
    for _ in 0..numel {
        let at = offset
            + index
                .iter()
                .zip(&strides)
                .map(|(i, s)| i * s)
                .sum::<usize>();
        out.extend_from_slice(&view[at * elem..(at + 1) * elem]);
        for axis in (0..shape.len()).rev() {
            index[axis] += 1;
            if index[axis] < shape[axis] {
                break;
            }
            index[axis] = 0;
        }
    }
    out
}

fn is_contiguous(shape: &[usize], strides: &[usize]) -> bool {
    let mut expected = 1usize;
    for (&d, &s) in shape.iter().zip(strides).rev() {
        if d != 1 && s != expected {
            return false;
        }
        expected *= d;
    }
    true
}
