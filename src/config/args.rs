//! The command line: every option of the configuration file, plus `--config` and
//! `--print-capabilities`, grouped for `--help`.

use std::os::fd::RawFd;
use std::path::PathBuf;

use clap::{ArgGroup, Parser};

use super::{ImageCompression, InputPolicy, PortSetting, Settings};

const VMM: &str = "VMM connection (QEMU backend program conventions)";
const DISPLAY: &str = "Display";
const SPICE: &str = "SPICE listeners";
const AUTH: &str = "SPICE authentication and clients";
const TLS: &str = "SPICE TLS";
const GENERAL: &str = "Files and logging";

#[derive(Debug, Default, Parser)]
#[command(
    name = "vhost-user-spice",
    version,
    about = "vhost-user virtio-gpu / virtio-input backend serving the VM's screen to SPICE clients",
    long_about = "vhost-user virtio-gpu / virtio-input backend serving the VM's screen to many SPICE \
                  clients.\n\nEvery option can also be set in a TOML configuration file (key = the \
                  long option name without `--`); the command line overrides the file. Passwords \
                  are never taken from the command line: use --password-file or the systemd \
                  credential `spice-password`.",
    after_help = "Configuration file: --config FILE, else $VHOST_USER_SPICE_CONFIG, else the \
                  systemd credential `config`, else /etc/vhost-user-spice/default.toml if present.\n\
                  Socket activation (LISTEN_FDNAMES): vhost-user (or gpu), input, spice, spice-tls."
)]
#[command(group(ArgGroup::new("vhost_socket").args(["socket_path", "fd"]).multiple(false)))]
#[command(group(ArgGroup::new("input_vhost_socket").args(["input_socket", "input_fd"]).multiple(false)))]
// Each on/off option (`Option<bool>`) is also `--option=false`, so the command line can switch off
// what the configuration file switched on.
pub struct Args {
    /// Listen for the VMM on this unix socket (a stale socket file is replaced).
    #[arg(long, value_name = "PATH", help_heading = VMM)]
    pub socket_path: Option<PathBuf>,

