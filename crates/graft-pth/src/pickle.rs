//! A pickle interpreter that builds values and never calls anything.
//!
//! It knows the opcodes that `torch.save` emits for a state dict (protocols 2 to 5) and maps
//! `GLOBAL` to a closed list of names (`value::Global`); `REDUCE` applies only those, as data
//! constructors. Any other opcode or global is a typed [`Problem`]. Memory is bounded by the
//! input: every opcode consumes at least one byte and pushes at most one value, lengths are
//! checked against the bytes left before anything is allocated, and values shared through
//! the memo are reference-counted, not copied.

use std::cell::RefCell;
use std::rc::Rc;

use crate::error::Problem;
use crate::torch;
pub(crate) use crate::value::{PersistentLoad, Shared, Value};

/// Every list and dict a pickle made, emptied when dropped. A pickle can make a container
/// hold itself (`APPEND` of a memo `GET`); reference counting alone would leak that cycle.
#[derive(Default)]
pub(crate) struct Arena {
    lists: Vec<Shared<Vec<Value>>>,
    dicts: Vec<Shared<Vec<(Value, Value)>>>,
}

impl Arena {
    fn keep(&mut self, v: &Value) {
        match v {
            Value::List(l) => self.lists.push(l.clone()),
            Value::Dict(d) => self.dicts.push(d.clone()),
            _ => {}
        }
    }
}

impl Drop for Arena {
    fn drop(&mut self) {
        for l in &self.lists {
            l.borrow_mut().clear();
        }
        for d in &self.dicts {
            d.borrow_mut().clear();
        }
    }
}

/// Runs the pickle that starts at `start` and returns its value and the offset after `STOP`.
/// The containers it makes stay valid while `arena` lives.
pub(crate) fn unpickle(
    bytes: &[u8],
    start: usize,
    section: &'static str,
    persistent: &mut dyn PersistentLoad,
    arena: &mut Arena,
) -> Result<(Value, usize), Problem> {
    let mut m = Machine {
        arena,
        input: Input {
            bytes,
            pos: start,
            section,
        },
        stack: Vec::new(),
        marks: Vec::new(),
        memo: std::collections::HashMap::new(),
    };
    loop {
        let offset = m.input.pos;
        let op = m.input.byte()?;
        if op == b'.' {
            let value = m.pop(offset)?;
            return Ok((value, m.input.pos));
        }
        m.step(op, offset, persistent)?;
    }
}

struct Input<'a> {
    bytes: &'a [u8],
    pos: usize,
    section: &'static str,
}

impl<'a> Input<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Problem> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return Err(Problem::Truncated {
                section: self.section,
                offset: self.bytes.len(),
            });
        };
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn byte(&mut self) -> Result<u8, Problem> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, Problem> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }

    fn u32(&mut self) -> Result<u32, Problem> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn u64(&mut self) -> Result<u64, Problem> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }

    /// A length read from the file, refused before allocation if the bytes are not there.
    fn sized(&mut self, len: u64) -> Result<&'a [u8], Problem> {
        let len = usize::try_from(len).unwrap_or(usize::MAX);
        self.take(len)
    }

    /// A text line ending in `\n` (protocol 0 arguments), without the newline.
    fn line(&mut self) -> Result<&'a str, Problem> {
        let rest = &self.bytes[self.pos..];
        let Some(end) = rest.iter().position(|&b| b == b'\n') else {
            return Err(Problem::Truncated {
                section: self.section,
                offset: self.bytes.len(),
            });
        };
        let line = &rest[..end];
        self.pos += end + 1;
        std::str::from_utf8(line).map_err(|_| Problem::Structure {
            what: "a text argument that is not UTF-8".into(),
            offset: self.pos,
        })
    }
}

struct Machine<'a> {
    arena: &'a mut Arena,
    input: Input<'a>,
    stack: Vec<Value>,
    marks: Vec<usize>,
    memo: std::collections::HashMap<u64, Value>,
}

fn structure(what: impl Into<String>, offset: usize) -> Problem {
    Problem::Structure {
        what: what.into(),
        offset,
    }
}

