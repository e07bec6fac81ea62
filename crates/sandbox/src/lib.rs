//! The sandbox: a Make-compatible admin API server on loopback, backed by SQLite.
//!
//! It serves the admin endpoints of Make's API with Make's bodies, status codes and rules, as
//! strictly as the public facts allow, so that a client that works against it also works against
//! a real instance. It is an independent implementation: this crate depends on no client of
//! Make, and its JSON types ([`wire`]) and license keys ([`license`]) are its own, written from
//! Make's documentation. [`start`] runs it in-process on a loopback port (an ephemeral one by
//! default) for tests and embedding programs; [`seed`] fills a database for demos and
//! benchmarks. `docs/sandbox.md` describes what it serves.

mod behaviour;
mod control;
mod db;
mod error;
mod faults;
pub mod license;
mod query;
mod ratelimit;
mod roles;
mod routes;
mod seed;
mod server;
mod store;
pub mod wire;

use std::collections::HashMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use behaviour::{Behaviour, PageCap, PreviousOwner, UserOrgAdmin};
pub use db::Storage;
pub use error::{RATE_LIMIT_MESSAGE, SandboxError};
pub use faults::{FaultSpecError, Faults};
pub use query::{DEFAULT_LIMIT, MAX_LIMIT};
pub use roles::TokenRole;
pub use routes::{API_PREFIX, CONTROL_PREFIX};
pub use seed::{SeedOptions, SeedReport, seed};

/// The window of the rate limit: a minute.
pub const RATE_LIMIT_WINDOW: Duration = Duration::from_secs(60);

/// The token a sandbox accepts when it is given none.
pub const DEFAULT_TOKEN: &str = "sandbox-token";

/// A token the sandbox accepts and the instance role of the user it belongs to.
///
/// Its `Debug` and `Display` never show the token itself.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenGrant {
    pub token: String,
    pub role: TokenRole,
}

impl TokenGrant {
    pub fn new(token: impl Into<String>, role: TokenRole) -> TokenGrant {
        TokenGrant {
            token: token.into(),
            role,
        }
    }
}

impl fmt::Debug for TokenGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenGrant")
            .field("token", &"<redacted>")
            .field("role", &self.role)
            .finish()
    }
}

/// Why a `--token` value was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenGrantError {
    #[error("a token cannot be empty")]
    Empty,
    #[error("unknown token role `{0}`; roles are `sa`, `admin`, `bi` and `member`")]
    UnknownRole(String),
}

impl FromStr for TokenGrant {
    type Err = TokenGrantError;

    /// Reads `TOKEN` (an SA token) or `TOKEN:ROLE`.
    fn from_str(text: &str) -> Result<TokenGrant, TokenGrantError> {
        let (token, role) = match text.rsplit_once(':') {
            Some((token, word)) => (
                token,
                TokenRole::from_word(word)
                    .ok_or_else(|| TokenGrantError::UnknownRole(word.to_owned()))?,
            ),
            None => (text, TokenRole::SystemAdministrator),
        };
        if token.is_empty() {
            return Err(TokenGrantError::Empty);
        }
        Ok(TokenGrant::new(token, role))
    }
}

/// How to run a sandbox.
#[derive(Clone, Debug)]
pub struct Config {
    pub storage: Storage,
    /// A loopback address; port 0 picks a free one.
    pub listen: SocketAddr,
    /// The tokens accepted; when empty, [`DEFAULT_TOKEN`] as SA.
    pub tokens: Vec<TokenGrant>,
    /// Requests per token per minute; `None` for no limit.
    pub rate_limit_per_minute: Option<u32>,
    /// The window the limit counts over: [`RATE_LIMIT_WINDOW`], a minute like Make's
    /// `apiLimit`. Tests shorten it (with the client's, `Limiter::with_window`) to go through
    /// several of the limit's minutes in seconds.
    pub rate_limit_window: Duration,
    /// Counts with a token bucket of this many requests, refilled at the limit per window,
    /// instead of the sliding window: an instance that refuses bursts. `None` by default.
    pub rate_limit_bucket: Option<u32>,
    pub faults: Faults,
    /// Seeds the fault draws.
    pub seed: u64,
    /// Readings of what Make leaves undocumented other than the sandbox's own; the default is
    /// the sandbox's reading.
    pub behaviour: Behaviour,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            storage: Storage::Memory,
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            tokens: Vec::new(),
            rate_limit_per_minute: None,
            rate_limit_window: RATE_LIMIT_WINDOW,
            rate_limit_bucket: None,
            faults: Faults::default(),
            seed: 0,
            behaviour: Behaviour::default(),
        }
    }
}

