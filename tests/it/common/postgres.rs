//! A real PostgreSQL server for the tests, started by them on loopback from the binaries of
//! the machine (`/usr/lib/postgresql/*/bin`): one per test process, shared by its tests, each
//! test with a database of its own. PostgreSQL refuses to run as root, so as root it runs as
//! the `postgres` user. It ends with the test process (a watcher stops it and deletes its
//! data).
//!
//! Connections from loopback are trusted, except the user [`PASSWORD_USER`], who must give
//! [`PASSWORD`]: the tests of the password path use it.
//!
//! Without PostgreSQL the tests that need it fail, saying how to install it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A user who must give a password.
pub const PASSWORD_USER: &str = "charter_secret";
/// Their password: no test output may ever contain it.
pub const PASSWORD: &str = "pw-Xq83-never-shown";

pub struct Server {
    pub port: u16,
    pub dir: PathBuf,
}

static SERVER: OnceLock<Server> = OnceLock::new();

/// The shared server, started on first use.
pub fn server() -> &'static Server {
    SERVER.get_or_init(start)
}

/// A new empty database on the shared server; its URL (as the trusted superuser, with
/// `user` = `postgres`).
pub fn database(name: &str) -> String {
    let server = server();
    let name = format!("t_{}_{}", std::process::id(), name.replace('-', "_")).to_lowercase();
    admin(&format!("DROP DATABASE IF EXISTS {name}"));
    admin(&format!("CREATE DATABASE {name}"));
    admin(&format!("GRANT ALL ON DATABASE {name} TO {PASSWORD_USER}"));
    admin_in(
        &name,
        &format!("GRANT ALL ON SCHEMA public TO {PASSWORD_USER}"),
    );
    format!("postgres://postgres@127.0.0.1:{}/{name}", server.port)
}

/// The same database, as the user who needs a password (without it in the URL).
pub fn with_password_user(url: &str) -> String {
    url.replacen(
        "postgres://postgres@",
        &format!("postgres://{PASSWORD_USER}@"),
        1,
    )
}

/// Runs a statement as the superuser in the `postgres` database.
pub fn admin(sql: &str) {
    admin_in("postgres", sql);
}

/// Runs a statement as the superuser in database `db`.
pub fn admin_in(db: &str, sql: &str) {
    let server = server();
    let mut client = postgres::Client::connect(
        &format!(
            "host=127.0.0.1 port={} user=postgres dbname={db}",
            server.port
        ),
        postgres::NoTls,
    )
    .unwrap();
    client.batch_execute(sql).unwrap();
}

fn binaries() -> PathBuf {
    let found = std::fs::read_dir("/usr/lib/postgresql")
        .ok()
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("initdb").exists() && bin.join("postgres").exists())
        .max();
    found.unwrap_or_else(|| {
        panic!(
            "these tests need a PostgreSQL server and found none in /usr/lib/postgresql/*/bin: \
             install it with `apt-get install postgresql-15` (or `apt-get install postgresql`; \
             `.ci/run` does it when it is missing)"
        )
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `program args…`, as the `postgres` user when this process is root.
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start() -> Server {
    let bin = binaries();
    let dir = std::env::temp_dir().join(format!("charter-postgres-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "cannot give {} to postgres",
            dir.display()
        );
    }
    let data = dir.join("data");
    let initdb = as_server_user(&bin.join("initdb"))
        .args([
            "-D",
            data.to_str().unwrap(),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
        ])
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert!(
        initdb.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&initdb.stderr)
    );
    // Loopback is trusted, but for the password user.
    std::fs::write(
        data.join("pg_hba.conf"),
        format!(
            "local all all trust\n\
             host all {PASSWORD_USER} 127.0.0.1/32 scram-sha-256\n\
             host all all 127.0.0.1/32 trust\n"
        ),
    )
    .unwrap();
    let port = free_port();
    // The server, and a watcher that stops it when this test process is gone.
    let script = format!(
        "'{postgres}' -D '{data}' -p {port} -k '{dir}' -c listen_addresses=127.0.0.1 \
         -c fsync=off -c max_connections=200 >'{dir}/log' 2>&1 & server=$!; \
         while [ -d /proc/{pid} ] && kill -0 $server 2>/dev/null; do sleep 1; done; \
         kill -INT $server 2>/dev/null; wait $server; rm -rf '{dir}'",
        postgres = bin.join("postgres").display(),
        data = data.display(),
        dir = dir.display(),
        pid = std::process::id(),
    );
    #[expect(
        clippy::zombie_processes,
        reason = "the watcher outlives the tests on purpose: it stops the server when this process ends"
    )]
    let _watcher = as_server_user(Path::new("/bin/sh"))
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let connected = postgres::Client::connect(
            &format!("host=127.0.0.1 port={port} user=postgres dbname=postgres"),
            postgres::NoTls,
        );
        match connected {
            Ok(mut client) => {
                client
                    .batch_execute(&format!(
                        "CREATE ROLE {PASSWORD_USER} LOGIN PASSWORD '{PASSWORD}'"
                    ))
                    .unwrap();
                break;
            }
            Err(error) if Instant::now() > deadline => panic!(
                "the test PostgreSQL server did not start: {error}\n{}",
                std::fs::read_to_string(dir.join("log")).unwrap_or_default()
            ),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    Server { port, dir }
}