impl Machine<'_> {
    fn pop(&mut self, offset: usize) -> Result<Value, Problem> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err(structure("a value taken from below a MARK", offset));
        }
        self.stack
            .pop()
            .ok_or_else(|| structure("an empty stack", offset))
    }

    fn pop_mark(&mut self, offset: usize) -> Result<Vec<Value>, Problem> {
        let mark = self
            .marks
            .pop()
            .ok_or_else(|| structure("no MARK before a list of items", offset))?;
        Ok(self.stack.split_off(mark))
    }

    fn top(&mut self, offset: usize) -> Result<&mut Value, Problem> {
        if self.marks.last().is_some_and(|&m| m >= self.stack.len()) {
            return Err(structure("a value taken from below a MARK", offset));
        }
        self.stack
            .last_mut()
            .ok_or_else(|| structure("an empty stack", offset))
    }

    fn push(&mut self, v: Value) {
        self.arena.keep(&v);
        self.stack.push(v);
    }

    fn put(&mut self, key: u64, offset: usize) -> Result<(), Problem> {
        let v = self.top(offset)?.clone();
        self.memo.insert(key, v);
        Ok(())
    }

    fn get(&mut self, key: u64, offset: usize) -> Result<(), Problem> {
        let v = self.memo.get(&key).cloned().ok_or_else(|| {
            structure(format!("memo key {key} read before it was written"), offset)
        })?;
        self.push(v);
        Ok(())
    }

    fn text(&mut self, len: u64, offset: usize) -> Result<(), Problem> {
        let raw = self.input.sized(len)?;
        let s =
            std::str::from_utf8(raw).map_err(|_| structure("a str that is not UTF-8", offset))?;
        self.push(Value::Str(Rc::from(s)));
        Ok(())
    }

    /// Python 2 `str` (BINSTRING): storage keys of old checkpoints. Latin-1 to text.
    fn latin1(&mut self, len: u64) -> Result<(), Problem> {
        let raw = self.input.sized(len)?;
        let s: String = raw.iter().map(|&b| char::from(b)).collect();
        self.push(Value::Str(Rc::from(s)));
        Ok(())
    }

    fn bytes(&mut self, len: u64) -> Result<(), Problem> {
        self.input.sized(len)?;
        self.push(Value::Bytes);
        Ok(())
    }

    fn long(&mut self, len: u64) -> Result<(), Problem> {
        let raw = self.input.sized(len)?;
        self.push(int_from_le(raw));
        Ok(())
    }

    fn tuple(&mut self, n: usize, offset: usize) -> Result<(), Problem> {
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(self.pop(offset)?);
        }
        items.reverse();
        self.push(Value::Tuple(Rc::from(items)));
        Ok(())
    }

    fn append(&mut self, items: Vec<Value>, offset: usize) -> Result<(), Problem> {
        match self.top(offset)? {
            Value::List(list) => {
                list.borrow_mut().extend(items);
                Ok(())
            }
            other => Err(structure(format!("APPEND to {}", other.kind()), offset)),
        }
    }

    fn set_items(&mut self, items: Vec<Value>, offset: usize) -> Result<(), Problem> {
        if items.len() % 2 != 0 {
            return Err(structure("a dict item without its value", offset));
        }
        match self.top(offset)? {
            Value::Dict(dict) => {
                let mut dict = dict.borrow_mut();
                let mut it = items.into_iter();
                while let (Some(k), Some(v)) = (it.next(), it.next()) {
                    dict.push((k, v));
                }
                Ok(())
            }
            other => Err(structure(format!("SETITEM on {}", other.kind()), offset)),
        }
    }

    fn global(&mut self, module: &str, name: &str) -> Result<(), Problem> {
        let g = torch::resolve_global(module, name)?;
        self.push(Value::Global(g));
        Ok(())
    }

    fn reduce(&mut self, offset: usize) -> Result<(), Problem> {
        let args = self.pop(offset)?;
        let callable = self.pop(offset)?;
        let Value::Tuple(args) = args else {
            return Err(structure(
                format!("REDUCE with {} as arguments", args.kind()),
                offset,
            ));
        };
        let Value::Global(g) = callable else {
            return Err(structure(format!("REDUCE of {}", callable.kind()), offset));
        };
        let v = torch::apply(g, &args, offset)?;
        self.push(v);
        Ok(())
    }

    /// BUILD sets an object's state: for a state dict, its `_metadata` attribute (kept
    /// nowhere: graft needs only the tensors); for a tensor, nothing it needs either.
    fn build(&mut self, offset: usize) -> Result<(), Problem> {
        let state = self.pop(offset)?;
        match (self.top(offset)?, &state) {
            (Value::Dict(_), Value::Dict(_) | Value::None | Value::Tuple(_)) => Ok(()),
            (Value::Tensor(_), _) => Ok(()),
            (target, _) => Err(structure(
                format!("BUILD of {} with {}", target.kind(), state.kind()),
                offset,
            )),
        }
    }

    fn step(
        &mut self,
        op: u8,
        offset: usize,
        persistent: &mut dyn PersistentLoad,
    ) -> Result<(), Problem> {
        match op {
            0x80 => {
                let proto = self.input.byte()?;
                if proto > 5 {
                    return Err(structure(format!("pickle protocol {proto}"), offset));
                }
            }
            0x95 => {
                self.input.u64()?; // FRAME: a length hint only
            }
            b'(' => self.marks.push(self.stack.len()),
            b'0' => {
                self.pop(offset)?;
            }
            b'1' => {
                self.pop_mark(offset)?;
            }
            b'2' => {
                let v = self.top(offset)?.clone();
                self.push(v);
            }
            b'N' => self.push(Value::None),
            0x88 => self.push(Value::Bool(true)),
            0x89 => self.push(Value::Bool(false)),
            b'J' => {
                let v = i32::from_le_bytes(self.input.take(4)?.try_into().unwrap());
                self.push(Value::Int(v.into()));
            }
            b'K' => {
                let v = self.input.byte()?;
                self.push(Value::Int(v.into()));
            }
            b'M' => {
                let v = self.input.u16()?;
                self.push(Value::Int(v.into()));
            }
            0x8a => {
                let n = self.input.byte()?;
                self.long(n.into())?;
            }
            0x8b => {
                let n = self.input.u32()?;
                self.long(n.into())?;
            }
            b'I' | b'L' => {
                let line = self.input.line()?;
                let t = line.trim_end_matches('L');
                let v = match t {
                    "01" => Value::Bool(true),
                    "00" => Value::Bool(false),
                    _ => Value::Int(t.parse().map_err(|_| structure("a text int", offset))?),
                };
                self.push(v);
            }
            b'G' => {
                self.input.take(8)?;
                self.push(Value::Float);
            }
            b'X' => {
                let n = self.input.u32()?;
                self.text(n.into(), offset)?;
            }
            0x8c => {
                let n = self.input.byte()?;
                self.text(n.into(), offset)?;
            }
            0x8d => {
                let n = self.input.u64()?;
                self.text(n, offset)?;
            }
            b'T' => {
                let n = self.input.u32()?;
                self.latin1(n.into())?;
            }
            b'U' => {
                let n = self.input.byte()?;
                self.latin1(n.into())?;
            }
            b'B' => {
                let n = self.input.u32()?;
                self.bytes(n.into())?;
            }
            b'C' => {
                let n = self.input.byte()?;
                self.bytes(n.into())?;
            }
            0x8e => {
                let n = self.input.u64()?;
                self.bytes(n)?;
            }
            b')' => self.push(Value::Tuple(Rc::from(Vec::new()))),
            b't' => {
                let items = self.pop_mark(offset)?;
                self.push(Value::Tuple(Rc::from(items)));
            }
            0x85 => self.tuple(1, offset)?,
            0x86 => self.tuple(2, offset)?,
            0x87 => self.tuple(3, offset)?,
            b']' => self.push(Value::List(Rc::new(RefCell::new(Vec::new())))),
            b'l' => {
                let items = self.pop_mark(offset)?;
                self.push(Value::List(Rc::new(RefCell::new(items))));
            }
            b'a' => {
                let v = self.pop(offset)?;
                self.append(vec![v], offset)?;
            }
            b'e' => {
                let items = self.pop_mark(offset)?;
                self.append(items, offset)?;
            }
            b'}' => self.push(Value::Dict(Rc::new(RefCell::new(Vec::new())))),
            b'd' => {
                let items = self.pop_mark(offset)?;
                self.push(Value::Dict(Rc::new(RefCell::new(Vec::new()))));
                self.set_items(items, offset)?;
            }
            b's' => {
                let v = self.pop(offset)?;
                let k = self.pop(offset)?;
                self.set_items(vec![k, v], offset)?;
            }
            b'u' => {
                let items = self.pop_mark(offset)?;
                self.set_items(items, offset)?;
            }
            b'c' => {
                let module = self.input.line()?.to_string();
                let name = self.input.line()?.to_string();
                self.global(&module, &name)?;
            }
            0x93 => {
                let name = self.pop(offset)?;
                let module = self.pop(offset)?;
                match (module.as_str(), name.as_str()) {
                    (Some(m), Some(n)) => self.global(m, n)?,
                    _ => return Err(structure("STACK_GLOBAL of non-strings", offset)),
                }
            }
            b'R' => self.reduce(offset)?,
            b'b' => self.build(offset)?,
            b'Q' => {
                let pid = self.pop(offset)?;
                let v = persistent.load(&pid, offset)?;
                self.push(v);
            }
            b'q' => {
                let k = self.input.byte()?;
                self.put(k.into(), offset)?;
            }
            b'r' => {
                let k = self.input.u32()?;
                self.put(k.into(), offset)?;
            }
            0x94 => {
                let k = self.memo.len() as u64;
                self.put(k, offset)?;
            }
            b'p' => {
                let k = self
                    .input
                    .line()?
                    .parse()
                    .map_err(|_| structure("PUT key", offset))?;
                self.put(k, offset)?;
            }
            b'h' => {
                let k = self.input.byte()?;
                self.get(k.into(), offset)?;
            }
            b'j' => {
                let k = self.input.u32()?;
                self.get(k.into(), offset)?;
            }
            b'g' => {
                let k = self
                    .input
                    .line()?
                    .parse()
                    .map_err(|_| structure("GET key", offset))?;
                self.get(k, offset)?;
            }
            _ => {
                return Err(Problem::Opcode {
                    byte: op,
                    name: opcode_name(op),
                    offset,
                })
            }
        }
        Ok(())
    }
}

