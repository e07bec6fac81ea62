//! Text to AST: the pest parser, lowering of its parse tree, and the formatter.
//!
//! This is the only module that names pest types. [`parse`] turns one file into an
//! [`ast::File`] or the diagnostics that stopped it; a syntax error stops that file early, which
//! is the one place the pipeline does not go on to report everything.
//!
//! [`parse_all`] cuts every file longer than sixteen kilobytes or so at top-level declarations
//! into pieces, and parses large policy sets' pieces on all cores. A piece's parse tree stays
//! in the cache and its memory is reused by the next. The result is the same as parsing each
//! file whole (pieces are lowered with their offsets and joined in order), except that a syntax
//! error is reported per piece, so independent declarations can each report theirs.
//!
//! Before pest runs, `outline` scans each file once: for the cuts, and for how deeply it nests.
//! pest recurses once per level of nesting and is built without its stack probe, so a file
//! nested too deeply is refused with a diagnostic, and one nested more than a little is parsed
//! on a thread with a stack of [`PARSER_STACK`] bytes whatever thread called.

mod fmt;
mod lower;
mod outline;
pub mod roster;

pub use fmt::{format, format_source};
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};

use pest::Parser as _;

use crate::ast;
use crate::diagnostic::Diagnostic;
use crate::source::{FileId, Sources, Span};
use outline::{DECLARATION_WORDS, MAX_NESTING, SHALLOW_NESTING, brace_depth};

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/charter.pest"]
struct CharterParser;

/// The stack of a parsing thread: room for [`MAX_NESTING`] levels in a debug build with a wide
/// margin. It is reserved address space; only what the parser touches is ever mapped.
const PARSER_STACK: usize = 64 << 20;

/// Parses one file of `sources`, whole.
pub fn parse(sources: &Sources, file: FileId) -> Result<ast::File, Vec<Diagnostic>> {
    let text = sources.file(file).map_or("", |f| f.text.as_str());
    let outline = outline::outline(text, None);
    if let Some(at) = outline.too_deep {
        return Err(vec![too_deep(file, at)]);
    }
    let piece = (file, text, 0..text.len());
    let result = if outline.depth <= SHALLOW_NESTING {
        parse_piece(file, text, 0..text.len())
    } else {
        parse_pieces(&[piece], 1)
            .pop()
            .unwrap_or_else(|| Err(Vec::new()))
    };
    result.map(|items| ast::File { items })
}

fn too_deep(file: FileId, at: Range<usize>) -> Diagnostic {
    Diagnostic::error("charter::too_deep", "nesting is too deep")
        .with_label(
            Span::new(file, at.start, at.end),
            format!("more than {MAX_NESTING} levels of brackets and `not`"),
        )
        .with_help("split it into several rules, or drop brackets it does not need")
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
const PIECE_SIZE: usize = 16 * 1024;

type Piece<'a> = (FileId, &'a str, Range<usize>);
type PieceResult = Result<Vec<ast::Item>, Vec<Diagnostic>>;

/// Parses every file of a policy set, collecting the syntax errors of all files.
pub fn parse_all(sources: &Sources) -> Result<Vec<(FileId, ast::File)>, Vec<Diagnostic>> {
    let texts: Vec<(FileId, &str)> = sources
        .ids()
        .filter_map(|id| sources.file(id).map(|f| (id, f.text.as_str())))
        .collect();
    let total: usize = texts.iter().map(|(_, t)| t.len()).sum();
    let cores = if total >= PARALLEL_THRESHOLD {
        cores()
    } else {
        1
    };
    let parallel = cores > 1;
    let mut errors = Vec::new();
    let mut deep = false;
    let mut pieces: Vec<Piece<'_>> = Vec::new();
    for &(id, text) in &texts {
        // Large files are cut into pieces even on one thread: a piece's parse tree stays in
        // the cache and its memory is reused by the next piece.
        let outline = outline::outline(text, Some(PIECE_SIZE));
        match outline.too_deep {
            Some(at) => errors.push(too_deep(id, at)),
            None => {
                deep |= outline.depth > SHALLOW_NESTING;
                pieces.extend(outline.pieces.into_iter().map(|r| (id, text, r)));
            }
        }
    }
    let results: Vec<PieceResult> = if (parallel && pieces.len() > 1) || deep {
        parse_pieces(&pieces, if parallel { cores } else { 1 })
    } else {
        pieces
            .iter()
            .map(|(id, text, range)| parse_piece(*id, text, range.clone()))
            .collect()
    };

    let mut files: Vec<(FileId, ast::File)> = Vec::new();
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

/// The cores to parse on, asked of the system once: on Linux the answer comes from reading
/// cgroup files, which costs more than parsing a small policy set.
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, std::num::NonZero::get))
}

