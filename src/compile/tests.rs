//! Running `test` blocks: each expectation evaluated against a tier's license or a customer's
//! desired state at the block's instant, and on failure every value seen with where it came
//! from.

use crate::check::expr::{self, Env, EvalError, Val};
use crate::check::rules::{enum_word, parameter_value};
use crate::compile::customer::{self, Desired, History};
use crate::compile::matrix::escape as xml;
use crate::model::catalog::{self, CATALOG};
use crate::model::customer::{Subject, Test};
use crate::model::license::License;
use crate::model::program::Program;
use crate::model::time::format_instant;
use crate::source::Span;

/// The outcome of one test block.
#[derive(Clone, Debug)]
pub struct TestResult {
    pub name: String,
    pub span: Span,
    /// Empty when the test passed.
    pub failures: Vec<Failure>,
}

impl TestResult {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// One expectation that did not hold.
#[derive(Clone, Debug)]
pub struct Failure {
    /// `customer acme` or `tier pro`.
    pub subject: String,
    pub expr: String,
    /// The expression as written, for showing it verbatim.
    pub expr_span: Span,
    pub span: Span,
    /// Each name read: its value and where the value came from.
    pub values: Vec<(String, String, String)>,
    /// Why it could not be evaluated, when it could not.
    pub error: Option<String>,
}

/// Where each value a failing expectation read came from, by name.
type Origins = Box<dyn Fn(&str) -> String>;

/// Runs every test; `now` is the instant for blocks without `at`.
pub fn run(program: &Program, now: i64) -> Vec<TestResult> {
    program
        .tests
        .iter()
        .map(|t| run_one(program, t, now))
        .collect()
}

fn run_one(program: &Program, test: &Test, now: i64) -> TestResult {
    let at = test.at.unwrap_or(now);
    let mut failures = Vec::new();
    for expect in &test.expects {
        let mut seen = Vec::new();
        let (subject, result, origins): (String, _, Origins) = match &expect.subject {
            Subject::Tier(name) => {
                let Some(tier) = program.tier(name) else {
                    continue;
                };
                let env = TierEnv {
                    program,
                    license: &tier.license,
                };
                let result = expr::eval(&expect.expr, &env, &mut seen);
                let license = tier.license.clone();
                (
                    format!("tier {name}"),
                    result,
                    Box::new(move |n| parameter_origin(&license, n)),
                )
            }
            Subject::Customer(key) => {
                let Some(c) = program.customer(key) else {
                    continue;
                };
                let desired = customer::desired(program, c, &History::default(), at);
                let env = CustomerEnv {
                    program,
                    desired: &desired,
                };
                let result = expr::eval(&expect.expr, &env, &mut seen);
                let provenance = customer::provenance(program, c, &desired.walk.state);
                (
                    format!("customer {key}"),
                    result,
                    Box::new(move |n| customer_origin(&desired, &provenance, n)),
                )
            }
        };
        let values = || {
            seen.iter()
                .map(|s| (s.name.clone(), s.value.to_string(), origins(&s.name)))
                .collect::<Vec<_>>()
        };
        let failure = match result {
            Ok(Val::Bool(true)) => continue,
            Ok(_) => None,
            Err(EvalError::Unavailable(name)) => Some(format!("`{name}` has no value here")),
            Err(EvalError::DivisionByZero(_)) => Some("division by zero".to_string()),
            Err(EvalError::Overflow(_)) => Some("the arithmetic overflows".to_string()),
        };
        failures.push(Failure {
            subject,
            expr: expect.expr.to_string(),
            expr_span: expect.expr.span,
            span: expect.span,
            values: values(),
            error: failure,
        });
    }
    TestResult {
        name: test.name.clone(),
        span: test.span,
        failures,
    }
}

fn parameter_origin(license: &License, name: &str) -> String {
    let Some(i) = catalog::index_of(name) else {
        return String::new();
    };
    let (Some(param), Some(setting)) = (CATALOG.get(i), license.get(i)) else {
        return String::new();
    };
    setting
        .chain
        .last()
        .map(|step| step.describe(param))
        .unwrap_or_default()
}

fn customer_origin(desired: &Desired, provenance: &License, name: &str) -> String {
    match name {
        "state" => match desired.walk.fired.last() {
            Some(f) => format!(
                "transition `{}` from `{}` at {}: {}",
                f.transition,
                f.from,
                format_instant(f.at),
                f.cause
            ),
            None => "the initial state; no transition was due".to_string(),
        },
        "owner" => format!("the organization's owner in state `{}`", desired.walk.state),
        "since" => "when the customer entered its state".to_string(),
        "tier" | "name" => "the customer block".to_string(),
        other if catalog::lookup(other).is_some() => parameter_origin(provenance, other),
        _ => "an attribute".to_string(),
    }
}

/// Names in `expect tier …`.
struct TierEnv<'a> {
    program: &'a Program,
    license: &'a License,
}

