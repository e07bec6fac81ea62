//! One pass over a file's code — its text outside strings and comments — before pest runs:
//! where a large file may be cut into pieces that parse on their own, and how deeply it nests.
//!
//! pest's parser recurses once per level of parentheses, lists and `not`, and is built without
//! its own stack probe (which cost a fifth of parsing time), so nesting is bounded here instead:
//! a file nested deeper than [`MAX_NESTING`] is refused with a located diagnostic before
//! parsing, and a file nested deeper than [`SHALLOW_NESTING`] is parsed on a thread whose stack
//! is large enough for [`MAX_NESTING`] levels in any build (see `syntax::PARSER_STACK`).

use std::ops::Range;

/// The deepest nesting accepted: brackets (`(`, `[`, `{`) plus `not`s, counted within one
/// statement. A policy nests a handful of levels; a file past this is almost certainly
/// generated wrongly.
pub(super) const MAX_NESTING: usize = 64;

/// Nesting up to this depth is parsed on the calling thread, whatever its stack size (a level
/// of parentheses takes about 15 KB of stack in a release build and 40 KB in a debug one).
pub(super) const SHALLOW_NESTING: usize = 8;

/// The words that start a top-level declaration.
pub(super) const DECLARATION_WORDS: &[&str] = &[
    "tier",
    "abstract",
    "addon",
    "group",
    "assert",
    "instance",
    "customer",
    "roster",
    "staff",
    "lifecycle",
    "test",
];

/// What [`outline`] finds.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Outline {
    /// Runs of whole top-level declarations, in order, covering the text (one run unless a
    /// piece size was asked for).
    pub pieces: Vec<Range<usize>>,
    /// The deepest nesting met.
    pub depth: usize,
    /// The token (bracket or `not`) at which nesting first went past [`MAX_NESTING`]; the pass
    /// stops there, and `pieces` is then meaningless.
    pub too_deep: Option<Range<usize>>,
}

/// Scans `text` once. With `piece_size`, cuts it into ranges of about that many bytes, each a
/// run of whole top-level declarations: a cut is made only before a line that starts, at
/// column 0 and outside any string, comment or bracket, with a word that begins a declaration.
pub(super) fn outline(text: &str, piece_size: Option<usize>) -> Outline {
    let bytes = text.as_bytes();
    let mut pieces = Vec::new();
    let mut start = 0;
    // Brackets as `i64` so that an extra closing bracket keeps every later line from being a
    // cut (the piece then fails to parse exactly as the whole file would).
    let mut brackets: i64 = 0;
    // Open brackets and `not`s, innermost last; a `not` ends with its line or its bracket.
    let mut open: Vec<u8> = Vec::new();
    let mut depth = 0;
    for (i, b) in marks(text) {
        let mut token = 1;
        match b {
            b'(' | b'[' | b'{' => {
                brackets += 1;
                open.push(b);
            }
            b')' | b']' | b'}' => {
                brackets -= 1;
                close_nots(&mut open);
                open.pop();
            }
            b'\n' | b'\r' | b';' => {
                close_nots(&mut open);
                if let Some(size) = piece_size
                    && b == b'\n'
                    && brackets == 0
                    && i + 1 - start >= size
                    && starts_declaration(text.get(i + 1..).unwrap_or(""))
                {
                    pieces.push(start..i + 1);
                    start = i + 1;
                }
            }
            b'n' if bytes.get(i + 1..i + 3) == Some(b"ot")
                && !bytes.get(i + 3).copied().is_some_and(is_word_byte) =>
            {
                open.push(b'n');
                token = 3;
            }
            _ => {}
        }
        if open.len() > depth {
            depth = open.len();
            if depth > MAX_NESTING {
                return Outline {
                    pieces,
                    depth,
                    too_deep: Some(i..i + token),
                };
            }
        }
    }
    pieces.push(start..text.len());
    Outline {
        pieces,
        depth,
        too_deep: None,
    }
}

