//! The zip container of `torch.save` (torch >= 1.6): `<archive>/data.pkl`, the storages as
//! `<archive>/data/<key>`, `<archive>/byteorder`. PyTorch stores every entry uncompressed,
//! so this reader accepts only stored entries, and checks every offset and size against
//! the file (central directory, local headers, zip64 fields) before slicing.

use std::collections::HashMap;

use crate::error::Problem;

/// Uncompressed entries by name, each a slice of the file.
pub(crate) struct Archive<'a> {
    pub entries: HashMap<String, &'a [u8]>,
}

const EOCD: u32 = 0x0605_4b50;
const EOCD64_LOCATOR: u32 = 0x0706_4b50;
const EOCD64: u32 = 0x0606_4b50;
const CENTRAL: u32 = 0x0201_4b50;
const LOCAL: u32 = 0x0403_4b50;
/// The most entries an archive may list (a state dict of 100k tensors is far beyond any
/// network graft can train).
const MAX_ENTRIES: usize = 1_000_000;

fn zip_err(what: impl Into<String>) -> Problem {
    Problem::Zip(what.into())
}

fn read<const N: usize>(bytes: &[u8], at: usize, what: &str) -> Result<[u8; N], Problem> {
    at.checked_add(N)
        .and_then(|end| bytes.get(at..end))
        .map(|s| s.try_into().unwrap())
        .ok_or_else(|| zip_err(format!("{what} at byte {at} lies past the end of the file")))
}

fn u16_at(b: &[u8], at: usize, what: &str) -> Result<u16, Problem> {
    Ok(u16::from_le_bytes(read(b, at, what)?))
}

fn u32_at(b: &[u8], at: usize, what: &str) -> Result<u32, Problem> {
    Ok(u32::from_le_bytes(read(b, at, what)?))
}

fn u64_at(b: &[u8], at: usize, what: &str) -> Result<u64, Problem> {
    Ok(u64::from_le_bytes(read(b, at, what)?))
}

fn to_usize(v: u64, what: &str) -> Result<usize, Problem> {
    usize::try_from(v).map_err(|_| zip_err(format!("{what} {v} is too large")))
}

/// Where the central directory is and how many entries it lists.
struct Directory {
    offset: usize,
    size: usize,
    count: usize,
}

/// Opens the archive, validating every entry against the file.
pub(crate) fn open(bytes: &[u8]) -> Result<Archive<'_>, Problem> {
    let dir = directory(bytes)?;
    let end = dir
        .offset
        .checked_add(dir.size)
        .filter(|&e| e <= bytes.len())
        .ok_or_else(|| zip_err("the central directory lies past the end of the file"))?;
    let mut entries = HashMap::new();
    let mut at = dir.offset;
    for _ in 0..dir.count {
        let (name, data, next) = entry(bytes, at, end)?;
        if entries.insert(name.clone(), data).is_some() {
            return Err(zip_err(format!("entry {name} is listed twice")));
        }
        at = next;
    }
    Ok(Archive { entries })
}

fn directory(bytes: &[u8]) -> Result<Directory, Problem> {
    if bytes.len() < 22 {
        return Err(Problem::Truncated {
            section: "the zip archive's end record",
            offset: bytes.len(),
        });
    }
    // The end record is the last 22 bytes plus a comment of at most 65535 bytes.
    let lowest = bytes.len().saturating_sub(22 + 65_535);
    let eocd = (lowest..=bytes.len() - 22)
        .rev()
        .find(|&i| bytes[i..i + 4] == EOCD.to_le_bytes())
        .ok_or(Problem::Truncated {
            section: "the zip archive (no end record)",
            offset: bytes.len(),
        })?;
    let count = u16_at(bytes, eocd + 10, "entry count")?;
    let size = u32_at(bytes, eocd + 12, "directory size")?;
    let offset = u32_at(bytes, eocd + 16, "directory offset")?;
    if count != u16::MAX && size != u32::MAX && offset != u32::MAX {
        return Ok(Directory {
            offset: offset as usize,
            size: size as usize,
            count: count as usize,
        });
    }
    directory64(bytes, eocd)
}

fn directory64(bytes: &[u8], eocd: usize) -> Result<Directory, Problem> {
    let locator = eocd
        .checked_sub(20)
        .ok_or_else(|| zip_err("a zip64 archive without its locator"))?;
    if u32_at(bytes, locator, "zip64 locator")? != EOCD64_LOCATOR {
        return Err(zip_err("a zip64 archive without its locator"));
    }
    let at = to_usize(
        u64_at(bytes, locator + 8, "zip64 end record offset")?,
        "offset",
    )?;
    if u32_at(bytes, at, "zip64 end record")? != EOCD64 {
        return Err(zip_err(
            "the zip64 end record is not where its locator says",
        ));
    }
    let count = to_usize(u64_at(bytes, at + 32, "zip64 entry count")?, "entry count")?;
    if count > MAX_ENTRIES {
        return Err(Problem::Limit {
            what: "zip entries",
            limit: MAX_ENTRIES,
        });
    }
    Ok(Directory {
        count,
        size: to_usize(u64_at(bytes, at + 40, "zip64 directory size")?, "size")?,
        offset: to_usize(u64_at(bytes, at + 48, "zip64 directory offset")?, "offset")?,
    })
}

