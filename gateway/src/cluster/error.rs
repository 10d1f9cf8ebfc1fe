//! `ClusterError`: what can go wrong reaching or using the cluster's
//! services. Messages name the service and show URLs redacted.

use std::fmt;

use super::url::{Service, ServiceUrl};

#[derive(Debug)]
pub enum ClusterError {
    /// The service did not accept a connection.
    Unreachable {
        service: Service,
        /// Redacted.
        url: String,
        detail: String,
    },
    /// A statement on a connection that was working failed.
    Postgres { action: String, detail: String },
    /// The schema in PostgreSQL cannot be used by this build.
    Schema(String),
    /// The embedded store being copied cannot be read.
    Source { path: String, detail: String },
}

/// An error and its causes, outermost first, one line: client libraries
/// often say only what failed ("error performing TLS handshake") and keep
/// why in the source ("invalid peer certificate: UnknownIssuer"). Only the
/// first line of each is kept: a server error's `DETAIL` line may quote a
/// row's values.
pub fn with_causes(err: &dyn std::error::Error) -> String {
    let first_line =
        |e: &dyn std::error::Error| e.to_string().lines().next().unwrap_or("").to_owned();
    let mut text = first_line(err);
    let mut cause = err.source();
    while let Some(c) = cause {
        let more = first_line(c);
        if !more.is_empty() && !text.ends_with(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

impl ClusterError {
    pub fn unreachable(service: Service, url: &ServiceUrl, detail: impl fmt::Display) -> Self {
        Self::Unreachable {
            service,
            url: url.redacted(),
            detail: detail.to_string(),
        }
    }

    /// Maps a PostgreSQL error on `action` (the client's messages hold no
    /// connection parameters).
    pub fn postgres(action: &str) -> impl Fn(postgres::Error) -> Self + '_ {
        move |e| Self::Postgres {
            action: action.to_owned(),
            detail: e.to_string(),
        }
    }
}

impl fmt::Display for ClusterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unreachable {
                service,
                url,
                detail,
            } => write!(f, "cannot reach {} at {url}: {detail}", service.name()),
            Self::Postgres { action, detail } => write!(f, "PostgreSQL: cannot {action}: {detail}"),
            Self::Schema(detail) => write!(f, "PostgreSQL schema: {detail}"),
            Self::Source { path, detail } => write!(f, "store {path}: {detail}"),
        }
    }
}

impl std::error::Error for ClusterError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    #[test]
    fn causes_are_named_on_one_line_without_a_servers_detail_lines() {
        let err = Layer(
            "error performing TLS handshake",
            Some(Box::new(Layer(
                "invalid peer certificate: UnknownIssuer",
                None,
            ))),
        );
        assert_eq!(
            with_causes(&err),
            "error performing TLS handshake: invalid peer certificate: UnknownIssuer"
        );
        let db = Layer(
            "db error",
            Some(Box::new(Layer(
                "ERROR: duplicate key\nDETAIL: Key (goal)=(a private goal) exists.",
                None,
            ))),
        );
        assert_eq!(with_causes(&db), "db error: ERROR: duplicate key");
        // A cause its outer message already ends with is not repeated.
        let echo = Layer(
            "cannot connect: refused",
            Some(Box::new(Layer("refused", None))),
        );
        assert_eq!(with_causes(&echo), "cannot connect: refused");
    }
}
