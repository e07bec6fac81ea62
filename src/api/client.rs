//! The Make admin API client: one method per endpoint charter uses (`MAKE-API.md`), with the
//! token, the HTTPS rule, timeouts, pagination and Make's errors.
//!
//! A client as made ([`Client::new`]) makes each call once. A paced one ([`Client::paced`])
//! sends every call — each page of a list too — through its [`Pacing`]'s limiter and tries
//! again what certainly changed nothing (reads that met a 429, a 5xx, a timeout or a lost
//! connection; writes refused with a 429 or never sent). A write whose outcome is unknown is
//! never repeated by the client: the executor decides, from [`ApiError::is_retryable`] and
//! [`ApiError::outcome_unknown`], after looking the object up.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::value::RawValue;

use super::error::{ApiError, ApiErrorKind, Call, Method};
use super::pacing::Pacing;
use super::roles::Roles;
use super::wire::{
    AdminRole, AdminRoleList, AuthUserEnvelope, DefaultLicense, ErrorBody, IdOnly, License,
    NewOrganization, NewTeam, NewUser, Organization, OrganizationChanges, OrganizationEnvelope,
    PartialOrganization, RoleAssignment, Team, TeamEnvelope, TransferAnswer, Usage, User,
    UserChanges, UserEnvelope, UserLookup, UserLookupEnvelope, UserOrganizationRole,
    UserOrganizationRoleEnvelope, UserOrganizationRoleList, UserTeamRole, UserTeamRoleEnvelope,
    UsersRole, UsersRoleList,
};
use crate::model::{LicenseObject, catalog};

/// Where Make's API lives under an instance's address.
pub const API_PATH: &str = "/api/v2";

/// An API token. Its `Debug` and `Display` never show it; only the client reads it, to put it in
/// the `Authorization` header.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

/// Why a token was refused before any call.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("the API token is empty")]
    Empty,
    #[error("the API token contains a space or a control character")]
    Malformed,
}

impl Token {
    /// A token, without the whitespace around it (a token file usually ends with a newline).
    pub fn new(text: impl Into<String>) -> Result<Token, TokenError> {
        let text = text.into();
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(TokenError::Empty);
        }
        if trimmed
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || !c.is_ascii())
        {
            return Err(TokenError::Malformed);
        }
        Ok(Token(trimmed.to_owned()))
    }

    fn header(&self) -> Result<HeaderValue, TokenError> {
        let mut value = HeaderValue::from_str(&format!("Token {}", self.0))
            .map_err(|_| TokenError::Malformed)?;
        value.set_sensitive(true);
        Ok(value)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// An instance's address, checked: HTTPS, or HTTP to a loopback address only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceUrl {
    /// The address as given, without a trailing `/` or `/api/v2`.
    base: Url,
}

/// Why an instance address or a client was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("`{url}` is not a URL: {reason}")]
    NotAUrl { url: String, reason: String },
    #[error("`{url}` must start with `https://`")]
    Scheme { url: String },
    #[error(
        "`{url}` is not HTTPS: charter sends the API token over plain HTTP only to a loopback \
         address (`127.0.0.1`, `::1`, `localhost`)"
    )]
    Insecure { url: String },
    #[error("`{url}` carries a user name or password; give the token through `token_env` instead")]
    Credentials { url: String },
    #[error("`{url}` has a query or a fragment; give the instance's address only")]
    Extra { url: String },
    #[error("the token cannot be used: {0}")]
    Token(#[from] TokenError),
    #[error("the HTTP client cannot start: {0}")]
    Http(String),
}

impl InstanceUrl {
    /// Reads `https://host` (or `https://host/api/v2`; a path prefix in front of `/api/v2` is
    /// kept). Plain `http://` is accepted for loopback hosts only, so that a token never crosses
    /// a network in clear.
    pub fn parse(text: &str) -> Result<InstanceUrl, ClientError> {
        let text = text.trim();
        let url = Url::parse(text).map_err(|error| ClientError::NotAUrl {
            url: text.to_owned(),
            reason: error.to_string(),
        })?;
        let owned = || text.to_owned();
        if !url.username().is_empty() || url.password().is_some() {
            // The URL is not echoed: it holds a secret.
            return Err(ClientError::Credentials {
                url: format!(
                    "{}://…@{}",
                    url.scheme(),
                    url.host_str().unwrap_or_default()
                ),
            });
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(ClientError::Extra { url: owned() });
        }
        match url.scheme() {
            "https" => {}
            "http" if is_loopback(&url) => {}
            "http" => return Err(ClientError::Insecure { url: owned() }),
            _ => return Err(ClientError::Scheme { url: owned() }),
        }
        if url.host().is_none() {
            return Err(ClientError::NotAUrl {
                url: owned(),
                reason: "it names no host".to_owned(),
            });
        }
        let mut base = url;
        let path = base.path().trim_end_matches('/').to_owned();
        let path = path.strip_suffix(API_PATH).unwrap_or(&path).to_owned();
        base.set_path(&path);
        Ok(InstanceUrl { base })
    }

