//! Completion: what may be typed at the cursor, read from the text before it on its line and
//! the blocks open around it (a buffer being typed rarely parses), with the names the last
//! analysis of the set knows.

use lsp_types::{CompletionItem, CompletionItemKind, Documentation, MarkupContent, MarkupKind};

use super::analysis::{Analysis, Symbol};
use super::features::parameter_doc;
use crate::model::catalog::{self, CATALOG, Kind};
use crate::model::license::unit_words;

const SIZE_UNITS: &[&str] = &["B", "KB", "MB", "GB", "TB", "KiB", "MiB", "GiB", "TiB"];
const DURATION_UNITS: &[&str] = &["s", "min", "h", "day", "days", "week", "weeks"];
const ASSIGN_OPS: &[&str] = &["=", "+=", "-=", "*="];
const EXPR_OPS: &[&str] = &[
    "==", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "and", "or", "not", "implies",
];
const CUSTOMER_FIELDS: &[&str] = &[
    "name",
    "tier",
    "addons",
    "owner",
    "admins",
    "members",
    "contract_end",
    "attributes",
    "override",
    "team",
];
const TOP_LEVEL: &[&str] = &[
    "instance",
    "tier",
    "abstract tier",
    "addon",
    "group",
    "assert ladder",
    "assert for",
    "customer",
    "roster",
    "staff",
    "lifecycle",
    "test",
];

/// The kind of block the cursor is in, from the headers of the open braces before it.
#[derive(Debug, PartialEq, Eq)]
enum Block {
    Top,
    /// A tier, add-on or override: license parameters.
    License,
    Customer,
    Lifecycle,
    State,
    Other,
}

fn enclosing_block(before: &str) -> Block {
    let mut headers: Vec<&str> = Vec::new();
    let mut statement_start = 0;
    let mut in_string = false;
    let mut in_comment = false;
    for (i, c) in before.char_indices() {
        match c {
            '\n' => {
                in_comment = false;
                in_string = false;
                statement_start = i + 1;
            }
            _ if in_comment => {}
            '"' => in_string = !in_string,
            _ if in_string => {}
            '#' => in_comment = true,
            '{' => {
                headers.push(before.get(statement_start..i).unwrap_or("").trim());
                statement_start = i + 1;
            }
            '}' => {
                headers.pop();
                statement_start = i + 1;
            }
            ';' => statement_start = i + 1,
            _ => {}
        }
    }
    let Some(header) = headers.last() else {
        return Block::Top;
    };
    match header.split_whitespace().next().unwrap_or("") {
        "tier" | "abstract" | "addon" | "override" => Block::License,
        "customer" => Block::Customer,
        "lifecycle" => Block::Lifecycle,
        "state" => Block::State,
        _ => Block::Other,
    }
}

/// Splits the text of a line before the cursor into tokens; the last word, if the cursor is
/// in it, is returned apart.
fn tokens(line: &str) -> (Vec<String>, String) {
    let mut tokens: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut kind = 0u8; // 0 none, 1 word, 2 operator
    for c in line.chars() {
        let k = if c.is_alphanumeric() || c == '_' || c == '.' {
            1
        } else if c.is_whitespace() {
            0
        } else {
            2
        };
        let boundary = k != kind || k == 0 || matches!(c, '[' | ']' | '(' | ')' | ',' | ':' | '"');
        if boundary && !current.is_empty() {
            tokens.push(std::mem::take(&mut current));
        }
        if k != 0 {
            current.push(c);
        }
        kind = k;
    }
    let partial = if kind == 1 {
        current
    } else {
        if !current.is_empty() {
            tokens.push(current);
        }
        String::new()
    };
    (tokens, partial)
}

