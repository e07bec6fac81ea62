//! What a human diagnostic shows of a file: the lines around each label, never the whole file,
//! with secrets masked and control characters escaped.
//!
//! miette reads source through [`miette::SourceCode`]; given a whole file, it scans it from the
//! start for every diagnostic (to count lines), so rendering N diagnostics of a file cost
//! O(N × file). An [`Excerpt`] holds only a window of lines around each label, found through the
//! file's precomputed line index, so a diagnostic costs O(its lines) whatever the file's size.
//!
//! The window's text is what the user sees, so it is also where input is made safe to show:
//! - a secret on a line — the value of a key that names a token, password or secret, the user
//!   and password of a URL (`https://user:pass@host`), and in a confidential file
//!   (`charter.toml`) every value of a key charter does not know and every line that is not a
//!   setting — is replaced by `*`s;
//! - a control character (ESC, CR not ending a line, NUL, DEL, C1 controls) or a bidirectional
//!   override is shown escaped (`\u{1b}`), never written raw to the terminal.

use std::ops::Range;

use miette::{MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents};

use crate::source::SourceFile;

/// Lines of context shown above and below each label.
pub const CONTEXT_LINES: usize = 1;

/// Labels whose windows are at most this many lines apart are drawn in one excerpt, the lines
/// between them included.
const JOIN_GAP_LINES: usize = 8;

/// Keys of `charter.toml` whose values are shown in its excerpts; any other value is masked.
const CONFIDENTIAL_SHOWN_KEYS: &[&str] = &["url", "token_env", "token_file", "path"];
/// Keys of `charter.toml` whose values are shown when they are numbers.
const CONFIDENTIAL_NUMBER_KEYS: &[&str] = &[
    "rate_limit",
    "rate_share",
    "concurrency",
    "timeout",
    "connect_timeout",
];

/// Words that make a key's value a secret wherever it is written.
const SECRET_WORDS: &[&str] = &[
    "token",
    "password",
    "passwd",
    "pwd",
    "secret",
    "apikey",
    "api_key",
    "api-key",
    "credential",
    "authorization",
    "private_key",
];

/// A part of the shown text and the part of the file it stands for.
#[derive(Clone, Copy, Debug)]
struct Piece {
    file: (usize, usize),
    shown: (usize, usize),
    /// Copied byte for byte (offsets inside map one to one) or replaced (an escape, a mask).
    verbatim: bool,
}

/// A run of whole lines of the file, as shown.
#[derive(Debug)]
struct Window {
    /// 0-based numbers of the window's first and last lines in the file.
    first_line: usize,
    last_line: usize,
    shown: Range<usize>,
}

/// The windows of one file that a diagnostic's labels need, ready for miette.
#[derive(Debug)]
pub struct Excerpt {
    name: String,
    text: String,
    windows: Vec<Window>,
    pieces: Vec<Piece>,
}

impl Excerpt {
    /// The lines around each of `spans` (byte ranges in `file`), `CONTEXT_LINES` either side.
    pub fn new(file: &SourceFile, spans: impl IntoIterator<Item = (usize, usize)>) -> Excerpt {
        let last_line = file.line_count().saturating_sub(1);
        let mut ranges: Vec<(usize, usize)> = spans
            .into_iter()
            .map(|(start, end)| {
                let first = file.line_index(start);
                let last = file.line_index(end.max(start));
                (
                    first.saturating_sub(CONTEXT_LINES),
                    (last + CONTEXT_LINES).min(last_line),
                )
            })
            .collect();
        ranges.sort_unstable();
        let mut merged: Vec<(usize, usize)> = Vec::new();
        for (first, last) in ranges {
            match merged.last_mut() {
                Some(previous) if first <= previous.1 + 1 + JOIN_GAP_LINES => {
                    previous.1 = previous.1.max(last);
                }
                _ => merged.push((first, last)),
            }
        }
        let mut excerpt = Excerpt {
            name: file.name.clone(),
            text: String::new(),
            windows: Vec::with_capacity(merged.len()),
            pieces: Vec::new(),
        };
        for (first, last) in merged {
            let start = file.line_start(first);
            let end = file.line_end_with_newline(last);
            let shown_start = excerpt.text.len();
            let mut line_start = start;
            while line_start < end {
                let line_end = file
                    .text
                    .get(line_start..end)
                    .and_then(|rest| rest.find('\n'))
                    .map_or(end, |i| line_start + i + 1);
                excerpt.push_line(file, line_start, line_end);
                line_start = line_end;
            }
            excerpt.windows.push(Window {
                first_line: first,
                last_line: last,
                shown: shown_start..excerpt.text.len(),
            });
        }
        excerpt
    }

