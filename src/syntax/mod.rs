//! Text to AST: the pest parser, lowering of its parse tree, and the formatter.
//!
//! This is the only module that names pest types. [`parse`] turns one file into an
//! [`ast::File`] or the diagnostics that stopped it; a syntax error stops that file early, which
//! is the one place the pipeline does not go on to report everything.
//!
//! Large inputs are parsed in parallel: [`parse_all`] cuts every file at top-level declarations
//! into pieces of a hundred kilobytes or so and parses the pieces on all cores. The result is
//! the same as parsing each file whole (pieces are lowered with their offsets and joined in
//! order), except that a syntax error is reported per piece, so independent declarations can
//! each report theirs.

mod fmt;
mod lower;
pub mod roster;

pub use fmt::{format, format_source};
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use pest::Parser as _;

use crate::ast;
use crate::diagnostic::Diagnostic;
use crate::source::{FileId, Sources, Span};

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/charter.pest"]
struct CharterParser;

/// Parses one file of `sources`, whole, on the calling thread.
pub fn parse(sources: &Sources, file: FileId) -> Result<ast::File, Vec<Diagnostic>> {
    let text = sources.file(file).map_or("", |f| f.text.as_str());
    parse_piece(file, text, 0..text.len()).map(|items| ast::File { items })
}

/// Parses `text[range]`, a run of whole top-level declarations, into items whose spans are
/// positions in the whole file.
fn parse_piece(
    file: FileId,
    text: &str,
    range: Range<usize>,
) -> Result<Vec<ast::Item>, Vec<Diagnostic>> {
    let offset = range.start;
    let piece = text.get(range).unwrap_or("");
    let pairs = match CharterParser::parse(Rule::file, piece) {
        Ok(pairs) => pairs,
        Err(error) => return Err(vec![syntax_error(file, text, offset, &error)]),
    };
    let mut lowering = lower::Lowering::new(file, offset);
    let parsed = pairs
        .into_iter()
        .next()
        .map(|pair| lowering.lower_file(pair));
    match parsed {
        Some(parsed) if lowering.errors.is_empty() => Ok(parsed.items),
        Some(_) => Err(lowering.errors),
        None => Err(vec![
            Diagnostic::error("charter::syntax", "the file could not be parsed")
                .with_label(Span::new(file, offset, offset), ""),
        ]),
    }
}

/// Below this many bytes in all, a policy set is parsed on one thread.
const PARALLEL_THRESHOLD: usize = 64 * 1024;
/// About how large the pieces of a large file are.
const PIECE_SIZE: usize = 32 * 1024;

type Piece<'a> = (FileId, &'a str, Range<usize>);
type PieceResult = Result<Vec<ast::Item>, Vec<Diagnostic>>;

