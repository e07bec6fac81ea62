//! `staff` blocks: the reseller's own people, their instance-level role (resolved by name on the
//! instance when planning) and their app-developer options (manual steps, since the admin API
//! cannot set them).

use rustc_hash::{FxHashMap, FxHashSet};

use super::{Declarations, FieldRules, invalid_email, looks_like_email, settings_fields, values};
use crate::ast::ValueKind;
use crate::diagnostic::{Diagnostic, Diagnostics};
use crate::model::customer::{AppOption, Customer, Staff};
use crate::model::program::InstanceSettings;
use crate::source::Span;

const FIELDS: &[&str] = &["name", "role", "options"];

pub(super) fn staff(
    decls: &Declarations<'_>,
    customers: &[Customer],
    instance: &InstanceSettings,
    diags: &mut Diagnostics,
) -> Vec<Staff> {
    if decls.staff.is_empty() {
        return Vec::new();
    }
    // Every customer address, for "instance roles are for the reseller's own people".
    let customer_of: FxHashMap<String, &str> = customers
        .iter()
        .flat_map(|c| {
            std::iter::once(&c.owner)
                .chain(&c.admins)
                .chain(&c.members)
                .map(move |e| (e.to_lowercase(), c.key.as_str()))
        })
        .collect();
    let mut seen: FxHashMap<String, Span> = FxHashMap::default();
    let mut out = Vec::new();
    for block in &decls.staff {
        let email = &block.email.value;
        let span = block.email.span;
        if !looks_like_email(email) {
            diags.push(invalid_email(email, span));
            continue;
        }
        let key = email.to_lowercase();
        if let Some(first) = seen.get(&key) {
            diags.push(
                Diagnostic::error(
                    "charter::duplicate_staff",
                    format!("`{email}` is declared as staff twice"),
                )
                .with_label(span, "declared again here")
                .with_label(*first, "first declared here"),
            );
            continue;
        }
        seen.insert(key.clone(), span);
        if let Some(customer) = customer_of.get(&key) {
            diags.push(
                Diagnostic::error(
                    "charter::staff_is_customer",
                    format!("`{email}` is one of customer `{customer}`'s people"),
                )
                .with_label(span, "staff with an instance role")
                .with_help("instance roles are for the reseller's own people; use another address"),
            );
            continue;
        }
        if instance
            .dummy_owner
            .as_deref()
            .is_some_and(|d| d.eq_ignore_ascii_case(email))
        {
            diags.push(
                Diagnostic::error(
                    "charter::staff_is_dummy_owner",
                    format!("`{email}` is the instance's dummy owner"),
                )
                .with_label(span, "cannot also be staff"),
            );
            continue;
        }
        if let Some(staff) = one(block, diags) {
            out.push(staff);
        }
    }
    out
}

fn one(block: &crate::ast::Staff, diags: &mut Diagnostics) -> Option<Staff> {
    let before = diags.len();
    let owner = format!("staff `{}`", block.email.value);
    let mut staff = Staff {
        email: block.email.value.clone(),
        name: None,
        role: None,
        options: Vec::new(),
        span: block.email.span,
    };
    let rules = FieldRules {
        fields: FIELDS,
        owner: &owner,
        what: "a staff field",
        help: "staff take `name`, `role` and `options`",
    };
    for a in settings_fields(&block.body, &rules, diags) {
        let field = a.field.name.as_str();
        match (field, &a.value.kind) {
            ("name", ValueKind::String(s)) => staff.name = Some(s.clone()),
            ("role", ValueKind::String(s)) if !s.trim().is_empty() => {
                staff.role = Some(s.clone());
            }
            ("options", ValueKind::List(items)) => {
                let mut listed = FxHashSet::default();
                for item in items {
                    let ValueKind::Word(word) = &item.kind else {
                        diags.push(
                            Diagnostic::error("charter::wrong_kind", "an option is a word")
                                .with_label(item.span, "expected an option such as `private_apps`"),
                        );
                        continue;
                    };
                    let Some(option) = AppOption::from_word(word) else {
                        diags.push(
                            Diagnostic::error(
                                "charter::unknown_option",
                                format!("unknown option `{word}`"),
                            )
                            .with_label(item.span, "not an Apps and Features option")
                            .with_suggestion(word, AppOption::ALL.iter().map(|o| o.word())),
                        );
                        continue;
                    };
                    if !listed.insert(option) {
                        diags.push(
                            Diagnostic::warning(
                                "charter::duplicate_option",
                                format!("option `{word}` is listed twice"),
                            )
                            .with_label(item.span, "listed again here"),
                        );
                        continue;
                    }
                    if let Some(warning) = option.warning() {
                        diags.push(
                            Diagnostic::warning(
                                "charter::risky_option",
                                format!("option `{word}` for `{}`", staff.email),
                            )
                            .with_label(item.span, warning),
                        );
                    }
                    staff.options.push(option);
                }
            }
            (_, _) => {
                let wanted = match field {
                    "options" => "a list of options",
                    "role" => "a role's name in quotes, such as `\"D1\"`",
                    _ => "a string in quotes",
                };
                diags.push(
                    Diagnostic::error(
                        "charter::wrong_kind",
                        format!(
                            "`{field}` takes {wanted}, not {}",
                            values::describe_value(&a.value)
                        ),
                    )
                    .with_label(
                        a.value.span,
                        format!("this is {}", values::describe_value(&a.value)),
                    ),
                );
            }
        }
    }
    (!diags.has_errors_since(before)).then_some(staff)
}
