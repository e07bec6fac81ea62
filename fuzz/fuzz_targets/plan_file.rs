//! Reading a plan file never panics, whatever the bytes; what it accepts writes back to itself
//! (mirrored by the proptest `reading_any_plan_file_never_panics` in `tests/plan.rs`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(plan) = charter::plan::Plan::from_json(text)
    {
        let again = charter::plan::Plan::from_json(&plan.to_json());
        assert!(again.is_ok_and(|p| p == plan));
    }
});
