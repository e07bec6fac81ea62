//! Checking and compiling never panic, and compiling is deterministic (mirrored by the
//! proptests `parser_and_checker_never_panic_on_token_soup` and `compiling_is_deterministic`).
#![no_main]

use libfuzzer_sys::fuzz_target;

const PRELUDE: &str = include_str!("../../tests/check/prelude.charter");

fn run(text: &str) -> Option<String> {
    let mut sources = charter::source::Sources::new();
    sources.add("base.charter", PRELUDE);
    sources.add("fuzz.charter", text);
    let parsed = charter::syntax::parse_all(&sources).ok()?;
    let checked = charter::check::check(&parsed);
    let program = checked.program?;
    Some(charter::compile::all_tier_licenses(&program).to_string())
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let first = run(text);
        let second = run(text);
        assert_eq!(first, second, "compiling is not deterministic");
    }
});
