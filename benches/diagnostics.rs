//! Rendering many diagnostics of one large file: 100,000 roster rows with an unknown tier each,
//! every diagnostic rendered for people (miette, with its excerpt) and as JSON. Rendering must
//! cost O(file + diagnostics): each excerpt reads only the lines around its labels. Run with
//! `cargo bench --bench diagnostics` (or `cargo run --example`-free: `cargo bench` builds it in
//! the release profile; a debug build is about ten times slower).

#![allow(clippy::expect_used, clippy::panic)]

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::time::Instant;

use charter::diagnostic::{JsonDiagnostic, RenderOptions, render_human};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const ROWS: usize = 100_000;

fn main() {
    let dir =
        std::env::temp_dir().join(format!("charter-diagnostics-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    common::copy_acme_catalog_into(&dir);
    std::fs::write(dir.join("roster.charter"), "roster \"customers.csv\"\n").expect("write");
    let mut csv = String::from("key,name,tier,owner\n");
    for i in 0..ROWS {
        csv.push_str(&format!(
            "c{i},Customer {i},platinum,owner{i}@c{i}.example\n"
        ));
    }
    std::fs::write(dir.join("customers.csv"), &csv).expect("write the roster");
    println!(
        "diagnostics: {ROWS} roster rows with an unknown tier each, {:.1} MB of CSV",
        csv.len() as f64 / 1e6
    );
    drop(csv);

    let start = Instant::now();
    let set = charter::policy::load(&dir).unwrap_or_else(|_| panic!("the roster is read"));
    let loaded = start.elapsed();
    let diagnostics = &set.checked.diagnostics.0;
    assert!(diagnostics.len() >= ROWS, "one error per row");

    let start = Instant::now();
    let mut bytes = 0;
    for d in diagnostics {
        bytes +=
            std::hint::black_box(render_human(&set.sources, d, RenderOptions::default())).len();
    }
    let human = start.elapsed();

    let start = Instant::now();
    let mut json_bytes = 0;
    for d in diagnostics {
        let line = serde_json::to_string(&JsonDiagnostic::new(&set.sources, d)).expect("json");
        json_bytes += std::hint::black_box(line).len();
    }
    let json = start.elapsed();

    println!(
        "read + parse + check: {:>8.2} s\nhuman, {} diagnostics: {:>8.2} s ({:.1} MB)\njson, {} diagnostics: {:>8.2} s ({:.1} MB)",
        loaded.as_secs_f64(),
        diagnostics.len(),
        human.as_secs_f64(),
        bytes as f64 / 1e6,
        diagnostics.len(),
        json.as_secs_f64(),
        json_bytes as f64 / 1e6,
    );
    let _ = std::fs::remove_dir_all(&dir);
}
