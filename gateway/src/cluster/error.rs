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

/// An error and its causes, outermost first: client libraries often say
/// only what failed ("error performing TLS handshake") and keep why in
/// the source ("invalid peer certificate: UnknownIssuer").
pub fn with_causes(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.ends_with(&more) {
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
