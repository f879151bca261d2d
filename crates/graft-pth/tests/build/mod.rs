//! Hand-assembled pickles and legacy/zip containers, so tests can make files that lie.

/// A pickle being written, opcode by opcode.
#[derive(Default, Clone)]
pub struct Pickle(pub Vec<u8>);

impl Pickle {
    pub fn new() -> Self {
        Pickle(vec![0x80, 2])
    }
    pub fn op(mut self, op: u8) -> Self {
        self.0.push(op);
        self
    }
    pub fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.extend_from_slice(bytes);
        self
    }
    pub fn global(self, module: &str, name: &str) -> Self {
        self.op(b'c').raw(format!("{module}\n{name}\n").as_bytes())
    }
    pub fn str(self, s: &str) -> Self {
        self.op(b'X')
            .raw(&(s.len() as u32).to_le_bytes())
            .raw(s.as_bytes())
    }
    pub fn int(self, i: i32) -> Self {
        self.op(b'J').raw(&i.to_le_bytes())
    }
    pub fn mark(self) -> Self {
        self.op(b'(')
    }
    pub fn tuple(self) -> Self {
        self.op(b't')
    }
    pub fn ints(self, v: &[i32]) -> Self {
        let mut p = self.mark();
        for &i in v {
            p = p.int(i);
        }
        p.tuple()
    }
    pub fn stop(self) -> Vec<u8> {
        self.op(b'.').0
    }
}

/// What one tensor entry of a hand-made state dict says.
#[derive(Clone)]
pub struct Entry {
    pub name: &'static str,
    pub key: &'static str,
    pub storage_type: &'static str,
    pub numel: i32,
    pub offset: i32,
    pub shape: Vec<i32>,
    pub strides: Vec<i32>,
}

impl Entry {
    /// A contiguous f32 tensor of `n` elements on storage `key`.
    pub fn f32(name: &'static str, key: &'static str, n: i32) -> Self {
        Entry {
            name,
            key,
            storage_type: "FloatStorage",
            numel: n,
            offset: 0,
            shape: vec![n],
            strides: vec![1],
        }
    }
}

/// `{name: _rebuild_tensor_v2(storage, offset, shape, strides, False, OrderedDict())}`.
/// `view` adds legacy view metadata `(view_key, offset, size)` to every persistent id.
pub fn state_dict_pickle(entries: &[Entry], view: Option<(&str, i32, i32)>) -> Vec<u8> {
    let mut p = Pickle::new().op(b'}').mark();
    for e in entries {
        p = p
            .str(e.name)
            .global("torch._utils", "_rebuild_tensor_v2")
            .mark()
            .mark()
            .str("storage")
            .global("torch", e.storage_type)
            .str(e.key)
            .str("cpu")
            .int(e.numel);
        p = match view {
            None => p.op(b'N'),
            Some((k, o, s)) => p.mark().str(k).int(o).int(s).tuple(),
        };
        p = p
            .tuple()
            .op(b'Q')
            .int(e.offset)
            .ints(&e.shape)
            .ints(&e.strides)
            .op(0x89)
            .global("collections", "OrderedDict")
            .op(b')')
            .op(b'R')
            .tuple()
            .op(b'R');
    }
    p.op(b'u').stop()
}

/// The three header pickles of a legacy file.
pub fn legacy_header(little_endian: bool) -> Vec<u8> {
    let mut out = vec![0x80, 2, 0x8a, 10];
    out.extend([
        0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, b'.',
    ]);
    out.extend(Pickle::new().op(b'M').raw(&1001u16.to_le_bytes()).stop());
    let flag = if little_endian { 0x88 } else { 0x89 };
    out.extend(
        Pickle::new()
            .op(b'}')
            .str("little_endian")
            .op(flag)
            .op(b's')
            .stop(),
    );
    out
}

/// A legacy file: header, `object`, the key list, and each storage as (count, bytes).
pub fn legacy_file(object: &[u8], keys: &[&str], storages: &[(u64, Vec<u8>)]) -> Vec<u8> {
    let mut out = legacy_header(true);
    out.extend_from_slice(object);
    let mut list = Pickle::new().op(b']').mark();
    for k in keys {
        list = list.str(k);
    }
    out.extend(list.op(b'e').stop());
    for (count, bytes) in storages {
        out.extend(count.to_le_bytes());
        out.extend(bytes);
    }
    out
}

/// `n` f32 values 0, 1, 2, ... as bytes.
pub fn floats(n: usize) -> Vec<u8> {
    (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect()
}

/// A stored (uncompressed) zip archive of `entries`, laid out as PyTorch writes it.
pub fn zip_file(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, data) in entries {
        let offset = out.len() as u32;
        let crc = {
            let mut c = flate2::Crc::new();
            c.update(data);
            c.sum()
        };
        let mut local = Vec::new();
        local.extend(0x0403_4b50u32.to_le_bytes());
        local.extend([20, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // version, flags, method 0, time, date
        local.extend(crc.to_le_bytes());
        local.extend((data.len() as u32).to_le_bytes());
        local.extend((data.len() as u32).to_le_bytes());
        local.extend((name.len() as u16).to_le_bytes());
        local.extend(0u16.to_le_bytes());
        local.extend(name.as_bytes());
        out.extend(local);
        out.extend(*data);
        central.extend(0x0201_4b50u32.to_le_bytes());
        central.extend([20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]); // made by, needed, flags, method, time, date
        central.extend(crc.to_le_bytes());
        central.extend((data.len() as u32).to_le_bytes());
        central.extend((data.len() as u32).to_le_bytes());
        central.extend((name.len() as u16).to_le_bytes());
        central.extend([0u8; 12]); // extra, comment, disk, internal attrs (2+2+2+2), external (4)
        central.extend(offset.to_le_bytes());
        central.extend(name.as_bytes());
    }
    let dir_offset = out.len() as u32;
    out.extend(&central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]);
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(dir_offset.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}
