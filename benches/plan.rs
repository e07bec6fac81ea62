//! Planning 10,000 organizations: a sandbox seeded with 10,000 organizations is read over
//! loopback HTTP in full (the API calls it costs are printed), a policy set is written that
//! adopts every one of them (their people, a tier by their operations — so many licenses
//! differ), and the pure diff is timed. Then the instance is made converged (the planned
//! licenses written into the sandbox's database), 10 customers change tier, and a plan's
//! incremental reading is made against it an hour after the full one (`docs/reads.md`): its
//! calls are printed beside the full refresh's. Run with `cargo bench --bench plan`. Budgets
//! (DESIGN.md): < 100 ms of CPU for the diff; reading at most
//! ⌈N / page⌉ + ⌈U / page⌉ + 25 + changed + ⌈N / 168⌉ calls.

#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use charter::api::observe::{list, read_memberships};
use charter::api::{Client, ClientOptions, Memberships, Observed, Scope, Token, observe};
use charter::plan::reading::{self, Refresh, Remembered};
use charter::plan::{self, Context, Memory};
use charter_sandbox::{self as sandbox, RunningSandbox, SeedOptions, Storage};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ORGANIZATIONS: u32 = 10_000;

fn main() {
    let dir = std::env::temp_dir().join(format!("charter-plan-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let db = seed(&dir);
    let (observed, read_time) = runtime.block_on(async {
        let (running, client) = serve(&db).await;
        let start = Instant::now();
        let observed = observe(&client).await.expect("observe");
        let elapsed = start.elapsed();
        running.shutdown().await.expect("shutdown");
        (observed, elapsed)
    });
    let calls = &observed.calls;
    println!(
        "read: {} API calls for {} organizations and {} users in {:.2} s \
         (roles {}, organizations {}, users {}, role holders {}, memberships {}, team holders {}, \
         team members {})",
        calls.total(),
        observed.organizations.len(),
        observed.users.len(),
        read_time.as_secs_f64(),
        calls.roles,
        calls.organizations,
        calls.users,
        calls.organization_role_holders,
        calls.memberships,
        calls.team_role_holders,
        calls.team_members,
    );

    // A policy set adopting every organization: its people as they are, a tier by its
    // operations, a contract far ahead.
    common::copy_acme_catalog_into(&dir);
    std::fs::write(dir.join("roster.charter"), "roster \"customers.csv\"\n").expect("write");
    let mut csv = String::from("key,name,tier,addons,owner,admins,members,contract_end,payment\n");
    let mut memory = Memory::default();
    for o in &observed.organizations {
        let mut people: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for m in &o.members {
            let email = observed.user(m.user_id).map(|u| u.email.as_str()).unwrap();
            people
                .entry(m.role.as_deref().unwrap_or("Member"))
                .or_default()
                .push(email);
        }
        let operations = o
            .license
            .get("operations")
            .and_then(|v| v.as_i64())
            .unwrap_or(0);
        let tier = if operations <= 10_000 {
            "core"
        } else if operations <= 40_000 {
            "pro"
        } else if operations <= 150_000 {
            "teams"
        } else {
            "enterprise"
        };
        let list = |role: &str| people.get(role).map(|p| p.join(";")).unwrap_or_default();
        csv.push_str(&format!(
            "o{},{},{tier},,{},{},{},2030-01-01,ok\n",
            o.id,
            o.name,
            list("Owner"),
            list("Admin"),
            list("Member"),
        ));
        memory.organizations.insert(format!("o{}", o.id), o.id);
    }
    std::fs::write(dir.join("customers.csv"), &csv).expect("write the roster");
    let set = charter::policy::load(&dir).unwrap_or_else(|_| panic!("the policy set loads"));
    let program = set.checked.program.unwrap_or_else(|| {
        panic!(
            "the policy set checks: {:?}",
            set.checked.diagnostics.0.first()
        )
    });
    let at = charter::model::time::parse_instant("2027-01-15").unwrap();

    let mut times: Vec<Duration> = Vec::new();
    let mut last = None;
    for _ in 0..7 {
        let start = thread_cpu_time();
        let wall = Instant::now();
        let plan = plan::plan(&program, at, &memory, &observed, &Context::default())
            .unwrap_or_else(|e| panic!("no plan: {:?}", e.first()));
        times.push(match (start, thread_cpu_time()) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => wall.elapsed(),
        });
        last = Some(plan);
    }
    times.sort();
    let plan = last.unwrap();
    let planned_licenses: Vec<(i64, serde_json::Map<String, serde_json::Value>)> = plan
        .steps
        .iter()
        .filter_map(|s| match &s.action {
            plan::Action::SetLicense {
                organization,
                license,
                ..
            } => match serde_json::to_value(license) {
                Ok(serde_json::Value::Object(keys)) => Some((organization.id?, keys)),
                _ => None,
            },
            _ => None,
        })
        .collect();
    let start = Instant::now();
    let plan = plan.seal();
    let sealing = start.elapsed();
    let size = plan.to_json().len();
    let median = times[times.len() / 2];
    println!(
        "diff: {} organizations → {} steps ({} API calls, {} license changes): median {:.1} ms, \
         best {:.1} ms of CPU (budget < 100 ms)",
        program.customers.len(),
        plan.steps.len(),
        plan.calls(),
        plan.steps
            .iter()
            .filter(|s| s.action.kind() == "set_license")
            .count(),
        median.as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3,
    );
    println!(
        "sealing (the plan's digest, for the journal and saved files): {:.1} ms; plan file {:.1} MB",
        sealing.as_secs_f64() * 1e3,
        size as f64 / 1e6
    );

    incremental(
        &runtime,
        &dir,
        &db,
        &csv,
        &observed,
        &memory,
        &planned_licenses,
        at,
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// How many customers change tier since the last plan.
const CHANGED: usize = 10;

/// The reading of a plan an hour after a full one, on the converged instance with [`CHANGED`]
/// customers moved to another tier: the calls it spends, beside the full refresh's.
#[allow(clippy::too_many_arguments)]
fn incremental(
    runtime: &tokio::runtime::Runtime,
    dir: &Path,
    db: &Path,
    csv: &str,
    observed: &Observed,
    memory: &Memory,
    planned_licenses: &[(i64, serde_json::Map<String, serde_json::Value>)],
    at: i64,
) {
    // Converged: the planned licenses written over the live ones, as an apply leaves them.
    {
        let mut conn = rusqlite::Connection::open(db).expect("the sandbox database");
        let tx = conn.transaction().expect("a transaction");
        for (id, keys) in planned_licenses {
            let live: String = tx
                .query_row(
                    "SELECT license FROM organizations WHERE id = ?1",
                    [id],
                    |r| r.get(0),
                )
                .expect("the organization");
            let mut license: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(&live).expect("a license");
            license.extend(keys.clone());
            tx.execute(
                "UPDATE organizations SET license = ?1 WHERE id = ?2",
                rusqlite::params![serde_json::to_string(&license).unwrap(), id],
            )
            .expect("update");
        }
        tx.commit().expect("commit");
    }
    // The last plan verified everything an hour ago; since then, CHANGED customers moved up a
    // tier (`core` → `pro`, anything else → `core`).
    let remembered: BTreeMap<i64, Remembered> = observed
        .organizations
        .iter()
        .map(|o| {
            (
                o.id,
                Remembered {
                    memberships: o.memberships(),
                    verified_at: at - 3600,
                },
            )
        })
        .collect();
    let mut lines: Vec<String> = csv.lines().map(str::to_owned).collect();
    for line in lines.iter_mut().skip(1).step_by(997).take(CHANGED) {
        let mut cells: Vec<String> = line.split(',').map(str::to_owned).collect();
        cells[2] = if cells[2] == "core" { "pro" } else { "core" }.to_owned();
        *line = cells.join(",");
    }
    std::fs::write(dir.join("customers.csv"), lines.join("\n") + "\n").expect("write");
    let set = charter::policy::load(dir).unwrap_or_else(|_| panic!("the policy set loads"));
    let program = set.checked.program.expect("the changed policy set checks");
    let context = Context::default();

    let (calls, counts, listing_calls, selection, plan, parts) = runtime.block_on(async {
        let (running, client) = serve(db).await;
        // What `schedule::prepare` reads: the token's user, the listing, the memberships chosen.
        client.me().await.expect("me");
        let listing = list(&client).await.expect("the listing");
        let listing_calls = client.calls();
        let relevant = reading::relevant(&program, memory, &listing);
        let choice = reading::Choice {
            program: &program,
            at,
            memory,
            context: &context,
            remembered: &remembered,
            refresh: Refresh::Incremental,
            verify_every: reading::DEFAULT_VERIFY_EVERY,
        };
        let mut selection = reading::select(&relevant, &remembered, at, choice.verify_every);
        let chosen = reading::choose(&choice, &listing, &relevant);
        let changed: std::collections::BTreeSet<i64> =
            chosen.difference(&selection.all()).copied().collect();
        selection.changed = changed;
        let (read, parts) = read_memberships(&client, &listing, Scope::Only(&chosen))
            .await
            .expect("the memberships");
        let calls = client.calls();
        running.shutdown().await.expect("shutdown");
        let read: BTreeMap<i64, Memberships> = read;
        let verified = read.keys().copied().collect();
        let counts =
            reading::Reading::count(Refresh::Incremental, &relevant, &verified, &remembered);
        let assembled = reading::assemble(&listing, &remembered, &read);
        let plan = plan::plan(&program, at, memory, &assembled, &context)
            .unwrap_or_else(|e| panic!("no plan: {:?}", e.first()));
        (calls, counts, listing_calls, selection, plan, parts)
    });
    let n = observed.organizations.len() as u64;
    let u = observed.users.len() as u64;
    let page = u64::from(charter::api::client::DEFAULT_PAGE_SIZE);
    let budget = n.div_ceil(page) + u.div_ceil(page) + 25 + CHANGED as u64 + n.div_ceil(168);
    // Each organization the seed makes has a team, listed when its organization is verified.
    let teams = observed
        .organizations
        .iter()
        .map(|o| o.teams.len() as u64)
        .max()
        .unwrap_or(0);
    let with_teams = budget + teams * (CHANGED as u64 + n.div_ceil(168));
    println!(
        "incremental read, an hour after a full one, {CHANGED} customers changed: {calls} API calls \
         (issue's budget {budget}: ⌈N/page⌉ + ⌈U/page⌉ + 25 + {CHANGED} + ⌈N/168⌉; {with_teams} \
         counting the listing of each verified organization's {teams} team(s)) against {} for \
         the full refresh; listing {listing_calls} calls, role holders {}, members {}, team role \
         holders {}, team members {}; memberships of {} organizations read ({} changed, {} \
         rolling, {} unknown), {} from the state; the plan: {} steps",
        observed.calls.total() + 1,
        parts.organization_role_holders,
        parts.memberships,
        parts.team_role_holders,
        parts.team_members,
        counts.verified,
        selection.changed.len(),
        selection.due.len(),
        selection.unknown.len(),
        counts.from_state,
        plan.steps.len(),
    );
    assert!(
        calls <= budget,
        "{calls} calls, over the budget of {budget}"
    );
}

/// Seeds a sandbox database with [`ORGANIZATIONS`] organizations.
fn seed(dir: &Path) -> std::path::PathBuf {
    let db = dir.join("sandbox.db");
    let seeded = sandbox::seed(
        &Storage::File(db.clone()),
        &SeedOptions {
            organizations: ORGANIZATIONS,
            seed: 7,
            today: jiff::civil::date(2026, 11, 28),
        },
    )
    .expect("seeding");
    println!(
        "seeded sandbox: {} organizations, {} users",
        seeded.organizations, seeded.users
    );
    db
}

/// The sandbox on `db`, and a client of it.
async fn serve(db: &Path) -> (RunningSandbox, Client) {
    let running = sandbox::start(sandbox::Config {
        storage: Storage::File(db.to_owned()),
        ..sandbox::Config::default()
    })
    .await
    .expect("the sandbox starts");
    let client = Client::new(
        &format!("http://{}", running.addr()),
        Token::new(sandbox::DEFAULT_TOKEN).expect("a token"),
        ClientOptions::default(),
    )
    .expect("a client");
    (running, client)
}

/// This thread's CPU time (Linux: `/proc/thread-self/schedstat`, nanoseconds on a CPU), so
/// that other work on a busy machine does not count; `None` elsewhere (wall time is used).
fn thread_cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}
