//! Hostile input, through the built binary: rosters and policy files confined to the policy
//! set's folder (absolute paths, `..`, symlinks out, devices, FIFOs, size caps), the token file's
//! rules, secrets masked in every excerpt (asserted absent from stdout and stderr), and control
//! characters shown escaped. `docs/security.md` states the rules.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// What the tests put in files that must never be shown.
const SECRET: &str = "TOPSECRET-7f3a9c";

/// The policy set's folder inside a scratch folder (deleted with it).
struct Set {
    _root: common::Scratch,
    dir: PathBuf,
}

impl std::ops::Deref for Set {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.dir
    }
}

/// A copy of the example set with `roster.charter` naming `good.csv` (one valid customer) and
/// `rosters` (paths as written), and a folder `outside` beside it holding a roster whose only
/// row has an error (so reading it would echo the secret in an excerpt).
fn set_with_rosters(name: &str, rosters: &[&str]) -> (Set, PathBuf) {
    let root = common::scratch("hostile", name);
    let dir = root.join("set");
    common::copy_acme_catalog_into(&dir);
    let outside = root.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(
        outside.join("secret.csv"),
        format!("key,name,tier,owner\nleak,{SECRET},no_such_tier,x@leak.example\n"),
    )
    .unwrap();
    std::fs::write(
        dir.join("good.csv"),
        "key,name,tier,owner,payment\ngood,Good Co,pro,g@good.example,ok\n",
    )
    .unwrap();
    let text: String = std::iter::once(&"good.csv")
        .chain(rosters)
        .map(|r| format!("roster \"{r}\"\n"))
        .collect();
    std::fs::write(dir.join("roster.charter"), text).unwrap();
    (Set { _root: root, dir }, outside)
}