/// Parses every file of a policy set, collecting the syntax errors of all files.
pub fn parse_all(sources: &Sources) -> Result<Vec<(FileId, ast::File)>, Vec<Diagnostic>> {
    let texts: Vec<(FileId, &str)> = sources
        .ids()
        .filter_map(|id| sources.file(id).map(|f| (id, f.text.as_str())))
        .collect();
    let total: usize = texts.iter().map(|(_, t)| t.len()).sum();
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let parallel = total >= PARALLEL_THRESHOLD && threads > 1;
    let pieces: Vec<Piece<'_>> = texts
        .iter()
        .flat_map(|&(id, text)| {
            let ranges = if parallel {
                pieces(text, PIECE_SIZE)
            } else {
                std::iter::once(0..text.len()).collect()
            };
            ranges.into_iter().map(move |r| (id, text, r))
        })
        .collect();
    let results: Vec<PieceResult> = if parallel && pieces.len() > 1 {
        parse_in_parallel(&pieces, threads)
    } else {
        pieces
            .iter()
            .map(|(id, text, range)| parse_piece(*id, text, range.clone()))
            .collect()
    };

    let mut files: Vec<(FileId, ast::File)> = Vec::new();
    let mut errors = Vec::new();
    for ((id, _, _), result) in pieces.iter().zip(results) {
        match result {
            Ok(items) => match files.last_mut() {
                Some((last, file)) if last == id => file.items.extend(items),
                _ => files.push((*id, ast::File { items })),
            },
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(errors)
    }
}

/// Parses pieces on up to `threads` threads; the results come back in the pieces' order.
fn parse_in_parallel(pieces: &[Piece<'_>], threads: usize) -> Vec<PieceResult> {
    let next = AtomicUsize::new(0);
    let mut results: Vec<(usize, PieceResult)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.min(pieces.len()))
            .map(|_| {
                scope.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((id, text, range)) = pieces.get(i) else {
                            break;
                        };
                        done.push((i, parse_piece(*id, text, range.clone())));
                    }
                    done
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    let mut results = results.into_iter().peekable();
    // Every piece has exactly one result unless a worker panicked; say so rather than lose
    // the piece.
    (0..pieces.len())
        .map(|i| match results.next_if(|(j, _)| *j == i) {
            Some((_, result)) => result,
            None => Err(vec![Diagnostic::error(
                "charter::internal",
                "internal error: a part of the policy set was not parsed",
            )]),
        })
        .collect()
}

/// Cuts `text` into ranges of about `size` bytes, each a run of whole top-level declarations:
/// a cut is made only before a line that starts, at column 0 and outside any string, comment or
/// bracket, with a word that begins a declaration.
fn pieces(text: &str, size: usize) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    let mut depth: i64 = 0;
    for (i, b) in code_bytes(text) {
        match b {
            b'{' | b'[' | b'(' => depth += 1,
            b'}' | b']' | b')' => depth -= 1,
            b'\n' if depth == 0 && i + 1 - start >= size => {
                let rest = text.get(i + 1..).unwrap_or("");
                let starts_declaration = DECLARATION_WORDS
                    .iter()
                    .any(|w| rest.strip_prefix(w).is_some_and(|r| r.starts_with(' ')));
                if starts_declaration {
                    ranges.push(start..i + 1);
                    start = i + 1;
                }
            }
            _ => {}
        }
    }
    ranges.push(start..text.len());
    ranges
}

/// Turns pest's error into a located diagnostic that names what was found and what would have
/// been accepted there, in the language's words rather than rule names.
fn syntax_error(
    file: FileId,
    text: &str,
    offset: usize,
    error: &pest::error::Error<Rule>,
) -> Diagnostic {
    let start = offset
        + match error.location {
            pest::error::InputLocation::Pos(p) => p,
            pest::error::InputLocation::Span((s, _)) => s,
        };
    let found = describe_found(text, start);
    let end = (start + found.1).min(text.len());
    let expected = match &error.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => {
            let mut names: Vec<&str> = positives.iter().filter_map(|r| describe_rule(*r)).collect();
            names.sort_unstable();
            names.dedup();
            // Among other things, "`=`, `+=`, `-=` or `*=`" reads "`=`, `+=`, `-=`, `*=`".
            let several = names.len() > 1;
            names
                .into_iter()
                .map(|n| {
                    if several {
                        n.replace(" or ", ", ")
                    } else {
                        n.to_string()
                    }
                })
                .collect::<Vec<String>>()
        }
        pest::error::ErrorVariant::CustomError { .. } => Vec::new(),
    };
    let message = format!("unexpected {}", found.0);
    let label = if expected.is_empty() {
        "not valid here".to_string()
    } else {
        format!("expected {}", join_or(&expected))
    };
    let mut diagnostic = Diagnostic::error("charter::syntax", message)
        .with_label(Span::new(file, start, end), label);
    let line_start = text
        .get(..start)
        .map_or(0, |t| t.rfind('\n').map_or(0, |i| i + 1));
    let first_word = text
        .get(line_start..)
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or("");
    // A line that starts a declaration inside a block, or a lifecycle entry inside a state,
    // most likely follows a block whose `}` was forgotten.
    let depth = brace_depth(text.get(..line_start).unwrap_or(""));
    let starts = if depth > 0 && DECLARATION_WORDS.contains(&first_word) {
        Some("declaration")
    } else if depth > 1 && matches!(first_word, "initial" | "state" | "transition") {
        Some("lifecycle entry")
    } else {
        None
    };
    if let Some(what) = starts {
        diagnostic = diagnostic.with_help(format!(
            "`{first_word}` starts a new {what}; is a `}}` missing before this line?"
        ));
    } else if found.1 == 0 && start >= text.len() && brace_depth(text) > 0 {
        diagnostic = diagnostic.with_help("the file ends inside a block; is a `}` missing?");
    } else if expected == ["a string"] && found.0.starts_with('`') && found.1 > 0 {
        diagnostic = diagnostic.with_help("a string is written in double quotes: `\"…\"`");
    } else if first_word == "at" && expected.iter().any(|e| e == "`expect`") {
        diagnostic = diagnostic.with_help("a test has at most one `at`, before its first `expect`");
    } else if let Some(word) = text.get(start..start + found.1)
        && is_reserved(word)
        && expected.iter().any(|e| e.contains("a name"))
    {
        diagnostic =
            diagnostic.with_help(format!("`{word}` is a reserved word; choose another name"));
    }
    diagnostic
}