impl Env for TierEnv<'_> {
    fn value(&self, qualifier: Option<&str>, name: &str) -> Option<Val> {
        let license = match qualifier {
            Some(tier) => &self.program.tier(tier)?.license,
            None => self.license,
        };
        match catalog::index_of(name) {
            Some(i) => Some(parameter_value(CATALOG.get(i)?, license.value(i)?)),
            None if qualifier.is_none() => enum_word(name).map(Val::Enum),
            None => None,
        }
    }
}

/// Names in `expect customer …`.
struct CustomerEnv<'a> {
    program: &'a Program,
    desired: &'a Desired,
}

impl Env for CustomerEnv<'_> {
    fn value(&self, qualifier: Option<&str>, name: &str) -> Option<Val> {
        if let Some(tier) = qualifier {
            let license = &self.program.tier(tier)?.license;
            let i = catalog::index_of(name)?;
            return Some(parameter_value(CATALOG.get(i)?, license.value(i)?));
        }
        if let Some(i) = catalog::index_of(name) {
            return Some(parameter_value(
                CATALOG.get(i)?,
                self.desired.license.value(i)?,
            ));
        }
        let customer = self.program.customer(&self.desired.customer)?;
        match name {
            "state" => return Some(Val::Name(self.desired.walk.state.clone())),
            "tier" => return Some(Val::Name(customer.tier.clone())),
            "owner" => return Some(Val::Text(self.desired.owner.clone())),
            "name" => return Some(Val::Text(customer.name.clone())),
            "since" => return self.desired.walk.since.map(Val::Date),
            _ => {}
        }
        if let Some(a) = customer.attributes.get(name) {
            return Some(customer::attribute_value(a));
        }
        if self.program.lifecycle.state(name).is_some() || self.program.tier(name).is_some() {
            return Some(Val::Name(name.to_string()));
        }
        enum_word(name).map(Val::Enum)
    }
}

/// How to show source positions and text in reports (the caller has the sources).
pub struct Source<'a> {
    /// The name of the file a span is in (a JUnit testcase's `classname`).
    pub file: &'a dyn Fn(Span) -> String,
    pub location: &'a dyn Fn(Span) -> String,
    pub text: &'a dyn Fn(Span) -> String,
}

/// The results as JUnit XML, for CI systems.
pub fn junit(results: &[TestResult], suite: &str, source: &Source<'_>) -> String {
    let failures = results.iter().filter(|r| !r.passed()).count();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    out.push_str(&format!(
        "<testsuites name=\"charter\" tests=\"{}\" failures=\"{failures}\">\n",
        results.len()
    ));
    out.push_str(&format!(
        "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failures}\">\n",
        xml(suite),
        results.len()
    ));
    for r in results {
        out.push_str(&format!(
            "    <testcase name=\"{}\" classname=\"{}\" file=\"{}\"",
            xml(&r.name),
            xml(&(source.file)(r.span)),
            xml(&(source.location)(r.span))
        ));
        if r.passed() {
            out.push_str("/>\n");
            continue;
        }
        out.push_str(">\n");
        for f in &r.failures {
            out.push_str(&format!(
                "      <failure message=\"{}\">{}</failure>\n",
                xml(&format!(
                    "expect {}: {}",
                    f.subject,
                    (source.text)(f.expr_span)
                )),
                xml(&describe_failure(f, source))
            ));
        }
        out.push_str("    </testcase>\n");
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// A failure in plain text: the expectation, where, and every value with its origin.
pub fn describe_failure(f: &Failure, source: &Source<'_>) -> String {
    let mut out = format!(
        "expect {}: {}\n  at {}\n",
        f.subject,
        (source.text)(f.expr_span),
        (source.location)(f.span)
    );
    if let Some(error) = &f.error {
        out.push_str(&format!("  could not be evaluated: {error}\n"));
    }
    let width = f
        .values
        .iter()
        .map(|(n, v, _)| n.len() + v.len() + 3)
        .max()
        .unwrap_or(0);
    for (name, value, origin) in &f.values {
        let shown = format!("{name} = {value}");
        if origin.is_empty() {
            out.push_str(&format!("  {shown}\n"));
        } else {
            out.push_str(&format!("  {shown:width$}  ({origin})\n"));
        }
    }
    out
}
