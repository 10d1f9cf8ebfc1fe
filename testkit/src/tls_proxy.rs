//! `TlsProxy`: TLS in front of the test PostgreSQL or Redis, so the
//! cluster's TLS is tested against the real servers. Each proxy makes its
//! own certificate authority and a server certificate for `127.0.0.1` and
//! `localhost`; a Gateway trusts it only when told to (`SSL_CERT_FILE`
//! naming [`TlsProxy::ca_file`]). Only TLS is accepted: a client that
//! speaks plain TCP is cut off, so a working connection proves it used TLS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::TempDir;

/// The first message of a PostgreSQL client that wants TLS.
const PG_SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

#[derive(Clone, Copy)]
enum Protocol {
    /// TLS after the PostgreSQL `SSLRequest` exchange.
    Postgres,
    /// TLS from the first byte.
    Redis,
}

pub struct TlsProxy {
    addr: SocketAddr,
    ca_file: PathBuf,
    sessions: Arc<AtomicUsize>,
    _dir: TempDir,
}

impl TlsProxy {
    /// TLS in front of the PostgreSQL server at `upstream`.
    pub fn postgres(upstream: SocketAddr) -> Self {
        Self::start(upstream, Protocol::Postgres)
    }

    /// TLS in front of the Redis server at `upstream`.
    pub fn redis(upstream: SocketAddr) -> Self {
        Self::start(upstream, Protocol::Redis)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The PEM file of the proxy's certificate authority.
    pub fn ca_file(&self) -> &Path {
        &self.ca_file
    }

    /// How many TLS sessions were established so far.
    pub fn sessions(&self) -> usize {
        self.sessions.load(Ordering::SeqCst)
    }

    fn start(upstream: SocketAddr, protocol: Protocol) -> Self {
        let dir = TempDir::new("tls");
        let (ca_pem, chain, key) = certificates();
        let ca_file = dir.write("ca.pem", &ca_pem);
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .unwrap();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        let sessions = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&sessions);
        // Serves until the test process ends, as `TcpProxy` does.
        std::thread::spawn(move || {
            runtime.block_on(async move {
                while let Ok((down, _)) = listener.accept().await {
                    let (acceptor, counted) = (acceptor.clone(), Arc::clone(&counted));
                    tokio::spawn(async move {
                        let _ = serve(down, upstream, protocol, acceptor, &counted).await;
                    });
                }
            });
        });
        Self {
            addr,
            ca_file,
            sessions,
            _dir: dir,
        }
    }
}

/// One client: the TLS handshake, then bytes both ways to the server.
async fn serve(
    mut down: TcpStream,
    upstream: SocketAddr,
    protocol: Protocol,
    acceptor: TlsAcceptor,
    sessions: &AtomicUsize,
) -> std::io::Result<()> {
    if let Protocol::Postgres = protocol {
        let mut first = [0u8; 8];
        down.read_exact(&mut first).await?;
        if first != PG_SSL_REQUEST {
            return Ok(()); // plain TCP: cut off
        }
        down.write_all(b"S").await?;
    }
    let mut tls = acceptor.accept(down).await?;
    sessions.fetch_add(1, Ordering::SeqCst);
    let mut up = TcpStream::connect(upstream).await?;
    tokio::io::copy_bidirectional(&mut tls, &mut up).await?;
    Ok(())
}

/// A new authority (its PEM), and a server certificate chain and key it
/// signed for `127.0.0.1` and `localhost`.
fn certificates() -> (String, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>) {
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "testkit certificate authority");
    let ca_key = KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let mut server = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    server
        .distinguished_name
        .push(DnType::CommonName, "testkit server");
    let server_key = KeyPair::generate().unwrap();
    let server_cert = server.signed_by(&server_key, &ca_cert, &ca_key).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
    (ca_cert.pem(), vec![server_cert.der().clone()], key)
}

/// One PEM file with the authorities of several proxies, for a Gateway's
/// `SSL_CERT_FILE` (which replaces the system's store, so it must hold
/// every authority the Gateway is to trust).
pub struct CaBundle {
    path: PathBuf,
    _dir: TempDir,
}

impl CaBundle {
    pub fn of(proxies: &[&TlsProxy]) -> Self {
        let dir = TempDir::new("ca-bundle");
        let pem: String = proxies
            .iter()
            .map(|p| std::fs::read_to_string(p.ca_file()).unwrap())
            .collect();
        let path = dir.write("bundle.pem", &pem);
        Self { path, _dir: dir }
    }

    pub fn path(&self) -> &str {
        self.path.to_str().unwrap()
    }
}
