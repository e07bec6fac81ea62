//! The commands about tiers: `compile` of tiers, `explain --tier`, `matrix` and `schema`.

use super::policy::Loaded;
use super::{Outcome, usage_error};
use crate::compile;
use crate::model::program::Program;
use crate::model::schema;

pub(super) fn compile(program: &Program, tier: Option<&str>, text: bool) -> Outcome {
    match (tier, text) {
        (Some(name), text) => match compile::tier_license(program, name) {
            Ok(license) => {
                if text {
                    out!("{}", compile::render_text(name, &license));
                } else {
                    outln!("{}", pretty(&license.to_json()));
                }
                Outcome::Success
            }
            Err(e) => usage_error(&e.to_string(), e.help()),
        },
        (None, false) => {
            outln!("{}", pretty(&compile::all_tier_licenses(program)));
            Outcome::Success
        }
        (None, true) => {
            let texts: Vec<String> = program
                .deployable_tiers()
                .into_iter()
                .filter_map(|t| Some(compile::render_text(&t.name, &t.license.to_object()?)))
                .collect();
            out!("{}", texts.join("\n"));
            Outcome::Success
        }
    }
}

pub(super) fn explain(loaded: &Loaded, tier: &str, param: Option<usize>) -> Outcome {
    let tier = match compile::deployable_tier(&loaded.program, tier) {
        Ok(t) => t,
        Err(e) => return usage_error(&e.to_string(), e.help()),
    };
    out!(
        "{}",
        compile::explain::tier(&loaded.sources, &loaded.program, tier, param)
    );
    Outcome::Success
}

pub(super) fn explain_staff(program: &Program, email: &str) -> Outcome {
    let Some(staff) = program
        .staff
        .iter()
        .find(|s| s.email.eq_ignore_ascii_case(email))
    else {
        let suggestion =
            crate::diagnostic::suggest(email, program.staff.iter().map(|s| s.email.as_str()))
                .map(|s| format!("did you mean `{s}`?"));
        return usage_error(&format!("no staff member `{email}`"), suggestion);
    };
    out!("{}", compile::explain::staff(staff));
    Outcome::Success
}

pub(super) fn matrix(program: &Program, html: bool) -> Outcome {
    if html {
        out!("{}", compile::matrix::html(program));
    } else {
        out!("{}", compile::matrix::markdown(program));
    }
    Outcome::Success
}

pub(super) fn schema() -> Outcome {
    outln!("{}", pretty(&schema::license()));
    Outcome::Success
}

pub(super) fn plan_schema() -> Outcome {
    outln!("{}", pretty(&crate::plan::schema()));
    Outcome::Success
}

fn pretty(value: &serde_json::Value) -> String {
    // Serializing a `serde_json::Value` to a String cannot fail.
    serde_json::to_string_pretty(value).unwrap_or_default()
}
