//! Certificates for the TLS tests, made with rcgen (a CA, server and client certificates
//! signed by it, expired ones, another CA's), a rustls client speaking the SPICE link by hand,
//! and spice-gtk over TLS.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rsa::pkcs8::DecodePublicKey;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sha1::Sha1;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use vhost_user_spice::spice::wire::ChannelType;
use vhost_user_spice::spice::TlsSettings;

use super::raw::{link_bytes, LinkOutcome};
use super::{PyClient, WAIT};

/// A CA that signs certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf certificate and its key, PEM.
    pub fn sign(&self, names: &[&str], client: bool, expired: bool) -> (String, String) {
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("client"),
        );
        params.extended_key_usages = vec![if client {
            ExtendedKeyUsagePurpose::ClientAuth
        } else {
            ExtendedKeyUsagePurpose::ServerAuth
        }];
        if expired {
            params.not_before = rcgen::date_time_ymd(2020, 1, 1);
            params.not_after = rcgen::date_time_ymd(2021, 1, 1);
        }
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }
}

/// Everything the tests need, as files in a temporary directory.
pub struct Pki {
    pub dir: tempfile::TempDir,
    pub ca: Ca,
    pub other_ca: Ca,
}

impl Pki {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            ca: Ca::new("vhost-user-spice test CA"),
            other_ca: Ca::new("another CA"),
        }
    }

    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    pub fn ca_file(&self) -> PathBuf {
        self.write("ca-cert.pem", &self.ca.pem)
    }

    /// Server certificate and key files for 127.0.0.1/localhost: by our CA or the other one,
    /// valid or expired.
    pub fn server(&self, other_ca: bool, expired: bool) -> TlsSettings {
        let ca = if other_ca { &self.other_ca } else { &self.ca };
        let (cert, key) = ca.sign(&["127.0.0.1", "localhost"], false, expired);
        let tag = format!("{other_ca}-{expired}");
        TlsSettings {
            cert: self.write(&format!("server-cert-{tag}.pem"), &cert),
            key: self.write(&format!("server-key-{tag}.pem"), &key),
            client_ca: None,
        }
    }
}

/// spice-gtk on the TLS `port` only, trusting `ca`, with an optional password.
pub async fn gtk_tls(port: u16, ca: &Path, password: Option<&str>) -> PyClient {
    let mut args = vec![
        "--tls-port".into(),
        port.to_string(),
        "--ca-file".into(),
        ca.display().to_string(),
        "127.0.0.1".into(),
        "-".into(),
    ];
    args.extend(password.map(str::to_owned));
    PyClient::spawn(&args).await
}

/// Waits for spice-gtk to give up on a channel, and checks it never saw the screen.
pub async fn assert_gtk_refused(c: &mut PyClient) -> serde_json::Value {
    let e = c
        .wait_for("a channel error", |e| {
            e["event"] == "channel" && e["what"].as_str().is_some_and(|w| w.starts_with("error"))
        })
        .await;
    assert!(
        !c.events.iter().any(|e| e["event"] == "primary"),
        "no display over a refused connection: {:?}",
        c.events
    );
    eprintln!("client refused: {e}");
    e
}

/// A rustls client trusting `ca`, with an optional client certificate.
pub fn client_config(ca: &str, identity: Option<(String, String)>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots);
    let config = match identity {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

/// Connects over TLS and runs a main-channel link with an empty password. Any TLS or socket
/// failure (the server refusing us) is an `Err`.
pub async fn tls_link(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<LinkOutcome> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let connector = tokio_rustls::TlsConnector::from(config);
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut s = connector.connect(name, tcp).await?;
    tokio::time::timeout(WAIT, link_over(&mut s))
        .await
        .expect("the server answers or closes in time")
}

async fn link_over<S: AsyncRead + AsyncWrite + Unpin>(s: &mut S) -> std::io::Result<LinkOutcome> {
    s.write_all(&link_bytes(ChannelType::MAIN, 0, 0)).await?;
    let mut head = [0u8; 16];
    s.read_exact(&mut head).await?;
    assert_eq!(&head[..4], b"REDQ");
    let size = u32::from_le_bytes(head[12..16].try_into().unwrap()) as usize;
    let mut reply = vec![0; size];
    s.read_exact(&mut reply).await?;
    let error = u32::from_le_bytes(reply[..4].try_into().unwrap());
    if error != 0 {
        return Ok(LinkOutcome::ReplyError(error));
    }
    let key = rsa::PublicKey::from_public_key_der(&reply[4..166]).unwrap();
    let ticket = key.oaep_encrypt::<Sha1>(&[0]).unwrap();
    let mut out = 1u32.to_le_bytes().to_vec();
    out.extend_from_slice(&ticket);
    s.write_all(&out).await?;
    let mut result = [0u8; 4];
    s.read_exact(&mut result).await?;
    Ok(LinkOutcome::Result(u32::from_le_bytes(result)))
}

/// The openssl commands of docs/tls.md ("Certificates"), for 127.0.0.1, run in `dir`:
/// `ca-cert.pem`, `server-cert.pem`, `server-key.pem`. `None`: openssl is missing (outside CI).
pub fn openssl_certificates(dir: &Path) -> Option<()> {
    let sh = |script: &str| {
        std::process::Command::new("sh")
            .args(["-eu", "-c", script])
            .current_dir(dir)
            .output()
            .map(|o| {
                assert!(
                    o.status.success(),
                    "{script}: {}",
                    String::from_utf8_lossy(&o.stderr)
                )
            })
    };
    super::client("/usr/bin/openssl")?;
    sh(r#"
openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=my SPICE CA" \
    -keyout ca-key.pem -out ca-cert.pem
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout server-key.pem -out server.csr
printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\n' > ext.cnf
openssl x509 -req -in server.csr -CA ca-cert.pem -CAkey ca-key.pem -CAcreateserial \
    -days 825 -extfile ext.cnf -out server-cert.pem
"#)
    .unwrap();
    Some(())
}
