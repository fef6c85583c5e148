//! Boots the Linux test guest under QEMU (TCG) for end-to-end tests of the vhost-user devices.
//!
//! Include it with `mod vm;` from a `tests/*.rs` file. A test typically:
//!
//! ```ignore
//! if !vm::vm_tests_enabled() { return; }          // skip, or panic under CI=true
//! let image = vm::GuestImage::build()?;           // scripts/build-guest.sh, cached
//! // start the backend on `sock` first: QEMU connects once, at start-up
//! let mut qemu = vm::Qemu::start(&image, vm::QemuOpts::default().gpu(&sock))?;
//! let line = qemu.wait_serial("PATTERN DRAWN", Duration::from_secs(60))?;  // "PATTERN DRAWN 1280x800"
//! let want = vm::expected_pattern(1280, 800);
//! ```
//!
//! The guest's serial markers are listed at the top of `guest/init`; the pattern is defined in
//! [`pattern`]. QEMU always runs with `accel=tcg` (the build machines' `/dev/kvm` cannot boot
//! Linux, shared/research/vmm-frontends.md §1.1) and is killed when the [`Qemu`] is dropped.
//!
//! - [`pattern`]: the framebuffer test pattern, frame comparison, PPM reading.
//! - [`prereq`]: whether VM tests can run here (and installing what is missing).
//! - [`process`]: [`ChildGuard`], a child process that never outlives its test (use it for the
//!   backend under test too).
//! - [`client`]: [`client::SpiceClient`], the scripted spice-gtk client
//!   (`tests/tools/spice_client.py`).
//! - [`stack`]: [`stack::SpiceStack`], the daemon's GPU, input and SPICE server in-process.
//!
//! Environment: `VUS_QEMU` (QEMU binary), `VUS_GUEST_DIR` (guest image directory),
//! `VUS_KEEP_VM_DIR=1` (keep each VM's work directory: serial log, QEMU stderr).

// Each test binary uses its own subset of these helpers and re-exports.
#![allow(dead_code, unused_imports)]

pub mod client;
mod pattern;
mod prereq;
mod process;
pub mod stack;

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

pub use pattern::{
    assert_ppm_is_pattern, compare_with_pattern, expected_pattern, parse_ppm, pattern_pixel,
    read_ppm, Frame, Mismatch, PATTERN_TILE,
};
pub use prereq::{
    missing_prerequisites, root_tools_available, spice_clients_enabled, vm_tests_enabled, PYTHON,
    SPICY_SCREENSHOT,
};
pub use process::{command_succeeded, poll_until, ChildGuard};

/// Kernel command line before [`QemuOpts::kernel_args`]: ttyS0 comes last so that `/dev/console`
/// (the markers) is the serial port; `panic=-1` with `-no-reboot` turns a guest panic into a
/// prompt QEMU exit instead of a test that times out.
pub const DEFAULT_KERNEL_ARGS: &str = "console=tty0 console=ttyS0 consoleblank=0 panic=-1";

/// How often the serial log and the QEMU process are polled while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// How many serial log lines an error message carries.
const LOG_TAIL_LINES: usize = 30;

pub type Result<T, E = VmError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("Failed to run {what}")]
    Spawn {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("Guest build {script} failed ({status}):\n{stderr}")]
    GuestBuild {
        script: PathBuf,
        status: ExitStatus,
        stderr: String,
    },
    #[error("Backend socket {path} did not appear within {timeout:?}")]
    SocketMissing { path: PathBuf, timeout: Duration },
    #[error(
        "Serial marker {marker:?} did not appear within {timeout:?}; serial log tail:\n{tail}"
    )]
    MarkerTimeout {
        marker: String,
        timeout: Duration,
        tail: String,
    },
    #[error("QEMU exited ({status}) before serial marker {marker:?}; QEMU stderr:\n{stderr}\nserial log tail:\n{tail}")]
    QemuExited {
        marker: String,
        status: ExitStatus,
        stderr: String,
        tail: String,
    },
    #[error("QEMU did not exit within {0:?}")]
    ExitTimeout(Duration),
    #[error("QMP command {command} failed: {reply}")]
    Qmp { command: String, reply: String },
    #[error("I/O on {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> VmError + '_ {
    move |source| VmError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The package root, where `scripts/` and `guest/` live.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The QEMU binary: `$VUS_QEMU`, else `qemu-system-x86_64` from `PATH`.
