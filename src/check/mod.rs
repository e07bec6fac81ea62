//! Checking: from the AST of a whole policy set to a [`Program`], with every diagnostic.
//!
//! The checker never stops at the first problem: each declaration is checked as far as it can
//! be, broken parts are left out of what follows (so one mistake does not cascade into many
//! messages; where a later check meets what was left out, it says what it follows from), and
//! all diagnostics come back together, sorted by the stage that found them — root causes
//! first — and then by position. It is pure: no IO,
//! no clock.

mod customers;
pub(crate) mod expr;
pub use customers::customers_suggestion;
mod lifecycle;
pub(crate) mod rules;
mod staff;
mod tests;
mod tiers;
pub(crate) mod values;

use std::collections::BTreeMap;

use rustc_hash::{FxHashMap, FxHashSet};

use crate::ast::{self, ValueKind};
use crate::diagnostic::{Diagnostic, Diagnostics, Stage};
use crate::model::catalog::{self, CATALOG, KNOWN_FLAGS};
use crate::model::license::Assignment;
use crate::model::program::{Addon, InstanceSettings, Program};
use crate::source::{FileId, Span};

/// The result of checking: the program when there were no errors, and every diagnostic
/// (warnings included) either way.
#[derive(Debug)]
pub struct Checked {
    pub program: Option<Program>,
    pub diagnostics: Diagnostics,
}

/// Checks a parsed policy set.
pub fn check(files: &[(FileId, ast::File)]) -> Checked {
    check_with_rosters(files, &[])
}

/// Checks a parsed policy set with its rosters, each given with the span of the `roster`
/// declaration that names it.
pub fn check_with_rosters(
    files: &[(FileId, ast::File)],
    rosters: &[(Span, crate::syntax::roster::Roster)],
) -> Checked {
    let mut diags = Diagnostics::default();
    let (decls, instance, groups) = diags.in_stage(Stage::Declarations, |diags| {
        let decls = Declarations::collect(files, diags);
        let instance = instance_settings(&decls, diags);
        let groups = groups(&decls, diags);
        (decls, instance, groups)
    });

    let (tier_blocks, with_errors, addons) = diags.in_stage(Stage::Values, |diags| {
        let (tier_blocks, with_errors): (Vec<Vec<Assignment>>, Vec<bool>) = decls
            .tiers
            .iter()
            .map(|t| {
                let before = diags.len();
                let block = assignments(
                    &t.body,
                    &|| format!("tier `{}`", t.name.name),
                    &groups,
                    diags,
                );
                (block, diags.0.iter().skip(before).any(Diagnostic::is_error))
            })
            .unzip();
        let addons: Vec<Addon> = decls
            .addons
            .iter()
            .map(|a| Addon {
                name: a.name.name.clone(),
                assignments: assignments(
                    &a.body,
                    &|| format!("add-on `{}`", a.name.name),
                    &groups,
                    diags,
                ),
                span: a.name.span,
            })
            .collect();
        (tier_blocks, with_errors, addons)
    });

    let resolved = diags.in_stage(Stage::Tiers, |diags| {
        tiers::resolve(&decls, tier_blocks, &with_errors, &instance, diags)
    });
    let (ladders, rules) = diags.in_stage(Stage::Rules, |diags| {
        (
            rules::ladders(&decls, &resolved, diags),
            rules::asserts(&decls, &resolved, diags),
        )
    });
    let customers::Checked {
        sound: customers,
        left_out,
    } = diags.in_stage(Stage::Customers, |diags| {
        customers::customers(
            &customers::Context {
                decls: &decls,
                resolved: &resolved,
                addons: &addons,
                instance: &instance,
                groups: &groups,
            },
            files,
            rosters,
            diags,
        )
    });
    let attributes = attribute_types(&customers);
    let lifecycle = diags.in_stage(Stage::Lifecycle, |diags| {
        lifecycle::lifecycle(
            &decls.lifecycles,
            &instance,
            &groups,
            &attributes,
            &customers,
            diags,
        )
    });
    let tests = diags.in_stage(Stage::Tests, |diags| {
        tests::tests(
            &tests::Context {
                decls: &decls,
                resolved: &resolved,
                customers: &customers,
                left_out: &left_out,
                lifecycle: &lifecycle,
                attributes: &attributes,
            },
            diags,
        )
    });
    let staff = diags.in_stage(Stage::Staff, |diags| {
        staff::staff(&decls, &customers, &instance, diags)
    });

    diags.sort();
    let program = (!diags.has_errors()).then(|| {
        let mut program = Program {
            instance,
            tiers: resolved.tiers,
            addons,
            groups,
            ladders,
            rules,
            customers,
            lifecycle,
            tests,
            staff,
            ..Program::default()
        };
        program.index();
        program
    });
    Checked {
        program,
        diagnostics: diags,
    }
}

