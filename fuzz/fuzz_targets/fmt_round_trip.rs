//! Formatting never panics, formatted text parses, formats to itself, and compiles to the same
//! license objects as the original (mirrored by the proptests in `tests/fmt.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

const PRELUDE: &str = include_str!("../../tests/check/prelude.charter");

/// The compiled tier licenses of `text` next to the prelude, if it compiles.
fn licenses(text: &str) -> Option<String> {
    let mut sources = charter::source::Sources::new();
    sources.add("base.charter", PRELUDE);
    sources.add("fuzz.charter", text);
    let parsed = charter::syntax::parse_all(&sources).ok()?;
    let program = charter::check::check(&parsed).program?;
    Some(charter::compile::all_tier_licenses(&program).to_string())
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut sources = charter::source::Sources::new();
    let id = sources.add("fuzz.charter", text);
    let Ok(file) = charter::syntax::parse(&sources, id) else {
        return;
    };
    let formatted = charter::syntax::format(text, &file);
    let mut again = charter::source::Sources::new();
    let id = again.add("fuzz.charter", formatted.as_str());
    let reparsed = charter::syntax::parse(&again, id);
    assert!(
        reparsed.is_ok(),
        "formatted text does not parse:\n{formatted}"
    );
    if let Ok(reparsed) = reparsed {
        assert_eq!(
            charter::syntax::format(&formatted, &reparsed),
            formatted,
            "formatting is not idempotent"
        );
    }
    assert_eq!(
        licenses(text),
        licenses(&formatted),
        "formatted text compiles differently:\n{formatted}"
    );
});