/// An integer from little-endian two's-complement bytes (LONG1, LONG4).
fn int_from_le(raw: &[u8]) -> Value {
    if raw.is_empty() {
        return Value::Int(0);
    }
    if raw.len() <= 8 {
        let fill = if raw[raw.len() - 1] & 0x80 != 0 {
            0xff
        } else {
            0
        };
        let mut buf = [fill; 8];
        buf[..raw.len()].copy_from_slice(raw);
        return Value::Int(i64::from_le_bytes(buf));
    }
    Value::BigInt(Rc::from(raw))
}

/// The pickle name of an opcode this interpreter refuses, for the error message.
fn opcode_name(op: u8) -> &'static str {
    match op {
        b'i' => "INST",
        b'o' => "OBJ",
        0x81 => "NEWOBJ",
        0x92 => "NEWOBJ_EX",
        b'P' => "PERSID",
        0x82 => "EXT1",
        0x83 => "EXT2",
        0x84 => "EXT4",
        0x8f => "EMPTY_SET",
        0x90 => "ADDITEMS",
        0x91 => "FROZENSET",
        0x96 => "BYTEARRAY8",
        0x97 => "NEXT_BUFFER",
        0x98 => "READONLY_BUFFER",
        b'F' => "FLOAT",
        b'S' => "STRING",
        b'V' => "UNICODE",
        _ => "unknown",
    }
}
