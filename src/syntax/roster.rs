//! Roster files: customers as CSV rows (LANGUAGE.md §7, `roster "PATH"`).
//!
//! A roster is parsed into cells with their spans in the CSV file, so that the checker can
//! treat each row exactly like a `customer` block and point its errors at file, line and column.

use crate::diagnostic::Diagnostic;
use crate::source::{FileId, Span};

/// One cell: its text (unquoted) and where it stands in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cell {
    pub value: String,
    pub span: Span,
}

/// A parsed roster: the header cells and the data rows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Roster {
    pub file: FileId,
    pub header: Vec<Cell>,
    pub rows: Vec<Vec<Cell>>,
    /// Rows that could not be read as rows (too many cells); they are left out of `rows`.
    pub errors: Vec<Diagnostic>,
}

/// Columns every roster must have.
pub const REQUIRED_COLUMNS: &[&str] = &["key", "name", "tier", "owner"];
/// Columns with a meaning; any other column becomes an attribute.
pub const KNOWN_COLUMNS: &[&str] = &[
    "key",
    "name",
    "tier",
    "addons",
    "owner",
    "admins",
    "members",
    "contract_end",
];

/// Parses CSV text. Rows may end in `\n` or `\r\n`; fields may be quoted with `"` (a doubled
/// `""` inside quotes is one quote). Blank lines are skipped. A row with more cells than the
/// header is an error kept in `errors` (the other rows are still read); a shorter row is padded
/// with empty cells. Text that is not CSV at all, or has no header, is an `Err`.
pub fn parse(file: FileId, text: &str) -> Result<Roster, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut records = Vec::new();
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(text.as_bytes());
    let mut record = csv::StringRecord::new();
    loop {
        let start = reader.position().byte() as usize;
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let end = reader.position().byte() as usize;
                if record.len() == 1 && record.get(0).is_some_and(|c| c.trim().is_empty()) {
                    continue;
                }
                let raw = text.get(start..end.min(text.len())).unwrap_or("");
                // The reader skips blank lines before a record; so do the spans.
                let blank = raw.len() - raw.trim_start_matches(['\r', '\n']).len();
                let spans = field_spans(raw.get(blank..).unwrap_or(""), start + blank);
                let cells = record
                    .iter()
                    .enumerate()
                    .map(|(i, value)| Cell {
                        value: value.trim().to_string(),
                        span: spans
                            .get(i)
                            .map_or(Span::new(file, start, start), |&(s, e)| {
                                Span::new(file, s, e)
                            }),
                    })
                    .collect::<Vec<_>>();
                records.push(cells);
            }
            Err(e) => {
                let at = e.position().map_or(start, |p| p.byte() as usize);
                errors.push(
                    Diagnostic::error("charter::roster_syntax", "the roster is not valid CSV")
                        .with_label(Span::new(file, at, at), "cannot read from here")
                        .with_help(e.to_string().to_lowercase()),
                );
                break;
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut records = records.into_iter();
    let Some(header) = records.next() else {
        return Err(vec![
            Diagnostic::error("charter::roster_header", "the roster is empty")
                .with_label(Span::new(file, 0, 0), "expected a header line")
                .with_help(format!("the header starts `{}`", KNOWN_COLUMNS.join(","))),
        ]);
    };
    let mut rows = Vec::new();
    for mut row in records {
        if row.len() > header.len() {
            let extra = row
                .get(header.len())
                .map(|c| c.span)
                .unwrap_or(Span::new(file, 0, 0));
            errors.push(
                Diagnostic::error(
                    "charter::roster_row",
                    format!(
                        "this row has {} cells but the header has {} columns",
                        row.len(),
                        header.len()
                    ),
                )
                .with_label(extra, "no column for this cell")
                .with_help("quote a cell that contains a comma: `\"a, b\"`"),
            );
            continue;
        }
        let end = row.last().map_or(Span::new(file, 0, 0), |c| c.span);
        while row.len() < header.len() {
            row.push(Cell {
                value: String::new(),
                span: Span::new(file, end.end as usize, end.end as usize),
            });
        }
        rows.push(row);
    }
    Ok(Roster {
        file,
        header,
        rows,
        errors,
    })
}

/// The byte ranges of the fields of one raw CSV record starting at `offset`, without quotes.
fn field_spans(raw: &str, offset: usize) -> Vec<(usize, usize)> {
    let bytes = raw.as_bytes();
    let mut spans = Vec::new();
    let mut i = 0;
    loop {
        let start = i;
        if bytes.get(i) == Some(&b'"') {
            i += 1;
            let content_start = i;
            while i < bytes.len() {
                match (bytes.get(i), bytes.get(i + 1)) {
                    (Some(b'"'), Some(b'"')) => i += 2,
                    (Some(b'"'), _) => break,
                    _ => i += 1,
                }
            }
            spans.push((offset + content_start, offset + i.min(bytes.len())));
            i += 1;
            while i < bytes.len() && !matches!(bytes.get(i), Some(b',' | b'\n' | b'\r')) {
                i += 1;
            }
        } else {
            while i < bytes.len() && !matches!(bytes.get(i), Some(b',' | b'\n' | b'\r')) {
                i += 1;
            }
            spans.push((offset + start, offset + i));
        }
        if bytes.get(i) == Some(&b',') {
            i += 1;
            continue;
        }
        break;
    }
    spans
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_keep_their_positions() {
        let text = "key,name,tier\nacme,\"Acme, Inc.\",pro\n\nbeta,Beta,core\r\n";
        let roster = parse(FileId(0), text).unwrap();
        assert_eq!(roster.header.len(), 3);
        assert_eq!(roster.rows.len(), 2);
        let name = &roster.rows[0][1];
        assert_eq!(name.value, "Acme, Inc.");
        assert_eq!(
            &text[name.span.start as usize..name.span.end as usize],
            "Acme, Inc."
        );
        let tier = &roster.rows[1][2];
        assert_eq!(
            &text[tier.span.start as usize..tier.span.end as usize],
            "core"
        );
    }

    #[test]
    fn a_row_longer_than_the_header_is_an_error() {
        let roster = parse(FileId(0), "key,name\na,b,c\nd,e\n").unwrap();
        assert_eq!(roster.errors[0].code, "charter::roster_row");
        assert_eq!(roster.rows.len(), 1);
    }
}
