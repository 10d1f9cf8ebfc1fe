//! The request pipeline, in the OpenClaw order: route, method, rate limit,
//! content type, in-flight limit, secret, body, schema, then the action.
//! A panic anywhere below [`handle`] becomes a JSON 500.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use actix_web::body::BoxBody;
use actix_web::dev::{ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::{web, App, HttpRequest, HttpResponse};

use crate::actions::{self, Answer, Key};
use crate::audit::{self, Facts};
use crate::auth::presented_secret;
use crate::body;
use crate::client_ip::ClientKey;
use crate::error::{ApiError, Code};
use crate::idempotency;
use crate::limits::InFlightGuard;
use crate::metrics::{ActionLabel, KeyUse, Outcome};
use crate::paths::request_path;
use crate::request;
use crate::request::Action;
use crate::response;
use crate::routes::{AppState, Route};

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
pub async fn handle(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    match CatchUnwind(Box::pin(dispatch(req, payload, state))).await {
        Ok(res) => res,
        Err(()) => response::failure(None, &ApiError::new(Code::InternalError)),
    }
}

async fn dispatch(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let started = Instant::now();
    let path = request_path(req.path());
    let Some(route) = state.routes.get(&path) else {
        state.metrics.unrouted();
        let facts = Facts {
            client: Some(client_of(&req, &state)),
            ..Facts::default()
        };
        let now = Instant::now();
        audit::rejection(
            None,
            &facts,
            Code::NotFound,
            now - started,
            &state.unrouted_caps,
            now,
        );
        return response::failure(None, &ApiError::new(Code::NotFound));
    };
    let in_flight = route.metrics.in_flight();
    let mut facts = Facts::default();
    let answer = serve(route, &req, payload, &state, &mut facts).await;
    let response = response::respond(Some(&route.id), &answer);
    let now = Instant::now();
    let elapsed = now - started;
    let outcome = audit::outcome(&answer);
    let action = facts.action.unwrap_or(ActionLabel::NONE);
    route.metrics.request(action, outcome, elapsed);
    if let Some(key_use) = key_use(&facts, &answer, outcome) {
        route.metrics.key_use(key_use);
    }
    let served = audit::Served {
        route: &route.id,
        facts: &facts,
        answer: &answer,
        outcome,
        status: response.status().as_u16(),
        elapsed,
    };
    audit::record(&served, &route.rejection_caps, now);
    drop(in_flight);
    response
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

fn client_of(req: &HttpRequest, state: &AppState) -> ClientKey {
    state
        .proxy
        .client_key(req.peer_addr().map(|a| a.ip()), req.headers())
}

/// The checks after routing, then the action; earlier failures never
/// reach later checks. `facts` collects what the checks learned.
async fn serve(
    route: &Route,
    req: &HttpRequest,
    mut payload: web::Payload,
    state: &AppState,
    facts: &mut Facts,
) -> Answer {
    let admitted = match admit(route, req, &mut payload, state, facts).await {
        Ok(admitted) => admitted,
        Err(err) => return err.into(),
    };
    let answer = actions::run(route, admitted.action, admitted.key).await;
    drop(admitted.slot);
    answer
}

/// A request that passed every check, with what it holds while it runs.
struct Admitted {
    action: Action,
    key: Option<Key>,
    slot: InFlightGuard,
}

async fn admit(
    route: &Route,
    req: &HttpRequest,
    payload: &mut web::Payload,
    state: &AppState,
    facts: &mut Facts,
) -> Result<Admitted, ApiError> {
    let client = client_of(req, state);
    facts.client = Some(client);
    if req.method() != Method::POST {
        return Err(ApiError::new(Code::MethodNotAllowed));
    }
    let headers = req.headers();
    route
        .rate
        .check(client, Instant::now())
        .map_err(|wait| ApiError::new(Code::RateLimited).retry_after(wait))?;
    if !body::is_json(headers) {
        return Err(ApiError::new(Code::UnsupportedMediaType));
    }
    let slot = route
        .in_flight
        .acquire(client)
        .ok_or_else(|| ApiError::new(Code::InFlightLimited).retry_after(Duration::from_secs(1)))?;
    if !route.secret.matches(presented_secret(headers)) {
        return Err(ApiError::new(Code::Unauthorized));
    }
    // One secret per route: it is slot 0.
    facts.secret_slot = Some(0);
    route.metrics.secret_slot(0);
    let bytes = body::read(headers, payload, &route.limits).await?;
    let value = body::parse_json(&bytes)?;
    let action = request::parse(&value).map_err(ApiError::invalid_request)?;
    let writes = actions::writes(&action);
    facts.action(&action, writes);
    let key = if writes {
        claim_key(route, headers, &value, facts)?
    } else {
        // Reads are safe to repeat: a key on one is ignored.
        None
    };
    Ok(Admitted { action, key, slot })
}

/// The idempotency key of a write, claimed as running for this request.
fn claim_key(
    route: &Route,
    headers: &actix_web::http::header::HeaderMap,
    body: &serde_json::Value,
    facts: &mut Facts,
) -> Result<Option<Key>, ApiError> {
    let Some(key) = idempotency::presented_key(headers)? else {
        if route.idempotency.required {
            return Err(ApiError::new(Code::IdempotencyKeyRequired));
        }
        return Ok(None);
    };
    facts.key(&key);
    let fingerprint = idempotency::fingerprint(body);
    let marker = route.running.claim(&key, fingerprint)?;
    Ok(Some(Key {
        key,
        fingerprint,
        marker,
    }))
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
    use std::collections::HashMap;
    use std::sync::Arc;

    use abi_stable::sabi_trait::TD_Opaque;
    use abi_stable::std_types::{ROption, RResult, RStr, RString, RVec};
    use actix_web::test;
    use openclaw_ffi::outcome::{
        CancelOutcome, ErrorCode, MutationOutcome, RunTaskOutcome, TaskFlowError,
    };
    use openclaw_ffi::records::{
        CreateFlow, Fail, Finish, FlowRecord, RequestCancel, Resume, RunTask, SetWaiting,
        TaskSummary,
    };
    use openclaw_ffi::runtime::{
        BoundTaskFlow, BoundTaskFlow_TO, IdempotencyClaim, WriteCompletionBox, WriteRequest,
    };

    use super::*;
    use crate::auth::Secret;
    use crate::client_ip::ProxyPolicy;

    const SECRET: &str = "in-process-secret-0123";

    /// A runtime that fails every call plainly. (A panic inside a runtime
    /// method would abort at the ABI edge by design, so the panic under
    /// test comes from the plugin's own side.)
    struct FailingRuntime;

    type Res<T> = RResult<T, TaskFlowError>;

    fn fail<T>() -> Res<T> {
        RResult::RErr(TaskFlowError::new(ErrorCode::INTERNAL, "not in this test"))
    }

    impl BoundTaskFlow for FailingRuntime {
        fn session_key(&self) -> RString {
            "agent:main:main".into()
        }
        fn create_managed(&self, _: CreateFlow) -> Res<FlowRecord> {
            fail()
        }
        fn get(&self, _: RStr<'_>) -> Res<ROption<FlowRecord>> {
            fail()
        }
        fn list(&self) -> Res<RVec<FlowRecord>> {
            fail()
        }
        fn find_latest(&self) -> Res<ROption<FlowRecord>> {
            fail()
        }
        fn resolve(&self, _: RStr<'_>) -> Res<ROption<FlowRecord>> {
            fail()
        }
        fn get_task_summary(&self, _: RStr<'_>) -> Res<ROption<TaskSummary>> {
            fail()
        }
        fn set_waiting(&self, _: SetWaiting) -> Res<MutationOutcome> {
            fail()
        }
        fn resume(&self, _: Resume) -> Res<MutationOutcome> {
            fail()
        }
        fn finish(&self, _: Finish) -> Res<MutationOutcome> {
            fail()
        }
        fn fail(&self, _: Fail) -> Res<MutationOutcome> {
            fail()
        }
        fn request_cancel(&self, _: RequestCancel) -> Res<MutationOutcome> {
            fail()
        }
        fn cancel(&self, _: RStr<'_>) -> Res<CancelOutcome> {
            fail()
        }
        fn run_task(&self, _: RunTask) -> Res<RunTaskOutcome> {
            fail()
        }
        fn submit(&self, _: WriteRequest, _: ROption<IdempotencyClaim>, done: WriteCompletionBox) {
            done.complete(fail());
        }
    }

    fn state() -> web::Data<AppState> {
        let config = crate::config::parse(
            r#"{"routes":{"inproc":{"path":"/hook","sessionKey":"agent:main:main","secret":"in-process-secret-0123"}}}"#,
        )
        .unwrap();
        let route = Route::new(
            &config.routes[0],
            Secret::new(SECRET.into()),
            BoundTaskFlow_TO::from_value(FailingRuntime, TD_Opaque),
        );
        web::Data::new(AppState::new(
            HashMap::from([("/hook".to_owned(), Arc::new(route))]),
            ProxyPolicy {
                trusted: Vec::new(),
                allow_real_ip_fallback: false,
            },
        ))
    }

    fn action(body: String) -> test::TestRequest {
        test::TestRequest::post()
            .uri("/hook")
            .insert_header(("content-type", "application/json"))
            .insert_header(("authorization", format!("Bearer {SECRET}")))
            .peer_addr("127.0.0.1:40000".parse().unwrap())
            .set_payload(body)
    }

    fn get_flow(flow_id: &str) -> test::TestRequest {
        action(serde_json::json!({"action": "get_flow", "flowId": flow_id}).to_string())
    }

    async fn json_of(res: ServiceResponse) -> serde_json::Value {
        serde_json::from_slice(&test::read_body(res).await).unwrap()
    }

    #[test]
    fn a_panic_below_the_handler_is_a_json_500_and_the_server_keeps_serving() {
        actix_web::rt::System::new().block_on(async {
            let app = test::init_service(app(state())).await;
            for _ in 0..2 {
                let req = get_flow(crate::actions::tests::PANIC_FLOW_ID).to_request();
                let res = test::call_service(&app, req).await;
                assert_eq!(res.status().as_u16(), 500);
                assert_eq!(
                    res.headers()
                        .get("content-type")
                        .and_then(|v| v.to_str().ok()),
                    Some("application/json; charset=utf-8")
                );
                assert_eq!(
                    json_of(res).await,
                    serde_json::json!({"ok": false, "code": "internal_error", "error": "internal error"})
                );
            }
            // The same worker still serves the next request.
            let res = test::call_service(&app, get_flow("other").to_request()).await;
            assert_eq!(res.status().as_u16(), 500, "the fake runtime fails reads");
            let wrong_secret = action(r#"{"action":"list_flows"}"#.into())
                .insert_header(("authorization", "Bearer wrong-secret-value"))
                .to_request();
            let res = test::call_service(&app, wrong_secret).await;
            assert_eq!(res.status().as_u16(), 401);
        });
    }
}
