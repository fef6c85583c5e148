//! TLS for the SPICE listeners: the rustls server configuration built from PEM files, and the
//! handshake of one accepted connection.
//!
//! rustls with the `ring` provider passed explicitly (never the process default, so a second
//! provider pulled in by some other crate cannot make it panic), TLS 1.2 and 1.3 with rustls'
//! safe default cipher suites. With a CA file, every client must present a certificate that
//! chains to it ([`WebPkiClientVerifier`]); without one no client certificate is asked for.
//! The SPICE link runs inside TLS unchanged (brief §1.1).

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// How long a client may take for the TLS handshake; the SPICE link then has its own
/// `LINK_TIMEOUT`. One or two round trips and a signature: a peer that stalls is cut off.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest PEM file read (a certificate chain or CA bundle is a few KiB; the system bundle
/// about 200 KiB).
const MAX_PEM_FILE: u64 = 1 << 20;

/// Where the TLS listeners' certificate, key and client CAs come from (PEM files; the
/// configuration layer resolves systemd credentials into paths).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    /// The server's certificate chain, leaf first.
    pub cert: PathBuf,
    /// The server's private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// Client certificates must chain to these CAs; `None`: none is asked for.
    pub client_ca: Option<PathBuf>,
}

/// Why the TLS configuration could not be built. Each names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("Cannot read {what} {path:?}")]
    Read {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{what} {path:?} is larger than {MAX_PEM_FILE} bytes")]
    TooLarge { what: &'static str, path: PathBuf },
    #[error("{what} {path:?} is not valid PEM")]
    Pem {
        what: &'static str,
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("{what} {path:?} holds no {expected}")]
    Empty {
        what: &'static str,
        path: PathBuf,
        expected: &'static str,
    },
    #[error("A certificate in the TLS client CA file {path:?} is not a usable CA certificate")]
    CaCert {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("The CA certificates in {path:?} are not usable for client verification")]
    ClientCa {
        path: PathBuf,
        #[source]
        source: rustls::server::VerifierBuilderError,
    },
    #[error("The certificate {cert:?} and the key {key:?} are not usable together")]
    CertKey {
        cert: PathBuf,
        key: PathBuf,
        #[source]
        source: rustls::Error,
    },
}

/// Reads a PEM file of at most [`MAX_PEM_FILE`] bytes.
fn read_pem(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let read = |source| TlsError::Read {
        what,
        path: path.to_owned(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read)?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(read)?;
    if bytes.len() as u64 > MAX_PEM_FILE {
        return Err(TlsError::TooLarge {
            what,
            path: path.to_owned(),
        });
    }
    Ok(bytes)
}

fn certificates(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read_pem(what, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            what,
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            what,
            path: path.to_owned(),
            expected: "CERTIFICATE",
        });
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let what = "the TLS key";
    let pem = read_pem(what, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|source| match source {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::Empty {
            what,
            path: path.to_owned(),
            expected: "PRIVATE KEY",
        },
        source => TlsError::Pem {
            what,
            path: path.to_owned(),
            source,
        },
    })
}

/// Builds the server configuration: reads and checks every file now, so that a bad file
/// fails start-up rather than each handshake.
pub fn server_config(settings: &TlsSettings) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = certificates("the TLS certificate", &settings.cert)?;
    let key = private_key(&settings.key)?;
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|source| TlsError::CertKey {
            cert: settings.cert.clone(),
            key: settings.key.clone(),
            source,
        })?;
    let builder = match &settings.client_ca {
        Some(path) => {
            let mut roots = RootCertStore::empty();
            for cert in certificates("the TLS client CA file", path)? {
                roots.add(cert).map_err(|source| TlsError::CaCert {
                    path: path.clone(),
                    source,
                })?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|source| TlsError::ClientCa {
                    path: path.clone(),
                    source,
                })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|source| TlsError::CertKey {
            cert: settings.cert.clone(),
            key: settings.key.clone(),
            source,
        })?;
    Ok(Arc::new(config))
}

/// Accepts TLS on connections of the TLS listeners.
#[derive(Clone)]
pub(crate) struct Tls {
    acceptor: TlsAcceptor,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls").finish_non_exhaustive()
    }
}

/// Why a TLS handshake did not complete.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HandshakeError {
    #[error("TLS handshake failed")]
    Failed(#[source] io::Error),
    #[error("Client did not complete the TLS handshake within {0:?}")]
    Timeout(Duration),
}

impl Tls {
    pub(crate) fn new(config: Arc<ServerConfig>) -> Self {
        Self {
            acceptor: TlsAcceptor::from(config),
        }
    }

    /// Runs the server side of the handshake, within [`TLS_HANDSHAKE_TIMEOUT`].
    pub(crate) async fn accept<S>(&self, stream: S) -> Result<TlsStream<S>, HandshakeError>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, self.acceptor.accept(stream)).await {
            Ok(Ok(tls)) => {
                let (_, conn) = tls.get_ref();
                tracing::debug!(
                    version = ?conn.protocol_version(),
                    suite = ?conn.negotiated_cipher_suite().map(|s| s.suite()),
                    client_cert = conn.peer_certificates().is_some(),
                    "TLS established"
                );
                Ok(tls)
            }
            Ok(Err(e)) => Err(HandshakeError::Failed(e)),
            Err(_) => Err(HandshakeError::Timeout(TLS_HANDSHAKE_TIMEOUT)),
        }
    }
}
