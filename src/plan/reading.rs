//! What a plan reads of the instance's memberships, and what it says about it (pure: the
//! reading itself is `api::observe`, the choosing is here, the driving is `schedule::prepare`).
//!
//! Licenses, teams and users come from the cheap listing on every plan. Memberships cost about
//! one call per organization, so a plan reads them only where it matters and takes the others
//! from charter's state, which remembers each organization's people as last read and when they
//! were last verified ([`Remembered`]). With `--refresh incremental` (the default) a plan
//! verifies:
//!
//! 1. the organizations it is about (linked to a customer, or found by a customer's name) that
//!    the state does not remember ([`Selection::unknown`]) — all of them after a lost state;
//! 2. those a first plan, made from the remembered memberships, would change or could not plan
//!    ([`Selection::changed`]);
//! 3. its rolling share ([`Selection::due`]): every remembered organization verified
//!    `verify_every` ago or earlier, and the oldest-verified others, as many as
//!    `⌈K × elapsed / verify_every⌉` (`K` remembered organizations, `elapsed` the time since the
//!    last verification), so that plans every hour verify `K ÷ 168` each and every organization
//!    once a week, without a burst.
//!
//! `--refresh full` reads every organization; `--refresh none` reads none, and the plan says so.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::build::{Context, Memory, touched};
use super::observed::{Memberships, Observed};
use crate::model::program::Program;

/// How much of the memberships a plan reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Refresh {
    /// What can have changed, and the rolling share (the module documentation).
    #[default]
    Incremental,
    /// Every organization's.
    Full,
    /// None: every membership from the state (for a quick look).
    None,
}

impl Refresh {
    pub fn as_str(self) -> &'static str {
        match self {
            Refresh::Incremental => "incremental",
            Refresh::Full => "full",
            Refresh::None => "none",
        }
    }
}

/// `verify_every` when `charter.toml` does not say: 7 days.
pub const DEFAULT_VERIFY_EVERY: i64 = 7 * 86_400;

/// What charter's state remembers of an organization's people.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Remembered {
    /// As last read (or written, until read back).
    pub memberships: Memberships,
    /// When they were last read from the instance (seconds since the Unix epoch).
    pub verified_at: i64,
}

/// The organizations a plan is about: linked to a customer, or not linked and named like one
/// (candidates for adoption, and homonyms of organizations to create).
pub fn relevant(program: &Program, memory: &Memory, listing: &Observed) -> BTreeSet<i64> {
    let linked: BTreeSet<i64> = memory.organizations.values().copied().collect();
    let names: BTreeSet<&str> = program.customers.iter().map(|c| c.name.as_str()).collect();
    listing
        .organizations
        .iter()
        .filter(|o| !o.deleted && (linked.contains(&o.id) || names.contains(o.name.as_str())))
        .map(|o| o.id)
        .collect()
}

/// Which organizations a plan verifies, by reason (an organization is under one reason only).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Selection {
    /// Relevant, and not remembered by the state.
    pub unknown: BTreeSet<i64>,
    /// Remembered, and due in the rolling verification.
    pub due: BTreeSet<i64>,
    /// Remembered, and changed (or not plannable) by a plan of the remembered memberships.
    pub changed: BTreeSet<i64>,
}

impl Selection {
    /// Every organization selected.
    pub fn all(&self) -> BTreeSet<i64> {
        self.unknown
            .iter()
            .chain(&self.due)
            .chain(&self.changed)
            .copied()
            .collect()
    }

    /// Adds the organizations a first plan would touch that are not selected yet.
    pub fn add_changed(&mut self, touched: &BTreeSet<i64>) {
        for &id in touched {
            if !self.unknown.contains(&id) && !self.due.contains(&id) {
                self.changed.insert(id);
            }
        }
    }
}

/// The unknown and the due organizations among `relevant` at `at` (see the module
/// documentation); `changed` is left empty.
pub fn select(
    relevant: &BTreeSet<i64>,
    remembered: &BTreeMap<i64, Remembered>,
    at: i64,
    verify_every: i64,
) -> Selection {
    let verify_every = verify_every.max(1);
    let mut selection = Selection::default();
    let mut known: Vec<(i64, i64)> = Vec::new();
    for &id in relevant {
        match remembered.get(&id) {
            Some(r) => known.push((r.verified_at, id)),
            None => {
                selection.unknown.insert(id);
            }
        }
    }
    known.sort_unstable();
    let last = remembered.values().map(|r| r.verified_at).max();
    let elapsed = last.map_or(verify_every, |last| {
        at.saturating_sub(last).clamp(0, verify_every)
    });
    let count = i128::try_from(known.len()).unwrap_or(i128::MAX);
    // ⌈K × elapsed / verify_every⌉, in 128 bits so that no product overflows.
    let share =
        (count * i128::from(elapsed) + i128::from(verify_every) - 1) / i128::from(verify_every);
    let share = usize::try_from(share).unwrap_or(usize::MAX);
    for (i, &(verified_at, id)) in known.iter().enumerate() {
        if i < share || verified_at <= at.saturating_sub(verify_every) {
            selection.due.insert(id);
        }
    }
    selection
}

/// Everything that chooses what a plan reads, besides the instance's listing.
#[derive(Clone, Copy, Debug)]
pub struct Choice<'a> {
    pub program: &'a Program,
    pub at: i64,
    pub memory: &'a Memory,
    pub context: &'a Context,
    pub remembered: &'a BTreeMap<i64, Remembered>,
    pub refresh: Refresh,
    pub verify_every: i64,
}

