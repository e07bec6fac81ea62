//! Customers: `customer` blocks and roster rows, checked alike into [`Customer`]s, each with its
//! license (tier, add-ons, override) validated like a tier's.

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap, FxHashSet};

use super::tiers::{Resolved, apply_error, check_dependencies, check_flags};
use super::{Declarations, assigned_twice, invalid_email, looks_like_email, values};
use crate::ast::{self, AssignOp, Statement, ValueKind};
use crate::diagnostic::{Diagnostic, Diagnostics, suggest};
use crate::model::catalog::{self, CATALOG};
use crate::model::customer::{Attribute, Customer, Team, TeamRole};
use crate::model::license::{Assignment, License, LicenseValue, Origin};
use crate::model::program::{Addon, InstanceSettings};
use crate::source::{FileId, Span};
use crate::syntax::roster::{self, Cell};

/// A customer as written, before the checks that look across fields.
struct Draft {
    key: String,
    key_span: Span,
    name: Option<(String, Span)>,
    tier: Option<(String, Span)>,
    addons: Vec<(String, Span)>,
    owner: Option<(String, Span)>,
    admins: Vec<(String, Span)>,
    members: Vec<(String, Span)>,
    attributes: BTreeMap<String, (Attribute, Span)>,
    overrides: Vec<Assignment>,
    teams: Vec<TeamDraft>,
}

impl Draft {
    fn new(key: String, key_span: Span) -> Draft {
        Draft {
            key,
            key_span,
            name: None,
            tier: None,
            addons: Vec::new(),
            owner: None,
            admins: Vec::new(),
            members: Vec::new(),
            attributes: BTreeMap::new(),
            overrides: Vec::new(),
            teams: Vec::new(),
        }
    }
}

/// A team as written: its name, where, and each address with its role and where.
type TeamDraft = (String, Span, Vec<(String, TeamRole, Span)>);

/// What checking customers needs from the rest of the policy set.
pub(super) struct Context<'a> {
    pub(super) decls: &'a Declarations<'a>,
    pub(super) resolved: &'a Resolved,
    pub(super) addons: &'a [Addon],
    pub(super) instance: &'a InstanceSettings,
    pub(super) groups: &'a BTreeMap<String, Vec<usize>>,
}

/// The customers that were checked: the sound ones, and why each other one was left out.
pub(super) struct Checked {
    /// In the order they were declared (files in name order, a roster's rows where the roster
    /// is named).
    pub(super) sound: Vec<Customer>,
    /// By key: what a later check that meets the customer says it follows from.
    pub(super) left_out: BTreeMap<String, LeftOut>,
}

/// Why a declared customer is not among the sound ones.
#[derive(Clone, Debug)]
pub(super) enum LeftOut {
    /// Its own block or row has errors, reported at it.
    OwnErrors,
    /// Its tier has errors (reported at the tier); the customer was not checked further.
    TierHasErrors { tier: String, span: Span },
}

/// Checks every customer block and roster row.
pub(super) fn customers(
    cx: &Context<'_>,
    files: &[(FileId, ast::File)],
    rosters: &[(Span, roster::Roster)],
    diags: &mut Diagnostics,
) -> Checked {
    let mut out = Vec::new();
    let mut left_out = BTreeMap::new();
    let mut keys: FxHashMap<String, Span> = FxHashMap::default();
    let mut reported = FxHashSet::default();
    let mut next_roster = 0;
    for (_, file) in files {
        for item in &file.items {
            let drafts: Vec<Draft> = match item {
                ast::Item::Customer(c) => vec![draft_from_block(c, cx, diags)],
                ast::Item::Roster(r) => {
                    let table = rosters
                        .iter()
                        .skip(next_roster)
                        .find(|(span, _)| *span == r.span);
                    next_roster += 1;
                    match table {
                        Some((_, table)) => drafts_from_roster(table, diags),
                        None => Vec::new(),
                    }
                }
                _ => continue,
            };
            for draft in drafts {
                if let Some(first) = keys.get(&draft.key) {
                    diags.push(
                        Diagnostic::error(
                            "charter::duplicate_customer",
                            format!("customer `{}` is defined twice", draft.key),
                        )
                        .with_label(draft.key_span, "defined again here")
                        .with_label(*first, "first defined here")
                        .with_help("a customer's key is its identity; give each customer its own"),
                    );
                    continue;
                }
                keys.insert(draft.key.clone(), draft.key_span);
                let key = draft.key.clone();
                match finish(draft, cx, &mut reported, diags) {
                    Ok(customer) => out.push(customer),
                    Err(reason) => {
                        left_out.insert(key, reason);
                    }
                }
            }
        }
    }
    Checked {
        sound: out,
        left_out,
    }
}