    /// Whether requests go to this machine.
    pub fn is_loopback(&self) -> bool {
        is_loopback(&self.base)
    }

    /// The API root: `https://host/api/v2`.
    pub fn api_root(&self) -> String {
        format!("{}{API_PATH}", self.to_string().trim_end_matches('/'))
    }
}

impl fmt::Display for InstanceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.base.as_str().trim_end_matches('/'))
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback() || ip == Ipv6Addr::LOCALHOST,
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost"
                || name
                    .parse::<Ipv4Addr>()
                    .is_ok_and(|ip: Ipv4Addr| ip.is_loopback())
        }
        None => false,
    }
}

/// How the client behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientOptions {
    /// How long establishing a connection may take.
    pub connect_timeout: Duration,
    /// How long one call may take, from sending to the end of the answer.
    pub request_timeout: Duration,
    /// `pg[limit]` of list calls.
    pub page_size: u32,
}

/// The page size lists ask for: the largest Make has been seen to serve, so that a plan's
/// listing of 10,000 organizations takes 2 calls. An instance that serves fewer says so in the
/// `pg` it echoes, and the next pages ask for that.
pub const DEFAULT_PAGE_SIZE: u32 = 10_000;

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            page_size: DEFAULT_PAGE_SIZE,
        }
    }
}

/// Which organizations a list returns (Make's filters).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OrganizationFilter {
    pub id: Option<i64>,
    pub name: Option<String>,
    pub external_id: Option<String>,
}

impl OrganizationFilter {
    fn pairs(&self) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        push(&mut pairs, "id", self.id);
        push(&mut pairs, "name", self.name.as_ref());
        push(&mut pairs, "externalId", self.external_id.as_ref());
        pairs
    }
}

/// Which users a list returns (Make's filters).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserFilter {
    pub organization_id: Option<i64>,
    pub team_id: Option<i64>,
    pub organization_role_id: Option<i64>,
    pub team_role_id: Option<i64>,
    pub email: Option<String>,
    pub name: Option<String>,
}

impl UserFilter {
    fn pairs(&self) -> Vec<(String, String)> {
        let mut pairs = Vec::new();
        push(&mut pairs, "organizationId", self.organization_id);
        push(&mut pairs, "teamId", self.team_id);
        push(&mut pairs, "organizationRoleId", self.organization_role_id);
        push(&mut pairs, "teamRoleId", self.team_role_id);
        push(&mut pairs, "email", self.email.as_ref());
        push(&mut pairs, "name", self.name.as_ref());
        pairs
    }
}

fn push(pairs: &mut Vec<(String, String)>, key: &str, value: Option<impl ToString>) {
    if let Some(value) = value {
        pairs.push((key.to_owned(), value.to_string()));
    }
}

/// A column of an organization, for `cols[]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrganizationColumn {
    Id,
    Name,
    TimezoneId,
    CountryId,
    License,
    Teams,
    IsPaused,
    ExternalId,
    Scenarios,
    ActiveScenarios,
    Deleted,
}

impl OrganizationColumn {
    /// Every column charter reads.
    pub const ALL: [OrganizationColumn; 11] = [
        OrganizationColumn::Id,
        OrganizationColumn::Name,
        OrganizationColumn::TimezoneId,
        OrganizationColumn::CountryId,
        OrganizationColumn::License,
        OrganizationColumn::Teams,
        OrganizationColumn::IsPaused,
        OrganizationColumn::ExternalId,
        OrganizationColumn::Scenarios,
        OrganizationColumn::ActiveScenarios,
        OrganizationColumn::Deleted,
    ];

    /// The columns a plan reads: what the planner and a saved plan's fingerprints use (no
    /// usage counters, no attributes charter never sets).
    pub const PLANNED: [OrganizationColumn; 5] = [
        OrganizationColumn::Id,
        OrganizationColumn::Name,
        OrganizationColumn::License,
        OrganizationColumn::Teams,
        OrganizationColumn::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            OrganizationColumn::Id => "id",
            OrganizationColumn::Name => "name",
            OrganizationColumn::TimezoneId => "timezoneId",
            OrganizationColumn::CountryId => "countryId",
            OrganizationColumn::License => "license",
            OrganizationColumn::Teams => "teams",
            OrganizationColumn::IsPaused => "isPaused",
            OrganizationColumn::ExternalId => "externalId",
            OrganizationColumn::Scenarios => "scenarios",
            OrganizationColumn::ActiveScenarios => "activeScenarios",
            OrganizationColumn::Deleted => "deleted",
        }
    }
}

/// The categories of instance roles (`GET /admin/users/admins-roles?category=…`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminRoleCategory {
    System,
    Developers,
    Support,
}

impl AdminRoleCategory {
    pub const ALL: [AdminRoleCategory; 3] = [
        AdminRoleCategory::System,
        AdminRoleCategory::Developers,
        AdminRoleCategory::Support,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AdminRoleCategory::System => "system",
            AdminRoleCategory::Developers => "developers",
            AdminRoleCategory::Support => "support",
        }
    }
}