/// One central-directory entry at `at`: its name, its data (checked against the local
/// header) and where the next entry starts.
fn entry(bytes: &[u8], at: usize, end: usize) -> Result<(String, &[u8], usize), Problem> {
    if at + 46 > end || u32_at(bytes, at, "central directory entry")? != CENTRAL {
        return Err(zip_err(format!(
            "central directory entry at byte {at} is missing or damaged"
        )));
    }
    let method = u16_at(bytes, at + 10, "compression method")?;
    let mut compressed = u64::from(u32_at(bytes, at + 20, "compressed size")?);
    let mut size = u64::from(u32_at(bytes, at + 24, "size")?);
    let name_len = usize::from(u16_at(bytes, at + 28, "name length")?);
    let extra_len = usize::from(u16_at(bytes, at + 30, "extra length")?);
    let comment_len = usize::from(u16_at(bytes, at + 32, "comment length")?);
    let mut local = u64::from(u32_at(bytes, at + 42, "local header offset")?);
    let name_at = at + 46;
    let next = name_at + name_len + extra_len + comment_len;
    if next > end {
        return Err(zip_err(format!(
            "central directory entry at byte {at} runs past the directory"
        )));
    }
    let name = std::str::from_utf8(&bytes[name_at..name_at + name_len])
        .map_err(|_| zip_err("an entry name that is not UTF-8"))?
        .to_string();
    let extra = &bytes[name_at + name_len..name_at + name_len + extra_len];
    zip64_sizes(extra, &mut size, &mut compressed, &mut local)?;
    if method != 0 {
        return Err(zip_err(format!(
            "entry {name} is compressed (method {method}); PyTorch stores entries uncompressed: re-save the checkpoint with torch.save"
        )));
    }
    if compressed != size {
        return Err(zip_err(format!(
            "entry {name} is stored but its sizes differ ({compressed} vs {size})"
        )));
    }
    let data = local_data(bytes, to_usize(local, "local header offset")?, &name, size)?;
    Ok((name, data, next))
}

/// The zip64 extra field (id 1) replaces whichever of size, compressed size and offset
/// are 0xFFFFFFFF, in that order.
fn zip64_sizes(
    extra: &[u8],
    size: &mut u64,
    compressed: &mut u64,
    local: &mut u64,
) -> Result<(), Problem> {
    let mut at = 0;
    while at + 4 <= extra.len() {
        let id = u16::from_le_bytes([extra[at], extra[at + 1]]);
        let len = usize::from(u16::from_le_bytes([extra[at + 2], extra[at + 3]]));
        let body = extra
            .get(at + 4..at + 4 + len)
            .ok_or_else(|| zip_err("an extra field runs past its entry"))?;
        if id == 1 {
            let mut fields = body
                .chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().unwrap()));
            for slot in [size, compressed, local] {
                if *slot == u64::from(u32::MAX) {
                    *slot = fields
                        .next()
                        .ok_or_else(|| zip_err("a zip64 field is missing"))?;
                }
            }
            return Ok(());
        }
        at += 4 + len;
    }
    Ok(())
}

/// The entry's bytes after its local header, whose name must match the directory's.
fn local_data<'a>(bytes: &'a [u8], at: usize, name: &str, size: u64) -> Result<&'a [u8], Problem> {
    if u32_at(bytes, at, "local header")? != LOCAL {
        return Err(zip_err(format!(
            "entry {name}: no local header at byte {at}"
        )));
    }
    let name_len = usize::from(u16_at(bytes, at + 26, "local name length")?);
    let extra_len = usize::from(u16_at(bytes, at + 28, "local extra length")?);
    let name_at = at + 30;
    let local_name = bytes
        .get(name_at..name_at + name_len)
        .ok_or_else(|| zip_err(format!("entry {name}: local header runs past the end")))?;
    if local_name != name.as_bytes() {
        return Err(zip_err(format!(
            "entry {name}: its local header names {}",
            String::from_utf8_lossy(local_name)
        )));
    }
    let start = name_at + name_len + extra_len;
    let size = to_usize(size, "entry size")?;
    start
        .checked_add(size)
        .and_then(|end| bytes.get(start..end))
        .ok_or_else(|| {
            zip_err(format!(
                "entry {name} claims {size} bytes at byte {start}, past the end of the file ({} bytes)",
                bytes.len()
            ))
        })
}
