//! The real binary applying a plan to a sandbox in another process is killed with SIGKILL at
//! many points inside the apply, chosen exactly: a proxy between the two counts the writes,
//! and holds back every request after the chosen one, so that the kill lands with exactly k
//! writes carried out — some with the k-th write committed on the instance and its answer
//! never delivered (a create whose outcome was never journaled) — or after the k-th finished
//! step in charter's log. After each kill, `charter apply` again converges: no duplicate user
//! or organization, the same instance as an uninterrupted apply (which is what the policy
//! says), and an empty plan. (Unix only: it sends signals.)

#![cfg(unix)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use charter::api::{Client, ClientOptions, Observed, Token, observe};
use charter::compile::customer::desired;
use charter::model::customer::OrgRole;

use crate::common;

use common::SandboxProcess;

const TOKEN: &str = "kill-test-secret-token";
const AT: &str = "2027-01-15";

/// The binary in `dir`, pointed at the sandbox at `url`.
fn charter(dir: &Path, url: &str, args: &[&str]) -> Command {
    let mut command = common::charter_command(dir, args);
    command
        .env("CHARTER_INSTANCE_URL", url)
        .env("CHARTER_TOKEN_ENV", "KILL_TEST_TOKEN")
        .env("KILL_TEST_TOKEN", TOKEN);
    command
}

fn observed(url: &str) -> Observed {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            let client =
                Client::new(url, Token::new(TOKEN).unwrap(), ClientOptions::default()).unwrap();
            observe(&client).await.unwrap()
        })
}

fn scratch(name: &str) -> common::Scratch {
    common::scratch("kill", name)
}

/// An organization as people see it: its license, who holds which role, its teams.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct OrganizationSnapshot {
    license: String,
    members: BTreeMap<String, String>,
    teams: BTreeMap<String, Vec<BTreeMap<String, String>>>,
}

/// The instance by names and addresses rather than ids, so that two instances can be
/// compared; duplicates stay visible (a name's organizations are a list).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Snapshot {
    /// Lower-case address → instance role (the sandbox's built-in users left out).
    users: BTreeMap<String, Option<String>>,
    /// Users per lower-case address (more than one is a duplicate).
    user_counts: BTreeMap<String, usize>,
    organizations: BTreeMap<String, Vec<OrganizationSnapshot>>,
}

impl Snapshot {
    fn of(observed: &Observed) -> Snapshot {
        let email = |id: i64| observed.user(id).unwrap().email.to_lowercase();
        let mut snapshot = Snapshot {
            users: BTreeMap::new(),
            user_counts: BTreeMap::new(),
            organizations: BTreeMap::new(),
        };
        for u in &observed.users {
            let address = u.email.to_lowercase();
            if address.ends_with("@sandbox.invalid") {
                continue;
            }
            *snapshot.user_counts.entry(address.clone()).or_insert(0) += 1;
            snapshot.users.insert(address, u.instance_role.clone());
        }
        for o in &observed.organizations {
            let mut teams: BTreeMap<String, Vec<BTreeMap<String, String>>> = BTreeMap::new();
            for t in &o.teams {
                teams.entry(t.name.clone()).or_default().push(
                    t.members
                        .iter()
                        .map(|m| (email(m.user_id), m.role.clone().unwrap()))
                        .collect(),
                );
            }
            snapshot
                .organizations
                .entry(o.name.clone())
                .or_default()
                .push(OrganizationSnapshot {
                    license: serde_json::to_string(&o.license.0).unwrap(),
                    members: o
                        .members
                        .iter()
                        .map(|m| (email(m.user_id), m.role.clone().unwrap()))
                        .collect(),
                    teams,
                });
        }
        snapshot
    }

