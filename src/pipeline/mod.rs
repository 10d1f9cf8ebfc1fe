//! The request pipeline, in the OpenClaw order: route, method, rate limit,
//! content type (and coding), in-flight limit, secret, body, schema, then
//! the action. The checks before the body run in `admit`, from [`handle`]
//! or, for a request that expects `100 Continue`, from [`expect`] before
//! the body is invited. A panic anywhere below either becomes a JSON 500.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_http::Request;
use actix_web::body::BoxBody;
use actix_web::dev::{
    fn_service, RequestHead, Response, ServiceFactory, ServiceRequest, ServiceResponse,
};
use actix_web::http::header::HeaderMap;
use actix_web::http::Method;
use actix_web::{web, App, HttpMessage, HttpRequest, HttpResponse};

use crate::actions::{self, Answer};
use crate::audit::{self, Facts};
use crate::body;
use crate::client_ip::ClientKey;
use crate::connection::Connection;
use crate::error::{ApiError, Code};

use crate::metrics::{ActionLabel, KeyUse, Outcome};
use crate::paths::request_path;
use crate::response;
use crate::routes::{AppState, Route};
use crate::shared_limits::{Decision, Slot};

/// The application every worker serves: every path goes to [`handle`].
pub fn app(
    state: web::Data<AppState>,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<BoxBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new().app_data(state).default_service(web::to(handle))
}

/// Every request lands here. A panic anywhere below becomes a JSON 500 and
/// the server keeps serving.
///
/// A response sent before the request's body was read to its end closes the
/// connection, and nothing pipelined behind the request runs: the server
/// does no work for a body it will not use, and a client cannot have a
/// refused request followed by one that runs as if nothing happened.
pub async fn handle(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let answer = match CatchUnwind(Box::pin(dispatch(&req, payload, &state))).await {
        Ok(answer) => answer,
        Err(()) => Outgoing::closing(response::failure(None, &ApiError::new(Code::InternalError))),
    };
    if answer.close {
        closing(req.conn_data::<Connection>(), answer.response).await
    } else {
        answer.response
    }
}

/// Makes `res` the last response on its connection: marked `Connection:
/// close`, and returned once nothing queued behind it on the connection
/// will run.
async fn closing(conn: Option<&Connection>, mut res: HttpResponse) -> HttpResponse {
    if let Some(conn) = conn {
        conn.close().await;
    }
    response::close_connection(&mut res);
    res
}

/// The service actix-http calls for a request that says `Expect:
/// 100-continue`, before the body is invited: `100 Continue` goes out only
/// when it returns the request. The checks before the body run here, so a
/// refused client is answered at once and never invited to send its body;
/// what they established travels on in the request's extensions.
pub fn expect(
    state: web::Data<AppState>,
) -> impl ServiceFactory<
    Request,
    Config = (),
    Response = Request,
    Error = Response<BoxBody>,
    InitError = (),
> {
    fn_service(move |req: Request| {
        let state = state.clone();
        async move { invite_or_refuse(req, &state).await }
    })
}

async fn invite_or_refuse(req: Request, state: &AppState) -> Result<Request, Response<BoxBody>> {
    let started = Instant::now();
    let checked = CatchUnwind(Box::pin(admit(state, req.head()))).await;
    let (route_id, err) = match checked {
        Ok(Ok(admitted)) => {
            req.extensions_mut().insert(admitted);
            return Ok(req);
        }
        Ok(Err(refused)) => refused,
        Err(_) => (None, ApiError::new(Code::InternalError)),
    };
    let refusal = response::failure(route_id, &err);
    // Counted and audited like a refusal after the body was sent.
    let facts = Facts {
        client: Some(client_of(req.head(), state)),
        ..Facts::default()
    };
    let route = state.routes.get(&request_path(req.path())).cloned();
    observe(
        state,
        route.as_deref(),
        &facts,
        &err.into(),
        refusal.status().as_u16(),
        started,
    );
    Err(closing(req.conn_data::<Connection>(), refusal).await.into())
}