/// Every declaration of the policy set by kind, with duplicates reported and left out.
pub(crate) struct Declarations<'a> {
    pub(crate) instance: Option<&'a ast::Instance>,
    pub(crate) tiers: Vec<&'a ast::Tier>,
    pub(crate) addons: Vec<&'a ast::Addon>,
    pub(crate) groups: Vec<&'a ast::Group>,
    pub(crate) ladders: Vec<&'a ast::Ladder>,
    pub(crate) asserts: Vec<&'a ast::Assert>,
    pub(crate) lifecycles: Vec<&'a ast::Lifecycle>,
    pub(crate) tests: Vec<&'a ast::Test>,
    pub(crate) staff: Vec<&'a ast::Staff>,
    tier_index: FxHashMap<&'a str, usize>,
    addon_names: FxHashSet<&'a str>,
}

impl<'a> Declarations<'a> {
    fn collect(files: &'a [(FileId, ast::File)], diags: &mut Diagnostics) -> Declarations<'a> {
        let mut decls = Declarations {
            instance: None,
            tiers: Vec::new(),
            addons: Vec::new(),
            groups: Vec::new(),
            ladders: Vec::new(),
            asserts: Vec::new(),
            lifecycles: Vec::new(),
            tests: Vec::new(),
            staff: Vec::new(),
            tier_index: FxHashMap::default(),
            addon_names: FxHashSet::default(),
        };
        // Tiers and add-ons share one namespace: a customer's `addons` and a tier's `extends`
        // would otherwise be ambiguous in messages.
        let mut names: FxHashMap<&str, (Span, &'static str)> = FxHashMap::default();
        let mut group_names: FxHashMap<&str, Span> = FxHashMap::default();
        for (_, file) in files {
            for item in &file.items {
                match item {
                    ast::Item::Instance(i) => match decls.instance {
                        Some(first) => diags.push(
                            Diagnostic::error(
                                "charter::duplicate_definition",
                                "more than one `instance` block",
                            )
                            .with_label(i.keyword, "second `instance` block")
                            .with_label(first.keyword, "first `instance` block")
                            .with_help("merge them into one block"),
                        ),
                        None => decls.instance = Some(i),
                    },
                    ast::Item::Tier(t) => {
                        if define(&mut names, &t.name, "tier", diags) {
                            decls.tiers.push(t);
                        }
                    }
                    ast::Item::Addon(a) => {
                        if define(&mut names, &a.name, "add-on", diags) {
                            decls.addons.push(a);
                        }
                    }
                    ast::Item::Group(g) => {
                        if let Some(first) = group_names.get(g.name.name.as_str()) {
                            diags.push(duplicate(&g.name, *first, "group", "group"));
                        } else {
                            group_names.insert(&g.name.name, g.name.span);
                            decls.groups.push(g);
                        }
                    }
                    ast::Item::Ladder(l) => decls.ladders.push(l),
                    ast::Item::Assert(a) => decls.asserts.push(a),
                    ast::Item::Lifecycle(l) => decls.lifecycles.push(l),
                    ast::Item::Test(t) => decls.tests.push(t),
                    ast::Item::Staff(s) => decls.staff.push(s),
                    // Checked in order, with the rosters, by `customers`.
                    ast::Item::Customer(_) | ast::Item::Roster(_) => {}
                }
            }
        }
        decls.tier_index = decls
            .tiers
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.name.as_str(), i))
            .collect();
        decls.addon_names = decls.addons.iter().map(|a| a.name.name.as_str()).collect();
        decls
    }