pub(crate) fn completion(
    analysis: Option<&Analysis>,
    text: &str,
    offset: usize,
) -> Vec<CompletionItem> {
    let before = text.get(..offset).unwrap_or("");
    let line = before.rsplit('\n').next().unwrap_or("");
    let line = line.split('#').next().unwrap_or("");
    let line = line.rsplit(['{', ';']).next().unwrap_or("");
    let (tokens, partial) = tokens(line);
    let t: Vec<&str> = tokens.iter().map(String::as_str).collect();
    let names = |kind: fn(String) -> Symbol| analysis.map(|a| a.names(kind)).unwrap_or_default();
    let tiers = || analysis.map(Analysis::deployable_tiers).unwrap_or_default();
    let block = enclosing_block(before);

    // A unit after a number: `15 ` or `15mi`.
    let number_before = partial.starts_with(|c: char| c.is_ascii_digit())
        || (partial.chars().all(char::is_alphabetic)
            && t.last()
                .is_some_and(|w| w.starts_with(|c: char| c.is_ascii_digit())));
    if number_before {
        let field = t.first().and_then(|f| catalog::lookup(f));
        let units: Vec<&str> = match field.map(|p| p.kind) {
            Some(Kind::Size) => SIZE_UNITS.to_vec(),
            Some(Kind::Duration) => DURATION_UNITS.to_vec(),
            Some(_) => Vec::new(),
            None => SIZE_UNITS.iter().chain(DURATION_UNITS).copied().collect(),
        };
        return words(&units, CompletionItemKind::UNIT, "unit");
    }
    match t.as_slice() {
        ["extends"] | [.., "extends"] => return tier_items(analysis, names(Symbol::Tier)),
        ["assert", "ladder", ..] => return tier_items(analysis, tiers()),
        ["assert", "for", rest @ ..] if !rest.contains(&":") => {
            let mut items = tier_items(analysis, tiers());
            items.extend(words(
                &["all"],
                CompletionItemKind::KEYWORD,
                "every deployable tier",
            ));
            return items;
        }
        ["tier", "="] if block == Block::Customer => return tier_items(analysis, tiers()),
        ["addons", "=", "[", ..] if block == Block::Customer => {
            return words_owned(names(Symbol::Addon), CompletionItemKind::MODULE, "add-on");
        }
        ["initial"] | ["transition", _, "from", ..] if block == Block::Lifecycle => {
            return words_owned(
                names(Symbol::State),
                CompletionItemKind::ENUM_MEMBER,
                "state",
            );
        }
        _ => {}
    }
    // An expression: after an operand comes an operator, otherwise an operand.
    let expression_start = t.iter().position(|w| matches!(*w, ":" | "when" | "if"));
    if let Some(start) = expression_start {
        let last = t.last().copied().unwrap_or("");
        let after_operand = start + 1 < t.len()
            && partial.is_empty()
            && (last.starts_with(|c: char| c.is_alphanumeric() || c == '_')
                || last == ")"
                || last == "\"")
            && !EXPR_OPS.contains(&last);
        if after_operand {
            return words(EXPR_OPS, CompletionItemKind::OPERATOR, "operator");
        }
        return parameter_items();
    }
    if block == Block::License {
        match t.as_slice() {
            [] => return parameter_items(),
            [field] if catalog::lookup(field).is_some() => {
                return words(ASSIGN_OPS, CompletionItemKind::OPERATOR, "assignment");
            }
            [field, op] if ASSIGN_OPS.contains(op) => {
                let values: Vec<&str> = match catalog::lookup(field).map(|p| p.kind) {
                    Some(Kind::Boolean) => vec!["true", "false"],
                    Some(Kind::Enum(variants)) => variants.iter().map(|v| v.word).collect(),
                    _ => Vec::new(),
                };
                return words(&values, CompletionItemKind::VALUE, "value");
            }
            _ => return Vec::new(),
        }
    }
    match (block, t.as_slice()) {
        (Block::Customer, []) => {
            words(CUSTOMER_FIELDS, CompletionItemKind::FIELD, "customer field")
        }
        (Block::State, []) => words(
            &["license = tier", "owner = dummy_owner", "demote"],
            CompletionItemKind::FIELD,
            "state",
        ),
        (Block::State, t) if t.contains(&"with") => {
            let mut items = parameter_items();
            items.extend(words_owned(
                analysis
                    .map(|a| a.groups.keys().cloned().collect())
                    .unwrap_or_default(),
                CompletionItemKind::ENUM,
                "group",
            ));
            items
        }
        (Block::Lifecycle, []) => words(
            &["initial", "state", "transition"],
            CompletionItemKind::KEYWORD,
            "lifecycle",
        ),
        (Block::Lifecycle, [.., "to"]) => words_owned(
            names(Symbol::State),
            CompletionItemKind::ENUM_MEMBER,
            "state",
        ),
        (Block::Top, []) => words(TOP_LEVEL, CompletionItemKind::KEYWORD, "declaration"),
        _ => Vec::new(),
    }
}

