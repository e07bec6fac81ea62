//! What the server answers, computed from an [`Analysis`]: diagnostics, hovers, navigation,
//! completion, quick fixes, the outline and renames. Everything here is pure.

use std::collections::HashMap;
use std::path::Path;

use lsp_types::{
    CodeAction, CodeActionKind, CompletionItem, CompletionItemKind, Diagnostic as LspDiagnostic,
    DiagnosticRelatedInformation, DiagnosticSeverity, DocumentSymbol, Documentation, Location,
    MarkupContent, MarkupKind, NumberOrString, Range, SymbolKind, TextEdit, Url, WorkspaceEdit,
};

use super::analysis::{Analysis, Context, Occurrence, Symbol, range};
use crate::ast::{self, Item, LifecycleItem};
use crate::compile::{self, customer as lifecycle, explain};
use crate::diagnostic::{Diagnostic, Severity};
use crate::model::catalog::{self, CATALOG, Kind};
use crate::model::license::unit_words;
use crate::source::{FileId, Span};

pub(crate) fn url(path: &Path) -> Option<Url> {
    Url::from_file_path(path).ok()
}

fn location(analysis: &Analysis, span: Span) -> Option<Location> {
    let uri = url(analysis.path_of(span.file)?)?;
    Some(Location {
        uri,
        range: range(&analysis.sources, span),
    })
}

// ---------------------------------------------------------------------------------------------
// Diagnostics

/// The set's diagnostics by file, every file of the set present (an empty list clears what the
/// editor showed before).
pub(crate) fn diagnostics(analysis: &Analysis) -> Vec<(Url, Vec<LspDiagnostic>)> {
    let mut by_file: Vec<Vec<LspDiagnostic>> = analysis.paths.iter().map(|_| Vec::new()).collect();
    for d in &analysis.diagnostics {
        let file = d.primary_span().map_or(FileId(0), |s| s.file);
        if let Some(list) = by_file.get_mut(file.0 as usize) {
            list.push(convert(analysis, d));
        }
    }
    analysis
        .paths
        .iter()
        .zip(by_file)
        .filter_map(|(path, list)| url(path).map(|u| (u, list)))
        .collect()
}

fn convert(analysis: &Analysis, d: &Diagnostic) -> LspDiagnostic {
    let primary = d.primary_span();
    let related: Vec<DiagnosticRelatedInformation> = d
        .labels
        .iter()
        .filter(|l| !l.message.is_empty())
        .filter_map(|l| {
            Some(DiagnosticRelatedInformation {
                location: location(analysis, l.span)?,
                message: l.message.clone(),
            })
        })
        .collect();
    let mut message = d.message.clone();
    if let Some(help) = &d.help {
        message.push_str("\nhelp: ");
        message.push_str(help);
    }
    LspDiagnostic {
        range: primary.map_or_else(Range::default, |s| range(&analysis.sources, s)),
        severity: Some(match d.severity {
            Severity::Error => DiagnosticSeverity::ERROR,
            Severity::Warning => DiagnosticSeverity::WARNING,
        }),
        code: Some(NumberOrString::String(d.code.to_string())),
        source: Some("charter".to_string()),
        message,
        related_information: (!related.is_empty()).then_some(related),
        data: suggestion(d.help.as_deref().unwrap_or(""))
            .map(|s| serde_json::json!({ "suggestion": s })),
        ..LspDiagnostic::default()
    }
}

/// The name in a "did you mean `…`?" help.
pub(crate) fn suggestion(help: &str) -> Option<String> {
    let rest = help.split("did you mean `").nth(1)?;
    let (name, _) = rest.split_once('`')?;
    Some(name.to_string())
}

