//! `charter transition PATH CUSTOMER NAME`: records a request for a `manual` lifecycle
//! transition in charter's state, after checking that the lifecycle allows it from the state the
//! customer is in. The next plan or run carries it out.

use std::path::PathBuf;

use super::lifecycle::state_error;
use super::policy::{self, Output};
use super::{Outcome, parse_at};
use crate::check::customers_suggestion;
use crate::compile::customer::{Cause, Event, History, walk};
use crate::diagnostic::suggest;
use crate::model::customer::{Customer, Lifecycle, Transition, Trigger};
use crate::model::time::format_instant;
use crate::state::{Store, TransitionRequest};

/// Request a `manual` lifecycle transition for a customer.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The policy set.
    path: PathBuf,
    /// The customer's key.
    customer: String,
    /// The transition's name.
    name: String,
    /// The instant the request is for (`2027-02-08` or `2027-02-08T09:00:00Z`); default now.
    #[arg(long, value_parser = parse_at)]
    at: Option<i64>,
    /// charter's state (a file or a `postgres://` URL); default as for `plan` (created when
    /// missing).
    #[arg(long, value_name = "FILE|URL")]
    state: Option<String>,
    /// How long to wait for the state's lock while another runner holds it (`0`: not at all).
    #[arg(long, value_name = "DUR", value_parser = super::state::parse_lock_timeout, default_value = "5 min")]
    lock_timeout: std::time::Duration,
}

pub(super) fn run(args: Args, output: &Output) -> Outcome {
    let loaded = match policy::load(&args.path, output) {
        Ok(loaded) => loaded,
        Err(outcome) => return outcome,
    };
    let program = &loaded.program;
    let lifecycle = &program.lifecycle;
    let at = args.at.unwrap_or_else(super::now);

    let Some(customer) = program.customer(&args.customer) else {
        return refuse(
            &format!("unknown customer `{}`", args.customer),
            customers_suggestion(&args.customer, &program.customers)
                .map(|s| format!("did you mean `{s}`?")),
        );
    };
    let Some(transition) = lifecycle.transition(&args.name) else {
        let near = suggest(
            &args.name,
            lifecycle.transitions.iter().map(|t| t.name.as_str()),
        );
        return refuse(
            &format!("unknown transition `{}`", args.name),
            Some(match near {
                Some(s) => format!("did you mean `{s}`?"),
                None => manual_transitions(lifecycle),
            }),
        );
    };
    if transition.trigger.is_automatic() {
        return refuse(
            &format!(
                "transition `{}` is not manual: it fires `{}`",
                transition.name, transition.trigger
            ),
            Some(format!(
                "charter carries it out on schedule; {}",
                manual_transitions(lifecycle)
            )),
        );
    }

    let location = match super::state::location(&args.path, args.state, output) {
        Ok(location) => location,
        Err(outcome) => return outcome,
    };
    // Reading never creates the state: a refused request leaves nothing behind.
    let existing = match Store::open_existing(&location) {
        Ok(existing) => existing,
        Err(e) => return state_error(&e),
    };
    let history = match existing.as_ref().map(|s| s.history(&customer.key)) {
        None => Ok(History::default()),
        Some(history) => history,
    };
    let history = match history {
        Ok(history) => history,
        Err(e) => return state_error(&e),
    };
    // The walk replays recorded transitions first: a request from before the latest one
    // would never be carried out.
    if let Some(last) = history.transitions.last().filter(|last| last.at > at) {
        return refuse(
            &format!(
                "customer `{}` has a transition recorded after {}: `{}` at {}",
                customer.key,
                format_instant(at),
                last.transition,
                format_instant(last.at)
            ),
            Some(format!(
                "request it at {} or later",
                format_instant(last.at)
            )),
        );
    }
    let current = walk(lifecycle, customer, &history, at);
    let since = current
        .since
        .map(|s| format!(" (since {})", format_instant(s)))
        .unwrap_or_default();
    if !fires(lifecycle, customer, &history, transition, at) {
        let allowed: Vec<String> = lifecycle
            .transitions
            .iter()
            .filter(|t| !t.trigger.is_automatic() && fires(lifecycle, customer, &history, t, at))
            .map(|t| format!("`{}`", t.name))
            .collect();
        let allowed = if allowed.is_empty() {
            format!("no manual transition is allowed from `{}`", current.state)
        } else {
            format!(
                "from `{}` the lifecycle allows {}",
                current.state,
                allowed.join(", ")
            )
        };
        let message = if transition.from.contains(&current.state) {
            match &transition.guard {
                Some(guard) => format!(
                    "transition `{}` does not apply to customer `{}`: its condition `{guard}` does not hold",
                    transition.name, customer.key
                ),
                None => format!(
                    "transition `{}` would not fire for customer `{}` at {}",
                    transition.name,
                    customer.key,
                    format_instant(at)
                ),
            }
        } else {
            format!(
                "transition `{}` is not allowed from `{}`, the state customer `{}` is in at {}{since}",
                transition.name,
                current.state,
                customer.key,
                format_instant(at)
            )
        };
        let from: Vec<String> = transition.from.iter().map(|s| format!("`{s}`")).collect();
        return refuse(
            &message,
            Some(format!(
                "`{}` goes from {}; {allowed}",
                transition.name,
                from.join(", ")
            )),
        );
    }

    let by = ["USER", "USERNAME"]
        .iter()
        .find_map(|name| std::env::var(name).ok())
        .filter(|name| !name.is_empty());
    let request = TransitionRequest {
        customer: customer.key.clone(),
        transition: transition.name.clone(),
        at,
        by,
    };
    // Recorded under the state's lock, so that it lands between runners' rounds.
    let store = match existing.map_or_else(|| Store::open(&location), Ok) {
        Ok(store) => store,
        Err(e) => return state_error(&e),
    };
    let recorded = super::state::lock(&store, "transition", args.lock_timeout).and_then(|lock| {
        store.request_transition(&request)?;
        lock.release()
    });
    if let Err(e) = recorded {
        return state_error(&e);
    }
    outln!(
        "recorded: customer `{}` ({}) requests `{}` ({} → {}) at {}{}",
        customer.key,
        customer.name,
        transition.name,
        current.state,
        transition.to,
        format_instant(at),
        request
            .by
            .as_ref()
            .map(|by| format!(", by `{by}`"))
            .unwrap_or_default()
    );
    outln!(
        "it is kept in `{}`; the next `charter plan` or `charter run` will carry it out",
        store.shown()
    );
    Outcome::Success
}

