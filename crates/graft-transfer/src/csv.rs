//! CSV output (RFC 4180) for spreadsheets and plotting scripts.
//!
//! Records end with CRLF; a field is enclosed in double quotes when it contains a comma, a
//! double quote, CR or LF, or begins or ends with a space, and a double quote inside a quoted
//! field is doubled.

use std::path::Path;

use crate::TransferError;

/// Appends `field` to `out`, quoted if needed.
fn push_field(out: &mut String, field: &str) {
    let needs_quotes =
        field.contains([',', '"', '\r', '\n']) || field.starts_with(' ') || field.ends_with(' ');
    if needs_quotes {
        out.push('"');
        out.push_str(&field.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(field);
    }
}

fn push_record<S: AsRef<str>>(out: &mut String, fields: &[S]) {
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        push_field(out, f.as_ref());
    }
    out.push_str("\r\n");
}

/// A CSV document: the header line, then one line per row, each ending with CRLF.
///
/// Rows are written as given; RFC 4180 expects every row to have as many fields as the
/// header, which [`write_csv`] checks.
pub fn to_csv(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    push_record(&mut out, header);
    for row in rows {
        push_record(&mut out, row);
    }
    out
}

/// Writes [`to_csv`] to `path` atomically (a temporary file in the same folder, then a
/// rename). Fails, writing nothing, if a row's width differs from the header's.
pub fn write_csv(path: &Path, header: &[&str], rows: &[Vec<String>]) -> Result<(), TransferError> {
    if let Some((i, row)) = rows
        .iter()
        .enumerate()
        .find(|(_, r)| r.len() != header.len())
    {
        return Err(TransferError::Config(format!(
            "{}: row {} has {} fields but the header has {}",
            path.display(),
            i + 1,
            row.len(),
            header.len()
        )));
    }
    graft_nn::checkpoint::write_atomically(path, to_csv(header, rows).as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(fields: &[&str]) -> Vec<String> {
        fields.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn plain_fields_are_not_quoted() {
        let csv = to_csv(&["a", "b"], &[row(&["1", "x-y"]), row(&["", "2.5e-3"])]);
        assert_eq!(csv, "a,b\r\n1,x-y\r\n,2.5e-3\r\n");
    }

    #[test]
    fn special_fields_are_quoted_and_quotes_doubled() {
        let csv = to_csv(
            &["name", "note"],
            &[
                row(&["a,b", "say \"hi\""]),
                row(&["line\nbreak", "cr\rhere"]),
                row(&[" padded", "\""]),
            ],
        );
        assert_eq!(
            csv,
            "name,note\r\n\"a,b\",\"say \"\"hi\"\"\"\r\n\"line\nbreak\",\"cr\rhere\"\r\n\" padded\",\"\"\"\"\r\n"
        );
    }

    #[test]
    fn header_only() {
        assert_eq!(to_csv(&["only"], &[]), "only\r\n");
    }

    #[test]
    fn write_csv_is_atomic_and_checks_widths() {
        let dir = std::env::temp_dir().join(format!("graft-csv-{}", std::process::id()));
        let path = dir.join("runs.csv");
        write_csv(&path, &["a", "b"], &[row(&["1", "2"])]).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a,b\r\n1,2\r\n");
        let err = write_csv(&path, &["a", "b"], &[row(&["1"])]).unwrap_err();
        assert!(err.to_string().contains("row 1 has 1 fields"), "{err}");
        // The earlier file is untouched and no temporary file is left behind.
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "a,b\r\n1,2\r\n");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
