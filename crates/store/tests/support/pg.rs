//! A private PostgreSQL cluster for tests: `initdb` into a fresh temporary directory,
//! `pg_ctl start` on a free port of 127.0.0.1 with the Unix socket in that directory, and a
//! shell watchdog that stops the server and removes the directory once the test process is
//! gone (statics are never dropped, and a crashed test must not leak a server). Never the
//! machine's own server, even when one answers on 5432.
//!
//! Standard library only, so that the store's tests and the API tests (which include this
//! file by path) share it. Debian's `postgresql` package provides the binaries
//! (`/usr/lib/postgresql/<version>/bin`, or `PG_BIN`); `scripts/test` installs it. initdb
//! refuses to run as root, so as root every server command runs as the `postgres` user.
#![allow(dead_code)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

/// The superuser that initdb creates; trust authentication on loopback and the socket.
pub const PG_USER: &str = "rolegate";

/// One running cluster. Dropping it stops the server and removes its directory.
#[derive(Debug)]
pub struct PgCluster {
    pub port: u16,
    dir: PathBuf,
    bin: PathBuf,
    /// Prefix of every server command: `runuser -u postgres --` when running as root.
    runas: Vec<String>,
    fsync: bool,
    /// More `-c name=value` server options.
    extra: String,
    watchdog: Mutex<Option<Child>>,
}

/// The cluster every test of this binary shares (one schema per test), started on first use.
/// Panics (failing the test) when PostgreSQL is not installed.
pub fn shared_cluster() -> &'static PgCluster {
    static CLUSTER: OnceLock<Result<PgCluster, String>> = OnceLock::new();
    match CLUSTER.get_or_init(|| PgCluster::start(false)) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

/// A fresh, unique schema on the shared cluster: the store URL for one test.
pub fn pg_url(test: &str) -> String {
    let cluster = shared_cluster();
    let schema = unique_schema(test);
    cluster.create_schema(&schema);
    cluster.url(&schema)
}

/// A schema name unique in this process and across processes.
pub fn unique_schema(test: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let clean: String = test
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(24)
        .collect::<String>()
        .to_ascii_lowercase();
    format!(
        "t{}_{}_{clean}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn pg_bin() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var("PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .map_err(|_| no_pg())?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin).ok_or_else(no_pg)
}

fn no_pg() -> String {
    "the PostgreSQL tests need Debian's postgresql package (scripts/test installs it), or \
     PG_BIN set to a directory holding initdb and pg_ctl"
        .to_owned()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> Result<u16, String> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    let port = l.local_addr().map_err(|e| e.to_string())?.port();
    if port == 5432 {
        return Err("refusing to use the default PostgreSQL port".into());
    }
    Ok(port)
}