    /// Where a byte offset of the file is in the shown text (an offset inside a replaced part
    /// goes to its start, or to its end for the end of a span).
    pub fn shown_offset(&self, offset: usize, is_end: bool) -> usize {
        let index = self.pieces.partition_point(|p| p.file.1 <= offset);
        match self.pieces.get(index) {
            Some(piece) if piece.file.0 <= offset => {
                if piece.verbatim {
                    piece.shown.0 + (offset - piece.file.0)
                } else if is_end && offset > piece.file.0 {
                    piece.shown.1
                } else {
                    piece.shown.0
                }
            }
            Some(piece) => piece.shown.0,
            None => self.text.len(),
        }
    }

    /// A span of the file as a span of the shown text.
    pub fn shown_span(&self, start: usize, end: usize) -> SourceSpan {
        let shown_start = self.shown_offset(start, false);
        let shown_end = self.shown_offset(end, true).max(shown_start);
        (shown_start, shown_end - shown_start).into()
    }

    fn push_line(&mut self, file: &SourceFile, start: usize, end: usize) {
        let Some(line) = file.text.get(start..end) else {
            return;
        };
        let secrets = secret_ranges(line, file.confidential);
        let mut verbatim_from: Option<usize> = None;
        let mut chars = line.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            let replacement = if let Some(secret) = secrets.iter().find(|r| r.contains(&i)) {
                // The whole secret at once, one `*` per character.
                let count = line.get(i..secret.end).map_or(0, |s| s.chars().count());
                for _ in 1..count {
                    chars.next();
                }
                Some(("*".repeat(count), secret.end))
            } else if needs_escape(c, chars.peek().map(|&(_, next)| next)) {
                Some((c.escape_default().to_string(), i + c.len_utf8()))
            } else {
                None
            };
            match replacement {
                Some((shown, until)) => {
                    if let Some(from) = verbatim_from.take() {
                        self.push_verbatim(line, start, from, i);
                    }
                    let shown_start = self.text.len();
                    self.text.push_str(&shown);
                    self.pieces.push(Piece {
                        file: (start + i, start + until),
                        shown: (shown_start, self.text.len()),
                        verbatim: false,
                    });
                }
                None => {
                    verbatim_from.get_or_insert(i);
                }
            }
        }
        if let Some(from) = verbatim_from {
            self.push_verbatim(line, start, from, line.len());
        }
    }

    fn push_verbatim(&mut self, line: &str, line_start: usize, from: usize, to: usize) {
        let shown_start = self.text.len();
        self.text.push_str(line.get(from..to).unwrap_or(""));
        self.pieces.push(Piece {
            file: (line_start + from, line_start + to),
            shown: (shown_start, self.text.len()),
            verbatim: true,
        });
    }
}

impl SourceCode for Excerpt {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let index = self
            .windows
            .partition_point(|w| w.shown.end < span.offset())
            .min(self.windows.len().saturating_sub(1));
        let window = self.windows.get(index).ok_or(MietteError::OutOfBounds)?;
        let text = self
            .text
            .get(window.shown.clone())
            .ok_or(MietteError::OutOfBounds)?;
        let offset = span
            .offset()
            .saturating_sub(window.shown.start)
            .min(text.len());
        let len = span.len().min(text.len() - offset);
        let local = text.read_span(
            &(offset, len).into(),
            context_lines_before,
            context_lines_after,
        )?;
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            local.data(),
            (
                local.span().offset() + window.shown.start,
                local.span().len(),
            )
                .into(),
            window.first_line + local.line(),
            local.column(),
            // miette draws two labels in one excerpt when the first's lines reach the second's:
            // counting to the window's end makes that so exactly for labels of one window.
            (window.last_line + 1).saturating_sub(window.first_line + local.line()),
        )))
    }
}

