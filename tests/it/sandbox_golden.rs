//! Make's published example responses (`tests/contract/`) as the sandbox's golden answers: for
//! each fixture the sandbox answers the request the example answers, and its answer must have the
//! example's shape — the same fields and JSON types, recursively; values may differ.
//!
//! Where the sandbox does not model a field of Make's example (an avatar, a hosting zone), the
//! entry says so by path in `not_served`; where the sandbox answers a field the example lacks, in
//! `beyond`, with the reason. `null` on either side matches any type: Make's examples show
//! nullable fields with and without values.

// Test helpers outside `#[test]` functions fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use charter_sandbox::{Config, RunningSandbox, TokenGrant, TokenRole};
use serde_json::{Map, Value, json};

const SA: &str = "sa-token";

/// The objects a golden request names.
#[derive(Clone, Copy, Debug)]
struct World {
    owner: i64,
    member: i64,
    organization: i64,
    team: i64,
}

/// One fixture and the request the sandbox answers in its place.
struct Golden {
    fixture: &'static str,
    method: &'static str,
    /// `{owner}`, `{member}`, `{organization}` and `{team}` name the world's objects.
    path: &'static str,
    body: Option<fn(&World) -> Value>,
    /// Fields of the example the sandbox does not answer, by path (`organization.zone`,
    /// `users[].avatar`).
    not_served: &'static [&'static str],
    /// Fields the sandbox answers that the example lacks, by path.
    beyond: &'static [&'static str],
    /// Objects compared as objects only: their keys are data (a license's keys).
    opaque: &'static [&'static str],
}

const GOLDEN: &[Golden] = &[
    Golden {
        // Make's example is of `GET /admin/users-detail`, the closest published user objects;
        // its `pg` was cut off in the stored copy.
        fixture: "admin-users-detail.json",
        method: "GET",
        path: "/admin/users?organizationId={organization}",
        body: None,
        not_served: &[
            "users[].features",
            "users[].avatar",
            "users[].lastLogin",
            "users[].organizations",
            "users[].scenarios",
            "users[].activeScenarios",
            "users[].created",
            "users[].tfaEnabled",
        ],
        beyond: &["pg"],
        opaque: &[],
    },
    Golden {
        fixture: "admins-roles-cols.json",
        method: "GET",
        path: "/admin/users/admins-roles?category=system&cols[]=id&cols[]=name&cols[]=permissions\
               &cols[]=category&cols[]=identifier",
        body: None,
        not_served: &[],
        beyond: &[],
        opaque: &[],
    },
    Golden {
        fixture: "admins-roles-default.json",
        method: "GET",
        path: "/admin/users/admins-roles?category=system",
        body: None,
        not_served: &[],
        beyond: &[],
        opaque: &[],
    },
    Golden {
        fixture: "organization-create-sdk.json",
        method: "POST",
        path: "/admin/organizations",
        body: Some(|w| json!({ "name": "Golden", "userOrgAdmin": w.owner })),
        not_served: &["organization.zone", "organization.serviceName"],
        beyond: &[],
        opaque: &["organization.license"],
    },
    Golden {
        fixture: "organization-update-sdk.json",
        method: "PATCH",
        path: "/admin/organizations/{organization}",
        body: Some(|_| json!({ "name": "Renamed" })),
        not_served: &["organization.zone", "organization.serviceName"],
        beyond: &[],
        opaque: &["organization.license"],
    },
    Golden {
        // Make's example is of `GET /organizations/{id}/user-organization-roles`; the sandbox
        // serves the same items for a user.
        fixture: "organization-user-organization-roles.json",
        method: "GET",
        path: "/users/{member}/user-organization-roles",
        body: None,
        not_served: &[],
        beyond: &[],
        opaque: &[],
    },
    Golden {
        fixture: "organizations-list-sdk.json",
        method: "GET",
        path: "/admin/organizations",
        body: None,
        not_served: &[],
        beyond: &[],
        opaque: &[],
    },
    Golden {
        fixture: "team-create-sdk.json",
        method: "POST",
        path: "/admin/teams",
        body: Some(
            |w| json!({ "name": "Golden team", "organizationId": w.organization, "userTeamAdmin": w.owner }),
        ),
        not_served: &["team.operationsLimit", "team.transferLimit"],
        beyond: &[],
        opaque: &[],
    },
    Golden {
        fixture: "teams-list-sdk.json",
        method: "GET",
        path: "/admin/teams?organizationId={organization}",
        body: None,
        not_served: &[],
        beyond: &[],
        opaque: &[],
    },
    Golden {
        fixture: "transfer.json",
        method: "POST",
        path: "/admin/users/{member}/user-organization-roles/{organization}/transfer",
        body: None,
        not_served: &[],
        beyond: &[],
        opaque: &[],
    },
    Golden {
        fixture: "usage.json",
        method: "GET",
        path: "/organizations/{organization}/usage",
        body: None,
        not_served: &[],
        beyond: &[],
        opaque: &[],
    },
    Golden {
        fixture: "user-organization-roles.json",
        method: "GET",
        path: "/users/{owner}/user-organization-roles",
        body: None,
        not_served: &[],
        beyond: &[],
        opaque: &[],
    },
    Golden {
        fixture: "user-team-role.json",
        method: "POST",
        path: "/admin/users/{member}/user-team-roles/{team}",
        body: Some(|_| json!({ "usersRoleId": 3 })),
        not_served: &["userTeamRole.ssoPending"],
        beyond: &[],
        opaque: &[],
    },
    Golden {
        fixture: "users-me.json",
        method: "GET",
        path: "/users/me",
        body: None,
        not_served: &[
            "authUser.avatar",
            "authUser.lastLogin",
            "authUser.timezone",
            "authUser.locale",
        ],
        beyond: &[],
        opaque: &["authUser.features"],
    },
    Golden {
        fixture: "users-roles-docs.json",
        method: "GET",
        path: "/users/roles",
        body: None,
        not_served: &[],
        beyond: &[],
        opaque: &[],
    },
    Golden {
        // The SDK serves this answer without `cols[]`; the sandbox follows Make's developer
        // documentation (`users-roles-docs.json`) and gives these columns only when asked.
        fixture: "users-roles-sdk.json",
        method: "GET",
        path: "/users/roles?category=organization&cols[]=id&cols[]=name&cols[]=category\
               &cols[]=subsidiary&cols[]=permissions",
        body: None,
        not_served: &["usersRoles[].managementType", "usersRoles[].description"],
        beyond: &[],
        opaque: &[],
    },
];

