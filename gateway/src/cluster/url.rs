//! `ServiceUrl`: a connection URL whose password never reaches a log, an
//! error or a reply: `Debug` and `Display` print it redacted, and only
//! [`ServiceUrl::expose`] gives the real text to a client library.

use std::fmt;

/// Which service a URL is for; decides the schemes accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    Postgres,
    Redis,
}

impl Service {
    pub fn name(self) -> &'static str {
        match self {
            Service::Postgres => "PostgreSQL",
            Service::Redis => "Redis",
        }
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct ServiceUrl(String);

impl ServiceUrl {
    /// Checks the URL's form for `service`; the message never repeats the
    /// URL, which may hold a password.
    pub fn parse(service: Service, text: &str) -> Result<Self, String> {
        let text = text.trim();
        match service {
            Service::Postgres => {
                if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
                    return Err("expected a postgres:// or postgresql:// URL".into());
                }
                // The client's own parser decides; its messages name the
                // offending parameter, never a value.
                crate::taskflow::parse_pg_url(text)
                    .map_err(|e| format!("not a usable PostgreSQL URL: {e}"))?;
            }
            Service::Redis => {
                if !(text.starts_with("redis://") || text.starts_with("rediss://")) {
                    return Err("expected a redis:// or rediss:// (TLS) URL".into());
                }
                if text.starts_with("rediss://") && text.contains('#') {
                    // `#insecure` would skip verifying the server.
                    return Err(
                        "a rediss:// URL takes no #fragment: the server's certificate is \
                         always verified (SSL_CERT_FILE names a private CA)"
                            .into(),
                    );
                }
                redis::parse_redis_url(text).ok_or("not a usable Redis URL")?;
            }
        }
        Ok(Self(text.to_owned()))
    }

    /// The URL with its password, for the client library only.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password (in the user info or a `password`
    /// parameter) replaced by `***`.
    pub fn redacted(&self) -> String {
        redact(&self.0)
    }
}

fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "<unparsable URL>".to_owned();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => p.to_owned(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => tail.to_owned(),
    };
    format!("{scheme}://{authority}{tail}")
}

impl fmt::Debug for ServiceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServiceUrl({})", self.redacted())
    }
}

impl fmt::Display for ServiceUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_never_show_the_password() {
        let url = ServiceUrl::parse(
            Service::Postgres,
            "postgres://app:s3cret@db:5432/gw?password=other&sslmode=disable",
        )
        .unwrap();
        for shown in [format!("{url}"), format!("{url:?}")] {
            assert!(
                !shown.contains("s3cret") && !shown.contains("other"),
                "{shown}"
            );
            assert!(shown.contains("postgres://app:***@db:5432/gw?password=***&sslmode=disable"));
        }
        assert!(url.expose().contains("s3cret"));
        let redis = ServiceUrl::parse(Service::Redis, "redis://:pw@cache:6379/0").unwrap();
        assert_eq!(redis.to_string(), "redis://:***@cache:6379/0");
        let plain = ServiceUrl::parse(Service::Redis, "redis://127.0.0.1/").unwrap();
        assert_eq!(plain.to_string(), "redis://127.0.0.1/");
    }

    #[test]
    fn a_url_of_the_wrong_kind_is_refused_without_echoing_it() {
        let err = ServiceUrl::parse(Service::Postgres, "mysql://u:pw@h/db").unwrap_err();
        assert!(!err.contains("pw"), "{err}");
        assert!(ServiceUrl::parse(Service::Redis, "postgres://h/db").is_err());
        assert!(ServiceUrl::parse(Service::Redis, "rediss://h/").is_ok());
        assert!(ServiceUrl::parse(Service::Redis, "rediss://h/#insecure")
            .unwrap_err()
            .contains("always verified"));
        assert!(ServiceUrl::parse(Service::Postgres, "postgres://h/db?bogus=1").is_err());
    }
}
