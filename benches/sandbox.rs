//! Requests per second against the sandbox on loopback, limiter off, for one read and one write
//! endpoint.
//!
//! `cargo bench --bench sandbox` measures; under `cargo test` (no `--bench` argument) it only
//! makes a few requests of each kind, to show the benchmark still runs. Every loop is bounded
//! in count and in time, and talks to 127.0.0.1 only.

// A benchmark fails loudly.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use charter_sandbox::{self as sandbox, Config, SeedOptions, Storage};
use serde_json::json;

/// Clients sending at once.
const CLIENTS: u64 = 8;

struct Budget {
    requests: u64,
    time: Duration,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let measuring = std::env::args().any(|a| a == "--bench");
    let budget = if measuring {
        Budget {
            requests: 20_000,
            time: Duration::from_secs(10),
        }
    } else {
        Budget {
            requests: 40,
            time: Duration::from_secs(5),
        }
    };

    let path =
        std::env::temp_dir().join(format!("charter-sandbox-bench-{}.db", std::process::id()));
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    sandbox::seed(
        &Storage::File(path.clone()),
        &SeedOptions {
            organizations: 200,
            seed: 1,
            today,
        },
    )
    .unwrap();
    let running = sandbox::start(Config {
        storage: Storage::File(path.clone()),
        ..Config::default()
    })
    .await
    .unwrap();
    let base = running.url();
    let token = format!("Token {}", sandbox::DEFAULT_TOKEN);
    let client = reqwest::Client::new();

    let baseline = {
        let (client, base, token) = (client.clone(), base.clone(), token.clone());
        run(&budget, move |_| {
            client
                .get(format!("{base}/users/roles?category=organization"))
                .header("Authorization", token.clone())
                .send()
        })
        .await
    };
    report("floor", "GET /users/roles (no database)", baseline);

    let read = {
        let (client, base, token) = (client.clone(), base.clone(), token.clone());
        run(&budget, move |_| {
            client
                .get(format!(
                    "{base}/admin/organizations?pg[limit]=10&pg[offset]=50"
                ))
                .header("Authorization", token.clone())
                .send()
        })
        .await
    };
    report("read ", "GET /admin/organizations?pg[limit]=10", read);

    let write = {
        let (client, base, token) = (client.clone(), base.clone(), token.clone());
        run(&budget, move |n| {
            client
                .post(format!("{base}/admin/users"))
                .header("Authorization", token.clone())
                .json(&json!({ "name": "Bench User", "email": format!("bench-{n}@bench.example") }))
                .send()
        })
        .await
    };
    report("write", "POST /admin/users", write);

    running.shutdown().await.unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
}

/// Sends requests from [`CLIENTS`] tasks until the budget's count or time runs out; returns how
/// many succeeded and how long it took.
async fn run<F, Fut>(budget: &Budget, request: F) -> (u64, Duration)
where
    F: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = reqwest::Result<reqwest::Response>> + Send,
{
    let issued = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + budget.time;
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        let (issued, request, limit) = (Arc::clone(&issued), request.clone(), budget.requests);
        tasks.push(tokio::spawn(async move {
            let mut ok = 0_u64;
            loop {
                let n = issued.fetch_add(1, Ordering::Relaxed);
                if n >= limit || Instant::now() >= deadline {
                    break;
                }
                let response = request(n).await.unwrap();
                assert!(response.status().is_success(), "{}", response.status());
                let _ = response.bytes().await.unwrap();
                ok += 1;
            }
            ok
        }));
    }
    let mut ok = 0;
    for task in tasks {
        ok += task.await.unwrap();
    }
    (ok, started.elapsed())
}

fn report(kind: &str, endpoint: &str, (requests, elapsed): (u64, Duration)) {
    let per_second = requests as f64 / elapsed.as_secs_f64();
    println!(
        "{kind} {endpoint:<40} {requests:>6} requests in {:>6.2} s = {per_second:>8.0} requests/s ({CLIENTS} clients, loopback, limiter off)",
        elapsed.as_secs_f64()
    );
}
