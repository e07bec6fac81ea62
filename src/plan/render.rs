//! Plans for people: Terraform-like lines (`+` create, `~` change with `old → new` in human
//! units, `!` manual), grouped by customer and staff member, and a summary line.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::reading::{Reading, Refresh};
use super::{Action, Change, Plan, Step};
use crate::model::catalog::{self, Kind};
use crate::model::license::LicenseValue;
use crate::model::time::format_instant;

/// The whole plan as text, ending with the summary line.
pub fn render_text(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Plan for {} at {}\n",
        plan.instance,
        format_instant(plan.at)
    );
    if let Some(reading) = &plan.reading {
        let _ = writeln!(out, "{}\n", describe_reading(reading));
    }
    let mut by_subject: BTreeMap<&str, Vec<&Step>> = BTreeMap::new();
    for step in &plan.steps {
        by_subject
            .entry(step.subject.as_str())
            .or_default()
            .push(step);
    }
    let mut shown = false;
    for customer in &plan.customers {
        let steps = by_subject.remove(customer.key.as_str()).unwrap_or_default();
        if steps.is_empty() && customer.transitions.is_empty() {
            continue;
        }
        shown = true;
        let state = match (&customer.recorded, customer.transitions.first()) {
            (_, Some(first)) => format!("{} → {}", first.from, customer.state),
            (Some(recorded), None) if *recorded != customer.state => {
                format!("{recorded} → {}", customer.state)
            }
            _ => customer.state.clone(),
        };
        let adopt = if customer.adopt {
            format!(
                ", adopting organization {} found by name",
                customer.organization.unwrap_or_default()
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "customer {} (\"{}\"): {state}{adopt}",
            customer.key, customer.name
        );
        for t in &customer.transitions {
            let _ = writeln!(
                out,
                "  transition {}: {} → {}, due {} ({})",
                t.name,
                t.from,
                t.to,
                format_instant(t.due),
                t.cause
            );
        }
        for step in steps {
            render_step(&mut out, step);
        }
        out.push('\n');
    }
    for staff in &plan.staff {
        let subject = format!("staff:{}", staff.email);
        let steps = by_subject.remove(subject.as_str()).unwrap_or_default();
        if steps.is_empty() {
            continue;
        }
        shown = true;
        let what = if staff.snapshot.is_none() {
            " (removed from the policy set)"
        } else {
            ""
        };
        let _ = writeln!(out, "staff {}{what}", staff.email);
        for step in steps {
            render_step(&mut out, step);
        }
        out.push('\n');
    }
    // Anything else (never expected) is still shown.
    for (subject, steps) in by_subject {
        shown = true;
        let _ = writeln!(out, "{subject}");
        for step in steps {
            render_step(&mut out, step);
        }
        out.push('\n');
    }
    if !shown {
        out.push_str("No changes: the instance is in the state the policy set describes.\n\n");
    }
    for warning in &plan.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    out.push_str(&summary(plan));
    out.push('\n');
    out
}

fn render_step(out: &mut String, step: &Step) {
    let drift = if step.drift {
        "   # drift: changed by hand on the instance"
    } else {
        ""
    };
    match &step.action {
        Action::CreateUser { email, name } => {
            let _ = writeln!(out, "  + user {email} (\"{name}\", invited by e-mail)");
        }
        Action::CreateOrganization {
            organization,
            owner,
            ..
        } => {
            let _ = writeln!(
                out,
                "  + organization \"{}\" owned by {}, with its license",
                organization.name, owner.email
            );
        }
        Action::SetLicense {
            organization,
            changes,
            ..
        } => {
            let _ = writeln!(out, "  ~ license of {}{drift}", organization.label());
            for change in changes {
                let _ = writeln!(out, "      {}", change_line(change));
            }
        }
        Action::SetOrganizationRole {
            organization,
            user,
            role,
            from,
        } => match from {
            None => {
                let _ = writeln!(
                    out,
                    "  + {} joins {} as {}",
                    user.email,
                    organization.label(),
                    role.name
                );
            }
            Some(from) => {
                let _ = writeln!(
                    out,
                    "  ~ {} in {}: {from} → {}{drift}",
                    user.email,
                    organization.label(),
                    role.name
                );
            }
        },
        Action::RemoveFromOrganization { organization, user } => {
            let _ = writeln!(
                out,
                "  - {} leaves {} (a member only through charter's create; the policy does not name them)",
                user.email,
                organization.label()
            );
        }
        Action::TransferOwnership {
            organization,
            user,
            from,
        } => {
            let _ = writeln!(
                out,
                "  ~ owner of {}: {} → {}{drift}",
                organization.label(),
                from.as_deref().unwrap_or("nobody"),
                user.email
            );
        }
        Action::CreateTeam { team, admin, .. } => {
            let admin = admin
                .as_ref()
                .map(|a| format!(" with {} as Team Admin", a.email))
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "  + team \"{}\" in {}{admin}",
                team.name,
                team.organization.label()
            );
        }
        Action::SetTeamRole {
            team,
            user,
            role,
            from,
        } => match from {
            None => {
                let _ = writeln!(
                    out,
                    "  + {} joins team \"{}\" of {} as {}",
                    user.email,
                    team.name,
                    team.organization.label(),
                    role.name
                );
            }
            Some(from) => {
                let _ = writeln!(
                    out,
                    "  ~ {} in team \"{}\" of {}: {from} → {}{drift}",
                    user.email,
                    team.name,
                    team.organization.label(),
                    role.name
                );
            }
        },
        Action::SetInstanceRole { user, role, from } => {
            let _ = writeln!(
                out,
                "  ~ instance role of {}: {} → {}{drift}",
                user.email,
                from.as_deref().unwrap_or("none"),
                role.as_ref().map_or("none", |r| r.name.as_str())
            );
        }
        Action::Manual { what, how } => {
            let _ = writeln!(out, "  ! {what}\n      by hand: {how}");
        }
    }
}

