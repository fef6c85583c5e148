//! SPICE over TLS end to end: certificates made in-test with rcgen (a CA, a server certificate
//! for 127.0.0.1/localhost signed by it, client certificates, an expired server certificate,
//! one from another CA), the real spice-gtk client (tests/tools/spice_client.py) and a rustls
//! client speaking the link by hand.

mod spice_support;

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
use spice_support::raw::{link_bytes, LinkOutcome, Raw};
use spice_support::*;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use vhost_user_spice::display::Rect;
use vhost_user_spice::spice::ticket::Ticketing;
use vhost_user_spice::spice::wire::ChannelType;
use vhost_user_spice::spice::{
    ListenerSpec, SecureChannels, SpiceConfig, SpiceError, TlsError, TlsSettings,
};

const LOCAL: ([u8; 4], u16) = ([127, 0, 0, 1], 0);
const NEED_SECURED: u32 = 5;

/// A CA that signs certificates.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new(name: &str) -> Self {
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
    fn sign(&self, names: &[&str], client: bool, expired: bool) -> (String, String) {
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
struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
    other_ca: Ca,
}

impl Pki {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            ca: Ca::new("vhost-user-spice test CA"),
            other_ca: Ca::new("another CA"),
        }
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn ca_file(&self) -> PathBuf {
        self.write("ca-cert.pem", &self.ca.pem)
    }

    /// Server certificate and key files: by our CA or the other one, valid or expired.
    fn server(&self, other_ca: bool, expired: bool) -> TlsSettings {
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

/// A server whose only listener is TLS, with one frame drawn.
async fn tls_only(tls: TlsSettings) -> Rig {
    let rig = start_with(SpiceConfig {
        listeners: vec![ListenerSpec::tls(LOCAL.into())],
        tls: Some(tls),
        secure_channels: SecureChannels::ALL,
        ..SpiceConfig::new(Ticketing::Disabled)
    })
    .await;
    draw(&rig);
    rig
}

fn draw(rig: &Rig) {
    rig.guest.create_primary(160, 90);
    rig.guest
        .draw(Rect::ltrb(0, 0, 160, 90), pattern(160, 90, 4));
    rig.guest.sync();
}

fn tls_port(rig: &Rig) -> u16 {
    rig.server.tls_local_addr().expect("a TLS listener").port()
}

/// spice-gtk on the TLS port only, trusting `ca`.
async fn gtk_tls(port: u16, ca: &Path) -> PyClient {
    PyClient::spawn(&[
        "--tls-port".into(),
        port.to_string(),
        "--ca-file".into(),
        ca.display().to_string(),
        "127.0.0.1".into(),
        "-".into(),
    ])
    .await
}

/// Waits for spice-gtk to give up on the main channel, and checks it never saw the screen.
async fn assert_gtk_refused(c: &mut PyClient) {
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
    eprintln!("client refused the server: {e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gtk_client_sees_the_screen_over_tls() {
    if !have_python_client() {
        return;
    }
    let pki = Pki::new();
    let rig = tls_only(pki.server(false, false)).await;
    assert_eq!(rig.server.local_addr(), None, "no plaintext TCP listener");
    let mut c = gtk_tls(tls_port(&rig), &pki.ca_file()).await;
    c.wait_event("mark").await;
    assert_same_picture(&c.dump(200).await, &rig.guest.primary_rgb());
    // Updates keep flowing: many small draws, each its own message (and TLS record).
    for i in 0..40 {
        let x = (i % 10) * 16;
        let y = (i / 10) * 16;
        rig.guest
            .fill(Rect::ltrb(x, y, x + 12, y + 12), 0x0010_2030 * i as u32);
    }
    rig.guest.sync();
    assert_same_picture(&c.dump(300).await, &rig.guest.primary_rgb());
    // The cursor and inputs channels came over TLS as well.
    c.send(serde_json::json!({"cmd": "key", "scancode": 0x1e}))
        .await;
    c.wait_event("sent").await;
    assert!(wait_until(|| rig.sink.events().len() >= 2).await);
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn need_secured_moves_gtk_to_the_tls_port() {
    if !have_python_client() {
        return;
    }
    let pki = Pki::new();
    let rig = start_with(SpiceConfig {
        listeners: vec![
            ListenerSpec::tcp(LOCAL.into()),
            ListenerSpec::tls(LOCAL.into()),
        ],
        tls: Some(pki.server(false, false)),
        secure_channels: SecureChannels::ALL,
        ..SpiceConfig::new(Ticketing::Disabled)
    })
    .await;
    draw(&rig);
    // A plaintext link is answered NEED_SECURED before any key is sent.
    let mut raw = Raw::connect(rig.port).await;
    assert_eq!(
        raw.link(ChannelType::MAIN, 0, 0, "").await,
        LinkOutcome::ReplyError(NEED_SECURED)
    );
    // spice-gtk given both ports tries the plaintext one, hears NEED_SECURED, moves to TLS.
    let mut c = PyClient::spawn(&[
        "--tls-port".into(),
        tls_port(&rig).to_string(),
        "--ca-file".into(),
        pki.ca_file().display().to_string(),
        "127.0.0.1".into(),
        rig.port.to_string(),
    ])
    .await;
    c.wait_event("mark").await;
    assert_same_picture(&c.dump(200).await, &rig.guest.primary_rgb());
    rig.server.shutdown().await;
}

#[tokio::test]
async fn plaintext_spice_on_the_tls_port_gets_no_link_reply() {
    let pki = Pki::new();
    let rig = tls_only(pki.server(false, false)).await;
    let mut raw = Raw::connect(tls_port(&rig)).await;
    raw.send_raw(&link_bytes(ChannelType::MAIN, 0, 0)).await;
    let answer = raw.expect_closed().await;
    assert!(
        !answer.starts_with(b"REDQ"),
        "a plaintext link on the TLS port is not answered in SPICE"
    );
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gtk_refuses_an_expired_certificate() {
    if !have_python_client() {
        return;
    }
    let pki = Pki::new();
    let rig = tls_only(pki.server(false, true)).await;
    let mut c = gtk_tls(tls_port(&rig), &pki.ca_file()).await;
    assert_gtk_refused(&mut c).await;
    assert_eq!(rig.server.client_count(), 0);
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gtk_refuses_a_certificate_from_another_ca() {
    if !have_python_client() {
        return;
    }
    let pki = Pki::new();
    let rig = tls_only(pki.server(true, false)).await;
    let mut c = gtk_tls(tls_port(&rig), &pki.ca_file()).await;
    assert_gtk_refused(&mut c).await;
    assert_eq!(rig.server.client_count(), 0);
    rig.server.shutdown().await;
}

/// A rustls client trusting `ca`, with an optional client certificate.
fn client_config(ca: &str, identity: Option<(String, String)>) -> Arc<rustls::ClientConfig> {
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
async fn tls_link(
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

#[tokio::test]
async fn client_certificates_are_required_when_a_ca_is_set() {
    let pki = Pki::new();
    let tls = TlsSettings {
        client_ca: Some(pki.ca_file()),
        ..pki.server(false, false)
    };
    let rig = tls_only(tls).await;
    let addr = rig.server.tls_local_addr().unwrap();
    let ours = pki.ca.sign(&["alice"], true, false);
    let foreign = pki.other_ca.sign(&["mallory"], true, false);
    let expired = pki.ca.sign(&["bob"], true, true);

    let linked = tls_link(addr, client_config(&pki.ca.pem, Some(ours))).await;
    assert_eq!(
        linked.unwrap(),
        LinkOutcome::Result(0),
        "a good client cert links"
    );
    for (what, identity) in [
        ("no client certificate", None),
        ("a certificate from another CA", Some(foreign)),
        ("an expired certificate", Some(expired)),
    ] {
        let r = tls_link(addr, client_config(&pki.ca.pem, identity)).await;
        assert!(r.is_err(), "{what} is refused, got {r:?}");
        eprintln!("{what}: {}", r.unwrap_err());
    }
    rig.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gtk_without_a_client_certificate_is_refused() {
    if !have_python_client() {
        return;
    }
    let pki = Pki::new();
    let tls = TlsSettings {
        client_ca: Some(pki.ca_file()),
        ..pki.server(false, false)
    };
    let rig = tls_only(tls).await;
    let mut c = gtk_tls(tls_port(&rig), &pki.ca_file()).await;
    assert_gtk_refused(&mut c).await;
    rig.server.shutdown().await;
}

#[tokio::test]
async fn bad_tls_files_fail_start_up_naming_the_file() {
    let pki = Pki::new();
    let good = pki.server(false, false);
    let start = |tls: Option<TlsSettings>| async move {
        let guest = Guest::new();
        vhost_user_spice::spice::SpiceServer::start(
            SpiceConfig {
                listeners: vec![ListenerSpec::tls(LOCAL.into())],
                tls,
                ..SpiceConfig::new(Ticketing::Disabled)
            },
            guest.display.clone(),
            Arc::new(RecordingSink::default()),
            Arc::new(RecordingControl::default()),
        )
        .await
        .map(|_| ())
    };
    assert!(matches!(start(None).await, Err(SpiceError::NoTlsSettings)));
    let missing = TlsSettings {
        cert: pki.dir.path().join("nope.pem"),
        ..good.clone()
    };
    assert!(matches!(
        start(Some(missing)).await,
        Err(SpiceError::Tls(TlsError::Read { .. }))
    ));
    let not_pem = TlsSettings {
        key: pki.write("garbage.pem", "hello\n"),
        ..good.clone()
    };
    let e = start(Some(not_pem)).await.unwrap_err();
    assert!(
        matches!(e, SpiceError::Tls(TlsError::Empty { .. })),
        "{e:?}"
    );
    // A key that is not the certificate's.
    let (_, other_key) = pki.ca.sign(&["127.0.0.1"], false, false);
    let mismatched = TlsSettings {
        key: pki.write("other-key.pem", &other_key),
        ..good.clone()
    };
    let e = start(Some(mismatched)).await.unwrap_err();
    assert!(
        matches!(e, SpiceError::Tls(TlsError::CertKey { .. })),
        "{e:?}"
    );
    let ca_is_a_key = TlsSettings {
        client_ca: Some(good.key.clone()),
        ..good.clone()
    };
    let e = start(Some(ca_is_a_key)).await.unwrap_err();
    assert!(
        matches!(e, SpiceError::Tls(TlsError::Empty { .. })),
        "{e:?}"
    );
    assert!(start(Some(good)).await.is_ok());
}

/// The openssl commands of docs/tls.md ("Certificates"), for 127.0.0.1.
fn openssl_certificates(dir: &Path) -> Option<()> {
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
    client("/usr/bin/openssl")?;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_certificates_work_with_spice_probe() {
    const PROBE: &str = "/work/shared/spice-kit/spice-probe";
    if !have_python_client() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    if openssl_certificates(dir.path()).is_none() {
        return;
    }
    let rig = tls_only(TlsSettings {
        cert: dir.path().join("server-cert.pem"),
        key: dir.path().join("server-key.pem"),
        client_ca: None,
    })
    .await;
    let ca = dir.path().join("ca-cert.pem");
    let mut c = gtk_tls(tls_port(&rig), &ca).await;
    c.wait_event("mark").await;
    assert_same_picture(&c.dump(200).await, &rig.guest.primary_rgb());
    if Path::new(PROBE).exists() {
        let shot = dir.path().join("shot.ppm");
        let out = tokio::process::Command::new(PYTHON)
            .arg(PROBE)
            .args(["--tls-port", &tls_port(&rig).to_string(), "--ca-file"])
            .arg(&ca)
            .args(["--quiet-time", "0.2", "--screenshot"])
            .arg(&shot)
            .arg("127.0.0.1")
            .kill_on_drop(true)
            .output();
        let out = tokio::time::timeout(WAIT, out).await.unwrap().unwrap();
        assert!(
            out.status.success(),
            "spice-probe over TLS failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ppm = read_ppm(&std::fs::read(&shot).unwrap());
        assert_same_picture(&ppm, &rig.guest.primary_rgb());
    } else {
        eprintln!("!!!!! SKIPPED the spice-probe part: {PROBE} not present");
    }
    rig.server.shutdown().await;
}
