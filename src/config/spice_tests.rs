//! The SPICE options: secure defaults, passwords, TLS files, activation.

use super::tests::{config, parse, password_file, path_str};
use super::*;

#[test]
fn ticketing_without_a_password_says_how_to_give_one() {
    let error = config(&["--fd", "3"]).unwrap_err();
    let text = error.to_string();
    for hint in ["--password-file", "spice-password", "--disable-ticketing"] {
        assert!(text.contains(hint), "{text} lacks {hint}");
    }
    let demo = config(&["--demo"]).unwrap_err().to_string();
    assert!(demo.contains("--demo --disable-ticketing"), "{demo}");
}

#[test]
fn password_from_file() {
    let file = password_file(b"s3cret\n");
    let config = config(&[
        "--fd",
        "3",
        "--password-file",
        path_str(&file),
        "--ticket-expiry",
        "60",
    ])
    .unwrap();
    assert_eq!(
        config.spice.ticketing,
        TicketSetting::Password {
            secret: Secret::new(*b"s3cret"),
            source: file.path().into(),
            expiry: Some(Duration::from_secs(60)),
        }
    );
    assert!(
        !format!("{config:?}").contains("s3cret"),
        "Debug hides the password"
    );
    let crlf = password_file(b"s3cret\r\n");
    let TicketSetting::Password { secret, .. } =
        config_with_password(&crlf).unwrap().spice.ticketing
    else {
        panic!("a password")
    };
    assert_eq!(secret, Secret::new(*b"s3cret"));
}

fn config_with_password(file: &tempfile::NamedTempFile) -> Result<Config, ConfigError> {
    config(&["--fd", "3", "--password-file", path_str(file)])
}

#[test]
fn rejects_bad_password_files() {
    for (content, reason) in [
        (&b""[..], "is empty"),
        (b"\n", "is empty"),
        (b"one\ntwo\n", "more than one line"),
        (b"a\0b", "NUL"),
        (&[b'x'; 61][..], "60 bytes"),
    ] {
        let file = password_file(content);
        let error = config_with_password(&file).unwrap_err();
        assert!(error.to_string().contains(reason), "{content:?}: {error}");
    }
    let error = config(&["--fd", "3", "--password-file", "/nonexistent/pw"]).unwrap_err();
    assert!(matches!(error, ConfigError::ReadPassword { .. }));
    assert!(password_file(&[b'x'; 60]).path().exists());
    assert!(config_with_password(&password_file(&[b'x'; 60])).is_ok());
}

#[test]
fn password_from_the_systemd_credential() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spice-password"), "from-credential\n").unwrap();
    let env = Environment {
        credentials_dir: Some(dir.path().into()),
        ..Environment::empty()
    };
    let args = parse(&["--fd", "3"]).unwrap();
    let config = Config::from_settings(args.settings(), &env, &Activated::default()).unwrap();
    let TicketSetting::Password { secret, source, .. } = config.spice.ticketing else {
        panic!("a password")
    };
    assert_eq!(secret, Secret::new(*b"from-credential"));
    assert_eq!(source, dir.path().join("spice-password"));
    // A blank credential (the unit's SetCredential= default) is no credential.
    std::fs::write(dir.path().join("spice-password"), "\n").unwrap();
    let error = Config::from_settings(args.settings(), &env, &Activated::default()).unwrap_err();
    assert!(matches!(error, ConfigError::NoPassword { .. }), "{error}");
    // --password-file wins over the credential.
    let file = password_file(b"from-file");
    let args = parse(&["--fd", "3", "--password-file", path_str(&file)]).unwrap();
    let config = Config::from_settings(args.settings(), &env, &Activated::default()).unwrap();
    assert!(
        matches!(config.spice.ticketing, TicketSetting::Password { secret, .. } if secret == Secret::new(*b"from-file"))
    );
}

