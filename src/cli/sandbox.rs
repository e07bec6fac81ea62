//! `charter sandbox` and `charter sandbox seed`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use super::Outcome;
use charter_sandbox::{
    self as sandbox, Behaviour, Config, Faults, PageCap, PreviousOwner, SeedOptions, Storage,
    TokenGrant, UserOrgAdmin,
};

/// Run a local Make-compatible admin API (HTTP on loopback, backed by SQLite).
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<SandboxCommand>,
    /// SQLite file to keep the data in (created when missing); in memory without it.
    #[arg(long, value_name = "FILE")]
    db: Option<PathBuf>,
    /// Loopback address to listen on; port 0 picks a free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:7070", value_parser = parse_listen)]
    listen: SocketAddr,
    /// A token to accept, as `TOKEN` (role `sa`) or `TOKEN:ROLE` with ROLE one of `sa`, `admin`,
    /// `bi`, `member`; repeatable. Without any, `sandbox-token` is accepted as `sa`.
    #[arg(long = "token", value_name = "TOKEN[:ROLE]")]
    tokens: Vec<TokenGrant>,
    /// Requests per token per minute, as `60/min`; no limit without it.
    #[arg(long, value_name = "N/min")]
    rate_limit: Option<RateLimit>,
    /// Faults to inject, as `429=0.2,500=0.1,latency=0.3:200ms,lost=0.05`.
    #[arg(long, value_name = "SPEC")]
    faults: Option<Faults>,
    /// Seed of the fault draws: the same seed and requests meet the same faults.
    #[arg(long, value_name = "N", default_value_t = 0)]
    seed: u64,
    /// What the previous owner becomes after a transfer of ownership: `admin` or `member`
    /// (Make does not document it).
    #[arg(long, value_name = "ROLE", default_value = "admin")]
    after_transfer: PreviousOwner,
    /// What the user named by `userOrgAdmin` becomes in a new organization: `owner`, or `admin`
    /// with the token's own user as owner (Make does not document it).
    #[arg(long, value_name = "ROLE", default_value = "owner")]
    user_org_admin: UserOrgAdmin,
    /// Serve at most N items per page whatever `pg[limit]` asks, as `N` (saying so in `pg.limit`)
    /// or `N:unechoed` (repeating the limit asked for).
    #[arg(long, value_name = "N[:unechoed]")]
    page_cap: Option<PageCap>,
}

#[derive(Debug, clap::Subcommand)]
enum SandboxCommand {
    /// Fill a sandbox database with organizations, owners, members and usage.
    Seed(SeedArgs),
}

#[derive(Debug, clap::Args)]
struct SeedArgs {
    /// The SQLite file to fill (created when missing).
    #[arg(long, value_name = "FILE")]
    db: PathBuf,
    /// How many organizations to add.
    #[arg(long, value_name = "N")]
    orgs: u32,
    /// Seed of the generated data: the same seed gives the same data.
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
}

/// A requests-per-minute limit: `60/min` or `60`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct RateLimit(u32);

impl FromStr for RateLimit {
    type Err = String;

    fn from_str(text: &str) -> Result<RateLimit, String> {
        let number = text.strip_suffix("/min").unwrap_or(text);
        match number.trim().parse::<u32>() {
            Ok(n) if n > 0 => Ok(RateLimit(n)),
            _ => Err(format!(
                "`{text}` is not a rate limit; write a positive number of requests per minute, as `60/min`"
            )),
        }
    }
}

/// Reads `--listen`: a loopback address with its port. Checked here, with the other flag
/// values, so that every bad value is a usage error (exit 2).
fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let address = match text.parse::<SocketAddr>() {
        Ok(address) => address,
        Err(_) => {
            let hint = if text.parse::<std::net::IpAddr>().is_ok() {
                " (the port is missing)"
            } else {
                ""
            };
            return Err(format!(
                "`{text}` is not an address and port{hint}; write one as `127.0.0.1:7070`, or \
                 `127.0.0.1:0` for a free port"
            ));
        }
    };
    if !address.ip().is_loopback() {
        return Err(format!(
            "`{text}` is not a loopback address: the sandbox listens on loopback only, as \
             `127.0.0.1:{}`",
            address.port()
        ));
    }
    Ok(address)
}

/// Runs `charter sandbox …`.
pub(super) fn run(args: Args) -> Outcome {
    let outcome = match args.command {
        Some(SandboxCommand::Seed(seed_args)) => seed(seed_args),
        None => serve(Config {
            storage: args.db.map_or(Storage::Memory, Storage::File),
            listen: args.listen,
            tokens: args.tokens,
            rate_limit_per_minute: args.rate_limit.map(|r| r.0),
            rate_limit_window: sandbox::RATE_LIMIT_WINDOW,
            rate_limit_bucket: None,
            faults: args.faults.unwrap_or_default(),
            seed: args.seed,
            behaviour: Behaviour {
                previous_owner: args.after_transfer,
                user_org_admin: args.user_org_admin,
                page_cap: args.page_cap,
            },
        }),
    };
    match outcome {
        Ok(()) => Outcome::Success,
        Err(message) => {
            eoutln!("error: {message}");
            Outcome::Failure
        }
    }
}

fn seed(args: SeedArgs) -> Result<(), String> {
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .date();
    let report = sandbox::seed(
        &Storage::File(args.db.clone()),
        &SeedOptions {
            organizations: args.orgs,
            seed: args.seed,
            today,
        },
    )
    .map_err(|error| error.to_string())?;
    outln!(
        "seeded `{}` with {} organizations and {} users",
        args.db.display(),
        report.organizations,
        report.users
    );
    Ok(())
}

fn serve(config: Config) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the runtime: {error}"))?;
    runtime.block_on(async {
        let tokens = config.effective_tokens();
        let storage = config.storage.describe();
        let rate_limit = config
            .rate_limit_per_minute
            .map_or("off".to_owned(), |n| format!("{n}/min per token"));
        let faults = config.faults.to_string();
        let readings = if config.behaviour == Behaviour::default() {
            String::new()
        } else {
            format!("; readings {}", config.behaviour)
        };
        let default_token = config.tokens.is_empty();
        let running = sandbox::start(config)
            .await
            .map_err(|error| error.to_string())?;
        let token_note = if default_token {
            format!("the default token `{}` (sa)", sandbox::DEFAULT_TOKEN)
        } else {
            let roles: Vec<&str> = tokens.iter().map(|t| t.role.word()).collect();
            let plural = if tokens.len() == 1 { "" } else { "s" };
            format!("{} token{plural} ({})", tokens.len(), roles.join(", "))
        };
        let stop = stop_signal();
        outln!(
            "charter sandbox listening on {} with database {storage}; accepting {token_note}; \
             rate limit {rate_limit}; faults {faults}{readings}; Ctrl-C stops it",
            running.url()
        );
        super::out::flush();
        stop.await;
        eoutln!("stopping: finishing requests in flight");
        running
            .shutdown()
            .await
            .map_err(|error| error.to_string())?;
        eoutln!("stopped; every committed change is in the database");
        Ok(())
    })
}

/// Ctrl-C, or SIGTERM where there is one. The handlers are installed when this is called, not
/// when the future is first polled, so a signal sent right after the startup line is not lost.
fn stop_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            match (interrupt, terminate) {
                (Ok(mut interrupt), Ok(mut terminate)) => {
                    tokio::select! {
                        _ = interrupt.recv() => {}
                        _ = terminate.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
