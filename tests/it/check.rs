//! Data-driven checker tests: every `tests/check/ok/*` fixture compiles, and its license
//! objects (and any warnings) are a reviewed snapshot; every `tests/check/err/*` fixture fails,
//! and its rendered diagnostics are a reviewed snapshot. A fixture is a `.charter` file or a
//! directory of them; `tests/check/prelude.charter` is loaded with each one.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use charter::compile;
use charter::diagnostic::{RenderOptions, render_human};
use charter::policy;
use charter::source::Sources;

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/check");

fn load(path: &Path) -> Sources {
    let root = Path::new(ROOT);
    let mut sources = Sources::new();
    let prelude = std::fs::read_to_string(root.join("prelude.charter")).unwrap();
    sources.add("prelude.charter", prelude);
    let mut files = if path.is_dir() {
        std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "charter"))
            .collect()
    } else {
        vec![path.to_path_buf()]
    };
    files.sort();
    for file in files {
        let name = file.strip_prefix(root).unwrap().display().to_string();
        sources.add(name, std::fs::read_to_string(&file).unwrap());
    }
    sources
}

/// Checks the fixture (with the rosters it names); returns the rendered diagnostics and the
/// program if it compiled.
fn run(path: &Path) -> (String, Option<charter::model::Program>) {
    let options = RenderOptions {
        color: false,
        width: 100,
    };
    let render = |sources: &charter::source::Sources, diags: &[charter::diagnostic::Diagnostic]| {
        diags
            .iter()
            .map(|d| render_human(sources, d, options))
            .collect::<Vec<_>>()
            .join("\n")
    };
    match policy::check_sources(load(path), Path::new(ROOT)) {
        Err(policy::Failure::Syntax(sources, errors)) => (render(&sources, &errors), None),
        Err(policy::Failure::Load(e)) => panic!("{e}"),
        Ok(set) => (
            render(&set.sources, &set.checked.diagnostics.0),
            set.checked.program,
        ),
    }
}

fn fixtures(dir: &str) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(Path::new(ROOT).join(dir))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    out.sort();
    out
}

#[test]
fn ok_fixtures_compile_to_their_snapshots() {
    for path in fixtures("ok") {
        let (diagnostics, program) = run(&path);
        let program =
            program.unwrap_or_else(|| panic!("{} failed:\n{diagnostics}", path.display()));
        let licenses = compile::all_tier_licenses(&program);
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        let mut snapshot = serde_json::to_string_pretty(&licenses).unwrap();
        if !program.customers.is_empty() {
            // Customers' desired states on a fixed day.
            let at = charter::model::time::parse_instant("2027-01-01").unwrap();
            snapshot.push_str("\n\n--- customers at 2027-01-01 ---\n");
            for c in &program.customers {
                let d = compile::customer::desired(&program, c, &Default::default(), at);
                snapshot.push_str(&serde_json::to_string(&d.to_json()).unwrap());
                snapshot.push('\n');
            }
        }
        if !diagnostics.is_empty() {
            snapshot.push_str("\n\n--- warnings ---\n");
            snapshot.push_str(&diagnostics);
        }
        insta::with_settings!({ prepend_module_to_snapshot => false, omit_expression => true }, {
            insta::assert_snapshot!(format!("ok__{name}"), snapshot);
        });
    }
}

#[test]
fn err_fixtures_fail_with_their_snapshots() {
    for path in fixtures("err") {
        let (diagnostics, program) = run(&path);
        assert!(
            program.is_none(),
            "{} was expected to fail but compiled",
            path.display()
        );
        assert!(!diagnostics.is_empty());
        let name = path.file_stem().unwrap().to_string_lossy().to_string();
        insta::with_settings!({ prepend_module_to_snapshot => false, omit_expression => true }, {
            insta::assert_snapshot!(format!("err__{name}"), diagnostics);
        });
    }
}

/// Rendering N diagnostics of a file costs O(file + N): each excerpt reads the lines around its
/// labels, not the file (which made 20,000 roster errors take over half a minute). 2,000
/// diagnostics spread over a 10 MB file take well under a second here; reading the file for
/// each would take minutes.
#[test]
fn rendering_many_diagnostics_of_a_large_file_is_linear() {
    use charter::diagnostic::Diagnostic;
    use charter::source::Span;

    let line = "key,name,tier,owner,some more text to make the line longer than usual\n";
    let lines = 10_000_000 / line.len();
    let mut sources = Sources::new();
    let file = sources.add("big.csv", line.repeat(lines));
    let diagnostics: Vec<Diagnostic> = (0..2_000)
        .map(|i| {
            let start = (i * (lines / 2_000) + 1) * line.len() + 9;
            Diagnostic::error("charter::unknown_tier", "unknown tier `tier`")
                .with_label(Span::new(file, start, start + 4), "no tier has this name")
        })
        .collect();
    let started = std::time::Instant::now();
    let mut rendered = 0;
    for d in &diagnostics {
        let text = render_human(&sources, d, RenderOptions::default());
        assert!(text.contains("no tier has this name"), "{text}");
        rendered += text.len();
    }
    let elapsed = started.elapsed();
    assert!(rendered > 0);
    assert!(
        elapsed < std::time::Duration::from_secs(30),
        "rendering 2,000 diagnostics of a 10 MB file took {elapsed:?}"
    );
}