    /// Serve the VMM on this inherited unix stream socket, listening or already connected.
    #[arg(long, value_name = "FDNUM", help_heading = VMM,
          value_parser = clap::value_parser!(i32).range(0..))]
    pub fd: Option<RawFd>,

    /// The virtio-input device's vhost-user socket (listened on, like --socket-path).
    #[arg(long, value_name = "PATH", help_heading = VMM)]
    pub input_socket: Option<PathBuf>,

    /// The virtio-input device's inherited socket, listening or already connected.
    #[arg(long, value_name = "FDNUM", help_heading = VMM,
          value_parser = clap::value_parser!(i32).range(0..))]
    pub input_fd: Option<RawFd>,

    /// Print the backend's capabilities as JSON and exit (all other options are ignored).
    #[arg(long, help_heading = VMM)]
    pub print_capabilities: bool,

    /// Show a built-in moving test picture instead of a guest's screen (no VMM socket).
    #[arg(long, value_name = "BOOL", help_heading = DISPLAY, num_args = 0..=1,
          require_equals = true, default_missing_value = "true", hide_possible_values = true,
          conflicts_with_all = ["socket_path", "fd"])]
    pub demo: Option<bool>,

    /// Initial display width in pixels [default: 1280].
    #[arg(long, value_name = "PIXELS", help_heading = DISPLAY)]
    pub width: Option<u32>,

    /// Initial display height in pixels [default: 800].
    #[arg(long, value_name = "PIXELS", help_heading = DISPLAY)]
    pub height: Option<u32>,

    /// Most bytes of host memory the guest's resources may take [default: 268435456].
    #[arg(long, value_name = "BYTES", help_heading = DISPLAY)]
    pub max_hostmem: Option<u64>,

    /// Address of the SPICE TCP listeners (an IP address) [default: 127.0.0.1].
    #[arg(long, value_name = "ADDR", help_heading = SPICE)]
    pub spice_addr: Option<String>,

    /// Plaintext SPICE TCP port; 0 or `off`: no plaintext TCP listener [default: 5900].
    #[arg(long, value_name = "PORT|off", help_heading = SPICE)]
    pub spice_port: Option<PortSetting>,

    /// Also serve plaintext SPICE on this unix socket.
    #[arg(long, value_name = "PATH", help_heading = SPICE)]
    pub spice_unix: Option<PathBuf>,

    /// SPICE-over-TLS TCP port (needs --tls-cert-file and --tls-key-file) [default: off].
    #[arg(long, value_name = "PORT|off", help_heading = SPICE)]
    pub spice_tls_port: Option<PortSetting>,

    /// File holding the SPICE password (ticket). Without it, the systemd credential
    /// `spice-password` is used if present.
    #[arg(long, value_name = "PATH", help_heading = AUTH)]
    pub password_file: Option<PathBuf>,

    /// Accept SPICE clients without a password (trusted networks only).
    #[arg(long, value_name = "BOOL", help_heading = AUTH, num_args = 0..=1,
          require_equals = true, default_missing_value = "true", hide_possible_values = true)]
    pub disable_ticketing: Option<bool>,

    /// The password stops being accepted this many seconds after start-up.
    #[arg(long, value_name = "SECONDS", help_heading = AUTH)]
    pub ticket_expiry: Option<u64>,

    /// Allow password login over plaintext TCP on a non-loopback address (the SPICE ticket is
    /// only RSA-1024 encrypted; use TLS instead).
    #[arg(long, value_name = "BOOL", help_heading = AUTH, num_args = 0..=1,
          require_equals = true, default_missing_value = "true", hide_possible_values = true)]
    pub allow_plaintext_password: Option<bool>,

    /// Most SPICE clients connected at once [default: 16].
    #[arg(long, value_name = "N", help_heading = AUTH)]
    pub max_clients: Option<u32>,

    /// Which clients' keyboard and mouse reach the guest [default: all].
    #[arg(long, value_name = "WHO", help_heading = AUTH)]
    pub input: Option<InputPolicy>,

    /// How images are compressed: LZ4 or QUIC, whichever fits the content (auto), LZ4 or raw
    /// (lz4), raw (off) [default: auto].
    #[arg(long, value_name = "MODE", help_heading = AUTH)]
    pub image_compression: Option<ImageCompression>,

    /// Server certificate chain (PEM). Default: the systemd credential `tls-cert`.
    #[arg(long, value_name = "PATH", help_heading = TLS)]
    pub tls_cert_file: Option<PathBuf>,

    /// Server private key (PEM). Default: the systemd credential `tls-key`.
    #[arg(long, value_name = "PATH", help_heading = TLS)]
    pub tls_key_file: Option<PathBuf>,

    /// CA certificates (PEM) for verifying client certificates; clients without a valid one are
    /// refused. Default: the systemd credential `tls-ca` if present, else no client certificates.
    #[arg(long, value_name = "PATH", help_heading = TLS)]
    pub tls_ca_file: Option<PathBuf>,

    /// Serve SPICE over TLS only: no plaintext TCP port, unix socket or activated `spice` socket.
    #[arg(long, value_name = "BOOL", help_heading = TLS, num_args = 0..=1,
          require_equals = true, default_missing_value = "true", hide_possible_values = true)]
    pub tls_only: Option<bool>,

    /// TOML configuration file (see docs/). The command line overrides it.
    #[arg(long, value_name = "FILE", help_heading = GENERAL)]
    pub config: Option<PathBuf>,

    /// Log filter (tracing `EnvFilter` syntax, e.g. `debug` or `vhost_user_spice=trace`);
    /// overrides RUST_LOG [default: info].
    #[arg(long, value_name = "FILTER", help_heading = GENERAL)]
    pub log: Option<String>,
}

impl Args {
    /// The settings the command line gives, for laying over the file's.
    pub fn settings(&self) -> Settings {
        Settings {
            socket_path: self.socket_path.clone(),
            fd: self.fd,
            input_socket: self.input_socket.clone(),
            input_fd: self.input_fd,
            demo: self.demo,
            width: self.width,
            height: self.height,
            max_hostmem: self.max_hostmem,
            spice_addr: self.spice_addr.clone(),
            spice_port: self.spice_port,
            spice_unix: self.spice_unix.clone(),
            spice_tls_port: self.spice_tls_port,
            password_file: self.password_file.clone(),
            disable_ticketing: self.disable_ticketing,
            ticket_expiry: self.ticket_expiry,
            allow_plaintext_password: self.allow_plaintext_password,
            max_clients: self.max_clients,
            input: self.input,
            image_compression: self.image_compression,
            tls_cert_file: self.tls_cert_file.clone(),
            tls_key_file: self.tls_key_file.clone(),
            tls_ca_file: self.tls_ca_file.clone(),
            tls_only: self.tls_only,
            log: self.log.clone(),
        }
    }
}
