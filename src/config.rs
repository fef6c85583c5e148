//! Command line (QEMU vhost-user backend program conventions) and the daemon's settings.
//!
//! Conventions (QEMU `docs/interop/vhost-user.rst`, "Backend program conventions";
//! `shared/research/ecosystem.md` §1.1): `--socket-path` or `--fd`, never both;
//! `--print-capabilities` prints the JSON capabilities and exits 0 whatever else is given; bad
//! setup exits non-zero early with a message; never daemonize; SIGTERM ends quickly and cleanly.
#![forbid(unsafe_code)]

use std::os::fd::RawFd;
use std::path::PathBuf;

use clap::{ArgGroup, Parser};

/// What `--print-capabilities` prints: the `VHostUserBackendCapabilities` of QEMU's
/// `docs/interop/vhost-user.json` for a GPU backend without `render-node` or `virgl`.
pub const CAPABILITIES: &str = r#"{"type":"gpu","features":[]}"#;

/// Smallest and largest display the Linux virtio-gpu driver accepts
/// (`drivers/gpu/drm/virtio/virtgpu_display.c`: 32×32 to 8192×8192; rust-vmm.md §3.6).
const DISPLAY_MIN: u32 = 32;
const DISPLAY_MAX: u32 = 8192;

/// QEMU's default `max_hostmem` for virtio-gpu resources (rust-vmm.md §3.4).
const DEFAULT_MAX_HOSTMEM: u64 = 256 << 20;

#[derive(Debug, Parser)]
#[command(name = "vhost-user-spice", version, about)]
#[command(group(ArgGroup::new("vhost_socket").args(["socket_path", "fd"]).multiple(false)))]
pub struct Args {
    /// Listen for the VMM on this unix socket (a stale socket file is replaced).
    #[arg(
        long,
        value_name = "PATH",
        required_unless_present_any = ["fd", "print_capabilities", "demo"]
    )]
    pub socket_path: Option<PathBuf>,

    /// Serve the VMM on this inherited unix stream socket, listening or already connected.
    #[arg(long, value_name = "FDNUM", value_parser = clap::value_parser!(i32).range(0..))]
    pub fd: Option<RawFd>,

    /// Print the backend's capabilities as JSON and exit.
    #[arg(long)]
    pub print_capabilities: bool,

    /// Initial display width in pixels.
    #[arg(long, default_value_t = 1280)]
    pub width: u32,

    /// Initial display height in pixels.
    #[arg(long, default_value_t = 800)]
    pub height: u32,

    /// Most bytes of host memory guest resources may take.
    #[arg(long, value_name = "BYTES", default_value_t = DEFAULT_MAX_HOSTMEM)]
    pub max_hostmem: u64,

    /// Log filter (tracing `EnvFilter` syntax, e.g. `debug` or `vhost_user_spice=trace`);
    /// overrides RUST_LOG.
    #[arg(long, value_name = "FILTER")]
    pub log: Option<String>,

    /// SPICE: address to listen on.
    #[arg(long, value_name = "ADDR")]
    pub spice_addr: Option<String>,

    /// SPICE: TCP port to listen on.
    #[arg(long, value_name = "PORT")]
    pub spice_port: Option<u16>,

    /// SPICE: file holding the ticket (password).
    #[arg(long, value_name = "PATH")]
    pub password_file: Option<PathBuf>,

    /// SPICE: accept clients without a ticket.
    #[arg(long)]
    pub disable_ticketing: bool,

    /// Show a built-in moving test picture instead of a guest's screen (no VMM socket needed).
    #[arg(long, conflicts_with_all = ["socket_path", "fd"])]
    pub demo: bool,
}

/// Where the vhost-user connection comes from, as given on the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocketSpec {
    Path(PathBuf),
    Fd(RawFd),
}

/// SPICE options, parsed now and used by the SPICE server once it is plugged in.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SpiceOptions {
    pub addr: Option<String>,
    pub port: Option<u16>,
    pub password_file: Option<PathBuf>,
    pub disable_ticketing: bool,
}

