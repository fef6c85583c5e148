//! The daemon's settings: command line and TOML file laid over each other, socket activation
//! and credentials folded in, then validated into a plain [`Config`] with secure defaults.
//!
//! Conventions (QEMU `docs/interop/vhost-user.rst`, "Backend program conventions";
//! `shared/research/ecosystem.md` §1.1): `--socket-path` or `--fd`, never both;
//! `--print-capabilities` prints the JSON capabilities and exits 0 whatever else is given; bad
//! setup exits non-zero early with a message naming the option; never daemonize.
//!
//! Precedence, highest first: the command line, socket activation (`LISTEN_FDNAMES`, for the
//! sockets only), the configuration file, the defaults. docs/libvirt.md and docs/systemd.md
//! describe where the file comes from.
//!
//! # Layout
//! - `args.rs`: the clap command line.
//! - `file.rs`: the TOML file ([`Settings`]), its search order, credentials.
//! - `libvirt.rs`: the libvirt domain that started us, from its inherited pid file.
//! - `spice.rs`: the SPICE options and the secure defaults.
#![forbid(unsafe_code)]

mod args;
mod file;
mod libvirt;
mod spice;
#[cfg(test)]
mod spice_tests;
#[cfg(test)]
mod tests;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use args::Args;
pub use file::{
    read_config, Environment, PortSetting, Settings, CONFIG_ENV, CREDENTIAL_CONFIG,
    CREDENTIAL_PASSWORD, CREDENTIAL_TLS_CA, CREDENTIAL_TLS_CERT, CREDENTIAL_TLS_KEY,
    DEFAULT_CONFIG_PATH, DOMAIN_CONFIG_DIR,
};

use crate::spice::ticket::Secret;

/// What `--print-capabilities` prints: the `VHostUserBackendCapabilities` of QEMU's
/// `docs/interop/vhost-user.json` for a GPU backend without `render-node` or `virgl`.
pub const CAPABILITIES: &str = r#"{"type":"gpu","features":[]}"#;

/// Smallest and largest display the Linux virtio-gpu driver accepts
/// (`drivers/gpu/drm/virtio/virtgpu_display.c`: 32×32 to 8192×8192; rust-vmm.md §3.6).
const DISPLAY_MIN: u32 = 32;
const DISPLAY_MAX: u32 = 8192;
const DEFAULT_WIDTH: u32 = 1280;
const DEFAULT_HEIGHT: u32 = 800;

/// QEMU's default `max_hostmem` for virtio-gpu resources (rust-vmm.md §3.4).
const DEFAULT_MAX_HOSTMEM: u64 = 256 << 20;

/// Where the vhost-user connection comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocketSpec {
    /// Bind and listen here.
    Path(PathBuf),
    /// An inherited descriptor (`--fd`, or socket activation), listening or connected; whoever
    /// serves it takes ownership.
    Fd(RawFd),
}

/// Which SPICE clients' keyboard and mouse reach the guest.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InputPolicy {
    /// Every connected client.
    #[default]
    All,
    /// Only the longest-connected client; the others watch.
    First,
    /// Nobody: view only.
    None,
}

impl From<InputPolicy> for crate::spice::InputPolicy {
    fn from(policy: InputPolicy) -> Self {
        match policy {
            InputPolicy::All => Self::All,
            InputPolicy::First => Self::First,
            InputPolicy::None => Self::None,
        }
    }
}

/// How images are compressed for SPICE clients.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageCompression {
    /// LZ4 where it pays (text, UI), else QUIC (natural images), else raw.
    #[default]
    Auto,
    /// LZ4 where it pays, else raw.
    Lz4,
    /// Raw bitmaps.
    Off,
}

impl From<ImageCompression> for crate::spice::ImageCompression {
    fn from(mode: ImageCompression) -> Self {
        match mode {
            ImageCompression::Auto => Self::Auto,
            ImageCompression::Lz4 => Self::Lz4,
            ImageCompression::Off => Self::Off,
        }
    }
}

