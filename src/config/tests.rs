use std::io::Write;

use clap::Parser;

use super::*;

pub(super) fn parse(args: &[&str]) -> Result<Args, clap::Error> {
    Args::try_parse_from(std::iter::once("vhost-user-spice").chain(args.iter().copied()))
}

/// Validates a command line alone: no file, no credentials, nothing activated.
pub(super) fn config(args: &[&str]) -> Result<Config, ConfigError> {
    let args = parse(args).expect("the command line parses");
    Config::from_settings(
        args.settings(),
        &Environment::empty(),
        &Activated::default(),
    )
}

pub(super) fn password_file(content: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(content).unwrap();
    file
}

pub(super) fn path_str(file: &tempfile::NamedTempFile) -> &str {
    file.path().to_str().unwrap()
}

/// A configuration file with every key, each with a value other than its default.
const EVERY_KEY: &str = r#"
socket-path = "/run/vm1/gpu.sock"
fd = 7
input-socket = "/run/vm1/input.sock"
input-fd = 8
demo = false
width = 1920
height = 1080
max-hostmem = 1073741824
spice-addr = "::"
spice-port = 5930
spice-unix = "/run/vm1/spice.sock"
spice-tls-port = 5931
password-file = "/etc/vhost-user-spice/vm1.password"
disable-ticketing = true
ticket-expiry = 600
allow-plaintext-password = true
max-clients = 40
input = "first"
image-compression = "lz4"
tls-cert-file = "/etc/tls/cert.pem"
tls-key-file = "/etc/tls/key.pem"
tls-ca-file = "/etc/tls/ca.pem"
tls-only = true
log = "debug"
"#;

#[test]
fn toml_reads_every_key() {
    let settings = Settings::from_toml(EVERY_KEY, Path::new("every.toml")).unwrap();
    let expected = Settings {
        socket_path: Some("/run/vm1/gpu.sock".into()),
        fd: Some(7),
        input_socket: Some("/run/vm1/input.sock".into()),
        input_fd: Some(8),
        demo: Some(false),
        width: Some(1920),
        height: Some(1080),
        max_hostmem: Some(1 << 30),
        spice_addr: Some("::".into()),
        spice_port: Some(PortSetting::Port(5930)),
        spice_unix: Some("/run/vm1/spice.sock".into()),
        spice_tls_port: Some(PortSetting::Port(5931)),
        password_file: Some("/etc/vhost-user-spice/vm1.password".into()),
        disable_ticketing: Some(true),
        ticket_expiry: Some(600),
        allow_plaintext_password: Some(true),
        max_clients: Some(40),
        input: Some(InputPolicy::First),
        image_compression: Some(ImageCompression::Lz4),
        tls_cert_file: Some("/etc/tls/cert.pem".into()),
        tls_key_file: Some("/etc/tls/key.pem".into()),
        tls_ca_file: Some("/etc/tls/ca.pem".into()),
        tls_only: Some(true),
        log: Some("debug".into()),
    };
    assert_eq!(settings, expected);
}

#[test]
fn every_file_key_is_a_command_line_option() {
    // The file's keys and the long options are the same names (docs/configuration relies on it).
    let long_options: Vec<String> = <Args as clap::CommandFactory>::command()
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_owned))
        .collect();
    for line in EVERY_KEY.lines().filter(|l| l.contains('=')) {
        let key = line.split('=').next().unwrap().trim();
        assert!(long_options.iter().any(|o| o == key), "no --{key}");
    }
    // And every option but the command-line-only ones is a file key.
    let file_keys: Vec<&str> = EVERY_KEY
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k.trim()))
        .collect();
    for option in long_options {
        let cli_only = ["config", "print-capabilities", "help", "version"];
        assert!(
            cli_only.contains(&option.as_str()) || file_keys.contains(&option.as_str()),
            "--{option} has no file key"
        );
    }
}

#[test]
fn toml_ports_take_off_and_zero() {
    for (text, expected) in [
        ("spice-port = \"off\"", PortSetting::Off),
        ("spice-port = 0", PortSetting::Off),
        ("spice-port = \"5999\"", PortSetting::Port(5999)),
    ] {
        let settings = Settings::from_toml(text, Path::new("t.toml")).unwrap();
        assert_eq!(settings.spice_port, Some(expected), "{text}");
    }
    for bad in [
        "spice-port = 70000",
        "spice-port = -1",
        "spice-port = \"of\"",
        "spice-port = 1.5",
    ] {
        let error = Settings::from_toml(bad, Path::new("t.toml")).unwrap_err();
        assert!(error.to_string().contains("t.toml"), "{error}");
    }
}

