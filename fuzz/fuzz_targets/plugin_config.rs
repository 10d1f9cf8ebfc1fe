//! The plugin's `config` text: any UTF-8 input must parse or yield issues,
//! never panic, and a refused config always names at least one issue;
//! every accepted route path is one a request can reach.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openclaw_webhooks::config;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match config::parse(text) {
        Ok(config) => {
            for route in &config.routes {
                assert!(config::valid_route_id(&route.id));
                assert!(route.path.starts_with('/'));
                // A served path is reachable. Requests drop one trailing
                // `/`, so the request for the path plus `/` resolves to it
                // (the only one that does when the path ends with `/`).
                assert!(route.path.chars().all(config::request_path_char));
                let request = format!("{}/", route.path);
                assert_eq!(config::request_path(&request), route.path);
                assert!(!route.session_key.is_empty());
            }
            assert!(config.workers > 0);
        }
        Err(issues) => assert!(!issues.is_empty(), "refused without an issue"),
    }
});