/// The categories of `GET /users/roles?category=…`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RoleCategory {
    Organization,
    Team,
}

impl RoleCategory {
    pub fn as_str(self) -> &'static str {
        match self {
            RoleCategory::Organization => "organization",
            RoleCategory::Team => "team",
        }
    }
}

/// A new user, invited: Make mails a generated password that must be changed at the first
/// login. charter never sets passwords (Make's own advice).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UserInvitation {
    pub name: String,
    pub email: String,
    pub country_id: Option<i64>,
    pub timezone_id: Option<i64>,
    pub locale_id: Option<i64>,
}

/// A client for one instance.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    url: InstanceUrl,
    options: ClientOptions,
    /// Shared with the clients made by [`Client::without_pacing`].
    calls: Arc<AtomicU64>,
    pacing: Option<Pacing>,
}

impl Client {
    /// A client for `url` (`https://host`, see [`InstanceUrl::parse`]).
    pub fn new(url: &str, token: Token, options: ClientOptions) -> Result<Client, ClientError> {
        Client::for_instance(InstanceUrl::parse(url)?, token, options)
    }

    /// A client for a checked address.
    /// The token goes into a header marked sensitive and nowhere else.
    pub fn for_instance(
        url: InstanceUrl,
        token: Token,
        options: ClientOptions,
    ) -> Result<Client, ClientError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, token.header()?);
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        let http = reqwest::Client::builder()
            .default_headers(headers)
            .user_agent(concat!("charter/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            // A redirect could carry the token to another host or to plain HTTP.
            .redirect(reqwest::redirect::Policy::none())
            .https_only(!url.is_loopback())
            .build()
            .map_err(|error| ClientError::Http(error_chain(&error)))?;
        Ok(Client {
            http,
            url,
            options: ClientOptions {
                page_size: options.page_size.max(1),
                ..options
            },
            calls: Arc::new(AtomicU64::new(0)),
            pacing: None,
        })
    }

    /// The same client, pacing every call through `pacing` (see the module documentation).
    pub fn paced(self, pacing: Pacing) -> Client {
        Client {
            pacing: Some(pacing),
            ..self
        }
    }

    /// The pacing of a paced client.
    pub fn pacing(&self) -> Option<&Pacing> {
        self.pacing.as_ref()
    }

    /// This client without its pacing, for a caller that paces and retries its calls itself
    /// (the executor): the same connections, and the same count of calls.
    pub fn without_pacing(&self) -> Client {
        Client {
            http: self.http.clone(),
            url: self.url.clone(),
            options: self.options,
            calls: Arc::clone(&self.calls),
            pacing: None,
        }
    }

    /// The instance's address.
    pub fn url(&self) -> &InstanceUrl {
        &self.url
    }

    pub fn options(&self) -> ClientOptions {
        self.options
    }

    /// How many calls this client has made (or tried to make), failed and repeated ones
    /// included, with those of its [unpaced](Client::without_pacing) copies.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    // The exchange

    /// Makes a call — through the pacing, when there is one — and returns the body of a
    /// successful answer.
    async fn exchange(&self, call: &Call, body: Option<Vec<u8>>) -> Result<Vec<u8>, ApiError> {
        match &self.pacing {
            Some(pacing) => {
                pacing
                    .call(async || self.exchange_once(call, body.clone()).await)
                    .await
            }
            None => self.exchange_once(call, body).await,
        }
    }

    /// Sends one call and returns the body of a successful answer.
    async fn exchange_once(&self, call: &Call, body: Option<Vec<u8>>) -> Result<Vec<u8>, ApiError> {
        let mut url =
            Url::parse(&format!("{}{}", self.url.api_root(), call.path)).map_err(|error| {
                ApiError::new(
                    call.clone(),
                    ApiErrorKind::NotSent {
                        reason: format!("the address cannot be built: {error}"),
                    },
                )
            })?;
        if !call.query.is_empty() {
            url.query_pairs_mut().extend_pairs(call.query.iter());
        }
        let method = match call.method {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Patch => reqwest::Method::PATCH,
        };
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request
                .header(header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        self.calls.fetch_add(1, Ordering::Relaxed);
        let response = request
            .send()
            .await
            .map_err(|error| self.transport_error(call, &error))?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|error| self.transport_error(call, &error))?;
        if status.is_success() {
            return Ok(bytes.to_vec());
        }
        Err(answer_error(call, status, &headers, &bytes))
    }

    /// A failure without an answer.
    fn transport_error(&self, call: &Call, error: &reqwest::Error) -> ApiError {
        let reason = error_chain(error);
        let kind = if error.is_connect() {
            ApiErrorKind::Unreachable { reason }
        } else if error.is_timeout() {
            ApiErrorKind::Timeout {
                after: self.options.request_timeout,
            }
        } else {
            ApiErrorKind::ConnectionLost { reason }
        };
        ApiError::new(call.clone(), kind)
    }

    async fn send<T: DeserializeOwned>(
        &self,
        call: Call,
        body: Option<&impl Serialize>,
    ) -> Result<T, ApiError> {
        let body = body.map(serde_json::to_vec).transpose().map_err(|error| {
            ApiError::new(
                call.clone(),
                ApiErrorKind::NotSent {
                    reason: format!("the body cannot be written: {error}"),
                },
            )
        })?;
        let bytes = self.exchange(&call, body).await?;
        parse(&call, &bytes)
    }

    async fn get<T: DeserializeOwned>(
        &self,
        path: String,
        query: Vec<(String, String)>,
    ) -> Result<T, ApiError> {
        self.send(
            Call {
                method: Method::Get,
                path,
                query,
            },
            None::<&()>,
        )
        .await
    }

    async fn write<T: DeserializeOwned>(
        &self,
        method: Method,
        path: String,
        body: Option<&impl Serialize>,
    ) -> Result<T, ApiError> {
        self.send(
            Call {
                method,
                path,
                query: Vec::new(),
            },
            body,
        )
        .await
    }

    /// The pages of a list endpoint whose answer is `{<key>: […], pg}`.
    pub fn pages<T: DeserializeOwned>(
        &self,
        path: impl Into<String>,
        key: &'static str,
        query: Vec<(String, String)>,
    ) -> Pages<'_, T> {
        Pages {
            client: self,
            path: path.into(),
            key,
            query,
            sort_by: "id",
            limit: self.options.page_size,
            offset: 0,
            done: false,
            previous: None,
            item: PhantomData,
        }
    }

    // Organizations

    /// `GET /admin/organizations` with every column charter reads (`cols[]`: without it Make
    /// answers only `id`, `name` and `timezoneId`): every organization matching the filter,
    /// with its license and teams, in id order.
    pub async fn list_organizations(
        &self,
        filter: &OrganizationFilter,
    ) -> Result<Vec<Organization>, ApiError> {
        let mut query = filter.pairs();
        query.extend(columns(
            &OrganizationColumn::ALL.map(OrganizationColumn::as_str),
        ));
        self.pages("/admin/organizations", "organizations", query)
            .collect_all()
            .await
    }

    /// `GET /admin/organizations?cols[]=…`: every organization with
    /// only the selected columns (the others read as absent), in id order.
    pub async fn list_organizations_with(
        &self,
        columns: &[OrganizationColumn],
    ) -> Result<Vec<Organization>, ApiError> {
        let query = columns
            .iter()
            .map(|c| ("cols[]".to_owned(), c.as_str().to_owned()))
            .collect();
        self.pages("/admin/organizations", "organizations", query)
            .collect_all()
            .await
    }

    /// `GET /admin/organizations` with `cols[]`: only the selected fields of every organization
    /// matching the filter.
    pub async fn list_organization_columns(
        &self,
        filter: &OrganizationFilter,
        columns: &[OrganizationColumn],
    ) -> Result<Vec<PartialOrganization>, ApiError> {
        let mut query = filter.pairs();
        query.extend(
            columns
                .iter()
                .map(|c| ("cols[]".to_owned(), c.as_str().to_owned())),
        );
        self.pages("/admin/organizations", "organizations", query)
            .collect_all()
            .await
    }

    /// `POST /admin/organizations`. A license, when given, must be complete.
    pub async fn create_organization(
        &self,
        new: &NewOrganization,
    ) -> Result<Organization, ApiError> {
        let call_path = "/admin/organizations".to_owned();
        if let Some(license) = &new.license {
            complete(Method::Post, &call_path, license)?;
        }
        let envelope: OrganizationEnvelope = self.write(Method::Post, call_path, Some(new)).await?;
        Ok(envelope.organization)
    }

    /// `PATCH /admin/organizations/{id}`. A license, when given, must be complete: whether Make
    /// merges or replaces it is not documented, so charter always sends all of it.
    pub async fn update_organization(
        &self,
        id: i64,
        changes: &OrganizationChanges,
    ) -> Result<Organization, ApiError> {
        let path = format!("/admin/organizations/{id}");
        if let Some(license) = &changes.license {
            complete(Method::Patch, &path, license)?;
        }
        let envelope: OrganizationEnvelope = self.write(Method::Patch, path, Some(changes)).await?;
        Ok(envelope.organization)
    }

    /// Sets an organization's license to a compiled license object (always complete).
    pub async fn set_license(
        &self,
        id: i64,
        license: &LicenseObject,
    ) -> Result<Organization, ApiError> {
        self.set_license_keys(id, &License::from(license)).await
    }

    /// Sets charter's license keys over the organization's live license: reads it
    /// (`GET /admin/organizations?id=…&cols[]=license`), sets `keys` over it and writes the
    /// whole of it. Keys charter does not manage keep their values whether Make merges or
    /// replaces a license on `PATCH` (which it does not document). Two calls.
    pub async fn set_license_keys(
        &self,
        id: i64,
        keys: &License,
    ) -> Result<Organization, ApiError> {
        let path = format!("/admin/organizations/{id}");
        complete(Method::Patch, &path, keys)?;
        let live = self
            .list_organization_columns(
                &OrganizationFilter {
                    id: Some(id),
                    ..OrganizationFilter::default()
                },
                &[OrganizationColumn::Id, OrganizationColumn::License],
            )
            .await?
            .into_iter()
            .find(|o| o.id == Some(id))
            .and_then(|o| o.license)
            .unwrap_or_default();
        let merged = merge_license(live, keys);
        self.update_organization(
            id,
            &OrganizationChanges {
                license: Some(merged),
                ..OrganizationChanges::default()
            },
        )
        .await
    }

    /// `GET /admin/system-settings/default-license`.
    pub async fn default_license(&self) -> Result<License, ApiError> {
        let body: DefaultLicense = self
            .get(
                "/admin/system-settings/default-license".to_owned(),
                Vec::new(),
            )
            .await?;
        Ok(body.default_license)
    }

    /// `GET /organizations/{id}/usage`: the daily usage of the last 30 days.
    pub async fn usage(&self, organization_id: i64) -> Result<Usage, ApiError> {
        self.get(
            format!("/organizations/{organization_id}/usage"),
            Vec::new(),
        )
        .await
    }

    // Users

    /// `GET /admin/users` with every column charter reads: every user matching the filter, in
    /// id order.
    pub async fn list_users(&self, filter: &UserFilter) -> Result<Vec<User>, ApiError> {
        let mut query = filter.pairs();
        query.extend(columns(USER_COLUMNS));
        self.pages("/admin/users", "users", query)
            .collect_all()
            .await
    }

    /// `GET /admin/users?cols[]=…`: every user with the columns a plan
    /// reads (id, name, address, instance role, deleted), in id order.
    pub async fn list_planned_users(&self) -> Result<Vec<User>, ApiError> {
        self.pages("/admin/users", "users", columns(PLANNED_USER_COLUMNS))
            .collect_all()
            .await
    }

    /// `GET /admin/users?cols[]=id`: the ids of every user matching the filter, in id order.
    pub async fn list_user_ids(&self, filter: &UserFilter) -> Result<Vec<i64>, ApiError> {
        let mut query = filter.pairs();
        query.push(("cols[]".to_owned(), "id".to_owned()));
        let ids: Vec<IdOnly> = self
            .pages("/admin/users", "users", query)
            .collect_all()
            .await?;
        Ok(ids.into_iter().map(|i| i.id).collect())
    }

    /// `GET /admin/users/lookup?type=email`: the user with this e-mail address, if there is
    /// one (a 404 is `None`).
    pub async fn lookup_user_by_email(&self, email: &str) -> Result<Option<UserLookup>, ApiError> {
        self.lookup(email, "email").await
    }

    /// `GET /admin/users/lookup?type=id`: the user with this id, if there is one.
    pub async fn lookup_user_by_id(&self, id: i64) -> Result<Option<UserLookup>, ApiError> {
        self.lookup(&id.to_string(), "id").await
    }

    async fn lookup(&self, q: &str, kind: &str) -> Result<Option<UserLookup>, ApiError> {
        let query = vec![
            ("q".to_owned(), q.to_owned()),
            ("type".to_owned(), kind.to_owned()),
        ];
        match self
            .get::<UserLookupEnvelope>("/admin/users/lookup".to_owned(), query)
            .await
        {
            Ok(envelope) => Ok(Some(envelope.user)),
            Err(error) if error.kind == ApiErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// `GET /users/me`: the user the token belongs to; `None` from an instance without the
    /// endpoint (a 404), so callers can do without it.
    pub async fn me(&self) -> Result<Option<User>, ApiError> {
        match self
            .get::<AuthUserEnvelope>("/users/me".to_owned(), Vec::new())
            .await
        {
            Ok(envelope) => Ok(Some(envelope.auth_user)),
            Err(error) if error.kind == ApiErrorKind::NotFound => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// `POST /admin/users` without a password and with `sendEmail`: Make invites the user.
    pub async fn create_user(&self, invitation: &UserInvitation) -> Result<User, ApiError> {
        let new = NewUser {
            name: invitation.name.clone(),
            email: invitation.email.clone(),
            password: None,
            send_email: Some(true),
            country_id: invitation.country_id,
            timezone_id: invitation.timezone_id,
            locale_id: invitation.locale_id,
        };
        let envelope: UserEnvelope = self
            .write(Method::Post, "/admin/users".to_owned(), Some(&new))
            .await?;
        Ok(envelope.user)
    }

    /// `PATCH /admin/users/{id}` (name, e-mail, instance role …).
    pub async fn update_user(&self, id: i64, changes: &UserChanges) -> Result<User, ApiError> {
        let envelope: UserEnvelope = self
            .write(Method::Patch, format!("/admin/users/{id}"), Some(changes))
            .await?;
        Ok(envelope.user)
    }

    // Roles

    /// `GET /admin/users/admins-roles?category=…&cols[]=…`: the instance roles of one category,
    /// with their `category` (which Make answers only when `cols[]` asks for it).
    pub async fn admin_roles(
        &self,
        category: AdminRoleCategory,
    ) -> Result<Vec<AdminRole>, ApiError> {
        let body: AdminRoleList = self
            .get(
                "/admin/users/admins-roles".to_owned(),
                role_query(category.as_str()),
            )
            .await?;
        Ok(body.users_admins_roles)
    }

    /// `GET /users/roles?category=…&cols[]=…`: the organization or the team roles, with their
    /// `category` (which Make's documentation answers only when `cols[]` asks for it).
    pub async fn users_roles(&self, category: RoleCategory) -> Result<Vec<UsersRole>, ApiError> {
        let body: UsersRoleList = self
            .get("/users/roles".to_owned(), role_query(category.as_str()))
            .await?;
        Ok(body.users_roles)
    }

    /// Every role of the instance, for looking roles up by name: five calls, one per documented
    /// category (three of instance roles, organization, team). A role is filed under the
    /// category it was asked for; one whose answer names another category is left out.
    pub async fn roles(&self) -> Result<Roles, ApiError> {
        let mut instance = Vec::new();
        for category in AdminRoleCategory::ALL {
            instance.extend(
                self.admin_roles(category)
                    .await?
                    .into_iter()
                    .filter(|r| r.category.as_deref().is_none_or(|c| c == category.as_str())),
            );
        }
        let mut lists = Vec::new();
        for category in [RoleCategory::Organization, RoleCategory::Team] {
            let roles: Vec<UsersRole> = self.users_roles(category).await?;
            lists.push(
                roles
                    .into_iter()
                    .filter(|r| r.category.as_deref().is_none_or(|c| c == category.as_str()))
                    .collect::<Vec<_>>(),
            );
        }
        let team = lists.pop().unwrap_or_default();
        let organization = lists.pop().unwrap_or_default();
        Ok(Roles::from_lists(instance, organization, team))
    }

    /// `GET /users/{userId}/user-organization-roles`: a user's role in every organization they
    /// belong to.
    pub async fn user_organization_roles(
        &self,
        user_id: i64,
    ) -> Result<Vec<UserOrganizationRole>, ApiError> {
        let body: UserOrganizationRoleList = self
            .get(
                format!("/users/{user_id}/user-organization-roles"),
                Vec::new(),
            )
            .await?;
        Ok(body.user_organization_roles)
    }

    /// `POST /admin/users/{userId}/user-organization-roles/{orgId}`: adds the user to the
    /// organization or changes their role there (never to Owner: see
    /// [`Client::transfer_ownership`]).
    pub async fn set_organization_role(
        &self,
        user_id: i64,
        organization_id: i64,
        role_id: i64,
    ) -> Result<UserOrganizationRole, ApiError> {
        let envelope: UserOrganizationRoleEnvelope = self
            .write(
                Method::Post,
                format!("/admin/users/{user_id}/user-organization-roles/{organization_id}"),
                Some(&RoleAssignment {
                    users_role_id: role_id,
                }),
            )
            .await?;
        Ok(envelope.user_organization_role)
    }

    /// `POST /admin/users/{userId}/user-organization-roles/{orgId}` with an empty body (`{}`):
    /// removes the user from the organization, as Make's API reference documents for this call
    /// (its `deleteConnections` is left out: the user's connections stay). Make documents no
    /// answer for it: whatever comes back is not read.
    pub async fn remove_from_organization(
        &self,
        user_id: i64,
        organization_id: i64,
    ) -> Result<(), ApiError> {
        let _: serde::de::IgnoredAny = self
            .write(
                Method::Post,
                format!("/admin/users/{user_id}/user-organization-roles/{organization_id}"),
                Some(&serde_json::Map::new()),
            )
            .await?;
        Ok(())
    }

    /// `POST /admin/users/{userId}/user-organization-roles/{orgId}/transfer`: the user becomes
    /// the owner. Make answers a list of memberships (`tests/contract/transfer.json`; one object
    /// is read too). The previous owner's new role is not documented: the executor reads the
    /// roles back after it.
    pub async fn transfer_ownership(
        &self,
        user_id: i64,
        organization_id: i64,
    ) -> Result<Vec<UserOrganizationRole>, ApiError> {
        let answer: TransferAnswer = self
            .write(
                Method::Post,
                format!(
                    "/admin/users/{user_id}/user-organization-roles/{organization_id}/transfer"
                ),
                None::<&()>,
            )
            .await?;
        Ok(answer.into_roles())
    }

    // Teams

    /// `GET /admin/teams?organizationId=…`: an organization's teams, in id order (read sorted by
    /// `name`, the only sort key Make documents for teams).
    pub async fn list_teams(&self, organization_id: i64) -> Result<Vec<Team>, ApiError> {
        let mut teams: Vec<Team> = self
            .pages(
                "/admin/teams",
                "teams",
                vec![("organizationId".to_owned(), organization_id.to_string())],
            )
            .sorted_by("name")
            .collect_all()
            .await?;
        teams.sort_by_key(|t| t.id);
        teams.dedup_by_key(|t| t.id);
        Ok(teams)
    }

    /// `POST /admin/teams`.
    pub async fn create_team(&self, new: &NewTeam) -> Result<Team, ApiError> {
        let envelope: TeamEnvelope = self
            .write(Method::Post, "/admin/teams".to_owned(), Some(new))
            .await?;
        Ok(envelope.team)
    }

    /// `POST /admin/users/{userId}/user-team-roles/{teamId}`: adds a member of the team's
    /// organization to the team or changes their role there.
    pub async fn set_team_role(
        &self,
        user_id: i64,
        team_id: i64,
        role_id: i64,
    ) -> Result<UserTeamRole, ApiError> {
        let envelope: UserTeamRoleEnvelope = self
            .write(
                Method::Post,
                format!("/admin/users/{user_id}/user-team-roles/{team_id}"),
                Some(&RoleAssignment {
                    users_role_id: role_id,
                }),
            )
            .await?;
        Ok(envelope.user_team_role)
    }
}

/// `live` with every key of `keys` set over it.
pub fn merge_license(live: License, keys: &License) -> License {
    let mut merged = live;
    for (key, value) in &keys.0 {
        merged.0.insert(key.clone(), value.clone());
    }
    merged
}

/// `category=…` and the role columns charter reads.
fn role_query(category: &str) -> Vec<(String, String)> {
    let mut query = vec![("category".to_owned(), category.to_owned())];
    query.extend(columns(&["id", "name", "category"]));
    query
}

/// `cols[]=…` for each column.
fn columns(names: &[&str]) -> Vec<(String, String)> {
    names
        .iter()
        .map(|c| ("cols[]".to_owned(), (*c).to_owned()))
        .collect()
}

/// The user columns charter reads.
const USER_COLUMNS: &[&str] = &[
    "id",
    "name",
    "email",
    "usersAdminsRoleId",
    "language",
    "countryId",
    "timezoneId",
    "localeId",
    "deleted",
];

/// The user columns a plan reads.
const PLANNED_USER_COLUMNS: &[&str] = &["id", "name", "email", "usersAdminsRoleId", "deleted"];

/// Refuses a license that lacks a catalog key, before sending it.
fn complete(method: Method, path: &str, license: &License) -> Result<(), ApiError> {
    let missing: Vec<String> = catalog::CATALOG
        .iter()
        .filter(|p| license.get(p.name).is_none())
        .map(|p| format!("`{}`", p.name))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    Err(ApiError::new(
        Call {
            method,
            path: path.to_owned(),
            query: Vec::new(),
        },
        ApiErrorKind::NotSent {
            reason: format!(
                "the license lacks {}; charter always sends the complete license",
                missing.join(", ")
            ),
        },
    ))
}

/// An error from an answer that is not a success.
fn answer_error(call: &Call, status: StatusCode, headers: &HeaderMap, bytes: &[u8]) -> ApiError {
    let code = status.as_u16();
    let kind = match code {
        401 => ApiErrorKind::Unauthorized,
        403 => ApiErrorKind::Forbidden,
        404 => ApiErrorKind::NotFound,
        429 => ApiErrorKind::RateLimited {
            retry_after: headers
                .get(header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(retry_after),
        },
        300..=399 => ApiErrorKind::Redirected {
            location: headers
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned),
        },
        500..=599 => ApiErrorKind::Server,
        _ => ApiErrorKind::Rejected,
    };
    let error = ApiError::new(call.clone(), kind).with_status(code);
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(body) if !body.is_empty() => error.with_body(Some(body), None),
        _ if !bytes.is_empty() => error.with_body(None, Some(excerpt(bytes))),
        _ => error,
    }
}

/// `Retry-After` as seconds or as an HTTP date.
fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = jiff::fmt::rfc2822::parse(value).ok()?.timestamp();
    let wait = at
        .as_second()
        .saturating_sub(jiff::Timestamp::now().as_second());
    Some(Duration::from_secs(u64::try_from(wait).unwrap_or(0)))
}

/// A body on one line, shortened.
fn excerpt(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() > 120 {
        let short: String = line.chars().take(120).collect();
        format!("{short}…")
    } else {
        line
    }
}

/// A successful answer read as its type; a mismatch names the field.
fn parse<T: DeserializeOwned>(call: &Call, bytes: &[u8]) -> Result<T, ApiError> {
    parse_at(call, bytes, "")
}

fn parse_at<T: DeserializeOwned>(call: &Call, bytes: &[u8], prefix: &str) -> Result<T, ApiError> {
    let bad = |problem: String| {
        ApiError::new(call.clone(), ApiErrorKind::BadResponse { problem }).with_status(200)
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(
        |error: serde_path_to_error::Error<serde_json::Error>| {
            let path = error.path().to_string();
            let inner = error.inner();
            bad(match (path.as_str(), prefix.is_empty()) {
                (".", true) if bytes.is_empty() => "the body is empty".to_owned(),
                (".", true) => inner.to_string(),
                (".", false) => format!("`{prefix}`: {inner}"),
                (path, true) => format!("`{path}`: {inner}"),
                (path, false) => format!("`{prefix}{}`: {inner}", path.trim_start_matches('.')),
            })
        },
    )?;
    deserializer
        .end()
        .map_err(|error| bad(format!("trailing characters after the JSON: {error}")))?;
    Ok(value)
}

/// The causes of a transport error, outermost first, without the URL.
fn error_chain(error: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut parts = Vec::new();
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !parts.contains(&text) {
            parts.push(text);
        }
        source = cause.source();
    }
    if parts.is_empty() {
        parts.push(if error.is_timeout() {
            "timed out".to_owned()
        } else {
            "the request failed".to_owned()
        });
    }
    parts.join(": ")
}

/// The pages of a list: `pg[limit]`/`pg[offset]`, sorted (by id unless the endpoint documents
/// only another key) so that pages neither overlap nor skip.
///
/// Reading ends at an empty page, or at a page shorter than the limit the answer's `pg` echoes
/// — the limit in force, whatever was asked for: an instance that caps page sizes below
/// charter's choice is still read to the end, and one that echoes no limit is read until a page
/// comes back empty.
#[derive(Debug)]
pub struct Pages<'c, T> {
    client: &'c Client,
    path: String,
    key: &'static str,
    query: Vec<(String, String)>,
    sort_by: &'static str,
    limit: u32,
    offset: u64,
    done: bool,
    /// The items of the previous page, to notice an instance that ignores `pg[offset]`.
    previous: Option<String>,
    item: PhantomData<fn() -> T>,
}

