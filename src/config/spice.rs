//! Validation of the SPICE options: listeners, TLS files, the password and the secure defaults
//! (loopback only, ticketing on, no password over plaintext TCP off loopback).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{
    bad_value, Activated, ConfigError, Endpoint, Environment, PortSetting, Settings, SpiceOptions,
    TicketSetting, TlsFiles, CREDENTIAL_PASSWORD, CREDENTIAL_TLS_CA, CREDENTIAL_TLS_CERT,
    CREDENTIAL_TLS_KEY,
};
use crate::spice::ticket::Secret;
use crate::spice::wire::SPICE_MAX_PASSWORD_LENGTH;

/// Loopback only unless told otherwise: nobody else reaches a console by accident.
const DEFAULT_SPICE_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// spice-server has no default port; 5900 is what remote-viewer assumes for `spice://host`.
const DEFAULT_SPICE_PORT: u16 = 5900;

/// Clients at once by default: a helpdesk session (user, operator, recorder) with room to spare.
const DEFAULT_MAX_CLIENTS: u32 = 16;

/// Each client holds a pipe with its own byte budget (DESIGN.md); this bounds their sum.
const MAX_CLIENTS_LIMIT: u32 = 1024;

/// A ticket lifetime beyond a year is a mistake for "never" (leave the option out instead).
const MAX_TICKET_EXPIRY_SECS: u64 = 366 * 24 * 3600;

/// A password file holds one line of at most 60 bytes; never read a large file to find it.
const MAX_PASSWORD_FILE_BYTES: u64 = 4096;

pub(super) fn spice_options(
    settings: &Settings,
    env: &Environment,
    activated: &Activated,
    demo: bool,
) -> Result<SpiceOptions, ConfigError> {
    let tls_only = settings.tls_only.unwrap_or(false);
    let addr = match &settings.spice_addr {
        None => DEFAULT_SPICE_ADDR,
        Some(text) => text
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .map_err(|_| {
                bad_value(
                    "spice-addr",
                    text,
                    "not an IP address (host names are not resolved)",
                )
            })?,
    };

    let mut plain = Vec::new();
    match (activated.spice, settings.spice_port) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::ActivationConflict {
                cli: "--spice-port",
                name: "spice",
                what: "plaintext SPICE listener",
            })
        }
        (Some((fd, local)), None) => plain.push(Endpoint::Fd { fd, local }),
        (None, Some(PortSetting::Port(port))) => {
            plain.push(Endpoint::Tcp(SocketAddr::new(addr, port)))
        }
        (None, None) if !tls_only => {
            plain.push(Endpoint::Tcp(SocketAddr::new(addr, DEFAULT_SPICE_PORT)))
        }
        (None, None | Some(PortSetting::Off)) => {}
    }
    if let Some(path) = &settings.spice_unix {
        plain.push(Endpoint::Unix(path.clone()));
    }
    let mut tls_listeners = Vec::new();
    match (activated.spice_tls, settings.spice_tls_port) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::ActivationConflict {
                cli: "--spice-tls-port",
                name: "spice-tls",
                what: "SPICE TLS listener",
            })
        }
        (Some((fd, local)), None) => tls_listeners.push(Endpoint::Fd { fd, local }),
        (None, Some(PortSetting::Port(port))) => {
            tls_listeners.push(Endpoint::Tcp(SocketAddr::new(addr, port)))
        }
        (None, None | Some(PortSetting::Off)) => {}
    }
    if let (Some(PortSetting::Port(a)), Some(PortSetting::Port(b))) =
        (settings.spice_port, settings.spice_tls_port)
    {
        if a == b {
            return Err(ConfigError::SamePorts { port: a });
        }
    }
    if tls_only {
        if let Some(what) = tls_only_conflict(settings, activated) {
            return Err(ConfigError::TlsOnlyConflict { what });
        }
        if tls_listeners.is_empty() {
            return Err(ConfigError::TlsOnlyWithoutTls);
        }
    }
    if plain.is_empty() && tls_listeners.is_empty() {
        return Err(ConfigError::NoSpiceListener);
    }
    let tls = tls_files(settings, env, !tls_listeners.is_empty())?;
    let ticketing = ticketing(settings, env, demo)?;
    if matches!(ticketing, TicketSetting::Password { .. })
        && !settings.allow_plaintext_password.unwrap_or(false)
    {
        if let Some(ip) = plain
            .iter()
            .filter_map(Endpoint::ip)
            .find(|ip| !ip.is_loopback())
        {
            return Err(ConfigError::PlaintextPassword { addr: ip });
        }
    }
    let max_clients = settings.max_clients.unwrap_or(DEFAULT_MAX_CLIENTS);
    if !(1..=MAX_CLIENTS_LIMIT).contains(&max_clients) {
        return Err(bad_value(
            "max-clients",
            &max_clients,
            &format!("must be 1 to {MAX_CLIENTS_LIMIT}"),
        ));
    }
    Ok(SpiceOptions {
        plain,
        tls_listeners,
        tls,
        ticketing,
        max_clients,
        input: settings.input.unwrap_or_default(),
        image_compression: settings.image_compression.unwrap_or_default(),
    })
}

