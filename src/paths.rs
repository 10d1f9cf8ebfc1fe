//! How request paths (and the configured paths they are matched against)
//! become route keys.

/// Normalises a path the way both config and requests are matched: trimmed,
/// a leading `/`, and one trailing `/` removed. Nothing else (no case
/// folding, no `//` collapsing, no percent-decoding).
pub fn normalize_path(raw: &str) -> String {
    let trimmed = raw.trim();
    let mut path = if trimmed.starts_with('/') {
        trimmed.to_owned()
    } else {
        format!("/{trimmed}")
    };
    if path.len() > 1 && path.ends_with('/') {
        path.pop();
    }
    path
}

/// What routes are looked up by: a normalised path, ASCII lower-cased.
/// Paths match case-insensitively, as the OpenClaw Gateway routes them
/// (`/PLUGINS/WEBHOOKS/X` reaches the route on `/plugins/webhooks/x`).
pub fn route_key(normalised: &str) -> String {
    normalised.to_ascii_lowercase()
}

/// The route key of a request path: [`resolve_path`], then [`route_key`].
pub fn request_path(raw: &str) -> String {
    route_key(&resolve_path(raw))
}

/// A path, requested or configured, rooted at `/`, dot segments resolved as
/// a URL parser does (`/a/./b/../c` is `/a/c`), then [`normalize_path`].
pub fn resolve_path(raw: &str) -> String {
    let has_dots = raw.split('/').any(|s| s == "." || s == "..");
    if !has_dots {
        return normalize_path(raw);
    }
    let rooted = raw.strip_prefix('/').unwrap_or(raw);
    let segments: Vec<&str> = rooted.split('/').collect();
    let mut out: Vec<&str> = Vec::with_capacity(segments.len());
    for (i, seg) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match *seg {
            "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
        if last && matches!(*seg, "." | "..") {
            out.push("");
        }
    }
    normalize_path(&format!("/{}", out.join("/")))
}

/// Whether a request's path can carry `c` as it is. The HTTP parser
/// refuses the other characters (they must be percent-encoded), and `?`
/// and `#` end the path.
pub fn request_path_char(c: char) -> bool {
    matches!(c, '!' | '"' | '$'..=';' | '=' | '@'..='_' | 'a'..='~')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_normalised() {
        assert_eq!(
            normalize_path(" plugins/webhooks/x/ "),
            "/plugins/webhooks/x"
        );
        assert_eq!(normalize_path(""), "/");
        assert_eq!(normalize_path("/"), "/");
        assert_eq!(normalize_path("/x//"), "/x/");
    }

    #[test]
    fn paths_match_ascii_case_insensitively() {
        assert_eq!(
            request_path("/PLUGINS/Webhooks/Zapier/"),
            route_key("/plugins/webhooks/zapier")
        );
        assert_eq!(request_path("/A/./B/../C"), "/a/c");
    }

    #[test]
    fn request_paths_resolve_dot_segments() {
        assert_eq!(
            request_path("/plugins/webhooks/./zapier"),
            "/plugins/webhooks/zapier"
        );
        assert_eq!(
            request_path("/plugins/x/../webhooks/zapier/"),
            "/plugins/webhooks/zapier"
        );
        assert_eq!(request_path("/a/b/.."), "/a");
        assert_eq!(request_path("/../.."), "/");
        assert_eq!(request_path("/a//b"), "/a//b");
        assert_eq!(request_path("/a/.b/c"), "/a/.b/c");
    }
}