/// Quick fixes: each diagnostic with a "did you mean" replaces its range with the suggestion.
pub(crate) fn code_actions(uri: &Url, diagnostics: &[LspDiagnostic]) -> Vec<CodeAction> {
    diagnostics
        .iter()
        .filter_map(|d| {
            let suggestion = d
                .data
                .as_ref()
                .and_then(|data| data.get("suggestion"))
                .and_then(|s| s.as_str())
                .map(str::to_string)
                .or_else(|| suggestion(&d.message))?;
            let edit = TextEdit {
                range: d.range,
                new_text: suggestion.clone(),
            };
            Some(CodeAction {
                title: format!("replace with `{suggestion}`"),
                kind: Some(CodeActionKind::QUICKFIX),
                diagnostics: Some(vec![d.clone()]),
                edit: Some(WorkspaceEdit {
                    changes: Some(HashMap::from([(uri.clone(), vec![edit])])),
                    ..WorkspaceEdit::default()
                }),
                is_preferred: Some(true),
                ..CodeAction::default()
            })
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Hover

/// Markdown for what is under the cursor.
pub(crate) fn hover(analysis: &Analysis, occurrence: &Occurrence, now: i64) -> Option<String> {
    let program = analysis.program.as_ref();
    let sources = &analysis.sources;
    let stale = "\n\n*the policy set has errors: values show once it checks*";
    match &occurrence.symbol {
        Symbol::Parameter(name) => {
            let index = catalog::index_of(name)?;
            let mut out = parameter_doc(index);
            match (&occurrence.context, program) {
                (Context::Tier(tier), Some(program)) => {
                    let tier = program.tier(tier)?;
                    out.push_str(&format!(
                        "\n\n```text\n{}```",
                        explain::tier(sources, program, tier, Some(index))
                    ));
                }
                (Context::Override(key), Some(program)) => {
                    let customer = program.customer(key)?;
                    let history = history(&analysis.dir, key);
                    let desired = lifecycle::desired(program, customer, &history, now);
                    out.push_str(&format!(
                        "\n\n```text\n{}```",
                        explain::customer(sources, program, &desired, Some(index))
                    ));
                }
                (Context::Addon(_), _) => {
                    let line = line_of(analysis, occurrence.span);
                    out.push_str(&format!(
                        "\n\nadded on top of a customer's tier: `{}`",
                        line.trim()
                    ));
                }
                (Context::None, _) => {}
                (_, None) => out.push_str(stale),
            }
            Some(out)
        }
        Symbol::Tier(name) => {
            let Some(program) = program else {
                return Some(format!("tier `{name}`{stale}"));
            };
            let tier = program.tier(name)?;
            let mut out = String::new();
            if tier.is_abstract {
                let children: Vec<String> = program
                    .tiers
                    .iter()
                    .filter(|t| t.parent.as_deref() == Some(name))
                    .map(|t| format!("`{}`", t.name))
                    .collect();
                out.push_str(&format!(
                    "abstract tier `{name}`, a parent of {}",
                    join_or_none(&children)
                ));
                return Some(out);
            }
            if let Ok(license) = compile::tier_license(program, name) {
                out.push_str(&format!(
                    "```text\n{}```",
                    compile::render_text(name, &license)
                ));
            }
            let customers: Vec<String> = program
                .customers
                .iter()
                .filter(|c| &c.tier == name)
                .map(|c| format!("`{}`", c.key))
                .collect();
            out.push_str(&format!(
                "\n\n{} on it: {}",
                plural(customers.len(), "customer"),
                list_some(&customers, 20)
            ));
            Some(out)
        }
        Symbol::Addon(name) => {
            let program = program?;
            let addon = program.addon(name)?;
            let customers: Vec<String> = program
                .customers
                .iter()
                .filter(|c| c.addons.contains(name))
                .map(|c| format!("`{}`", c.key))
                .collect();
            let lines: Vec<String> = analysis
                .occurrences
                .iter()
                .filter(|o| o.context == Context::Addon(addon.name.clone()))
                .map(|o| format!("    {}", line_of(analysis, o.span).trim()))
                .collect();
            Some(format!(
                "add-on `{name}`\n\n{}\n\n{} with it: {}",
                lines.join("\n"),
                plural(customers.len(), "customer"),
                list_some(&customers, 20)
            ))
        }
        Symbol::Customer(key) => {
            let Some(program) = program else {
                return Some(format!("customer `{key}`{stale}"));
            };
            let customer = program.customer(key)?;
            let history = history(&analysis.dir, key);
            let desired = lifecycle::desired(program, customer, &history, now);
            let mut out = format!(
                "customer `{key}` ({}), tier `{}`",
                customer.name, customer.tier
            );
            if !customer.addons.is_empty() {
                let addons: Vec<String> =
                    customer.addons.iter().map(|a| format!("`{a}`")).collect();
                out.push_str(&format!(", add-ons {}", addons.join(", ")));
            }
            out.push_str(&format!("\n\nstate now: `{}`", desired.walk.state));
            if let Some(since) = desired.walk.since {
                out.push_str(&format!(
                    " since {}",
                    crate::model::time::format_instant(since)
                ));
            }
            let next = lifecycle::upcoming(
                &program.lifecycle,
                customer,
                &history,
                now,
                10 * 366 * 86_400,
            );
            match next.first() {
                Some(f) => out.push_str(&format!(
                    "\n\nnext: `{}` ({} → {}) at {}, {}",
                    f.transition,
                    f.from,
                    f.to,
                    crate::model::time::format_instant(f.at),
                    f.cause
                )),
                None => out.push_str("\n\nno automatic transition ahead"),
            }
            Some(out)
        }
        Symbol::State(name) => {
            let into: Vec<String> = analysis
                .transitions
                .iter()
                .filter(|t| &t.to == name)
                .map(|t| format!("- `{}` from {}: {}", t.name, t.from.join(", "), t.trigger))
                .collect();
            let out_of: Vec<String> = analysis
                .transitions
                .iter()
                .filter(|t| t.from.contains(name))
                .map(|t| format!("- `{}` to {}: {}", t.name, t.to, t.trigger))
                .collect();
            Some(format!(
                "state `{name}`\n\nentered by:\n{}\n\nleft by:\n{}",
                lines_or_none(&into),
                lines_or_none(&out_of)
            ))
        }
        Symbol::Transition(name) => {
            let t = analysis.transitions.iter().find(|t| &t.name == name)?;
            Some(format!(
                "transition `{}`: {} → {}\n\n{}",
                t.name,
                t.from.join(", "),
                t.to,
                t.trigger
            ))
        }
        Symbol::Group(name) => {
            let members = analysis.groups.get(name)?;
            let members: Vec<String> = members.iter().map(|m| format!("`{m}`")).collect();
            Some(format!("group `{name}` = {}", members.join(", ")))
        }
        Symbol::Person(email) => {
            let program = program?;
            if let Some(staff) = program.staff.iter().find(|s| &s.email == email) {
                return Some(format!("```text\n{}```", explain::staff(staff)));
            }
            let roles: Vec<String> = program
                .customers
                .iter()
                .filter_map(|c| {
                    let role = if &c.owner == email {
                        "owner"
                    } else if c.admins.contains(email) {
                        "admin"
                    } else if c.members.contains(email) {
                        "member"
                    } else {
                        return None;
                    };
                    Some(format!("- {role} of `{}`", c.key))
                })
                .collect();
            Some(format!("`{email}`\n\n{}", lines_or_none(&roles)))
        }
    }
}

fn parameter_doc(index: usize) -> String {
    let Some(p) = CATALOG.get(index) else {
        return String::new();
    };
    let unit = unit_words(p);
    let mut out = format!("**{}** — {}", p.name, p.description);
    if !unit.is_empty() {
        out.push_str(&format!("\n\nunit: {unit}"));
    }
    out
}

fn history(dir: &Path, key: &str) -> lifecycle::History {
    match crate::state::State::open_existing(&crate::state::default_path(dir)) {
        Ok(Some(state)) => state.history(key).unwrap_or_default(),
        _ => lifecycle::History::default(),
    }
}

fn line_of(analysis: &Analysis, span: Span) -> String {
    let Some(file) = analysis.sources.file(span.file) else {
        return String::new();
    };
    let text = file.text.as_str();
    let start = span.start as usize;
    let from = text
        .get(..start)
        .and_then(|t| t.rfind('\n'))
        .map_or(0, |i| i + 1);
    let to = text
        .get(start..)
        .and_then(|t| t.find('\n'))
        .map_or(text.len(), |i| start + i);
    text.get(from..to).unwrap_or("").to_string()
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn list_some(items: &[String], at_most: usize) -> String {
    if items.is_empty() {
        return "none".to_string();
    }
    let mut out = items
        .iter()
        .take(at_most)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if items.len() > at_most {
        out.push_str(&format!(" and {} more", items.len() - at_most));
    }
    out
}

fn join_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "no tier".to_string()
    } else {
        items.join(", ")
    }
}

fn lines_or_none(lines: &[String]) -> String {
    if lines.is_empty() {
        "- none".to_string()
    } else {
        lines.join("\n")
    }
}

// ---------------------------------------------------------------------------------------------
// Navigation and rename

pub(crate) fn definition(analysis: &Analysis, occurrence: &Occurrence) -> Vec<Location> {
    analysis
        .occurrences_of(&occurrence.symbol)
        .filter(|o| o.definition)
        .filter_map(|o| location(analysis, o.span))
        .collect()
}

pub(crate) fn references(
    analysis: &Analysis,
    occurrence: &Occurrence,
    include_declaration: bool,
) -> Vec<Location> {
    analysis
        .occurrences_of(&occurrence.symbol)
        .filter(|o| include_declaration || !o.definition)
        .filter_map(|o| location(analysis, o.span))
        .collect()
}

pub(crate) fn renameable(symbol: &Symbol) -> bool {
    matches!(
        symbol,
        Symbol::Tier(_) | Symbol::Addon(_) | Symbol::State(_)
    )
}

/// Why a rename cannot be done.
pub(crate) fn rename_refusal(
    analysis: &Analysis,
    symbol: &Symbol,
    new_name: &str,
) -> Option<String> {
    if !renameable(symbol) {
        return Some("only tiers, add-ons and states can be renamed".to_string());
    }
    let mut chars = new_name.chars();
    let identifier = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !identifier {
        return Some(format!(
            "`{new_name}` is not a name (letters, digits and `_`, not starting with a digit)"
        ));
    }
    if KEYWORDS.contains(&new_name) {
        return Some(format!("`{new_name}` is a keyword"));
    }
    let clash = analysis.occurrences.iter().any(|o| {
        o.definition
            && o.symbol.name() == new_name
            && std::mem::discriminant(&o.symbol) == std::mem::discriminant(symbol)
    });
    clash.then(|| format!("`{new_name}` is already declared"))
}

pub(crate) fn rename(analysis: &Analysis, symbol: &Symbol, new_name: &str) -> WorkspaceEdit {
    let mut changes: HashMap<Url, Vec<TextEdit>> = HashMap::new();
    for o in analysis.occurrences_of(symbol) {
        if let Some(loc) = location(analysis, o.span) {
            changes.entry(loc.uri).or_default().push(TextEdit {
                range: loc.range,
                new_text: new_name.to_string(),
            });
        }
    }
    WorkspaceEdit {
        changes: Some(changes),
        ..WorkspaceEdit::default()
    }
}

/// The language's reserved words (LANGUAGE.md §1).
pub(crate) const KEYWORDS: &[&str] = &[
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

// ---------------------------------------------------------------------------------------------
// Outline

pub(crate) fn symbols(analysis: &Analysis, file: FileId) -> Vec<DocumentSymbol> {
    let Some(ast) = analysis.ast_of(file) else {
        return Vec::new();
    };
    let r = |span: Span| range(&analysis.sources, span);
    let assignments = |block: &[ast::Assignment]| -> Vec<DocumentSymbol> {
        block
            .iter()
            .map(|a| {
                symbol(
                    a.field.name.clone(),
                    SymbolKind::PROPERTY,
                    r(a.span),
                    r(a.field.span),
                    None,
                )
            })
            .collect()
    };
    ast.items
        .iter()
        .filter_map(|item| {
            Some(match item {
                Item::Instance(i) => symbol(
                    "instance".into(),
                    SymbolKind::MODULE,
                    r(i.span),
                    r(i.keyword),
                    None,
                ),
                Item::Tier(t) => symbol(
                    t.name.name.clone(),
                    SymbolKind::CLASS,
                    r(t.span),
                    r(t.name.span),
                    Some(assignments(&t.body.assignments)),
                ),
                Item::Addon(a) => symbol(
                    a.name.name.clone(),
                    SymbolKind::INTERFACE,
                    r(a.span),
                    r(a.name.span),
                    Some(assignments(&a.body.assignments)),
                ),
                Item::Group(g) => symbol(
                    g.name.name.clone(),
                    SymbolKind::ARRAY,
                    r(g.span),
                    r(g.name.span),
                    None,
                ),
                Item::Customer(c) => symbol(
                    c.key.name.clone(),
                    SymbolKind::OBJECT,
                    r(c.span),
                    r(c.key.span),
                    None,
                ),
                Item::Staff(s) => symbol(
                    s.email.value.clone(),
                    SymbolKind::OBJECT,
                    r(s.span),
                    r(s.email.span),
                    None,
                ),
                Item::Roster(ro) => symbol(
                    ro.path.value.clone(),
                    SymbolKind::FILE,
                    r(ro.span),
                    r(ro.path.span),
                    None,
                ),
                Item::Test(t) => symbol(
                    t.name.value.clone(),
                    SymbolKind::METHOD,
                    r(t.span),
                    r(t.name.span),
                    None,
                ),
                Item::Lifecycle(l) => {
                    let children = l
                        .items
                        .iter()
                        .filter_map(|i| match i {
                            LifecycleItem::State(s) => Some(symbol(
                                s.name.name.clone(),
                                SymbolKind::ENUM_MEMBER,
                                r(s.span),
                                r(s.name.span),
                                None,
                            )),
                            LifecycleItem::Transition(t) => Some(symbol(
                                t.name.name.clone(),
                                SymbolKind::EVENT,
                                r(t.span),
                                r(t.name.span),
                                None,
                            )),
                            LifecycleItem::Initial { .. } => None,
                        })
                        .collect();
                    symbol(
                        "lifecycle".into(),
                        SymbolKind::MODULE,
                        r(l.span),
                        r(l.keyword),
                        Some(children),
                    )
                }
                Item::Ladder(_) | Item::Assert(_) => return None,
            })
        })
        .collect()
}

#[expect(
    deprecated,
    reason = "`DocumentSymbol::deprecated` must be written; `tags` replaces it"
)]
fn symbol(
    name: String,
    kind: SymbolKind,
    range: Range,
    selection_range: Range,
    children: Option<Vec<DocumentSymbol>>,
) -> DocumentSymbol {
    DocumentSymbol {
        name,
        detail: None,
        kind,
        tags: None,
        deprecated: None,
        range,
        selection_range,
        children,
    }
}

// ---------------------------------------------------------------------------------------------
// Completion

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

    #[test]
    fn reads_the_suggestion_of_a_help() {
        assert_eq!(suggestion("did you mean `pro`?").as_deref(), Some("pro"));
        assert_eq!(suggestion("nothing here"), None);
    }
}
