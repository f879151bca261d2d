//! Import of CSV files: one sample per row, a label column and pixel
//! columns.
//!
//! Fields are separated by a delimiter (default `,`); a field may be
//! double-quoted (`""` inside quotes is a quote). Empty lines are skipped;
//! `\r\n` line ends and a UTF-8 byte-order mark are accepted. The label
//! column is given by index or, with a header row, by name; every other
//! column is a pixel. If every pixel value is an integer in `0..=255` the
//! data set is u8, otherwise f32. Labels are class indices (integers below
//! [`crate::format::MAX_CLASSES`]); a label that is not is an error naming its
//! line. Text labels are taken only by explicit choice
//! ([`CsvOptions::label_names`]): each distinct label text is then a class,
//! numbered in sorted order (or in the order of the class names given).

use std::collections::BTreeSet;
use std::path::Path;

use crate::dataset::Dataset;
use crate::error::DataError;
use crate::format::ElementType;
use crate::metadata::Metadata;
use crate::writer::DatasetWriter;

/// Which column holds the labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LabelColumn {
    /// 0-based column index.
    Index(usize),
    /// Column name from the header row.
    Name(String),
}

impl Default for LabelColumn {
    fn default() -> Self {
        LabelColumn::Index(0)
    }
}

impl LabelColumn {
    /// Parses a command-line value: a non-negative integer is an index,
    /// anything else a name.
    pub fn parse(s: &str) -> LabelColumn {
        s.trim()
            .parse::<usize>()
            .map_or_else(|_| LabelColumn::Name(s.to_string()), LabelColumn::Index)
    }
}

/// Options of [`import_csv`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    /// The label column (default: column 0).
    pub label_column: LabelColumn,
    /// Whether the first row is a header; `None` detects it: the first row
    /// is a header if a label is given by name, or if one of its pixel
    /// fields is not a number.
    pub has_header: Option<bool>,
    /// Sample shape (its product must equal the number of pixel columns);
    /// `None` gives `[number of pixel columns]`.
    pub shape: Option<Vec<usize>>,
    /// Field delimiter (default `b','`).
    pub delimiter: u8,
    /// Whether labels are class names (text) rather than class indices. Off by default, so
    /// one stray non-integer in a column of indices is an error, not a silent renumbering
    /// of every label as text.
    pub label_names: bool,
}

impl Default for CsvOptions {
    fn default() -> Self {
        CsvOptions {
            label_column: LabelColumn::default(),
            has_header: None,
            shape: None,
            delimiter: b',',
            label_names: false,
        }
    }
}

/// Splits one line into fields. Errors on an unterminated quote.
fn split_fields(line: &str, delim: char) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let mut in_quotes = false;
    let mut quoted_field = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    cur.push('"');
                    chars.next();
                } else {
                    in_quotes = false;
                }
            } else {
                cur.push(c);
            }
        } else if c == '"' && cur.trim().is_empty() && !quoted_field {
            cur.clear();
            in_quotes = true;
            quoted_field = true;
        } else if c == delim {
            fields.push(std::mem::take(&mut cur));
            quoted_field = false;
        } else {
            cur.push(c);
        }
    }
    if in_quotes {
        return Err("unterminated quoted field; close the quote".into());
    }
    fields.push(cur);
    Ok(fields)
}

fn csv_err(path: &Path, line: usize, reason: impl Into<String>) -> DataError {
    DataError::Csv {
        path: path.to_path_buf(),
        line,
        reason: reason.into(),
    }
}

