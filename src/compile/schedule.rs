//! `charter schedule`: per customer, the transitions due at an instant and those coming within
//! a horizon, each with the trigger that fires it.

use crate::compile::customer::{self, Fired, History};
use crate::model::customer::Customer;
use crate::model::program::Program;
use crate::model::time::format_instant;

/// One customer's schedule.
#[derive(Clone, Debug)]
pub struct Entry<'a> {
    pub customer: &'a Customer,
    pub state: String,
    pub since: Option<i64>,
    /// Transitions that have come due and are not recorded as done: they would be applied now.
    pub due: Vec<Fired>,
    /// Transitions that come due after the instant, within the horizon.
    pub upcoming: Vec<Fired>,
}

/// The schedule of every customer, given each one's recorded history.
pub fn schedule<'a>(
    program: &'a Program,
    history: &dyn Fn(&str) -> History,
    at: i64,
    horizon: i64,
) -> Vec<Entry<'a>> {
    program
        .customers
        .iter()
        .map(|c| {
            let history = history(&c.key);
            let walk = customer::walk(&program.lifecycle, c, &history, at);
            let due = walk
                .fired
                .iter()
                .filter(|f| f.cause != customer::Cause::Recorded)
                .cloned()
                .collect();
            let upcoming = customer::upcoming(&program.lifecycle, c, &history, at, horizon);
            Entry {
                customer: c,
                state: walk.state,
                since: walk.since,
                due,
                upcoming,
            }
        })
        .collect()
}

/// The schedule as text, one block per customer with something due or coming.
pub fn render_text(entries: &[Entry<'_>], at: i64, horizon: i64) -> String {
    let mut out = format!(
        "at {}, looking ahead {}\n",
        format_instant(at),
        crate::model::license::human_duration(horizon)
    );
    let mut quiet = 0;
    for e in entries {
        if e.due.is_empty() && e.upcoming.is_empty() {
            quiet += 1;
            continue;
        }
        out.push_str(&format!(
            "\n{} ({}): {}{}\n",
            e.customer.key,
            e.customer.name,
            e.state,
            e.since
                .map(|s| format!(" since {}", format_instant(s)))
                .unwrap_or_default()
        ));
        for (label, list) in [("due now", &e.due), ("upcoming", &e.upcoming)] {
            for f in list.iter() {
                out.push_str(&format!(
                    "  {label:<9} {:<12} {} → {}  {}  {}\n",
                    f.transition,
                    f.from,
                    f.to,
                    format_instant(f.at),
                    f.cause
                ));
            }
        }
    }
    out.push_str(&format!(
        "\n{} customers; {} with nothing due or coming\n",
        entries.len(),
        quiet
    ));
    out
}

/// The schedule as JSON for tools.
pub fn to_json(entries: &[Entry<'_>]) -> serde_json::Value {
    let fired = |f: &Fired| {
        serde_json::json!({
            "transition": f.transition,
            "from": f.from,
            "to": f.to,
            "at": format_instant(f.at),
            "cause": f.cause.to_string(),
        })
    };
    serde_json::Value::Array(
        entries
            .iter()
            .map(|e| {
                serde_json::json!({
                    "customer": e.customer.key,
                    "state": e.state,
                    "since": e.since.map(format_instant),
                    "due": e.due.iter().map(fired).collect::<Vec<_>>(),
                    "upcoming": e.upcoming.iter().map(fired).collect::<Vec<_>>(),
                })
            })
            .collect(),
    )
}