/// The daemon's validated settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// `None` only with `demo`: nothing to serve a VMM on.
    pub socket: Option<SocketSpec>,
    pub width: u32,
    pub height: u32,
    pub max_hostmem: u64,
    pub spice: SpiceOptions,
    pub demo: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("One of --socket-path or --fd is required")]
    NoSocket,
    #[error("Display size {width}x{height} is outside {DISPLAY_MIN}x{DISPLAY_MIN}..{DISPLAY_MAX}x{DISPLAY_MAX}")]
    DisplaySize { width: u32, height: u32 },
    #[error("--max-hostmem must be more than 0")]
    NoHostMemory,
    #[error("The directory of the socket path {path:?} does not exist")]
    SocketDirMissing { path: PathBuf },
}

impl TryFrom<Args> for Config {
    type Error = ConfigError;

    fn try_from(args: Args) -> Result<Self, ConfigError> {
        let socket = match (args.socket_path, args.fd) {
            (Some(path), _) => {
                let dir = match path.parent() {
                    Some(dir) if !dir.as_os_str().is_empty() => dir,
                    _ => std::path::Path::new("."),
                };
                if !dir.is_dir() {
                    return Err(ConfigError::SocketDirMissing { path });
                }
                Some(SocketSpec::Path(path))
            }
            (None, Some(fd)) => Some(SocketSpec::Fd(fd)),
            (None, None) if args.demo => None,
            (None, None) => return Err(ConfigError::NoSocket),
        };
        let size_ok = |v: u32| (DISPLAY_MIN..=DISPLAY_MAX).contains(&v);
        if !size_ok(args.width) || !size_ok(args.height) {
            return Err(ConfigError::DisplaySize {
                width: args.width,
                height: args.height,
            });
        }
        if args.max_hostmem == 0 {
            return Err(ConfigError::NoHostMemory);
        }
        Ok(Config {
            socket,
            width: args.width,
            height: args.height,
            max_hostmem: args.max_hostmem,
            spice: SpiceOptions {
                addr: args.spice_addr,
                port: args.spice_port,
                password_file: args.password_file,
                disable_ticketing: args.disable_ticketing,
            },
            demo: args.demo,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("vhost-user-spice").chain(args.iter().copied()))
    }

    #[test]
    fn socket_path_with_defaults() {
        let config = Config::try_from(parse(&["--socket-path", "/tmp/x.sock"]).unwrap()).unwrap();
        assert_eq!(config.socket, Some(SocketSpec::Path("/tmp/x.sock".into())));
        assert_eq!((config.width, config.height), (1280, 800));
        assert_eq!(config.max_hostmem, 256 << 20);
    }

    #[test]
    fn fd_is_accepted() {
        let config = Config::try_from(parse(&["--fd", "3"]).unwrap()).unwrap();
        assert_eq!(config.socket, Some(SocketSpec::Fd(3)));
    }

    #[test]
    fn requires_a_socket() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["--width", "640"]).is_err());
    }

    #[test]
    fn rejects_socket_path_and_fd_together() {
        assert!(parse(&["--socket-path", "/tmp/x", "--fd", "3"]).is_err());
    }

    #[test]
    fn rejects_negative_fd() {
        assert!(parse(&["--fd", "-1"]).is_err());
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
        let args = parse(&["--socket-path", "/nonexistent-dir-4f1c/x.sock"]).unwrap();
        assert!(matches!(
            Config::try_from(args),
            Err(ConfigError::SocketDirMissing { .. })
        ));
    }

    #[test]
    fn rejects_absurd_display_size() {
        let args = parse(&["--fd", "3", "--width", "9000"]).unwrap();
        assert!(matches!(
            Config::try_from(args),
            Err(ConfigError::DisplaySize { .. })
        ));
        let args = parse(&["--fd", "3", "--height", "16"]).unwrap();
        assert!(Config::try_from(args).is_err());
    }

    #[test]
    fn spice_options_are_parsed() {
        let args = parse(&[
            "--spice-addr",
            "0.0.0.0",
            "--spice-port",
            "5930",
            "--password-file",
            "/run/pw",
            "--disable-ticketing",
            "--demo",
        ])
        .unwrap();
        let config = Config::try_from(args).unwrap();
        assert_eq!(config.spice.port, Some(5930));
        assert!(config.spice.disable_ticketing && config.demo);
        assert_eq!(config.socket, None);
    }

    #[test]
    fn demo_excludes_a_vmm_socket() {
        assert!(parse(&["--demo", "--fd", "3"]).is_err());
    }

    #[test]
    fn capabilities_are_the_gpu_descriptor() {
        assert_eq!(CAPABILITIES, r#"{"type":"gpu","features":[]}"#);
    }
}