/// The words that start a top-level declaration.
const DECLARATION_WORDS: &[&str] = &[
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

/// How many blocks are open at the end of `text`: `{` less `}`, outside strings and comments.
fn brace_depth(text: &str) -> i64 {
    code_bytes(text)
        .map(|(_, b)| match b {
            b'{' => 1,
            b'}' => -1,
            _ => 0,
        })
        .sum()
}

/// The bytes of `text` that are code, with their offsets: strings (with their quotes) and
/// comments are left out, except the line end that closes a comment. A string that reaches the
/// end of its line ends there, as the grammar would reject it anyway.
fn code_bytes(text: &str) -> impl Iterator<Item = (usize, u8)> + '_ {
    let mut in_string = false;
    let mut in_comment = false;
    let mut escaped = false;
    text.bytes().enumerate().filter(move |&(_, b)| {
        if in_comment {
            in_comment = b != b'\n';
            return !in_comment;
        }
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"' | b'\n') => in_string = false,
                _ => {}
            }
            return false;
        }
        match b {
            b'#' => {
                in_comment = true;
                false
            }
            b'"' => {
                in_string = true;
                false
            }
            _ => true,
        }
    })
}

fn join_or(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// What is at `offset`: a word, a symbol, the end of a line or the end of the file, and how
/// many bytes it covers.
fn describe_found(text: &str, offset: usize) -> (String, usize) {
    let rest = text.get(offset..).unwrap_or("");
    let Some(first) = rest.chars().next() else {
        return ("end of file".to_string(), 0);
    };
    if first == '\n' || first == '\r' {
        return ("end of line".to_string(), 0);
    }
    if first.is_ascii_alphanumeric() || first == '_' {
        let len = rest
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(rest.len());
        let word = &rest[..len];
        return (format!("`{word}`"), len);
    }
    (format!("`{first}`"), first.len_utf8())
}

pub(crate) fn is_reserved(word: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "instance",
        "tier",
        "abstract",
        "extends",
        "addon",
        "group",
        "rule",
        "assert",
        "ladder",
        "for",
        "all",
        "customer",
        "roster",
        "staff",
        "lifecycle",
        "state",
        "initial",
        "transition",
        "from",
        "to",
        "when",
        "after",
        "manual",
        "if",
        "with",
        "demote",
        "test",
        "expect",
        "at",
        "and",
        "or",
        "not",
        "implies",
        "true",
        "false",
    ];
    KEYWORDS.contains(&word)
}