impl<T> Pages<'_, T> {
    /// Sorts by `key` (`pg[sortBy]`) instead of `id`.
    pub fn sorted_by(self, key: &'static str) -> Self {
        Pages {
            sort_by: key,
            ..self
        }
    }
}

impl<T: DeserializeOwned> Pages<'_, T> {
    /// The next page, or `None` after the last.
    pub async fn next_page(&mut self) -> Result<Option<Vec<T>>, ApiError> {
        if self.done {
            return Ok(None);
        }
        let mut query = self.query.clone();
        query.extend([
            ("pg[sortBy]".to_owned(), self.sort_by.to_owned()),
            ("pg[sortDir]".to_owned(), "asc".to_owned()),
            ("pg[limit]".to_owned(), self.limit.to_string()),
            ("pg[offset]".to_owned(), self.offset.to_string()),
        ]);
        let call = Call {
            method: Method::Get,
            path: self.path.clone(),
            query,
        };
        let bytes = self.client.exchange(&call, None).await?;
        let fields: BTreeMap<String, Box<RawValue>> = parse(&call, &bytes)?;
        let bad = |problem: String| {
            ApiError::new(call.clone(), ApiErrorKind::BadResponse { problem }).with_status(200)
        };
        let items_text = fields
            .get(self.key)
            .ok_or_else(|| bad(format!("the answer has no `{}` list", self.key)))?
            .get();
        let items: Vec<T> = parse_at(&call, items_text.as_bytes(), self.key)?;
        // The `pg` echo is read leniently: only its `limit` matters, and only when it is there.
        let echoed = fields
            .get("pg")
            .and_then(|pg| serde_json::from_str::<serde_json::Value>(pg.get()).ok())
            .and_then(|pg| pg.get("limit").and_then(serde_json::Value::as_u64))
            .and_then(|limit| u32::try_from(limit).ok());
        let count = items.len() as u64;
        if count > 0 && self.previous.as_deref() == Some(items_text) {
            return Err(bad(format!(
                "the page at offset {} repeats the one before it; the instance ignores `pg[offset]`",
                self.offset
            )));
        }
        self.previous = Some(items_text.to_owned());
        self.offset += count;
        // The limit in force is the one the instance says: the next page asks for it.
        if let Some(limit) = echoed.filter(|&limit| limit > 0) {
            self.limit = limit;
        }
        if count == 0 || echoed.is_some_and(|limit| count < u64::from(limit)) {
            self.done = true;
        }
        Ok(Some(items))
    }

    /// Every item of every page.
    pub async fn collect_all(mut self) -> Result<Vec<T>, ApiError> {
        let mut all = Vec::new();
        while let Some(page) = self.next_page().await? {
            all.extend(page);
        }
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_read_as_seconds_or_a_date() {
        assert_eq!(retry_after("30"), Some(Duration::from_secs(30)));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after("soon"), None);
    }

    #[test]
    fn a_license_change_keeps_the_keys_charter_does_not_manage() {
        let live: License =
            serde_json::from_str(r#"{"operations": 5, "users": 50, "apps": ["T2"]}"#).unwrap();
        let keys: License = serde_json::from_str(r#"{"operations": 0, "teams": 3}"#).unwrap();
        assert_eq!(
            serde_json::to_value(merge_license(live, &keys)).unwrap(),
            serde_json::json!({"operations": 0, "teams": 3, "users": 50, "apps": ["T2"]})
        );
    }

    #[test]
    fn an_excerpt_is_one_short_line() {
        assert_eq!(
            excerpt(b"<html>\n  <b>x</b>\n</html>"),
            "<html> <b>x</b> </html>"
        );
        assert!(excerpt(&[b'a'; 500]).ends_with('…'));
    }
}
