//! What the server answers, computed from an [`Analysis`]: diagnostics, hovers, navigation,
//! quick fixes, the outline and renames (completion has its own module).

use std::collections::HashMap;
use std::path::Path;

use lsp_types::{
    CodeAction, CodeActionKind, Diagnostic as LspDiagnostic, DiagnosticRelatedInformation,
    DiagnosticSeverity, DocumentSymbol, Location, NumberOrString, Range, SemanticToken,
    SemanticTokenModifier, SemanticTokenType, SymbolKind, TextEdit, Url, WorkspaceEdit,
};

use super::analysis::{Analysis, Context, Occurrence, Symbol, range};
use crate::ast::{self, Item, LifecycleItem};
use crate::compile::{self, customer as lifecycle, explain};
use crate::diagnostic::{Diagnostic, Severity};
use crate::model::catalog::{self, CATALOG};
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
                (Context::Addon(addon), Some(program)) => {
                    out.push_str(&format!(
                        "\n\non top of each tier: `{}`",
                        line_of(analysis, occurrence.span).trim()
                    ));
                    out.push_str(&addon_results(program, addon, index));
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

pub(crate) fn parameter_doc(index: usize) -> String {
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

/// What an add-on makes of one parameter on each deployable tier: `pro: 40,000 → 50,000`.
fn addon_results(program: &crate::model::program::Program, addon: &str, index: usize) -> String {
    let (Some(addon), Some(param)) = (program.addon(addon), CATALOG.get(index)) else {
        return String::new();
    };
    let mut out = String::new();
    for tier in program.deployable_tiers() {
        let before = tier.license.value(index);
        let mut after = before;
        for a in addon.assignments.iter().filter(|a| a.param == index) {
            after = a.result(param, after).ok();
        }
        let show = |v: Option<crate::model::license::LicenseValue>| {
            v.map_or_else(|| "out of range".to_string(), |v| v.human(param))
        };
        out.push_str(&format!(
            "\n- `{}`: {} → {}",
            tier.name,
            show(before),
            show(after)
        ));
    }
    out
}

fn history(dir: &Path, key: &str) -> lifecycle::History {
    match crate::state::Store::open_existing(&crate::state::Location::File(
        crate::state::default_path(dir),
    )) {
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
    if crate::syntax::KEYWORDS.contains(&new_name) {
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
// Semantic tokens

/// The token types, in the order of their indices in [`semantic_tokens`].
pub(crate) const TOKEN_TYPES: &[SemanticTokenType] = &[
    SemanticTokenType::CLASS,
    SemanticTokenType::INTERFACE,
    SemanticTokenType::ENUM,
    SemanticTokenType::ENUM_MEMBER,
    SemanticTokenType::EVENT,
    SemanticTokenType::VARIABLE,
    SemanticTokenType::STRING,
    SemanticTokenType::PROPERTY,
];

/// The one modifier: where a name is declared.
pub(crate) const TOKEN_MODIFIERS: &[SemanticTokenModifier] = &[SemanticTokenModifier::DECLARATION];

/// Every name of a file with what it stands for (tiers as classes, add-ons as interfaces,
/// groups as enums, states as enum members, transitions as events, customers as variables,
/// addresses as strings, parameters as properties); TextMate colours the rest.
pub(crate) fn semantic_tokens(analysis: &Analysis, file: FileId) -> Vec<SemanticToken> {
    let Some(source) = analysis.sources.file(file) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    // Each token is placed relative to the start of the one before it.
    let mut previous: Option<lsp_types::Position> = None;
    for o in analysis.occurrences.iter().filter(|o| o.span.file == file) {
        let start = super::analysis::position(source, o.span.start as usize);
        let end = super::analysis::position(source, o.span.end as usize);
        // A token is one line; one that does not come after the last cannot be encoded.
        if start.line != end.line
            || end.character <= start.character
            || previous.is_some_and(|p| start <= p)
        {
            continue;
        }
        let token_type = match o.symbol {
            Symbol::Tier(_) => 0,
            Symbol::Addon(_) => 1,
            Symbol::Group(_) => 2,
            Symbol::State(_) => 3,
            Symbol::Transition(_) => 4,
            Symbol::Customer(_) => 5,
            Symbol::Person(_) => 6,
            Symbol::Parameter(_) => 7,
        };
        let before = previous.unwrap_or_default();
        let delta_line = start.line - before.line;
        out.push(SemanticToken {
            delta_line,
            delta_start: if delta_line == 0 {
                start.character - before.character
            } else {
                start.character
            },
            length: end.character - start.character,
            token_type,
            token_modifiers_bitset: u32::from(o.definition),
        });
        previous = Some(start);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_suggestion_of_a_help() {
        assert_eq!(suggestion("did you mean `pro`?").as_deref(), Some("pro"));
        assert_eq!(suggestion("nothing here"), None);
    }
}