fn draft_from_block(c: &ast::Customer, cx: &Context<'_>, diags: &mut Diagnostics) -> Draft {
    let mut draft = Draft::new(c.key.name.clone(), c.key.span);
    let owner = format!("customer `{}`", c.key.name);
    let mut seen: FxHashMap<String, Span> = FxHashMap::default();
    for statement in &c.body {
        match statement {
            Statement::Assign(a) => {
                if let Some(first) = seen.insert(a.field.name.clone(), a.field.span) {
                    diags.push(assigned_twice(&a.field, first, &owner));
                    continue;
                }
                if a.op != AssignOp::Set {
                    diags.push(
                        Diagnostic::error(
                            "charter::invalid_operator",
                            format!("`{}` cannot be used on `{}`", a.op.as_str(), a.field.name),
                        )
                        .with_label(a.op_span, "use `=`")
                        .with_help("to adjust a license value, use `override { … }`"),
                    );
                    continue;
                }
                block_field(&mut draft, a, diags);
            }
            Statement::Nested(block) => match block.keyword.name.as_str() {
                "attributes" => attributes(&mut draft, block, diags),
                "override" => {
                    let overrides =
                        super::assignments(&block.body, &|| format!("the override of {owner}"), cx.groups, diags);
                    if !draft.overrides.is_empty() {
                        diags.push(
                            Diagnostic::error(
                                "charter::duplicate_assignment",
                                format!("{owner} has two `override` blocks"),
                            )
                            .with_label(block.keyword.span, "second block")
                            .with_help("merge them into one"),
                        );
                    }
                    draft.overrides.extend(overrides);
                }
                "team" => team(&mut draft, block, diags),
                other => diags.push(
                    Diagnostic::error(
                        "charter::unknown_field",
                        format!("unknown block `{other}` in {owner}"),
                    )
                    .with_label(block.keyword.span, "not a customer block")
                    .with_suggestion(other, ["attributes", "override", "team"])
                    .with_help("a customer holds `attributes { … }`, `override { … }` and `team \"NAME\" { … }`"),
                ),
            },
        }
    }
    draft
}

/// A customer block's fields: the roster's columns but the key.
fn customer_fields() -> impl Iterator<Item = &'static str> {
    roster::KNOWN_COLUMNS
        .iter()
        .copied()
        .filter(|c| *c != "key")
}

