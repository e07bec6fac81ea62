//! Loading a roster never panics, whatever the bytes, and checking a policy set with it is
//! deterministic: its errors point into the file and the same bytes give the same customers.
#![no_main]

use libfuzzer_sys::fuzz_target;

const POLICY: &str = "tier core {
  operations = 1_000; transfer = 100 MB; restartPeriod = monthly; interval = 15 min
  executionTime = 5 min; fslimit = 5 MB; iolimit = 100; dslimit = 1; dsslimit = 1 MiB
  dlqStorage = 10 MiB; scenarios = 2; teams = 1; appslimit = 0; apiLimit = 0
  auditLogsDays = 7 days; premiumApps = 0; customProperties = 0; analyticsAccess = false
  fulltext = false; advsched = false; customVariables = false; customFunctions = false
  creatingTemplates = false; installPublicApps = false; scenarioIO = false
}
addon extra { operations += 1_000 }
roster \"customers.csv\"
";

fn run(text: &str) -> Option<String> {
    let mut sources = charter::source::Sources::new();
    let policy = sources.add("policy.charter", POLICY);
    let csv = sources.add("customers.csv", text);
    let roster = charter::syntax::roster::parse(csv, text).ok()?;
    let parsed = charter::syntax::parse(&sources, policy).ok()?;
    let span = match parsed.items.last() {
        Some(item) => item.span(),
        None => return None,
    };
    let checked = charter::check::check_with_rosters(&[(policy, parsed)], &[(span, roster)]);
    let keys: Vec<String> = checked
        .program
        .map(|p| p.customers.into_iter().map(|c| c.key).collect())
        .unwrap_or_default();
    Some(format!("{keys:?} {}", checked.diagnostics.0.len()))
}

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        assert_eq!(
            run(text),
            run(text),
            "checking a roster is not deterministic"
        );
    }
});
