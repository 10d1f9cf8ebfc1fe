//! The plugin's `config` text: any UTF-8 input must parse or yield issues,
//! never panic, and a refused config always names at least one issue.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match openclaw_webhooks::config::parse(text) {
        Ok(config) => {
            for route in &config.routes {
                assert!(openclaw_webhooks::config::valid_route_id(&route.id));
                assert!(route.path.starts_with('/'));
                assert!(!route.session_key.is_empty());
            }
            assert!(config.workers > 0);
        }
        Err(issues) => assert!(!issues.is_empty(), "refused without an issue"),
    }
});
