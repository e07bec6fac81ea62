//! The commands about customers and their lifecycle: `compile --customer`, `explain
//! --customer`, `test`, `schedule` and `graph`. All but `test` and `graph` read customers'
//! recorded history from charter's state database when there is one.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use super::policy::Loaded;
use super::{GraphFormat, Outcome, ScheduleFormat, usage_error};
use crate::check::customers_suggestion;
use crate::compile::customer::{self, History};
use crate::compile::{self, explain, graph as graphs, schedule as schedules, tests};
use crate::model::customer::Customer;
use crate::model::program::Program;
use crate::state::{Location, StateError, Store};

/// Prints a state database error; the operation fails (exit 1).
pub(super) fn state_error(error: &StateError) -> Outcome {
    eoutln!("error: {error}");
    Outcome::Failure
}

/// A customer's recorded history; empty when the state database does not exist, which reading
/// never creates.
pub(super) fn history(state: &Location, key: &str) -> Result<History, Outcome> {
    match Store::open_existing(state) {
        Ok(None) => Ok(History::default()),
        Ok(Some(state)) => state.history(key).map_err(|e| state_error(&e)),
        Err(e) => Err(state_error(&e)),
    }
}

/// Every customer's recorded history, as [`history`] does for one.
fn histories(state: &Location) -> Result<BTreeMap<String, History>, Outcome> {
    match Store::open_existing(state) {
        Ok(None) => Ok(BTreeMap::new()),
        Ok(Some(state)) => state.histories().map_err(|e| state_error(&e)),
        Err(e) => Err(state_error(&e)),
    }
}

fn find<'a>(program: &'a Program, key: &str) -> Result<&'a Customer, Outcome> {
    program.customer(key).ok_or_else(|| {
        usage_error(
            &format!("unknown customer `{key}`"),
            customers_suggestion(key, &program.customers).map(|s| format!("did you mean `{s}`?")),
        )
    })
}

pub(super) fn compile_customer(
    program: &Program,
    key: &str,
    at: i64,
    text: bool,
    state: &Location,
) -> Outcome {
    let c = match find(program, key) {
        Ok(c) => c,
        Err(outcome) => return outcome,
    };
    let history = match history(state, key) {
        Ok(history) => history,
        Err(outcome) => return outcome,
    };
    let desired = customer::desired(program, c, &history, at);
    if text {
        let mut out = format!(
            "customer {} ({}): state {}, owner {}\n",
            desired.customer, desired.name, desired.walk.state, desired.owner
        );
        if let Some(license) = desired.license_object() {
            out.push_str(&compile::render_text(&c.tier, &license));
        }
        out!("{out}");
    } else {
        outln!(
            "{}",
            serde_json::to_string_pretty(&desired.to_json()).unwrap_or_default()
        );
    }
    Outcome::Success
}

/// Every customer, one JSON object per line, written as computed so that a large roster
/// streams instead of being held whole.
pub(super) fn compile_customers(program: &Program, at: i64, state: &Location) -> Outcome {
    let histories = match histories(state) {
        Ok(histories) => histories,
        Err(outcome) => return outcome,
    };
    let none = History::default();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    for c in &program.customers {
        let history = histories.get(&c.key).unwrap_or(&none);
        let desired = customer::desired(program, c, history, at);
        let line = serde_json::to_string(&desired.to_json()).unwrap_or_default();
        if let Err(error) = writeln!(out, "{line}") {
            super::out::failed_with(&error);
            return Outcome::Success;
        }
    }
    if let Err(error) = out.flush() {
        super::out::failed_with(&error);
    }
    Outcome::Success
}

pub(super) fn explain_customer(
    loaded: &Loaded,
    key: &str,
    at: i64,
    param: Option<usize>,
    state: &Location,
) -> Outcome {
    let c = match find(&loaded.program, key) {
        Ok(c) => c,
        Err(outcome) => return outcome,
    };
    let history = match history(state, key) {
        Ok(history) => history,
        Err(outcome) => return outcome,
    };
    let desired = customer::desired(&loaded.program, c, &history, at);
    out!(
        "{}",
        explain::customer(&loaded.sources, &loaded.program, &desired, param)
    );
    Outcome::Success
}

pub(super) fn test(loaded: &Loaded, path: &Path, now: i64, junit: Option<&Path>) -> Outcome {
    let results = tests::run(&loaded.program, now);
    let file = |span: crate::source::Span| {
        loaded
            .sources
            .file(span.file)
            .map_or_else(String::new, |f| f.name.clone())
    };
    let location = |span| loaded.sources.location(span).to_string();
    let text = |span| loaded.sources.slice(span).to_string();
    let source = tests::Source {
        file: &file,
        location: &location,
        text: &text,
    };
    outln!("running {} tests", results.len());
    for r in &results {
        outln!(
            "test {} ... {}",
            r.name,
            if r.passed() { "ok" } else { "FAILED" }
        );
    }
    let failed: Vec<&tests::TestResult> = results.iter().filter(|r| !r.passed()).collect();
    if !failed.is_empty() {
        outln!("\nfailures:");
        for r in &failed {
            outln!("\n---- {}", r.name);
            for f in &r.failures {
                out!("{}", tests::describe_failure(f, &source));
            }
        }
    }
    let passed = results.len() - failed.len();
    outln!(
        "\ntest result: {}. {passed} passed; {} failed",
        if failed.is_empty() { "ok" } else { "FAILED" },
        failed.len()
    );
    if let Some(file) = junit {
        // The suite is the policy set; each testcase's class is the file the test is in.
        let suite = path.display().to_string();
        if let Err(e) = std::fs::write(file, tests::junit(&results, &suite, &source)) {
            eoutln!(
                "error: cannot write `{}`: {}",
                file.display(),
                e.to_string().to_lowercase()
            );
            return Outcome::Failure;
        }
    }
    if failed.is_empty() {
        Outcome::Success
    } else {
        Outcome::Failure
    }
}

pub(super) fn schedule(
    program: &Program,
    at: i64,
    horizon: i64,
    format: ScheduleFormat,
    state: &Location,
) -> Outcome {
    let histories = match histories(state) {
        Ok(histories) => histories,
        Err(outcome) => return outcome,
    };
    let history = |key: &str| histories.get(key).cloned().unwrap_or_default();
    let entries = schedules::schedule(program, &history, at, horizon);
    match format {
        ScheduleFormat::Text => out!("{}", schedules::render_text(&entries, at, horizon)),
        ScheduleFormat::Json => outln!(
            "{}",
            serde_json::to_string_pretty(&schedules::to_json(&entries)).unwrap_or_default()
        ),
    }
    Outcome::Success
}

pub(super) fn graph(program: &Program, format: GraphFormat) -> Outcome {
    match format {
        GraphFormat::Mermaid => out!("{}", graphs::mermaid(&program.lifecycle)),
        GraphFormat::Dot => out!("{}", graphs::dot(&program.lifecycle)),
    }
    Outcome::Success
}
