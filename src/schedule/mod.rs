//! Planning against the live instance and the run loop: read the instance and charter's state,
//! compute the plan for an instant. The clock is never read here: the instant is a parameter
//! (the command line passes `--at` or now), so tests can travel in time.

use crate::api::{ApiError, Client, Observed, observe};
use crate::model::program::Program;
use crate::plan::{self, Context, Plan, PlanError};
use crate::state::{State, StateError};

/// Why no plan could be made.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("no plan can be made: {}", .0.len())]
    Plan(Vec<PlanError>),
}

/// A plan and what it was made from.
#[derive(Debug)]
pub struct Prepared {
    pub plan: Plan,
    pub observed: Observed,
}

/// Reads the instance (every organization, user and role, and the token's own user) and
/// charter's state, and plans what `program` wants at `at`. `instance` names the instance in
/// the plan (its URL; never the token).
pub async fn prepare(
    client: &Client,
    state: &State,
    program: &Program,
    at: i64,
    instance: &str,
) -> Result<Prepared, PrepareError> {
    let memory = state.memory()?;
    let me = client.me().await?;
    let observed = observe(client).await?;
    let context = Context {
        instance: instance.to_owned(),
        token_user: me.map(|u| u.id),
    };
    let plan = plan::plan(program, at, &memory, &observed, &context)
        .map_err(PrepareError::Plan)?
        .seal();
    Ok(Prepared { plan, observed })
}

/// Checks that the objects a saved plan read are unchanged on the instance: the organizations
/// and users whose fingerprint differs or which are gone, as `organization 12` / `user 40`.
pub fn changed_since(plan: &Plan, observed: &Observed) -> Vec<String> {
    let mut changed = Vec::new();
    for (id, fingerprint) in &plan.reads.organizations {
        match observed.organization(*id) {
            Some(o) if o.fingerprint() == *fingerprint => {}
            Some(o) => changed.push(format!("organization {id} (\"{}\") changed", o.name)),
            None => changed.push(format!("organization {id} is gone")),
        }
    }
    for (id, fingerprint) in &plan.reads.users {
        match observed.user(*id) {
            Some(u) if u.fingerprint() == *fingerprint => {}
            Some(u) => changed.push(format!("user {id} ({}) changed", u.email)),
            None => changed.push(format!("user {id} is gone")),
        }
    }
    changed
}