fn contract_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/contract")
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// The items of an example's list as one object: every key any item has, with the first
/// non-null value; the keys not every item has are optional.
fn merged(items: &[Value]) -> Option<(Map<String, Value>, BTreeSet<String>)> {
    let objects: Vec<&Map<String, Value>> = items.iter().filter_map(Value::as_object).collect();
    if objects.len() != items.len() {
        return None;
    }
    let mut merged = Map::new();
    for object in &objects {
        for (key, value) in *object {
            let slot = merged.entry(key.clone()).or_insert(Value::Null);
            if slot.is_null() {
                *slot = value.clone();
            }
        }
    }
    let optional = merged
        .keys()
        .filter(|key| !objects.iter().all(|o| o.contains_key(*key)))
        .cloned()
        .collect();
    Some((merged, optional))
}

/// Every way `got` departs from the shape of `want`, by path.
fn differences(
    path: &str,
    want: &Value,
    got: &Value,
    optional: &BTreeSet<String>,
    golden: &Golden,
    out: &mut Vec<String>,
) {
    match (want, got) {
        (Value::Null, _) | (_, Value::Null) => {}
        (Value::Object(want), Value::Object(got)) => {
            if golden.opaque.contains(&path) {
                return;
            }
            for key in got.keys() {
                let at = child(path, key);
                if !want.contains_key(key) && !golden.beyond.contains(&at.as_str()) {
                    out.push(format!(
                        "`{at}`: the sandbox answers it; Make's example has no such field"
                    ));
                }
            }
            for (key, value) in want {
                let at = child(path, key);
                match got.get(key) {
                    Some(answered) => {
                        differences(&at, value, answered, &BTreeSet::new(), golden, out);
                    }
                    None if optional.contains(key) || golden.not_served.contains(&at.as_str()) => {}
                    None => out.push(format!(
                        "`{at}`: Make's example has it; the sandbox does not answer it"
                    )),
                }
            }
        }
        (Value::Array(want), Value::Array(got)) => {
            let at = format!("{path}[]");
            if want.is_empty() {
                return;
            }
            if got.is_empty() {
                out.push(format!(
                    "`{path}`: the sandbox answered an empty list, so its items go unchecked"
                ));
                return;
            }
            match merged(want) {
                Some((item, optional)) => {
                    let item = Value::Object(item);
                    for answered in got {
                        differences(&at, &item, answered, &optional, golden, out);
                    }
                }
                None => {
                    for answered in got {
                        differences(&at, &want[0], answered, &BTreeSet::new(), golden, out);
                    }
                }
            }
        }
        (want, got) if kind(want) == kind(got) => {}
        (want, got) => out.push(format!(
            "`{path}`: Make's example has a {}, the sandbox a {} (`{got}`)",
            kind(want),
            kind(got)
        )),
    }
}

