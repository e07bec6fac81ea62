//! What several test modules share: scratch folders deleted at the end, copies of the example
//! policy set, the binary run with a clean environment (the one command builder), `charter sandbox` in a process of its own, and the
//! forwarding of the tests that put a proxy between the binary and a sandbox. Each file uses a
//! part of it.

#![allow(dead_code, clippy::unwrap_used, clippy::panic)]

pub mod editor;
pub mod postgres;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// Removes every `CHARTER_*` variable (and PostgreSQL's password settings) from what `command`
/// inherits, so that a developer's own configuration (or one a test of the same binary sets for
/// its child) never reaches a run.
pub fn without_charter_settings(command: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CHARTER_") {
            command.env_remove(name);
        }
    }
    command.env_remove("PGPASSWORD").env_remove("PGPASSFILE");
    command
}

/// An empty folder of its own for one test, named `charter-KIND-NAME-…` in the temporary folder
/// and deleted when dropped. It is kept (and its path printed) when the test fails, and always
/// when `CHARTER_KEEP_TMP` is set.
#[derive(Debug)]
pub struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The path as text, for the binary's arguments.
    pub fn as_str(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }
}

impl std::ops::Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        self.dir.path()
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() || std::env::var_os("CHARTER_KEEP_TMP").is_some() {
            self.dir.disable_cleanup(true);
            eprintln!("kept {}", self.dir.path().display());
        }
    }
}

/// A new [`Scratch`] folder.
pub fn scratch(kind: &str, name: &str) -> Scratch {
    let dir = tempfile::Builder::new()
        .prefix(&format!("charter-{kind}-{name}-"))
        .tempdir()
        .unwrap();
    Scratch { dir }
}

/// Copies the files of `policies/acme` into `dir` — not its `.charter/`, which may hold a
/// developer's own state (the README's first command leaves one).
pub fn copy_acme_into(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let acme = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/acme");
    for entry in std::fs::read_dir(acme).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.join(path.file_name().unwrap())).unwrap();
        }
    }
}

/// Copies the example policy set's instance, tiers, add-ons, rules and lifecycle into `dir`:
/// the set without its customers, staff and tests, for a test or benchmark to add its own.
pub fn copy_acme_catalog_into(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let acme = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies/acme");
    for file in [
        "instance.charter",
        "tiers.charter",
        "addons.charter",
        "rules.charter",
        "lifecycle.charter",
    ] {
        std::fs::copy(acme.join(file), dir.join(file)).unwrap();
    }
}

/// Writes a roster of `customers` new customers into `dir` (`roster.charter` naming
/// `customers.csv`), for the example's tiers and lifecycle: an owner, an admin and two members
/// each — eight calls to provision one.
pub fn write_roster(dir: &Path, customers: u32) {
    std::fs::write(dir.join("roster.charter"), "roster \"customers.csv\"\n").unwrap();
    let tiers = ["free", "core", "pro", "teams", "enterprise"];
    let mut csv =
        String::from("key,name,tier,addons,owner,admins,members,contract_end,region,payment\n");
    for i in 0..customers {
        csv.push_str(&format!(
            "c{i},Customer {i},{},,owner{i}@c{i}.example,admin{i}@c{i}.example,m{i}a@c{i}.example;m{i}b@c{i}.example,2030-01-01,eu,ok\n",
            tiers[i as usize % tiers.len()],
        ));
    }
    std::fs::write(dir.join("customers.csv"), csv).unwrap();
}

/// A copy of the example policy set in a scratch folder.
pub fn acme_copy(kind: &str, name: &str) -> Scratch {
    let dir = scratch(kind, name);
    copy_acme_into(&dir);
    dir
}

/// The binary in `dir`, without colour and with none of charter's settings from the
/// environment (so the embedded sandbox, unless the test sets an instance): every test that
/// runs the binary starts here.
pub fn charter_command(dir: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_charter"));
    command.args(args).current_dir(dir).env("NO_COLOR", "1");
    without_charter_settings(&mut command);
    command
}