/// A response, and whether the connection must close after it.
struct Outgoing {
    response: HttpResponse,
    close: bool,
}

impl Outgoing {
    /// A response sent before the body was read to its end.
    fn closing(response: HttpResponse) -> Self {
        Self {
            response,
            close: true,
        }
    }
}

async fn dispatch(req: &HttpRequest, payload: web::Payload, state: &AppState) -> Outgoing {
    let started = Instant::now();
    let mut facts = Facts::default();
    let (route, named, answer, close) = answer(req, payload, state, &mut facts).await;
    let route_id = route.as_deref().map(|r| r.id.as_str());
    let response = response::respond(route_id.filter(|_| named), &answer);
    observe(
        state,
        route.as_deref(),
        &facts,
        &answer,
        response.status().as_u16(),
        started,
    );
    Outgoing { response, close }
}

/// Records a request's metrics and its audit line.
fn observe(
    state: &AppState,
    route: Option<&Route>,
    facts: &Facts,
    answer: &Answer,
    status: u16,
    started: Instant,
) {
    let now = Instant::now();
    let elapsed = now - started;
    let outcome = audit::outcome(answer);
    let Some(route) = route else {
        state.metrics.unrouted();
        if let Outcome::Error(code) = outcome {
            audit::rejection(None, facts, code, elapsed, &state.unrouted_caps, now);
        }
        return;
    };
    let action = facts.action.unwrap_or(ActionLabel::NONE);
    route.metrics.request(action, outcome, elapsed);
    if let Some(key_use) = key_use(facts, answer, outcome) {
        route.metrics.key_use(key_use);
    }
    let served = audit::Served {
        route: &route.id,
        facts,
        answer,
        outcome,
        status,
        elapsed,
    };
    audit::record(&served, &route.rejection_caps, now);
}

/// What became of the idempotency key a request presented, if any.
fn key_use(facts: &Facts, answer: &Answer, outcome: Outcome) -> Option<KeyUse> {
    facts.key_digest.as_ref()?;
    Some(match (answer, outcome) {
        (Answer::Stored { replayed: true, .. }, _) => KeyUse::Replayed,
        (_, Outcome::Error(Code::IdempotencyInProgress)) => KeyUse::InProgress,
        (_, Outcome::Error(Code::IdempotencyKeyMismatch)) => KeyUse::Mismatch,
        _ => KeyUse::First,
    })
}

fn client_of(head: &RequestHead, state: &AppState) -> ClientKey {
    state
        .proxy
        .client_key(head.peer_addr.map(|a| a.ip()), &head.headers)
}

/// The route (when the path names one), whether the answer may name it,
/// the answer, and whether the connection must close after it.
async fn answer(
    req: &HttpRequest,
    mut payload: web::Payload,
    state: &AppState,
    facts: &mut Facts,
) -> (Option<Arc<Route>>, bool, Answer, bool) {
    // A request that asked to be invited was admitted before the invitation.
    let invited = req.extensions_mut().remove::<Admitted>();
    let admitted = match invited {
        Some(admitted) => Ok(admitted),
        None => admit(state, req.head()).await,
    };
    let admitted = match admitted {
        Ok(admitted) => admitted,
        Err((route_id, err)) => {
            facts.client = Some(client_of(req.head(), state));
            let route = state.routes.get(&request_path(req.path())).cloned();
            return (route, route_id.is_some(), err.into(), true);
        }
    };
    let Admitted {
        route,
        client,
        slot,
        secret_slot,
    } = admitted;
    // The client as the checks resolved it: not resolved a second time.
    facts.client = Some(client);
    let metrics = Arc::clone(&route.metrics);
    let _in_flight = metrics.in_flight();
    if let Some(i) = secret_slot {
        facts.secret_slot = Some(i);
        route.metrics.secret_slot(i);
    }
    let bytes = match body::read(req.headers(), &mut payload, &route.limits).await {
        Ok(bytes) => bytes,
        Err(err) => return (Some(route), true, err.into(), true),
    };
    // A signed route authenticates its caller by the signature over the raw
    // body, before the body is parsed: a refusal does not name the route.
    let signed = match route.verify_signature(req.headers(), &bytes) {
        Ok(signed) => signed.map(|v| {
            // A signed caller authenticated: its rate-limit entry is kept.
            route.limiters.authenticated(client);
            facts.secret_slot = Some(v.slot);
            route.metrics.signing_slot(v.slot);
            v.id.to_owned()
        }),
        Err(err) => return (Some(route), false, err.into(), false),
    };
    let answer = serve(&route, req.headers(), &bytes, signed, slot, facts).await;
    (Some(route), true, answer, false)
}

