//! The server's lifecycle: actix on the plugin's own thread, and a stop
//! that drains in-flight requests for exactly the grace it is given.
//!
//! The HTTP/1 service is assembled here rather than by actix-web's
//! `HttpServer`, which does not expose what the pipeline needs: a shutdown
//! signal per connection (see [`crate::connection`]).

use std::future::Future;
use std::pin::pin;
use std::sync::mpsc;
use std::sync::Arc;
use std::task::Poll;
use std::thread::JoinHandle;
use std::time::Duration;

use actix_http::HttpService;
use actix_service::map_config;
use actix_web::dev::AppConfig;
use actix_web::web;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::connection::Connection;
use crate::logging;
use crate::pipeline;
use crate::routes::AppState;
use crate::wait::Waiters;

/// How long actix itself would let a draining worker run. The drain is
/// bounded by the grace `Server::stop` receives, never by this: it only has
/// to outlast any grace an operator can configure.
const ACTIX_DRAIN_CEILING: Duration = Duration::from_secs(7 * 24 * 3600);

/// How long a client has to send a request head on a new connection.
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

/// A running server.
pub struct Server {
    /// Taken by the first `stop`.
    running: Mutex<Option<Running>>,
    /// Every route's waiting reads, answered at once when the drain starts.
    waiters: Vec<Arc<Waiters>>,
}

struct Running {
    stop: oneshot::Sender<Duration>,
    thread: JoinHandle<()>,
}

/// Starts serving `state` on `listener` with `workers` threads, on a new
/// thread that owns the actix system.
///
/// # Errors
///
/// When the listener cannot be used or the thread cannot start.
pub fn start(
    listener: std::net::TcpListener,
    state: AppState,
    workers: usize,
) -> Result<Server, String> {
    let waiters = state
        .routes
        .values()
        .map(|r| Arc::clone(&r.waiters))
        .collect();
    let state = web::Data::new(state);
    let (ready_tx, ready_rx) = mpsc::channel();
    let (stop_tx, stop_rx) = oneshot::channel::<Duration>();
    let thread = std::thread::Builder::new()
        .name("webhooks-http".into())
        .spawn(move || {
            let system = actix_web::rt::System::new();
            let ready = ready_tx.clone();
            let audit = state.clone();
            let result = system.block_on(async move {
                // Counts of records left out as client noise are logged as
                // their periods end.
                actix_web::rt::spawn(async {
                    let mut tick = actix_web::rt::time::interval(logging::NOISE_PERIOD / 6);
                    loop {
                        tick.tick().await;
                        logging::log_suppressed(false);
                    }
                });
                let flusher = actix_web::rt::spawn(flush_audit(audit.clone()));
                let builder = actix_web::dev::Server::build();
                let drain = builder.graceful_shutdown_signal();
                let server = builder
                    .workers(workers)
                    .disable_signals()
                    .shutdown_timeout(ACTIX_DRAIN_CEILING.as_secs())
                    .listen("webhooks", listener, move || {
                        let drain = drain.clone();
                        HttpService::build()
                            .client_request_timeout(HEAD_TIMEOUT)
                            // A response that closes the connection is
                            // followed by the close at once: no lingering
                            // read of what the client still sends.
                            .client_disconnect_timeout(Duration::ZERO)
                            .on_connect_ext(|_, data| {
                                data.insert(Connection::accept());
                            })
                            // The hook actix-web's own server uses for its
                            // drain (hidden from actix-http's docs; present
                            // since 3.20, which Cargo.toml requires).
                            .graceful_shutdown_signal(move || {
                                let drain = drain.clone();
                                Connection::signal(async move { drain.notified().await })
                            })
                            .expect(pipeline::expect(state.clone()))
                            .h1(map_config(pipeline::app(state.clone()), |()| {
                                AppConfig::default()
                            }))
                            .tcp()
                    })?
                    .run();
                let _ = ready.send(Ok(()));
                let served = serve_until_stopped(server, stop_rx).await;
                flusher.abort();
                audit.flush_audit();
                served
            });
            if let Err(e) = result {
                let _ = ready_tx.send(Err(e.to_string()));
            }
        })
        .map_err(|e| format!("cannot start the server thread: {e}"))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(Server {
            running: Mutex::new(Some(Running {
                stop: stop_tx,
                thread,
            })),
            waiters,
        }),
        Ok(Err(e)) => Err(format!("cannot serve on the listener: {e}")),
        Err(_) => Err("the server thread ended before serving".into()),
    }
}

/// Serves until a stop arrives, then drains: actix stops accepting and
/// lets running requests finish; when the grace runs out first, dropping
/// the server closes every connection still open.
async fn serve_until_stopped(
    server: actix_web::dev::Server,
    stop: oneshot::Receiver<Duration>,
) -> std::io::Result<()> {
    let handle = server.handle();
    let mut server = pin!(server);
    let grace = match first(server.as_mut(), stop).await {
        Either::Left(ended) => return ended,
        Either::Right(Ok(grace)) => grace,
        // The `Server` was dropped without a stop: drain with no grace.
        Either::Right(Err(_)) => Duration::ZERO,
    };
    // The command is queued when called; the returned future only reports
    // completion, which the server future itself reports below.
    drop(handle.stop(true));
    match first(server.as_mut(), tokio::time::sleep(grace)).await {
        Either::Left(ended) => ended,
        Either::Right(()) => {
            log::warn!(
                target: "webhooks",
                "closing the requests still running after the {} ms grace",
                grace.as_millis()
            );
            Ok(())
        }
    }
}

/// Summarises the rejection lines left out of the audit log once per
/// window, so a flood that stops is still reported.
async fn flush_audit(state: web::Data<AppState>) {
    let mut ticks = tokio::time::interval(crate::audit::REJECTION_WINDOW);
    loop {
        ticks.tick().await;
        state.flush_audit();
    }
}

enum Either<A, B> {
    Left(A),
    Right(B),
}

/// Whichever of two futures finishes first; `a` is polled first.
async fn first<A: Future + Unpin, B: Future>(mut a: A, b: B) -> Either<A::Output, B::Output> {
    let mut b = pin!(b);
    std::future::poll_fn(|cx| {
        if let Poll::Ready(v) = std::pin::Pin::new(&mut a).poll(cx) {
            return Poll::Ready(Either::Left(v));
        }
        b.as_mut().poll(cx).map(Either::Right)
    })
    .await
}

impl Server {
    /// Stops accepting connections, lets in-flight requests finish for at
    /// most `grace`, closes the connections still open after it, and
    /// returns once the server thread has ended. Waiting reads are answered
    /// at once, so they never hold the drain up. Later calls return at once.
    pub fn stop(&self, grace: Duration) {
        let Some(running) = self.running.lock().take() else {
            return;
        };
        for waiters in &self.waiters {
            waiters.stop();
        }
        // A send error means the thread already ended; joining still
        // observes it.
        let _ = running.stop.send(grace);
        if running.thread.join().is_err() {
            log::error!(target: "webhooks", "the server thread panicked while stopping");
        }
        logging::log_suppressed(true);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop(Duration::ZERO);
    }
}