fn block_field(draft: &mut Draft, a: &ast::Assignment, diags: &mut Diagnostics) {
    let field = a.field.name.as_str();
    let value = &a.value;
    match field {
        "name" => draft.name = string(value, field, diags).map(|s| (s, value.span)),
        "owner" => draft.owner = string(value, field, diags).map(|s| (s, value.span)),
        "tier" => match &value.kind {
            ValueKind::Word(w) => draft.tier = Some((w.clone(), value.span)),
            _ => diags.push(expected(value, "`tier`", "a tier name such as `pro`")),
        },
        "addons" => match &value.kind {
            ValueKind::List(items) => {
                for item in items {
                    match &item.kind {
                        ValueKind::Word(w) => draft.addons.push((w.clone(), item.span)),
                        _ => diags.push(expected(item, "an add-on", "an add-on name")),
                    }
                }
            }
            _ => diags.push(expected(value, "`addons`", "a list such as `[extra_ops]`")),
        },
        "admins" | "members" => {
            let list = match &value.kind {
                ValueKind::List(items) => items
                    .iter()
                    .filter_map(|item| string(item, field, diags).map(|s| (s, item.span)))
                    .collect(),
                _ => {
                    diags.push(expected(
                        value,
                        &format!("`{field}`"),
                        "a list of addresses",
                    ));
                    Vec::new()
                }
            };
            if field == "admins" {
                draft.admins = list;
            } else {
                draft.members = list;
            }
        }
        "contract_end" => match &value.kind {
            ValueKind::Date(d) => {
                draft.attributes.insert(
                    field.to_string(),
                    (Attribute::Date(d.unix_seconds), value.span),
                );
            }
            _ => diags.push(expected(
                value,
                "`contract_end`",
                "a date such as `2027-01-31`",
            )),
        },
        _ => diags.push(
            Diagnostic::error(
                "charter::unknown_field",
                format!("unknown field `{field}` in customer `{}`", draft.key),
            )
            .with_label(a.field.span, "not a customer field")
            .with_suggestion(field, customer_fields())
            .with_help("other facts about a customer go in `attributes { … }`"),
        ),
    }
}

fn string(value: &ast::Value, field: &str, diags: &mut Diagnostics) -> Option<String> {
    match &value.kind {
        ValueKind::String(s) => Some(s.clone()),
        _ => {
            diags.push(expected(value, &format!("`{field}`"), "a string in quotes"));
            None
        }
    }
}

fn expected(value: &ast::Value, what: &str, wanted: &str) -> Diagnostic {
    Diagnostic::error(
        "charter::wrong_kind",
        format!(
            "{what} takes {wanted}, not {}",
            values::describe_value(value)
        ),
    )
    .with_label(
        value.span,
        format!("this is {}", values::describe_value(value)),
    )
}

fn attributes(draft: &mut Draft, block: &ast::NestedBlock, diags: &mut Diagnostics) {
    for a in &block.body.assignments {
        let value = match &a.value.kind {
            ValueKind::String(s) | ValueKind::Word(s) => Attribute::Text(s.clone()),
            ValueKind::Date(d) => Attribute::Date(d.unix_seconds),
            ValueKind::Bool(b) => Attribute::Bool(*b),
            ValueKind::Number(n) => match n.as_whole().and_then(|n| i64::try_from(n).ok()) {
                Some(n) => Attribute::Int(n),
                None => {
                    diags.push(expected(&a.value, "an attribute", "a whole number"));
                    continue;
                }
            },
            _ => {
                diags.push(expected(
                    &a.value,
                    "an attribute",
                    "a string, date, number or boolean",
                ));
                continue;
            }
        };
        if a.op != AssignOp::Set {
            diags.push(
                Diagnostic::error(
                    "charter::invalid_operator",
                    format!("`{}` cannot be used on an attribute", a.op.as_str()),
                )
                .with_label(a.op_span, "use `=`"),
            );
            continue;
        }
        if let Some((_, first)) = draft.attributes.get(&a.field.name) {
            diags.push(assigned_twice(
                &a.field,
                *first,
                &format!("customer `{}`", draft.key),
            ));
            continue;
        }
        draft
            .attributes
            .insert(a.field.name.clone(), (value, a.field.span));
    }
}