async fn send(
    client: &reqwest::Client,
    running: &RunningSandbox,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = client
        .request(method, format!("{}{path}", running.url()))
        .header("Authorization", format!("Token {SA}"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// A sandbox with an owner, a member, their organization and a second team in it.
async fn world() -> (RunningSandbox, reqwest::Client, World) {
    let running = charter_sandbox::start(Config {
        tokens: vec![TokenGrant::new(SA, TokenRole::SystemAdministrator)],
        ..Config::default()
    })
    .await
    .unwrap();
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for (name, email) in [
        ("Olga", "olga@golden.example"),
        ("Max", "max@golden.example"),
    ] {
        let (_, body) = send(
            &client,
            &running,
            "POST",
            "/admin/users",
            Some(json!({ "name": name, "email": email })),
        )
        .await;
        ids.push(body["user"]["id"].as_i64().unwrap());
    }
    let (owner, member) = (ids[0], ids[1]);
    let (_, created) = send(
        &client,
        &running,
        "POST",
        "/admin/organizations",
        Some(json!({ "name": "Golden", "userOrgAdmin": owner })),
    )
    .await;
    let organization = created["organization"]["id"].as_i64().unwrap();
    send(
        &client,
        &running,
        "POST",
        &format!("/admin/users/{member}/user-organization-roles/{organization}"),
        Some(json!({ "usersRoleId": 13 })),
    )
    .await;
    let (_, team) = send(
        &client,
        &running,
        "POST",
        "/admin/teams",
        Some(json!({ "name": "Ops", "organizationId": organization })),
    )
    .await;
    let team = team["team"]["id"].as_i64().unwrap();
    let world = World {
        owner,
        member,
        organization,
        team,
    };
    (running, client, world)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sandbox_answers_each_example_request_in_the_example_shape() {
    let mut problems = Vec::new();
    for golden in GOLDEN {
        // A fresh world each: a transfer or a rename must not change what the next request meets.
        let (running, client, world) = world().await;
        let path = golden
            .path
            .replace("{owner}", &world.owner.to_string())
            .replace("{member}", &world.member.to_string())
            .replace("{organization}", &world.organization.to_string())
            .replace("{team}", &world.team.to_string());
        let text = std::fs::read_to_string(contract_dir().join(golden.fixture)).unwrap();
        let want: Value = serde_json::from_str(&text).unwrap();
        let (status, got) = send(
            &client,
            &running,
            golden.method,
            &path,
            golden.body.map(|body| body(&world)),
        )
        .await;
        if status != 200 {
            problems.push(format!(
                "{}: `{} {path}` answered {status}: {got}",
                golden.fixture, golden.method
            ));
        } else {
            let mut found = Vec::new();
            differences("", &want, &got, &BTreeSet::new(), golden, &mut found);
            // Each item of a list reports the same difference: once is enough.
            found.sort();
            found.dedup();
            problems.extend(
                found
                    .into_iter()
                    .map(|p| format!("{}: {p}", golden.fixture)),
            );
        }
        running.shutdown().await.unwrap();
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_example_is_a_golden_answer() {
    let fixtures: BTreeSet<String> = std::fs::read_dir(contract_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".json"))
        .collect();
    let golden: BTreeSet<String> = GOLDEN.iter().map(|g| g.fixture.to_owned()).collect();
    assert_eq!(
        fixtures, golden,
        "each example in tests/contract needs a golden request here"
    );
}

#[test]
fn the_shape_comparison_notices_each_kind_of_difference() {
    let golden = Golden {
        fixture: "",
        method: "GET",
        path: "",
        body: None,
        not_served: &["a.skipped"],
        beyond: &[],
        opaque: &["free"],
    };
    let want = json!({
        "a": { "id": 1, "name": "x", "skipped": true, "maybe": null },
        "list": [{ "id": 1, "tag": "t" }, { "id": 2 }],
        "free": { "k": 1 },
    });
    let check = |got: Value| {
        let mut out = Vec::new();
        differences("", &want, &got, &BTreeSet::new(), &golden, &mut out);
        out
    };
    let same = json!({
        "a": { "id": 7, "name": "y", "maybe": 3 },
        "list": [{ "id": 5 }],
        "free": { "other": [] },
    });
    assert_eq!(check(same), Vec::<String>::new());
    let extra = check(
        json!({ "a": { "id": 1, "name": "x", "maybe": null, "deleted": false }, "list": [{ "id": 1 }], "free": {} }),
    );
    assert_eq!(
        extra,
        ["`a.deleted`: the sandbox answers it; Make's example has no such field"]
    );
    let missing =
        check(json!({ "a": { "id": 1, "maybe": "m" }, "list": [{ "id": 1 }], "free": {} }));
    assert_eq!(
        missing,
        ["`a.name`: Make's example has it; the sandbox does not answer it"]
    );
    let retyped = check(
        json!({ "a": { "id": "1", "name": "x", "maybe": null }, "list": [{ "id": 1 }], "free": {} }),
    );
    assert_eq!(retyped.len(), 1, "{retyped:?}");
    assert!(
        retyped[0].starts_with("`a.id`: Make's example has a number"),
        "{retyped:?}"
    );
    let empty = check(json!({ "a": { "id": 1, "name": "x", "maybe": 1 }, "list": [], "free": {} }));
    assert_eq!(empty.len(), 1, "{empty:?}");
}