/// Text from input made safe for a terminal: control characters shown escaped.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    let mut chars = text.chars().peekable();
    let mut escaped = String::new();
    let mut changed = false;
    while let Some(c) = chars.next() {
        if needs_escape(c, chars.peek().copied()) {
            changed = true;
            escaped.extend(c.escape_default());
        } else {
            escaped.push(c);
        }
    }
    if changed {
        std::borrow::Cow::Owned(escaped)
    } else {
        std::borrow::Cow::Borrowed(text)
    }
}

/// Whether a character is shown escaped: control characters other than tab and line ends, and
/// the bidirectional controls that can make text read differently from what it is.
fn needs_escape(c: char, next: Option<char>) -> bool {
    match c {
        '\n' | '\t' => false,
        '\r' => next != Some('\n'),
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' => true,
        _ => c.is_control(),
    }
}

/// The byte ranges of a line that hold secrets, sorted and apart.
pub fn secret_ranges(line: &str, confidential: bool) -> Vec<Range<usize>> {
    let mut ranges = url_credentials(line);
    let bytes = line.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if !(b == b'=' || (b == b':' && !confidential)) || ranges.iter().any(|r| r.contains(&i)) {
            continue;
        }
        // `==`, `!=`, `<=`, `>=`, `::`, `:=` are operators, not settings.
        if bytes.get(i + 1).is_some_and(|n| matches!(n, b'=' | b':'))
            || i.checked_sub(1)
                .and_then(|p| bytes.get(p))
                .is_some_and(|p| matches!(p, b'=' | b'!' | b'<' | b'>' | b':'))
        {
            continue;
        }
        let Some(key) = key_before(line, i) else {
            continue;
        };
        let value = value_after(line, i + 1);
        if value.is_empty() {
            continue;
        }
        let Some(shown) = line.get(value.clone()) else {
            continue;
        };
        let masked = if confidential {
            let number = CONFIDENTIAL_NUMBER_KEYS.contains(&key.as_str())
                && shown
                    .chars()
                    .all(|c| c.is_ascii_digit() || matches!(c, '_' | '-' | '+'));
            !(CONFIDENTIAL_SHOWN_KEYS.contains(&key.as_str()) || number)
                || (key == "token_env" && !is_variable_name(shown))
        } else {
            is_secret_key(&key) && !(key == "token_env" && is_variable_name(shown))
        };
        if masked && key != "token_file" {
            ranges.push(value);
        }
    }
    if confidential {
        let trimmed = line.trim();
        let is_setting = trimmed.is_empty()
            || trimmed.starts_with('#')
            || trimmed.starts_with('[')
            || trimmed.contains('=');
        if !is_setting {
            let start = line.len() - line.trim_start().len();
            ranges.push(start..start + trimmed.len());
        }
    }
    ranges.sort_unstable_by_key(|r| r.start);
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        match merged.last_mut() {
            Some(previous) if range.start <= previous.end => {
                previous.end = previous.end.max(range.end);
            }
            _ => merged.push(range),
        }
    }
    merged
}

/// `user:password` in `scheme://user:password@host`.
fn url_credentials(line: &str) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    for (i, _) in line.match_indices("://") {
        let start = i + 3;
        let rest = line.get(start..).unwrap_or("");
        let authority_len = rest
            .find(|c: char| {
                c.is_whitespace() || matches!(c, '/' | '?' | '#' | '"' | '\'' | '<' | '>' | '`')
            })
            .unwrap_or(rest.len());
        if let Some(at) = rest.get(..authority_len).and_then(|a| a.rfind('@'))
            && at > 0
        {
            ranges.push(start..start + at);
        }
    }
    ranges
}