    /// Users, instance roles, organizations, memberships, teams and team memberships.
    fn objects(&self) -> usize {
        self.users.len()
            + self.users.values().filter(|r| r.is_some()).count()
            + self
                .organizations
                .values()
                .flatten()
                .map(|o| {
                    1 + o.members.len()
                        + o.teams
                            .values()
                            .flatten()
                            .map(|t| 1 + t.len())
                            .sum::<usize>()
                })
                .sum::<usize>()
    }

    fn assert_no_duplicates(&self, when: &str) {
        for (address, n) in &self.user_counts {
            assert_eq!(*n, 1, "{when}: {n} users {address}");
        }
        for (name, list) in &self.organizations {
            assert_eq!(list.len(), 1, "{when}: {} organizations {name}", list.len());
        }
    }
}

/// The instance holds what the example policy set wants at `AT`: each customer's organization
/// with its license, exactly its people in their roles, its teams; each staff member's role.
fn assert_is_the_policy(snapshot: &Snapshot) {
    let program = charter::policy::load(Path::new("policies/acme"))
        .ok()
        .and_then(|set| set.checked.program)
        .unwrap();
    let when = charter::model::time::parse_instant(AT).unwrap();
    assert_eq!(snapshot.organizations.len(), program.customers.len());
    for customer in &program.customers {
        let d = desired(&program, customer, &Default::default(), when);
        let o = &snapshot.organizations[&customer.name][0];
        assert_eq!(
            o.license,
            serde_json::to_string(&d.license.to_json()).unwrap(),
            "{}",
            customer.key
        );
        let roles: BTreeMap<String, String> = d
            .roles
            .iter()
            .map(|(e, r)| {
                let role = match r {
                    OrgRole::Owner => "Owner",
                    OrgRole::Admin => "Admin",
                    OrgRole::Member => "Member",
                };
                (e.to_lowercase(), role.to_owned())
            })
            .collect();
        assert_eq!(o.members, roles, "{}", customer.key);
        for (team, people) in &d.teams {
            assert_eq!(o.teams[team][0].len(), people.len(), "{}", customer.key);
        }
    }
    for staff in &program.staff {
        assert_eq!(
            snapshot.users[&staff.email.to_lowercase()],
            staff.role,
            "{}",
            staff.email
        );
    }
}

/// Where the apply is killed.
#[derive(Clone, Copy, Debug)]
enum KillPoint {
    /// The k-th write is carried out by the instance; its answer never reaches charter.
    Unanswered(usize),
    /// The k-th creation of an organization is carried out; its answer never reaches charter.
    UnansweredOrganization(usize),
    /// The k-th transfer of ownership is carried out; its answer never reaches charter.
    UnansweredTransfer(usize),
    /// The k-th write's answer reaches charter; nothing after it is forwarded.
    Answered(usize),
    /// charter has logged its k-th finished step; from then on nothing is forwarded (writes
    /// are slowed a little so that few others finish in between).
    AfterLog(usize),
}

impl KillPoint {
    /// Whether the instance is left with a write whose answer charter never got.
    fn leaves_an_unknown_outcome(self) -> bool {
        matches!(
            self,
            KillPoint::Unanswered(_)
                | KillPoint::UnansweredOrganization(_)
                | KillPoint::UnansweredTransfer(_)
        )
    }
}

#[derive(Default)]
struct Traffic {
    writes: usize,
    organizations: usize,
    transfers: usize,
    /// Nothing more is forwarded.
    frozen: bool,
    /// Counting, holding and killing: only around the apply that is killed. Unarmed, the proxy
    /// only forwards, so that every run of charter reaches the instance at one address (a
    /// state belongs to one instance, and its address is part of it).
    armed: bool,
}

#[derive(Clone)]
struct KillProxy {
    upstream: String,
    client: reqwest::Client,
    point: KillPoint,
    traffic: Arc<Mutex<Traffic>>,
    kill: Arc<Mutex<mpsc::Sender<()>>>,
}