fn parameter_items() -> Vec<CompletionItem> {
    CATALOG
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.is_deprecated())
        .map(|(i, p)| {
            let unit = unit_words(p);
            CompletionItem {
                label: p.name.to_string(),
                kind: Some(CompletionItemKind::PROPERTY),
                detail: Some(if unit.is_empty() {
                    kind_word(p.kind).to_string()
                } else {
                    unit.to_string()
                }),
                documentation: Some(Documentation::MarkupContent(MarkupContent {
                    kind: MarkupKind::Markdown,
                    value: parameter_doc(i),
                })),
                ..CompletionItem::default()
            }
        })
        .collect()
}

fn kind_word(kind: Kind) -> &'static str {
    match kind {
        Kind::Integer => "integer",
        Kind::Size => "size",
        Kind::Duration => "duration",
        Kind::Boolean => "boolean",
        Kind::Enum(_) => "enum",
        Kind::Fixed(_) => "deprecated",
    }
}

fn tier_items(analysis: Option<&Analysis>, names: Vec<String>) -> Vec<CompletionItem> {
    let program = analysis.and_then(|a| a.program.as_ref());
    names
        .into_iter()
        .map(|name| {
            let detail = program
                .and_then(|p| p.tier(&name))
                .and_then(|t| {
                    t.parent
                        .as_ref()
                        .map(|parent| format!("tier, extends {parent}"))
                })
                .unwrap_or_else(|| "tier".to_string());
            CompletionItem {
                label: name,
                kind: Some(CompletionItemKind::CLASS),
                detail: Some(detail),
                ..CompletionItem::default()
            }
        })
        .collect()
}

fn words(words: &[&str], kind: CompletionItemKind, detail: &str) -> Vec<CompletionItem> {
    words_owned(
        words.iter().map(|w| (*w).to_string()).collect(),
        kind,
        detail,
    )
}

fn words_owned(words: Vec<String>, kind: CompletionItemKind, detail: &str) -> Vec<CompletionItem> {
    words
        .into_iter()
        .map(|label| CompletionItem {
            label,
            kind: Some(kind),
            detail: Some(detail.to_string()),
            ..CompletionItem::default()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(text: &str) -> Vec<String> {
        let offset = text.find('|').unwrap_or(text.len());
        let text = text.replace('|', "");
        completion(None, &text, offset)
            .into_iter()
            .map(|i| i.label)
            .collect()
    }

    #[test]
    fn completes_by_context() {
        assert!(labels("tier a {\n  oper|").contains(&"operations".to_string()));
        assert!(labels("tier a {\n  operations |").contains(&"+=".to_string()));
        assert_eq!(
            labels("tier a {\n  restartPeriod = |"),
            ["monthly", "yearly"]
        );
        assert!(labels("tier a {\n  transfer = 5 |").contains(&"GiB".to_string()));
        assert!(labels("tier a {\n  interval = 5mi|").contains(&"min".to_string()));
        assert!(labels("tier a {\n  operations = 5 |").is_empty());
        assert!(labels("assert for all: operations |").contains(&"<=".to_string()));
        assert!(labels("assert for all: operations >= |").contains(&"transfer".to_string()));
        assert!(labels("|").contains(&"lifecycle".to_string()));
        assert!(labels("customer a {\n  |").contains(&"owner".to_string()));
    }
}
