//! Test harness: temp dirs, a real Gateway process with the real plugin
//! library, and a small HTTP/1.1 client over loopback TCP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub const SECRET: &str = "shared-secret-0123456789";
pub const SESSION: &str = "agent:main:main";
pub const ROUTE_PATH: &str = "/plugins/webhooks/zapier";

/// `target/<profile>`, found from this test binary (`target/<profile>/deps/it-…`).
pub fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_path_buf()
}

/// Where the plugin library is. `cargo test` leaves the freshly built
/// `.so` in `deps/` (only `cargo build` copies it up a level, and that copy
/// may be stale), so `deps/` comes first.
pub fn plugin_dirs() -> Vec<PathBuf> {
    vec![target_dir().join("deps"), target_dir()]
}

pub fn gateway_bin() -> PathBuf {
    let bin = target_dir().join("openclaw-gateway");
    assert!(
        bin.is_file(),
        "{} is missing: run the tests with `cargo test --workspace`",
        bin.display()
    );
    bin
}

/// A directory removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> Self {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir = std::env::temp_dir().join(format!(
            "openclaw-it-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The standard route of the anchor's tests, with `extra` merged in.
pub fn route(extra: Value) -> Value {
    let mut r = json!({"path": ROUTE_PATH, "sessionKey": SESSION, "secret": SECRET});
    merge(&mut r, extra);
    r
}

pub fn merge(base: &mut Value, extra: Value) {
    if let (Value::Object(b), Value::Object(e)) = (base, extra) {
        for (k, v) in e {
            b.insert(k, v);
        }
    }
}

/// A whole Gateway config on an ephemeral loopback port, with the
/// webhooks plugin loaded from the build directory.
pub fn gateway_config(plugin_config: Value, extra: Value) -> Value {
    let mut config = json!({
        "gateway": {"bind": "127.0.0.1", "port": 0},
        "plugins": {
            "load": {"paths": plugin_dirs()},
            "entries": {"webhooks": {"enabled": true, "config": plugin_config}}
        }
    });
    merge(&mut config, extra);
    config
}

/// The default setup: one route `zapier` on [`ROUTE_PATH`].
pub fn default_config() -> Value {
    gateway_config(json!({"routes": {"zapier": route(json!({}))}}), json!({}))
}

/// A running Gateway process.
pub struct Gateway {
    pub addr: SocketAddr,
    child: Option<Child>,
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

    pub fn start_with_env(config: &Value, env: &[(&str, &str)]) -> Gateway {
        Self::start_in(TempDir::new("gw"), config, env)
    }

    /// Starts a Gateway whose state lives in `dir` (reused across restarts).
    pub fn start_in(dir: TempDir, config: &Value, env: &[(&str, &str)]) -> Gateway {
        let config_path = dir.write("gateway.json5", &config.to_string());
        let mut child = command(&config_path, dir.path(), env)
            .stdout(Stdio::piped())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(dir.path().join("stderr.log"))
                    .unwrap(),
            ))
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(a) = line.strip_prefix("listening on http://") {
                        break a.parse().unwrap();
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let logs =
                        std::fs::read_to_string(dir.path().join("stderr.log")).unwrap_or_default();
                    panic!("gateway did not start listening; stderr:\n{logs}");
                }
            }
        };
        Gateway {
            addr,
            child: Some(child),
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
        let mut child = command(config_path, state, &[])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let status =
            wait_timeout(&mut child, Duration::from_secs(30)).expect("gateway did not exit");
        let mut stdout = String::new();
        let mut stderr = String::new();
        child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        Exited {
            status,
            stdout,
            stderr,
        }
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    /// Sends a signal to the Gateway.
    pub fn signal(&self, sig: i32) {
        let pid = self.child.as_ref().unwrap().id() as i32;
        // SAFETY: plain kill(2) on our own child.
        #[allow(unsafe_code)]
        let rc = unsafe { libc::kill(pid, sig) };
        assert_eq!(rc, 0);
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self, limit: Duration) -> ExitStatus {
        let child = self.child.as_mut().unwrap();
        let status = wait_timeout(child, limit).expect("gateway did not exit in time");
        self.child = None;
        status
    }

    /// SIGKILL, then returns the state directory for a restart.
    pub fn kill9(mut self) -> TempDir {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        std::mem::replace(&mut self.dir, TempDir::new("dropped"))
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
        self.post(
            ROUTE_PATH,
            &[
                ("content-type", "application/json"),
                ("authorization", &format!("Bearer {SECRET}")),
            ],
            body.to_string().as_bytes(),
        )
    }

    /// Creates a flow and returns its view.
    pub fn create_flow(&self, goal: &str) -> Value {
        let res = self.action(json!({"action": "create_flow", "goal": goal}));
        assert_eq!(res.status, 200, "{}", res.text);
        res.json["result"]["flow"].clone()
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
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

fn wait_timeout(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub text: String,
    /// The body as JSON (`Null` when it is not JSON).
    pub json: Value,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request on a fresh connection and reads the response to EOF.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    let has_length = headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("content-length"));
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_length {
        req.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    read_response(&mut stream)
}

/// Starts an authenticated JSON POST to the standard route on a fresh
/// connection: the head (with `framing` headers such as
/// `content-length: 50\r\n`) and the first `body` bytes, leaving the rest
/// of the request to the caller.
pub fn begin_request(addr: SocketAddr, framing: &str, body: &[u8]) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    write!(
        stream,
        "POST {ROUTE_PATH} HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\nauthorization: Bearer {SECRET}\r\n{framing}\r\n"
    )
    .unwrap();
    stream.write_all(body).unwrap();
    stream
}

/// Reads a whole response from a stream whose request was already sent.
pub fn read_response(stream: &mut TcpStream) -> Response {
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    parse_response(&raw)
}

pub fn parse_response(raw: &[u8]) -> Response {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no response: {text:?}"));
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        text: body.to_owned(),
        json: serde_json::from_str(body).unwrap_or(Value::Null),
    }
}

/// The JSON headers of a request authenticated with [`SECRET`].
pub fn authed() -> Vec<(&'static str, String)> {
    vec![
        ("content-type", "application/json".to_owned()),
        ("authorization", format!("Bearer {SECRET}")),
    ]
}

/// Borrows a header list built with owned values.
pub fn hdrs<'a>(list: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    list.iter().map(|(k, v)| (*k, v.as_str())).collect()
}