#[test]
fn refuses_password_over_plaintext_off_loopback() {
    let file = password_file(b"pw");
    for addr in ["0.0.0.0", "192.0.2.1", "::"] {
        let error = config(&[
            "--fd",
            "3",
            "--password-file",
            path_str(&file),
            "--spice-addr",
            addr,
        ])
        .unwrap_err();
        assert!(
            matches!(error, ConfigError::PlaintextPassword { .. }),
            "{addr}: {error}"
        );
        assert!(error.to_string().contains("--allow-plaintext-password"));
    }
    for ok in [
        &["--spice-addr", "0.0.0.0", "--allow-plaintext-password"][..],
        &["--spice-addr", "::1"][..],
        &["--spice-addr", "127.0.0.2"][..],
    ] {
        let mut args = vec!["--fd", "3", "--password-file", path_str(&file)];
        args.extend_from_slice(ok);
        config(&args).unwrap_or_else(|e| panic!("{ok:?}: {e}"));
    }
    // Without a password the operator chose open access: allowed, but warned about.
    let open = config(&[
        "--fd",
        "3",
        "--disable-ticketing",
        "--spice-addr",
        "0.0.0.0",
    ])
    .unwrap();
    assert_eq!(open.warnings().len(), 1, "{:?}", open.warnings());
    assert!(config(&["--fd", "3", "--disable-ticketing"])
        .unwrap()
        .warnings()
        .is_empty());
}

#[test]
fn activated_plaintext_socket_off_loopback_is_checked_too() {
    let file = password_file(b"pw");
    let args = parse(&["--fd", "3", "--password-file", path_str(&file)]).unwrap();
    let wide = Activated {
        spice: Some((9, Some("0.0.0.0:5930".parse().unwrap()))),
        ..Activated::default()
    };
    let error = Config::from_settings(args.settings(), &Environment::empty(), &wide).unwrap_err();
    assert!(
        matches!(error, ConfigError::PlaintextPassword { .. }),
        "{error}"
    );
    let unix = Activated {
        spice: Some((9, None)),
        ..Activated::default()
    };
    let config = Config::from_settings(args.settings(), &Environment::empty(), &unix).unwrap();
    assert_eq!(
        config.spice.plain,
        vec![Endpoint::Fd { fd: 9, local: None }]
    );
}

fn tls_env() -> (tempfile::TempDir, Environment) {
    let dir = tempfile::tempdir().unwrap();
    for name in ["tls-cert", "tls-key", "spice-password"] {
        std::fs::write(dir.path().join(name), "x").unwrap();
    }
    let env = Environment {
        credentials_dir: Some(dir.path().into()),
        ..Environment::empty()
    };
    (dir, env)
}

#[test]
fn tls_listener_with_files_from_credentials() {
    let (dir, env) = tls_env();
    let args = parse(&[
        "--fd",
        "3",
        "--spice-addr",
        "0.0.0.0",
        "--spice-tls-port",
        "5901",
        "--tls-only",
    ])
    .unwrap();
    let config = Config::from_settings(args.settings(), &env, &Activated::default()).unwrap();
    assert!(
        config.spice.plain.is_empty(),
        "--tls-only: no plaintext port"
    );
    assert_eq!(
        config.spice.tls_listeners,
        vec![Endpoint::Tcp("0.0.0.0:5901".parse().unwrap())]
    );
    assert_eq!(
        config.spice.tls,
        Some(TlsFiles {
            cert: dir.path().join("tls-cert"),
            key: dir.path().join("tls-key"),
            client_ca: None,
        })
    );
    // Same with --spice-port off instead of --tls-only.
    let args = parse(&[
        "--fd",
        "3",
        "--spice-addr",
        "0.0.0.0",
        "--spice-tls-port",
        "5901",
        "--spice-port",
        "off",
    ])
    .unwrap();
    assert!(Config::from_settings(args.settings(), &env, &Activated::default()).is_ok());
    // The credentials alone do not switch TLS on.
    let args = parse(&["--fd", "3"]).unwrap();
    let config = Config::from_settings(args.settings(), &env, &Activated::default()).unwrap();
    assert_eq!(config.spice.tls, None);
}

