//! SPICE over TLS end to end: certificates made in-test with rcgen (a CA, a server certificate
//! for 127.0.0.1/localhost signed by it, client certificates, an expired server certificate,
//! one from another CA), the real spice-gtk client (tests/tools/spice_client.py) and a rustls
//! client speaking the link by hand (tests/spice_support/tls.rs).

mod spice_support;

use std::path::Path;
use std::sync::Arc;

use spice_support::raw::{link_bytes, LinkOutcome, Raw};
use spice_support::tls::{
    assert_gtk_refused, client_config, gtk_tls, openssl_certificates, tls_link, Pki,
};
use spice_support::*;
use vhost_user_spice::display::Rect;
use vhost_user_spice::spice::ticket::Ticketing;
use vhost_user_spice::spice::wire::ChannelType;
use vhost_user_spice::spice::{
    ListenerSpec, SecureChannels, SpiceConfig, SpiceError, TlsError, TlsSettings,
};

const LOCAL: ([u8; 4], u16) = ([127, 0, 0, 1], 0);
const NEED_SECURED: u32 = 5;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gtk_client_sees_the_screen_over_tls() {
    if !have_python_client() {
        return;
    }
    let pki = Pki::new();
    let rig = tls_only(pki.server(false, false)).await;
    assert_eq!(rig.server.local_addr(), None, "no plaintext TCP listener");
    let mut c = gtk_tls(tls_port(&rig), &pki.ca_file(), None).await;
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
    let mut c = gtk_tls(tls_port(&rig), &pki.ca_file(), None).await;
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
    let mut c = gtk_tls(tls_port(&rig), &pki.ca_file(), None).await;
    assert_gtk_refused(&mut c).await;
    assert_eq!(rig.server.client_count(), 0);
    rig.server.shutdown().await;
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
    let mut c = gtk_tls(tls_port(&rig), &pki.ca_file(), None).await;
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
    let mut c = gtk_tls(tls_port(&rig), &ca, None).await;
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
