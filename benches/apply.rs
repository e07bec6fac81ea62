//! The executor against rate-limited sandboxes: wall time ÷ (calls ÷ limit) and the 429s met,
//! charter's executor (token bucket at its default share, concurrency 4) side by side with a
//! naive one (concurrency 10, no bucket, a 429 retried after a random wait of up to a second)
//! on the same plan; then, with no limit anywhere, calls per second on loopback.
//!
//! Run with `cargo bench --bench apply` (about three minutes: the plan takes about 2.5 times
//! the limit, and both executors run at once, each against its own sandbox). Budget
//! (DESIGN.md): within 5 % of `calls ÷ limit`, no 429 in steady state, ≥ 5,000 calls/s with the
//! limiter off. `CHARTER_BENCH_CUSTOMERS` and `CHARTER_BENCH_LIMIT` change the size and the
//! limit (requests per minute).

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use charter::api::{Client, ClientOptions, Token, observe};
use charter::apply::{self, Options, Report, RetryPolicy};
use charter::model::program::Program;
use charter::plan::{self, Plan};
use charter::sandbox::{self, Config, RunningSandbox, TokenGrant, TokenRole};
use charter::state::State;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const PLANNER: &str = "bench-planner";
const APPLIER: &str = "bench-applier";

fn env_number(name: &str, default: u32) -> u32 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The example policy set's tiers and lifecycle with a roster of `customers` new customers
/// (an owner, an admin and two members each: eight calls).
fn policy(dir: &Path, customers: u32) -> Program {
    common::copy_acme_catalog_into(dir);
    common::write_roster(dir, customers);
    let set = charter::policy::load(dir).unwrap_or_else(|_| panic!("the roster loads"));
    set.checked.program.expect("the roster checks")
}

async fn sandbox(limit: Option<u32>) -> RunningSandbox {
    sandbox::start(Config {
        tokens: vec![
            TokenGrant::new(PLANNER, TokenRole::SystemAdministrator),
            TokenGrant::new(APPLIER, TokenRole::SystemAdministrator),
        ],
        rate_limit_per_minute: limit,
        ..Config::default()
    })
    .await
    .expect("a sandbox")
}

fn client(running: &RunningSandbox, token: &str) -> Client {
    Client::new(
        &format!("http://{}", running.addr()),
        Token::new(token).expect("a token"),
        ClientOptions::default(),
    )
    .expect("a client")
}

/// Observes with the planner's token (the applier's minute starts untouched) and plans.
async fn make_plan(running: &RunningSandbox, program: &Program) -> Plan {
    let observed = observe(&client(running, PLANNER))
        .await
        .expect("the sandbox is read");
    plan::plan(
        program,
        0,
        &plan::Memory::default(),
        &observed,
        &plan::Context::default(),
    )
    .unwrap_or_else(|errors| panic!("no plan: {errors:?}"))
    .seal()
}

async fn run(running: &RunningSandbox, state: &Path, plan: &Plan, options: &Options) -> Report {
    let state = State::open(state).expect("a state");
    let report = apply::execute(
        &client(running, APPLIER),
        &state,
        None,
        plan,
        options,
        plan.at,
        &mut (),
    )
    .await
    .expect("the state is written");
    assert!(report.succeeded(), "{}", report.summary());
    report
}

fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("charter-apply-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    dir
}

fn main() {
    let customers = env_number("CHARTER_BENCH_CUSTOMERS", 190);
    let limit = env_number("CHARTER_BENCH_LIMIT", 600);
    let dir = scratch();
    let program = policy(&dir, customers);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    // `CHARTER_BENCH_ONLY=open` runs only the part without a limit.
    let only_open = std::env::var("CHARTER_BENCH_ONLY").is_ok_and(|v| v == "open");
    runtime.block_on(async {
        if !only_open {
            limited(&program, customers, limit, &dir).await;
        }
        open(&program, &dir).await;
    });
    let _ = std::fs::remove_dir_all(&dir);
}

/// Rate-limited: charter's executor and the naive one, each against its own sandbox (the same
/// start, so the same plan holds for both), at the same time.
async fn limited(program: &Program, customers: u32, limit: u32, dir: &Path) {
    let ours_sandbox = sandbox(Some(limit)).await;
    let naive_sandbox = sandbox(Some(limit)).await;
    let plan = make_plan(&ours_sandbox, program).await;
    let calls = plan.calls();
    let ideal = Duration::from_secs_f64(calls as f64 * 60.0 / f64::from(limit));
    println!(
        "plan: {customers} customers, {} steps, {calls} calls; limit {limit}/min, so calls ÷ limit = {:.1} s",
        plan.steps.len(),
        ideal.as_secs_f64()
    );
    println!(
        "running both executors (about {:.0} s) …",
        ideal.as_secs_f64() * 1.05
    );
    let ours_options = Options::with_rate_limit(Some(limit));
    let naive_options = Options {
        concurrency: 10,
        rate_limit: None,
        // A 429 teaches the naive executor nothing.
        adapt: false,
        retry: RetryPolicy {
            max_attempts: u32::MAX,
            base: Duration::from_secs(1),
            cap: Duration::from_secs(1),
            settle: Duration::ZERO,
            patience: Duration::MAX,
        },
        ..Options::default()
    };
    let started = Instant::now();
    let (ours, naive) = tokio::join!(
        async {
            let report = run(&ours_sandbox, &dir.join("ours.db"), &plan, &ours_options).await;
            (report, started.elapsed())
        },
        async {
            let report = run(&naive_sandbox, &dir.join("naive.db"), &plan, &naive_options).await;
            (report, started.elapsed())
        },
    );
    println!(
        "{:<36} {:>9} {:>16} {:>7} {:>7}",
        "executor", "wall (s)", "÷ (calls÷limit)", "429s", "calls"
    );
    for (name, (report, wall)) in [
        ("charter (bucket at 95 %, 4 at once)", &ours),
        ("naive (10 at once, retry on 429)", &naive),
    ] {
        println!(
            "{:<36} {:>9.1} {:>16.3} {:>7} {:>7}",
            name,
            wall.as_secs_f64(),
            wall.as_secs_f64() / ideal.as_secs_f64(),
            report.rate_limited,
            report.calls
        );
    }
    ours_sandbox.shutdown().await.expect("shutdown");
    naive_sandbox.shutdown().await.expect("shutdown");
}

/// No limit: how fast the executor goes on loopback (the journal on disk: intents synced,
/// outcomes taken to the disk by the next sync).
async fn open(program: &Program, dir: &Path) {
    for concurrency in [4, 16] {
        let open = sandbox(None).await;
        let plan = make_plan(&open, program).await;
        let options = Options {
            concurrency,
            ..Options::default()
        };
        let state = dir.join(format!("open-{concurrency}.db"));
        let started = Instant::now();
        let report = run(&open, &state, &plan, &options).await;
        let wall = started.elapsed();
        println!(
            "limiter off, {concurrency:>2} at once: {} calls in {:.2} s = {:.0} calls/s ({} × 429)",
            report.calls,
            wall.as_secs_f64(),
            report.calls as f64 / wall.as_secs_f64(),
            report.rate_limited
        );
        open.shutdown().await.expect("shutdown");
    }
}
