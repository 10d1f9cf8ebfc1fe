//! The pipeline driven in-process through `app()`, with a fake runtime.

use std::collections::HashMap;
use std::sync::Arc;

use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult, RStr, RString, RVec};
use actix_web::test;
use openclaw_ffi::outcome::{
    CancelOutcome, ErrorCode, MutationOutcome, RunTaskOutcome, TaskFlowError,
};
use openclaw_ffi::records::{
    CreateFlow, Fail, Finish, FlowRecord, RequestCancel, Resume, RunTask, SetWaiting, TaskSummary,
};
use openclaw_ffi::runtime::{
    BoundTaskFlow, BoundTaskFlow_TO, IdempotencyClaim, WriteCompletionBox, WriteRequest,
};

use super::*;
use crate::auth::{Secret, Secrets};
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
    state_with(
        r#"{"routes":{"inproc":{"path":"/hook","sessionKey":"agent:main:main","secret":"in-process-secret-0123"}}}"#,
        |_| {},
    )
}

/// The state of one route configured by `config_json`, changed by `adjust`
/// before it serves.
fn state_with(config_json: &str, adjust: impl FnOnce(&mut Route)) -> web::Data<AppState> {
    let mut config = crate::config::parse(config_json).unwrap();
    let mut route = Route::new(
        config.routes.remove(0),
        Some(Secrets::new(vec![Secret::new(SECRET.into())])),
        None,
        BoundTaskFlow_TO::from_value(FailingRuntime, TD_Opaque),
    );
    adjust(&mut route);
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

#[test]
fn two_gateways_sharing_redis_admit_the_rate_limit_once_between_them() {
    let prefix = testkit::redis_prefix("pipeline");
    let config = r#"{"routes":{"inproc":{"path":"/hook","sessionKey":"agent:main:main",
        "secret":"in-process-secret-0123","limits":{"rateLimitMaxRequests":5,"rateLimitWindowMs":60000}}}}"#;
    // Each "Gateway" has its own link to Redis, as two processes would.
    let node = || {
        let link = crate::shared_limits::RedisLink::start(
            &testkit::redis_url(),
            crate::shared_limits::DEFAULT_TIMEOUT,
        )
        .unwrap();
        let up = link
            .handle()
            .block_on(link.connect(crate::shared_limits::CONNECT_AT_START));
        assert!(up, "Redis at {} did not answer", testkit::redis_url());
        state_with(config, |route| route.share_limits(&link, &prefix))
    };
    let (a, b) = (node(), node());
    actix_web::rt::System::new().block_on(async {
        let a = test::init_service(app(a)).await;
        let b = test::init_service(app(b)).await;
        let mut limited = 0;
        for i in 0..12 {
            let req = get_flow("f").to_request();
            let res = if i % 2 == 0 {
                test::call_service(&a, req).await
            } else {
                test::call_service(&b, req).await
            };
            if res.status().as_u16() == 429 {
                limited += 1;
            }
        }
        assert_eq!(limited, 7, "5 of 12 admitted across both");
    });
}
