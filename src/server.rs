//! The HTTP server: the request pipeline, in the OpenClaw order, and the
//! server's lifecycle on the plugin's own threads. Only this module and
//! `response` know about actix.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::mpsc;
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::http::Method;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use parking_lot::Mutex;

use crate::actions::{self, ActionResult, Plan};
use crate::auth::presented_secret;
use crate::body;
use crate::completion;
use crate::config::request_path;
use crate::error::{ApiError, Code};
use crate::logging;
use crate::request;
use crate::response;
use crate::routes::{AppState, Route};

/// How long `stop` waits beyond the grace period for the server thread to
/// finish once actix has closed the remaining connections.
const STOP_MARGIN: Duration = Duration::from_secs(5);

/// A running server.
pub struct Server {
    handle: ServerHandle,
    thread: Mutex<Option<JoinHandle<()>>>,
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
    // actix counts the grace in whole seconds; it closes what is still in
    // flight when it runs out.
    let grace_secs = state.shutdown_grace.as_millis().div_ceil(1000) as u64;
    let state = web::Data::new(state);
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("webhooks-http".into())
        .spawn(move || {
            let system = actix_web::rt::System::new();
            let ready = tx.clone();
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
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(state.clone())
                        .default_service(web::to(handle))
                })
                .workers(workers)
                .disable_signals()
                .shutdown_timeout(grace_secs)
                .listen(listener)?
                .run();
                let _ = ready.send(Ok(server.handle()));
                server.await
            });
            if let Err(e) = result {
                let _ = tx.send(Err(e.to_string()));
            }
        })
        .map_err(|e| format!("cannot start the server thread: {e}"))?;
    match rx.recv() {
        Ok(Ok(handle)) => Ok(Server {
            handle,
            thread: Mutex::new(Some(thread)),
        }),
        Ok(Err(e)) => Err(format!("cannot serve on the listener: {e}")),
        Err(_) => Err("the server thread ended before serving".into()),
    }
}

impl Server {
    /// Stops accepting and lets in-flight requests finish; actix closes
    /// those still running when the grace period configured at start runs
    /// out. Returns once the server is down, or after `grace` plus a margin
    /// if it is not. Later calls return at once.
    pub fn stop(&self, grace: Duration) {
        let Some(thread) = self.thread.lock().take() else {
            return;
        };
        // The stop command is sent when called; the returned future only
        // reports completion, which joining the thread observes instead.
        drop(self.handle.stop(true));
        let (done_tx, done_rx) = mpsc::channel();
        let joiner = std::thread::spawn(move || {
            let _ = thread.join();
            let _ = done_tx.send(());
        });
        if done_rx.recv_timeout(grace + STOP_MARGIN).is_err() {
            log::error!(target: "webhooks", "the server did not stop within the grace period");
        }
        drop(joiner);
        logging::log_suppressed(true);
    }
}

/// Every request lands here. A panic anywhere below becomes a JSON 500 and
/// the server keeps serving.
async fn handle(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    match CatchUnwind(Box::pin(pipeline(req, payload, state))).await {
        Ok(res) => res,
        Err(()) => response::failure(None, &ApiError::new(Code::InternalError)),
    }
}

async fn pipeline(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let path = request_path(req.path());
    let Some(route) = state.routes.get(&path) else {
        return response::failure(None, &ApiError::new(Code::NotFound));
    };
    match serve(route, &req, payload, &state).await {
        Ok(result) => response::success(&route.id, &result),
        Err(err) => response::failure(Some(&route.id), &err),
    }
}

/// Steps 3–10 of the pipeline; earlier failures never reach later checks.
async fn serve(
    route: &std::sync::Arc<Route>,
    req: &HttpRequest,
    mut payload: web::Payload,
    state: &AppState,
) -> ActionResult {
    if req.method() != Method::POST {
        return Err(ApiError::new(Code::MethodNotAllowed));
    }
    let headers = req.headers();
    let client = state
        .proxy
        .client_key(req.peer_addr().map(|a| a.ip()), headers)
        .network(route.limits.ipv6_prefix_bits);
    route
        .rate
        .check(client, Instant::now())
        .map_err(|wait| ApiError::new(Code::RateLimited).retry_after(wait))?;
    if !body::is_json(headers) {
        return Err(ApiError::new(Code::UnsupportedMediaType));
    }
    let _slot = route
        .in_flight
        .acquire(client)
        .ok_or_else(|| ApiError::new(Code::InFlightLimited).retry_after(Duration::from_secs(1)))?;
    if !presented_secret(headers).is_some_and(|s| route.secret.matches(s)) {
        return Err(ApiError::new(Code::Unauthorized));
    }
    route.rate.authenticated(client, Instant::now());
    let bytes = body::read(headers, &mut payload, &route.limits).await?;
    let value = body::parse_json(&bytes)?;
    let action = request::parse(&value).map_err(ApiError::invalid_request)?;
    actions::check_child_session(&route.session_key, &action)?;
    match actions::plan(action, &route.controller_id) {
        Plan::Read(read) => actions::read(&route.flows, read),
        // Writes may wait on disk: they are submitted to the runtime and
        // awaited, so no worker thread blocks and concurrent writes share
        // one commit.
        Plan::Write(kind, request) => {
            actions::written(kind, completion::submit(&route.flows, request).await)
        }
    }
}

/// Polls a future inside `catch_unwind`, turning a panic into `Err(())`.
/// The future is boxed so that pinning needs no unsafe projection.
struct CatchUnwind<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchUnwind<F> {
    type Output = Result<F::Output, ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_handler_future_becomes_an_error_value() {
        let system = actix_web::rt::System::new();
        let out = system.block_on(CatchUnwind(Box::pin(async {
            actix_web::rt::task::yield_now().await;
            panic!("handler bug");
        })));
        assert_eq!(out, Err::<(), ()>(()));
        let ok = system.block_on(CatchUnwind(Box::pin(async { 7 })));
        assert_eq!(ok, Ok(7));
    }

    #[test]
    fn the_panic_response_is_a_json_500() {
        let res = response::failure(None, &ApiError::new(Code::InternalError));
        assert_eq!(res.status().as_u16(), 500);
        assert_eq!(
            res.headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok()),
            Some("application/json; charset=utf-8")
        );
    }
}
