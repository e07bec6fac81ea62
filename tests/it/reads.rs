//! Reading a rate-limited instance, as `plan`, `apply`, `run`, `import`, `instance` and
//! `diff --live` do: every read goes through the limiter that the apply after it shares, a 429
//! slows the limiter instead of failing the read, and a reading that met a changing instance is
//! made again.
//!
//! Against the sandbox over loopback HTTP. Make counts calls per minute; here the sandbox counts
//! over a 3-second window, and the client's limiter with it, so that an instance larger than
//! the limit is read across several of the limit's "minutes" in seconds.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use charter::api::{
    ApiErrorKind, Client, ClientOptions, Limiter, Pacing, RateLimit, RetryPolicy, Token, observe,
};
use charter::apply::{self, Options};
use charter::cli::config::{self, InstanceArgs};
use charter::model::program::Program;
use charter::model::time::parse_instant;
use charter::schedule::prepare;
use charter::state::Store;
use charter_sandbox::{
    self as sandbox, Config, RunningSandbox, SeedOptions, Storage, TokenGrant, TokenRole,
};

const SA: &str = "sa-reads-secret-token";
const OTHER: &str = "other-reads-secret-token";
/// The sandbox's counting window, and the client's.
const WINDOW: Duration = Duration::from_secs(3);

fn scratch(name: &str) -> common::Scratch {
    common::scratch("reads", name)
}

/// A sandbox on a database seeded with `organizations`, limited to `limit` calls per token per
/// [`WINDOW`].
async fn seeded(dir: &Path, organizations: u32, limit: u32) -> RunningSandbox {
    let storage = Storage::File(dir.join("sandbox.db"));
    let today = jiff::civil::date(2026, 3, 1);
    let report = sandbox::seed(
        &storage,
        &SeedOptions {
            organizations,
            seed: 11,
            today,
        },
    )
    .unwrap();
    assert_eq!(report.organizations, organizations);
    sandbox::start(Config {
        storage,
        tokens: vec![
            TokenGrant::new(SA, TokenRole::SystemAdministrator),
            TokenGrant::new(OTHER, TokenRole::SystemAdministrator),
        ],
        rate_limit_per_minute: Some(limit),
        rate_limit_window: WINDOW,
        ..Config::default()
    })
    .await
    .unwrap()
}

fn client(running: &RunningSandbox, token: &str) -> Client {
    Client::new(
        &format!("http://{}", running.addr()),
        Token::new(token).unwrap(),
        ClientOptions::default(),
    )
    .unwrap()
}

/// The example's tiers and lifecycle with a roster of `customers` new customers of its own.
fn roster(dir: &Path, customers: u32) -> Program {
    let policy = dir.join("policy");
    common::copy_acme_catalog_into(&policy);
    common::write_roster(&policy, customers);
    let set = charter::policy::load(&policy).unwrap_or_else(|_| panic!("the policy set loads"));
    set.checked
        .program
        .unwrap_or_else(|| panic!("the policy set checks"))
}

