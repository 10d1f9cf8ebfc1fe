//! The delivery workers: one thread per route with callbacks, each with its
//! own actix system and HTTP client, so a slow or dead receiver delays only
//! its own route.
//!
//! A worker claims due events from the Gateway's outbox (leased for the
//! attempt's timeout plus a margin), sends at most [`MAX_IN_FLIGHT`] at
//! once, and settles each attempt. It waits, without polling, for the
//! first of: an attempt ending, the Gateway's wake-up after a commit that
//! added events, or the next due time the Gateway reported.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{RResult, RStr, RString, RVec};
use awc::error::SendRequestError;
use awc::http::header::{CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use openclaw_ffi::runtime::{
    BoundTaskFlowBox, EventOutcome, EventWaker, EventWaker_TO, OutboxEvent, Settlement,
};
use parking_lot::Mutex;
use tokio::sync::mpsc::{self, UnboundedReceiver, UnboundedSender};

use super::event::{self, webhook_id};
use super::retry::{self, Attempt};
use super::sign::{signature_header, SigningKey};
use super::CallbackUrl;

/// Attempts in flight per route.
pub const MAX_IN_FLIGHT: usize = 32;
/// How long past its timeout a claimed event stays leased to its attempt.
const LEASE_MARGIN: Duration = Duration::from_secs(30);
/// Most response body read (and discarded) from a receiver.
pub const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// Pause before asking the Gateway again after it failed to answer.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// Where and how one route's events are delivered, resolved at start.
#[derive(Debug)]
pub struct Target {
    pub route_id: String,
    pub url: CallbackUrl,
    pub keys: Vec<SigningKey>,
    pub timeout: Duration,
    pub max_attempts: u32,
    pub retry_schedule: Vec<Duration>,
}

enum Msg {
    /// The Gateway committed events for this route.
    Wake,
    /// An attempt ended.
    Done(Settlement),
    Stop,
}

/// Runs on the Gateway's writer thread: it only flags and sends.
struct Waker {
    pending: Arc<AtomicBool>,
    tx: UnboundedSender<Msg>,
}

impl EventWaker for Waker {
    fn wake(&self) {
        // Nothing may unwind into the Gateway.
        let _ = catch_unwind(AssertUnwindSafe(|| {
            if !self.pending.swap(true, Ordering::AcqRel) {
                let _ = self.tx.send(Msg::Wake);
            }
        }));
    }
}

/// The running workers.
pub struct Dispatcher {
    workers: Mutex<Vec<Worker>>,
}

struct Worker {
    route_id: String,
    tx: UnboundedSender<Msg>,
    thread: JoinHandle<()>,
}

impl Dispatcher {
    /// Subscribes each route to its session's flow events and starts its
    /// worker. Runs before the server serves, so no acknowledged write of
    /// the routes goes without its event.
    ///
    /// # Errors
    ///
    /// When the Gateway refuses a subscription (an older Gateway without an
    /// outbox) or a thread cannot start.
    pub fn start(routes: Vec<(Arc<Target>, Arc<BoundTaskFlowBox>)>) -> Result<Self, String> {
        let dispatcher = Dispatcher {
            workers: Mutex::new(Vec::new()),
        };
        for (target, flows) in routes {
            let (tx, rx) = mpsc::unbounded_channel();
            let pending = Arc::new(AtomicBool::new(false));
            let waker = Waker {
                pending: Arc::clone(&pending),
                tx: tx.clone(),
            };
            let subscribed = flows.subscribe_events(
                RStr::from_str(&target.route_id),
                EventWaker_TO::from_value(waker, TD_Opaque),
            );
            if let RResult::RErr(e) = subscribed {
                return Err(format!(
                    "route {}: cannot subscribe to flow events for callbacks: {}",
                    target.route_id, e.message
                ));
            }
            let route_id = target.route_id.clone();
            let done = tx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("webhooks-cb-{route_id}"))
                .spawn(move || {
                    let system = actix_web::rt::System::new();
                    system.block_on(run(target, flows, rx, done, pending));
                })
                .map_err(|e| format!("route {route_id}: cannot start the callback worker: {e}"))?;
            log::info!(target: "webhooks", "route {route_id}: callback worker started");
            dispatcher.workers.lock().push(Worker {
                route_id,
                tx,
                thread,
            });
        }
        Ok(dispatcher)
    }

    /// Stops every worker: no new attempt starts, the attempts that ended
    /// are settled, and those still running are left leased (they are sent
    /// again once the lease runs out, or when the Gateway starts again).
    /// Later calls return at once.
    pub fn stop(&self) {
        let workers = std::mem::take(&mut *self.workers.lock());
        for w in &workers {
            let _ = w.tx.send(Msg::Stop);
        }
        for w in workers {
            if w.thread.join().is_err() {
                log::error!(target: "webhooks", "route {}: the callback worker panicked", w.route_id);
            }
        }
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.stop();
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The instant of `at` (ms since the epoch), as seen now.
fn instant_of(at: u64) -> Instant {
    let now = now_ms();
    Instant::now() + Duration::from_millis(at.saturating_sub(now))
}

async fn run(
    target: Arc<Target>,
    flows: Arc<BoundTaskFlowBox>,
    mut rx: UnboundedReceiver<Msg>,
    done: UnboundedSender<Msg>,
    pending: Arc<AtomicBool>,
) {
    let client = match client(&target) {
        Ok(c) => c,
        Err(e) => {
            log::error!(target: "webhooks", "route {}: callbacks disabled: {e}", target.route_id);
            return;
        }
    };
    let scope = RString::from(target.route_id.as_str());
    let mut in_flight = 0usize;
    let mut settled: Vec<Settlement> = Vec::new();
    // Events left from before the start are due at once.
    let mut next_due: Option<Instant> = Some(Instant::now());
    let mut stopping = false;
    loop {
        if !settled.is_empty() {
            let batch = RVec::from(std::mem::take(&mut settled));
            if let RResult::RErr(e) = flows.settle_events(scope.as_rstr(), batch.clone()) {
                log::warn!(target: "webhooks", "route {}: cannot record callback attempts: {}", target.route_id, e.message);
                settled = batch.into_vec();
                next_due = Some(Instant::now() + STORE_RETRY);
            }
        }
        if stopping {
            return;
        }
        let claim = next_due.is_some_and(|at| at <= Instant::now());
        if claim && in_flight < MAX_IN_FLIGHT && settled.is_empty() {
            let now = now_ms();
            let free = MAX_IN_FLIGHT - in_flight;
            let lease_until = now.saturating_add(millis(target.timeout + LEASE_MARGIN));
            match flows.due_events(scope.as_rstr(), now, free as u32, lease_until) {
                RResult::ROk(due) => {
                    next_due = due.next_due_at.into_option().map(instant_of);
                    for e in due.events {
                        in_flight += 1;
                        actix_web::rt::spawn(deliver(
                            client.clone(),
                            Arc::clone(&target),
                            e,
                            done.clone(),
                        ));
                    }
                }
                RResult::RErr(e) => {
                    log::warn!(target: "webhooks", "route {}: cannot claim callback events: {}", target.route_id, e.message);
                    next_due = Some(Instant::now() + STORE_RETRY);
                }
            }
        }
        // Wait for a message, or the next due time while a slot is free.
        let wait_until = next_due.filter(|_| in_flight < MAX_IN_FLIGHT);
        let first = match wait_until {
            Some(at) => match tokio::time::timeout_at(at.into(), rx.recv()).await {
                Ok(msg) => msg,
                Err(_) => continue,
            },
            None => rx.recv().await,
        };
        let mut msg = first;
        loop {
            match msg {
                // Every sender is gone: nothing more can arrive.
                None => stopping = true,
                Some(Msg::Stop) => stopping = true,
                Some(Msg::Wake) => {
                    pending.store(false, Ordering::Release);
                    next_due = Some(Instant::now());
                }
                Some(Msg::Done(s)) => {
                    in_flight = in_flight.saturating_sub(1);
                    settled.push(s);
                    // A slot is free, the flow's next event may be due, and
                    // a retry changes the next due time: ask again.
                    next_due = Some(Instant::now());
                }
            }
            match rx.try_recv() {
                Ok(m) => msg = Some(m),
                Err(_) => break,
            }
        }
    }
}

fn client(target: &Target) -> Result<awc::Client, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let connector = awc::Connector::new()
        .rustls_0_23(Arc::new(tls))
        .timeout(target.timeout)
        .limit(MAX_IN_FLIGHT);
    Ok(awc::Client::builder()
        .connector(connector)
        .disable_redirects()
        .timeout(target.timeout)
        .no_default_headers()
        .add_default_header((
            USER_AGENT,
            concat!("openclaw-webhooks/", env!("CARGO_PKG_VERSION")),
        ))
        .finish())
}

/// One attempt at one event; its settlement goes back to the worker.
async fn deliver(
    client: awc::Client,
    target: Arc<Target>,
    event: OutboxEvent,
    done: UnboundedSender<Msg>,
) {
    let id = webhook_id(&event);
    let number = event.attempts.saturating_add(1);
    let result = attempt(&client, &target, &id, &event).await;
    let outcome = retry::settle(
        &result,
        number,
        target.max_attempts,
        &target.retry_schedule,
        now_ms(),
        jitter_seed(event.id, number),
    );
    let route = &target.route_id;
    let origin = &target.url.origin;
    let error = match &result {
        Attempt::Delivered => None,
        Attempt::Gone => Some("HTTP 410".to_owned()),
        Attempt::Failed { error, .. } => Some(error.clone()),
    };
    match (&outcome, &error) {
        (EventOutcome::Delivered, _) => {
            log::debug!(target: "webhooks", "route {route}: callback {id} delivered to {origin} (attempt {number})");
        }
        (EventOutcome::Gone, _) => {
            log::warn!(target: "webhooks", "route {route}: callback {id} dropped: {origin} answered 410 Gone (attempt {number})");
        }
        (EventOutcome::Dead, Some(e)) => {
            log::error!(target: "webhooks", "route {route}: callback {id} is dead after {number} attempts to {origin}; last: {e}");
        }
        (EventOutcome::Dead, None) => {
            log::error!(target: "webhooks", "route {route}: callback {id} is dead after {number} attempts to {origin}");
        }
        (EventOutcome::Retry { at }, e) => {
            let secs = at.saturating_sub(now_ms()).div_ceil(1000);
            log::warn!(
                target: "webhooks",
                "route {route}: callback {id} attempt {number}/{} to {origin} failed ({}); retrying in {secs} s",
                target.max_attempts,
                e.as_deref().unwrap_or("unknown")
            );
        }
    }
    let _ = done.send(Msg::Done(Settlement {
        id: event.id,
        outcome,
        error: error.map(RString::from).into(),
    }));
}

async fn attempt(client: &awc::Client, target: &Target, id: &str, event: &OutboxEvent) -> Attempt {
    let body = event::body(&target.route_id, event);
    let timestamp = i64::try_from(now_ms() / 1000).unwrap_or(i64::MAX);
    let signature = signature_header(&target.keys, id, timestamp, &body);
    let request = client
        .post(target.url.uri.clone())
        .timeout(target.timeout)
        .insert_header((CONTENT_TYPE, "application/json"))
        .insert_header(("webhook-id", id))
        .insert_header(("webhook-timestamp", timestamp.to_string()))
        .insert_header(("webhook-signature", signature));
    let exchange = async {
        let mut response = request.send_body(body).await.map_err(describe)?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        // Read (and drop) a bounded part of the body so the connection can
        // be reused; what it says does not matter.
        let _ = response.body().limit(MAX_RESPONSE_BYTES).await;
        Ok::<_, String>(retry::classify(
            status,
            retry_after.as_deref(),
            SystemTime::now(),
        ))
    };
    match tokio::time::timeout(target.timeout, exchange).await {
        Ok(Ok(result)) => result,
        Ok(Err(error)) => Attempt::Failed {
            error,
            retry_after: None,
        },
        Err(_) => Attempt::Failed {
            error: "timed out".to_owned(),
            retry_after: None,
        },
    }
}

/// What a failed exchange says, for operators: never the URL.
fn describe(e: SendRequestError) -> String {
    match e {
        SendRequestError::Timeout => "timed out".to_owned(),
        SendRequestError::Connect(c) => format!("connection failed: {c}"),
        SendRequestError::Url(_) => "invalid URL".to_owned(),
        other => format!("request failed: {other}"),
    }
}

/// Differs per event, attempt and moment, so retries spread out.
fn jitter_seed(event_id: u64, attempt: u32) -> u64 {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    event_id ^ (u64::from(attempt) << 48) ^ nanos.rotate_left(17)
}
