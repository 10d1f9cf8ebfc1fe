//! A callback receiver on 127.0.0.1: a small threaded HTTP/1.1 server
//! (keep-alive, `Content-Length` bodies) that records every delivery,
//! verifies its Standard Webhooks signature with an independent
//! implementation (the `standardwebhooks` crate) against every configured
//! secret, and answers as the test tells it to.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub path: String,
    pub headers: HashMap<String, String>,
    pub raw: Vec<u8>,
    pub body: Value,
    /// `webhook-id`.
    pub id: String,
    /// The how-many-th request with this `webhook-id` (1-based).
    pub attempt: usize,
    /// Whether the signature verified with every configured secret.
    pub verified: bool,
    pub at: Instant,
}

impl Delivery {
    pub fn kind(&self) -> &str {
        self.body["type"].as_str().unwrap_or("")
    }

    pub fn flow_id(&self) -> &str {
        self.body["data"]["flow"]["flowId"].as_str().unwrap_or("")
    }

    pub fn revision(&self) -> u64 {
        self.body["data"]["flow"]["revision"]
            .as_u64()
            .unwrap_or(u64::MAX)
    }
}

/// How to answer one request.
#[derive(Debug, Clone)]
pub enum Reply {
    Status(u16),
    /// A status with extra headers (e.g. `Retry-After`).
    With(u16, Vec<(String, String)>),
    /// Never answer; hold the connection until the receiver stops.
    Hang,
}

type Respond = Box<dyn FnMut(&Delivery) -> Reply + Send>;

struct State {
    deliveries: Vec<Delivery>,
    /// Requests answered in counting mode, and when the last arrived.
    counted: usize,
    last: Option<Instant>,
    seen: HashMap<String, usize>,
    respond: Respond,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
    stop: AtomicBool,
    secrets: Vec<String>,
    /// Only count requests and answer 200 (for benchmarks): nothing is
    /// parsed, verified or kept.
    counting: bool,
}

pub struct Receiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Starts answering 200 to everything; signatures are checked against
    /// each of `secrets`.
    pub fn start(secrets: &[&str]) -> Receiver {
        Self::start_with(secrets, false)
    }

    /// A receiver that only counts requests and answers 200 at once.
    pub fn counting() -> Receiver {
        Self::start_with(&[], true)
    }

    /// Requests counted so far, and when the last one arrived.
    pub fn count(&self) -> (usize, Option<Instant>) {
        let state = self.shared.state.lock().unwrap();
        (state.counted, state.last)
    }

    fn start_with(secrets: &[&str], counting: bool) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                deliveries: Vec::new(),
                counted: 0,
                last: None,
                seen: HashMap::new(),
                respond: Box::new(|_| Reply::Status(200)),
            }),
            changed: Condvar::new(),
            stop: AtomicBool::new(false),
            secrets: secrets.iter().map(|s| s.to_string()).collect(),
            counting,
        });
        let accept_shared = Arc::clone(&shared);
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if accept_shared.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&accept_shared);
                std::thread::spawn(move || serve(stream, shared));
            }
        });
        Receiver {
            addr,
            shared,
            accept: Some(accept),
        }
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers from now on with `f`.
    pub fn respond_with(&self, f: impl FnMut(&Delivery) -> Reply + Send + 'static) {
        self.shared.state.lock().unwrap().respond = Box::new(f);
        // Wake held connections, so a `Hang` can end.
        self.shared.changed.notify_all();
    }

    pub fn deliveries(&self) -> Vec<Delivery> {
        self.shared.state.lock().unwrap().deliveries.clone()
    }

    /// Waits (up to `limit`) until `done` holds for the deliveries so far,
    /// and returns them; panics with what arrived when it does not.
    pub fn wait_until(&self, limit: Duration, done: impl Fn(&[Delivery]) -> bool) -> Vec<Delivery> {
        let deadline = Instant::now() + limit;
        let mut state = self.shared.state.lock().unwrap();
        loop {
            if done(&state.deliveries) {
                return state.deliveries.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let got: Vec<String> = state
                    .deliveries
                    .iter()
                    .map(|d| format!("{} {} #{}", d.id, d.kind(), d.attempt))
                    .collect();
                panic!("the receiver did not get what was expected; got: {got:#?}");
            }
            state = self.shared.changed.wait_timeout(state, left).unwrap().0;
        }
    }

    /// Waits until at least `n` deliveries arrived.
    pub fn wait_for(&self, n: usize, limit: Duration) -> Vec<Delivery> {
        self.wait_until(limit, |d| d.len() >= n)
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.shared.changed.notify_all();
        // Unblock `accept`.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
    }
}

fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let Some((path, headers, raw)) = read_request(&mut reader) else {
            return;
        };
        let reply = record(&shared, path, headers, raw);
        let (status, extra) = match reply {
            Reply::Status(s) => (s, Vec::new()),
            Reply::With(s, h) => (s, h),
            Reply::Hang => {
                let mut state = shared.state.lock().unwrap();
                while !shared.stop.load(Ordering::SeqCst) {
                    state = shared
                        .changed
                        .wait_timeout(state, Duration::from_millis(200))
                        .unwrap()
                        .0;
                }
                return;
            }
        };
        let mut head = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\n");
        for (k, v) in extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n{}");
        if writer.write_all(head.as_bytes()).is_err() {
            return;
        }
    }
}

type Request = (String, HashMap<String, String>, Vec<u8>);

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let path = line.split(' ').nth(1)?.to_owned();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    let len: usize = headers.get("content-length")?.parse().ok()?;
    let mut raw = vec![0; len];
    reader.read_exact(&mut raw).ok()?;
    Some((path, headers, raw))
}

fn verify(secrets: &[String], headers: &HashMap<String, String>, raw: &[u8]) -> bool {
    let mut map = http::HeaderMap::new();
    for name in ["webhook-id", "webhook-timestamp", "webhook-signature"] {
        let Some(v) = headers.get(name).and_then(|v| v.parse().ok()) else {
            return false;
        };
        map.insert(name, v);
    }
    !secrets.is_empty()
        && secrets.iter().all(|s| {
            standardwebhooks::Webhook::new(s)
                .map(|w| w.verify(raw, &map).is_ok())
                .unwrap_or(false)
        })
}

fn record(shared: &Shared, path: String, headers: HashMap<String, String>, raw: Vec<u8>) -> Reply {
    if shared.counting {
        let mut state = shared.state.lock().unwrap();
        state.counted += 1;
        state.last = Some(Instant::now());
        return Reply::Status(200);
    }
    let verified = verify(&shared.secrets, &headers, &raw);
    let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let id = headers.get("webhook-id").cloned().unwrap_or_default();
    let mut state = shared.state.lock().unwrap();
    let attempt = {
        let n = state.seen.entry(id.clone()).or_insert(0);
        *n += 1;
        *n
    };
    let delivery = Delivery {
        path,
        headers,
        raw,
        body,
        id,
        attempt,
        verified,
        at: Instant::now(),
    };
    let reply = (state.respond)(&delivery);
    state.deliveries.push(delivery);
    shared.changed.notify_all();
    reply
}
