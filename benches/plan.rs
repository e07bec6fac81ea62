//! Planning 10,000 organizations: a sandbox seeded with 10,000 organizations is read over
//! loopback HTTP (the API calls it costs are printed), a policy set is written that adopts
//! every one of them (their people, a tier by their operations — so many licenses differ), and
//! the pure diff is timed. Run with `cargo bench --bench plan`. Budget (DESIGN.md): < 100 ms
//! of CPU for the diff.

#![allow(clippy::expect_used, clippy::panic, clippy::unwrap_used)]

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use charter::api::{Client, ClientOptions, Token, observe};
use charter::plan::{self, Context, Memory};
use charter_sandbox::{self as sandbox, SeedOptions, Storage};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ORGANIZATIONS: u32 = 10_000;

fn main() {
    let dir = std::env::temp_dir().join(format!("charter-plan-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    // Reading 10,000 organizations over HTTP takes a while on a small machine: the snapshot is
    // kept in `target/` and reused (delete it to read again).
    let cache = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-plan-observed.json");
    // A snapshot an older charter wrote (another shape of `Observed`) is read again.
    let cached = std::fs::read(&cache)
        .ok()
        .and_then(|bytes| serde_json::from_slice::<charter::api::Observed>(&bytes).ok());
    let (observed, read_time) = match cached {
        Some(observed) => {
            println!("reusing the snapshot read earlier ({})", cache.display());
            (observed, None)
        }
        None => {
            let (observed, elapsed) = read_seeded_sandbox(&dir);
            std::fs::write(&cache, serde_json::to_vec(&observed).expect("json")).expect("cache");
            (observed, Some(elapsed))
        }
    };
    // `observe` fingerprints every object while reading; a snapshot loaded from the cache
    // does it here, outside the timing, the same way.
    let observed: charter::api::Observed = observed;
    for o in &observed.organizations {
        o.fingerprint();
    }
    for u in &observed.users {
        u.fingerprint();
    }
    let calls = &observed.calls;
    println!(
        "read: {} API calls for {} organizations and {} users in {:.2} s \
         (roles {}, organizations {}, users {}, role holders {}, memberships {}, team holders {}, \
         team members {})",
        calls.total(),
        observed.organizations.len(),
        observed.users.len(),
        read_time.map_or(f64::NAN, |t| t.as_secs_f64()),
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
    let _ = std::fs::remove_dir_all(&dir);
}

/// This thread's CPU time (Linux: `/proc/thread-self/schedstat`, nanoseconds on a CPU), so
/// that other work on a busy machine does not count; `None` elsewhere (wall time is used).
fn thread_cpu_time() -> Option<Duration> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    let nanos: u64 = text.split_whitespace().next()?.parse().ok()?;
    Some(Duration::from_nanos(nanos))
}

/// Seeds a sandbox with [`ORGANIZATIONS`] organizations and reads it over loopback HTTP.
fn read_seeded_sandbox(dir: &Path) -> (charter::api::Observed, Duration) {
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
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async {
        let running = sandbox::start(sandbox::Config {
            storage: Storage::File(db.clone()),
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
        let start = Instant::now();
        let observed = observe(&client).await.expect("observe");
        let elapsed = start.elapsed();
        running.shutdown().await.expect("shutdown");
        (observed, elapsed)
    })
}