/// A SPICE listening endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Tcp(SocketAddr),
    Unix(PathBuf),
    /// A listening socket from socket activation; the SPICE server takes ownership
    /// (`systemd::adopt_listener`). `local` is its TCP address (`None`: a unix socket).
    Fd {
        fd: RawFd,
        local: Option<SocketAddr>,
    },
}

impl Endpoint {
    /// The IP address clients reach, if this is a TCP endpoint.
    fn ip(&self) -> Option<IpAddr> {
        match self {
            Endpoint::Tcp(addr)
            | Endpoint::Fd {
                local: Some(addr), ..
            } => Some(addr.ip()),
            Endpoint::Unix(_) | Endpoint::Fd { local: None, .. } => None,
        }
    }
}

/// The certificate and key files of the TLS listeners (read when TLS is set up).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// Client certificates must chain to these CAs; `None`: no client certificates asked for.
    pub client_ca: Option<PathBuf>,
}

/// The password policy (spice-server's `set_ticket` / `set_noauth`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TicketSetting {
    Disabled,
    Password {
        secret: Secret,
        /// The file or credential it was read from, for logs.
        source: PathBuf,
        /// The password is refused this long after start-up.
        expiry: Option<Duration>,
    },
}

/// SPICE server settings, validated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpiceOptions {
    /// Plaintext listeners (TCP, unix socket, activated `spice` socket).
    pub plain: Vec<Endpoint>,
    /// TLS listeners (TCP, activated `spice-tls` socket); `tls` holds their files.
    pub tls_listeners: Vec<Endpoint>,
    pub tls: Option<TlsFiles>,
    pub ticketing: TicketSetting,
    pub max_clients: u32,
    pub input: InputPolicy,
    pub image_compression: ImageCompression,
}

/// The daemon's validated settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// The virtio-gpu device's socket; `None` only with `demo`.
    pub socket: Option<SocketSpec>,
    /// The virtio-input device's socket, if it is served.
    pub input_socket: Option<SocketSpec>,
    pub width: u32,
    pub height: u32,
    pub max_hostmem: u64,
    pub spice: SpiceOptions,
    pub demo: bool,
    /// Log filter from `--log` or the file; `None`: RUST_LOG or `info`.
    pub log: Option<String>,
    /// The configuration file that was read, if any.
    pub config_file: Option<PathBuf>,
}