/// `plan` against an instance whose reading takes about twice the limit, then the apply of a
/// roster, through one paced client. The instance counts over a sliding window and refuses
/// every call past charter's share of the limit (its own limit is that share), and not one call
/// of the command, read or write, is refused: no sliding window held more than the share. Each
/// window's share goes at once: the command takes the windows it must wait for, not the time of
/// evenly paced calls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_that_reads_and_writes_never_has_more_than_the_share_in_a_window() {
    const LIMIT: u32 = 30;
    let share = 0.9;
    let limit = RateLimit {
        per_minute: LIMIT,
        share,
    };
    let allowance = limit.allowance();
    assert_eq!(allowance, 27);
    let dir = scratch("larger");
    let running = seeded(&dir, 40, allowance).await;

    // Unpaced, the same reading is refused: it takes more calls than the limit.
    let plain = client(&running, OTHER);
    let error = observe(&plain).await.unwrap_err();
    assert!(
        matches!(error.kind, ApiErrorKind::RateLimited { .. }),
        "{error}"
    );
    assert_eq!(plain.calls(), u64::from(allowance) + 1);

    let limiter = Limiter::new(limit).with_window(WINDOW);
    let pacing = Pacing::new(limiter.clone(), RetryPolicy::default(), 1);
    let paced = client(&running, SA).paced(pacing.clone());
    let state = Store::open_file(&dir.join("state.db")).unwrap();
    let program = roster(&dir, 6);
    let at = parse_instant("2026-03-01").unwrap();

    let started = Instant::now();
    let sandbox = charter::schedule::Instance {
        name: "the sandbox",
        instance_id: None,
    };
    // Every organization's memberships, as a plan with `--refresh full` reads them.
    let full = charter::schedule::ReadOptions {
        refresh: charter::plan::reading::Refresh::Full,
        ..Default::default()
    };
    let prepared = prepare(
        &paced,
        &state,
        &program,
        at,
        sandbox,
        &Default::default(),
        &full,
    )
    .await
    .unwrap();
    let reads = paced.calls();
    assert_eq!(
        reads,
        prepared.observed.calls.total() + 1,
        "the observation and `GET /users/me`"
    );
    assert!(reads > 2 * u64::from(LIMIT) - 10, "{reads} calls");
    assert_eq!(pacing.rate_limited(), 0, "no read met a 429");
    assert_eq!(pacing.retries(), 0, "no read was repeated");
    assert_eq!(prepared.observed.organizations.len(), 40);

    let plan = prepared.plan;
    assert!(plan.calls() >= 40, "{}", charter::plan::render_text(&plan));
    let lock = state.acquire_lock("reads test").unwrap();
    let report = apply::execute(
        &paced,
        &state,
        Some(&lock),
        &plan,
        &Options::default(),
        at,
        &mut (),
    )
    .await
    .unwrap();
    let elapsed = started.elapsed();
    lock.release().unwrap();
    assert!(report.succeeded(), "{}", report.summary());
    assert_eq!(report.rate_limited, 0, "{}", report.summary());
    assert_eq!(report.smooth_rate, None, "{}", report.summary());
    let calls = paced.calls();
    assert_eq!(calls, reads + report.calls);
    assert_eq!(
        limiter.calls(),
        calls,
        "the reads and the apply went through one limiter"
    );
    // Every window's share at once: the windows it had to wait for, and the time of the last
    // calls. Evenly paced, the calls after the last full window would have taken their share
    // of a window too.
    let allowance = u64::from(allowance);
    let windows = u32::try_from(calls.div_ceil(allowance) - 1).unwrap();
    let evenly = WINDOW.mul_f64((calls - 1) as f64 / allowance as f64);
    assert!(
        elapsed >= WINDOW * windows && elapsed < WINDOW * windows + WINDOW / 2,
        "{calls} calls in {elapsed:?}: {windows} windows to wait for; evenly {evenly:?}"
    );
    running.shutdown().await.unwrap();
}

/// Without a configured limit, the reading goes at once until the instance's first 429; the
/// limiter then takes what got through as the limit, waits out the window, and reads the rest
/// under it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_a_limit_the_reads_learn_it_from_the_first_429() {
    const LIMIT: u32 = 60;
    let dir = scratch("adaptive");
    let running = seeded(&dir, 60, LIMIT).await;
    let limiter = Limiter::adaptive().with_window(WINDOW);
    let pacing = Pacing::new(limiter.clone(), RetryPolicy::default(), 2);
    let paced = client(&running, SA).paced(pacing.clone());

    let observed = observe(&paced).await.unwrap();
    assert_eq!(observed.organizations.len(), 60);
    assert!(paced.calls() > u64::from(LIMIT) + 10, "{}", paced.calls());
    let refused = pacing.rate_limited();
    assert!((1..=3).contains(&refused), "{refused} × 429");
    assert_eq!(limiter.limit(), Some(f64::from(LIMIT)), "the limit learned");
    assert_eq!(paced.calls(), observed.calls.total());
    running.shutdown().await.unwrap();
}

