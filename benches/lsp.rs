//! `charter lsp`: how long after a change its diagnostics arrive, measured as an editor sees it
//! (the real binary over stdio: `didChange` written → the set's last `publishDiagnostics`
//! read). On the example policy set (goal 20 ms) and on a generated set of about 100 KB (goal
//! 100 ms); medians printed. Run with `cargo bench --bench lsp`.

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

#[path = "../tests/it/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::editor::{Editor, uri};

const ROUNDS: usize = 30;

fn main() {
    let root = common::scratch("lsp-bench", "root");

    let acme = root.join("acme");
    common::copy_acme_into(&acme);
    measure("example set", &root, &acme.join("customers.charter"), 20);

    let large = root.join("large");
    common::copy_acme_catalog_into(&large);
    let tiers = ["free", "core", "pro", "teams", "enterprise"];
    let mut text = String::new();
    let mut i = 0;
    let catalog: usize = std::fs::read_dir(&large)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len() as usize)
        .sum();
    while catalog + text.len() < 100_000 {
        text.push_str(&format!(
            "customer c{i} {{\n  name = \"Customer {i}\"\n  tier = {}\n  owner = \"owner{i}@c{i}.example\"\n  admins = [\"admin{i}@c{i}.example\"]\n  contract_end = 2027-{:02}-{:02}\n  attributes {{ region = \"eu\"; payment = \"ok\" }}\n  override {{ operations = {} }}\n}}\n\n",
            tiers[i % tiers.len()],
            1 + i % 12,
            1 + i % 28,
            1_000_000 + i
        ));
        i += 1;
    }
    std::fs::write(large.join("customers.charter"), &text).unwrap();
    println!(
        "large set: {i} customers, {} KB in all",
        (catalog + text.len()) / 1000
    );
    measure("100 KB set", &root, &large.join("customers.charter"), 100);
    let _ = std::fs::remove_dir_all(&root);
}

/// Changes `file` back and forth `ROUNDS` times and prints the median and worst latency.
fn measure(label: &str, root: &Path, file: &Path, goal_ms: u128) {
    let mut editor = Editor::start(root);
    editor.initialize(root);
    let original = std::fs::read_to_string(file).unwrap();
    editor.open(file, &original);
    let files = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .filter(|e| {
            let path = e.as_ref().unwrap().path();
            path.extension()
                .is_some_and(|x| x == "charter" || x == "csv")
        })
        .count();
    for _ in 0..files {
        editor.receive();
    }
    let target = uri(file);
    let mut times: Vec<Duration> = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS {
        // An edit that keeps the set valid: a comment that grows.
        let text = format!("{original}\n# edit {}\n", "x".repeat(round));
        let start = Instant::now();
        editor.change(file, 2 + round as i64, &text);
        let mut seen = 0;
        while seen < files {
            let message = editor.receive();
            if message["method"] == "textDocument/publishDiagnostics" {
                seen += 1;
                if message["params"]["uri"] == target {
                    assert!(
                        message["params"]["diagnostics"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .all(|d| d["severity"] != 1),
                        "the set stays valid"
                    );
                }
            }
        }
        times.push(start.elapsed());
    }
    times.sort();
    let median = times[times.len() / 2];
    let worst = times[times.len() - 1];
    println!(
        "{label}: diagnostics {:.1} ms after a change (median of {ROUNDS}; worst {:.1} ms; goal {goal_ms} ms)",
        median.as_secs_f64() * 1e3,
        worst.as_secs_f64() * 1e3
    );
    assert_eq!(editor.shutdown_and_exit(), 0);
}