/// Parses pieces on up to `threads` threads of [`PARSER_STACK`] bytes of stack; the results
/// come back in the pieces' order.
fn parse_pieces(pieces: &[Piece<'_>], threads: usize) -> Vec<PieceResult> {
    let next = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some((id, text, range)) = pieces.get(i) else {
                break;
            };
            done.push((i, parse_piece(*id, text, range.clone())));
        }
        done
    };
    let mut results: Vec<(usize, PieceResult)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads.clamp(1, pieces.len().max(1)))
            .filter_map(|_| {
                std::thread::Builder::new()
                    .name("charter-parse".to_string())
                    .stack_size(PARSER_STACK)
                    .spawn_scoped(scope, work)
                    .ok()
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    results.sort_by_key(|(i, _)| *i);
    let mut results = results.into_iter().peekable();
    // Every piece has exactly one result unless no thread could be started or a worker
    // panicked; say so rather than lose the piece.
    pieces
        .iter()
        .enumerate()
        .map(
            |(i, (id, _, range))| match results.next_if(|(j, _)| *j == i) {
                Some((_, result)) => result,
                None => Err(vec![
                    Diagnostic::error(
                        "charter::internal",
                        "internal error: a part of the policy set was not parsed",
                    )
                    .with_label(Span::new(*id, range.start, range.start), "")
                    .with_help("the system refused to start a parsing thread; try again"),
                ]),
            },
        )
        .collect()
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

/// The language's reserved words (LANGUAGE.md §1): never a name.
pub const KEYWORDS: &[&str] = &[
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

pub(crate) fn is_reserved(word: &str) -> bool {
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
        | Rule::operand
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
        | Rule::block_pad
        | Rule::comment_text
        | Rule::customer_statement
        | Rule::lifecycle_item
        | Rule::state_statement
        | Rule::test_body
        | Rule::term
        | Rule::logic_op
        | Rule::arith_op
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
        let ranges = outline::outline(&text, Some(4_096)).pieces;
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
    fn a_declaration_after_a_closed_block_is_not_taken_for_a_missing_brace() {
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
        let ranges = outline::outline(&text, Some(1)).pieces;
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
    fn deep_nesting_is_parsed_whatever_the_callers_stack() {
        let deepest = format!(
            "assert for all: {}operations > 0{}\n",
            "(not ".repeat(MAX_NESTING / 2),
            ")".repeat(MAX_NESTING / 2)
        );
        let mut sources = Sources::new();
        let id = sources.add("deep.charter", deepest);
        // A caller with a small stack: the parser runs on a thread of its own.
        let parsed = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || parse(&sources, id).map(|f| f.items.len()))
            .expect("starts")
            .join()
            .expect("does not overflow");
        assert_eq!(parsed, Ok(1));
    }

    #[test]
    fn nesting_past_the_limit_is_refused_where_it_goes_too_deep() {
        let text = format!("assert for all: {}1{}\n", "[".repeat(70), "]".repeat(70));
        let mut sources = Sources::new();
        sources.add("deep.charter", text);
        let errors = parse_all(&sources).expect_err("refused");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].code, "charter::too_deep");
        assert_eq!(errors[0].message, "nesting is too deep");
        let span = errors[0].primary_span().expect("located");
        assert_eq!(span.start as usize, "assert for all: ".len() + MAX_NESTING);
    }

    #[test]
    fn an_expression_too_deep_for_the_later_stages_is_refused() {
        let chain = vec!["1"; 300].join(" + ");
        let mut sources = Sources::new();
        let id = sources.add(
            "long.charter",
            format!("assert for all: operations >= {chain}\n"),
        );
        let errors = parse(&sources, id).expect_err("refused");
        assert_eq!(errors[0].code, "charter::too_deep");
        assert_eq!(errors[0].message, "expression is too deep");
        let chain = vec!["1"; 200].join(" + ");
        let id = sources.add(
            "long.charter",
            format!("assert for all: operations >= {chain}\n"),
        );
        assert!(parse(&sources, id).is_ok());
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