/// What a run of the binary left: its exit code (-1 when a signal ended it) and its output.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// Runs `command` to its end.
    pub fn of(mut command: Command) -> Run {
        let output = command.output().unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8(output.stdout).unwrap(),
            stderr: String::from_utf8(output.stderr).unwrap(),
        }
    }

    /// Asserts that it exited 0.
    pub fn success(self) -> Run {
        assert_eq!(self.code, 0, "stderr:\n{}", self.stderr);
        self
    }

    /// Asserts that it exited with `code`.
    pub fn code(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "stdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Runs `command` to its end: `(exit code, stdout, stderr)`.
pub fn output(command: Command) -> (i32, String, String) {
    let run = Run::of(command);
    (run.code, run.stdout, run.stderr)
}

/// Runs the binary in `dir` with `env` set: `(exit code, stdout, stderr)`.
pub fn charter(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = charter_command(dir, args);
    for (name, value) in env {
        command.env(name, value);
    }
    output(command)
}

/// `charter sandbox` in its own process, on a database file, accepting `token`; stopped when
/// dropped.
pub struct SandboxProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`, as the sandbox printed it.
    pub url: String,
}

impl SandboxProcess {
    /// Starts it with `extra` arguments (`--faults …`) and waits for its address.
    pub fn start(db: &Path, token: &str, extra: &[&str]) -> SandboxProcess {
        let folder = db.parent().unwrap_or(Path::new("."));
        let database = db.to_str().unwrap();
        let arguments = [
            "sandbox",
            "--db",
            database,
            "--listen",
            "127.0.0.1:0",
            "--token",
            token,
        ];
        let mut child = charter_command(folder, &arguments)
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let start = line.find("http://").unwrap();
        let end = line[start..].find("/api/v2").unwrap();
        let url = line[start..start + end].to_owned();
        SandboxProcess { child, url }
    }
}

impl Drop for SandboxProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Sends a request on to `upstream` (`http://127.0.0.1:PORT`) — method, path and query, body,
/// `Authorization` and `Content-Type` — and gives back the answer: status, `Content-Type` and
/// body, or 502 when the upstream cannot be reached.
pub async fn forward(
    client: &reqwest::Client,
    upstream: &str,
    parts: &axum::http::request::Parts,
    body: axum::body::Bytes,
) -> axum::response::Response {
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let mut request = client
        .request(parts.method.clone(), format!("{upstream}{path}"))
        .body(body);
    for name in [
        axum::http::header::AUTHORIZATION,
        axum::http::header::CONTENT_TYPE,
    ] {
        if let Some(value) = parts.headers.get(&name) {
            request = request.header(name, value);
        }
    }
    let mut response = axum::response::Response::new(axum::body::Body::empty());
    let Ok(answer) = request.send().await else {
        *response.status_mut() = axum::http::StatusCode::BAD_GATEWAY;
        return response;
    };
    *response.status_mut() = answer.status();
    if let Some(value) = answer.headers().get(axum::http::header::CONTENT_TYPE) {
        response
            .headers_mut()
            .insert(axum::http::header::CONTENT_TYPE, value.clone());
    }
    *response.body_mut() = axum::body::Body::from(answer.bytes().await.unwrap_or_default());
    response
}

/// Says, each time team 10's members are listed, whether user 6 is listed among them.
pub type Contradicts = std::sync::Arc<dyn Fn() -> bool + Send + Sync>;

/// A fake instance for readings that meet contradictory answers (as when it changes while it
/// is read): one organization with teams 10 and 20, users 5 and 6, user 6 listed in team 10
/// under none of its roles whenever `contradicts` says so. Serves on a loopback port of its
/// own; returns the address.
pub async fn contradicting_instance(contradicts: Contradicts) -> std::net::SocketAddr {
    use std::collections::BTreeMap;

    use axum::http::Uri;
    use serde_json::{Value, json};

    async fn answer(
        axum::extract::State(contradicts): axum::extract::State<Contradicts>,
        uri: Uri,
    ) -> axum::Json<Value> {
        let query: BTreeMap<String, String> =
            serde_urlencoded::from_str(uri.query().unwrap_or("")).unwrap();
        let get = |key: &str| query.get(key).map(String::as_str);
        let ids = |ids: &[i64]| {
            json!({
                "users": ids.iter().map(|id| json!({ "id": id })).collect::<Vec<_>>(),
                "pg": { "limit": 1000 }
            })
        };
        let body = match uri.path() {
            "/api/v2/admin/users/admins-roles" => json!({ "usersAdminsRoles": [] }),
            "/api/v2/users/roles" if get("category") == Some("organization") => {
                json!({ "usersRoles": [{ "id": 11, "name": "Owner", "category": "organization" }] })
            }
            "/api/v2/users/roles" => json!({ "usersRoles": [
            { "id": 1, "name": "Team Admin", "category": "team" },
            { "id": 3, "name": "Team Member", "category": "team" }
        ] }),
            "/api/v2/admin/organizations" => json!({ "organizations": [{
            "id": 1, "name": "One", "timezoneId": 1, "countryId": 1, "license": {},
            "teams": [{ "id": 10, "name": "A" }, { "id": 20, "name": "B" }],
            "isPaused": false, "externalId": null, "scenarios": 0, "activeScenarios": 0,
            "deleted": false
        }], "pg": { "limit": 1000 } }),
            "/api/v2/admin/users" => match (
                get("cols[]"),
                get("organizationRoleId"),
                get("organizationId"),
                get("teamId"),
                get("teamRoleId"),
            ) {
                // The full list asks for every column, the id lists for `cols[]=id` only.
                (None | Some("deleted"), ..) => {
                    let users: Vec<Value> = [5, 6]
                        .iter()
                        .map(|id| {
                            json!({
                                "id": id, "name": "N", "email": format!("{id}@x.example"),
                                "usersAdminsRoleId": null, "language": "en", "countryId": 1,
                                "timezoneId": 1, "localeId": 1, "deleted": false
                            })
                        })
                        .collect();
                    json!({ "users": users, "pg": { "limit": 1000 } })
                }
                (_, Some(_), ..) | (_, _, Some(_), ..) => ids(&[5, 6]),
                (_, _, _, None, Some("1")) => ids(&[5]),
                (_, _, _, Some("10"), None) => {
                    if contradicts() {
                        ids(&[5, 6])
                    } else {
                        ids(&[5])
                    }
                }
                (_, _, _, Some("10"), Some("1")) => ids(&[5]),
                _ => ids(&[]),
            },
            other => panic!("unexpected `{other}`"),
        };
        axum::Json(body)
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let app = axum::Router::new().fallback(answer).with_state(contradicts);
        axum::serve(listener, app).await.unwrap();
    });
    addr
}