    pub(crate) fn tier(&self, name: &str) -> Option<&'a ast::Tier> {
        self.tier_index
            .get(name)
            .and_then(|&i| self.tiers.get(i).copied())
    }

    pub(crate) fn tier_names(&self) -> impl Iterator<Item = &'a str> + '_ {
        self.tiers.iter().map(|t| t.name.name.as_str())
    }

    pub(crate) fn is_addon(&self, name: &str) -> bool {
        self.addon_names.contains(name)
    }
}

/// Records a tier or add-on name; reports and returns false when it is taken.
fn define<'a>(
    names: &mut FxHashMap<&'a str, (Span, &'static str)>,
    name: &'a ast::Ident,
    kind: &'static str,
    diags: &mut Diagnostics,
) -> bool {
    match names.get(name.name.as_str()) {
        Some(&(first, first_kind)) => {
            diags.push(duplicate(name, first, kind, first_kind));
            false
        }
        None => {
            names.insert(&name.name, (name.span, kind));
            true
        }
    }
}

fn duplicate(name: &ast::Ident, first: Span, kind: &str, first_kind: &str) -> Diagnostic {
    let message = if kind == first_kind {
        format!("{kind} `{}` is defined twice", name.name)
    } else {
        format!("`{}` is already the name of a {first_kind}", name.name)
    };
    let d = Diagnostic::error("charter::duplicate_definition", message)
        .with_label(name.span, "defined again here")
        .with_label(first, "first defined here");
    if kind == "group" {
        d
    } else {
        d.with_help("tiers and add-ons share one namespace across all files of the policy set")
    }
}

/// The `instance` block: its flags and dummy owner.
fn instance_settings(decls: &Declarations<'_>, diags: &mut Diagnostics) -> InstanceSettings {
    let mut settings = InstanceSettings::default();
    let Some(instance) = decls.instance else {
        return settings;
    };
    let fields = settings_fields(
        &instance.body,
        &FieldRules {
            fields: &["flags", "dummy_owner"],
            owner: "the `instance` block",
            what: "an instance setting",
            help: "the instance block takes `flags` and `dummy_owner`",
        },
        diags,
    );
    for a in fields {
        let field = a.field.name.as_str();
        match field {
            "flags" => settings.flags = flags(&a.value, diags),
            _ => match &a.value.kind {
                ValueKind::String(s) if looks_like_email(s) => {
                    settings.dummy_owner = Some(s.clone());
                }
                ValueKind::String(s) => diags.push(invalid_email(s, a.value.span)),
                _ => diags.push(
                    Diagnostic::error(
                        "charter::wrong_kind",
                        format!(
                            "`dummy_owner` takes an email address in quotes, not {}",
                            values::describe_value(&a.value)
                        ),
                    )
                    .with_label(a.value.span, "expected a string"),
                ),
            },
        }
    }
    settings
}

/// The fixed fields a block of settings may hold, and how to speak of them.
pub(crate) struct FieldRules<'a> {
    pub(crate) fields: &'a [&'a str],
    /// `the `instance` block`, `staff `dana@…``.
    pub(crate) owner: &'a str,
    /// `an instance setting`, for the label under an unknown field.
    pub(crate) what: &'a str,
    pub(crate) help: &'a str,
}