#[test]
fn unknown_key_is_an_error_naming_it() {
    let error = Settings::from_toml("spice-portt = 5930\n", Path::new("/etc/x.toml")).unwrap_err();
    let ConfigError::ParseFile { path, source } = &error else {
        panic!("expected ParseFile, got {error:?}")
    };
    assert_eq!(path, Path::new("/etc/x.toml"));
    assert!(
        source.to_string().contains("unknown field `spice-portt`"),
        "{source}"
    );
    // Sections are not keys either.
    assert!(Settings::from_toml("[spice]\nport = 1\n", Path::new("x")).is_err());
}

#[test]
fn wrong_type_is_an_error() {
    let error = Settings::from_toml("width = \"wide\"\n", Path::new("x.toml")).unwrap_err();
    let ConfigError::ParseFile { source, .. } = &error else {
        panic!("{error:?}")
    };
    assert!(source.to_string().contains("width"), "{source}");
}

#[test]
fn command_line_overrides_the_file() {
    let file = Settings::from_toml(
        "width = 1920\nspice-port = 5930\ndisable-ticketing = true\nsocket-path = \"/a\"\nlog = \"debug\"\n",
        Path::new("f"),
    )
    .unwrap();
    let cli = parse(&["--width", "640", "--disable-ticketing=false", "--fd", "3"]).unwrap();
    let merged = cli.settings().over(file);
    assert_eq!(merged.width, Some(640));
    assert_eq!(
        merged.spice_port,
        Some(PortSetting::Port(5930)),
        "kept from the file"
    );
    assert_eq!(merged.disable_ticketing, Some(false), "switched off again");
    assert_eq!(merged.log.as_deref(), Some("debug"));
    // --fd replaces the file's socket-path rather than conflicting with it.
    assert_eq!((merged.socket_path, merged.fd), (None, Some(3)));
}

#[test]
fn load_reads_the_file_and_applies_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vm1.toml");
    std::fs::write(
        &file,
        "disable-ticketing = true\nwidth = 1024\nmax-clients = 3\n",
    )
    .unwrap();
    let args = parse(&[
        "--config",
        file.to_str().unwrap(),
        "--fd",
        "5",
        "--max-clients",
        "4",
    ])
    .unwrap();
    let config = Config::load(&args, &Environment::empty(), &Activated::default()).unwrap();
    assert_eq!(config.width, 1024);
    assert_eq!(config.spice.max_clients, 4);
    assert_eq!(config.socket, Some(SocketSpec::Fd(5)));
    assert_eq!(config.config_file.as_deref(), Some(file.as_path()));
    // A named file that is missing is an error; an absent default is not.
    let args = parse(&["--config", "/nonexistent/x.toml", "--fd", "5"]).unwrap();
    assert!(matches!(
        Config::load(&args, &Environment::empty(), &Activated::default()),
        Err(ConfigError::ReadFile { .. })
    ));
}

#[test]
fn config_file_search_order() {
    let dir = tempfile::tempdir().unwrap();
    let default = dir.path().join("default.toml");
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    let mut env = Environment {
        config_env: None,
        credentials_dir: Some(creds.clone()),
        default_config: default.clone(),
        libvirt_domain: Some("vm1".into()),
        domain_config_dir: dir.path().into(),
    };
    assert_eq!(env.locate_config(None), None, "nothing there");
    std::fs::write(&default, "").unwrap();
    assert_eq!(env.locate_config(None), Some(default.clone()));
    let domain = dir.path().join("vm1.toml");
    std::fs::write(&domain, "").unwrap();
    assert_eq!(
        env.locate_config(None),
        Some(domain.clone()),
        "libvirt's domain"
    );
    env.libvirt_domain = Some("vm2".into());
    assert_eq!(
        env.locate_config(None),
        Some(default.clone()),
        "no vm2.toml"
    );
    std::fs::write(creds.join("config"), "width = 1000\n").unwrap();
    assert_eq!(env.locate_config(None), Some(creds.join("config")));
    env.config_env = Some("/from/env.toml".into());
    assert_eq!(env.locate_config(None), Some("/from/env.toml".into()));
    assert_eq!(
        env.locate_config(Some(Path::new("/cli.toml"))),
        Some("/cli.toml".into())
    );
}

#[test]
fn socket_path_with_defaults() {
    let config = config(&["--socket-path", "/tmp/x.sock", "--disable-ticketing"]).unwrap();
    assert_eq!(config.socket, Some(SocketSpec::Path("/tmp/x.sock".into())));
    assert_eq!((config.width, config.height), (1280, 800));
    assert_eq!(config.max_hostmem, 256 << 20);
    assert_eq!(config.spice.max_clients, 16);
    assert_eq!(config.spice.input, InputPolicy::All);
    assert_eq!(config.spice.image_compression, ImageCompression::Auto);
    assert_eq!(config.input_socket, None);
}

