//! A request body: bytes to JSON (`body::parse_json`), then the action
//! schema (`request::parse`), then the plan of the call it makes
//! (`actions::plan`). Either of the first two may refuse; none may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openclaw_webhooks::error::Code;

fuzz_target!(|data: &[u8]| {
    match openclaw_webhooks::body::parse_json(data) {
        Ok(value) => match openclaw_webhooks::request::parse(&value) {
            Ok(action) => {
                let _ = openclaw_webhooks::actions::plan(action, "webhooks/fuzz");
            }
            Err(issues) => assert!(!issues.is_empty(), "refused without an issue"),
        },
        Err(e) => assert_eq!(e.code, Code::InvalidBody),
    }
});
