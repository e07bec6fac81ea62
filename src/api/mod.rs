//! Make's admin API as charter sees it: the wire types, the client, the roles and the observed
//! state of an instance.
//!
//! [`wire`] holds the serde types of the JSON bodies. The sandbox serves them and the [`client`]
//! reads them; the two share nothing else, so a disagreement between them shows up in tests.
//! [`observe()`] reads everything a planner needs into plain, sorted data. A client may be
//! [paced](pacing): every call through a [limiter] (the rate limiter the executor
//! shares) and retried with the [backoff](retry) when that is safe.

pub mod client;
pub mod error;
pub mod limiter;
pub mod observe;
pub mod pacing;
pub mod retry;
pub mod roles;
pub mod wire;

pub use client::{
    AdminRoleCategory, Client, ClientError, ClientOptions, InstanceUrl, OrganizationColumn,
    OrganizationFilter, Pages, RoleCategory, Token, TokenError, UserFilter, UserInvitation,
};
pub use error::{ApiError, ApiErrorKind, Call, Failure, Method};
pub use limiter::{Limiter, RateLimit};
pub use observe::{
    Fingerprint, Membership, Memberships, ObserveCalls, Observed, ObservedOrganization,
    ObservedTeam, ObservedUser, Scope, observe,
};
pub use pacing::Pacing;
pub use retry::{Jitter, RetryPolicy};
pub use roles::{Role, RoleError, RoleKind, Roles};