/// The plaintext listener `--tls-only` was combined with, if any.
fn tls_only_conflict(settings: &Settings, activated: &Activated) -> Option<&'static str> {
    if matches!(settings.spice_port, Some(PortSetting::Port(_))) {
        Some("a plaintext --spice-port")
    } else if settings.spice_unix.is_some() {
        Some("--spice-unix (plaintext)")
    } else if activated.spice.is_some() {
        Some("the socket-activated plaintext `spice` socket")
    } else {
        None
    }
}

fn tls_files(
    settings: &Settings,
    env: &Environment,
    listening: bool,
) -> Result<Option<TlsFiles>, ConfigError> {
    let explicit = [
        ("tls-cert-file", settings.tls_cert_file.is_some()),
        ("tls-key-file", settings.tls_key_file.is_some()),
        ("tls-ca-file", settings.tls_ca_file.is_some()),
    ];
    if !listening {
        // Credentials are loaded by the unit whether or not TLS is on; only explicit files
        // without a listener are a mistake.
        return match explicit.iter().find(|(_, given)| *given) {
            Some((option, _)) => Err(ConfigError::TlsFilesWithoutListener { option }),
            None => Ok(None),
        };
    }
    let file = |option: &'static str, given: &Option<PathBuf>, credential: &'static str| {
        let path = given.clone().or_else(|| env.credential(credential));
        match path {
            Some(path) if path.is_file() => Ok(Some(path)),
            Some(path) => Err(ConfigError::TlsFileUnreadable { option, path }),
            None => Ok(None),
        }
    };
    let missing = |option, credential| ConfigError::TlsFileMissing { option, credential };
    let cert = file(
        "tls-cert-file",
        &settings.tls_cert_file,
        CREDENTIAL_TLS_CERT,
    )?
    .ok_or_else(|| missing("tls-cert-file", CREDENTIAL_TLS_CERT))?;
    let key = file("tls-key-file", &settings.tls_key_file, CREDENTIAL_TLS_KEY)?
        .ok_or_else(|| missing("tls-key-file", CREDENTIAL_TLS_KEY))?;
    let client_ca = file("tls-ca-file", &settings.tls_ca_file, CREDENTIAL_TLS_CA)?;
    Ok(Some(TlsFiles {
        cert,
        key,
        client_ca,
    }))
}

fn ticketing(
    settings: &Settings,
    env: &Environment,
    demo: bool,
) -> Result<TicketSetting, ConfigError> {
    let expiry = match settings.ticket_expiry {
        None => None,
        Some(secs) if (1..=MAX_TICKET_EXPIRY_SECS).contains(&secs) => {
            Some(Duration::from_secs(secs))
        }
        Some(secs) => {
            return Err(bad_value(
                "ticket-expiry",
                &secs,
                &format!("must be 1 to {MAX_TICKET_EXPIRY_SECS} seconds"),
            ))
        }
    };
    if settings.disable_ticketing.unwrap_or(false) {
        if expiry.is_some() {
            return Err(ConfigError::ExpiryWithoutPassword);
        }
        return Ok(TicketSetting::Disabled);
    }
    let source = settings
        .password_file
        .clone()
        .or_else(|| env.credential(CREDENTIAL_PASSWORD))
        .ok_or(ConfigError::NoPassword {
            demo_hint: if demo {
                "; e.g. --demo --disable-ticketing"
            } else {
                ""
            },
        })?;
    let secret = read_password(&source)?;
    Ok(TicketSetting::Password {
        secret,
        source,
        expiry,
    })
}

/// Reads a password file: its first line, without the line ending; at most the 60 bytes a SPICE
/// ticket carries (spice-protocol `SPICE_MAX_PASSWORD_LENGTH`).
fn read_password(path: &Path) -> Result<Secret, ConfigError> {
    let bad = |reason: &str| ConfigError::BadPassword {
        path: path.into(),
        reason: reason.into(),
    };
    let metadata = std::fs::metadata(path).map_err(|source| ConfigError::ReadPassword {
        path: path.into(),
        source,
    })?;
    if metadata.len() > MAX_PASSWORD_FILE_BYTES {
        return Err(bad("is not a password file (larger than 4 KiB)"));
    }
    let mut bytes = std::fs::read(path).map_err(|source| ConfigError::ReadPassword {
        path: path.into(),
        source,
    })?;
    let secret = {
        let line_end = bytes
            .iter()
            .position(|b| *b == b'\n')
            .unwrap_or(bytes.len());
        let rest_is_blank = bytes[line_end..].iter().all(|b| b.is_ascii_whitespace());
        let mut line = &bytes[..line_end];
        if let Some(stripped) = line.strip_suffix(b"\r") {
            line = stripped;
        }
        if !rest_is_blank {
            Err("has more than one line")
        } else if line.is_empty() {
            Err("is empty")
        } else if line.contains(&0) {
            Err("contains a NUL byte")
        } else if line.len() > SPICE_MAX_PASSWORD_LENGTH {
            Err("is longer than the 60 bytes a SPICE ticket carries")
        } else {
            Ok(Secret::new(line))
        }
    };
    bytes.fill(0);
    secret.map_err(bad)
}