fn team(draft: &mut Draft, block: &ast::NestedBlock, diags: &mut Diagnostics) {
    let Some(label) = &block.label else {
        diags.push(
            Diagnostic::error("charter::team_name", "a team needs a name")
                .with_label(block.keyword.span, "write `team \"NAME\" { … }`"),
        );
        return;
    };
    if let Some(c) = label.value.chars().find(|c| c.is_control()) {
        diags.push(control_character("a team's name", c, label.span));
        return;
    }
    if let Some((_, first, _)) = draft.teams.iter().find(|(n, _, _)| *n == label.value) {
        diags.push(
            Diagnostic::error(
                "charter::duplicate_definition",
                format!(
                    "team `{}` is declared twice for customer `{}`",
                    label.value, draft.key
                ),
            )
            .with_label(label.span, "declared again here")
            .with_label(*first, "first declared here"),
        );
        return;
    }
    const LISTS: &[&str] = &["admins", "members", "operators", "monitors"];
    let mut people = Vec::new();
    for a in &block.body.assignments {
        let role = match a.field.name.as_str() {
            "admins" => TeamRole::Admin,
            "members" => TeamRole::Member,
            "operators" => TeamRole::Operator,
            "monitors" => TeamRole::Monitor,
            other => {
                diags.push(
                    Diagnostic::error(
                        "charter::unknown_field",
                        format!("unknown field `{other}` in team `{}`", label.value),
                    )
                    .with_label(a.field.span, "not a team role")
                    .with_suggestion(other, LISTS.iter().copied())
                    .with_help("a team lists `admins`, `members`, `operators` and `monitors`"),
                );
                continue;
            }
        };
        let ValueKind::List(items) = &a.value.kind else {
            diags.push(expected(
                &a.value,
                &format!("`{}`", a.field.name),
                "a list of addresses",
            ));
            continue;
        };
        for item in items {
            if let Some(email) = string(item, &a.field.name, diags) {
                people.push((email, role, item.span));
            }
        }
    }
    draft.teams.push((label.value.clone(), label.span, people));
}

/// Every roster row as a draft; the roster's own errors (header, cells) are reported here.
fn drafts_from_roster(table: &roster::Roster, diags: &mut Diagnostics) -> Vec<Draft> {
    diags.extend(table.errors.iter().cloned());
    let column = |name: &str| table.header.iter().position(|c| c.value == name);
    let mut missing = Vec::new();
    for required in roster::REQUIRED_COLUMNS {
        if column(required).is_none() {
            missing.push(format!("`{required}`"));
        }
    }
    let header_span = table
        .header
        .first()
        .map(|c| c.span)
        .unwrap_or(Span::new(table.file, 0, 0));
    if !missing.is_empty() {
        diags.push(
            Diagnostic::error(
                "charter::roster_header",
                format!("the roster's header lacks {}", missing.join(", ")),
            )
            .with_label(header_span, "header line")
            .with_help(format!(
                "the header is `{}`, then any attribute columns",
                roster::KNOWN_COLUMNS.join(",")
            )),
        );
        return Vec::new();
    }
    let mut seen_columns: FxHashMap<&str, Span> = FxHashMap::default();
    for cell in &table.header {
        if let Some(first) = seen_columns.insert(cell.value.as_str(), cell.span) {
            diags.push(
                Diagnostic::error(
                    "charter::roster_header",
                    format!("column `{}` appears twice", cell.value),
                )
                .with_label(cell.span, "again here")
                .with_label(first, "first here"),
            );
            return Vec::new();
        }
    }
    let mut drafts = Vec::with_capacity(table.rows.len());
    for row in &table.rows {
        let cell = |name: &str| {
            column(name)
                .and_then(|i| row.get(i))
                .filter(|c| !c.value.is_empty())
        };
        let Some(key) = cell("key") else {
            let span = row.first().map_or(header_span, |c| c.span);
            diags.push(
                Diagnostic::error("charter::roster_row", "a roster row has no `key`")
                    .with_label(span, "empty key"),
            );
            continue;
        };
        if !is_identifier(&key.value) {
            diags.push(
                Diagnostic::error(
                    "charter::roster_row",
                    format!("`{}` is not a valid customer key", key.value),
                )
                .with_label(
                    key.span,
                    "expected letters, digits and `_`, not starting with a digit",
                ),
            );
            continue;
        }
        let mut draft = Draft::new(key.value.clone(), key.span);
        draft.name = cell("name").map(|c| (c.value.clone(), c.span));
        draft.tier = cell("tier").map(|c| (c.value.clone(), c.span));
        draft.owner = cell("owner").map(|c| (c.value.clone(), c.span));
        draft.addons = cell("addons").map(split_list).unwrap_or_default();
        draft.admins = cell("admins").map(split_list).unwrap_or_default();
        draft.members = cell("members").map(split_list).unwrap_or_default();
        for (i, header) in table.header.iter().enumerate() {
            let Some(c) = row.get(i).filter(|c| !c.value.is_empty()) else {
                continue;
            };
            let name = header.value.as_str();
            if name == "contract_end" {
                match crate::model::time::parse_instant(&c.value) {
                    Some(d) => {
                        draft
                            .attributes
                            .insert(name.to_string(), (Attribute::Date(d), c.span));
                    }
                    None => diags.push(
                        Diagnostic::error(
                            "charter::invalid_date",
                            format!("`{}` is not a valid date", c.value),
                        )
                        .with_label(c.span, "in column `contract_end`")
                        .with_help("write a date as `2027-01-31`"),
                    ),
                }
            } else if !roster::KNOWN_COLUMNS.contains(&name) {
                draft
                    .attributes
                    .insert(name.to_string(), (roster_attribute(&c.value), c.span));
            }
        }
        drafts.push(draft);
    }
    drafts
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `a@x.example; b@x.example` → each item with its span inside the cell.
fn split_list(cell: &Cell) -> Vec<(String, Span)> {
    let mut out = Vec::new();
    let mut offset = 0;
    for part in cell.value.split(';') {
        let trimmed = part.trim();
        let lead = part.len() - part.trim_start().len();
        if !trimmed.is_empty() {
            let start = cell.span.start as usize + offset + lead;
            out.push((
                trimmed.to_string(),
                Span::new(cell.span.file, start, start + trimmed.len()),
            ));
        }
        offset += part.len() + 1;
    }
    out
}

/// A roster cell in an attribute column: a date, a whole number or a boolean when it reads as
/// one, text otherwise.
fn roster_attribute(value: &str) -> Attribute {
    if let Some(d) = crate::model::time::parse_instant(value) {
        return Attribute::Date(d);
    }
    match value {
        "true" => return Attribute::Bool(true),
        "false" => return Attribute::Bool(false),
        _ => {}
    }
    match value.parse::<i64>() {
        Ok(n) => Attribute::Int(n),
        Err(_) => Attribute::Text(value.to_string()),
    }
}

/// `customer `acme`` in messages, written only when a message is.
struct Who<'a>(&'a str);