/// The assignments of a block of settings that name a known field, once, with `=`; the others
/// are reported.
pub(crate) fn settings_fields<'b>(
    block: &'b ast::Block,
    rules: &FieldRules<'_>,
    diags: &mut Diagnostics,
) -> Vec<&'b ast::Assignment> {
    let mut seen: FxHashMap<&str, Span> = FxHashMap::default();
    let mut out = Vec::new();
    for a in &block.assignments {
        let field = a.field.name.as_str();
        if !rules.fields.contains(&field) {
            diags.push(
                Diagnostic::error(
                    "charter::unknown_field",
                    format!("unknown field `{field}` in {}", rules.owner),
                )
                .with_label(a.field.span, format!("not {}", rules.what))
                .with_suggestion(field, rules.fields.iter().copied())
                .with_help(rules.help),
            );
            continue;
        }
        if let Some(first) = seen.insert(field, a.field.span) {
            diags.push(assigned_twice(&a.field, first, rules.owner));
            continue;
        }
        if a.op != ast::AssignOp::Set {
            diags.push(
                Diagnostic::error(
                    "charter::invalid_operator",
                    format!("`{}` cannot be used on `{field}`", a.op.as_str()),
                )
                .with_label(a.op_span, "use `=`"),
            );
            continue;
        }
        out.push(a);
    }
    out
}

fn flags(value: &ast::Value, diags: &mut Diagnostics) -> Vec<String> {
    let ValueKind::List(items) = &value.kind else {
        diags.push(
            Diagnostic::error(
                "charter::wrong_kind",
                format!(
                    "`flags` takes a list of flag names, not {}",
                    values::describe_value(value)
                ),
            )
            .with_label(value.span, "expected a list such as `[feature_variables]`"),
        );
        return Vec::new();
    };
    let mut flags = Vec::new();
    for item in items {
        let name = match &item.kind {
            ValueKind::Word(w) | ValueKind::String(w) => w,
            _ => {
                diags.push(
                    Diagnostic::error("charter::wrong_kind", "a flag is a name")
                        .with_label(item.span, "expected a flag name"),
                );
                continue;
            }
        };
        if !KNOWN_FLAGS.contains(&name.as_str()) {
            diags.push(
                Diagnostic::warning(
                    "charter::unknown_flag",
                    format!("flag `{name}` is not used by any license parameter"),
                )
                .with_label(item.span, "unknown flag")
                .with_suggestion(name, KNOWN_FLAGS.iter().copied()),
            );
        }
        if flags.contains(name) {
            diags.push(
                Diagnostic::warning(
                    "charter::duplicate_flag",
                    format!("flag `{name}` is listed twice"),
                )
                .with_label(item.span, "listed again here"),
            );
            continue;
        }
        flags.push(name.clone());
    }
    flags
}

/// A simple shape check: `local@domain.tld`, no spaces, one `@`.
pub(crate) fn looks_like_email(s: &str) -> bool {
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
}

pub(crate) fn invalid_email(s: &str, span: Span) -> Diagnostic {
    Diagnostic::error(
        "charter::invalid_email",
        format!("`{s}` is not an email address"),
    )
    .with_label(span, "expected an address like `jane@acme.example`")
}

/// Groups by name, the built-in `consumables` included unless declared.
fn groups(decls: &Declarations<'_>, diags: &mut Diagnostics) -> BTreeMap<String, Vec<usize>> {
    let mut groups = BTreeMap::new();
    for group in &decls.groups {
        if catalog::lookup(&group.name.name).is_some() {
            diags.push(
                Diagnostic::error(
                    "charter::duplicate_definition",
                    format!(
                        "group `{}` has the name of a license parameter",
                        group.name.name
                    ),
                )
                .with_label(group.name.span, "also a parameter")
                .with_help("a `with` overlay could not tell them apart; rename the group"),
            );
            continue;
        }
        let mut members: Vec<usize> = Vec::new();
        for member in &group.members {
            match catalog::index_of(&member.name) {
                Some(i) if members.contains(&i) => diags.push(
                    Diagnostic::warning(
                        "charter::duplicate_member",
                        format!(
                            "`{}` is listed twice in group `{}`",
                            member.name, group.name.name
                        ),
                    )
                    .with_label(member.span, "listed again here"),
                ),
                Some(i) => members.push(i),
                None => diags.push(unknown_parameter(member)),
            }
        }
        groups.insert(group.name.name.clone(), members);
    }
    groups.entry("consumables".to_string()).or_insert_with(|| {
        ["operations", "transfer"]
            .iter()
            .filter_map(|n| catalog::index_of(n))
            .collect()
    });
    groups
}