impl Config {
    /// The tokens in force: the configured ones, or the default one.
    pub fn effective_tokens(&self) -> Vec<TokenGrant> {
        if self.tokens.is_empty() {
            vec![TokenGrant::new(
                DEFAULT_TOKEN,
                TokenRole::SystemAdministrator,
            )]
        } else {
            self.tokens.clone()
        }
    }
}

/// A sandbox serving requests.
#[derive(Debug)]
pub struct RunningSandbox {
    addr: SocketAddr,
    instance_id: String,
    stop: watch::Sender<bool>,
    task: JoinHandle<Result<(), SandboxError>>,
}

/// Starts a sandbox: opens its database, binds its address and serves in the background of the
/// current tokio runtime until [`RunningSandbox::shutdown`].
pub async fn start(config: Config) -> Result<RunningSandbox, SandboxError> {
    if !config.listen.ip().is_loopback() {
        return Err(SandboxError::NotLoopback(config.listen));
    }
    let grants = config.effective_tokens();
    let storage = config.storage.clone();
    let (conn, tokens, instance_id) = tokio::task::spawn_blocking(move || {
        let conn = db::open(&storage)?;
        let instance_id = db::instance_id(&conn)?;
        let mut tokens = HashMap::new();
        for (index, grant) in grants.iter().enumerate() {
            let user_id = db::ensure_caller(&conn, grant.role)?;
            let caller = store::Caller {
                role: grant.role,
                user_id,
            };
            tokens.insert(grant.token.clone(), routes::Grant { index, caller });
        }
        Ok::<_, SandboxError>((conn, tokens, instance_id))
    })
    .await
    .map_err(|error| SandboxError::Stopped(error.to_string()))??;
    let listener =
        TcpListener::bind(config.listen)
            .await
            .map_err(|source| SandboxError::Listen {
                addr: config.listen,
                source,
            })?;
    let addr = listener
        .local_addr()
        .map_err(|source| SandboxError::Listen {
            addr: config.listen,
            source,
        })?;
    let db = db::Db::new(conn);
    let shared = Arc::new(routes::Shared {
        db: db.clone(),
        tokens,
        limiter: config.rate_limit_per_minute.map(|limit| {
            ratelimit::RateLimiter::new(limit, config.rate_limit_window)
                .with_bucket(config.rate_limit_bucket)
        }),
        faults: config.faults,
        behaviour: config.behaviour,
        generator: Mutex::new(faults::Generator::new(config.seed)),
    });
    let (stop, stopped) = watch::channel(false);
    let task = tokio::spawn(server::serve(listener, routes::router(shared), stopped, db));
    Ok(RunningSandbox {
        addr,
        instance_id,
        stop,
        task,
    })
}

impl RunningSandbox {
    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The base URL of Make's API on it: `http://127.0.0.1:PORT/api/v2`.
    pub fn url(&self) -> String {
        format!("http://{}{API_PREFIX}", self.addr)
    }

    /// Its database's own id: random, made with the database (a database made again has
    /// another).
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// The URL of the sandbox's own endpoints: `http://127.0.0.1:PORT/_sandbox`.
    pub fn control_url(&self) -> String {
        format!("http://{}{CONTROL_PREFIX}", self.addr)
    }

    /// Stops accepting connections, lets requests in flight finish, and flushes the database.
    pub async fn shutdown(self) -> Result<(), SandboxError> {
        let _ = self.stop.send(true);
        self.task
            .await
            .map_err(|error| SandboxError::Stopped(error.to_string()))?
    }
}

/// A sandbox with its own tokio runtime, for callers that are not async.
///
/// Shut it down with [`BlockingSandbox::shutdown`]; dropping it stops the runtime without
/// flushing (committed writes are kept all the same). Neither may happen inside an async
/// context.
#[derive(Debug)]
pub struct BlockingSandbox {
    runtime: tokio::runtime::Runtime,
    running: RunningSandbox,
}

impl BlockingSandbox {
    /// Starts a sandbox on a runtime of its own.
    pub fn start(config: Config) -> Result<BlockingSandbox, SandboxError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("charter-sandbox")
            .build()
            .map_err(SandboxError::Runtime)?;
        let running = runtime.block_on(start(config))?;
        Ok(BlockingSandbox { runtime, running })
    }

    pub fn addr(&self) -> SocketAddr {
        self.running.addr()
    }

    pub fn url(&self) -> String {
        self.running.url()
    }

    pub fn control_url(&self) -> String {
        self.running.control_url()
    }

    /// Shuts the sandbox down and flushes its database.
    pub fn shutdown(self) -> Result<(), SandboxError> {
        let BlockingSandbox { runtime, running } = self;
        runtime.block_on(running.shutdown())
    }
}
