//! vus-bench: runs one of spice-ref-server's workloads through our daemon's QXL rings and
//! display worker (and SPICE server, once it is in the tree) in one process, and prints a
//! JSON summary with spice-ref-server's field names, so the kit's bench.py drives both.
//!
//! It takes spice-ref-server's command line (the options that make sense here), e.g.
//!
//! ```text
//! vus-bench --workload office --duration 10 --wait-clients 4 --port 5900 > summary.json
//! vus-bench --workload desktop --frame-hash 60
//! ```
//!
//! stdout: the summary (or the `--frame-hash` line); stderr: JSON event lines (`listening`,
//! `workload_start`), which bench.py waits for. Exit status as spice-ref-server: 0 ok,
//! 1 setup failure, 2 bad options, 3 `--wait-clients` not reached in `--wait-timeout`.

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;

use vhost_user_spice::app::DisplayStack;
use vhost_user_spice::workload::cpu::{self, Usage};
use vhost_user_spice::workload::pacer::{self, Pace, PacerStats};
use vhost_user_spice::workload::report::{JsonObject, RunReport};
use vhost_user_spice::workload::{frame_hash, Generator, Workload, WorkloadConfig};

/// Exit status when `--wait-clients` was not reached (spice-ref-server's).
const EXIT_NO_CLIENTS: u8 = 3;
/// How often the client count is polled while waiting (spice-ref-server: 20 ms).
const WAIT_POLL: Duration = Duration::from_millis(20);

/// spice-ref-server's options; those that do not apply to our daemon are accepted and
/// ignored, so bench.py can start either binary with the same command line.
#[derive(Parser, Debug)]
#[command(
    name = "vus-bench",
    about = "Benchmark vhost-user-spice on spice-ref-server's workloads"
)]
struct Args {
    /// idle, desktop, video, fullscreen, fullhd-video, office.
    #[arg(long, default_value = "desktop")]
    workload: Workload,
    /// Seconds of workload (0: until SIGINT/SIGTERM is not supported; use a duration).
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Frames per second, overrides the workload's default.
    #[arg(long)]
    fps: Option<f64>,
    /// Primary surface WxH, overrides the workload's default.
    #[arg(long, alias = "size", value_parser = parse_size)]
    surface: Option<(u32, u32)>,
    #[arg(long, default_value_t = 1)]
    seed: u32,
    /// desktop: rectangles per frame.
    #[arg(long, default_value_t = 4)]
    rects: u32,
    /// video: region size; office: video window size.
    #[arg(long, value_parser = parse_size)]
    video_size: Option<(u32, u32)>,
    /// Cursor moves per second (0: none).
    #[arg(long, default_value_t = 2.0)]
    cursor_hz: f64,
    /// No server: build the first N frames, print spice-ref-server's hash line, exit.
    #[arg(long)]
    frame_hash: Option<u32>,
    #[arg(long, default_value = "127.0.0.1")]
    addr: String,
    #[arg(long, default_value_t = 5900)]
    port: u16,
    /// Start the workload once N display clients are connected.
    #[arg(long, default_value_t = 0)]
    wait_clients: usize,
    #[arg(long, default_value_t = 60.0)]
    wait_timeout: f64,
    /// Keep serving (idle) this long after the summary.
    #[arg(long, default_value_t = 0.0)]
    linger: f64,
    /// auto_glz (our default: LZ4 or QUIC), lz4 (LZ4 or raw), off (raw bitmaps); others map
    /// to our default.
    #[arg(long, default_value = "auto_glz")]
    image_compression: String,
    /// Accepted for bench.py; we have no video streams yet.
    #[arg(long, default_value = "off")]
    streaming_video: String,
    /// The SPICE server's tokio worker threads (default: the daemon's)
    #[arg(long, default_value_t = vhost_user_spice::app::WORKER_THREADS)]
    spice_threads: usize,
    #[arg(long, hide = true)]
    jpeg_wan: Option<String>,
    #[arg(long, hide = true)]
    zlib_glz_wan: Option<String>,
    #[arg(long, hide = true)]
    ring: Option<u32>,
    #[arg(long, hide = true)]
    max_inflight_mb: Option<u32>,
    #[arg(long, hide = true)]
    stats_interval: Option<f64>,
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s.split_once('x').ok_or("expected WxH")?;
    let p = |v: &str| v.parse::<u32>().map_err(|e| e.to_string());
    Ok((p(w)?, p(h)?))
}

impl Args {
    fn workload_config(&self) -> WorkloadConfig {
        let mut cfg = WorkloadConfig::new(self.workload);
        cfg.seed = self.seed;
        cfg.rects = self.rects;
        if let Some(fps) = self.fps {
            cfg.fps = fps;
        }
        if let Some((w, h)) = self.surface {
            (cfg.width, cfg.height) = (w, h);
        }
        if let Some(v) = self.video_size {
            cfg.video = v;
        }
        cfg
    }
}

fn epoch_s() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

fn event(e: &mut JsonObject) {
    eprintln!("{}", e.compact());
}

