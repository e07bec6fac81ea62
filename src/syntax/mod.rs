//! Text to AST: the pest parser, lowering of its parse tree, and the formatter.
//!
//! This is the only module that names pest types. [`parse`] turns one file into an
//! [`ast::File`] or the diagnostics that stopped it; a syntax error stops that file early, which
//! is the one place the pipeline does not go on to report everything.

mod fmt;
mod lower;

pub use fmt::{format, format_source};
use pest::Parser as _;

use crate::ast;
use crate::diagnostic::Diagnostic;
use crate::source::{FileId, Sources, Span};

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/charter.pest"]
struct CharterParser;

/// Parses one file of `sources`.
pub fn parse(sources: &Sources, file: FileId) -> Result<ast::File, Vec<Diagnostic>> {
    let text = sources.file(file).map_or("", |f| f.text.as_str());
    let pairs = match CharterParser::parse(Rule::file, text) {
        Ok(pairs) => pairs,
        Err(error) => return Err(vec![syntax_error(file, text, &error)]),
    };
    let mut lowering = lower::Lowering::new(file);
    let parsed = pairs
        .into_iter()
        .next()
        .map(|pair| lowering.lower_file(pair));
    match parsed {
        Some(parsed) if lowering.errors.is_empty() => Ok(parsed),
        Some(_) => Err(lowering.errors),
        None => Err(vec![
            Diagnostic::error("charter::syntax", "the file could not be parsed")
                .with_label(Span::new(file, 0, 0), ""),
        ]),
    }
}

/// Parses every file of a policy set, collecting the syntax errors of all files.
pub fn parse_all(sources: &Sources) -> Result<Vec<(FileId, ast::File)>, Vec<Diagnostic>> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for id in sources.ids() {
        match parse(sources, id) {
            Ok(file) => files.push((id, file)),
            Err(e) => errors.extend(e),
        }
    }
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(errors)
    }
}

/// Turns pest's error into a located diagnostic that names what was found and what would have
/// been accepted there, in the language's words rather than rule names.
fn syntax_error(file: FileId, text: &str, error: &pest::error::Error<Rule>) -> Diagnostic {
    let start = match error.location {
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
            names
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
    let opens_item = matches!(
        first_word,
        "tier" | "abstract" | "addon" | "group" | "assert" | "instance"
    );
    if opens_item && line_start < start && text[..line_start].contains('{') {
        diagnostic = diagnostic.with_help(format!(
            "`{first_word}` starts a new declaration; is a `}}` missing before this line?"
        ));
    } else if let Some(word) = text.get(start..start + found.1)
        && is_reserved(word)
    {
        diagnostic =
            diagnostic.with_help(format!("`{word}` is a reserved word; choose another name"));
    }
    diagnostic
}

fn join_or(items: &[&str]) -> String {
    match items {
        [] => String::new(),
        [one] => (*one).to_string(),
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
        Rule::item
        | Rule::instance
        | Rule::tier
        | Rule::addon
        | Rule::group
        | Rule::ladder_rule
        | Rule::for_rule => "a declaration",
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
        | Rule::ident_start
        | Rule::ident_char
        | Rule::atom => return None,
    })
}