#[test]
fn tls_mistakes_name_the_option() {
    let pw = password_file(b"pw");
    let cert = password_file(b"cert");
    for (args, expected) in [
        (&["--spice-tls-port", "5901"][..], "--tls-cert-file"),
        (
            &[
                "--spice-tls-port",
                "5901",
                "--tls-cert-file",
                path_str(&cert),
            ][..],
            "--tls-key-file",
        ),
        (
            &[
                "--spice-tls-port",
                "5901",
                "--tls-cert-file",
                "/nonexistent/c.pem",
            ][..],
            "--tls-cert-file",
        ),
        (&["--tls-cert-file", path_str(&cert)][..], "--tls-cert-file"),
        (&["--tls-only"][..], "--tls-only"),
        (
            &[
                "--tls-only",
                "--spice-port",
                "5900",
                "--spice-tls-port",
                "5901",
            ][..],
            "--tls-only",
        ),
        (
            &[
                "--tls-only",
                "--spice-unix",
                "/tmp/s",
                "--spice-tls-port",
                "5901",
            ][..],
            "--spice-unix",
        ),
        (&["--spice-port", "off"][..], "No SPICE listener"),
        (
            &["--spice-port", "5901", "--spice-tls-port", "5901"][..],
            "both 5901",
        ),
    ] {
        let mut full = vec!["--fd", "3", "--password-file", path_str(&pw)];
        full.extend_from_slice(args);
        let error = config(&full).unwrap_err();
        assert!(error.to_string().contains(expected), "{args:?}: {error}");
    }
}

#[test]
fn ticket_expiry_rules() {
    assert!(matches!(
        config(&["--fd", "3", "--disable-ticketing", "--ticket-expiry", "10"]),
        Err(ConfigError::ExpiryWithoutPassword)
    ));
    let pw = password_file(b"pw");
    let error = config(&[
        "--fd",
        "3",
        "--password-file",
        path_str(&pw),
        "--ticket-expiry",
        "0",
    ])
    .unwrap_err();
    assert!(error.to_string().starts_with("--ticket-expiry"), "{error}");
}

#[test]
fn image_compression_modes() {
    for (arg, mode) in [
        ("auto", ImageCompression::Auto),
        ("lz4", ImageCompression::Lz4),
        ("off", ImageCompression::Off),
    ] {
        let config = config(&[
            "--fd",
            "3",
            "--disable-ticketing",
            "--image-compression",
            arg,
        ])
        .unwrap();
        assert_eq!(config.spice.image_compression, mode);
    }
    assert!(parse(&["--image-compression", "quic"]).is_err());
}

#[test]
fn input_policy_and_unix_listener() {
    let config = config(&[
        "--fd",
        "3",
        "--disable-ticketing",
        "--input",
        "none",
        "--spice-unix",
        "/tmp/s.sock",
        "--spice-port",
        "0",
    ])
    .unwrap();
    assert_eq!(config.spice.input, InputPolicy::None);
    assert_eq!(
        config.spice.plain,
        vec![Endpoint::Unix("/tmp/s.sock".into())]
    );
    assert!(parse(&["--input", "some"]).is_err());
}

#[test]
fn activation_supplies_the_sockets() {
    let activated = Activated {
        vhost_user: Some(3),
        input: Some(4),
        spice: Some((5, Some("127.0.0.1:5930".parse().unwrap()))),
        spice_tls: None,
    };
    let args = parse(&["--disable-ticketing"]).unwrap();
    let config = Config::from_settings(args.settings(), &Environment::empty(), &activated).unwrap();
    assert_eq!(config.socket, Some(SocketSpec::Fd(3)));
    assert_eq!(config.input_socket, Some(SocketSpec::Fd(4)));
    assert_eq!(
        config.spice.plain,
        vec![Endpoint::Fd {
            fd: 5,
            local: Some("127.0.0.1:5930".parse().unwrap())
        }]
    );
    // The command line naming the same socket is a conflict...
    for (cli, name) in [
        (&["--socket-path", "/tmp/x"][..], "vhost-user"),
        (&["--input-fd", "9"][..], "input"),
        (&["--spice-port", "5900"][..], "spice"),
    ] {
        let mut full = vec!["--disable-ticketing"];
        full.extend_from_slice(cli);
        let args = parse(&full).unwrap();
        let error =
            Config::from_settings(args.settings(), &Environment::empty(), &activated).unwrap_err();
        assert!(
            error.to_string().contains(&format!("`{name}`")),
            "{cli:?}: {error}"
        );
    }
    // ...while the file's sockets give way to activation.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vm.toml");
    std::fs::write(
        &file,
        "socket-path = \"/tmp/x\"\nspice-port = 5999\ndisable-ticketing = true\n",
    )
    .unwrap();
    let args = parse(&["--config", file.to_str().unwrap()]).unwrap();
    let config = Config::load(&args, &Environment::empty(), &activated).unwrap();
    assert_eq!(config.socket, Some(SocketSpec::Fd(3)));
    assert_eq!(config.spice.plain.len(), 1);
}