/// Imports a CSV file into a graft data set at `out_path` (written
/// atomically) and opens it. See the [module docs](self) for the rules.
/// `class_names`, if given, names the classes: with integer labels it must
/// cover every label, with text labels it fixes their numbering.
pub fn import_csv(
    csv_path: impl AsRef<Path>,
    out_path: impl AsRef<Path>,
    options: &CsvOptions,
    class_names: Option<Vec<String>>,
    provenance: String,
) -> Result<Dataset, DataError> {
    let (path, out_path) = (csv_path.as_ref(), out_path.as_ref());
    let text = std::fs::read_to_string(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        action: "read (as UTF-8 text)",
        source,
    })?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let delim = char::from(options.delimiter);
    let mut rows = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let fields = split_fields(line, delim).map_err(|r| csv_err(path, i + 1, r))?;
        rows.push((i + 1, fields));
    }
    let Some((first_line, first)) = rows.first() else {
        return Err(csv_err(
            path,
            0,
            "the file has no rows; pass a CSV with one sample per row",
        ));
    };
    let ncols = first.len();
    let label_col = match &options.label_column {
        LabelColumn::Index(i) => *i,
        LabelColumn::Name(name) => {
            if options.has_header == Some(false) {
                return Err(csv_err(
                    path,
                    0,
                    format!("label column `{name}` is given by name but the file is declared to have no header; give the column index instead"),
                ));
            }
            first.iter().position(|f| f.trim() == name).ok_or_else(|| {
                csv_err(
                    path,
                    *first_line,
                    format!(
                        "the header has no column `{name}` (columns: {}); pass an existing name or an index",
                        first.join(", ")
                    ),
                )
            })?
        }
    };
    if label_col >= ncols {
        return Err(csv_err(
            path,
            *first_line,
            format!("label column {label_col} does not exist: the row has {ncols} columns (0-based indices)"),
        ));
    }
    if ncols < 2 {
        return Err(csv_err(
            path,
            *first_line,
            "a row needs a label column and at least one pixel column",
        ));
    }
    let has_header = options.has_header.unwrap_or_else(|| {
        matches!(options.label_column, LabelColumn::Name(_))
            || first
                .iter()
                .enumerate()
                .any(|(c, f)| c != label_col && f.trim().parse::<f64>().is_err())
    });
    let data_rows = if has_header { &rows[1..] } else { &rows[..] };
    if data_rows.is_empty() {
        return Err(csv_err(path, 0, "the file has a header but no data rows"));
    }
    let npix = ncols - 1;
    let shape = options.shape.clone().unwrap_or_else(|| vec![npix]);
    if shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)) != Some(npix) {
        return Err(csv_err(
            path,
            0,
            format!("shape {shape:?} does not hold the {npix} pixel columns; give a shape whose product is {npix}"),
        ));
    }
    let mut values: Vec<f32> = Vec::with_capacity(data_rows.len() * npix);
    let mut label_texts = Vec::with_capacity(data_rows.len());
    let mut all_u8 = true;
    for (line, fields) in data_rows {
        if fields.len() != ncols {
            return Err(csv_err(
                path,
                *line,
                format!("row has {} columns, the first row has {ncols}; every row needs the same columns", fields.len()),
            ));
        }
        for (c, f) in fields.iter().enumerate() {
            let f = f.trim();
            if c == label_col {
                label_texts.push(f.to_string());
                continue;
            }
            let v: f32 = f
                .parse()
                .map_err(|_| csv_err(path, *line, format!("column {c}: `{f}` is not a number")))?;
            if !v.is_finite() {
                return Err(csv_err(
                    path,
                    *line,
                    format!("column {c}: `{f}` is not finite"),
                ));
            }
            all_u8 &= v.fract() == 0.0 && (0.0..=255.0).contains(&v);
            values.push(v);
        }
    }
    let (labels, class_names) = csv_labels(
        path,
        data_rows,
        &label_texts,
        class_names,
        options.label_names,
        out_path,
    )?;
    let element_type = if all_u8 {
        ElementType::U8
    } else {
        ElementType::F32
    };
    let mut w = DatasetWriter::create(out_path, element_type, &shape)?;
    let mut bytes = Vec::with_capacity(npix);
    for (row, &label) in values.chunks_exact(npix).zip(&labels) {
        if all_u8 {
            bytes.clear();
            bytes.extend(row.iter().map(|&v| v as u8));
            w.push_bytes(&bytes, label)?;
        } else {
            w.push_f32(row, label)?;
        }
    }
    let stats = w.stats();
    w.finish(&Metadata {
        class_names,
        provenance,
        mean: stats.map(|s| s.0),
        std: stats.map(|s| s.1),
    })?;
    tracing::info!(csv = %path.display(), out = %out_path.display(), count = labels.len(), "imported CSV data set");
    Dataset::open(out_path)
}

/// Labels and class names from the label column's texts.
fn csv_labels(
    path: &Path,
    rows: &[(usize, Vec<String>)],
    texts: &[String],
    given: Option<Vec<String>>,
    label_names: bool,
    out_path: &Path,
) -> Result<(Vec<u32>, Vec<String>), DataError> {
    if !label_names {
        let mut labels = Vec::with_capacity(texts.len());
        for ((line, _), t) in rows.iter().zip(texts) {
            match t.parse::<u32>() {
                Ok(l) if (l as usize) < crate::format::MAX_CLASSES => labels.push(l),
                _ => {
                    return Err(csv_err(
                        path,
                        *line,
                        format!(
                            "label `{t}` is not a class index (an integer below {}); fix the \
                             row, or pass --label-names if the labels are class names",
                            crate::format::MAX_CLASSES
                        ),
                    ))
                }
            }
        }
        let names = crate::npy::class_names_for(&labels, given, path, out_path)?;
        return Ok((labels, names));
    }
    let names: Vec<String> = match given {
        Some(names) => names,
        None => texts
            .iter()
            .cloned()
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect(),
    };
    let mut labels = Vec::with_capacity(texts.len());
    for ((line, _), t) in rows.iter().zip(texts) {
        let Some(c) = names.iter().position(|n| n == t) else {
            return Err(csv_err(
                path,
                *line,
                format!("label `{t}` is not one of the given class names {names:?}; add it or fix the row"),
            ));
        };
        labels.push(c as u32);
    }
    Ok((labels, names))
}

#[cfg(test)]
mod tests {
    use super::split_fields;

    #[test]
    fn fields_and_quotes() {
        assert_eq!(split_fields("a,b,,c", ',').unwrap(), ["a", "b", "", "c"]);
        assert_eq!(
            split_fields("\"x,y\",\"he said \"\"hi\"\"\",3", ',').unwrap(),
            ["x,y", "he said \"hi\"", "3"]
        );
        assert!(split_fields("\"open,1", ',').is_err());
        assert_eq!(split_fields("1;2", ';').unwrap(), ["1", "2"]);
    }
}
