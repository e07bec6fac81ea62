//! Loading a policy set for a command: read, parse, check, and print the diagnostics.

use std::path::Path;

use super::{ErrorFormat, Outcome, usage_error};
use crate::diagnostic::{Diagnostic, JsonDiagnostic, RenderOptions, render_human};
use crate::model::program::Program;
use crate::policy;
use crate::source::Sources;

/// How diagnostics are shown.
pub(crate) struct Output {
    pub(crate) error_format: ErrorFormat,
    pub(crate) color: bool,
}

/// A policy set that checked without errors.
pub(crate) struct Loaded {
    pub(crate) sources: Sources,
    pub(crate) program: Program,
    pub(crate) warnings: usize,
}

impl Loaded {
    /// `checked 4 files: 6 tiers (5 deployable), 4 add-ons, 2 groups, 1 ladder, 7 rules`.
    pub(crate) fn summary(&self) -> String {
        let p = &self.program;
        let deployable = p.tiers.iter().filter(|t| !t.is_abstract).count();
        let files = self.sources.ids().count();
        format!(
            "checked {}: {}, {} deployable; {}; {}; {}; {}; {}; {} states, {}; {}; {} — {}",
            plural(files, "file"),
            plural(p.tiers.len(), "tier"),
            deployable,
            plural(p.addons.len(), "add-on"),
            plural(p.groups.len(), "group"),
            plural(p.ladders.len(), "ladder"),
            plural(p.rules.len(), "rule"),
            plural(p.customers.len(), "customer"),
            p.lifecycle.states.len(),
            plural(p.lifecycle.transitions.len(), "transition"),
            plural(p.tests.len(), "test"),
            plural(p.staff.len(), "staff member"),
            if self.warnings == 0 {
                "no problems".to_string()
            } else {
                plural(self.warnings, "warning")
            }
        )
    }
}

fn plural(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Reads, parses and checks a policy set, printing every diagnostic. Returns the program, or
/// the outcome to exit with.
pub(crate) fn load(path: &Path, output: &Output) -> Result<Loaded, Outcome> {
    let (sources, checked) = match policy::load(path) {
        Ok(set) => (set.sources, set.checked),
        Err(policy::Failure::Load(e)) => {
            let help = match &e {
                crate::source::LoadError::Empty(folder) => Some(format!(
                    "`charter init {}` writes a small policy set to start from; the example \
                     set of charter's repository is `policies/acme`",
                    folder.display()
                )),
                _ => None,
            };
            return Err(usage_error(&e.to_string(), help));
        }
        Err(policy::Failure::Syntax(sources, errors)) => {
            report(&sources, &errors, output);
            return Err(Outcome::Failure);
        }
    };
    report(&sources, &checked.diagnostics.0, output);
    let warnings = checked.diagnostics.warnings().count();
    match checked.program {
        Some(program) => Ok(Loaded {
            sources,
            program,
            warnings,
        }),
        None => Err(Outcome::Failure),
    }
}

/// Prints diagnostics on stderr, then (for people) a count.
pub(crate) fn report(sources: &Sources, diagnostics: &[Diagnostic], output: &Output) {
    match output.error_format {
        ErrorFormat::Json => {
            for d in diagnostics {
                let json = JsonDiagnostic::new(sources, d);
                if let Ok(line) = serde_json::to_string(&json) {
                    eoutln!("{line}");
                }
            }
        }
        ErrorFormat::Human => {
            let options = RenderOptions {
                color: output.color,
                width: 100,
            };
            for d in diagnostics {
                eout!("{}", render_human(sources, d, options));
                eoutln!();
            }
            let errors = diagnostics.iter().filter(|d| d.is_error()).count();
            let warnings = diagnostics.len() - errors;
            if errors > 0 {
                eoutln!(
                    "error: {} and {}",
                    plural(errors, "error"),
                    plural(warnings, "warning")
                );
            }
        }
    }
}