fn close_nots(open: &mut Vec<u8>) {
    while open.last() == Some(&b'n') {
        open.pop();
    }
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

fn starts_declaration(line: &str) -> bool {
    DECLARATION_WORDS
        .iter()
        .any(|w| line.strip_prefix(w).is_some_and(|r| r.starts_with(' ')))
}

/// How many blocks are open at the end of `text`: `{` less `}`, outside strings and comments.
pub(super) fn brace_depth(text: &str) -> i64 {
    marks(text)
        .map(|(_, b)| match b {
            b'{' => 1,
            b'}' => -1,
            _ => 0,
        })
        .sum()
}

/// The bytes of `text` that give it structure, with their offsets: brackets, line ends, `;`,
/// and the first letter of every word that starts with `n` (a `not`, perhaps). Strings and
/// comments are passed over; the line end that closes a comment is kept, and a string left
/// open ends at its line end, as the grammar would reject it anyway.
fn marks(text: &str) -> impl Iterator<Item = (usize, u8)> + '_ {
    let bytes = text.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        while let Some(&b) = bytes.get(i) {
            let at = i;
            i += 1;
            match b {
                b'(' | b')' | b'[' | b']' | b'{' | b'}' | b'\n' | b'\r' | b';' => {
                    return Some((at, b));
                }
                b'n' if at == 0 || !bytes.get(at - 1).copied().is_some_and(is_word_byte) => {
                    return Some((at, b));
                }
                b'"' => {
                    while let Some(&c) = bytes.get(i) {
                        match c {
                            b'"' => {
                                i += 1;
                                break;
                            }
                            b'\n' => break,
                            b'\\' => i += 2,
                            _ => i += 1,
                        }
                    }
                }
                b'#' => {
                    i = text
                        .get(i..)
                        .and_then(|rest| rest.find('\n'))
                        .map_or(bytes.len(), |n| i + n);
                }
                _ => {}
            }
        }
        None
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depth(text: &str) -> usize {
        outline(text, None).depth
    }

    #[test]
    fn nesting_counts_brackets_and_nots_within_a_statement() {
        assert_eq!(depth("tier t { operations = 1 }\n"), 1);
        assert_eq!(depth("assert for all: ((a))\n"), 2);
        assert_eq!(depth("assert for all: not not (not a)\n"), 4);
        // A `not` ends with its line, or with the bracket around it.
        assert_eq!(depth("assert for all: not a\nassert for all: not b\n"), 1);
        assert_eq!(depth("assert for all: (not a) and (not b)\n"), 2);
        // Words that merely contain `not` are not `not`.
        assert_eq!(depth("assert for all: nota and knot and not_a\n"), 0);
        // Brackets in strings and comments do not count.
        assert_eq!(depth("x = \"((((\" # [[[[\n"), 0);
    }

    #[test]
    fn nesting_past_the_limit_points_at_the_token_that_went_too_deep() {
        let text = format!("assert for all: {}1{}\n", "(".repeat(70), ")".repeat(70));
        let found = outline(&text, None);
        let at = "assert for all: ".len() + MAX_NESTING;
        assert_eq!(found.too_deep, Some(at..at + 1));
        let text = format!("assert for all: {}true\n", "not ".repeat(70));
        let at = "assert for all: ".len() + 4 * MAX_NESTING;
        assert_eq!(outline(&text, None).too_deep, Some(at..at + 3));
        let text = format!(
            "tier t {{ operations = {}{} }}\n",
            "[".repeat(64),
            "]".repeat(64)
        );
        assert!(outline(&text, None).too_deep.is_some());
        let text = format!(
            "tier t {{ operations = {}{} }}\n",
            "[".repeat(63),
            "]".repeat(63)
        );
        assert_eq!(outline(&text, None).too_deep, None);
    }

    #[test]
    fn without_a_piece_size_the_file_is_one_piece() {
        let text = "tier a {}\ntier b {}\n";
        assert_eq!(outline(text, None).pieces, vec![0..text.len()]);
    }

    #[test]
    fn braces_in_strings_and_comments_do_not_open_blocks() {
        assert_eq!(brace_depth("a { \"}\" # }\n"), 1);
        assert_eq!(brace_depth("x = \"{\\\"{\" # {\ny { }"), 0);
    }
}