async fn forward_or_hold(
    axum::extract::State(p): axum::extract::State<KillProxy>,
    request: axum::extract::Request,
) -> axum::response::Response {
    let (parts, body) = request.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let write = parts.method != axum::http::Method::GET;
    let post = parts.method == axum::http::Method::POST;
    let creates_organization = post && parts.uri.path() == "/api/v2/admin/organizations";
    let transfers = post && parts.uri.path().ends_with("/transfer");
    let armed = p.traffic.lock().unwrap().armed;
    let (hold, withhold, answered) = {
        let mut t = p.traffic.lock().unwrap();
        if !t.armed {
            (false, false, false)
        } else if t.frozen {
            (true, false, false)
        } else if write {
            t.writes += 1;
            t.organizations += usize::from(creates_organization);
            t.transfers += usize::from(transfers);
            let (withhold, answered) = match p.point {
                KillPoint::Unanswered(k) => (t.writes == k, false),
                KillPoint::UnansweredOrganization(k) => {
                    (creates_organization && t.organizations == k, false)
                }
                KillPoint::UnansweredTransfer(k) => (transfers && t.transfers == k, false),
                KillPoint::Answered(k) => (false, t.writes == k),
                KillPoint::AfterLog(_) => (false, false),
            };
            t.frozen = withhold || answered;
            (false, withhold, answered)
        } else {
            (false, false, false)
        }
    };
    if hold {
        // Held until charter is killed and the connection goes.
        std::future::pending::<()>().await;
    }
    if write && armed && matches!(p.point, KillPoint::AfterLog(_)) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let response = common::forward(&p.client, &p.upstream, &parts, body).await;
    if withhold {
        // Committed on the instance; charter never hears of it.
        let _ = p.kill.lock().unwrap().send(());
        std::future::pending::<()>().await;
    }
    if answered {
        let kill = p.kill.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            let _ = kill.lock().unwrap().send(());
        });
    }
    response
}

/// Starts the proxy on `runtime`; returns its URL.
fn kill_proxy(
    runtime: &tokio::runtime::Runtime,
    upstream: &str,
    point: KillPoint,
    traffic: Arc<Mutex<Traffic>>,
    kill: mpsc::Sender<()>,
) -> String {
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .fallback(forward_or_hold)
        .with_state(KillProxy {
            upstream: upstream.to_owned(),
            client: reqwest::Client::new(),
            point,
            traffic,
            kill: Arc::new(Mutex::new(kill)),
        });
    runtime.spawn(async move { axum::serve(listener, app).await });
    format!("http://{addr}")
}

/// A killed apply: the instants applied before it without interruption, then its own.
#[derive(Clone, Copy, Debug)]
struct Scenario {
    name: &'static str,
    before: &'static [&'static str],
    at: &'static str,
}

/// Provisioning an empty instance.
const PROVISION: Scenario = Scenario {
    name: "provision",
    before: &[],
    at: AT,
};

/// Deprovisioning (license, dummy owner, transfers, demotions) of a provisioned instance.
const DEPROVISION: Scenario = Scenario {
    name: "deprovision",
    before: &[AT],
    at: "2027-05-09",
};

/// What a killed apply left, and what the next apply made of it: the instance, and the
/// transitions charter's state recorded (customer → (transition, when)).
struct Round {
    partial: Snapshot,
    after: Snapshot,
    transitions: BTreeMap<String, Vec<(String, i64)>>,
}

