//! Importers for text data sets: one file per class (records separated by `fortune`'s `%`
//! lines) and CSV with a label column and a text column.

use std::path::{Path, PathBuf};

use crate::error::DataError;
use crate::metadata::Metadata;
use crate::text::write_text_dataset;

fn read_utf8(path: &Path) -> Result<String, DataError> {
    let bytes = std::fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        action: "read",
        source,
    })?;
    String::from_utf8(bytes).map_err(|e| DataError::InvalidArgument {
        path: path.to_path_buf(),
        reason: format!(
            "not UTF-8 at byte {}; convert the file to UTF-8 (e.g. with iconv)",
            e.utf8_error().valid_up_to()
        ),
    })
}

/// Removes terminal overstriking (`x BACKSPACE y` prints `y` over `x`, as in some fortune
/// files' underlined words): each backspace deletes the character before it.
fn strip_overstrike(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '\u{8}' {
            out.pop();
        } else {
            out.push(c);
        }
    }
    out
}

/// Splits the text of a `fortune` file into entries: entries are separated by lines holding
/// a single `%`; each entry is trimmed, overstriking removed, and empty entries dropped.
pub fn split_fortunes(text: &str) -> Vec<String> {
    let mut entries = Vec::new();
    let mut cur = String::new();
    let mut flush = |cur: &mut String| {
        let e = strip_overstrike(cur.trim());
        let e = e.trim();
        if !e.is_empty() {
            entries.push(e.to_string());
        }
        cur.clear();
    };
    for line in text.split_inclusive('\n') {
        if line.trim_end_matches(['\n', '\r']) == "%" {
            flush(&mut cur);
        } else {
            cur.push_str(line);
        }
    }
    flush(&mut cur);
    entries
}

/// The entries of one fortune file (see [`split_fortunes`]).
pub fn read_fortune_file(path: &Path) -> Result<Vec<String>, DataError> {
    Ok(split_fortunes(&read_utf8(path)?))
}

/// Imports one file per class into a text data set at `out`: class `c` is named after
/// `files[c]`'s file name and holds its entries (split on `%` lines), in file order.
/// Returns the number of records per class.
pub fn import_class_files(
    files: &[PathBuf],
    out: &Path,
    provenance: &str,
) -> Result<Vec<usize>, DataError> {
    if files.is_empty() {
        return Err(DataError::InvalidInput {
            path: out.to_path_buf(),
            reason: "no class files given; pass one file per class".into(),
        });
    }
    let mut texts = Vec::new();
    let mut labels = Vec::new();
    let mut names = Vec::new();
    let mut counts = Vec::new();
    for (c, f) in files.iter().enumerate() {
        let entries = read_fortune_file(f)?;
        if entries.is_empty() {
            return Err(DataError::InvalidArgument {
                path: f.clone(),
                reason: "holds no entries; every class needs at least one".into(),
            });
        }
        counts.push(entries.len());
        labels.extend(std::iter::repeat(c as u32).take(entries.len()));
        texts.extend(entries);
        names.push(
            f.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| format!("class{c}")),
        );
    }
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let metadata = Metadata {
        class_names: names,
        provenance: provenance.to_string(),
        mean: None,
        std: None,
    };
    write_text_dataset(out, &refs, &labels, &metadata)?;
    Ok(counts)
}

/// Which CSV columns hold the label and the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextCsvOptions {
    /// Column of the label (0-based).
    pub label_column: usize,
    /// Column of the text (0-based).
    pub text_column: usize,
    /// Whether the first row is a header (skipped). A header that names a `label` and a
    /// `text` column (any case) is honoured: those columns are used, whatever the numbers
    /// above say, so a `text,label` file is not read with its columns swapped.
    pub header: bool,
}

impl Default for TextCsvOptions {
    fn default() -> Self {
        Self {
            label_column: 0,
            text_column: 1,
            header: true,
        }
    }
}

/// Parses RFC 4180 CSV: fields separated by commas, optionally quoted with `"` (a quote
/// inside doubled), quoted fields may hold commas and newlines. Returns rows with the
/// 1-based line each starts on.
fn parse_csv(text: &str, path: &Path) -> Result<Vec<(usize, Vec<String>)>, DataError> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let (mut line, mut row_line) = (1usize, 1usize);
    let mut in_quotes = false;
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        any = true;
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            '"' if field.is_empty() => in_quotes = true,
            ',' => row.push(std::mem::take(&mut field)),
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                row.push(std::mem::take(&mut field));
                rows.push((row_line, std::mem::take(&mut row)));
                line += 1;
                row_line = line;
                any = false;
            }
            _ => field.push(c),
        }
    }
    if in_quotes {
        return Err(DataError::Csv {
            path: path.to_path_buf(),
            line: row_line,
            reason: "a quoted field is never closed; close it with `\"`".into(),
        });
    }
    if any {
        row.push(field);
        rows.push((row_line, row));
    }
    Ok(rows)
}

