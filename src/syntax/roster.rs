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

/// Parses CSV text, strictly: every line is a row (or a blank line, skipped), and every row is
/// either in `rows` or the subject of an error in `errors`, located at its line and column — no
/// row is ever dropped or merged with another without a word.
///
/// Rows end in `\n` or `\r\n`. A cell may be quoted with `"` (a doubled `""` inside is one
/// quote, spaces around the quotes are ignored); a quoted cell ends on its line: a quote left
/// open is an error at the quote, and so is text after a closing quote. A row with more cells
/// than the header is an error; a shorter row is padded with empty cells. A roster with no
/// header line, or whose header cannot be read, is an `Err`.
pub fn parse(file: FileId, text: &str) -> Result<Roster, Vec<Diagnostic>> {
    let mut errors = Vec::new();
    let mut header: Option<Vec<Cell>> = None;
    let mut rows = Vec::new();
    let mut line_start = 0;
    while line_start < text.len() {
        let line_end = text
            .get(line_start..)
            .and_then(|rest| rest.find('\n'))
            .map_or(text.len(), |i| line_start + i);
        let raw = text.get(line_start..line_end).unwrap_or("");
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        let offset = line_start;
        line_start = line_end + 1;
        if line.trim().is_empty() {
            continue;
        }
        let cells = match read_row(file, line, offset) {
            Ok(cells) => cells,
            Err(error) => {
                errors.push(error);
                if header.is_none() {
                    return Err(errors);
                }
                continue;
            }
        };
        let Some(header) = &header else {
            header = Some(cells);
            continue;
        };
        let mut row = cells;
        if row.len() > header.len() {
            let extra = row
                .get(header.len())
                .map_or(Span::new(file, offset, offset), |c| c.span);
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
        let end = row
            .last()
            .map_or(Span::new(file, offset, offset), |c| c.span);
        while row.len() < header.len() {
            row.push(Cell {
                value: String::new(),
                span: Span::new(file, end.end as usize, end.end as usize),
            });
        }
        rows.push(row);
    }
    let Some(header) = header else {
        return Err(vec![
            Diagnostic::error("charter::roster_header", "the roster is empty")
                .with_label(Span::new(file, 0, 0), "expected a header line")
                .with_help(format!("the header starts `{}`", KNOWN_COLUMNS.join(","))),
        ]);
    };
    Ok(Roster {
        file,
        header,
        rows,
        errors,
    })
}

/// The cells of one line (without its line end) starting at byte `offset` of the file.
fn read_row(file: FileId, line: &str, offset: usize) -> Result<Vec<Cell>, Diagnostic> {
    let bytes = line.as_bytes();
    let mut cells = Vec::new();
    let mut i = 0;
    loop {
        let start = i;
        let blanks = bytes.get(i..).map_or(0, |rest| {
            rest.iter()
                .take_while(|b| matches!(b, b' ' | b'\t'))
                .count()
        });
        if bytes.get(i + blanks) == Some(&b'"') {
            let quote = i + blanks;
            i = quote + 1;
            let mut value = String::new();
            let mut from = i;
            loop {
                match (bytes.get(i), bytes.get(i + 1)) {
                    (Some(b'"'), Some(b'"')) => {
                        value.push_str(line.get(from..=i).unwrap_or(""));
                        i += 2;
                        from = i;
                    }
                    (Some(b'"'), _) => break,
                    (Some(_), _) => i += 1,
                    (None, _) => {
                        return Err(Diagnostic::error(
                            "charter::roster_syntax",
                            "this quote is not closed on its line",
                        )
                        .with_label(
                            Span::new(file, offset + quote, offset + quote + 1),
                            "opened here",
                        )
                        .with_help(
                            "close the cell with `\"` before the end of the line (a quote inside \
                             a quoted cell is written `\"\"`); a roster's cells cannot span lines",
                        ));
                    }
                }
            }
            value.push_str(line.get(from..i).unwrap_or(""));
            let span = Span::new(file, offset + quote + 1, offset + i);
            i += 1;
            while matches!(bytes.get(i), Some(b' ' | b'\t')) {
                i += 1;
            }
            if !matches!(bytes.get(i), None | Some(b',')) {
                let found = line.get(i..).and_then(|r| r.chars().next()).unwrap_or(' ');
                return Err(Diagnostic::error(
                    "charter::roster_syntax",
                    format!(
                        "unexpected `{}` after a quoted cell",
                        found.escape_default()
                    ),
                )
                .with_label(
                    Span::new(file, offset + i, offset + i + found.len_utf8()),
                    "expected `,` or the end of the line",
                )
                .with_help("put the whole cell inside the quotes: `\"a \"\"b\"\" c\"`"));
            }
            cells.push(Cell {
                value: value.trim().to_string(),
                span,
            });
        } else {
            while i < bytes.len() && bytes.get(i) != Some(&b',') {
                i += 1;
            }
            cells.push(Cell {
                value: line.get(start..i).unwrap_or("").trim().to_string(),
                span: Span::new(file, offset + start, offset + i),
            });
        }
        if bytes.get(i) == Some(&b',') {
            i += 1;
            continue;
        }
        break;
    }
    Ok(cells)
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
    fn an_open_quote_is_an_error_at_its_line_and_column_and_later_rows_stay() {
        let text = "key,name,tier\na,\"A,pro\nb,B,core\nc,\"C\"x,pro\n";
        let roster = parse(FileId(0), text).unwrap();
        assert_eq!(roster.rows.len(), 1);
        assert_eq!(roster.rows[0][0].value, "b");
        assert_eq!(roster.errors.len(), 2);
        let quote = roster.errors[0].primary_span().unwrap();
        assert_eq!(quote.start as usize, text.find("\"A").unwrap());
        assert_eq!(roster.errors[1].code, "charter::roster_syntax");
    }

    #[test]
    fn doubled_quotes_and_spaces_around_quotes() {
        let text = "key,name\na, \"say \"\"hi\"\"\" \n";
        let roster = parse(FileId(0), text).unwrap();
        assert_eq!(roster.rows[0][1].value, "say \"hi\"");
    }

    #[test]
    fn a_row_longer_than_the_header_is_an_error() {
        let roster = parse(FileId(0), "key,name\na,b,c\nd,e\n").unwrap();
        assert_eq!(roster.errors[0].code, "charter::roster_row");
        assert_eq!(roster.rows.len(), 1);
    }
}
