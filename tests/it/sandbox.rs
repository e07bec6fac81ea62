//! The sandbox over real HTTP: reqwest against a sandbox started in-process on a loopback port.

// Test helpers outside `#[test]` functions fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use charter_sandbox::{
    self as sandbox, Behaviour, Config, Faults, PageCap, PreviousOwner, RATE_LIMIT_MESSAGE,
    RunningSandbox, SeedOptions, Storage, TokenGrant, TokenRole, UserOrgAdmin,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

const SA: &str = "sa-token";
const ADMIN: &str = "admin-token";
const BI: &str = "bi-token";
const MEMBER: &str = "member-token";

/// `cols[]` for every column of an organization: without it a list answers `{id, name,
/// timezoneId}` only.
const ALL_COLUMNS: &str = "cols[]=id&cols[]=name&cols[]=timezoneId&cols[]=countryId&cols[]=license\
    &cols[]=teams&cols[]=isPaused&cols[]=externalId&cols[]=scenarios&cols[]=activeScenarios\
    &cols[]=deleted";

const OWNER: i64 = 11;
const ADMIN_ROLE: i64 = 12;
const MEMBER_ROLE: i64 = 13;

fn config() -> Config {
    Config {
        tokens: vec![
            TokenGrant::new(SA, TokenRole::SystemAdministrator),
            TokenGrant::new(ADMIN, TokenRole::Admin),
            TokenGrant::new(BI, TokenRole::BusinessIntelligence),
            TokenGrant::new(MEMBER, TokenRole::Member),
        ],
        ..Config::default()
    }
}

/// A running sandbox and a client for it.
struct Harness {
    running: RunningSandbox,
    client: reqwest::Client,
}

/// A response: its status and its JSON body (`null` when it has none).
#[derive(Debug)]
struct Reply {
    status: StatusCode,
    body: Value,
}

impl Reply {
    #[track_caller]
    fn ok(self) -> Value {
        assert_eq!(self.status, StatusCode::OK, "{}", self.body);
        self.body
    }

    /// Asserts Make's error body with this status, and that `detail` mentions `needle`.
    #[track_caller]
    fn error(self, status: u16, needle: &str) -> Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(self.body["code"], format!("SC{status}"), "{}", self.body);
        assert!(self.body["message"].is_string(), "{}", self.body);
        let detail = self.body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.contains(needle),
            "detail `{detail}` does not mention `{needle}`"
        );
        self.body
    }
}

async fn start(config: Config) -> Harness {
    let running = sandbox::start(config).await.unwrap();
    Harness {
        running,
        client: reqwest::Client::new(),
    }
}

async fn harness() -> Harness {
    start(config()).await
}

impl Harness {
    fn url(&self, path: &str) -> String {
        if let Some(control) = path.strip_prefix("/_sandbox") {
            format!("{}{control}", self.running.control_url())
        } else {
            format!("{}{path}", self.running.url())
        }
    }

