//! Decoding a Make API response body never panics, whatever the bytes, for every body the
//! client reads (`charter::api::wire`); a license object that decodes writes back to the same
//! JSON object.
#![no_main]

use charter::api::wire;
use libfuzzer_sys::fuzz_target;

/// Decodes `data` as each type; the result is dropped: only a panic is a finding.
macro_rules! decode {
    ($data:expr, $($t:ty),* $(,)?) => {
        $(let _ = serde_json::from_slice::<$t>($data);)*
    };
}

fuzz_target!(|data: &[u8]| {
    decode!(
        data,
        wire::ErrorBody,
        wire::OrganizationEnvelope,
        wire::OrganizationList,
        wire::DefaultLicense,
        wire::Usage,
        wire::UserEnvelope,
        wire::AuthUserEnvelope,
        wire::UserList,
        wire::UserLookupEnvelope,
        wire::AdminRoleList,
        wire::UsersRoleList,
        wire::UserOrganizationRoleEnvelope,
        wire::UserOrganizationRoleList,
        wire::TransferAnswer,
        wire::TeamEnvelope,
        wire::TeamList,
    );
    if let Ok(license) = serde_json::from_slice::<wire::License>(data) {
        let written = serde_json::to_value(&license);
        assert!(written.is_ok_and(|w| w == serde_json::Value::Object(license.0.clone())));
    }
});