/// `operations: 40,000 → 0`, in the units a person writes.
fn change_line(change: &Change) -> String {
    let from = change
        .from
        .as_ref()
        .map_or_else(|| "(missing)".to_owned(), |v| human(change.key.name(), v));
    let drift = if change.drift {
        "   # drift: changed by hand"
    } else {
        ""
    };
    format!(
        "{}: {from} → {}{drift}",
        change.key.name(),
        human(change.key.name(), &change.to)
    )
}

/// A wire value in human units, when the key and the value are known; the JSON otherwise.
fn human(key: &str, value: &serde_json::Value) -> String {
    let Some(parameter) = catalog::lookup(key) else {
        return value.to_string();
    };
    match (value, parameter.kind) {
        (serde_json::Value::Number(n), Kind::Integer | Kind::Size | Kind::Duration) => n
            .as_i64()
            .map_or_else(|| n.to_string(), |n| LicenseValue::Int(n).human(parameter)),
        (serde_json::Value::Bool(b), _) => b.to_string(),
        (serde_json::Value::String(s), Kind::Enum(variants)) => variants
            .iter()
            .find(|v| v.wire == s)
            .map_or_else(|| format!("{s:?}"), |v| v.word.to_owned()),
        _ => value.to_string(),
    }
}

/// `Plan: 3 to create, 5 to change, 1 manual step (8 API calls); 2 transitions to record.`
pub fn summary(plan: &Plan) -> String {
    let create = plan.steps.iter().filter(|s| s.action.is_create()).count();
    let manual = plan.steps.iter().filter(|s| !s.action.is_call()).count();
    let change = plan.steps.len() - create - manual;
    let drift = plan.steps.iter().filter(|s| s.drift).count()
        + plan
            .steps
            .iter()
            .filter(|s| !s.drift)
            .filter(|s| match &s.action {
                Action::SetLicense { changes, .. } => changes.iter().any(|c| c.drift),
                _ => false,
            })
            .count();
    let transitions: usize = plan.customers.iter().map(|c| c.transitions.len()).sum();
    let mut text = format!(
        "Plan: {create} to create, {change} to change, {} ({} API {})",
        plural(manual, "manual step"),
        plan.calls(),
        if plan.calls() == 1 { "call" } else { "calls" }
    );
    if drift > 0 {
        let _ = write!(text, ", {} correcting drift", plural(drift, "step"));
    }
    if transitions > 0 {
        let _ = write!(text, "; {} to record", plural(transitions, "transition"));
    }
    text.push('.');
    text
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// What a plan read and what it cost, in a sentence or two: the calls and the minutes of the
/// rate limit they used, then whose memberships were read now and whose come from the state.
pub fn describe_reading(reading: &Reading) -> String {
    let calls = if reading.calls == 1 { "call" } else { "calls" };
    let minutes = match reading.rate_limit {
        Some(limit) => format!(
            "{:.1} min of the rate limit of {limit} a minute",
            reading.minutes(limit)
        ),
        None => format!(
            "{:.1} min at Make's lowest rate limit, 60 a minute",
            reading.minutes(60)
        ),
    };
    let mut text = format!("Read: {} API {calls} ({minutes}).", reading.calls);
    let organizations = |n: usize| {
        if n == 1 {
            "1 organization".to_owned()
        } else {
            format!("{n} organizations")
        }
    };
    let oldest = reading
        .oldest_verified_at
        .map(|at| format!(", the oldest verified {}", format_instant(at)))
        .unwrap_or_default();
    match reading.refresh {
        Refresh::None => {
            let _ = write!(
                text,
                " Memberships not read (`--refresh none`): {} from charter's state{oldest}",
                organizations(reading.from_state)
            );
            if reading.not_read > 0 {
                let _ = write!(
                    text,
                    "; {} never read, planned as if they had no members",
                    organizations(reading.not_read)
                );
            }
            text.push('.');
        }
        Refresh::Full | Refresh::Incremental => {
            let _ = write!(
                text,
                " Memberships: {} verified now ({} refresh)",
                organizations(reading.verified),
                reading.refresh.as_str()
            );
            if reading.from_state > 0 {
                let _ = write!(
                    text,
                    ", {} from charter's state{oldest}",
                    organizations(reading.from_state)
                );
            }
            text.push('.');
        }
    }
    text
}
