//! How connections reach PostgreSQL: over TLS when the URL says
//! `sslmode=require`, plain TCP otherwise (`disable`, and `prefer`, the
//! default). Over TLS the server's certificate and host name are always
//! verified (as libpq's `verify-full`), against the system's trusted
//! certificates, or those of the PEM file `SSL_CERT_FILE` (and directory
//! `SSL_CERT_DIR`) when set, such as a private CA's: the same trust as
//! the plugins' `rediss://` connections.

use std::sync::Arc;

use postgres::config::SslMode;
use postgres::{Client, Config, NoTls};
use rustls::{ClientConfig, RootCertStore};
use tokio_postgres_rustls::MakeRustlsConnect;

/// Parses a PostgreSQL URL. libpq's `sslmode=verify-ca` and
/// `sslmode=verify-full`, which the client's parser does not know, mean
/// `require` here: this module always verifies the certificate and the
/// host name.
pub fn parse_url(url: &str) -> Result<Config, postgres::Error> {
    let mut text = url.to_owned();
    for strict in ["sslmode=verify-full", "sslmode=verify-ca"] {
        text = text.replace(strict, "sslmode=require");
    }
    text.parse()
}

#[derive(Clone)]
pub enum Transport {
    Plain,
    Tls(MakeRustlsConnect),
}

impl Transport {
    /// The transport `config`'s `sslmode` asks for. Building the TLS
    /// settings reads the system's certificates once.
    pub fn for_config(config: &Config) -> Result<Self, rustls::Error> {
        // Any mode but these two (today `require`) means TLS.
        if matches!(config.get_ssl_mode(), SslMode::Disable | SslMode::Prefer) {
            return Ok(Transport::Plain);
        }
        let mut roots = RootCertStore::empty();
        // Unreadable entries of the store are skipped (and logged): the
        // certificates that did load still verify, and with none every
        // server is refused, by name, at its handshake.
        let loaded = rustls_native_certs::load_native_certs();
        for err in &loaded.errors {
            log::warn!("PostgreSQL TLS: a trusted certificate could not be read: {err}");
        }
        roots.add_parsable_certificates(loaded.certs);
        let tls =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()?
                .with_root_certificates(roots)
                .with_no_client_auth();
        Ok(Transport::Tls(MakeRustlsConnect::new(tls)))
    }

    pub fn connect(&self, config: &Config) -> Result<Client, postgres::Error> {
        match self {
            Transport::Plain => config.connect(NoTls),
            Transport::Tls(tls) => config.connect(tls.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transport(url: &str) -> Transport {
        Transport::for_config(&parse_url(url).unwrap()).unwrap()
    }

    #[test]
    fn tls_is_used_exactly_when_the_url_requires_it() {
        for url in [
            "postgres://gw@db/gw?sslmode=require",
            "postgres://gw@db/gw?sslmode=verify-full",
            "postgres://gw@db/gw?sslmode=verify-ca",
        ] {
            assert!(matches!(transport(url), Transport::Tls(_)), "{url}");
        }
        for url in [
            "postgres://gw@db/gw",
            "postgres://gw@db/gw?sslmode=prefer",
            "postgres://gw@db/gw?sslmode=disable",
        ] {
            assert!(matches!(transport(url), Transport::Plain), "{url}");
        }
        assert!(parse_url("postgres://gw@db/gw?sslmode=sometimes").is_err());
    }
}
