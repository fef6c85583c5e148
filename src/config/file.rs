//! The TOML configuration file: one key per long command-line option, where it is looked for,
//! and how the command line is laid over it.

use std::io::Read;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::Deserialize;

use super::{ConfigError, ImageCompression, InputPolicy};

/// The host-wide file read when nothing names another one (libvirt passes only `--fd`).
pub const DEFAULT_CONFIG_PATH: &str = "/etc/vhost-user-spice/default.toml";

/// Where `<domain>.toml` is looked for when libvirt started us (see [`super::libvirt`]).
pub const DOMAIN_CONFIG_DIR: &str = "/etc/vhost-user-spice";

/// Environment variable naming the configuration file when `--config` is not given.
pub const CONFIG_ENV: &str = "VHOST_USER_SPICE_CONFIG";

/// systemd credential names (`LoadCredential=NAME:PATH`), read from `$CREDENTIALS_DIRECTORY`.
pub const CREDENTIAL_CONFIG: &str = "config";
pub const CREDENTIAL_PASSWORD: &str = "spice-password";
pub const CREDENTIAL_TLS_CERT: &str = "tls-cert";
pub const CREDENTIAL_TLS_KEY: &str = "tls-key";
pub const CREDENTIAL_TLS_CA: &str = "tls-ca";

/// Credentials up to this size are read to see whether they are blank (larger ones never are).
const MAX_BLANK_CREDENTIAL_BYTES: u64 = 64;

/// A configuration file is a few hundred bytes; anything near this is not one.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// Every setting, each optional: the file's, the command line's, or both laid over each other.
/// Keys are the long option names (`spice-port = 5930`); an unknown key is an error.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct Settings {
    pub socket_path: Option<PathBuf>,
    pub fd: Option<RawFd>,
    pub input_socket: Option<PathBuf>,
    pub input_fd: Option<RawFd>,
    pub demo: Option<bool>,
    pub width: Option<u32>,
    pub height: Option<u32>,
    pub max_hostmem: Option<u64>,
    pub spice_addr: Option<String>,
    pub spice_port: Option<PortSetting>,
    pub spice_unix: Option<PathBuf>,
    pub spice_tls_port: Option<PortSetting>,
    pub password_file: Option<PathBuf>,
    pub disable_ticketing: Option<bool>,
    pub ticket_expiry: Option<u64>,
    pub allow_plaintext_password: Option<bool>,
    pub max_clients: Option<u32>,
    pub input: Option<InputPolicy>,
    pub image_compression: Option<ImageCompression>,
    pub tls_cert_file: Option<PathBuf>,
    pub tls_key_file: Option<PathBuf>,
    pub tls_ca_file: Option<PathBuf>,
    pub tls_only: Option<bool>,
    pub log: Option<String>,
}

impl Settings {
    /// Parses a configuration file's text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|source| ConfigError::ParseFile {
            path: origin.into(),
            source,
        })
    }

    /// `self` (the command line) wins over `lower` (the file), setting by setting. The vhost-user
    /// socket is one setting given two ways (`--socket-path` or `--fd`), and so is the input
    /// socket: giving either on the command line replaces both of the file's.
    pub fn over(self, lower: Settings) -> Settings {
        let (socket_path, fd) = if self.socket_path.is_some() || self.fd.is_some() {
            (self.socket_path, self.fd)
        } else {
            (lower.socket_path, lower.fd)
        };
        let (input_socket, input_fd) = if self.input_socket.is_some() || self.input_fd.is_some() {
            (self.input_socket, self.input_fd)
        } else {
            (lower.input_socket, lower.input_fd)
        };
        Settings {
            socket_path,
            fd,
            input_socket,
            input_fd,
            demo: self.demo.or(lower.demo),
            width: self.width.or(lower.width),
            height: self.height.or(lower.height),
            max_hostmem: self.max_hostmem.or(lower.max_hostmem),
            spice_addr: self.spice_addr.or(lower.spice_addr),
            spice_port: self.spice_port.or(lower.spice_port),
            spice_unix: self.spice_unix.or(lower.spice_unix),
            spice_tls_port: self.spice_tls_port.or(lower.spice_tls_port),
            password_file: self.password_file.or(lower.password_file),
            disable_ticketing: self.disable_ticketing.or(lower.disable_ticketing),
            ticket_expiry: self.ticket_expiry.or(lower.ticket_expiry),
            allow_plaintext_password: self
                .allow_plaintext_password
                .or(lower.allow_plaintext_password),
            max_clients: self.max_clients.or(lower.max_clients),
            input: self.input.or(lower.input),
            image_compression: self.image_compression.or(lower.image_compression),
            tls_cert_file: self.tls_cert_file.or(lower.tls_cert_file),
            tls_key_file: self.tls_key_file.or(lower.tls_key_file),
            tls_ca_file: self.tls_ca_file.or(lower.tls_ca_file),
            tls_only: self.tls_only.or(lower.tls_only),
            log: self.log.or(lower.log),
        }
    }
}