/// The words a user knows for what a rule accepts; `None` for rules that only add noise.
fn describe_rule(rule: Rule) -> Option<&'static str> {
    Some(match rule {
        Rule::EOI => "end of file",
        Rule::sep => "a new line or `;`",
        Rule::name | Rule::word => "a name",
        Rule::field => "a field name",
        Rule::kw_instance => "`instance`",
        Rule::kw_abstract => "`abstract`",
        Rule::kw_tier => "`tier`",
        Rule::kw_extends => "`extends`",
        Rule::kw_addon => "`addon`",
        Rule::kw_group => "`group`",
        Rule::kw_assert => "`assert`",
        Rule::kw_ladder => "`ladder`",
        Rule::kw_for => "`for`",
        Rule::kw_all => "`all`",
        Rule::kw_and => "`and`",
        Rule::kw_or => "`or`",
        Rule::kw_not => "`not`",
        Rule::kw_implies => "`implies`",
        Rule::kw_customer => "`customer`",
        Rule::kw_roster => "`roster`",
        Rule::kw_staff => "`staff`",
        Rule::kw_lifecycle => "`lifecycle`",
        Rule::kw_initial => "`initial`",
        Rule::kw_state => "`state`",
        Rule::kw_transition => "`transition`",
        Rule::kw_from => "`from`",
        Rule::kw_to => "`to`",
        Rule::kw_when | Rule::when_trigger => "`when`",
        Rule::kw_after | Rule::after_trigger => "`after`",
        Rule::kw_manual => "`manual`",
        Rule::kw_if | Rule::guard => "`if`",
        Rule::kw_with => "`with`",
        Rule::kw_demote | Rule::demote => "`demote`",
        Rule::kw_test => "`test`",
        Rule::kw_expect | Rule::expect => "`expect`",
        Rule::kw_at | Rule::test_at => "`at`",
        Rule::kw_license | Rule::license => "`license`",
        Rule::kw_owner | Rule::owner_change => "`owner`",
        Rule::item
        | Rule::instance
        | Rule::tier
        | Rule::addon
        | Rule::group
        | Rule::ladder_rule
        | Rule::for_rule
        | Rule::customer
        | Rule::roster
        | Rule::staff
        | Rule::lifecycle
        | Rule::test => "a declaration",
        Rule::customer_block | Rule::open_brace => "`{`",
        Rule::close_brace => "`}`",
        Rule::equals => "`=`",
        Rule::colon => "`:`",
        Rule::nested_block => "a nested block",
        Rule::initial_state | Rule::state_decl | Rule::transition => {
            "`initial`, `state` or `transition`"
        }
        Rule::overlay => "a parameter or group to overlay",
        Rule::from_states => "a state",
        Rule::tier_subject | Rule::customer_subject => "`tier` or `customer`",
        Rule::extends => "`extends`",
        Rule::scope => "a tier list or `all`",
        Rule::message => "a message string",
        Rule::block => "`{`",
        Rule::assignment => "an assignment",
        Rule::assign_op => "`=`, `+=`, `-=` or `*=`",
        Rule::value | Rule::list => "a value",
        Rule::quantity | Rule::number => "a number",
        Rule::unit => "a unit",
        Rule::boolean => "`true` or `false`",
        Rule::date => "a date",
        Rule::string | Rule::string_inner => "a string",
        Rule::expr
        | Rule::implies_expr
        | Rule::or_expr
        | Rule::and_expr
        | Rule::not_expr
        | Rule::cmp_expr
        | Rule::sum_expr
        | Rule::product_expr
        | Rule::paren
        | Rule::literal
        | Rule::reference
        | Rule::ref_word => "an expression",
        Rule::cmp_op => "a comparison",
        Rule::add_op => "`+` or `-`",
        Rule::mul_op => "`*` or `/`",
        Rule::file
        | Rule::operator_word
        | Rule::WHITESPACE
        | Rule::COMMENT
        | Rule::gap
        | Rule::inline
        | Rule::block_sep
        | Rule::line_comment
        | Rule::customer_statement
        | Rule::lifecycle_item
        | Rule::state_statement
        | Rule::test_body
        | Rule::not_eol
        | Rule::ident_start
        | Rule::ident_char
        | Rule::atom => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn large_policy() -> String {
        let mut text = String::from("# header\n");
        for i in 0..4_000 {
            text.push_str(&format!(
                "tier t{i} extends base {{\n  operations = {i}  # \"{{\n  transfer = 1 GB\n}}\n\
                 group g{i} = operations,\ntransfer\nassert for t{i}: (operations >=\n0)\n"
            ));
        }
        text
    }

    #[test]
    fn pieces_cut_only_between_declarations() {
        let text = large_policy();
        let ranges = pieces(&text, 4_096);
        assert!(ranges.len() > 10);
        for r in &ranges {
            let piece = &text[r.clone()];
            let declaration = ["tier ", "group ", "assert "]
                .iter()
                .any(|w| piece.starts_with(w));
            assert!(r.start == 0 || declaration, "{piece:.40}");
        }
        assert_eq!(ranges.first().map(|r| r.start), Some(0));
        assert_eq!(ranges.last().map(|r| r.end), Some(text.len()));
        assert!(ranges.windows(2).all(|w| w[0].end == w[1].start));
    }

    #[test]
    fn parallel_parsing_equals_parsing_whole() {
        let text = large_policy();
        assert!(text.len() > PARALLEL_THRESHOLD);
        let mut sources = Sources::new();
        let id = sources.add("large.charter", text);
        let whole = parse(&sources, id).expect("parses");
        let all = parse_all(&sources).expect("parses");
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].1, whole);
    }

    /// The message, label and help of the one syntax error in `text`.
    fn syntax_error_of(text: &str) -> (String, String, Option<String>) {
        let mut sources = Sources::new();
        let id = sources.add("test.charter", text);
        let errors = parse(&sources, id).expect_err("does not parse");
        assert_eq!(errors.len(), 1, "{errors:?}");
        let error = &errors[0];
        assert_eq!(error.code, "charter::syntax");
        (
            error.message.clone(),
            error.labels[0].message.clone(),
            error.help.clone(),
        )
    }

    #[test]
    fn a_missing_trigger_names_the_three_triggers() {
        let (message, label, help) =
            syntax_error_of("lifecycle {\n  transition freeze from active to frozen\n}\n");
        assert_eq!(message, "unexpected end of line");
        assert_eq!(label, "expected `after`, `manual` or `when`");
        assert_eq!(help, None);
    }

    #[test]
    fn a_declaration_inside_a_block_asks_for_a_missing_brace() {
        for text in [
            "customer a {\n  tier = pro\ncustomer b {}\n",
            "tier t {\n  operations = 1\nroster \"c.csv\"\n",
            "customer a {\n  attributes {\n    x = \"y\"\n  staff \"s@x.example\" {}\n}\n",
            "lifecycle {\n  initial a\ntest \"t\" {}\n",
        ] {
            let (_, _, help) = syntax_error_of(text);
            let help = help.unwrap_or_default();
            assert!(
                help.ends_with("is a `}` missing before this line?"),
                "{text:?}: {help}"
            );
        }
    }

    #[test]
    fn a_file_that_ends_inside_a_block_asks_for_a_missing_brace() {
        // `test "t" {}` is a valid nested block in a customer, so the error is at the end.
        for text in [
            "customer a {\n  tier = pro\ntest \"t\" {}\n",
            "tier t {\n  a = 1\n",
            "lifecycle {\n  initial a\n",
        ] {
            let (message, _, help) = syntax_error_of(text);
            assert_eq!(message, "unexpected end of file");
            assert_eq!(
                help.as_deref(),
                Some("the file ends inside a block; is a `}` missing?")
            );
        }
    }

    #[test]
    fn braces_in_strings_and_comments_do_not_open_blocks() {
        assert_eq!(brace_depth("a { \"}\" # }\n"), 1);
        assert_eq!(brace_depth("x = \"{\\\"{\" # {\ny { }"), 0);
        // A `tier` line at the top level after a block that did close is its own mistake.
        let (_, _, help) = syntax_error_of("customer a { # {\n  name = \"{\"\n}\ntier t extends\n");
        assert_eq!(help, None);
    }

    #[test]
    fn a_state_inside_a_state_asks_for_a_missing_brace() {
        let (_, label, help) =
            syntax_error_of("lifecycle {\n  state a {\n    license = tier\n  state b {}\n}\n");
        assert_eq!(label, "expected `demote`, `license`, `owner` or `}`");
        assert_eq!(
            help.as_deref(),
            Some("`state` starts a new lifecycle entry; is a `}` missing before this line?")
        );
    }

    #[test]
    fn an_unquoted_path_or_email_asks_for_quotes() {
        for text in ["roster customers.csv\n", "staff dana {}\n", "test pro {}\n"] {
            let (_, label, help) = syntax_error_of(text);
            assert_eq!(label, "expected a string");
            assert_eq!(
                help.as_deref(),
                Some("a string is written in double quotes: `\"…\"`")
            );
        }
    }

    #[test]
    fn a_late_clock_in_a_test_says_where_it_goes() {
        let (_, label, help) =
            syntax_error_of("test \"t\" {\n  expect tier pro: true\n  at 2027-01-01\n}\n");
        assert_eq!(label, "expected `expect` or `}`");
        assert_eq!(
            help.as_deref(),
            Some("a test has at most one `at`, before its first `expect`")
        );
    }

    #[test]
    fn the_reserved_word_help_comes_only_where_a_name_was_expected() {
        let (_, label, help) = syntax_error_of("group and = a\n");
        assert_eq!(label, "expected a name");
        assert_eq!(
            help.as_deref(),
            Some("`and` is a reserved word; choose another name")
        );
        let (_, label, help) =
            syntax_error_of("lifecycle {\n  transition a from x to y manual with z\n}\n");
        assert_eq!(label, "expected `if` or `}`");
        assert_eq!(help, None);
    }

    #[test]
    fn a_missing_equals_sign_or_colon_is_pointed_at() {
        let (message, label, _) = syntax_error_of("lifecycle {\n  state s { license tier }\n}\n");
        assert_eq!(
            (message.as_str(), label.as_str()),
            ("unexpected `tier`", "expected `=`")
        );
        let (message, label, _) = syntax_error_of("test \"t\" { expect tier pro true }\n");
        assert_eq!(
            (message.as_str(), label.as_str()),
            ("unexpected `true`", "expected `:`")
        );
        let (message, label, _) = syntax_error_of("lifecycle\n{}\n");
        assert_eq!(
            (message.as_str(), label.as_str()),
            ("unexpected end of line", "expected `{`")
        );
    }

    #[test]
    fn operator_alternatives_among_others_read_as_one_list() {
        let (_, label, _) = syntax_error_of("customer a {\n  team Marketing {}\n}\n");
        assert_eq!(label, "expected `=`, `+=`, `-=`, `*=`, `{` or a string");
    }

    #[test]
    fn pieces_cut_before_every_kind_of_declaration() {
        let mut text = String::new();
        for i in 0..200 {
            text.push_str(&format!(
                "customer c{i} {{\n  tier = pro\n  team \"T\" {{ admins = [] }}\n}}\n\
                 roster \"r{i}.csv\"\nstaff \"s{i}@x.example\" {{}}\n\
                 lifecycle {{\n  initial a\n}}\ntest \"t{i}\" {{\n  expect tier pro: true\n}}\n"
            ));
        }
        let ranges = pieces(&text, 1);
        let starts: std::collections::BTreeSet<&str> = ranges
            .iter()
            .skip(1)
            .filter_map(|r| text[r.clone()].split_whitespace().next())
            .collect();
        assert_eq!(
            starts.into_iter().collect::<Vec<_>>(),
            ["customer", "lifecycle", "roster", "staff", "test"]
        );
        let mut sources = Sources::new();
        let id = sources.add("many.charter", text);
        let whole = parse(&sources, id).expect("parses");
        let pieces: Vec<ast::Item> = ranges
            .into_iter()
            .flat_map(|r| {
                let file = sources.file(id).expect("added");
                parse_piece(id, &file.text, r).expect("parses")
            })
            .collect();
        assert_eq!(pieces, whole.items);
    }

    #[test]
    fn parallel_parsing_reports_errors_at_file_positions() {
        let mut text = large_policy();
        let bad = text.len();
        text.push_str("tier broken extends base {\n  operations = = 1\n}\n");
        let mut sources = Sources::new();
        sources.add("large.charter", text);
        let errors = parse_all(&sources).expect_err("fails");
        assert_eq!(errors.len(), 1);
        let span = errors[0].primary_span().expect("located");
        assert_eq!(
            span.start as usize,
            bad + "tier broken extends base {\n  operations = ".len()
        );
    }
}