/// Imports a CSV file with a label column and a text column into a text data set at `out`.
/// Labels are names; classes are the distinct names, sorted (numerically when every label
/// is a non-negative integer). Empty texts are dropped. Returns the class names.
pub fn import_text_csv(
    path: &Path,
    out: &Path,
    opts: &TextCsvOptions,
) -> Result<Vec<String>, DataError> {
    let text = read_utf8(path)?;
    let rows = parse_csv(&text, path)?;
    let (mut label_column, mut text_column) = (opts.label_column, opts.text_column);
    if let (true, Some((_, header))) = (opts.header, rows.first()) {
        let named = |name: &str| {
            header
                .iter()
                .position(|f| f.trim().eq_ignore_ascii_case(name))
        };
        if let (Some(l), Some(t)) = (named("label"), named("text")) {
            (label_column, text_column) = (l, t);
        }
    }
    let need = label_column.max(text_column) + 1;
    let mut records = Vec::new();
    for (i, (line, row)) in rows.into_iter().enumerate() {
        if (i == 0 && opts.header) || row.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        if row.len() < need {
            return Err(DataError::Csv {
                path: path.to_path_buf(),
                line,
                reason: format!(
                    "{} fields, but the label/text columns need {need}; check the column numbers",
                    row.len()
                ),
            });
        }
        let label = row[label_column].trim().to_string();
        let t = row[text_column].trim().to_string();
        if label.is_empty() {
            return Err(DataError::Csv {
                path: path.to_path_buf(),
                line,
                reason: "empty label; give every row a label".into(),
            });
        }
        if !t.is_empty() {
            records.push((label, t));
        }
    }
    let mut names: Vec<String> = records.iter().map(|(l, _)| l.clone()).collect();
    names.sort();
    names.dedup();
    if names.iter().all(|n| n.parse::<u64>().is_ok()) {
        names.sort_by_key(|n| n.parse::<u64>().unwrap_or(u64::MAX));
    }
    let labels: Vec<u32> = records
        .iter()
        .map(|(l, _)| names.iter().position(|n| n == l).unwrap_or(0) as u32)
        .collect();
    let texts: Vec<&str> = records.iter().map(|(_, t)| t.as_str()).collect();
    let metadata = Metadata {
        class_names: names.clone(),
        provenance: format!("CSV {}", path.display()),
        mean: None,
        std: None,
    };
    write_text_dataset(out, &texts, &labels, &metadata)?;
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fortunes_split_on_percent_lines_and_drop_empty_entries() {
        let text = "A first\nentry.\n%\n%\n  \n%\nSecond with 50% off\n%\nTh_\u{8}ird\n";
        assert_eq!(
            split_fortunes(text),
            vec!["A first\nentry.", "Second with 50% off", "Third"]
        );
    }

    #[test]
    fn a_text_label_header_is_read_by_name_not_position() {
        let dir = std::env::temp_dir().join(format!("graft-text-header-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (csv, out) = (dir.join("t.csv"), dir.join("t.grafttx"));
        std::fs::write(&csv, "Text,Label\nhello there,ham\nbuy now,spam\n").unwrap();
        let names = import_text_csv(&csv, &out, &TextCsvOptions::default()).unwrap();
        assert_eq!(names, vec!["ham", "spam"]);
        let ds = crate::text::TextDataset::open(&out).unwrap();
        assert_eq!(ds.text(1).unwrap(), "buy now");
        assert_eq!(ds.labels(), &[0, 1]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn csv_quotes_commas_and_newlines() {
        let rows = parse_csv(
            "label,text\r\nham,\"a, \"\"b\"\"\nc\"\nspam,plain",
            Path::new("x"),
        )
        .unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1].1, vec!["ham", "a, \"b\"\nc"]);
        assert_eq!(rows[2], (4, vec!["spam".to_string(), "plain".to_string()]));
        assert!(parse_csv("a,\"open", Path::new("x")).is_err());
    }
}