/// A TCP port setting: a port, or off (`0` or `"off"`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "PortValue")]
pub enum PortSetting {
    Port(u16),
    Off,
}

/// What a port key may hold in TOML: `5930`, `0` or `"off"`.
#[derive(Deserialize)]
#[serde(untagged)]
enum PortValue {
    Number(i64),
    Text(String),
}

const PORT_EXPECTED: &str = "expected a port number 1-65535, or 0 or \"off\" for none";

impl TryFrom<PortValue> for PortSetting {
    type Error = String;

    fn try_from(value: PortValue) -> Result<Self, String> {
        match value {
            PortValue::Number(0) => Ok(Self::Off),
            PortValue::Number(n) => u16::try_from(n)
                .map(Self::Port)
                .map_err(|_| format!("{n}: {PORT_EXPECTED}")),
            PortValue::Text(text) => text.parse(),
        }
    }
}

impl FromStr for PortSetting {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.eq_ignore_ascii_case("off") {
            return Ok(Self::Off);
        }
        match text.parse::<u16>() {
            Ok(0) => Ok(Self::Off),
            Ok(port) => Ok(Self::Port(port)),
            Err(_) => Err(format!("{text:?}: {PORT_EXPECTED}")),
        }
    }
}

/// Where the process looks for its configuration file and credentials, captured once from
/// the environment so that tests can supply their own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Environment {
    /// `$VHOST_USER_SPICE_CONFIG`.
    pub config_env: Option<PathBuf>,
    /// `$CREDENTIALS_DIRECTORY` (systemd `LoadCredential=`).
    pub credentials_dir: Option<PathBuf>,
    /// [`DEFAULT_CONFIG_PATH`], or another in tests.
    pub default_config: PathBuf,
    /// The libvirt domain that started this process, from its inherited pid file.
    pub libvirt_domain: Option<String>,
    /// [`DOMAIN_CONFIG_DIR`], or another in tests.
    pub domain_config_dir: PathBuf,
}

impl Environment {
    pub fn from_process() -> Self {
        let non_empty = |name| {
            std::env::var_os(name)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        Self {
            config_env: non_empty(CONFIG_ENV),
            credentials_dir: non_empty("CREDENTIALS_DIRECTORY"),
            default_config: DEFAULT_CONFIG_PATH.into(),
            libvirt_domain: super::libvirt::inherited_domain(),
            domain_config_dir: DOMAIN_CONFIG_DIR.into(),
        }
    }

    /// A world without configuration files or credentials.
    pub fn empty() -> Self {
        Self {
            config_env: None,
            credentials_dir: None,
            default_config: "/nonexistent/vhost-user-spice/default.toml".into(),
            libvirt_domain: None,
            domain_config_dir: "/nonexistent/vhost-user-spice".into(),
        }
    }

    /// The credential `name` if systemd passed it. A blank one is absent: the unit's
    /// `SetCredential=NAME:\n` default stands in for a `LoadCredential=` file that is missing.
    pub fn credential(&self, name: &str) -> Option<PathBuf> {
        let path = self.credentials_dir.as_ref()?.join(name);
        let len = std::fs::metadata(&path).ok().filter(|m| m.is_file())?.len();
        let blank = len == 0
            || (len <= MAX_BLANK_CREDENTIAL_BYTES
                && std::fs::read(&path).is_ok_and(|b| b.iter().all(u8::is_ascii_whitespace)));
        (!blank).then_some(path)
    }

    /// The configuration file to read: `--config`, else `$VHOST_USER_SPICE_CONFIG` (both must
    /// exist), else the credential `config`, else the libvirt domain's `<name>.toml` if it
    /// exists, else the default file if it exists, else none.
    pub fn locate_config(&self, explicit: Option<&Path>) -> Option<PathBuf> {
        if let Some(path) = explicit.or(self.config_env.as_deref()) {
            return Some(path.into());
        }
        self.credential(CREDENTIAL_CONFIG)
            .or_else(|| self.domain_config())
            .or_else(|| {
                self.default_config
                    .is_file()
                    .then(|| self.default_config.clone())
            })
    }

    /// `<domain>.toml` of the libvirt domain that started us, if it exists.
    pub fn domain_config(&self) -> Option<PathBuf> {
        let domain = self.libvirt_domain.as_deref()?;
        let path = self.domain_config_dir.join(format!("{domain}.toml"));
        path.is_file().then_some(path)
    }
}

/// Reads a configuration file, refusing one too large to be one.
pub fn read_config(path: &Path) -> Result<Settings, ConfigError> {
    let read_error = |source| ConfigError::ReadFile {
        path: path.into(),
        source,
    };
    let file = std::fs::File::open(path).map_err(read_error)?;
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    if u64::try_from(text.len()).unwrap_or(u64::MAX) > MAX_CONFIG_BYTES {
        return Err(ConfigError::FileTooLarge {
            path: path.into(),
            limit: MAX_CONFIG_BYTES,
        });
    }
    Settings::from_toml(&text, path)
}