pub fn qemu_binary() -> String {
    std::env::var("VUS_QEMU").unwrap_or_else(|_| "qemu-system-x86_64".to_string())
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` when set, else three levels above the test
/// executable (`target/debug/deps/<test>`).
fn target_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("CARGO_TARGET_DIR") {
        return PathBuf::from(dir);
    }
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(3).map(Path::to_path_buf))
        .unwrap_or_else(|| workspace_root().join("target"))
}

/// The kernel and initramfs of the test guest.
#[derive(Clone, Debug)]
pub struct GuestImage {
    pub kernel: PathBuf,
    pub initrd: PathBuf,
}

impl GuestImage {
    /// Where the image is built: `$VUS_GUEST_DIR`, else `<target dir>/guest`.
    pub fn dir() -> PathBuf {
        std::env::var_os("VUS_GUEST_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| target_dir().join("guest"))
    }

    /// Whether both image files exist (possibly stale; [`GuestImage::build`] refreshes them).
    pub fn is_built() -> bool {
        let dir = Self::dir();
        dir.join("vmlinuz").is_file() && dir.join("initrd.gz").is_file()
    }

    /// Builds (or reuses, when newer than the script and `guest/init`) the guest image with
    /// `scripts/build-guest.sh`. Safe to call from parallel tests: the script serialises itself.
    pub fn build() -> Result<GuestImage> {
        let dir = Self::dir();
        let script = workspace_root().join("scripts/build-guest.sh");
        let out = Command::new(&script)
            .arg(&dir)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| VmError::Spawn {
                what: script.display().to_string(),
                source,
            })?;
        if !out.status.success() {
            return Err(VmError::GuestBuild {
                script,
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            });
        }
        Ok(GuestImage {
            kernel: dir.join("vmlinuz"),
            initrd: dir.join("initrd.gz"),
        })
    }
}

/// How to start QEMU. [`Default`] gives a guest with no virtio devices.
#[derive(Clone, Debug)]
pub struct QemuOpts {
    /// vhost-user socket of the virtio-gpu backend (`vhost-user-gpu-pci`).
    pub gpu_socket: Option<PathBuf>,
    /// vhost-user socket of the virtio-input backend (`vhost-user-input-pci`).
    pub input_socket: Option<PathBuf>,
    /// Guest RAM, in a shared memfd so the backends can map it.
    pub memory_mib: u32,
    /// Guest CPUs. One and two reached `PATTERN DRAWN` equally fast under TCG on a 2-core host
    /// (within the noise, scripts/README.md); one leaves a host core to the backend under test
    /// and to parallel tests.
    pub smp: u32,
    /// Appended to [`DEFAULT_KERNEL_ARGS`], e.g. `vus.poweroff=2`.
    pub kernel_args: Vec<String>,
    /// Extra raw QEMU arguments.
    pub qemu_args: Vec<String>,
    /// Where the serial log, QEMU's stderr and the QMP socket go; a fresh temporary directory
    /// (removed on drop unless `VUS_KEEP_VM_DIR=1`) when `None`.
    pub work_dir: Option<PathBuf>,
    /// How long to wait for the backend sockets to appear before starting QEMU (QEMU connects
    /// once, at start-up, and fails if the socket is not there yet).
    pub socket_timeout: Duration,
}

impl Default for QemuOpts {
    fn default() -> Self {
        QemuOpts {
            gpu_socket: None,
            input_socket: None,
            memory_mib: 512,
            smp: 1,
            kernel_args: Vec::new(),
            qemu_args: Vec::new(),
            work_dir: None,
            socket_timeout: Duration::from_secs(10),
        }
    }
}

impl QemuOpts {
    pub fn gpu(mut self, socket: impl Into<PathBuf>) -> Self {
        self.gpu_socket = Some(socket.into());
        self
    }

    pub fn input(mut self, socket: impl Into<PathBuf>) -> Self {
        self.input_socket = Some(socket.into());
        self
    }

    pub fn kernel_arg(mut self, arg: impl Into<String>) -> Self {
        self.kernel_args.push(arg.into());
        self
    }

    /// The guest powers itself off this many seconds after `GUEST READY` (QEMU then exits 0).
    pub fn poweroff_after(self, secs: u32) -> Self {
        self.kernel_arg(format!("vus.poweroff={secs}"))
    }

    pub fn work_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.work_dir = Some(dir.into());
        self
    }
}

/// Waits until `path` exists and is a unix socket.
pub fn wait_for_socket(path: &Path, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if fs::metadata(path).is_ok_and(|m| m.file_type().is_socket()) {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(VmError::SocketMissing {
                path: path.to_path_buf(),
                timeout,
            });
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// A running QEMU with the test guest. Dropping it kills QEMU, and so does the exit of the thread
/// that started it (see [`ChildGuard`]).
pub struct Qemu {
    child: ChildGuard,
    started: Instant,
    dir: PathBuf,
    temp: Option<tempfile::TempDir>,
    serial_log: PathBuf,
    /// Write end of the FIFO QEMU reads as serial input; opened read-write so neither side
    /// blocks in open(2) waiting for the other.
    serial_in: File,
    qmp_socket: PathBuf,
    stderr_log: PathBuf,
    /// Byte offset in the serial log just past the last line [`Qemu::wait_serial`] matched.
    cursor: u64,
}

impl Qemu {
    /// Starts QEMU (TCG, q35, shared memfd RAM, `-display none`, serial to a log file) on
    /// `image`, after waiting for the backend sockets named in `opts` to exist.
    pub fn start(image: &GuestImage, opts: QemuOpts) -> Result<Qemu> {
        for sock in opts.gpu_socket.iter().chain(&opts.input_socket) {
            wait_for_socket(sock, opts.socket_timeout)?;
        }
        let (dir, temp) = match &opts.work_dir {
            Some(d) => {
                fs::create_dir_all(d).map_err(io_err(d))?;
                (d.clone(), None)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("vus-vm-")
                    .tempdir()
                    .map_err(io_err(&std::env::temp_dir()))?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let serial_log = dir.join("serial.log");
        let serial_fifo = dir.join("serial.in");
        let qmp_socket = dir.join("qmp.sock");
        let stderr_log = dir.join("qemu.stderr");
        for stale in [&serial_log, &serial_fifo, &qmp_socket] {
            let _ = fs::remove_file(stale);
        }
        process::make_fifo(&serial_fifo).map_err(io_err(&serial_fifo))?;
        let serial_in = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&serial_fifo)
            .map_err(io_err(&serial_fifo))?;
        let stderr = File::create(&stderr_log).map_err(io_err(&stderr_log))?;

        let mut append = DEFAULT_KERNEL_ARGS.to_string();
        for arg in &opts.kernel_args {
            let _ = write!(append, " {arg}");
        }
        let mut cmd = Command::new(qemu_binary());
        cmd.args(["-machine", "q35,accel=tcg,memory-backend=mem"])
            .arg("-object")
            .arg(format!(
                "memory-backend-memfd,id=mem,size={}M,share=on",
                opts.memory_mib
            ))
            .arg("-m")
            .arg(format!("{}M", opts.memory_mib))
            .args(["-cpu", "max", "-smp"])
            .arg(opts.smp.to_string())
            .args([
                "-nodefaults",
                "-no-user-config",
                "-display",
                "none",
                "-no-reboot",
            ])
            .arg("-kernel")
            .arg(&image.kernel)
            .arg("-initrd")
            .arg(&image.initrd)
            .arg("-append")
            .arg(&append)
            .arg("-chardev")
            .arg(format!(
                "file,id=serial0,path={},input-path={}",
                serial_log.display(),
                serial_fifo.display()
            ))
            .args(["-serial", "chardev:serial0"])
            .arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp_socket.display()));
        if let Some(sock) = &opts.gpu_socket {
            cmd.arg("-chardev")
                .arg(format!("socket,id=vgpu,path={}", sock.display()))
                .args(["-device", "vhost-user-gpu-pci,chardev=vgpu"]);
        }
        if let Some(sock) = &opts.input_socket {
            cmd.arg("-chardev")
                .arg(format!("socket,id=vinput,path={}", sock.display()))
                .args(["-device", "vhost-user-input-pci,chardev=vinput"]);
        }
        cmd.args(&opts.qemu_args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr);
        let child = ChildGuard::spawn(&mut cmd).map_err(|source| VmError::Spawn {
            what: qemu_binary(),
            source,
        })?;
        Ok(Qemu {
            child,
            started: Instant::now(),
            dir,
            temp,
            serial_log,
            serial_in,
            qmp_socket,
            stderr_log,
            cursor: 0,
        })
    }

    /// Waits for the next serial line, after the previous match, that contains `marker`, and
    /// returns it from the marker to the end of the line (so `"PATTERN DRAWN"` gives
    /// `"PATTERN DRAWN 1280x800"`, even when the line began with a shell prompt). Markers must
    /// therefore be awaited in the order the guest prints them; [`Qemu::find_serial`] searches
    /// the whole log instead. Fails early when QEMU exits.
    pub fn wait_serial(&mut self, marker: &str, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((line, end)) = self.scan_from(self.cursor, marker)? {
                self.cursor = end;
                return Ok(line);
            }
            if let Some(status) = self.child.try_wait().map_err(io_err(&self.dir))? {
                // The log may have grown between the scan and the exit.
                if let Some((line, end)) = self.scan_from(self.cursor, marker)? {
                    self.cursor = end;
                    return Ok(line);
                }
                return Err(VmError::QemuExited {
                    marker: marker.to_string(),
                    status,
                    stderr: fs::read_to_string(&self.stderr_log).unwrap_or_default(),
                    tail: self.serial_tail(),
                });
            }
            if Instant::now() >= deadline {
                return Err(VmError::MarkerTimeout {
                    marker: marker.to_string(),
                    timeout,
                    tail: self.serial_tail(),
                });
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// The first line anywhere in the serial log containing `marker`, from the marker on.
    pub fn find_serial(&self, marker: &str) -> Option<String> {
        self.scan_from(0, marker)
            .ok()
            .flatten()
            .map(|(line, _)| line)
    }

    /// Scans complete lines from byte `from`; returns the match and the offset after its line.
    fn scan_from(&self, from: u64, marker: &str) -> Result<Option<(String, u64)>> {
        let mut file = match File::open(&self.serial_log) {
            Ok(f) => f,
            // QEMU creates the log a moment after it starts.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&self.serial_log)(e)),
        };
        file.seek(SeekFrom::Start(from))
            .map_err(io_err(&self.serial_log))?;
        let mut reader = BufReader::new(file);
        let mut offset = from;
        let mut raw = Vec::new();
        loop {
            raw.clear();
            let n = reader
                .read_until(b'\n', &mut raw)
                .map_err(io_err(&self.serial_log))?;
            if n == 0 || raw.last() != Some(&b'\n') {
                return Ok(None);
            }
            offset += n as u64;
            let line = String::from_utf8_lossy(&raw);
            if let Some(at) = line.find(marker) {
                let found = line[at..].trim_end_matches(['\n', '\r']).to_string();
                return Ok(Some((found, offset)));
            }
        }
    }

    /// The whole serial log so far (kernel messages and markers).
    pub fn serial_log(&self) -> String {
        fs::read(&self.serial_log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    fn serial_tail(&self) -> String {
        let log = self.serial_log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n")
    }

    /// Types `line` (a newline is added) into the guest's serial shell, available after
    /// `GUEST READY`. The shell echoes the command, so make the awaited output differ from the
    /// command text (`echo OK-$((1+1))` prints `OK-2`).
    pub fn send_serial(&mut self, line: &str) -> Result<()> {
        let fifo = self.dir.join("serial.in");
        self.serial_in
            .write_all(format!("{line}\n").as_bytes())
            .map_err(io_err(&fifo))
    }

    /// Sends one QMP command (`{"execute": ...}` JSON) and returns the raw reply line.
    pub fn qmp(&self, command: &str) -> Result<String> {
        let stream = UnixStream::connect(&self.qmp_socket).map_err(io_err(&self.qmp_socket))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(io_err(&self.qmp_socket))?;
        let mut writer = stream.try_clone().map_err(io_err(&self.qmp_socket))?;
        let mut reader = BufReader::new(stream);
        let mut reply = String::new();
        // Greeting, then capabilities negotiation, then the command; events are skipped.
        reader
            .read_line(&mut reply)
            .map_err(io_err(&self.qmp_socket))?;
        for cmd in [r#"{"execute":"qmp_capabilities"}"#, command] {
            writer
                .write_all(format!("{cmd}\n").as_bytes())
                .map_err(io_err(&self.qmp_socket))?;
            loop {
                reply.clear();
                let n = reader
                    .read_line(&mut reply)
                    .map_err(io_err(&self.qmp_socket))?;
                if n == 0 || reply.contains("\"return\"") || reply.contains("\"error\"") {
                    break;
                }
            }
            if !reply.contains("\"return\"") {
                return Err(VmError::Qmp {
                    command: cmd.to_string(),
                    reply,
                });
            }
        }
        Ok(reply.trim_end().to_string())
    }

    /// QMP `screendump` of QEMU's own console as a PPM file. Only shows something when the GPU
    /// backend feeds QEMU's display channel (QEMU's reference vhost-user-gpu does).
    pub fn screendump(&self, path: &Path) -> Result<()> {
        let cmd = format!(
            r#"{{"execute":"screendump","arguments":{{"filename":"{}","format":"ppm"}}}}"#,
            path.display()
        );
        self.qmp(&cmd).map(drop)
    }

    /// Time since QEMU was spawned.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The directory holding `serial.log`, `qemu.stderr` and `qmp.sock`.
    pub fn work_dir(&self) -> &Path {
        &self.dir
    }

    /// Waits for QEMU to exit by itself (e.g. after `vus.poweroff=N`).
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().map_err(io_err(&self.dir))? {
                return Ok(status);
            }
            if Instant::now() >= deadline {
                return Err(VmError::ExitTimeout(timeout));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Kills QEMU (SIGKILL) and reaps it; a no-op when it has already exited.
    pub fn kill(&mut self) {
        self.child.kill();
    }
}

impl Drop for Qemu {
    fn drop(&mut self) {
        self.kill();
        if std::env::var("VUS_KEEP_VM_DIR").as_deref() == Ok("1") {
            if let Some(t) = self.temp.take() {
                eprintln!("vm: kept work directory {}", t.keep().display());
            }
        }
    }
}
