//! Make's published example responses (`tests/contract/`) read with the client's types: every
//! fixture decodes, every fixture has its source note and every note its fixture.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use charter::api::wire::{
    AdminRoleList, AuthUserEnvelope, Invitation, OrganizationEnvelope, OrganizationList,
    TeamEnvelope, TeamList, TransferAnswer, Usage, UserList, UserOrganizationRoleList,
    UserTeamRoleEnvelope, UsersRoleList,
};
use serde::de::DeserializeOwned;

fn contract_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/contract")
}

/// The fixture's text, read as `T` with the error naming the field.
fn decode<T: DeserializeOwned>(name: &str) -> T {
    let text = std::fs::read_to_string(contract_dir().join(name)).unwrap();
    let mut deserializer = serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(&mut deserializer)
        .unwrap_or_else(|error| panic!("`{name}` does not decode: {error}"))
}

/// Reads a fixture with the type of the request it answers.
type Check = fn(&str);

/// Each fixture and the client type that reads the request it answers.
const FIXTURES: &[(&str, Check)] = &[
    ("admin-users-detail.json", |n| {
        let _: UserList = decode(n);
    }),
    ("admins-roles-cols.json", |n| {
        let _: AdminRoleList = decode(n);
    }),
    ("admins-roles-default.json", |n| {
        let _: AdminRoleList = decode(n);
    }),
    ("organization-create-sdk.json", |n| {
        let _: OrganizationEnvelope = decode(n);
    }),
    ("organization-update-sdk.json", |n| {
        let _: OrganizationEnvelope = decode(n);
    }),
    ("organization-user-organization-roles.json", |n| {
        let _: UserOrganizationRoleList = decode(n);
    }),
    ("organizations-list-sdk.json", |n| {
        let _: OrganizationList = decode(n);
    }),
    ("team-create-sdk.json", |n| {
        let _: TeamEnvelope = decode(n);
    }),
    ("teams-list-sdk.json", |n| {
        let _: TeamList = decode(n);
    }),
    ("transfer.json", |n| {
        let _: TransferAnswer = decode(n);
    }),
    ("usage.json", |n| {
        let _: Usage = decode(n);
    }),
    ("user-organization-roles.json", |n| {
        let _: UserOrganizationRoleList = decode(n);
    }),
    ("user-team-role.json", |n| {
        let _: UserTeamRoleEnvelope = decode(n);
    }),
    ("users-me.json", |n| {
        let _: AuthUserEnvelope = decode(n);
    }),
    ("users-roles-docs.json", |n| {
        let _: UsersRoleList = decode(n);
    }),
    ("users-roles-sdk.json", |n| {
        let _: UsersRoleList = decode(n);
    }),
];

fn files_ending(suffix: &str) -> BTreeSet<String> {
    std::fs::read_dir(contract_dir())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|name| name.strip_suffix(suffix).map(str::to_owned))
        .collect()
}

#[test]
fn every_fixture_has_a_source_note_and_every_note_a_fixture() {
    let fixtures = files_ending(".json");
    let notes = files_ending(".source.md");
    let without_note: Vec<&String> = fixtures.difference(&notes).collect();
    let without_fixture: Vec<&String> = notes.difference(&fixtures).collect();
    assert!(
        without_note.is_empty(),
        "fixtures without a `.source.md` note: {without_note:?}"
    );
    assert!(
        without_fixture.is_empty(),
        "notes without a fixture: {without_fixture:?}"
    );
    for name in &notes {
        let note =
            std::fs::read_to_string(contract_dir().join(format!("{name}.source.md"))).unwrap();
        assert!(
            note.contains("Source:") && note.contains("Answers:"),
            "`{name}.source.md` must say its source and the request it answers"
        );
    }
}

#[test]
fn every_fixture_decodes_with_the_clients_types() {
    let listed: BTreeSet<String> = FIXTURES.iter().map(|(n, _)| (*n).to_owned()).collect();
    let present: BTreeSet<String> = files_ending(".json")
        .into_iter()
        .map(|n| format!("{n}.json"))
        .collect();
    assert_eq!(
        listed, present,
        "each fixture is decoded by this test: list new ones in `FIXTURES`"
    );
    for (name, check) in FIXTURES {
        check(name);
    }
}

#[test]
fn what_make_leaves_out_is_read_as_missing_not_as_a_failure() {
    let me: AuthUserEnvelope = decode("users-me.json");
    assert_eq!(me.auth_user.deleted, None);
    assert_eq!(me.auth_user.users_admins_role_id, None);

    let list: OrganizationList = decode("organizations-list-sdk.json");
    let first = &list.organizations[0];
    assert_eq!((first.id, first.license.as_ref()), (5, None));
    assert_eq!(list.pg.limit, Some(10_000));

    let roles: UsersRoleList = decode("users-roles-docs.json");
    assert!(roles.users_roles.iter().all(|r| r.category.is_none()));
    let admins: AdminRoleList = decode("admins-roles-default.json");
    assert!(
        admins
            .users_admins_roles
            .iter()
            .all(|r| r.category.is_none())
    );
}

#[test]
fn license_keys_outside_charters_catalog_are_kept_as_sent() {
    let created: OrganizationEnvelope = decode("organization-create-sdk.json");
    let license = created.organization.license.unwrap();
    assert_eq!(license.get("users"), Some(&serde_json::json!(50)));
    assert_eq!(license.get("apps"), Some(&serde_json::json!([])));
    let updated: OrganizationEnvelope = decode("organization-update-sdk.json");
    assert_eq!(
        updated.organization.license.unwrap().get("apps"),
        Some(&serde_json::json!("T2"))
    );
}

#[test]
fn invitations_and_the_transfer_answer_are_read_as_make_sends_them() {
    let roles: UserOrganizationRoleList = decode("organization-user-organization-roles.json");
    let invitations: Vec<&Invitation> = roles
        .user_organization_roles
        .iter()
        .map(|r| &r.invitation)
        .collect();
    assert_eq!(
        invitations,
        [
            &Invitation::None,
            &Invitation::Pending(Some("expired".to_owned()))
        ]
    );
    let transfer: TransferAnswer = decode("transfer.json");
    let after = transfer.into_roles();
    assert_eq!(after.len(), 1);
    assert_eq!(
        (after[0].user_id, after[0].invitation.clone()),
        (22, Invitation::None)
    );
}

#[test]
fn usage_days_carry_centicredits() {
    let usage: Usage = decode("usage.json");
    assert_eq!(usage.data[0].centicredits, Some(123_456_789));
    assert_eq!(usage.data[0].operations, 12_345);
}