impl std::fmt::Display for Who<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "customer `{}`", self.0)
    }
}

/// The checks that look across a customer's fields; the customer if it is sound, else why not.
fn finish(
    draft: Draft,
    cx: &Context<'_>,
    reported: &mut FxHashSet<Span>,
    diags: &mut Diagnostics,
) -> Result<Customer, LeftOut> {
    let before = diags.len();
    let who = Who(&draft.key);

    let name = match &draft.name {
        Some((n, span)) if n.trim().is_empty() => {
            diags.push(
                Diagnostic::error(
                    "charter::missing_field",
                    format!("{who} has an empty `name`"),
                )
                .with_label(*span, "empty"),
            );
            None
        }
        Some((n, span)) => match n.chars().find(|c| c.is_control()) {
            Some(c) => {
                diags.push(control_character(&format!("the `name` of {who}"), c, *span));
                None
            }
            None => Some(n.clone()),
        },
        None => {
            diags.push(
                Diagnostic::error("charter::missing_field", format!("{who} has no `name`"))
                    .with_label(draft.key_span, "needs `name = \"…\"`")
                    .with_help("the name is the organization's name on the instance"),
            );
            None
        }
    };

    // The tier, which must exist and be deployable.
    let mut broken_tier = None;
    let tier = match &draft.tier {
        None => {
            diags.push(
                Diagnostic::error("charter::missing_field", format!("{who} has no `tier`"))
                    .with_label(draft.key_span, "needs `tier = …`"),
            );
            None
        }
        Some((t, span)) => match cx.decls.tier(t) {
            Some(decl) if decl.is_abstract => {
                diags.push(
                    Diagnostic::error("charter::abstract_tier", format!("tier `{t}` is abstract"))
                        .with_label(*span, "a deployable tier is needed here")
                        .with_label(decl.name.span, "declared abstract here")
                        .with_help("an abstract tier is only a parent; name one of the tiers that extend it"),
                );
                None
            }
            Some(_) => {
                let sound = cx.resolved.sound(t).map(|tier| (t.clone(), tier));
                if sound.is_none() {
                    broken_tier = Some(LeftOut::TierHasErrors {
                        tier: t.clone(),
                        span: *span,
                    });
                }
                sound
            }
            None => {
                let mut d =
                    Diagnostic::error("charter::unknown_tier", format!("unknown tier `{t}`"))
                        .with_label(*span, "no tier has this name")
                        .with_suggestion(t, cx.decls.tier_names());
                if cx.decls.is_addon(t) {
                    d = d.with_help(format!("`{t}` is an add-on; list it in `addons`"));
                }
                diags.push(d);
                None
            }
        },
    };

    // Add-ons, which must exist, each once.
    let mut addons: Vec<(&Addon, Span)> = Vec::new();
    for (name, span) in &draft.addons {
        match cx.addons.iter().find(|a| a.name == *name) {
            Some(_) if addons.iter().any(|(a, _)| a.name == *name) => diags.push(
                Diagnostic::error(
                    "charter::duplicate_addon",
                    format!("add-on `{name}` is listed twice"),
                )
                .with_label(*span, "listed again here"),
            ),
            Some(addon) => addons.push((addon, *span)),
            None => {
                let mut d =
                    Diagnostic::error("charter::unknown_addon", format!("unknown add-on `{name}`"))
                        .with_label(*span, "no add-on has this name")
                        .with_suggestion(name, cx.addons.iter().map(|a| a.name.as_str()));
                if cx.decls.tier(name).is_some() {
                    d = d.with_help(format!("`{name}` is a tier; set it with `tier = {name}`"));
                }
                diags.push(d);
            }
        }
    }

    // People: an owner, valid addresses, one role each, never the dummy owner.
    let owner = match &draft.owner {
        Some(o) => Some(o.clone()),
        None => {
            diags.push(
                Diagnostic::error("charter::missing_owner", format!("{who} has no `owner`"))
                    .with_label(draft.key_span, "needs `owner = \"…\"`")
                    .with_help("every organization has exactly one owner"),
            );
            None
        }
    };
    let mut roles: FxHashMap<String, (&'static str, Span)> = FxHashMap::default();
    let people = owner
        .iter()
        .map(|(e, s)| (e, *s, "owner"))
        .chain(draft.admins.iter().map(|(e, s)| (e, *s, "admin")))
        .chain(draft.members.iter().map(|(e, s)| (e, *s, "member")));
    for (email, span, role) in people {
        if !looks_like_email(email) {
            diags.push(invalid_email(email, span));
            continue;
        }
        if cx
            .instance
            .dummy_owner
            .as_deref()
            .is_some_and(|d| d.eq_ignore_ascii_case(email))
        {
            diags.push(
                Diagnostic::error(
                    "charter::dummy_owner_as_customer",
                    format!("`{email}` is the instance's dummy owner"),
                )
                .with_label(span, "cannot be one of a customer's people")
                .with_help(
                    "the dummy owner holds deprovisioned organizations; use another address",
                ),
            );
            continue;
        }
        let key = email.to_lowercase();
        if let Some((first_role, first)) = roles.get(&key) {
            let message = if *first_role == role {
                format!("`{email}` is listed twice in {who}")
            } else {
                format!("`{email}` holds two roles in {who}")
            };
            diags.push(
                Diagnostic::error("charter::duplicate_person", message)
                    .with_label(span, format!("as {role} here"))
                    .with_label(*first, format!("as {first_role} here"))
                    .with_help("one address holds one role per customer: owner, admin or member"),
            );
            continue;
        }
        roles.insert(key, (role, span));
    }

    // Teams: their people must be the customer's.
    let mut teams = Vec::new();
    for (team_name, _, people) in &draft.teams {
        let mut members = Vec::new();
        let mut seen: FxHashMap<String, Span> = FxHashMap::default();
        for (email, role, span) in people {
            let key = email.to_lowercase();
            if !roles.contains_key(&key) {
                diags.push(
                    Diagnostic::error(
                        "charter::team_outsider",
                        format!(
                            "`{email}` is in team `{team_name}` but is not one of {who}'s people"
                        ),
                    )
                    .with_label(*span, "not the owner, an admin or a member")
                    .with_help("add the address to `admins` or `members` first"),
                );
                continue;
            }
            if let Some(first) = seen.insert(key, *span) {
                diags.push(
                    Diagnostic::error(
                        "charter::duplicate_person",
                        format!("`{email}` is listed twice in team `{team_name}`"),
                    )
                    .with_label(*span, "listed again here")
                    .with_label(first, "first listed here"),
                );
                continue;
            }
            members.push((email.clone(), *role));
        }
        teams.push(Team {
            name: team_name.clone(),
            roles: members,
        });
    }

    // The license: tier, then add-ons in order, then the override. Most customers change a few
    // values of a tier that is already checked, so only the values they change are computed;
    // the full license with provenance is built only to explain an error.
    if let Some((tier_name, tier)) = &tier {
        conflicting_addons(&addons, &who, diags);
        let changes = changed_values(&tier.license, &addons, &draft.overrides);
        let teams_limit = changes
            .as_ref()
            .ok()
            .and_then(|c| {
                c.iter()
                    .find(|(p, _)| Some(*p) == catalog::index_of("teams"))
            })
            .map(|(_, v)| *v)
            .or_else(|| tier.license.value_of("teams"))
            .and_then(LicenseValue::as_int);
        let mut license = match changes {
            Ok(changes) if touches_dependencies(&changes) => {
                // Flags and parameter dependencies look across values: check them in full.
                Some(tier.license.clone())
            }
            Ok(_) => None,
            Err(()) => Some(tier.license.clone()),
        };
        let mut ok = true;
        if let Some(license) = license.as_mut() {
            for (addon, _) in &addons {
                let origin = Origin::Addon(addon.name.as_str().into());
                for a in &addon.assignments {
                    if let Err(e) = license.apply(&origin, a) {
                        ok = false;
                        let owner = format!("{who} (add-on `{}`)", addon.name);
                        let d = apply_error(&owner, license, a, &e);
                        diags.push(d.with_label(draft.key_span, "for this customer"));
                    }
                }
            }
            for a in &draft.overrides {
                if let Err(e) = license.apply(&Origin::Override, a) {
                    ok = false;
                    diags.push(apply_error(&who.to_string(), license, a, &e));
                }
            }
            if ok {
                let who = || who.to_string();
                check_flags(&who, license, cx.instance, reported, diags);
                check_dependencies(&who, license, draft.key_span, reported, diags);
            }
        }
        if ok
            && let Some(limit) = teams_limit
            && i64::try_from(teams.len()).unwrap_or(i64::MAX) > limit
        {
            let first_over = draft
                .teams
                .get(usize::try_from(limit).unwrap_or(0))
                .map_or(draft.key_span, |(_, span, _)| *span);
            diags.push(
                Diagnostic::error(
                    "charter::too_many_teams",
                    format!(
                        "{who} declares {} teams but its license allows {limit}",
                        teams.len()
                    ),
                )
                .with_label(first_over, "one team too many")
                .with_help(format!(
                    "tier `{tier_name}` sets `teams`; raise it with an add-on or `override`"
                )),
            );
        }
    }

    if let Some(reason) = broken_tier {
        return Err(reason);
    }
    if diags.has_errors_since(before) {
        return Err(LeftOut::OwnErrors);
    }
    let (Some(name), Some((tier, _)), Some((owner, _))) = (name, tier, owner) else {
        return Err(LeftOut::OwnErrors);
    };
    Ok(Customer {
        key: draft.key,
        name,
        tier,
        addons: addons.iter().map(|(a, _)| a.name.clone()).collect(),
        owner,
        admins: draft.admins.into_iter().map(|(e, _)| e).collect(),
        members: draft.members.into_iter().map(|(e, _)| e).collect(),
        attributes: draft
            .attributes
            .into_iter()
            .map(|(k, (v, _))| (k, v))
            .collect(),
        overrides: draft.overrides,
        teams,
        span: draft.key_span,
    })
}

/// The values a customer's add-ons and override change, in order, or `Err` if one of them
/// cannot be applied (the caller then applies them in full to explain why).
fn changed_values(
    tier: &License,
    addons: &[(&Addon, Span)],
    overrides: &[Assignment],
) -> Result<Vec<(usize, LicenseValue)>, ()> {
    let mut changes: Vec<(usize, LicenseValue)> = Vec::new();
    let assignments = addons
        .iter()
        .flat_map(|(a, _)| a.assignments.iter())
        .chain(overrides);
    for a in assignments {
        let param = CATALOG.get(a.param).ok_or(())?;
        let current = match changes.iter().find(|(p, _)| *p == a.param) {
            Some((_, v)) => Some(*v),
            None => tier.value(a.param),
        };
        let result = a.result(param, current).map_err(|_| ())?;
        match changes.iter_mut().find(|(p, _)| *p == a.param) {
            Some(slot) => slot.1 = result,
            None => changes.push((a.param, result)),
        }
    }
    Ok(changes)
}

/// Whether changed values include one that needs a flag or another parameter, or that another
/// parameter needs.
fn touches_dependencies(changes: &[(usize, LicenseValue)]) -> bool {
    changes.iter().any(|(p, _)| {
        CATALOG.get(*p).is_some_and(|param| {
            !param.needs_flags.is_empty()
                || param.needs_parameter.is_some()
                || CATALOG
                    .iter()
                    .any(|q| q.needs_parameter == Some(param.name))
        })
    })
}

/// Two add-ons that both `=` one parameter to different values conflict for a customer that
/// has both.
fn conflicting_addons(addons: &[(&Addon, Span)], who: &Who<'_>, diags: &mut Diagnostics) {
    let mut sets: FxHashMap<usize, (&str, LicenseValue, Span)> = FxHashMap::default();
    for (addon, span) in addons {
        for a in addon.assignments.iter().filter(|a| a.op == AssignOp::Set) {
            match sets.get(&a.param) {
                Some((first, value, first_span)) if *value != a.operand => {
                    let param = CATALOG.get(a.param).map_or("", |p| p.name);
                    diags.push(
                        Diagnostic::error(
                            "charter::conflicting_addons",
                            format!("add-ons `{first}` and `{}` set `{param}` to different values", addon.name),
                        )
                        .with_label(*span, format!("`{}` sets {}", addon.name, shown(a.param, a.operand)))
                        .with_label(*first_span, format!("`{first}` sets {}", shown(a.param, *value)))
                        .with_help(format!(
                            "{who} cannot have both; drop one, or settle the value with `override {{ {param} = … }}`"
                        )),
                    );
                }
                Some(_) => {}
                None => {
                    sets.insert(a.param, (addon.name.as_str(), a.operand, *span));
                }
            }
        }
    }
}

fn shown(param: usize, value: LicenseValue) -> String {
    CATALOG
        .get(param)
        .map_or_else(String::new, |p| value.human(p))
}

/// Suggests a customer key for an unknown one.
pub fn customers_suggestion<'a>(name: &str, customers: &'a [Customer]) -> Option<&'a str> {
    suggest(name, customers.iter().map(|c| c.key.as_str()))
}

/// A name that holds a control character (NUL, ESC, CR, …): it would reach Make and every
/// terminal that shows it.
fn control_character(what: &str, c: char, span: Span) -> Diagnostic {
    Diagnostic::error(
        "charter::control_character",
        format!(
            "{what} contains the control character `{}`",
            c.escape_default()
        ),
    )
    .with_label(span, "a name is printable text")
    .with_help("remove the character (an export may have copied it from another program)")
}
