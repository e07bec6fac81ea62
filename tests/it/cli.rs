//! The real binary, driven through a small builder: arguments in, stdout, stderr and the exit
//! code out.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use crate::common::{self, Run, Scratch};

/// A copy of `policies/acme` of the test's own, deleted with it: the example set's own folder
/// may hold a developer's `.charter/` state (the README's first command leaves one), which the
/// commands would read.
fn acme() -> Scratch {
    common::acme_copy("cli", "acme")
}

fn charter(args: &[&str]) -> Run {
    charter_in(Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

fn charter_in(dir: &Path, args: &[&str]) -> Run {
    Run::of(common::charter_command(dir, args))
}

/// A scratch directory holding one policy file.
fn scratch(name: &str, text: &str) -> Scratch {
    let dir = common::scratch("cli", name);
    let prelude = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/check/prelude.charter"
    ))
    .unwrap();
    std::fs::write(dir.join("base.charter"), prelude).unwrap();
    std::fs::write(dir.join("policy.charter"), text).unwrap();
    dir
}

#[test]
fn check_a_clean_policy_set_exits_0_with_a_summary() {
    let run = charter(&["check", acme().as_str()]).success();
    assert!(
        run.stdout
            .starts_with("checked 9 files: 6 tiers, 5 deployable"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.is_empty(), "{}", run.stderr);
}

#[test]
fn check_defaults_to_the_current_directory() {
    let run = charter_in(Path::new(acme().as_str()), &["check"]).success();
    assert!(run.stdout.starts_with("checked 9 files"));
}

#[test]
fn check_reports_every_error_and_exits_1() {
    let dir = scratch(
        "errors",
        "tier pro extends base { operatoins = 1 }\ntier core extends bsae {}\n",
    );
    let run = charter(&["check", dir.to_str().unwrap()]).code(1);
    assert!(
        run.stderr
            .contains("unknown license parameter `operatoins`")
    );
    assert!(run.stderr.contains("did you mean `operations`?"));
    assert!(run.stderr.contains("unknown tier `bsae`"));
    assert!(
        run.stderr.contains("error: 2 errors and 0 warnings"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
}

#[test]
fn warnings_alone_exit_0() {
    let dir = scratch("warnings", "tier legacy extends base { gracePeriod = 7 }\n");
    let run = charter(&["check", dir.to_str().unwrap()]).success();
    assert!(
        run.stderr
            .contains("has no effect on White Label instances")
    );
    assert!(run.stdout.contains("1 warning"), "{}", run.stdout);
}

#[test]
fn error_format_json_prints_one_object_per_diagnostic() {
    let dir = scratch("json", "tier pro extends base {\n  interval = 90 s\n}\n");
    let run = charter(&["check", "--error-format", "json", dir.to_str().unwrap()]).code(1);
    let lines: Vec<serde_json::Value> = run
        .stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{}", run.stderr);
    let d = &lines[0];
    assert_eq!(d["code"], "charter::not_whole");
    assert_eq!(d["severity"], "error");
    assert_eq!(d["message"], "`90 s` is not a whole number of minutes");
    assert!(d["file"].as_str().unwrap().ends_with("policy.charter"));
    assert_eq!(d["line"], 2);
    assert_eq!(d["column"], 14);
    assert_eq!(d["help"], "write `1 min` or `2 min`");
}

#[test]
fn syntax_errors_exit_1() {
    let dir = scratch("syntax", "tier pro extends base {\n");
    let run = charter(&["check", dir.to_str().unwrap()]).code(1);
    assert!(run.stderr.contains("charter::syntax"), "{}", run.stderr);
}

#[test]
fn usage_errors_exit_2() {
    let run = charter(&["check", "--no-such-flag"]).code(2);
    assert!(run.stderr.contains("--no-such-flag"));
    let run = charter(&["check", "/no/such/policy"]).code(2);
    assert!(
        run.stderr
            .contains("cannot read `/no/such/policy`: no such file or directory")
    );
    charter(&["explain", acme().as_str()]).code(2);
}

#[test]
fn compile_a_tier_prints_exactly_the_api_license_object() {
    let run = charter(&["compile", acme().as_str(), "--tier", "pro"]).success();
    let value: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let object = value.as_object().unwrap();
    let keys: Vec<&str> = object.keys().map(String::as_str).collect();
    let catalog: Vec<&str> = charter::model::catalog::CATALOG
        .iter()
        .map(|p| p.name)
        .collect();
    assert_eq!(keys, catalog, "every key, in catalog order");
    assert_eq!(value["operations"], 40_000);
    assert_eq!(value["transfer"], 5_000_000_000_i64);
    assert_eq!(value["interval"], 1);
    assert_eq!(value["auditLogsDays"], 30);
    assert_eq!(value["retention"], 60);
    assert_eq!(value["restartPeriod"], "1 month");
    assert_eq!(value["productManagement"], "salesforce");
    assert_eq!(value["gracePeriod"], 7);
}

#[test]
fn compile_without_a_tier_prints_every_deployable_tier_in_ladder_order() {
    let run = charter(&["compile", acme().as_str()]).success();
    let value: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let names: Vec<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(names, ["free", "core", "pro", "teams", "enterprise"]);
}

#[test]
fn compile_text_is_in_human_units() {
    let run = charter(&[
        "compile",
        acme().as_str(),
        "--tier",
        "teams",
        "--format",
        "text",
    ])
    .success();
    assert!(run.stdout.starts_with("tier teams\n"));
    assert!(
        run.stdout.contains("operations           120,000\n"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("transfer             20 GB\n"));
    assert!(run.stdout.contains("auditLogsDays        90 days\n"));
}

#[test]
fn compile_refuses_abstract_and_unknown_tiers() {
    let run = charter(&["compile", acme().as_str(), "--tier", "base"]).code(2);
    assert!(run.stderr.contains("tier `base` is abstract"));
    let run = charter(&["compile", acme().as_str(), "--tier", "entreprise"]).code(2);
    assert!(run.stderr.contains("unknown tier `entreprise`"));
    assert!(run.stderr.contains("did you mean `enterprise`?"));
}

#[test]
fn compile_of_a_broken_policy_exits_1() {
    let dir = scratch("broken", "tier pro extends base { premiumApps = 4 }\n");
    charter(&["compile", dir.to_str().unwrap(), "--tier", "pro"]).code(1);
}

#[test]
fn explain_shows_the_chain_of_one_parameter() {
    let run = charter(&["explain", acme().as_str(), "--tier", "teams", "operations"]).success();
    let expected = "tier `teams`, extends `pro` → `core` → `base`\n\n\
                    operations = 120,000\n  \
                    tier `base` sets 1,000                  ";
    assert!(run.stdout.starts_with(expected), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("tier `teams` multiplies by 3 → 120,000")
    );
    assert!(run.stdout.contains("tiers.charter:67:3"));
    assert!(!run.stdout.contains("transfer ="));
}

#[test]
fn explain_names_defaults_and_covers_every_parameter() {
    let run = charter(&["explain", acme().as_str(), "--tier", "pro"]).success();
    assert!(
        run.stdout
            .contains("retention = 60 days\n  default sets 60 days  the catalog\n"),
        "{}",
        run.stdout
    );
    for p in charter::model::catalog::CATALOG {
        assert!(
            run.stdout.contains(&format!("\n{} = ", p.name)),
            "{} missing",
            p.name
        );
    }
}

#[test]
fn explain_rejects_an_unknown_parameter() {
    let run = charter(&["explain", acme().as_str(), "--tier", "pro", "operation"]).code(2);
    assert!(run.stderr.contains("unknown license parameter `operation`"));
    assert!(run.stderr.contains("did you mean `operations`?"));
}

#[test]
fn matrix_markdown_has_tiers_in_ladder_order_and_human_units() {
    let run = charter(&["matrix", acme().as_str()]).success();
    let mut lines = run.stdout.lines();
    assert_eq!(
        lines.next(),
        Some("| parameter | free | core | pro | teams | enterprise |")
    );
    assert!(
        run.stdout
            .contains("| `operations` | 1,000 | 10,000 | 40,000 | 120,000 | 1,000,000 |")
    );
    assert!(
        run.stdout
            .contains("| `transfer` | 100 MB | 1 GB | 5 GB | 20 GB | 1 TB |")
    );
    assert!(
        run.stdout
            .contains("| `analyticsAccess` | — | — | ✓ | ✓ | ✓ |")
    );
    assert!(
        !run.stdout.contains("gracePeriod"),
        "deprecated parameters are left out"
    );
}

#[test]
fn matrix_html_is_a_standalone_page() {
    let run = charter(&["matrix", acme().as_str(), "--format", "html"]).success();
    assert!(run.stdout.starts_with("<!DOCTYPE html>"));
    assert!(run.stdout.contains("<th>enterprise</th>"));
    assert!(run.stdout.trim_end().ends_with("</html>"));
}

#[test]
fn schema_describes_every_license_key() {
    let run = charter(&["schema"]).success();
    let schema: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(schema["additionalProperties"], false);
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(required.len(), charter::model::catalog::CATALOG.len());
    assert_eq!(schema["properties"]["auditLogsDays"]["maximum"], 365);
    assert_eq!(schema["properties"]["interval"]["minimum"], 1);
    assert_eq!(
        schema["properties"]["restartPeriod"]["enum"],
        serde_json::json!(["1 month", "1 year"])
    );
}

#[test]
fn compiled_licenses_satisfy_the_schema_constraints() {
    // The schema and the compiler both come from the catalog; check them against each other.
    let schema: serde_json::Value =
        serde_json::from_str(&charter(&["schema"]).success().stdout).unwrap();
    let all: serde_json::Value =
        serde_json::from_str(&charter(&["compile", acme().as_str()]).success().stdout).unwrap();
    for (tier, license) in all.as_object().unwrap() {
        for (key, value) in license.as_object().unwrap() {
            let rule = &schema["properties"][key];
            assert!(rule.is_object(), "{tier}: `{key}` is not in the schema");
            if let Some(min) = rule["minimum"].as_i64() {
                assert!(value.as_i64().unwrap() >= min, "{tier}.{key}");
            }
            if let Some(max) = rule["maximum"].as_i64() {
                assert!(value.as_i64().unwrap() <= max, "{tier}.{key}");
            }
            if let Some(options) = rule["enum"].as_array() {
                assert!(options.contains(value), "{tier}.{key}");
            }
        }
    }
}

#[test]
fn fmt_check_lists_unformatted_files_and_exits_1() {
    let dir = scratch(
        "fmt-check",
        "tier pro extends base { operations = 40_000; interval = 1min }\n",
    );
    let before = std::fs::read_to_string(dir.join("policy.charter")).unwrap();
    let run = charter(&["fmt", "--check", dir.to_str().unwrap()]).code(1);
    assert!(
        run.stdout.trim_end().ends_with("policy.charter"),
        "{}",
        run.stdout
    );
    assert!(run.stderr.contains("1 file is not formatted"));
    assert_eq!(
        std::fs::read_to_string(dir.join("policy.charter")).unwrap(),
        before
    );
}

#[test]
fn fmt_rewrites_files_and_is_then_clean() {
    let dir = scratch(
        "fmt-write",
        "tier pro extends base { operations = 40_000; interval = 1min }   # pro\n",
    );
    let run = charter(&["fmt", dir.to_str().unwrap()]).success();
    assert!(run.stdout.contains("formatted "));
    assert_eq!(
        std::fs::read_to_string(dir.join("policy.charter")).unwrap(),
        "tier pro extends base {\n  operations = 40_000\n  interval = 1 min\n} # pro\n"
    );
    charter(&["fmt", "--check", dir.to_str().unwrap()]).success();
}

#[test]
fn fmt_refuses_to_touch_a_policy_set_with_a_syntax_error() {
    let dir = scratch("fmt-syntax", "tier pro extends base {\n");
    let before = std::fs::read_to_string(dir.join("base.charter")).unwrap();
    charter(&["fmt", dir.to_str().unwrap()]).code(1);
    assert_eq!(
        std::fs::read_to_string(dir.join("base.charter")).unwrap(),
        before
    );
}

#[test]
fn fmt_of_the_example_policies_changes_nothing() {
    charter(&["fmt", "--check", acme().as_str()]).success();
}

#[test]
fn fmt_reads_standard_input() {
    use std::io::Write;
    let mut child = common::charter_command(Path::new(env!("CARGO_MANIFEST_DIR")), &["fmt", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"group  g =  operations,transfer")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "group g = operations, transfer\n"
    );
}

#[test]
fn compile_a_customer_prints_its_desired_state() {
    let run = charter(&[
        "compile",
        acme().as_str(),
        "--customer",
        "acme",
        "--at",
        "2027-02-08",
    ])
    .success();
    let value: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(value["customer"], "acme");
    assert_eq!(value["state"], "frozen");
    assert_eq!(value["since"], "2027-02-07");
    assert_eq!(value["license"]["operations"], 0);
    assert_eq!(value["license"]["apiLimit"], 120);
    assert_eq!(value["owner"], "jane@acme.example");
    assert_eq!(value["roles"]["raj@acme.example"], "admin");
    assert_eq!(value["teams"]["Marketing"]["li@acme.example"], "member");
}

#[test]
fn compile_customers_prints_one_object_per_line() {
    let run = charter(&[
        "compile",
        acme().as_str(),
        "--customers",
        "--at",
        "2027-01-01",
    ])
    .success();
    let lines: Vec<serde_json::Value> = run
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 18);
    assert_eq!(lines[0]["customer"], "acme");
    assert!(
        lines.iter().any(|l| l["customer"] == "wonka"),
        "roster customers too"
    );
}

#[test]
fn compile_refuses_an_unknown_customer() {
    let run = charter(&["compile", acme().as_str(), "--customer", "acmee"]).code(2);
    assert!(run.stderr.contains("unknown customer `acmee`"));
    assert!(run.stderr.contains("did you mean `acme`?"));
    let run = charter(&[
        "compile",
        acme().as_str(),
        "--customer",
        "acme",
        "--at",
        "someday",
    ])
    .code(2);
    assert!(run.stderr.contains("`someday` is not a date"));
}

#[test]
fn explain_a_customer_says_why_it_is_in_its_state() {
    let run = charter(&[
        "explain",
        acme().as_str(),
        "--customer",
        "acme",
        "--at",
        "2027-05-09",
        "operations",
    ])
    .success();
    assert!(
        run.stdout
            .starts_with("customer `acme` (Acme Corp), tier `pro`, add-ons `extra_ops`\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("state `deprovisioned` since 2027-05-08")
    );
    assert!(
        run.stdout.contains(
            "2027-02-07 `freeze` active → frozen: when contract_end + 7 days (2027-02-07)"
        )
    );
    assert!(
        run.stdout
            .contains("2027-05-08 `deprovision` frozen → deprovisioned: after 90 days")
    );
    assert!(
        run.stdout
            .contains("add-on `extra_ops` adds 10,000 → 50,000")
    );
    assert!(run.stdout.contains("override sets 55,000"));
    assert!(run.stdout.contains("state `deprovisioned` sets 0"));
}

#[test]
fn explain_needs_a_tier_or_a_customer() {
    charter(&["explain", acme().as_str()]).code(2);
}

#[test]
fn test_runs_every_test_block() {
    let run = charter(&["test", acme().as_str()]).success();
    assert!(
        run.stdout
            .contains("test acme freezes a week after its contract ... ok")
    );
    assert!(
        run.stdout.contains("test result: ok. 8 passed; 0 failed"),
        "{}",
        run.stdout
    );
}

#[test]
fn a_failing_test_shows_the_values_and_where_they_came_from() {
    let dir = scratch(
        "failing-test",
        "tier pro extends base { operations = 40_000 }\n\
         customer acme {\n  name = \"Acme\"\n  tier = pro\n  owner = \"jane@acme.example\"\n}\n\
         test \"acme has plenty\" {\n  at 2027-01-01\n  expect customer acme: operations >= 50_000 and state == active\n}\n\
         test \"pro is pro\" {\n  expect tier pro: operations == 40_000\n}\n",
    );
    let junit = dir.join("junit.xml");
    let run = charter(&[
        "test",
        dir.to_str().unwrap(),
        "--junit",
        junit.to_str().unwrap(),
    ])
    .code(1);
    assert!(run.stdout.contains("test acme has plenty ... FAILED"));
    assert!(
        run.stdout
            .contains("expect customer acme: operations >= 50_000 and state == active")
    );
    assert!(run.stdout.contains("operations = 40,000"), "{}", run.stdout);
    assert!(run.stdout.contains("(tier `pro` sets 40,000)"));
    assert!(run.stdout.contains("state = active"));
    assert!(
        run.stdout
            .contains("test result: FAILED. 1 passed; 1 failed")
    );
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(
        xml.contains("<testsuites name=\"charter\" tests=\"2\" failures=\"1\">"),
        "{xml}"
    );
    assert!(xml.contains("<testcase name=\"pro is pro\""));
    assert!(xml.contains(
        "<failure message=\"expect customer acme: operations &gt;= 50_000 and state == active\">"
    ));
}

#[test]
fn schedule_lists_due_and_upcoming_transitions() {
    let run = charter(&[
        "schedule",
        acme().as_str(),
        "--at",
        "2027-02-01",
        "--horizon",
        "10 days",
    ])
    .success();
    assert!(
        run.stdout
            .starts_with("at 2027-02-01, looking ahead 10 days\n"),
        "{}",
        run.stdout
    );
    assert!(run.stdout.contains("acme (Acme Corp): active"));
    assert!(run.stdout.contains("upcoming  freeze       active → frozen  2027-02-07  when contract_end + 7 days (2027-02-07)"), "{}", run.stdout);
    assert!(
        run.stdout
            .contains("hooli (Hooli): deprovisioned since 2026-08-20")
    );
    assert!(
        run.stdout
            .contains("due now   deprovision  frozen → deprovisioned  2026-08-20  after 90 days")
    );
    let json = charter(&[
        "schedule",
        acme().as_str(),
        "--at",
        "2027-02-01",
        "--format",
        "json",
    ])
    .success();
    let value: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(value.as_array().unwrap().len(), 18);
    charter(&["schedule", acme().as_str(), "--horizon", "soon"]).code(2);
}

#[test]
fn graph_draws_the_lifecycle() {
    let run = charter(&["graph", acme().as_str()]).success();
    assert!(
        run.stdout
            .starts_with("stateDiagram-v2\n    [*] --> active\n"),
        "{}",
        run.stdout
    );
    assert!(
        run.stdout
            .contains("    active --> frozen : freeze (when contract_end + 7 days)\n")
    );
    assert!(
        run.stdout
            .contains("    deprovisioned --> active : reactivate (manual)\n")
    );
    assert!(
        run.stdout
            .contains("active --> frozen : cancel (when contract_end, if payment == \"overdue\")")
    );
    let run = charter(&["graph", acme().as_str(), "--format", "dot"]).success();
    assert!(run.stdout.starts_with("digraph lifecycle {"));
    assert!(
        run.stdout
            .contains("\"frozen\" -> \"deprovisioned\" [label=\"deprovision (after 90 days)\"];")
    );
}

#[test]
fn explain_a_staff_member_lists_the_manual_options() {
    let run = charter(&[
        "explain",
        acme().as_str(),
        "--staff",
        "dana@acme-automation.example",
    ])
    .success();
    assert!(
        run.stdout
            .starts_with("staff `dana@acme-automation.example` (Dana Developer)\n")
    );
    assert!(run.stdout.contains("instance role `D1`"));
    assert!(
        run.stdout
            .contains("Administration → Users → the user → Apps and Features")
    );
    assert!(
        run.stdout
            .contains("  private_apps: See and use private apps\n")
    );
    let run = charter(&[
        "explain",
        acme().as_str(),
        "--staff",
        "dana@acme-automation.exampl",
    ])
    .code(2);
    assert!(
        run.stderr
            .contains("did you mean `dana@acme-automation.example`?")
    );
}

#[test]
fn the_matrix_has_a_staff_section_in_markdown_and_in_html() {
    let program = charter::policy::load(Path::new(acme().as_str()))
        .ok()
        .and_then(|set| set.checked.program)
        .unwrap();
    assert!(program.staff.len() >= 3, "the example set has staff");
    let markdown = charter(&["matrix", acme().as_str()]).success().stdout;
    let html = charter(&["matrix", acme().as_str(), "--format", "html"])
        .success()
        .stdout;
    assert!(
        markdown
            .contains("\n| staff | name | instance role | options |\n| --- | --- | --- | --- |\n")
    );
    assert!(html.contains(
        "<h2>Staff</h2>\n<table>\n<thead><tr><th>staff</th><th>name</th><th>instance role</th><th>options</th></tr></thead>\n"
    ));
    // Every staff member, one row each, from the policy itself.
    for staff in &program.staff {
        let name = staff.name.as_deref().unwrap_or("");
        let role = staff.role.as_deref().unwrap_or("—");
        let options: Vec<&str> = staff.options.iter().map(|o| o.word()).collect();
        let options = options.join(", ");
        let row = format!("| {} | {name} | {role} | {options} |\n", staff.email);
        assert_eq!(markdown.matches(&row).count(), 1, "{row} in\n{markdown}");
        let row = format!(
            "<tr><td>{}</td><td>{name}</td><td>{role}</td><td>{options}</td></tr>\n",
            staff.email
        );
        assert_eq!(html.matches(&row).count(), 1, "{row} in\n{html}");
    }
    // In HTML, after the tier table and inside the page.
    let tiers_end = html.find("</table>").unwrap();
    let staff_start = html.find("<h2>Staff</h2>").unwrap();
    assert!(tiers_end < staff_start);
    insta::assert_snapshot!("matrix_html_staff", &html[staff_start..]);
}