fn describe(what: &str, out: &Output) -> String {
    format!(
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

const WATCHDOG: &str = r#"
# $1 test pid, $2 cluster dir, $3.. the pg_ctl command prefix
pid="$1"; dir="$2"; shift 2
while kill -0 "$pid" 2>/dev/null && [ -d "$dir" ]; do sleep 0.5; done
if [ -d "$dir" ]; then
  "$@" -D "$dir/data" stop -m immediate >/dev/null 2>&1
  rm -rf "$dir"
fi
"#;

impl PgCluster {
    /// initdb and start a new cluster. `fsync = false` is for speed (a process crash still
    /// loses nothing, an OS crash could); the durability tests keep it on.
    pub fn start(fsync: bool) -> Result<Self, String> {
        Self::start_with(fsync, |_| Ok(String::new()))
    }

    /// [`start`](Self::start), with `configure(cluster_dir)` run after initdb: it may write
    /// files there (they are then handed to the server's user) and returns extra server
    /// options such as `-c ssl=on`.
    pub fn start_with(
        fsync: bool,
        configure: impl FnOnce(&Path) -> Result<String, String>,
    ) -> Result<Self, String> {
        static N: AtomicU64 = AtomicU64::new(0);
        let bin = pg_bin()?;
        let runas: Vec<String> = if is_root() {
            ["runuser", "-u", "postgres", "--"]
                .map(String::from)
                .to_vec()
        } else {
            Vec::new()
        };
        let dir = std::env::temp_dir().join(format!(
            "rolegate-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let mut cluster = Self {
            port: 0,
            dir,
            bin,
            runas,
            fsync,
            extra: String::new(),
            watchdog: Mutex::new(None),
        };
        // The watchdog runs as this user, so that it can remove the directory.
        let watchdog = Command::new("bash")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("watchdog")
            .arg(std::process::id().to_string())
            .arg(&cluster.dir)
            .args(&cluster.runas)
            .arg(cluster.bin.join("pg_ctl"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot spawn the PostgreSQL watchdog: {e}"))?;
        *cluster.watchdog.lock().unwrap_or_else(|e| e.into_inner()) = Some(watchdog);
        cluster.hand_over()?;
        let out = cluster
            .command("initdb")?
            .arg("-D")
            .arg(cluster.data())
            .args(["-U", PG_USER, "-A", "trust", "-E", "UTF8", "--locale=C"])
            .args(["--no-sync", "--no-instructions"])
            .output()
            .map_err(|e| format!("cannot run initdb: {e}"))?;
        if !out.status.success() {
            return Err(describe("initdb", &out));
        }
        cluster.extra = configure(&cluster.dir)?;
        cluster.hand_over()?;
        let mut last = String::new();
        for _ in 0..3 {
            cluster.port = free_port()?;
            match cluster.pg_ctl_start() {
                Ok(()) => return Ok(cluster),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Gives the cluster directory to the server's user (when we are root).
    fn hand_over(&self) -> Result<(), String> {
        if self.runas.is_empty() {
            return Ok(());
        }
        let out = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&self.dir)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(())
        } else {
            Err(describe("chown of the cluster directory", &out))
        }
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A server binary, run as the postgres user when we are root, in the cluster directory
    /// (the postgres user may not be allowed into the current one).
    fn command(&self, tool: &str) -> Result<Command, String> {
        let path = self.bin.join(tool);
        let mut cmd = match self.runas.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&path);
                c
            }
            None => Command::new(&path),
        };
        cmd.current_dir(&self.dir).stdin(Stdio::null());
        Ok(cmd)
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync={} -c max_connections=300 \
             -c shared_buffers=32MB -c log_min_messages=fatal {}",
            self.port,
            self.dir.display(),
            if self.fsync { "on" } else { "off" },
            self.extra
        );
        let out = self
            .command("pg_ctl")?
            .arg("-D")
            .arg(self.data())
            .args(["-w", "-t", "30", "-l"])
            .arg(self.dir.join("server.log"))
            .args(["-o", &opts, "start"])
            .output()
            .map_err(|e| format!("cannot run pg_ctl: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            let log = std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default();
            Err(format!(
                "{}\nserver log:\n{log}",
                describe("pg_ctl start", &out)
            ))
        }
    }

    /// PostgreSQL's crash: `pg_ctl stop -m immediate` (no checkpoint, clients cut off).
    pub fn crash(&self) {
        let out = self
            .command("pg_ctl")
            .and_then(|mut c| {
                c.arg("-D")
                    .arg(self.data())
                    .args(["-w", "stop", "-m", "immediate"])
                    .output()
                    .map_err(|e| e.to_string())
            })
            .unwrap_or_else(|e| panic!("pg_ctl stop: {e}"));
        assert!(out.status.success(), "{}", describe("pg_ctl stop", &out));
    }

    /// Starts the server again on the same port after [`crash`](Self::crash) (crash recovery
    /// replays the WAL).
    pub fn restart(&self) {
        if let Err(e) = self.pg_ctl_start() {
            panic!("{e}");
        }
    }

    /// The store URL for `schema` (which must exist: see [`create_schema`]).
    pub fn url(&self, schema: &str) -> String {
        format!(
            "postgres://{PG_USER}@127.0.0.1:{}/postgres?options=-csearch_path%3D{schema}",
            self.port
        )
    }

    /// Runs SQL through psql over TCP and returns its unaligned output.
    pub fn psql(&self, sql: &str) -> String {
        let out = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
            ])
            .args([
                "-p",
                &self.port.to_string(),
                "-U",
                PG_USER,
                "-d",
                "postgres",
                "-c",
                sql,
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run psql: {e}"));
        assert!(out.status.success(), "{}", describe(sql, &out));
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub fn create_schema(&self, schema: &str) {
        self.psql(&format!("CREATE SCHEMA {schema}"));
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if let Ok(mut c) = self.command("pg_ctl") {
            let _ = c
                .arg("-D")
                .arg(self.data())
                .args(["stop", "-m", "immediate"])
                .output();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(mut w) = self
            .watchdog
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            // It notices the directory is gone within half a second.
            let _ = w.wait();
        }
    }
}