pub(crate) fn unknown_parameter(name: &ast::Ident) -> Diagnostic {
    Diagnostic::error(
        "charter::unknown_parameter",
        format!("unknown license parameter `{}`", name.name),
    )
    .with_label(name.span, "not a license parameter")
    .with_suggestion(&name.name, catalog::names())
}

fn assigned_twice(field: &ast::Ident, first: Span, owner: &str) -> Diagnostic {
    Diagnostic::error(
        "charter::duplicate_assignment",
        format!("`{}` is assigned twice in {owner}", field.name),
    )
    .with_label(field.span, "assigned again here")
    .with_label(first, "first assigned here")
    .with_help("keep one; to adjust an inherited value use `+=`, `-=` or `*=` once")
}

/// The assignments of a tier or add-on block, checked against the catalog. Broken ones are
/// reported and left out. `owner` names the block in messages (only made when one is needed:
/// a policy set may have a hundred thousand blocks and no error).
fn assignments(
    block: &ast::Block,
    owner: &dyn Fn() -> String,
    groups: &BTreeMap<String, Vec<usize>>,
    diags: &mut Diagnostics,
) -> Vec<Assignment> {
    let mut out = Vec::with_capacity(block.assignments.len());
    // Where each parameter was first assigned in this block, by catalog index.
    let mut seen: [Option<Span>; CATALOG.len()] = [None; CATALOG.len()];
    for a in &block.assignments {
        let Some(index) = catalog::index_of(&a.field.name) else {
            let d = if groups.contains_key(&a.field.name) {
                Diagnostic::error(
                    "charter::unknown_parameter",
                    format!("`{}` is a group, not a license parameter", a.field.name),
                )
                .with_label(a.field.span, "a group cannot be assigned here")
                .with_help("groups are set in a lifecycle state's `with` overlay; here assign each parameter")
            } else {
                unknown_parameter(&a.field)
            };
            diags.push(d);
            continue;
        };
        let Some(first_seen) = seen.get_mut(index) else {
            continue;
        };
        if let Some(first) = *first_seen {
            diags.push(assigned_twice(&a.field, first, &owner()));
            continue;
        }
        *first_seen = Some(a.field.span);
        let Some(param) = CATALOG.get(index) else {
            continue;
        };
        if let Some(operand) = values::operand(param, a.op, &a.value, diags) {
            out.push(Assignment {
                param: index,
                op: a.op,
                operand,
                span: a.span,
            });
        }
    }
    out
}

/// The type of every customer attribute, from its first value; `contract_end` is always a date.
fn attribute_types(customers: &[crate::model::customer::Customer]) -> BTreeMap<String, expr::Type> {
    use crate::model::customer::Attribute;
    let mut types = BTreeMap::from([("contract_end".to_string(), expr::Type::Date)]);
    for customer in customers {
        for (name, value) in &customer.attributes {
            types.entry(name.clone()).or_insert(match value {
                Attribute::Text(_) => expr::Type::Text,
                Attribute::Date(_) => expr::Type::Date,
                Attribute::Int(_) => expr::Type::Int,
                Attribute::Bool(_) => expr::Type::Bool,
            });
        }
    }
    types
}