/// An instance that changed while it was read (its answers contradict each other) is read
/// again from the start; without pacing, the contradiction is the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reading_that_met_a_changing_instance_is_made_again() {
    // User 6 is listed in team 10, under none of its roles, the first time only: as if they
    // had been added while the team was read.
    static LISTED: AtomicUsize = AtomicUsize::new(0);
    let addr = common::contradicting_instance(std::sync::Arc::new(|| {
        LISTED.fetch_add(1, Ordering::SeqCst) == 0
    }))
    .await;
    let pacing = Pacing::new(Limiter::off(), RetryPolicy::default(), 3);
    let paced = Client::new(
        &format!("http://{addr}"),
        Token::new(SA).unwrap(),
        ClientOptions::default(),
    )
    .unwrap()
    .paced(pacing.clone());
    let observed = observe(&paced).await.unwrap();
    assert_eq!(pacing.retries(), 1, "read twice");
    let calls = observed.calls;
    assert!(calls.reread > 0);
    assert_eq!(calls.total(), paced.calls(), "both readings counted");
    let team = &observed.organizations[0].teams[0];
    assert_eq!(team.id, 10);
    assert_eq!(
        team.members.iter().map(|m| m.user_id).collect::<Vec<_>>(),
        [5]
    );
    // The same contradiction read by an unpaced client is the error (the first reading only
    // contradicts itself, so a new server state is not needed: the count goes on).
    LISTED.store(0, Ordering::SeqCst);
    let plain = Client::new(
        &format!("http://{addr}"),
        Token::new(SA).unwrap(),
        ClientOptions::default(),
    )
    .unwrap();
    let error = observe(&plain).await.unwrap_err();
    assert!(
        matches!(error.kind, ApiErrorKind::Inconsistent { .. }),
        "{error}"
    );
}

/// The command line's pacing follows `rate_limit`: at 95 % of it when there is one, learning
/// from 429s when there is none.
#[test]
fn the_configuration_gives_the_pacing() {
    let dir = scratch("config");
    let no_env = |_: &str| None;
    std::fs::write(dir.join("charter.toml"), "[instance]\nrate_limit = 40\n").unwrap();
    let configured = config::load(&dir, &InstanceArgs::default(), &no_env).unwrap();
    let pacing = configured.pacing();
    assert_eq!(pacing.limiter.limit(), Some(40.0));
    assert_eq!(pacing.retry, RetryPolicy::default());
    std::fs::write(dir.join("charter.toml"), "[instance]\n").unwrap();
    let unconfigured = config::load(&dir, &InstanceArgs::default(), &no_env).unwrap();
    let limiter = unconfigured.pacing().limiter;
    assert!(limiter.is_on() && limiter.limit().is_none(), "adaptive");
}

use crate::common;

use common::charter;

/// The binary against an instance that answers a quarter of its calls with 429: `charter
/// instance` and `charter plan` wait them out and finish (a high `rate_limit` keeps the test
/// quick: the limiter slows to half of it, never below).
#[test]
fn the_commands_wait_out_429s() {
    let running = sandbox::BlockingSandbox::start(Config {
        tokens: vec![TokenGrant::new(SA, TokenRole::SystemAdministrator)],
        faults: "429=0.25".parse().unwrap(),
        seed: 4,
        ..Config::default()
    })
    .unwrap();
    let dir = scratch("commands");
    let acme = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/acme");
    for entry in std::fs::read_dir(&acme).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
    }
    std::fs::write(
        dir.join("charter.toml"),
        "[instance]\ntoken_env = \"READS_TOKEN\"\nrate_limit = 6000\n",
    )
    .unwrap();
    let url = format!("http://{}", running.addr());
    let env = [("CHARTER_INSTANCE_URL", url.as_str()), ("READS_TOKEN", SA)];

    let (code, stdout, stderr) = charter(&dir, &["instance"], &env);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.starts_with(&format!("instance {url}: 0 organizations, 1 user, "))
            && stdout.contains(" × 429 waited out)"),
        "{stdout}"
    );

    let (code, stdout, stderr) = charter(&dir, &["plan"], &env);
    assert_eq!(code, 2, "changes planned: {stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
    assert!(stdout.contains("Acme Corp"), "{stdout}");
}