#[test]
fn spice_listens_on_loopback_by_default() {
    let config = config(&["--fd", "3", "--disable-ticketing"]).unwrap();
    assert_eq!(
        config.spice.plain,
        vec![Endpoint::Tcp("127.0.0.1:5900".parse().unwrap())]
    );
    assert!(config.spice.tls_listeners.is_empty() && config.spice.tls.is_none());
}

#[test]
fn requires_a_socket() {
    assert!(matches!(
        config(&["--disable-ticketing"]),
        Err(ConfigError::NoSocket)
    ));
    let error = config(&["--width", "640"]).unwrap_err();
    assert!(error.to_string().contains("--socket-path"), "{error}");
}

#[test]
fn rejects_socket_path_and_fd_together() {
    assert!(parse(&["--socket-path", "/tmp/x", "--fd", "3"]).is_err());
    assert!(parse(&["--input-socket", "/tmp/x", "--input-fd", "3"]).is_err());
    // Both from the file: the same rule.
    let settings = Settings::from_toml(
        "socket-path = \"/tmp/x\"\nfd = 3\ndisable-ticketing = true",
        Path::new("f"),
    )
    .unwrap();
    let error =
        Config::from_settings(settings, &Environment::empty(), &Activated::default()).unwrap_err();
    assert!(error.to_string().contains("--fd"), "{error}");
}

#[test]
fn rejects_negative_fd() {
    assert!(parse(&["--fd", "-1"]).is_err());
    let settings = Settings::from_toml("fd = -1", Path::new("f")).unwrap();
    let error =
        Config::from_settings(settings, &Environment::empty(), &Activated::default()).unwrap_err();
    assert!(error.to_string().starts_with("--fd"), "{error}");
}

#[test]
fn print_capabilities_needs_no_socket() {
    let args = parse(&["--print-capabilities"]).unwrap();
    assert!(args.print_capabilities);
    let args = parse(&["--print-capabilities", "--socket-path", "/x"]).unwrap();
    assert!(args.print_capabilities);
}

#[test]
fn rejects_socket_in_missing_dir() {
    let error = config(&["--socket-path", "/nonexistent-dir-4f1c/x.sock"]).unwrap_err();
    assert!(matches!(
        error,
        ConfigError::SocketDirMissing {
            option: "socket-path",
            ..
        }
    ));
    let error = config(&[
        "--fd",
        "3",
        "--input-socket",
        "/nonexistent-dir-4f1c/i.sock",
    ])
    .unwrap_err();
    assert!(error.to_string().contains("--input-socket"), "{error}");
}

#[test]
fn rejects_absurd_values_naming_the_option() {
    let error = config(&["--fd", "3", "--width", "9000", "--disable-ticketing"]).unwrap_err();
    assert!(matches!(error, ConfigError::DisplaySize { .. }));
    assert!(error.to_string().contains("--width"));
    assert!(config(&["--fd", "3", "--height", "16", "--disable-ticketing"]).is_err());
    for (args, option) in [
        (&["--max-hostmem", "0"][..], "--max-hostmem"),
        (&["--max-clients", "0"][..], "--max-clients"),
        (&["--max-clients", "100000"][..], "--max-clients"),
        (&["--spice-addr", "example.org"][..], "--spice-addr"),
    ] {
        let mut full = vec!["--fd", "3", "--disable-ticketing"];
        full.extend_from_slice(args);
        let error = config(&full).unwrap_err();
        assert!(error.to_string().starts_with(option), "{args:?}: {error}");
    }
}

#[test]
fn demo_excludes_a_vmm_socket() {
    assert!(parse(&["--demo", "--fd", "3"]).is_err());
    let config = config(&["--demo", "--disable-ticketing"]).unwrap();
    assert!(config.demo && config.socket.is_none());
    let settings = Settings::from_toml(
        "demo = true\nsocket-path = \"/tmp/s\"\ndisable-ticketing = true",
        Path::new("f"),
    )
    .unwrap();
    let error =
        Config::from_settings(settings, &Environment::empty(), &Activated::default()).unwrap_err();
    assert!(matches!(
        error,
        ConfigError::DemoWithSocket {
            option: "--socket-path"
        }
    ));
    let activated = Activated {
        vhost_user: Some(3),
        ..Activated::default()
    };
    let args = parse(&["--demo", "--disable-ticketing"]).unwrap();
    let error =
        Config::from_settings(args.settings(), &Environment::empty(), &activated).unwrap_err();
    assert!(
        error.to_string().contains("socket-activated `vhost-user`"),
        "{error}"
    );
}

#[test]
fn capabilities_are_the_gpu_descriptor() {
    assert_eq!(CAPABILITIES, r#"{"type":"gpu","features":[]}"#);
}