/// Listening sockets handed over by socket activation, by `LISTEN_FDNAMES` name (filled in by
/// `systemd::ServiceEnv::take`). The process owns each descriptor until a consumer adopts it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Activated {
    /// `vhost-user` (or `gpu`), or the only descriptor when none is named.
    pub vhost_user: Option<RawFd>,
    /// `input`.
    pub input: Option<RawFd>,
    /// `spice`, with its TCP address (`None`: a unix socket).
    pub spice: Option<(RawFd, Option<SocketAddr>)>,
    /// `spice-tls`, with its TCP address.
    pub spice_tls: Option<(RawFd, Option<SocketAddr>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("One of --socket-path or --fd is required (or --demo, or a socket-activated `vhost-user` socket)")]
    NoSocket,
    #[error("{cli} and the socket-activated `{name}` socket both give the {what}; use one")]
    ActivationConflict {
        cli: &'static str,
        name: &'static str,
        what: &'static str,
    },
    #[error("--demo shows a test picture and serves no VMM; remove {option}")]
    DemoWithSocket { option: &'static str },
    #[error("--width/--height {width}x{height} is outside {DISPLAY_MIN}x{DISPLAY_MIN}..{DISPLAY_MAX}x{DISPLAY_MAX}")]
    DisplaySize { width: u32, height: u32 },
    #[error("--{option} {value:?}: {reason}")]
    BadValue {
        option: &'static str,
        value: String,
        reason: String,
    },
    #[error("The directory of --{option} {path:?} does not exist")]
    SocketDirMissing { option: &'static str, path: PathBuf },
    #[error("Cannot read the configuration file {path:?}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("The configuration file {path:?} is larger than {limit} bytes")]
    FileTooLarge { path: PathBuf, limit: u64 },
    #[error("Bad configuration file {path:?}")]
    ParseFile {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error(
        "SPICE ticketing is on but no password is set. Give one with --password-file FILE \
         (key `password-file` in the configuration file), or as the systemd credential \
         `spice-password` (LoadCredential=spice-password:FILE); or accept clients without a \
         password with --disable-ticketing (trusted, local use only{demo_hint})"
    )]
    NoPassword { demo_hint: &'static str },
    #[error("Cannot read the SPICE password from {path:?}")]
    ReadPassword {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("The SPICE password in {path:?} {reason}")]
    BadPassword { path: PathBuf, reason: String },
    #[error(
        "Refusing SPICE password login over plaintext TCP on {addr}, which is not a loopback \
         address: the SPICE ticket is only RSA-1024 encrypted and the session is not encrypted \
         at all. Serve TLS instead (--spice-tls-port with --tls-cert-file/--tls-key-file, and \
         --tls-only or --spice-port off), listen on 127.0.0.1 (--spice-addr), or accept the risk \
         with --allow-plaintext-password"
    )]
    PlaintextPassword { addr: IpAddr },
    #[error("--{option} is needed for the SPICE TLS listener (or the systemd credential `{credential}`)")]
    TlsFileMissing {
        option: &'static str,
        credential: &'static str,
    },
    #[error("--{option} {path:?} is not a readable file")]
    TlsFileUnreadable { option: &'static str, path: PathBuf },
    #[error("--{option} is given but no SPICE TLS listener is (--spice-tls-port, or a socket-activated `spice-tls` socket)")]
    TlsFilesWithoutListener { option: &'static str },
    #[error("--tls-only excludes {what}")]
    TlsOnlyConflict { what: &'static str },
    #[error("--tls-only needs a TLS listener: --spice-tls-port, or a socket-activated `spice-tls` socket")]
    TlsOnlyWithoutTls,
    #[error("No SPICE listener: --spice-port is off and there is no --spice-unix, --spice-tls-port or socket-activated `spice`/`spice-tls` socket")]
    NoSpiceListener,
    #[error("--spice-port and --spice-tls-port are both {port}")]
    SamePorts { port: u16 },
    #[error("--ticket-expiry needs a password; ticketing is disabled")]
    ExpiryWithoutPassword,
}

impl Config {
    /// Builds the configuration from the command line, the file it leads to (see
    /// [`Environment::locate_config`]), the credentials and the activated sockets.
    pub fn load(
        args: &Args,
        env: &Environment,
        activated: &Activated,
    ) -> Result<Self, ConfigError> {
        let config_file = env.locate_config(args.config.as_deref());
        let mut from_file = match &config_file {
            Some(path) => read_config(path)?,
            None => Settings::default(),
        };
        // Activation beats the file: the unit's sockets replace the file's (which may be there
        // for running the same VM by hand). On the command line, both at once is a conflict.
        if activated.vhost_user.is_some() {
            (from_file.socket_path, from_file.fd) = (None, None);
        }
        if activated.input.is_some() {
            (from_file.input_socket, from_file.input_fd) = (None, None);
        }
        if activated.spice.is_some() {
            from_file.spice_port = None;
        }
        if activated.spice_tls.is_some() {
            from_file.spice_tls_port = None;
        }
        let mut config = Self::from_settings(args.settings().over(from_file), env, activated)?;
        config.config_file = config_file;
        Ok(config)
    }

    /// Validates merged settings. A socket given both here and by activation is a conflict
    /// ([`Config::load`] has already dropped the file's sockets that activation replaces).
    pub fn from_settings(
        settings: Settings,
        env: &Environment,
        activated: &Activated,
    ) -> Result<Self, ConfigError> {
        let demo = settings.demo.unwrap_or(false);
        let socket = vhost_socket(
            "socket-path",
            settings.socket_path.clone(),
            "fd",
            settings.fd,
            activated.vhost_user,
            "vhost-user",
            "vhost-user socket",
        )?;
        let socket = match (socket, demo) {
            (None, false) => return Err(ConfigError::NoSocket),
            (Some(_), true) => {
                let option = if settings.fd.is_some() {
                    "--fd"
                } else if settings.socket_path.is_some() {
                    "--socket-path"
                } else {
                    "the socket-activated `vhost-user` socket"
                };
                return Err(ConfigError::DemoWithSocket { option });
            }
            (socket, _) => socket,
        };
        let input_socket = vhost_socket(
            "input-socket",
            settings.input_socket.clone(),
            "input-fd",
            settings.input_fd,
            activated.input,
            "input",
            "virtio-input socket",
        )?;
        let width = settings.width.unwrap_or(DEFAULT_WIDTH);
        let height = settings.height.unwrap_or(DEFAULT_HEIGHT);
        let size_ok = |v: u32| (DISPLAY_MIN..=DISPLAY_MAX).contains(&v);
        if !size_ok(width) || !size_ok(height) {
            return Err(ConfigError::DisplaySize { width, height });
        }
        let max_hostmem = settings.max_hostmem.unwrap_or(DEFAULT_MAX_HOSTMEM);
        if max_hostmem == 0 {
            return Err(bad_value(
                "max-hostmem",
                &max_hostmem,
                "must be more than 0",
            ));
        }
        let spice = spice::spice_options(&settings, env, activated, demo)?;
        Ok(Config {
            socket,
            input_socket,
            width,
            height,
            max_hostmem,
            spice,
            demo,
            log: settings.log,
            config_file: None,
        })
    }

    /// Settings that are allowed but deserve a loud line in the log.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings = Vec::new();
        if self.spice.ticketing == TicketSetting::Disabled
            && self
                .spice
                .tls
                .as_ref()
                .is_none_or(|t| t.client_ca.is_none())
        {
            for endpoint in self.spice.plain.iter().chain(&self.spice.tls_listeners) {
                if let Some(ip) = endpoint.ip().filter(|ip| !ip.is_loopback()) {
                    warnings.push(format!(
                        "SPICE clients on {ip} are accepted without a password or client certificate"
                    ));
                }
            }
        }
        warnings
    }
}

fn bad_value(option: &'static str, value: &dyn std::fmt::Display, reason: &str) -> ConfigError {
    ConfigError::BadValue {
        option,
        value: value.to_string(),
        reason: reason.into(),
    }
}

/// One vhost-user socket from a path, a descriptor or activation; more than one is a conflict.
fn vhost_socket(
    path_option: &'static str,
    path: Option<PathBuf>,
    fd_option: &'static str,
    fd: Option<RawFd>,
    activated: Option<RawFd>,
    name: &'static str,
    what: &'static str,
) -> Result<Option<SocketSpec>, ConfigError> {
    if let Some(fd) = fd.filter(|fd| *fd < 0) {
        return Err(bad_value(
            fd_option,
            &fd,
            "must be a descriptor number (0 or more)",
        ));
    }
    match (path, fd, activated) {
        (Some(_), Some(_), _) => Err(bad_value(
            fd_option,
            &fd.unwrap_or_default(),
            &format!("cannot be used with --{path_option}"),
        )),
        (Some(_), None, Some(_)) => Err(ConfigError::ActivationConflict {
            cli: if path_option == "socket-path" {
                "--socket-path"
            } else {
                "--input-socket"
            },
            name,
            what,
        }),
        (None, Some(_), Some(_)) => Err(ConfigError::ActivationConflict {
            cli: if fd_option == "fd" {
                "--fd"
            } else {
                "--input-fd"
            },
            name,
            what,
        }),
        (Some(path), None, None) => {
            let dir = match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir,
                _ => Path::new("."),
            };
            if !dir.is_dir() {
                return Err(ConfigError::SocketDirMissing {
                    option: path_option,
                    path,
                });
            }
            Ok(Some(SocketSpec::Path(path)))
        }
        (None, Some(fd), None) | (None, None, Some(fd)) => Ok(Some(SocketSpec::Fd(fd))),
        (None, None, None) => Ok(None),
    }
}