fn apply_directly(policy: &Path, url: &str, at: &str) {
    let output = charter(policy, url, &["apply", ".", "--at", at, "--auto-approve"])
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{at}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn recorded_transitions(policy: &Path) -> BTreeMap<String, Vec<(String, i64)>> {
    let state = charter::state::Store::open_file(&policy.join(".charter/state.db")).unwrap();
    state
        .customers()
        .unwrap()
        .into_iter()
        .map(|c| {
            let list = state
                .transitions(&c.key)
                .unwrap()
                .into_iter()
                .map(|t| (t.transition, t.at))
                .collect();
            (c.key, list)
        })
        .collect()
}

fn killed_apply(
    scenario: Scenario,
    name: &str,
    point: KillPoint,
    runtime: &tokio::runtime::Runtime,
) -> Round {
    let dir = scratch(name);
    let policy = dir.join("acme");
    common::copy_acme_into(&policy);
    let sandbox = SandboxProcess::start(&dir.join("sandbox.db"), TOKEN, &[]);
    let traffic = Arc::new(Mutex::new(Traffic::default()));
    let (kill, killed) = mpsc::channel();
    let proxy = kill_proxy(runtime, &sandbox.url, point, traffic.clone(), kill.clone());
    for at in scenario.before {
        apply_directly(&policy, &proxy, at);
    }
    traffic.lock().unwrap().armed = true;
    let mut apply = charter(
        &policy,
        &proxy,
        &["apply", ".", "--at", scenario.at, "--auto-approve"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    let stderr = apply.stderr.take().unwrap();
    let seen = traffic.clone();
    let log = std::thread::spawn(move || {
        let mut done = 0;
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap();
            if line.starts_with("done `") {
                done += 1;
                if let KillPoint::AfterLog(k) = point
                    && done == k
                {
                    seen.lock().unwrap().frozen = true;
                    let _ = kill.send(());
                }
            }
            lines.push(line);
        }
        lines
    });
    killed
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{name}: the apply never reached {point:?}"));
    assert!(
        apply.try_wait().unwrap().is_none(),
        "{name}: the apply ended before {point:?}"
    );
    // SIGKILL: no chance to clean up.
    apply.kill().unwrap();
    let _ = apply.wait();
    traffic.lock().unwrap().armed = false;
    let log = log.join().unwrap();
    let writes = traffic.lock().unwrap().writes;
    match point {
        KillPoint::Unanswered(k) | KillPoint::Answered(k) => assert_eq!(writes, k, "{name}"),
        KillPoint::UnansweredOrganization(_)
        | KillPoint::UnansweredTransfer(_)
        | KillPoint::AfterLog(_) => {}
    }
    let partial = Snapshot::of(&observed(&sandbox.url));
    partial.assert_no_duplicates(name);

    let output = charter(
        &policy,
        &proxy,
        &["apply", ".", "--at", scenario.at, "--auto-approve"],
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{name} ({} objects then; log {log:?}): {stdout}{stderr}",
        partial.objects()
    );
    if point.leaves_an_unknown_outcome() {
        // The steps in flight when it died were reconciled by reading.
        assert!(stdout.contains("reconciled by reading"), "{name}: {stdout}");
    }
    let after = Snapshot::of(&observed(&sandbox.url));
    let output = charter(&policy, &proxy, &["plan", ".", "--at", scenario.at])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{name}: planning again is not empty: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let transitions = recorded_transitions(&policy);
    drop(sandbox);
    Round {
        partial,
        after,
        transitions,
    }
}

/// The scenario applied without interruption, for comparison: the instance before its last
/// apply, after it, and the transitions recorded.
fn uninterrupted(scenario: Scenario) -> (Snapshot, Round) {
    let dir = scratch(&format!("{}-uninterrupted", scenario.name));
    let policy = dir.join("acme");
    common::copy_acme_into(&policy);
    let sandbox = SandboxProcess::start(&dir.join("sandbox.db"), TOKEN, &[]);
    for at in scenario.before {
        apply_directly(&policy, &sandbox.url, at);
    }
    let before = Snapshot::of(&observed(&sandbox.url));
    apply_directly(&policy, &sandbox.url, scenario.at);
    let after = Snapshot::of(&observed(&sandbox.url));
    let transitions = recorded_transitions(&policy);
    drop(sandbox);
    (
        before.clone(),
        Round {
            partial: before,
            after,
            transitions,
        },
    )
}

/// Kills the scenario's apply at each point and checks what the next apply makes of it.
fn kill_at_each_point(scenario: Scenario, points: &[KillPoint]) -> Snapshot {
    let (start, reference) = uninterrupted(scenario);
    reference.after.assert_no_duplicates(scenario.name);
    // The apply changes enough to be killed inside it.
    assert_ne!(start, reference.after);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut partials = BTreeSet::new();
    for (i, point) in points.iter().copied().enumerate() {
        let name = format!("{}{i}", scenario.name);
        let round = killed_apply(scenario, &name, point, &runtime);
        // Killed part-way: the instance is neither where it started nor where it ends.
        assert_ne!(round.partial, start, "{name} {point:?}: nothing was done");
        assert_ne!(
            round.partial, reference.after,
            "{name} {point:?}: everything was done"
        );
        assert!(
            partials.insert(round.partial.clone()),
            "{name} {point:?} left the same instance as an earlier kill"
        );
        round.after.assert_no_duplicates(&name);
        assert_eq!(
            round.after, reference.after,
            "{name} {point:?}: not what an uninterrupted apply leaves"
        );
        assert_eq!(
            round.transitions, reference.transitions,
            "{name} {point:?}: transitions recorded differ from an uninterrupted apply"
        );
    }
    runtime.shutdown_background();
    reference.after
}

#[test]
fn a_provisioning_killed_anywhere_inside_converges_on_the_next_apply_without_duplicates() {
    let end = kill_at_each_point(
        PROVISION,
        &[
            // A create of a user, then of organizations, carried out but never answered.
            KillPoint::Unanswered(1),
            KillPoint::UnansweredOrganization(1),
            KillPoint::UnansweredOrganization(9),
            KillPoint::Unanswered(40),
            KillPoint::Unanswered(70),
            KillPoint::Unanswered(100),
            // Between steps: after an answer, or after charter logged a finished step.
            KillPoint::Answered(20),
            KillPoint::Answered(55),
            KillPoint::Answered(85),
            KillPoint::AfterLog(5),
            KillPoint::AfterLog(30),
            KillPoint::AfterLog(92),
        ],
    );
    assert_is_the_policy(&end);
    let objects = end.objects();
    assert!(objects > 150, "{objects}");
}

#[test]
fn a_deprovisioning_killed_anywhere_inside_converges_on_the_next_apply_without_duplicates() {
    kill_at_each_point(
        DEPROVISION,
        &[
            KillPoint::Unanswered(2),
            KillPoint::AfterLog(5),
            KillPoint::Answered(12),
            // A transfer of ownership carried out but never answered: never sent twice.
            KillPoint::UnansweredTransfer(1),
            KillPoint::UnansweredTransfer(4),
        ],
    );
}

#[test]
fn run_every_stops_cleanly_on_sigterm_between_rounds() {
    let dir = scratch("sigterm");
    let policy = dir.join("acme");
    common::copy_acme_into(&policy);
    let sandbox = SandboxProcess::start(&dir.join("sandbox.db"), TOKEN, &[]);
    let mut daemon = charter(&policy, &sandbox.url, &["run", ".", "--every", "1 h"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first round to end: the daemon then says when the next one is.
    let stderr = daemon.stderr.take().unwrap();
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.starts_with("next round in");
        seen.push(line);
        if done {
            break;
        }
    }
    // The next round is due at the next whole hour (rounds are due at multiples of `--every`).
    assert!(
        seen.last().is_some_and(|l| l.starts_with("next round in ")),
        "{seen:?}"
    );
    let status = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest: Vec<String> = lines.map(|l| l.unwrap()).collect();
    let exit = daemon.wait().unwrap();
    assert!(exit.success(), "{exit:?} {rest:?}");
    assert!(rest.iter().any(|l| l == "stopped"), "{rest:?}");
    // The first round provisioned everything, and the lock was released: a plan finds nothing.
    let output = charter(&policy, &sandbox.url, &["plan", "."])
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    drop(sandbox);
}
