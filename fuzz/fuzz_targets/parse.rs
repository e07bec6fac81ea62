//! The parser never panics, whatever the bytes (mirrored by the proptest
//! `parser_and_checker_never_panic_on_arbitrary_text`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let mut sources = charter::source::Sources::new();
        let file = sources.add("fuzz.charter", text);
        let _ = charter::syntax::parse(&sources, file);
    }
});
