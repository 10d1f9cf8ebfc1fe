//! The admin listener (`gateway.admin`): `GET /metrics`, `/healthz` and
//! `/readyz` for operators, load balancers and orchestrators.
//!
//! It is its own listener on its own threads, separate from the webhook
//! listener the plugins serve, and never sees their secrets. With a token
//! configured, every request must carry `Authorization: Bearer <token>`,
//! compared in constant time over SHA-256 digests.
//!
//! `tiny_http` serves it: a small blocking HTTP/1.1 server with a thread
//! per connection, enough for a scraper and a few probes, and it keeps the
//! Gateway free of an async runtime of its own (actix lives in the plugin).

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tiny_http::{Header, Method, Request, Response, Server};

use crate::metrics::Exposition;

/// Where the Gateway is in its life, as `/readyz` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Phase {
    /// Config checked; the store or a plugin is not up yet.
    Starting = 0,
    /// The store is open and every plugin serves.
    Ready = 1,
    /// A stop began: plugins are draining, then the store closes.
    Draining = 2,
}

/// The Gateway's phase, shared by the lifecycle (which sets it) and the
/// admin listener and metrics (which read it).
#[derive(Debug, Default)]
pub struct Readiness(AtomicU8);

impl Readiness {
    pub fn set(&self, phase: Phase) {
        self.0.store(phase as u8, Ordering::SeqCst);
    }

    pub fn phase(&self) -> Phase {
        match self.0.load(Ordering::SeqCst) {
            1 => Phase::Ready,
            2 => Phase::Draining,
            _ => Phase::Starting,
        }
    }
}

/// Handler threads: a scrape and a probe can run at once.
const THREADS: usize = 2;

/// A running admin listener; dropping it stops it.
pub struct Admin {
    server: Arc<Server>,
    threads: Vec<JoinHandle<()>>,
    pub addr: SocketAddr,
}

struct Shared {
    /// SHA-256 of the token, when one is required.
    token: Option<[u8; 32]>,
    readiness: Arc<Readiness>,
    exposition: Arc<Exposition>,
}

impl Admin {
    /// Binds `addr` and serves on new threads.
    ///
    /// # Errors
    ///
    /// A message naming the address when it cannot be bound.
    pub fn start(
        addr: SocketAddr,
        token: Option<&str>,
        readiness: Arc<Readiness>,
        exposition: Arc<Exposition>,
    ) -> Result<Admin, String> {
        let listener = TcpListener::bind(addr)
            .map_err(|e| format!("cannot listen on {addr} (gateway.admin): {e}"))?;
        let local = listener
            .local_addr()
            .map_err(|e| format!("cannot read the admin listening address: {e}"))?;
        let server = Server::from_listener(listener, None)
            .map_err(|e| format!("cannot serve on {local} (gateway.admin): {e}"))?;
        let server = Arc::new(server);
        let shared = Arc::new(Shared {
            token: token.map(digest),
            readiness,
            exposition,
        });
        let mut threads = Vec::with_capacity(THREADS);
        for i in 0..THREADS {
            let (server, shared) = (Arc::clone(&server), Arc::clone(&shared));
            let thread = std::thread::Builder::new()
                .name(format!("admin-http-{i}"))
                .spawn(move || {
                    // `recv` fails once the server is unblocked: stop then.
                    while let Ok(request) = server.recv() {
                        shared.answer(request);
                    }
                })
                .map_err(|e| format!("cannot start the admin thread: {e}"))?;
            threads.push(thread);
        }
        Ok(Admin {
            server,
            threads,
            addr: local,
        })
    }
}

impl Drop for Admin {
    fn drop(&mut self) {
        for _ in 0..self.threads.len() {
            self.server.unblock();
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

fn digest(value: &str) -> [u8; 32] {
    Sha256::digest(value.as_bytes()).into()
}

impl Shared {
    fn answer(&self, request: Request) {
        let reply = self.route(&request);
        if let Err(e) = request.respond(reply) {
            log::debug!(target: "gateway", "admin response not sent: {e}");
        }
    }

    fn route(&self, request: &Request) -> Response<std::io::Cursor<Vec<u8>>> {
        if !self.authorized(request) {
            return with_header(text(401, "unauthorized\n"), "WWW-Authenticate", "Bearer");
        }
        let path = request.url().split('?').next().unwrap_or_default();
        let known = matches!(path, "/metrics" | "/healthz" | "/readyz");
        if !known {
            return text(404, "not found\n");
        }
        if !matches!(request.method(), Method::Get | Method::Head) {
            return with_header(text(405, "method not allowed\n"), "Allow", "GET, HEAD");
        }
        match path {
            "/metrics" => {
                let body = self.exposition.encode();
                // Sent with a Content-Length, never chunked: the length is
                // known and every client reads it.
                let response =
                    Response::from_data(body.into_bytes()).with_chunked_threshold(usize::MAX);
                with_header(
                    response,
                    "Content-Type",
                    prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
                )
            }
            "/healthz" => text(200, "ok\n"),
            _ => match self.readiness.phase() {
                Phase::Ready => text(200, "ready\n"),
                Phase::Starting => text(503, "starting\n"),
                Phase::Draining => text(503, "draining\n"),
            },
        }
    }

    fn authorized(&self, request: &Request) -> bool {
        let Some(expected) = &self.token else {
            return true;
        };
        let presented = request
            .headers()
            .iter()
            .find(|h| h.field.equiv("Authorization"))
            .and_then(|h| {
                let value = h.value.as_str().trim();
                let (scheme, token) = value.split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("bearer")
                    .then(|| token.trim_start())
            });
        // A missing token is compared too (as an empty one, which never
        // matches: the token is never empty), so both paths take the same
        // time.
        let presented = digest(presented.unwrap_or_default());
        bool::from(presented.ct_eq(expected))
    }
}

/// Adds a header whose name and value are constants (always valid ASCII).
fn with_header<R: std::io::Read>(response: Response<R>, name: &str, value: &str) -> Response<R> {
    match Header::from_bytes(name.as_bytes(), value.as_bytes()) {
        Ok(header) => response.with_header(header),
        Err(()) => response,
    }
}

fn text(status: u16, body: &str) -> Response<std::io::Cursor<Vec<u8>>> {
    let response = Response::from_string(body).with_status_code(status);
    let response = with_header(response, "Content-Type", "text/plain; charset=utf-8");
    with_header(response, "Cache-Control", "no-store")
}