fn print_frame_hash(cfg: WorkloadConfig, frames: u32) {
    let t0 = cpu::thread_cpu_s();
    let h = frame_hash(cfg, frames);
    let cpu = cpu::thread_cpu_s() - t0;
    let mut j = JsonObject::default();
    j.str("workload", cfg.workload.name())
        .int("width", cfg.width)
        .int("height", cfg.height)
        .int("seed", cfg.seed)
        .int("frames", h.frames)
        .int("commands", h.commands)
        .int("pixels", h.pixels)
        .str("fnv1a64", &format!("{:016x}", h.fnv1a64))
        .int("dropped", 0u8);
    println!("{}", j.line());
    let ns = if h.pixels > 0 {
        cpu * 1e9 / h.pixels as f64
    } else {
        0.0
    };
    // Includes hashing every byte, unlike the kit's figure.
    eprintln!("generator + hash: {ns:.2} ns/pixel");
}

fn main() -> ExitCode {
    vhost_user_spice::alloc_tuning::keep_freed_buffers();
    let args = Args::parse();
    let cfg = args.workload_config();
    if let Err(e) = cfg.validate() {
        eprintln!("vus-bench: {e}");
        return ExitCode::from(2);
    }
    if let Some(n) = args.frame_hash {
        print_frame_hash(cfg, n);
        return ExitCode::SUCCESS;
    }
    if args.duration <= 0.0 || !args.duration.is_finite() {
        eprintln!("vus-bench: --duration must be a positive number of seconds");
        return ExitCode::from(2);
    }
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match run(&args, cfg) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("vus-bench: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &Args, cfg: WorkloadConfig) -> Result<ExitCode, String> {
    let DisplayStack {
        mut producer,
        display,
    } = DisplayStack::new().map_err(|e| format!("cannot build the display stack: {e}"))?;
    producer
        .create_primary(cfg.width, cfg.height)
        .map_err(|e| format!("cannot create the primary surface: {e}"))?;
    let clients = serve::Clients::start(args, &display)?;
    event(
        JsonObject::default()
            .str("event", "listening")
            .str("addr", &args.addr)
            .int("port", clients.port())
            .int("tls_port", 0u8)
            .bool("allow_mc", true),
    );
    if !clients.wait_for(
        args.wait_clients,
        Duration::from_secs_f64(args.wait_timeout),
    ) {
        eprintln!(
            "vus-bench: only {} of {} display clients after {:.0} s",
            clients.count(),
            args.wait_clients,
            args.wait_timeout
        );
        clients.shutdown();
        display.shutdown();
        return Ok(ExitCode::from(EXIT_NO_CLIENTS));
    }

    let usage_start = Usage::now();
    let threads_start = cpu::threads();
    let t_start = epoch_s();
    event(
        JsonObject::default()
            .str("event", "workload_start")
            .float("t", t_start, 3)
            .int("display_clients", clients.count() as u64),
    );
    let pace = Pace {
        duration: Some(Duration::from_secs_f64(args.duration)),
        cursor_hz: args.cursor_hz,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let guest = std::thread::Builder::new()
        .name("guest".into())
        .spawn(move || {
            let stats = pacer::run(&mut producer, &mut Generator::new(cfg), pace, &stop);
            (producer, stats)
        })
        .map_err(|e| format!("cannot start the guest thread: {e}"))?;
    let (mut producer, stats): (_, PacerStats) = guest
        .join()
        .map_err(|_| "the guest thread panicked".to_owned())?;
    let t_end = epoch_s();
    let usage_end = Usage::now();
    let threads = cpu::thread_deltas(&threads_start, &cpu::threads());
    let inflight_bytes_end = {
        let _ = producer.reclaim();
        producer.ram_used()
    };
    let report = RunReport {
        cfg: &cfg,
        image_compression: &args.image_compression,
        t_start,
        t_end,
        usage_start,
        usage_end,
        threads: &threads,
        pacer: &stats,
        inflight_bytes_end,
        display_clients_end: clients.count(),
        display_clients_max: clients.max_count(),
        pid: std::process::id() as i32,
    };
    println!("{}", report.to_json().pretty());
    let linger_until = Instant::now() + Duration::from_secs_f64(args.linger.max(0.0));
    while Instant::now() < linger_until {
        std::thread::sleep(WAIT_POLL);
    }
    clients.shutdown();
    display.shutdown();
    Ok(ExitCode::SUCCESS)
}

mod serve;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_spice_ref_server_command_lines() {
        let args = Args::try_parse_from([
            "vus-bench",
            "--workload",
            "office",
            "--duration",
            "10",
            "--linger",
            "6",
            "--wait-clients",
            "4",
            "--wait-timeout",
            "30",
            "--port",
            "6101",
            "--image-compression",
            "lz4",
            "--streaming-video",
            "filter",
            "--size",
            "1280x720",
        ])
        .expect("bench.py's command line parses");
        let cfg = args.workload_config();
        assert_eq!((cfg.width, cfg.height, cfg.video), (1280, 720, (480, 270)));
        assert_eq!((args.wait_clients, args.port), (4, 6101));
    }

    #[test]
    fn maps_spice_servers_image_compression_modes() {
        use vhost_user_spice::spice::ImageCompression;
        assert_eq!(serve::image_compression("auto_glz"), ImageCompression::Auto);
        assert_eq!(serve::image_compression("lz4"), ImageCompression::Lz4);
        assert_eq!(serve::image_compression("off"), ImageCompression::Off);
        assert_eq!(serve::image_compression("quic"), ImageCompression::Auto);
    }

    #[test]
    fn rejects_a_malformed_size() {
        assert!(parse_size("1280").is_err());
        assert!(parse_size("1280xabc").is_err());
        assert_eq!(parse_size("640x360"), Ok((640, 360)));
    }
}