/// The key written just before the `=` or `:` at `at`: a name, possibly quoted.
fn key_before(line: &str, at: usize) -> Option<String> {
    let before = line.get(..at)?.trim_end();
    let before = before.strip_suffix(['"', '\'']).unwrap_or(before);
    let start = before
        .char_indices()
        .rev()
        .take_while(|&(_, c)| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
        .last()
        .map(|(i, _)| i)?;
    let key = before.get(start..)?;
    let key = key.rsplit('.').next().unwrap_or(key);
    (!key.is_empty()).then(|| key.to_lowercase())
}

/// The value after a `=` or `:`: a quoted string's inside, or the rest of the line.
fn value_after(line: &str, from: usize) -> Range<usize> {
    let rest = line.get(from..).unwrap_or("");
    let start = from + (rest.len() - rest.trim_start().len());
    let rest = line.get(start..).unwrap_or("");
    match rest.chars().next() {
        Some(quote @ ('"' | '\'')) => {
            let inside = rest.get(1..).unwrap_or("");
            let len = inside.find(quote).unwrap_or(inside.trim_end().len());
            start + 1..start + 1 + len
        }
        _ => start..start + rest.trim_end().len(),
    }
}

fn is_secret_key(key: &str) -> bool {
    SECRET_WORDS.iter().any(|w| key.contains(w))
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(line: &str, confidential: bool) -> String {
        let ranges = secret_ranges(line, confidential);
        line.char_indices()
            .map(|(i, c)| {
                if ranges.iter().any(|r| r.contains(&i)) {
                    '*'
                } else {
                    c
                }
            })
            .collect()
    }

    #[test]
    fn secrets_are_masked_on_any_line() {
        assert_eq!(masked(r#"token = "abc""#, false), r#"token = "***""#);
        assert_eq!(masked("api_token: abc def", false), "api_token: *******");
        assert_eq!(masked("PASSWORD=hunter2", false), "PASSWORD=*******");
        assert_eq!(
            masked("see https://bob:pw@make.example/x", false),
            "see https://******@make.example/x"
        );
        assert_eq!(
            masked("url = https://make.example", false),
            "url = https://make.example"
        );
        assert_eq!(
            masked(r#"token_env = "MAKE_TOKEN""#, false),
            r#"token_env = "MAKE_TOKEN""#
        );
        assert_eq!(masked("if a == b", false), "if a == b");
    }

    #[test]
    fn a_confidential_file_shows_only_known_settings() {
        assert_eq!(masked(r#"tokn = "abc""#, true), r#"tokn = "***""#);
        assert_eq!(masked("token = abc", true), "token = ***");
        assert_eq!(masked("rate_limit = 60", true), "rate_limit = 60");
        assert_eq!(
            masked(r#"rate_limit = "abc""#, true),
            r#"rate_limit = "***""#
        );
        assert_eq!(masked("  abcdef  ", true), "  ******  ");
        assert_eq!(masked("[instance]", true), "[instance]");
        assert_eq!(
            masked(r#"url = "https://u:p@x.example""#, true),
            r#"url = "https://***@x.example""#
        );
    }

    #[test]
    fn excerpts_hold_the_lines_around_labels_only() {
        let text: String = (1..=100).map(|i| format!("line {i}\n")).collect();
        let file = SourceFile::new("f", text.clone());
        let start = text.find("line 50").unwrap_or(0);
        let excerpt = Excerpt::new(&file, [(start, start + 4)]);
        assert_eq!(excerpt.text, "line 49\nline 50\nline 51\n");
        let span = excerpt.shown_span(start, start + 4);
        let contents = excerpt.read_span(&span, 1, 1).unwrap();
        assert_eq!(contents.line(), 48);
    }

    #[test]
    fn control_characters_are_escaped_and_spans_follow() {
        let text = "a\u{1b}[31m = 1\0x\r\nnext\n";
        let file = SourceFile::new("f", text);
        let x = text.find('x').unwrap_or(0);
        let excerpt = Excerpt::new(&file, [(x, x + 1)]);
        assert_eq!(excerpt.text, "a\\u{1b}[31m = 1\\u{0}x\r\nnext\n");
        let span = excerpt.shown_span(x, x + 1);
        assert_eq!(
            &excerpt.text[span.offset()..span.offset() + span.len()],
            "x"
        );
    }
}