    async fn send(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self.client.request(method, self.url(path));
        if let Some(token) = token {
            request = request.header("Authorization", format!("Token {token}"));
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        Reply { status, body }
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(Some(SA), "GET", path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> Reply {
        self.send(Some(SA), "POST", path, Some(body)).await
    }

    async fn patch(&self, path: &str, body: Value) -> Reply {
        self.send(Some(SA), "PATCH", path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> Reply {
        self.send(Some(SA), "PUT", path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> Reply {
        self.send(Some(SA), "DELETE", path, None).await
    }

    async fn create_user(&self, name: &str, email: &str) -> i64 {
        let body = self
            .post("/admin/users", json!({ "name": name, "email": email }))
            .await
            .ok();
        body["user"]["id"].as_i64().unwrap()
    }

    async fn create_organization(&self, name: &str, owner: i64) -> Value {
        let body = self
            .post(
                "/admin/organizations",
                json!({ "name": name, "userOrgAdmin": owner }),
            )
            .await
            .ok();
        body["organization"].clone()
    }

    async fn default_license(&self) -> Value {
        self.get("/admin/system-settings/default-license")
            .await
            .ok()["defaultLicense"]
            .clone()
    }

    /// The user ids holding `role` in an organization.
    async fn holders(&self, organization: i64, role: i64) -> Vec<i64> {
        let body = self
            .get(&format!(
                "/admin/users?organizationId={organization}&organizationRoleId={role}&pg[limit]=10000"
            ))
            .await
            .ok();
        ids(&body["users"])
    }

    async fn role_in(&self, user: i64, organization: i64) -> Option<i64> {
        let body = self
            .get(&format!("/users/{user}/user-organization-roles"))
            .await
            .ok();
        body["userOrganizationRoles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["organizationId"] == organization)
            .map(|r| r["usersRoleId"].as_i64().unwrap())
    }
}

fn ids(list: &Value) -> Vec<i64> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_i64().unwrap())
        .collect()
}

fn keys(object: &Value) -> Vec<String> {
    object.as_object().unwrap().keys().cloned().collect()
}

/// A database file's path (not yet created) in a scratch folder of its own, deleted with it.
struct TempDb {
    _dir: common::Scratch,
    path: PathBuf,
}

impl std::ops::Deref for TempDb {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for TempDb {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

fn temp_db(name: &str) -> TempDb {
    let dir = common::scratch("sandbox", name);
    let path = dir.join(format!("{name}.db"));
    TempDb { _dir: dir, path }
}

// Organizations and licenses

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organization_is_created_listed_changed_and_deleted() {
    let h = harness().await;
    let owner = h.create_user("Olga Owner", "olga@acme.example").await;
    let answer = h
        .post(
            "/admin/organizations",
            json!({ "name": "Acme", "userOrgAdmin": owner }),
        )
        .await
        .ok();
    // Make's example answer: the organization's settings, license and teams, and the owner's
    // membership beside it.
    assert_eq!(
        keys(&answer["organization"]),
        [
            "id",
            "name",
            "timezoneId",
            "countryId",
            "license",
            "teams",
            "isPaused"
        ]
    );
    let created = &answer["organization"];
    let id = created["id"].as_i64().unwrap();
    assert_eq!(
        answer["userOrganizationRole"],
        json!({ "userId": owner, "organizationId": id, "usersRoleId": OWNER, "invitation": null })
    );
    assert_eq!(created["name"], "Acme");
    assert_eq!(created["license"], h.default_license().await);
    assert_eq!(created["teams"].as_array().unwrap().len(), 1);
    assert_eq!(created["isPaused"], false);

    let listed = h.get(&format!("/admin/organizations?id={id}")).await.ok();
    assert_eq!(
        listed["organizations"],
        json!([{ "id": id, "name": "Acme", "timezoneId": created["timezoneId"] }]),
        "without `cols[]` a list has Make's default columns"
    );
    let listed = h
        .get(&format!("/admin/organizations?id={id}&{ALL_COLUMNS}"))
        .await
        .ok();
    let full = &listed["organizations"][0];
    for key in [
        "id",
        "name",
        "timezoneId",
        "countryId",
        "license",
        "teams",
        "isPaused",
    ] {
        assert_eq!(full[key], created[key], "{key}");
    }
    assert_eq!(full["deleted"], false);
    assert_eq!(full["scenarios"], 0);
    assert_eq!(full["activeScenarios"], 0);
    assert!(full["externalId"].is_null());

    let mut license = h.default_license().await;
    license["operations"] = json!(40_000);
    license["fulltext"] = json!(true);
    let changed = h
        .patch(
            &format!("/admin/organizations/{id}"),
            json!({ "name": "Acme Inc", "license": license, "timezoneId": 7 }),
        )
        .await
        .ok();
    assert_eq!(changed["organization"]["name"], "Acme Inc");
    assert_eq!(changed["organization"]["license"], license);
    assert_eq!(changed["organization"]["timezoneId"], 7);

    h.delete(&format!("/admin/organizations/{id}")).await.ok();
    let listed = h.get(&format!("/admin/organizations?id={id}")).await.ok();
    assert_eq!(listed["organizations"], json!([]));
    h.patch(
        &format!("/admin/organizations/{id}"),
        json!({ "name": "x" }),
    )
    .await
    .error(404, &format!("`{id}`"));
    h.delete(&format!("/admin/organizations/{id}"))
        .await
        .error(404, &format!("`{id}`"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_user_org_admin_the_caller_owns_the_new_organization() {
    let h = harness().await;
    let created = h
        .post("/admin/organizations", json!({ "name": "Mine" }))
        .await
        .ok();
    let id = created["organization"]["id"].as_i64().unwrap();
    let caller = h
        .get("/admin/users/lookup?q=sa@sandbox.invalid&type=email")
        .await
        .ok();
    assert_eq!(
        h.holders(id, OWNER).await,
        vec![caller["user"]["id"].as_i64().unwrap()]
    );
    h.post(
        "/admin/organizations",
        json!({ "name": "Nobody's", "userOrgAdmin": 987_654 }),
    )
    .await
    .error(400, "userOrgAdmin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organization_names_may_repeat_as_in_make() {
    let h = harness().await;
    let owner = h.create_user("Olga", "olga@twins.example").await;
    let first = h.create_organization("Twins", owner).await;
    let second = h.create_organization("Twins", owner).await;
    assert_ne!(first["id"], second["id"]);
    let listed = h.get("/admin/organizations?name=twin").await.ok();
    assert_eq!(listed["organizations"].as_array().unwrap().len(), 2);
}

/// Makes a valid license invalid.
type Spoil = Box<dyn Fn(&mut Value)>;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_license_is_refused_naming_the_offending_key() {
    let h = harness().await;
    let owner = h.create_user("Olga", "olga@strict.example").await;
    let id = h.create_organization("Strict", owner).await["id"]
        .as_i64()
        .unwrap();
    let valid = h.default_license().await;
    let cases: Vec<(&str, Spoil)> = vec![
        (
            "auditLogsDays",
            Box::new(|l| l["auditLogsDays"] = json!(366)),
        ),
        ("operations", Box::new(|l| l["operations"] = json!("10000"))),
        ("operations", Box::new(|l| l["operations"] = json!(-1))),
        ("operations", Box::new(|l| l["operations"] = json!(1.5))),
        ("interval", Box::new(|l| l["interval"] = json!(0))),
        ("premiumApps", Box::new(|l| l["premiumApps"] = json!(4))),
        ("fulltext", Box::new(|l| l["fulltext"] = json!("true"))),
        (
            "restartPeriod",
            Box::new(|l| l["restartPeriod"] = json!("monthly")),
        ),
        ("gracePeriod", Box::new(|l| l["gracePeriod"] = json!(8))),
        (
            "productManagement",
            Box::new(|l| l["productManagement"] = json!("hubspot")),
        ),
        (
            "dynamicConnections",
            Box::new(|l| {
                l["dynamicConnections"] = json!(true);
                l["dynamicDependencies"] = json!(false);
            }),
        ),
        ("apps", Box::new(|l| l["apps"] = json!({ "tier": "T1" }))),
        ("priority", Box::new(|l| l["priority"] = json!("urgent"))),
    ];
    for (key, spoil) in cases {
        let mut license = valid.clone();
        spoil(&mut license);
        let body = h
            .patch(
                &format!("/admin/organizations/{id}"),
                json!({ "license": license }),
            )
            .await
            .error(400, &format!("`{key}`"));
        assert!(body["suberrors"].is_array(), "{body}");
        h.post(
            "/admin/organizations",
            json!({ "name": "Spoilt", "userOrgAdmin": owner, "license": license }),
        )
        .await
        .error(400, &format!("`{key}`"));
    }
    // Nothing was changed or created by the refused requests.
    let listed = h.get("/admin/organizations?cols[]=license").await.ok();
    assert_eq!(listed["organizations"].as_array().unwrap().len(), 1);
    assert_eq!(listed["organizations"][0]["license"], valid);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_replaces_the_license_with_the_keys_sent_and_flags_are_not_checked() {
    let h = harness().await;
    let owner = h.create_user("Olga", "olga@replace.example").await;
    let id = h.create_organization("Replace", owner).await["id"]
        .as_i64()
        .unwrap();
    // A partial license is what Make's own examples show: it is stored as sent, so the keys
    // left out are gone (the strict reading of PATCH: a client must send what it means to keep).
    let partial = h
        .patch(
            &format!("/admin/organizations/{id}"),
            json!({ "license": { "operations": 5 } }),
        )
        .await
        .ok();
    assert_eq!(
        partial["organization"]["license"],
        json!({ "operations": 5 })
    );
    let mut license = h.default_license().await;
    license["customVariables"] = json!(true);
    license["dynamicDependencies"] = json!(true);
    license["dynamicConnections"] = json!(true);
    let changed = h
        .patch(
            &format!("/admin/organizations/{id}"),
            json!({ "license": license }),
        )
        .await
        .ok();
    assert_eq!(changed["organization"]["license"], license);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn license_keys_the_sandbox_does_not_know_are_stored_and_served() {
    let h = harness().await;
    let owner = h.create_user("Olga", "olga@unknown.example").await;
    let mut license = h.default_license().await;
    license["someFutureKey"] = json!({ "tier": "gold" });
    license["anotherKey"] = json!(3);
    let created = h
        .post(
            "/admin/organizations",
            json!({ "name": "Future", "userOrgAdmin": owner, "license": license }),
        )
        .await
        .ok();
    assert_eq!(created["organization"]["license"], license);
    let id = created["organization"]["id"].as_i64().unwrap();
    let listed = h
        .get(&format!("/admin/organizations?id={id}&cols[]=license"))
        .await
        .ok();
    assert_eq!(listed["organizations"][0]["license"], license);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn licenses_are_written_in_the_sandbox_key_order() {
    let h = harness().await;
    let response = h
        .client
        .get(h.url("/admin/system-settings/default-license"))
        .header("Authorization", format!("Token {SA}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let positions: Vec<usize> = charter_sandbox::license::KEYS
        .iter()
        .map(|key| response.find(&format!("\"{}\"", key.name)).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{response}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_refused_naming_the_field() {
    let h = harness().await;
    h.post("/admin/organizations", json!({ "name": 5 }))
        .await
        .error(400, "name");
    h.post(
        "/admin/organizations",
        json!({ "name": "x", "colour": "red" }),
    )
    .await
    .error(400, "colour");
    h.post(
        "/admin/organizations",
        json!({ "name": "x", "license": [1] }),
    )
    .await
    .error(400, "license");
    h.post("/admin/organizations", json!({ "name": "  " }))
        .await
        .error(400, "name");
    h.post("/admin/users", json!({ "email": "a@b.example" }))
        .await
        .error(400, "name");
    let raw = h
        .client
        .post(h.url("/admin/users"))
        .header("Authorization", format!("Token {SA}"))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status(), StatusCode::BAD_REQUEST);
    let untyped = h
        .client
        .post(h.url("/admin/users"))
        .header("Authorization", format!("Token {SA}"))
        .body(r#"{"name": "Ada", "email": "ada@untyped.example"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(untyped.status(), StatusCode::BAD_REQUEST);
    let body: Value = untyped.json().await.unwrap();
    assert!(
        body["detail"].as_str().unwrap().contains("Content-Type"),
        "{body}"
    );
    let not_json = h
        .client
        .post(h.url("/admin/users"))
        .header("Authorization", format!("Token {SA}"))
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), StatusCode::BAD_REQUEST);
    h.patch("/admin/organizations/abc", json!({}))
        .await
        .error(400, "`abc`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_has_thirty_days_ending_today_and_scenario_counts() {
    let h = harness().await;
    let owner = h.create_user("Olga", "olga@usage.example").await;
    let id = h.create_organization("Busy", owner).await["id"]
        .as_i64()
        .unwrap();
    let usage = h.get(&format!("/organizations/{id}/usage")).await.ok();
    let days = usage["data"].as_array().unwrap();
    assert_eq!(days.len(), 30);
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date()
        .to_string();
    assert_eq!(days[29]["date"], today);
    assert!(
        days.iter()
            .all(|d| d["operations"] == 0 && d["dataTransfer"] == 0)
    );

    h.put(
        &format!("/_sandbox/organizations/{id}/usage"),
        json!({
            "scenarios": 12,
            "activeScenarios": 5,
            "data": [{ "date": today, "operations": 1234, "dataTransfer": 99 }]
        }),
    )
    .await
    .ok();
    let usage = h.get(&format!("/organizations/{id}/usage")).await.ok();
    assert_eq!(
        usage["data"][29],
        json!({ "date": today, "operations": 1234, "dataTransfer": 99, "centicredits": 123_400 })
    );
    let listed = h
        .get(&format!("/admin/organizations?id={id}&{ALL_COLUMNS}"))
        .await
        .ok();
    assert_eq!(listed["organizations"][0]["scenarios"], 12);
    assert_eq!(listed["organizations"][0]["activeScenarios"], 5);
    h.get("/organizations/999/usage").await.error(404, "`999`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hand_edited_license_is_served_as_it_is() {
    let h = harness().await;
    let owner = h.create_user("Olga", "olga@drift.example").await;
    let id = h.create_organization("Drift", owner).await["id"]
        .as_i64()
        .unwrap();
    let mut drifted = h.default_license().await;
    drifted["operations"] = json!(123);
    drifted["legacyThing"] = json!(true);
    h.put(
        &format!("/_sandbox/organizations/{id}/license"),
        drifted.clone(),
    )
    .await
    .ok();
    let listed = h
        .get(&format!("/admin/organizations?id={id}&cols[]=license"))
        .await
        .ok();
    assert_eq!(listed["organizations"][0]["license"], drifted);
    // Only an SA token reaches the sandbox's own endpoints.
    h.send(
        Some(ADMIN),
        "PUT",
        &format!("/_sandbox/organizations/{id}/license"),
        Some(drifted),
    )
    .await
    .error(403, "sa");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_ids_and_pauses_are_staged_and_filtered_on() {
    let h = harness().await;
    let owner = h.create_user("Olga", "olga@external.example").await;
    let id = h.create_organization("External", owner).await["id"]
        .as_i64()
        .unwrap();
    h.create_organization("Other", owner).await;
    let staged = h
        .send(
            Some(SA),
            "PATCH",
            &format!("/_sandbox/organizations/{id}"),
            Some(json!({ "externalId": "crm-42", "isPaused": true })),
        )
        .await
        .ok();
    assert_eq!(staged["organization"]["externalId"], "crm-42");
    assert_eq!(staged["organization"]["isPaused"], true);
    let found = h.get("/admin/organizations?externalId=crm-42").await.ok();
    assert_eq!(ids(&found["organizations"]), vec![id]);
    let cleared = h
        .send(
            Some(SA),
            "PATCH",
            &format!("/_sandbox/organizations/{id}"),
            Some(json!({ "externalId": null })),
        )
        .await
        .ok();
    assert!(cleared["organization"]["externalId"].is_null());
    assert_eq!(cleared["organization"]["isPaused"], true);
    // Make offers no way to write `externalId`: its own PATCH refuses the field.
    h.patch(
        &format!("/admin/organizations/{id}"),
        json!({ "externalId": "crm-43" }),
    )
    .await
    .error(400, "externalId");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_license_can_be_replaced_for_a_rehearsal() {
    let h = harness().await;
    let mut license = h.default_license().await;
    license["operations"] = json!(777);
    h.put("/_sandbox/default-license", license.clone())
        .await
        .ok();
    assert_eq!(h.default_license().await, license);
    license["operations"] = json!("many");
    h.put("/_sandbox/default-license", license)
        .await
        .error(400, "`operations`");
}

// Users

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_created_looked_up_changed_and_deleted() {
    let h = harness().await;
    let created = h
        .post(
            "/admin/users",
            json!({ "name": "Ada Novak", "email": "Ada@Example.com", "countryId": 3 }),
        )
        .await
        .ok();
    let user = &created["user"];
    let id = user["id"].as_i64().unwrap();
    assert_eq!(user["email"], "Ada@Example.com");
    assert_eq!(user["countryId"], 3);
    assert!(user["usersAdminsRoleId"].is_null());
    assert_eq!(user["deleted"], false);

    let found = h
        .get("/admin/users/lookup?q=ada%40example.COM&type=email")
        .await
        .ok();
    assert_eq!(
        found["user"],
        json!({ "id": id, "email": "Ada@Example.com", "name": "Ada Novak", "deleted": false })
    );
    let by_id = h
        .get(&format!("/admin/users/lookup?q={id}&type=id"))
        .await
        .ok();
    assert_eq!(by_id["user"]["id"], id);
    h.get("/admin/users/lookup?q=nobody@example.com&type=email")
        .await
        .error(404, "nobody@example.com");
    h.get("/admin/users/lookup?q=x").await.error(400, "type");

    let changed = h
        .patch(
            &format!("/admin/users/{id}"),
            json!({ "name": "Ada N.", "language": "cs", "usersAdminsRoleId": 902 }),
        )
        .await
        .ok();
    assert_eq!(changed["user"]["name"], "Ada N.");
    assert_eq!(changed["user"]["language"], "cs");
    assert_eq!(changed["user"]["usersAdminsRoleId"], 902);
    let changed = h
        .patch(
            &format!("/admin/users/{id}"),
            json!({ "usersAdminsRoleId": null }),
        )
        .await
        .ok();
    assert!(changed["user"]["usersAdminsRoleId"].is_null());
    h.patch(
        &format!("/admin/users/{id}"),
        json!({ "usersAdminsRoleId": 13 }),
    )
    .await
    .error(400, "usersAdminsRoleId");

    h.delete(&format!("/admin/users/{id}"))
        .await
        .error(400, "confirmed");
    h.delete(&format!("/admin/users/{id}?confirmed=true"))
        .await
        .ok();
    h.get(&format!("/admin/users/lookup?q={id}&type=id"))
        .await
        .error(404, &id.to_string());
    h.patch(&format!("/admin/users/{id}"), json!({ "name": "x" }))
        .await
        .error(404, &format!("`{id}`"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_me_answers_the_token_user_without_deleted_or_instance_role() {
    let h = harness().await;
    let me = h.get("/users/me").await.ok();
    let user = &me["authUser"];
    assert_eq!(
        keys(user),
        [
            "id",
            "name",
            "email",
            "language",
            "timezoneId",
            "localeId",
            "countryId",
            "features"
        ]
    );
    assert_eq!(user["email"], "sa@sandbox.invalid");
    let admin = h.send(Some(ADMIN), "GET", "/users/me", None).await.ok();
    assert_eq!(admin["authUser"]["email"], "admin@sandbox.invalid");
    assert_ne!(admin["authUser"]["id"], user["id"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn e_mail_addresses_are_unique_ignoring_case() {
    let h = harness().await;
    let first = h.create_user("Ada", "ada@unique.example").await;
    h.post(
        "/admin/users",
        json!({ "name": "Ada again", "email": "ADA@unique.example" }),
    )
    .await
    .error(409, "ADA@unique.example");
    let second = h.create_user("Bob", "bob@unique.example").await;
    h.patch(
        &format!("/admin/users/{second}"),
        json!({ "email": "Ada@Unique.Example" }),
    )
    .await
    .error(409, "already exists");
    // Changing the case of one's own address is fine.
    h.patch(
        &format!("/admin/users/{first}"),
        json!({ "email": "ADA@unique.example" }),
    )
    .await
    .ok();
    h.post(
        "/admin/users",
        json!({ "name": "No at", "email": "nobody.example" }),
    )
    .await
    .error(400, "email");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_follow_makes_rule() {
    let h = harness().await;
    for (password, problem) in [
        ("Short1!", "10 characters"),
        ("NoDigitsHere!", "digit"),
        ("lowercase123!", "upper-case"),
        ("NoSpecial123", "special"),
    ] {
        h.post(
            "/admin/users",
            json!({ "name": "P", "email": "p@pw.example", "password": password }),
        )
        .await
        .error(400, problem);
    }
    h.post(
        "/admin/users",
        json!({ "name": "P", "email": "p@pw.example", "password": "Correct-Horse-9", "sendEmail": true }),
    )
    .await
    .ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_or_a_token_user_cannot_be_deleted() {
    let h = harness().await;
    let owner = h.create_user("Olga", "olga@keep.example").await;
    let id = h.create_organization("Keep", owner).await["id"]
        .as_i64()
        .unwrap();
    h.delete(&format!("/admin/users/{owner}?confirmed=true"))
        .await
        .error(400, &format!("`{id}`"));
    let caller = h
        .get("/admin/users/lookup?q=sa@sandbox.invalid&type=email")
        .await
        .ok();
    let caller = caller["user"]["id"].as_i64().unwrap();
    h.delete(&format!("/admin/users/{caller}?confirmed=true"))
        .await
        .error(400, "token");
}

// Roles

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_have_makes_documented_ids() {
    let h = harness().await;
    let organization = h.get("/users/roles?category=organization").await.ok();
    let by_name = |list: &Value| -> Vec<(String, i64)> {
        list["usersRoles"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["name"].as_str().unwrap().to_owned(),
                    r["id"].as_i64().unwrap(),
                )
            })
            .collect()
    };
    let organization = by_name(&organization);
    for (name, id) in [
        ("Owner", 11),
        ("Admin", 12),
        ("Member", 13),
        ("Accountant", 14),
    ] {
        assert!(
            organization.contains(&(name.to_owned(), id)),
            "{organization:?}"
        );
    }
    assert!(organization.iter().any(|(name, _)| name == "App developer"));
    let team = by_name(&h.get("/users/roles?category=team").await.ok());
    for (name, id) in [
        ("Team Admin", 1),
        ("Team Member", 3),
        ("Team Monitoring", 4),
        ("Team Operator", 6),
    ] {
        assert!(team.contains(&(name.to_owned(), id)), "{team:?}");
    }
    assert!(
        team.iter()
            .any(|(name, _)| name == "Team restricted member")
    );
    h.get("/users/roles?category=galaxy")
        .await
        .error(400, "galaxy");

    let system = h
        .get("/admin/users/admins-roles?category=system")
        .await
        .ok();
    let names: Vec<&str> = system["usersAdminsRoles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["SA", "Admin", "BI"]);
    // Without `cols[]` a role is `{id, name}`, as Make documents; the rest only when asked for.
    for role in system["usersAdminsRoles"].as_array().unwrap() {
        assert_eq!(keys(role), ["id", "name"]);
    }
    for category in ["developers", "support"] {
        let roles = h
            .get(&format!(
                "/admin/users/admins-roles?category={category}&cols[]=id&cols[]=name\
                 &cols[]=category&cols[]=permissions&cols[]=identifier"
            ))
            .await
            .ok();
        let roles = roles["usersAdminsRoles"].as_array().unwrap();
        assert!(!roles.is_empty());
        assert!(roles.iter().all(|r| r["category"] == category
            && r["permissions"].is_array()
            && r["identifier"].is_string()));
    }
    let team = h.get("/users/roles?category=team").await.ok();
    for role in team["usersRoles"].as_array().unwrap() {
        assert_eq!(keys(role), ["id", "name"]);
    }
    let team = h
        .get("/users/roles?category=team&cols[]=category&cols[]=name&cols[]=id")
        .await
        .ok();
    for role in team["usersRoles"].as_array().unwrap() {
        assert_eq!(keys(role), ["id", "name", "category"]);
        assert_eq!(role["category"], "team");
    }
    h.get("/users/roles?cols[]=colour")
        .await
        .error(400, "colour");
    h.get("/admin/users/admins-roles?category=x")
        .await
        .error(400, "category");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organization_roles_are_set_but_never_to_owner() {
    let h = harness().await;
    let owner = h.create_user("Olga", "olga@roles.example").await;
    let member = h.create_user("Max", "max@roles.example").await;
    let id = h.create_organization("Roles", owner).await["id"]
        .as_i64()
        .unwrap();
    let path = format!("/admin/users/{member}/user-organization-roles/{id}");

    let added = h
        .post(&path, json!({ "usersRoleId": MEMBER_ROLE }))
        .await
        .ok();
    assert_eq!(
        added["userOrganizationRole"],
        json!({ "userId": member, "organizationId": id, "usersRoleId": MEMBER_ROLE, "invitation": null })
    );
    h.post(&path, json!({ "usersRoleId": ADMIN_ROLE }))
        .await
        .ok();
    assert_eq!(h.role_in(member, id).await, Some(ADMIN_ROLE));
    let listed = h
        .get(&format!("/users/{member}/user-organization-roles"))
        .await
        .ok();
    assert_eq!(listed["userOrganizationRoles"].as_array().unwrap().len(), 1);

    h.post(&path, json!({ "usersRoleId": OWNER }))
        .await
        .error(400, "Owner");
    h.post(
        &format!("/admin/users/{owner}/user-organization-roles/{id}"),
        json!({ "usersRoleId": MEMBER_ROLE }),
    )
    .await
    .error(400, "transfer");
    h.post(&path, json!({ "usersRoleId": 3 }))
        .await
        .error(400, "usersRoleId");
    h.post(
        &format!("/admin/users/{member}/user-organization-roles/999"),
        json!({ "usersRoleId": MEMBER_ROLE }),
    )
    .await
    .error(404, "`999`");
    h.post(
        &format!("/admin/users/999/user-organization-roles/{id}"),
        json!({ "usersRoleId": MEMBER_ROLE }),
    )
    .await
    .error(404, "`999`");
    h.get("/users/999/user-organization-roles")
        .await
        .error(404, "`999`");
    assert_eq!(h.holders(id, OWNER).await, vec![owner]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_body_removes_a_member_from_the_organization_and_its_teams_but_never_the_owner() {
    let h = harness().await;
    let owner = h.create_user("Olga", "olga@leave.example").await;
    let member = h.create_user("Max", "max@leave.example").await;
    let id = h.create_organization("Leave", owner).await["id"]
        .as_i64()
        .unwrap();
    let path = format!("/admin/users/{member}/user-organization-roles/{id}");
    let team = h
        .post(
            "/admin/teams",
            json!({ "name": "Ops", "organizationId": id }),
        )
        .await
        .ok()["team"]["id"]
        .as_i64()
        .unwrap();
    for body in [json!({}), Value::Null] {
        h.post(&path, json!({ "usersRoleId": MEMBER_ROLE }))
            .await
            .ok();
        h.post(
            &format!("/admin/users/{member}/user-team-roles/{team}"),
            json!({ "usersRoleId": 3 }),
        )
        .await
        .ok();
        // `{}`, then no body at all: both are Make's empty body.
        let body = (!body.is_null()).then_some(body);
        let removed = h.send(Some(SA), "POST", &path, body).await.ok();
        assert_eq!(removed, json!({}));
        assert_eq!(h.role_in(member, id).await, None);
        let in_team = h
            .get(&format!("/admin/users?teamId={team}&pg[limit]=100"))
            .await
            .ok();
        assert!(!ids(&in_team["users"]).contains(&member), "{in_team}");
    }
    h.send(Some(SA), "POST", &path, None)
        .await
        .error(404, "not a member");
    h.send(
        Some(SA),
        "POST",
        &format!("/admin/users/{owner}/user-organization-roles/{id}"),
        Some(json!({})),
    )
    .await
    .error(400, "transfer");
    assert_eq!(h.holders(id, OWNER).await, vec![owner]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ownership_moves_to_a_member_and_the_previous_owner_becomes_admin() {
    let h = harness().await;
    let owner = h.create_user("Olga", "olga@transfer.example").await;
    let next = h.create_user("Nina", "nina@transfer.example").await;
    let outsider = h.create_user("Otto", "otto@transfer.example").await;
    let id = h.create_organization("Transfer", owner).await["id"]
        .as_i64()
        .unwrap();

    h.post(
        &format!("/admin/users/{outsider}/user-organization-roles/{id}/transfer"),
        json!(null),
    )
    .await
    .error(400, "not a member");
    h.post(
        &format!("/admin/users/{owner}/user-organization-roles/{id}/transfer"),
        json!(null),
    )
    .await
    .error(400, "already owns");
    h.post(
        &format!("/admin/users/{next}/user-organization-roles/{id}"),
        json!({ "usersRoleId": MEMBER_ROLE }),
    )
    .await
    .ok();
    let moved = h
        .send(
            Some(SA),
            "POST",
            &format!("/admin/users/{next}/user-organization-roles/{id}/transfer"),
            None,
        )
        .await
        .ok();
    // Make answers a list: the sandbox lists both memberships the transfer changed, by user id.
    assert_eq!(
        moved["userOrganizationRoles"],
        json!([
            { "userId": owner, "organizationId": id, "usersRoleId": ADMIN_ROLE, "invitation": null },
            { "userId": next, "organizationId": id, "usersRoleId": OWNER, "invitation": null },
        ])
    );
    assert_eq!(h.holders(id, OWNER).await, vec![next]);
    assert_eq!(h.role_in(owner, id).await, Some(ADMIN_ROLE));
    assert_eq!(h.role_in(outsider, id).await, None);
    h.post(
        &format!("/admin/users/{next}/user-organization-roles/999/transfer"),
        json!(null),
    )
    .await
    .error(404, "`999`");
}

// Readings Make leaves open (`Config::behaviour`)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transfer_can_leave_the_previous_owner_a_member() {
    let h = start(Config {
        behaviour: Behaviour {
            previous_owner: PreviousOwner::Member,
            ..Behaviour::default()
        },
        ..config()
    })
    .await;
    let owner = h.create_user("Olga", "olga@member-after.example").await;
    let next = h.create_user("Nina", "nina@member-after.example").await;
    let id = h.create_organization("After", owner).await["id"]
        .as_i64()
        .unwrap();
    h.post(
        &format!("/admin/users/{next}/user-organization-roles/{id}"),
        json!({ "usersRoleId": ADMIN_ROLE }),
    )
    .await
    .ok();
    let moved = h
        .send(
            Some(SA),
            "POST",
            &format!("/admin/users/{next}/user-organization-roles/{id}/transfer"),
            None,
        )
        .await
        .ok();
    assert_eq!(
        moved["userOrganizationRoles"],
        json!([
            { "userId": owner, "organizationId": id, "usersRoleId": MEMBER_ROLE, "invitation": null },
            { "userId": next, "organizationId": id, "usersRoleId": OWNER, "invitation": null },
        ])
    );
    assert_eq!(h.role_in(owner, id).await, Some(MEMBER_ROLE));
    assert_eq!(h.holders(id, OWNER).await, vec![next]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_org_admin_can_make_an_admin_and_the_token_user_the_owner() {
    let h = start(Config {
        behaviour: Behaviour {
            user_org_admin: UserOrgAdmin::Admin,
            ..Behaviour::default()
        },
        ..config()
    })
    .await;
    let named = h.create_user("Olga", "olga@admin-reading.example").await;
    let me = h.get("/users/me").await.ok()["authUser"]["id"]
        .as_i64()
        .unwrap();
    let answer = h
        .post(
            "/admin/organizations",
            json!({ "name": "Reading", "userOrgAdmin": named }),
        )
        .await
        .ok();
    let id = answer["organization"]["id"].as_i64().unwrap();
    assert_eq!(answer["userOrganizationRole"]["userId"], me);
    assert_eq!(answer["userOrganizationRole"]["usersRoleId"], OWNER);
    assert_eq!(h.holders(id, OWNER).await, vec![me]);
    assert_eq!(h.role_in(named, id).await, Some(ADMIN_ROLE));
    // Naming the token's own user leaves it the owner alone.
    let own = h
        .post(
            "/admin/organizations",
            json!({ "name": "Own", "userOrgAdmin": me }),
        )
        .await
        .ok();
    let own_id = own["organization"]["id"].as_i64().unwrap();
    assert_eq!(h.holders(own_id, OWNER).await, vec![me]);
    assert_eq!(h.holders(own_id, ADMIN_ROLE).await, Vec::<i64>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_cap_serves_fewer_items_than_asked_echoed_or_not() {
    for echoed in [true, false] {
        let h = start(Config {
            behaviour: Behaviour {
                page_cap: Some(PageCap { limit: 3, echoed }),
                ..Behaviour::default()
            },
            ..config()
        })
        .await;
        for n in 0..5 {
            h.create_user(&format!("User {n}"), &format!("user{n}@cap.example"))
                .await;
        }
        let page = h.get("/admin/users?pg[limit]=100").await.ok();
        assert_eq!(page["users"].as_array().unwrap().len(), 3);
        assert_eq!(page["pg"]["limit"], if echoed { 3 } else { 100 });
        // A limit under the cap is served as asked.
        let small = h.get("/admin/users?pg[limit]=2").await.ok();
        assert_eq!(small["users"].as_array().unwrap().len(), 2);
        assert_eq!(small["pg"]["limit"], 2);
        // Every list endpoint caps.
        let organizations = h.get("/admin/organizations?pg[limit]=50").await.ok();
        assert_eq!(organizations["pg"]["limit"], if echoed { 3 } else { 50 });
    }
}

// Teams

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_are_listed_created_and_joined_by_members() {
    let h = harness().await;
    let owner = h.create_user("Olga", "olga@teams.example").await;
    let member = h.create_user("Max", "max@teams.example").await;
    let outsider = h.create_user("Otto", "otto@teams.example").await;
    let id = h.create_organization("Teams", owner).await["id"]
        .as_i64()
        .unwrap();

    let listed = h
        .get(&format!("/admin/teams?organizationId={id}"))
        .await
        .ok();
    assert_eq!(listed["teams"].as_array().unwrap().len(), 1);
    assert_eq!(listed["teams"][0]["name"], "My Team");
    assert_eq!(listed["teams"][0]["organizationId"], id);
    h.get("/admin/teams").await.error(400, "organizationId");

    h.post(
        "/admin/teams",
        json!({ "name": "Ops", "organizationId": id, "userTeamAdmin": outsider }),
    )
    .await
    .error(400, "not a member");
    let team = h
        .post(
            "/admin/teams",
            json!({ "name": "Ops", "organizationId": id, "userTeamAdmin": owner }),
        )
        .await
        .ok();
    let team_id = team["team"]["id"].as_i64().unwrap();
    assert_eq!(
        team["team"],
        json!({ "id": team_id, "name": "Ops", "organizationId": id })
    );
    assert_eq!(
        team["userTeamRole"],
        json!({ "usersRoleId": 1, "userId": owner, "teamId": team_id, "changeable": true })
    );
    // Without `userTeamAdmin` the caller becomes Team Admin when they belong to the
    // organization, as Make documents; the sandbox's SA user does not, so nobody does.
    let unled = h
        .post(
            "/admin/teams",
            json!({ "name": "Unled", "organizationId": id }),
        )
        .await
        .ok();
    assert!(unled.get("userTeamRole").is_none(), "{unled}");
    // Make documents `name` as the only sort key of teams.
    let by_name = h
        .get(&format!("/admin/teams?organizationId={id}"))
        .await
        .ok();
    let names: Vec<&str> = by_name["teams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["My Team", "Ops", "Unled"]);
    assert_eq!(by_name["pg"]["sortBy"], "name");
    h.get(&format!("/admin/teams?organizationId={id}&pg[sortBy]=id"))
        .await
        .error(400, "pg[sortBy]");

    h.post(
        &format!("/admin/users/{member}/user-team-roles/{team_id}"),
        json!({ "usersRoleId": 3 }),
    )
    .await
    .error(400, "not a member");
    h.post(
        &format!("/admin/users/{member}/user-organization-roles/{id}"),
        json!({ "usersRoleId": MEMBER_ROLE }),
    )
    .await
    .ok();
    let joined = h
        .post(
            &format!("/admin/users/{member}/user-team-roles/{team_id}"),
            json!({ "usersRoleId": 3 }),
        )
        .await
        .ok();
    assert_eq!(
        joined["userTeamRole"],
        json!({ "usersRoleId": 3, "userId": member, "teamId": team_id, "changeable": true })
    );
    h.post(
        &format!("/admin/users/{member}/user-team-roles/{team_id}"),
        json!({ "usersRoleId": MEMBER_ROLE }),
    )
    .await
    .error(400, "usersRoleId");
    h.post(
        &format!("/admin/users/{member}/user-team-roles/999"),
        json!({ "usersRoleId": 3 }),
    )
    .await
    .error(404, "`999`");

    let in_team = h.get(&format!("/admin/users?teamId={team_id}")).await.ok();
    let mut found = ids(&in_team["users"]);
    found.sort_unstable();
    assert_eq!(found, vec![owner, member]);
    let admins = h
        .get(&format!("/admin/users?teamId={team_id}&teamRoleId=1"))
        .await
        .ok();
    assert_eq!(ids(&admins["users"]), vec![owner]);
    let organization = h
        .get(&format!("/admin/organizations?id={id}&cols[]=teams"))
        .await
        .ok();
    assert_eq!(
        organization["organizations"][0]["teams"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

// Tokens

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_or_unknown_token_gets_401() {
    let h = harness().await;
    h.send(None, "GET", "/admin/organizations", None)
        .await
        .error(401, "token");
    h.send(Some("guess"), "GET", "/admin/organizations", None)
        .await
        .error(401, "token");
    h.send(None, "GET", "/users/roles", None)
        .await
        .error(401, "token");
    let basic = h
        .client
        .get(h.url("/admin/organizations"))
        .header("Authorization", format!("Basic {SA}"))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), StatusCode::UNAUTHORIZED);
    let bearer = h
        .client
        .get(h.url("/admin/organizations"))
        .header("Authorization", format!("Bearer {SA}"))
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_without_an_admin_role_gets_403_on_admin_endpoints() {
    let h = harness().await;
    h.send(Some(MEMBER), "GET", "/admin/organizations", None)
        .await
        .error(403, "administration role");
    h.send(
        Some(MEMBER),
        "POST",
        "/admin/users",
        Some(json!({ "name": "x", "email": "x@x.example" })),
    )
    .await
    .error(403, "administration role");
    let roles = h.send(Some(MEMBER), "GET", "/users/roles", None).await;
    assert_eq!(roles.status, StatusCode::OK);

    // BI reads but does not write.
    let listed = h.send(Some(BI), "GET", "/admin/organizations", None).await;
    assert_eq!(listed.status, StatusCode::OK);
    h.send(
        Some(BI),
        "POST",
        "/admin/organizations",
        Some(json!({ "name": "x" })),
    )
    .await
    .error(403, "bi");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_token_cannot_grant_sa_or_change_an_sa() {
    let h = harness().await;
    let user = h.create_user("Ada", "ada@grant.example").await;
    h.send(
        Some(ADMIN),
        "PATCH",
        &format!("/admin/users/{user}"),
        Some(json!({ "usersAdminsRoleId": 901 })),
    )
    .await
    .error(403, "901");
    let granted = h
        .send(
            Some(ADMIN),
            "PATCH",
            &format!("/admin/users/{user}"),
            Some(json!({ "usersAdminsRoleId": 902 })),
        )
        .await
        .ok();
    assert_eq!(granted["user"]["usersAdminsRoleId"], 902);
    // An SA may grant SA; after that, an Admin may not touch that user.
    h.patch(
        &format!("/admin/users/{user}"),
        json!({ "usersAdminsRoleId": 901 }),
    )
    .await
    .ok();
    h.send(
        Some(ADMIN),
        "PATCH",
        &format!("/admin/users/{user}"),
        Some(json!({ "name": "Demoted?" })),
    )
    .await
    .error(403, &format!("`{user}`"));
}

// Pagination and columns

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_cover_every_user_once_and_the_last_is_short() {
    let h = harness().await;
    for n in 0..23 {
        h.create_user(
            &format!("User {n:02}"),
            &format!("user{n:02}@pages.example"),
        )
        .await;
    }
    let everyone = h.get("/admin/users?pg[limit]=10000").await.ok();
    let total = everyone["users"].as_array().unwrap().len();
    assert!(total >= 23);

    let default = h.get("/admin/users").await.ok();
    assert_eq!(default["users"].as_array().unwrap().len(), 10);
    assert_eq!(
        default["pg"],
        json!({ "sortBy": "id", "sortDir": "asc", "limit": 10, "offset": 0 })
    );

    let mut seen = Vec::new();
    let mut offset = 0;
    loop {
        // Brackets URL-encoded, as Make's clients send them.
        let page = h
            .get(&format!(
                "/admin/users?pg%5Blimit%5D=7&pg%5Boffset%5D={offset}&pg%5BsortBy%5D=email&pg%5BsortDir%5D=desc"
            ))
            .await
            .ok();
        assert_eq!(
            page["pg"],
            json!({ "sortBy": "email", "sortDir": "desc", "limit": 7, "offset": offset })
        );
        let users = page["users"].as_array().unwrap().clone();
        let short = users.len() < 7;
        seen.extend(users);
        if short {
            break;
        }
        offset += 7;
    }
    assert_eq!(seen.len(), total);
    let emails: Vec<&str> = seen.iter().map(|u| u["email"].as_str().unwrap()).collect();
    let mut sorted = emails.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(emails, sorted, "sorted by e-mail, descending");
    assert_eq!(
        emails.iter().collect::<HashSet<_>>().len(),
        total,
        "no repeats"
    );

    h.get("/admin/users?pg[limit]=10001")
        .await
        .error(400, "pg[limit]");
    h.get("/admin/users?pg[limit]=0")
        .await
        .error(400, "pg[limit]");
    h.get("/admin/users?pg[offset]=-1")
        .await
        .error(400, "pg[offset]");
    h.get("/admin/users?pg[sortBy]=password")
        .await
        .error(400, "password");
    h.get("/admin/users?pg[sortDir]=up").await.error(400, "up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn organizations_are_paged_and_sorted_by_name() {
    let h = harness().await;
    let owner = h.create_user("Olga", "olga@sort.example").await;
    for name in ["delta", "Alpha", "charlie", "Bravo", "echo"] {
        h.create_organization(name, owner).await;
    }
    let first = h
        .get("/admin/organizations?pg[sortBy]=name&pg[limit]=3")
        .await
        .ok();
    let second = h
        .get("/admin/organizations?pg[sortBy]=name&pg[limit]=3&pg[offset]=3")
        .await
        .ok();
    let names: Vec<&str> = first["organizations"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["organizations"].as_array().unwrap())
        .map(|o| o["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Alpha", "Bravo", "charlie", "delta", "echo"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cols_select_the_columns_returned() {
    let h = harness().await;
    let owner = h.create_user("Olga", "olga@cols.example").await;
    h.create_organization("Cols", owner).await;
    let users = h.get("/admin/users?cols[]=email&cols[]=id").await.ok();
    // Selected fields keep the object's own order, whatever order `cols[]` names them in
    // (`serde_json` keeps insertion order in this crate).
    for user in users["users"].as_array().unwrap() {
        assert_eq!(keys(user), ["id", "email"]);
    }
    let organizations = h
        .get("/admin/organizations?cols%5B%5D=name&cols%5B%5D=license")
        .await
        .ok();
    let organization = &organizations["organizations"][0];
    assert_eq!(keys(organization), ["name", "license"]);
    assert_eq!(organization["license"], h.default_license().await);
    let license_keys = keys(&organization["license"]);
    let order: Vec<&str> = charter_sandbox::license::KEYS
        .iter()
        .map(|key| key.name)
        .collect();
    assert_eq!(
        license_keys, order,
        "a selected license keeps the sandbox's key order"
    );
    assert!(organizations["pg"].is_object());
    h.get("/admin/users?cols[]=password")
        .await
        .error(400, "password");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_are_filtered_by_organization_role_and_text() {
    let h = harness().await;
    let owner = h.create_user("Olga Owner", "olga@filter.example").await;
    let member = h.create_user("Max Member", "max@filter.example").await;
    h.create_user("Otto Outsider", "otto@elsewhere.example")
        .await;
    let id = h.create_organization("Filter", owner).await["id"]
        .as_i64()
        .unwrap();
    h.post(
        &format!("/admin/users/{member}/user-organization-roles/{id}"),
        json!({ "usersRoleId": MEMBER_ROLE }),
    )
    .await
    .ok();
    let mut in_organization = ids(&h
        .get(&format!("/admin/users?organizationId={id}"))
        .await
        .ok()["users"]);
    in_organization.sort_unstable();
    assert_eq!(in_organization, vec![owner, member]);
    assert_eq!(h.holders(id, MEMBER_ROLE).await, vec![member]);
    let by_email = h.get("/admin/users?email=FILTER.example").await.ok();
    assert_eq!(ids(&by_email["users"]).len(), 2);
    let by_name = h.get("/admin/users?name=outsider").await.ok();
    assert_eq!(by_name["users"][0]["email"], "otto@elsewhere.example");
    h.get("/admin/users?organizationId=abc")
        .await
        .error(400, "organizationId");
}

// Unknown endpoints

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_endpoints_and_methods_answer_with_makes_error_body() {
    let h = harness().await;
    h.get("/admin/scenarios")
        .await
        .error(404, "/admin/scenarios");
    h.send(Some(SA), "PUT", "/admin/organizations", Some(json!({})))
        .await
        .error(405, "PUT");
}

// Rate limit

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_request_over_the_per_token_limit_gets_429() {
    let h = start(Config {
        rate_limit_per_minute: Some(5),
        ..config()
    })
    .await;
    for _ in 0..5 {
        h.get("/users/roles").await.ok();
    }
    let refused = h.get("/users/roles").await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.body["message"], RATE_LIMIT_MESSAGE);
    assert_eq!(refused.body["code"], "SC429");
    // The limit is per token.
    let other = h.send(Some(ADMIN), "GET", "/users/roles", None).await;
    assert_eq!(other.status, StatusCode::OK);
}

// Persistence

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_survives_a_restart_on_the_same_file() {
    let path = temp_db("restart");
    let h = start(Config {
        storage: Storage::File(path.to_path_buf()),
        ..config()
    })
    .await;
    let owner = h.create_user("Olga", "olga@persist.example").await;
    let organization = h.create_organization("Persist", owner).await;
    h.running.shutdown().await.unwrap();

    let h = start(Config {
        storage: Storage::File(path.to_path_buf()),
        ..config()
    })
    .await;
    let listed = h
        .get("/admin/organizations?cols[]=id&cols[]=name&cols[]=license&cols[]=teams")
        .await
        .ok();
    assert_eq!(
        listed["organizations"],
        json!([{
            "id": organization["id"],
            "name": organization["name"],
            "license": organization["license"],
            "teams": organization["teams"],
        }])
    );
    let found = h
        .get("/admin/users/lookup?q=olga@persist.example&type=email")
        .await
        .ok();
    assert_eq!(found["user"]["id"], owner);
    // Ids are never reused after a restart.
    let next = h.create_user("Nina", "nina@persist.example").await;
    assert!(next > owner);
    h.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_folder_of_a_new_database_is_created() {
    let folder = temp_db("folder");
    let path = folder.join(".charter").join("sandbox.db");
    let h = start(Config {
        storage: Storage::File(path.to_path_buf()),
        ..config()
    })
    .await;
    h.create_user("Ada", "ada@folder.example").await;
    h.running.shutdown().await.unwrap();
    assert!(path.is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_is_not_a_sandbox_is_refused() {
    let path = temp_db("foreign");
    std::fs::write(&path, b"this is not a database, it is a shopping list").unwrap();
    let error = sandbox::start(Config {
        storage: Storage::File(path.to_path_buf()),
        ..config()
    })
    .await
    .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("is not a charter sandbox database"),
        "{error}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_a_request_in_flight_finish_and_keeps_it() {
    let path = temp_db("drain");
    let h = start(Config {
        storage: Storage::File(path.to_path_buf()),
        faults: "latency=1:1500ms".parse().unwrap(),
        ..config()
    })
    .await;
    let client = h.client.clone();
    let url = h.url("/admin/users");
    let in_flight = tokio::spawn(async move {
        client
            .post(url)
            .header("Authorization", format!("Token {SA}"))
            .json(&json!({ "name": "Late", "email": "late@flight.example" }))
            .send()
            .await
            .map(|r| r.status())
    });
    // Well inside the injected latency, even on a busy machine.
    tokio::time::sleep(Duration::from_millis(500)).await;
    h.running.shutdown().await.unwrap();
    assert_eq!(in_flight.await.unwrap().unwrap(), StatusCode::OK);
    let h = start(Config {
        storage: Storage::File(path.to_path_buf()),
        ..config()
    })
    .await;
    h.get("/admin/users/lookup?q=late@flight.example&type=email")
        .await
        .ok();
    h.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_loopback_addresses_are_served() {
    let error = sandbox::start(Config {
        listen: "0.0.0.0:0".parse().unwrap(),
        ..config()
    })
    .await
    .unwrap_err();
    assert!(error.to_string().contains("loopback"), "{error}");
}

#[test]
fn the_blocking_sandbox_serves_callers_without_a_runtime() {
    let running = sandbox::BlockingSandbox::start(Config::default()).unwrap();
    assert!(running.addr().ip().is_loopback());
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let status = runtime.block_on(async {
        reqwest::Client::new()
            .get(format!("{}/users/roles", running.url()))
            .header("Authorization", format!("Token {}", sandbox::DEFAULT_TOKEN))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status, StatusCode::OK);
    running.shutdown().unwrap();
}

// Faults

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_429_carries_makes_message() {
    let h = start(Config {
        faults: "429=1".parse().unwrap(),
        ..config()
    })
    .await;
    let refused = h.get("/users/roles").await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.body["message"], RATE_LIMIT_MESSAGE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_injected_500_changes_nothing() {
    let path = temp_db("server-error");
    let h = start(Config {
        storage: Storage::File(path.to_path_buf()),
        faults: "500=1".parse().unwrap(),
        ..config()
    })
    .await;
    h.post(
        "/admin/users",
        json!({ "name": "Ada", "email": "ada@fault.example" }),
    )
    .await
    .error(500, "injected");
    h.running.shutdown().await.unwrap();
    let h = start(Config {
        storage: Storage::File(path.to_path_buf()),
        ..config()
    })
    .await;
    h.get("/admin/users/lookup?q=ada@fault.example&type=email")
        .await
        .error(404, "ada@fault.example");
    h.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_latency_delays_the_answer() {
    let h = start(Config {
        faults: "latency=1:300ms".parse().unwrap(),
        ..config()
    })
    .await;
    let started = Instant::now();
    h.get("/users/roles").await.ok();
    assert!(started.elapsed() >= Duration::from_millis(300));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_applied_but_lost_write_is_applied_and_unanswered() {
    let path = temp_db("lost");
    let h = start(Config {
        storage: Storage::File(path.to_path_buf()),
        faults: "lost=1".parse().unwrap(),
        ..config()
    })
    .await;
    let outcome = h
        .client
        .post(h.url("/admin/users"))
        .header("Authorization", format!("Token {SA}"))
        .json(&json!({ "name": "Ghost", "email": "ghost@lost.example" }))
        .send()
        .await;
    let error = outcome.expect_err("the client must get no response");
    assert!(!error.is_status() && !error.is_timeout(), "{error:?}");
    // Reads are never lost, and the write is there.
    let found = h
        .get("/admin/users/lookup?q=ghost@lost.example&type=email")
        .await
        .ok();
    assert_eq!(found["user"]["name"], "Ghost");
    // A blind retry would now be refused as a duplicate.
    let retried = h
        .client
        .post(h.url("/admin/users"))
        .header("Authorization", format!("Token {SA}"))
        .json(&json!({ "name": "Ghost", "email": "ghost@lost.example" }))
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), StatusCode::CONFLICT);
    h.running.shutdown().await.unwrap();

    // It is in the database file too.
    let h = start(Config {
        storage: Storage::File(path.to_path_buf()),
        ..config()
    })
    .await;
    h.get("/admin/users/lookup?q=ghost@lost.example&type=email")
        .await
        .ok();
    h.running.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_seed_meets_the_same_faults() {
    async fn statuses(seed: u64) -> Vec<u16> {
        let h = start(Config {
            faults: "429=0.3,500=0.3".parse::<Faults>().unwrap(),
            seed,
            ..config()
        })
        .await;
        let mut statuses = Vec::new();
        for _ in 0..40 {
            statuses.push(h.get("/users/roles").await.status.as_u16());
        }
        statuses
    }
    let first = statuses(42).await;
    assert_eq!(first, statuses(42).await);
    assert_ne!(first, statuses(43).await);
    assert!(first.contains(&429) && first.contains(&500) && first.contains(&200));
}

// Seeding

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeding_fills_organizations_owners_members_and_usage_reproducibly() {
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    let options = SeedOptions {
        organizations: 12,
        seed: 7,
        today,
    };
    let (first, second) = (temp_db("seed-a"), temp_db("seed-b"));
    let report = sandbox::seed(&Storage::File(first.to_path_buf()), &options).unwrap();
    assert_eq!(report.organizations, 12);
    assert!(report.users >= 12);
    sandbox::seed(&Storage::File(second.to_path_buf()), &options).unwrap();

    let mut listings = Vec::new();
    for path in [&first, &second] {
        let h = start(Config {
            storage: Storage::File(path.to_path_buf()),
            ..config()
        })
        .await;
        let listed = h
            .get("/admin/organizations?pg[limit]=100&cols[]=id&cols[]=scenarios&cols[]=activeScenarios")
            .await
            .ok();
        let organizations = listed["organizations"].as_array().unwrap().clone();
        assert_eq!(organizations.len(), 12);
        let mut busy = 0;
        for organization in &organizations {
            let id = organization["id"].as_i64().unwrap();
            assert_eq!(h.holders(id, OWNER).await.len(), 1);
            assert!(organization["activeScenarios"].as_i64() <= organization["scenarios"].as_i64());
            let usage = h.get(&format!("/organizations/{id}/usage")).await.ok();
            if usage["data"]
                .as_array()
                .unwrap()
                .iter()
                .any(|d| d["operations"].as_i64() > Some(0))
            {
                busy += 1;
            }
        }
        assert!(busy > 0);
        listings.push(organizations);
        h.running.shutdown().await.unwrap();
    }
    assert_eq!(
        listings[0], listings[1],
        "the same seed gives the same data"
    );

    // Seeding again adds to what is there.
    sandbox::seed(&Storage::File(first.to_path_buf()), &options).unwrap();
    let h = start(Config {
        storage: Storage::File(first.to_path_buf()),
        ..config()
    })
    .await;
    let listed = h
        .get("/admin/organizations?pg[limit]=100&cols[]=id")
        .await
        .ok();
    assert_eq!(listed["organizations"].as_array().unwrap().len(), 24);
    h.running.shutdown().await.unwrap();
}

// Concurrency

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_leave_one_owner_per_organization_and_no_duplicate_users() {
    let h = harness().await;
    let mut organizations = Vec::new();
    for n in 0..4 {
        let owner = h
            .create_user("Owner", &format!("owner{n}@race.example"))
            .await;
        let id = h.create_organization(&format!("Race {n}"), owner).await["id"]
            .as_i64()
            .unwrap();
        organizations.push(id);
    }
    let base = h.running.url();
    let mut tasks = Vec::new();
    for client_number in 0..12_u64 {
        let base = base.clone();
        let organizations = organizations.clone();
        tasks.push(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let send = |method: reqwest::Method, path: String, body: Option<Value>| {
                let mut request = client
                    .request(method, format!("{base}{path}"))
                    .header("Authorization", format!("Token {SA}"));
                if let Some(body) = body {
                    request = request.json(&body);
                }
                request.send()
            };
            let mut created = 0;
            for step in 0..10_u64 {
                // Every client tries the same few addresses: only one of each may exist.
                let email = format!("person{}@race.example", (client_number + step) % 15);
                let response = send(
                    reqwest::Method::POST,
                    "/admin/users".to_owned(),
                    Some(json!({ "name": "Racer", "email": email })),
                )
                .await
                .unwrap();
                let user = if response.status() == StatusCode::OK {
                    created += 1;
                    response.json::<Value>().await.unwrap()["user"]["id"]
                        .as_i64()
                        .unwrap()
                } else {
                    assert_eq!(response.status(), StatusCode::CONFLICT);
                    let found = send(
                        reqwest::Method::GET,
                        format!("/admin/users/lookup?q={email}&type=email"),
                        None,
                    )
                    .await
                    .unwrap();
                    found.json::<Value>().await.unwrap()["user"]["id"]
                        .as_i64()
                        .unwrap()
                };
                let organization = organizations[((client_number * 7 + step) % 4) as usize];
                let role = if step % 2 == 0 {
                    MEMBER_ROLE
                } else {
                    ADMIN_ROLE
                };
                // Either may be refused (the user owns it now); neither may break the rules.
                let _ = send(
                    reqwest::Method::POST,
                    format!("/admin/users/{user}/user-organization-roles/{organization}"),
                    Some(json!({ "usersRoleId": role })),
                )
                .await
                .unwrap();
                let _ = send(
                    reqwest::Method::POST,
                    format!("/admin/users/{user}/user-organization-roles/{organization}/transfer"),
                    None,
                )
                .await
                .unwrap();
            }
            created
        }));
    }
    let mut created = 0;
    for task in tasks {
        created += task.await.unwrap();
    }
    assert_eq!(
        created, 15,
        "each contested address was created exactly once"
    );
    for organization in organizations {
        assert_eq!(
            h.holders(organization, OWNER).await.len(),
            1,
            "organization {organization}"
        );
    }
    let users = h.get("/admin/users?pg[limit]=10000").await.ok();
    let emails: Vec<String> = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap().to_lowercase())
        .collect();
    let unique: HashSet<&String> = emails.iter().collect();
    assert_eq!(unique.len(), emails.len());
}

// The command line

/// `charter sandbox …` as a child process, with its startup line read.
#[cfg(unix)]
struct Process {
    child: std::process::Child,
    url: String,
}

#[cfg(unix)]
impl Process {
    fn start(args: &[&str]) -> Process {
        use std::io::BufRead;
        let mut child = common::charter_command(Path::new("."), &["sandbox"])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("charter sandbox listening on http://127.0.0.1:"),
            "{line}"
        );
        let url = line
            .split_whitespace()
            .find(|word| word.starts_with("http://"))
            .unwrap()
            .to_owned();
        Process { child, url }
    }

    /// Sends SIGTERM and returns what it wrote to stderr.
    fn stop(self) -> String {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let output = self.child.wait_with_output().unwrap();
        assert!(output.status.success(), "{output:?}");
        String::from_utf8(output.stderr).unwrap()
    }
}

#[cfg(unix)]
#[test]
fn the_command_serves_a_seeded_file_stops_on_a_signal_and_keeps_its_data() {
    let path = temp_db("command");
    let db = path.display().to_string();
    let seeded = common::charter_command(Path::new("."), &["sandbox", "seed", "--db", &db])
        .args(["--orgs", "3", "--seed", "9"])
        .output()
        .unwrap();
    assert!(seeded.status.success(), "{seeded:?}");
    assert!(String::from_utf8_lossy(&seeded.stdout).contains("3 organizations"));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::new();
    let count = |url: &str| {
        runtime.block_on(async {
            let body: Value = client
                .get(format!("{url}/admin/organizations?pg[limit]=100"))
                .header("Authorization", "Token my-secret")
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body["organizations"].as_array().unwrap().len()
        })
    };

    let process = Process::start(&[
        "--db",
        &db,
        "--listen",
        "127.0.0.1:0",
        "--token",
        "my-secret",
    ]);
    assert_eq!(count(&process.url), 3);
    let created = runtime.block_on(async {
        client
            .post(format!("{}/admin/organizations", process.url))
            .header("Authorization", "Token my-secret")
            .json(&json!({ "name": "Added before the signal" }))
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(created, StatusCode::OK);
    let stderr = process.stop();
    assert!(stderr.contains("stopped"), "{stderr}");
    assert!(!stderr.contains("my-secret"), "the token is never printed");

    let process = Process::start(&[
        "--db",
        &db,
        "--listen",
        "127.0.0.1:0",
        "--token",
        "my-secret",
    ]);
    assert_eq!(count(&process.url), 4);
    process.stop();
}

#[test]
fn the_command_refuses_a_bad_fault_spec() {
    let output = common::charter_command(Path::new("."), &["sandbox", "--faults", "lost=2"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("probability `2`"), "{stderr}");
}

use crate::common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_answers_the_readings_its_flags_name() {
    let dir = common::scratch("sandbox", "readings");
    let process = common::SandboxProcess::start(
        &dir.join("sandbox.db"),
        SA,
        &["--after-transfer", "member", "--page-cap", "2:unechoed"],
    );
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}/api/v2{path}", process.url);
    for n in 0..3 {
        let created = client
            .post(url("/admin/users"))
            .header("Authorization", format!("Token {SA}"))
            .json(&json!({ "name": format!("U{n}"), "email": format!("u{n}@flags.example") }))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::OK);
    }
    let page: Value = client
        .get(url("/admin/users?pg[limit]=50"))
        .header("Authorization", format!("Token {SA}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(page["users"].as_array().unwrap().len(), 2, "{page}");
    assert_eq!(page["pg"]["limit"], 50, "{page}");
    drop(process);

    let refused =
        common::charter_command(Path::new("."), &["sandbox", "--after-transfer", "owner"])
            .output()
            .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("`owner`"), "{stderr}");
}

// Wire types

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_response_reads_as_its_wire_type() {
    use charter::api::wire::{
        AdminRoleList, DefaultLicense, ErrorBody, OrganizationEnvelope, OrganizationList,
        TeamEnvelope, TeamList, Usage, UserEnvelope, UserList, UserLookupEnvelope,
        UserOrganizationRoleEnvelope, UserOrganizationRoleList, UserTeamRoleEnvelope,
        UsersRoleList,
    };
    fn read<T: serde::de::DeserializeOwned>(body: Value) -> T {
        serde_json::from_value(body.clone()).unwrap_or_else(|error| panic!("{error}: {body}"))
    }
    let h = harness().await;
    let owner: UserEnvelope = read(
        h.post(
            "/admin/users",
            json!({ "name": "Olga", "email": "olga@wire.example" }),
        )
        .await
        .ok(),
    );
    let member = h.create_user("Max", "max@wire.example").await;
    let created: OrganizationEnvelope = read(
        h.post(
            "/admin/organizations",
            json!({ "name": "Wire", "userOrgAdmin": owner.user.id }),
        )
        .await
        .ok(),
    );
    let id = created.organization.id;
    let listed: OrganizationList = read(h.get("/admin/organizations").await.ok());
    assert_eq!(listed.organizations.len(), 1);
    assert_eq!(listed.organizations[0].id, id);
    let _: DefaultLicense = read(h.get("/admin/system-settings/default-license").await.ok());
    let _: Usage = read(h.get(&format!("/organizations/{id}/usage")).await.ok());
    let users: UserList = read(h.get("/admin/users").await.ok());
    assert!(users.users.contains(&owner.user));
    let _: UserLookupEnvelope = read(
        h.get("/admin/users/lookup?q=olga@wire.example&type=email")
            .await
            .ok(),
    );
    let _: AdminRoleList = read(h.get("/admin/users/admins-roles").await.ok());
    let _: UsersRoleList = read(h.get("/users/roles").await.ok());
    let _: charter::api::wire::AuthUserEnvelope = read(h.get("/users/me").await.ok());
    let _: UserOrganizationRoleEnvelope = read(
        h.post(
            &format!("/admin/users/{member}/user-organization-roles/{id}"),
            json!({ "usersRoleId": MEMBER_ROLE }),
        )
        .await
        .ok(),
    );
    let _: UserOrganizationRoleList = read(
        h.get(&format!("/users/{member}/user-organization-roles"))
            .await
            .ok(),
    );
    let team: TeamEnvelope = read(
        h.post(
            "/admin/teams",
            json!({ "name": "Ops", "organizationId": id }),
        )
        .await
        .ok(),
    );
    let _: TeamList = read(
        h.get(&format!("/admin/teams?organizationId={id}"))
            .await
            .ok(),
    );
    let _: UserTeamRoleEnvelope = read(
        h.post(
            &format!("/admin/users/{member}/user-team-roles/{}", team.team.id),
            json!({ "usersRoleId": 3 }),
        )
        .await
        .ok(),
    );
    let error: ErrorBody = read(h.get("/admin/teams").await.body);
    assert_eq!(error.code.as_deref(), Some("SC400"));
}
