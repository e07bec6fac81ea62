//! Parse + check throughput on generated policy sets of about 1 KB, 100 KB and 10 MB.
//! Run with `cargo bench --bench parse_check`. Budget (DESIGN.md): at least 20 MB/s.

#![allow(clippy::expect_used, clippy::panic)]

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

/// Parses and checks once; returns the number of tiers and the time spent parsing.
fn parse_and_check(text: &str) -> (usize, Duration) {
    let mut sources = Sources::new();
    sources.add("bench.charter", text);
    let start = Instant::now();
    let parsed = syntax::parse_all(&sources).expect("the generated policy parses");
    let parsing = start.elapsed();
    let checked = check::check(&parsed);
    assert!(
        !checked.diagnostics.has_errors(),
        "the generated policy checks: {:?}",
        checked.diagnostics.errors().next()
    );
    (checked.program.map_or(0, |p| p.tiers.len()), parsing)
}

fn main() {
    println!("parse + check throughput (budget: >= 20 MB/s)");
    for (label, size) in [("1 KB", 1_000), ("100 KB", 100_000), ("10 MB", 10_000_000)] {
        let text = generate(size);
        let mut runs = 0u32;
        let mut total = Duration::ZERO;
        let mut parsing = Duration::ZERO;
        let mut tiers = 0;
        while runs < 3 || (total < Duration::from_secs(2) && runs < 1_000) {
            let start = Instant::now();
            let (n, p) = parse_and_check(&text);
            total += start.elapsed();
            parsing += p;
            tiers = n;
            runs += 1;
        }
        let per_run = total / runs;
        let mb_per_s = text.len() as f64 / 1e6 / per_run.as_secs_f64();
        println!(
            "{label:>7}: {:>10} bytes, {tiers:>6} tiers, {:>9.3} ms per run ({:.0} % parsing), \
             {mb_per_s:>7.1} MB/s ({runs} runs)",
            text.len(),
            per_run.as_secs_f64() * 1e3,
            parsing.as_secs_f64() / total.as_secs_f64() * 100.0,
        );
    }
}