/// A request that passed every check before its body; it holds its
/// in-flight slot until dropped.
struct Admitted {
    route: Arc<Route>,
    client: ClientKey,
    /// The bearer secret that matched, when the route has any.
    secret_slot: Option<usize>,
    slot: Slot,
}

/// The checks before the body is read, in order (the body's declared length
/// is the first check of the body step); earlier failures never reach later
/// checks.
///
/// A refusal names the route only once the caller has authenticated: before
/// that, the caller learns no more than that the path exists, not the id
/// the operator gave the route.
async fn admit<'s>(
    state: &'s AppState,
    head: &RequestHead,
) -> Result<Admitted, (Option<&'s str>, ApiError)> {
    let anonymous = |err| (None, err);
    let path = request_path(head.uri.path());
    let Some(route) = state.routes.get(&path) else {
        return Err(anonymous(ApiError::new(Code::NotFound)));
    };
    if head.method != Method::POST {
        return Err(anonymous(ApiError::new(Code::MethodNotAllowed)));
    }
    let headers = &head.headers;
    let client = state
        .proxy
        .client_key(head.peer_addr.map(|a| a.ip()), headers)
        .network(route.limits.ipv6_prefix_bits);
    // Refused addresses spend no rate-limit budget.
    route.access.admit(client).map_err(anonymous)?;
    let decision = route.limiters.decide(client).await;
    if let Decision::RateLimited(wait) = decision {
        return Err(anonymous(
            ApiError::new(Code::RateLimited).retry_after(wait),
        ));
    }
    // A slot already taken (with the rate, in one round trip to Redis) is
    // given back if this refuses the request.
    body::check_media_type(headers).map_err(anonymous)?;
    let slot = match decision {
        Decision::Slot(slot) => Some(slot),
        Decision::Admitted(slots) => slots.acquire(client).map(Slot::Local),
        Decision::RateLimited(_) | Decision::InFlightFull => None,
    };
    let slot = slot.ok_or_else(|| {
        anonymous(ApiError::new(Code::InFlightLimited).retry_after(Duration::from_secs(1)))
    })?;
    let secret_slot = route.authenticate(headers).map_err(anonymous)?;
    if route.signing.is_none() {
        // The caller presented a secret: its rate-limit entry is kept.
        route.limiters.authenticated(client);
    }
    body::check_declared_length(headers, &route.limits)
        .map_err(|err| (Some(route.id.as_str()), err))?;
    Ok(Admitted {
        route: Arc::clone(route),
        client,
        slot,
        secret_slot,
    })
}

/// The checks after the body was read, then the action.
async fn serve(
    route: &Route,
    headers: &HeaderMap,
    bytes: &[u8],
    delivery_id: Option<String>,
    slot: Slot,
    facts: &mut Facts,
) -> Answer {
    let (action, key) = match parse::parse(route, headers, bytes, delivery_id, facts) {
        Ok(parse::Parsed::Run(action, key)) => (action, key),
        Ok(parse::Parsed::Replay(reply)) => {
            return Answer::Stored {
                reply,
                replayed: true,
            }
        }
        Err(err) => return err.into(),
    };
    // A waiting read gives its in-flight slot back before it waits.
    let slot = (!actions::waits(&action)).then_some(slot);
    let answer = actions::run(route, action, key).await;
    drop(slot);
    answer
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

mod parse;
#[cfg(test)]
mod tests;
