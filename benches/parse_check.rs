//! Parse + check throughput on generated policy sets of about 1 KB, 100 KB and 10 MB.
//! Run with `cargo bench --bench parse_check`. Budget (DESIGN.md): at least 20 MB/s.
//!
//! Two rates per size: in process (the median of many runs of `syntax::parse_all` and
//! `check::check`: the parse + check rate the budget is about), and a fresh `charter check
//! FILE` process (the median wall time of a few runs, less that of checking an empty file:
//! what one command costs, its memory's first touch and its threads' start included).

#![allow(clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use charter::check;
use charter::source::Sources;
use charter::syntax;

// The same allocator as the `charter` binary, so the numbers are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BASE: &str = include_str!("../tests/check/prelude.charter");

/// A policy set of at least `bytes` bytes: `base`, then families of tiers (each extending the
/// previous one a few levels deep), add-ons and rules, in the shape of `policies/acme`.
fn generate(bytes: usize) -> String {
    let mut text = String::with_capacity(bytes + 4096);
    text.push_str("instance {\n  flags = [feature_variables, feature_scenario_inputs]\n}\n\n");
    text.push_str(BASE);
    let mut i = 0usize;
    while text.len() < bytes {
        let parent = if i.is_multiple_of(5) {
            "base".to_string()
        } else {
            format!("tier_{}", i - 1)
        };
        text.push_str(&format!(
            "\n# Tier {i}: a step up from {parent}.\ntier tier_{i} extends {parent} {{\n  \
             operations += 10_000\n  transfer = {} GB\n  interval = {} min\n  scenarios *= 2\n  \
             apiLimit = {}\n  auditLogsDays = {} days\n  analyticsAccess = {}\n  \
             customVariables = true\n}}\n",
            1 + i % 5,
            15 - (i % 5) * 3,
            60 * (1 + i % 5),
            30 + (i % 5) * 30,
            i % 5 >= 2,
        ));
        if i % 5 == 4 {
            let names: Vec<String> = (i - 4..=i).map(|n| format!("tier_{n}")).collect();
            text.push_str(&format!(
                "addon extra_{i} {{ operations += 5_000; transfer += 1 GB }}\n\
                 assert ladder {}\n\
                 assert for {}: operations >= 2 * tier_{}.operations and transfer <= 1 TB\n",
                names.join(" < "),
                names[4],
                i - 4
            ));
        }
        i += 1;
    }
    text.push_str("\nassert for all: dynamicConnections implies dynamicDependencies\n");
    text
}

/// Parses and checks once; returns the number of tiers, the time spent parsing and checking,
/// and the time spent parsing. Freeing the syntax tree and the program afterwards is not
/// timed (`charter check` does not wait for it either: it exits).
fn parse_and_check(text: &str) -> (usize, Duration, Duration) {
    let mut sources = Sources::new();
    sources.add("bench.charter", text);
    let start = Instant::now();
    let parsed = syntax::parse_all(&sources).expect("the generated policy parses");
    let parsing = start.elapsed();
    let checked = check::check(&parsed);
    let elapsed = start.elapsed();
    assert!(
        !checked.diagnostics.has_errors(),
        "the generated policy checks: {:?}",
        checked.diagnostics.errors().next()
    );
    (
        checked.program.map_or(0, |p| p.tiers.len()),
        elapsed,
        parsing,
    )
}

/// The median wall time of `runs` runs of `charter check path`.
fn charter_check(path: &Path, runs: usize) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let status = Command::new(env!("CARGO_BIN_EXE_charter"))
                .arg("check")
                .arg(path)
                .output()
                .expect("charter runs");
            let elapsed = start.elapsed();
            assert!(
                status.status.success(),
                "charter check fails on {}",
                path.display()
            );
            elapsed
        })
        .collect();
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

fn main() {
    println!("parse + check throughput (budget: >= 20 MB/s)");
    let dir = std::env::temp_dir().join(format!("charter-bench-parse-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch folder");
    let empty = dir.join("empty.charter");
    std::fs::write(&empty, "").expect("written");
    let start_up = charter_check(&empty, 15);
    println!(
        "(`charter check` of an empty file takes {:.1} ms: start-up, taken off below)",
        start_up.as_secs_f64() * 1e3
    );
    let mut below = Vec::new();
    for (label, size) in [("1 KB", 1_000), ("100 KB", 100_000), ("10 MB", 10_000_000)] {
        let text = generate(size);
        let mut runs: Vec<(Duration, Duration)> = Vec::new();
        let mut total = Duration::ZERO;
        while runs.len() < 5 || (total < Duration::from_secs(3) && runs.len() < 2_000) {
            let (tiers, elapsed, parsing) = parse_and_check(&text);
            total += elapsed;
            runs.push((elapsed, parsing));
            assert!(tiers > 0);
        }
        runs.sort();
        let (median, parsing) = runs.get(runs.len() / 2).copied().unwrap_or_default();
        let rate = |d: Duration| text.len() as f64 / 1e6 / d.as_secs_f64();
        let file = dir.join(format!("{}.charter", size));
        std::fs::write(&file, &text).expect("written");
        let process = charter_check(&file, if size > 1_000_000 { 5 } else { 15 });
        let cold = process.saturating_sub(start_up);
        println!(
            "{label:>7}: {:>10} bytes: in process {:>8.3} ms, {:>6.1} MB/s (median of {}, \
             {:.0} % parsing); `charter check` {:>8.3} ms, {:>6.1} MB/s",
            text.len(),
            median.as_secs_f64() * 1e3,
            rate(median),
            runs.len(),
            parsing.as_secs_f64() / median.as_secs_f64() * 100.0,
            cold.as_secs_f64() * 1e3,
            rate(cold),
        );
        // The budget is the parse + check rate; a fresh process also pays for its memory's
        // first touch and its threads' start, shown beside it for what one command costs.
        if rate(median) < 20.0 {
            below.push(label);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    if below.is_empty() {
        println!("every size meets the budget");
    } else {
        println!("below the budget: {}", below.join(", "));
    }
}