/// The organizations whose memberships a plan reads now (see the module documentation):
/// for an incremental refresh, the unknown and the due among the `relevant`, and those a plan
/// of the remembered memberships would touch.
pub fn choose(choice: &Choice<'_>, listing: &Observed, relevant: &BTreeSet<i64>) -> BTreeSet<i64> {
    match choice.refresh {
        Refresh::Full => relevant.clone(),
        Refresh::None => BTreeSet::new(),
        Refresh::Incremental => {
            let mut selection = select(relevant, choice.remembered, choice.at, choice.verify_every);
            let first = assemble(listing, choice.remembered, &BTreeMap::new());
            selection.add_changed(&touched(
                choice.program,
                choice.at,
                choice.memory,
                &first,
                choice.context,
            ));
            selection.all()
        }
    }
}

/// The listing with every organization's memberships: those `read` now, otherwise those the
/// state remembers, otherwise none.
pub fn assemble(
    listing: &Observed,
    remembered: &BTreeMap<i64, Remembered>,
    read: &BTreeMap<i64, Memberships>,
) -> Observed {
    let mut observed = listing.clone();
    for o in &mut observed.organizations {
        let memberships = read
            .get(&o.id)
            .or_else(|| remembered.get(&o.id).map(|r| &r.memberships));
        if let Some(memberships) = memberships {
            o.set_memberships(memberships);
        }
    }
    observed
}

/// What a plan read, for its header and its JSON.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reading {
    pub refresh: Refresh,
    /// API calls spent reading (the listing, the token's user, the memberships).
    pub calls: u64,
    /// The rate limit the calls count against (requests a minute), when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<u32>,
    /// Organizations the plan is about.
    pub organizations: usize,
    /// Of them, whose memberships were read now.
    pub verified: usize,
    /// Of them, whose memberships come from charter's state.
    pub from_state: usize,
    /// Of them, whose memberships were neither read nor remembered (`--refresh none` only).
    pub not_read: usize,
    /// When the oldest of the memberships from the state was verified.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest_verified_at: Option<i64>,
}

impl Reading {
    /// The counts of a plan about `relevant` that read `verified` and had `remembered`.
    pub fn count(
        refresh: Refresh,
        relevant: &BTreeSet<i64>,
        verified: &BTreeSet<i64>,
        remembered: &BTreeMap<i64, Remembered>,
    ) -> Reading {
        let mut reading = Reading {
            refresh,
            organizations: relevant.len(),
            ..Reading::default()
        };
        for id in relevant {
            if verified.contains(id) {
                reading.verified += 1;
            } else if let Some(r) = remembered.get(id) {
                reading.from_state += 1;
                reading.oldest_verified_at = Some(
                    reading
                        .oldest_verified_at
                        .map_or(r.verified_at, |o| o.min(r.verified_at)),
                );
            } else {
                reading.not_read += 1;
            }
        }
        reading
    }

    /// The minutes of the rate limit the calls used, at `limit` a minute.
    pub fn minutes(&self, limit: u32) -> f64 {
        self.calls as f64 / f64::from(limit.max(1))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    const HOUR: i64 = 3600;
    const WEEK: i64 = 7 * 24 * HOUR;

    fn remembered(ids: impl IntoIterator<Item = (i64, i64)>) -> BTreeMap<i64, Remembered> {
        ids.into_iter()
            .map(|(id, at)| {
                (
                    id,
                    Remembered {
                        memberships: Memberships::default(),
                        verified_at: at,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn hourly_plans_verify_a_168th_each_and_everyone_within_a_week() {
        let ids: BTreeSet<i64> = (1..=1680).collect();
        let mut state = remembered(ids.iter().map(|&id| (id, 0)));
        let mut verified_in_week: BTreeSet<i64> = BTreeSet::new();
        for hour in 1..=168 {
            let at = hour * HOUR;
            let selection = select(&ids, &state, at, WEEK);
            assert!(selection.unknown.is_empty());
            assert_eq!(selection.due.len(), 10, "hour {hour}");
            for id in selection.due {
                state.get_mut(&id).unwrap().verified_at = at;
                verified_in_week.insert(id);
            }
        }
        assert_eq!(verified_in_week, ids);
        assert!(state.values().all(|r| r.verified_at > 0));
    }

    #[test]
    fn a_plan_right_after_a_verification_verifies_nothing_more() {
        let ids: BTreeSet<i64> = (1..=50).collect();
        let state = remembered(ids.iter().map(|&id| (id, 100)));
        assert_eq!(select(&ids, &state, 100, WEEK), Selection::default());
    }

    #[test]
    fn the_unknown_and_the_overdue_are_all_verified() {
        let ids: BTreeSet<i64> = (1..=6).collect();
        // 1 and 2 overdue, 3 to 5 fresh, 6 unknown; the last verification is an hour ago.
        let state = remembered([(1, 0), (2, 10), (3, WEEK), (4, WEEK), (5, WEEK)]);
        let selection = select(&ids, &state, WEEK + 20, WEEK);
        assert_eq!(selection.unknown, BTreeSet::from([6]));
        assert_eq!(selection.due, BTreeSet::from([1, 2]));
    }

    #[test]
    fn a_lost_state_verifies_everything() {
        let ids: BTreeSet<i64> = (1..=5).collect();
        let selection = select(&ids, &BTreeMap::new(), 1000, WEEK);
        assert_eq!(selection.unknown, ids);
    }
}