/// Whether a request for `transition` at `at` would fire then: the lifecycle walk is the
/// judge, so the command agrees with what compiling will do.
fn fires(
    lifecycle: &Lifecycle,
    customer: &Customer,
    history: &History,
    transition: &Transition,
    at: i64,
) -> bool {
    let mut with_request = history.clone();
    with_request.requests.push(Event {
        transition: transition.name.clone(),
        at,
    });
    with_request.requests.sort_by_key(|r| r.at);
    walk(lifecycle, customer, &with_request, at)
        .fired
        .iter()
        .any(|f| f.transition == transition.name && f.cause == Cause::Manual { requested: at })
}

/// The lifecycle's manual transitions, for help.
fn manual_transitions(lifecycle: &Lifecycle) -> String {
    let manual: Vec<String> = lifecycle
        .transitions
        .iter()
        .filter(|t| matches!(t.trigger, Trigger::Manual))
        .map(|t| format!("`{}`", t.name))
        .collect();
    match manual.as_slice() {
        [] => "this lifecycle has no manual transitions".to_owned(),
        [one] => format!("the manual transition is {one}"),
        many => format!("the manual transitions are {}", many.join(", ")),
    }
}

/// Prints why the request is refused; the command fails (exit 1).
fn refuse(message: &str, help: Option<String>) -> Outcome {
    eoutln!("error: {message}");
    if let Some(help) = help {
        eoutln!("  help: {help}");
    }
    Outcome::Failure
}
