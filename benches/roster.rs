//! A 100,000-customer roster: time and peak memory to check it and compile every customer's
//! desired state. Run with `cargo bench --bench roster`. Budget (DESIGN.md): under 1 s and
//! under 500 MB.

#![allow(clippy::expect_used, clippy::panic)]

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::time::Instant;

// The same allocator as the `charter` binary, so the numbers are the binary's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CUSTOMERS: usize = 100_000;

fn main() {
    let dir = std::env::temp_dir().join(format!("charter-roster-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    common::copy_acme_catalog_into(&dir);
    std::fs::write(dir.join("roster.charter"), "roster \"customers.csv\"\n").expect("write");
    let tiers = ["free", "core", "pro", "teams", "enterprise"];
    let addons = [
        "",
        "extra_ops",
        "extra_transfer",
        "analytics",
        "extra_ops;analytics",
    ];
    let mut csv =
        String::from("key,name,tier,addons,owner,admins,members,contract_end,region,payment\n");
    for i in 0..CUSTOMERS {
        csv.push_str(&format!(
            "c{i},Customer {i},{},{},owner{i}@c{i}.example,admin{i}@c{i}.example,m{i}a@c{i}.example;m{i}b@c{i}.example,{}-{:02}-{:02},{},{}\n",
            tiers[i % tiers.len()],
            addons[(i / 5) % addons.len()],
            2026 + i % 4,
            1 + i % 12,
            1 + i % 28,
            if i % 2 == 0 { "eu" } else { "us" },
            if i % 17 == 0 { "overdue" } else { "ok" },
        ));
    }
    std::fs::write(dir.join("customers.csv"), &csv).expect("write the roster");
    println!(
        "roster: {CUSTOMERS} customers, {:.1} MB of CSV (budget: check + compile < 1 s, < 500 MB)",
        csv.len() as f64 / 1e6
    );
    drop(csv);

    let start = Instant::now();
    let set = charter::policy::load(&dir).unwrap_or_else(|_| panic!("the roster loads"));
    let checked = start.elapsed();
    let program = set.checked.program.expect("the roster checks");
    assert_eq!(program.customers.len(), CUSTOMERS);
    let at = charter::model::time::parse_instant("2027-06-01").expect("a date");
    let history = charter::compile::customer::History::default();
    let mut frozen = 0;
    for c in &program.customers {
        let d = charter::compile::customer::desired(&program, c, &history, at);
        if d.walk.state != "active" {
            frozen += 1;
        }
        std::hint::black_box(d.license_object());
    }
    let total = start.elapsed();
    println!(
        "read + parse + check: {:>7.1} ms\ncompile all at 2027-06-01: {:>7.1} ms ({frozen} not active)\ntotal: {:>7.1} ms\npeak memory: {}",
        checked.as_secs_f64() * 1e3,
        (total - checked).as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e3,
        peak_memory().unwrap_or_else(|| "unknown (no /proc/self/status)".to_string())
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The process's peak resident memory, from Linux's `/proc/self/status`.
fn peak_memory() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(format!("{:.0} MB", kb / 1024.0))
}
