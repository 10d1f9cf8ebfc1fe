//! A real `openclaw-gateway` process loading the real plugin library.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::config::{ROUTE_PATH, SECRET};
use crate::dirs::{gateway_bin, TempDir};
use crate::http::{http, post_json, Client, Response};
use crate::process::{Output, Process};

/// The line the Gateway prints on stdout once it serves, then the address.
const LISTENING: &str = "listening on http://";
/// How long starting, exiting and an awaited log line may take.
const LIMIT: Duration = Duration::from_secs(30);

/// A running Gateway process; dropping it kills it (SIGKILL).
pub struct Gateway {
    // Declared first so that it is dropped (the process killed) before the
    // state dir is removed.
    process: Process,
    stderr: Output,
    stdout: Output,
    pub addr: SocketAddr,
    pub dir: TempDir,
}

/// What a Gateway printed before it exited on its own.
pub struct Exited {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Gateway {
    pub fn start(config: &Value) -> Gateway {
        Self::start_in(TempDir::new("gw"), config, &[])
    }

    /// A Gateway on the embedded store even when the suite runs on
    /// PostgreSQL (`OPENCLAW_TEST_STORE=postgres`): for tests about the
    /// embedded store or the in-process limits. Restarts in its directory
    /// stay on it.
    pub fn start_embedded(config: &Value) -> Gateway {
        Self::start_in(TempDir::new("gw").embedded(), config, &[])
    }

    pub fn start_with_env(config: &Value, env: &[(&str, &str)]) -> Gateway {
        Self::start_in(TempDir::new("gw"), config, env)
    }

    /// Starts a Gateway whose state lives in `dir` (reused across restarts)
    /// and returns once it has printed the address it listens on.
    pub fn start_in(dir: TempDir, config: &Value, env: &[(&str, &str)]) -> Gateway {
        let config = crate::cluster::test_store(&dir, config);
        let config_path = dir.write("gateway.json5", &config.to_string());
        let mut process = Process::spawn(
            command(&config_path, dir.path(), env)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        let (stdout, stderr) = (process.stdout(), process.stderr());
        // The webhook listener's line starts with it (the admin listener's,
        // printed before it, says `admin listening on ...`).
        let Some(line) = stdout.wait_for_start(LISTENING, LIMIT) else {
            process.kill();
            stderr.wait_closed(LIMIT);
            panic!(
                "the gateway did not start listening; stderr:\n{}",
                stderr.text()
            );
        };
        let addr = line[line.find(LISTENING).unwrap() + LISTENING.len()..]
            .parse()
            .unwrap_or_else(|e| panic!("{line:?}: {e}"));
        Gateway {
            process,
            stderr,
            stdout,
            addr,
            dir,
        }
    }

    /// Runs the Gateway expecting it to exit by itself (bad config, `--check`).
    pub fn run_to_exit(config: &Value, args: &[&str]) -> Exited {
        let dir = TempDir::new("exit");
        let config_path = dir.write("gateway.json5", &config.to_string());
        Self::run_file_to_exit(&config_path, dir.path(), args)
    }

    pub fn run_file_to_exit(config_path: &Path, state: &Path, args: &[&str]) -> Exited {
        let mut process = Process::spawn(
            command(config_path, state, &[])
                .args(args)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        );
        let (stdout, stderr) = (process.stdout(), process.stderr());
        let status = process.wait(LIMIT).expect("the gateway did not exit");
        assert!(stdout.wait_closed(LIMIT) && stderr.wait_closed(LIMIT));
        Exited {
            status,
            stdout: stdout.text(),
            stderr: stderr.text(),
        }
    }

    /// Everything the Gateway has logged (stderr) so far.
    pub fn logs(&self) -> String {
        self.stderr.text()
    }

    /// Everything the Gateway has printed on stdout so far (its listening
    /// lines).
    pub fn printed(&self) -> String {
        self.stdout.text()
    }

    /// Waits for the Gateway to log a line containing `needle` and returns
    /// that line. Plugin records (actix's included) come through the same
    /// logger.
    pub fn wait_for_log(&self, needle: &str) -> String {
        self.stderr.wait_for(needle, LIMIT).unwrap_or_else(|| {
            panic!(
                "the gateway did not log {needle:?}; stderr:\n{}",
                self.logs()
            )
        })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The Gateway's resident memory (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("/proc/<pid>/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse().ok())
            .expect("VmRSS in /proc/<pid>/status")
    }

    /// The Gateway's user plus system CPU time so far (from
    /// `/proc/<pid>/stat`, in clock ticks of 10 ms).
    pub fn cpu_time(&self) -> Duration {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the command name: state is the first, utime the 12th.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .map_or("", |(_, rest)| rest)
            .split_whitespace()
            .collect();
        let field = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // USER_HZ is 100 on Linux.
        Duration::from_millis((field(11) + field(12)) * 10)
    }

    /// Sends a signal to the Gateway.
    pub fn signal(&self, sig: i32) {
        self.process.signal(sig);
    }

    /// Waits for the process to exit, and for the last of its log.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let status = self
            .process
            .wait(limit)
            .expect("the gateway did not exit in time");
        self.stderr.wait_closed(LIMIT);
        status
    }

    /// SIGTERM, waits for the exit, then returns the state directory for a
    /// restart.
    pub fn stop(mut self) -> TempDir {
        self.signal(libc::SIGTERM);
        self.wait(LIMIT);
        std::mem::replace(&mut self.dir, TempDir::none())
    }

    /// SIGKILL, then returns the state directory for a restart.
    pub fn kill9(mut self) -> TempDir {
        self.process.kill();
        std::mem::replace(&mut self.dir, TempDir::none())
    }

    /// POSTs `body` to `path` with `headers`.
    pub fn post(&self, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
        self.request("POST", path, headers, body)
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        http(self.addr, method, path, headers, body)
    }

    /// POSTs an action to the standard route with the right secret.
    pub fn action(&self, body: Value) -> Response {
        self.post_json(ROUTE_PATH, SECRET, &[], &body.to_string())
    }

    /// POSTs JSON `body` to `path`, authenticated with `secret`, with
    /// `extra` headers, on a fresh connection.
    pub fn post_json(
        &self,
        path: &str,
        secret: &str,
        extra: &[(&str, &str)],
        body: &str,
    ) -> Response {
        let mut headers = vec![("connection", "close")];
        headers.extend_from_slice(extra);
        Client::new(self.addr).send(&post_json(path, secret, &headers, body))
    }

    /// Creates a flow and returns its view.
    pub fn create_flow(&self, goal: &str) -> Value {
        let res = self.action(json!({"action": "create_flow", "goal": goal}));
        assert_eq!(res.status, 200, "{}", res.text);
        res.json["result"]["flow"].clone()
    }
}

fn command(config: &Path, state: &Path, env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(gateway_bin());
    cmd.arg("--config")
        .arg(config)
        .arg("--state-dir")
        .arg(state.join("state"))
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}
