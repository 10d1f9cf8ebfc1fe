//! A request body: bytes to JSON (`body::parse_json`), then the action
//! schema (`request::parse`). Either step may refuse; neither may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openclaw_webhooks::error::Code;

fuzz_target!(|data: &[u8]| {
    match openclaw_webhooks::body::parse_json(data) {
        Ok(value) => match openclaw_webhooks::request::parse(&value) {
            Ok(action) => {
                let _ = action.writes();
            }
            Err(issues) => assert!(!issues.is_empty(), "refused without an issue"),
        },
        Err(e) => assert_eq!(e.code, Code::InvalidBody),
    }
});