/// `charter check` in `dir`, stopped (and failed) after 60 s: a FIFO or a device read without
/// end must not hang the tests.
fn check(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let mut command = common::charter_command(dir, &[&["check"], args].concat());
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().unwrap();
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("`charter check` did not finish in 60 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let output = child.wait_with_output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

fn assert_refused(dir: &Path, code: &str, reason: &str) {
    let (status, stdout, stderr) = check(dir, &[]);
    assert_eq!(status, 1, "{stdout}{stderr}");
    assert!(stderr.contains(code), "{stderr}");
    assert!(stderr.contains(reason), "{stderr}");
    assert!(
        !stdout.contains(SECRET) && !stderr.contains(SECRET),
        "{stdout}{stderr}"
    );
}

#[test]
fn an_absolute_roster_path_is_refused() {
    let (dir, outside) = set_with_rosters("absolute", &[]);
    let path = outside.join("secret.csv");
    std::fs::write(
        dir.join("roster.charter"),
        format!(
            "roster \"{}\"\nroster \"/proc/self/environ\"\n",
            path.display()
        ),
    )
    .unwrap();
    assert_refused(
        &dir,
        "charter::roster_outside_folder",
        "the path is absolute",
    );
}

#[test]
fn a_roster_path_out_of_the_folder_is_refused() {
    let (dir, _) = set_with_rosters("dotdot", &["../outside/secret.csv"]);
    assert_refused(
        &dir,
        "charter::roster_outside_folder",
        "the path leads out of the policy set's folder",
    );
}

#[cfg(unix)]
#[test]
fn a_roster_symlinked_out_of_the_folder_is_refused() {
    let (dir, outside) = set_with_rosters("symlink", &["customers.csv"]);
    std::os::unix::fs::symlink(outside.join("secret.csv"), dir.join("customers.csv")).unwrap();
    assert_refused(
        &dir,
        "charter::roster_outside_folder",
        "is a symbolic link to",
    );
}

#[cfg(unix)]
#[test]
fn devices_and_fifos_are_not_read() {
    let (dir, _) = set_with_rosters("devices", &["zero.csv", "fifo.csv", "/dev/zero"]);
    std::os::unix::fs::symlink("/dev/zero", dir.join("zero.csv")).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(dir.join("fifo.csv"))
        .status()
        .unwrap();
    assert!(made.success());
    let (status, _, stderr) = check(&dir, &[]);
    assert_eq!(status, 1, "{stderr}");
    // The symlink to a device leaves the folder; the FIFO inside it is not a regular file.
    assert!(
        stderr.contains("is a symbolic link to `/dev/zero`"),
        "{stderr}"
    );
    assert!(
        stderr.contains("it is a FIFO, not a regular file"),
        "{stderr}"
    );
    assert!(stderr.contains("the path is absolute"), "{stderr}");
}

#[test]
fn a_roster_over_the_size_cap_is_refused_without_being_read() {
    let (dir, _) = set_with_rosters("large", &["huge.csv"]);
    // A sparse file: no disk used, and refused from its size before any byte is read.
    let file = std::fs::File::create(dir.join("huge.csv")).unwrap();
    file.set_len((256 << 20) + 1).unwrap();
    assert_refused(
        &dir,
        "charter::roster_too_large",
        "it is larger than 256 MiB",
    );
}

#[cfg(unix)]
#[test]
fn a_policy_file_symlinked_out_of_the_folder_is_refused() {
    let (dir, outside) = set_with_rosters("policy-symlink", &[]);
    std::fs::write(
        outside.join("evil.charter"),
        format!("tier leak extends {SECRET} {{}}\n"),
    )
    .unwrap();
    std::os::unix::fs::symlink(outside.join("evil.charter"), dir.join("evil.charter")).unwrap();
    let (status, stdout, stderr) = check(&dir, &[]);
    assert_eq!(status, 2, "{stderr}");
    assert!(stderr.contains("is a symbolic link to"), "{stderr}");
    assert!(
        !stdout.contains(SECRET) && !stderr.contains(SECRET),
        "{stdout}{stderr}"
    );
}

#[cfg(unix)]
#[test]
fn broken_and_looping_symlinks_are_warned_about() {
    let (dir, _) = set_with_rosters("broken-links", &[]);
    std::os::unix::fs::symlink("nowhere.charter", dir.join("broken.charter")).unwrap();
    std::os::unix::fs::symlink("loop-b.charter", dir.join("loop-a.charter")).unwrap();
    std::os::unix::fs::symlink("loop-a.charter", dir.join("loop-b.charter")).unwrap();
    let (status, stdout, stderr) = check(&dir, &[]);
    assert_eq!(status, 0, "{stdout}{stderr}");
    assert!(stderr.contains("charter::symlink_skipped"), "{stderr}");
    assert!(stderr.contains("broken.charter` is a symbolic link that points to nothing"));
    assert!(stderr.contains("loop-a.charter` is a symbolic link that cannot be followed"));
    assert!(stdout.contains("3 warnings"), "{stdout}");
}

#[test]
fn an_open_quote_in_a_roster_is_an_error_and_no_row_is_dropped() {
    let (dir, _) = set_with_rosters("quote", &["customers.csv"]);
    std::fs::write(
        dir.join("customers.csv"),
        "key,name,tier,payment,owner\n\
         a,A Co,pro,ok,a@a.example\n\
         b,B Co,pro,ok,\"b@b.example\n\
         c,C Co,pro,ok,c@c.example\n",
    )
    .unwrap();
    let (status, _, stderr) = check(&dir, &["--error-format", "json"]);
    assert_eq!(status, 1, "{stderr}");
    let errors: Vec<serde_json::Value> = stderr
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(errors.len(), 1, "{stderr}");
    assert_eq!(errors[0]["code"], "charter::roster_syntax");
    assert_eq!(errors[0]["line"], 3);
    assert_eq!(errors[0]["column"], 15);
}

#[test]
fn control_characters_are_shown_escaped() {
    let (dir, _) = set_with_rosters("controls", &["customers.csv"]);
    std::fs::write(
        dir.join("customers.csv"),
        "key,name,tier,owner,payment\n\
         esc,Esc\u{1b}]0;pwned\u{7} Co,pro,e@e.example,ok\n\
         nul,N\0 Co,no_tier,n@n.example,ok\n",
    )
    .unwrap();
    let (status, stdout, stderr) = check(&dir, &[]);
    assert_eq!(status, 1, "{stderr}");
    assert!(
        !stderr
            .chars()
            .chain(stdout.chars())
            .any(|c| c.is_control() && c != '\n'),
        "{stderr:?}"
    );
    assert!(stderr.contains(r"Esc\u{1b}]0;pwned\u{7} Co"), "{stderr}");
    assert!(
        stderr.contains(r"the `name` of customer `nul` contains the control character `\u{0}`")
    );
}

/// `charter instance` on a set whose `charter.toml` is `toml`: `(status, stdout + stderr)`,
/// in both error formats, asserting the secret is in neither.
fn instance_output(name: &str, toml: &str) -> String {
    let dir = common::acme_copy("hostile", name);
    std::fs::write(dir.join("charter.toml"), toml).unwrap();
    let mut all = String::new();
    for format in ["human", "json"] {
        let (status, stdout, stderr) =
            common::charter(&dir, &["instance", "--error-format", format, "."], &[]);
        assert_ne!(status, 0, "{stdout}{stderr}");
        assert!(
            !stdout.contains(SECRET) && !stderr.contains(SECRET),
            "{format}: {stdout}{stderr}"
        );
        all.push_str(&stderr);
    }
    all
}

#[test]
fn charter_toml_excerpts_never_show_a_secret() {
    let cases = [
        ("misspelt", format!("[instance]\ntokn = \"{SECRET}\"\n")),
        (
            "api-token",
            format!("[instance]\napi_token = \"{SECRET}\"\n"),
        ),
        (
            "next-line",
            format!("[instance]\ntoken_env = \"MAKE_TOKEN\"\ntoken = \"{SECRET}\"\nurl = \n"),
        ),
        ("unquoted", format!("[instance]\ntoken = {SECRET}\n")),
        (
            "url",
            format!("[instance]\nurl = \"https://bob:{SECRET}@make.example\"\n"),
        ),
        (
            "wrong-key",
            format!("[instance]\nrate_limit = \"{SECRET}\"\n"),
        ),
        ("bare-line", format!("{SECRET}\n[instance]\n")),
        (
            "token-env-holds-it",
            format!("[instance]\ntoken_env = \"{SECRET}\"\n"),
        ),
    ];
    for (name, toml) in cases {
        let shown = instance_output(name, &toml);
        assert!(
            shown.contains("charter::config") || shown.contains("error"),
            "{shown}"
        );
    }
}

#[test]
fn a_line_holding_credentials_is_masked_in_a_policy_excerpt() {
    let (dir, _) = set_with_rosters("policy-secret", &[]);
    std::fs::write(
        dir.join("roster.charter"),
        format!(
            "roster \"good.csv\"\n\
             # notes: https://ops:{SECRET}@git.example/x and password = \"{SECRET}\"\n\
             tier broken extends nowhere {{}}\n\
             # api_token: {SECRET}\n"
        ),
    )
    .unwrap();
    let (status, stdout, stderr) = check(&dir, &[]);
    assert_eq!(status, 1, "{stderr}");
    assert!(stderr.contains("unknown tier `nowhere`"), "{stderr}");
    assert!(
        !stdout.contains(SECRET) && !stderr.contains(SECRET),
        "{stderr}"
    );
}

#[cfg(unix)]
#[test]
fn token_files_are_regular_capped_and_private() {
    use std::os::unix::fs::PermissionsExt;

    let dir = common::acme_copy("hostile", "token-file");
    let config = |file: &str| {
        std::fs::write(
            dir.join("charter.toml"),
            format!("[instance]\nurl = \"http://127.0.0.1:9\"\ntoken_file = \"{file}\"\n"),
        )
        .unwrap();
    };
    let instance = || {
        let (status, stdout, stderr) = common::charter(&dir, &["instance", "."], &[]);
        assert_ne!(status, 0, "{stdout}{stderr}");
        stderr
    };

    config("/dev/zero");
    let stderr = instance();
    assert!(
        stderr.contains("it is a device, not a regular file"),
        "{stderr}"
    );

    let big = dir.join("big-token");
    std::fs::File::create(&big)
        .unwrap()
        .set_len((64 << 10) + 1)
        .unwrap();
    config(big.to_str().unwrap());
    let stderr = instance();
    assert!(stderr.contains("it is larger than 64 KiB"), "{stderr}");

    let token = dir.join("token");
    std::fs::write(&token, format!("{SECRET}\n")).unwrap();
    config(token.to_str().unwrap());
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o644)).unwrap();
    let stderr = instance();
    assert!(stderr.contains("can be read by other users"), "{stderr}");
    assert!(stderr.contains("chmod 600"), "{stderr}");
    assert!(!stderr.contains(SECRET), "{stderr}");
    std::fs::set_permissions(&token, std::fs::Permissions::from_mode(0o600)).unwrap();
    let stderr = instance();
    assert!(!stderr.contains("can be read by other users"), "{stderr}");
}
