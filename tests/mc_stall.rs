//! A stalled client among several: the others keep their update rate, the server's memory
//! stays within the pipe budget, the stalled one catches up when it resumes, and a client
//! stalled past the stall timeout is disconnected with its reason.

mod spice_support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spice_support::raw::Raw;
use spice_support::*;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use vhost_user_spice::display::qxl_source::spawn_qxl;
use vhost_user_spice::display::Rect;
use vhost_user_spice::spice::ticket::Ticketing;
use vhost_user_spice::spice::{SpiceConfig, SpiceServer, DEFAULT_STALL_TIMEOUT};

/// A spice-gtk client whose events are read continuously by a task of its own (a client
/// whose stdout nobody reads would block in its main loop and stall by itself).
struct Watched {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    /// Arrival time of each `invalidate`.
    invalidates: Arc<Mutex<Vec<Instant>>>,
    /// Other events by name, latest last.
    events: Arc<Mutex<HashMap<String, Vec<serde_json::Value>>>>,
}

impl Watched {
    async fn connect(port: u16) -> Self {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/spice_client.py");
        let mut child = tokio::process::Command::new(PYTHON)
            .args([script, "127.0.0.1", &port.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("python3 runs");
        let stdin = child.stdin.take().unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let invalidates = Arc::new(Mutex::new(Vec::new()));
        let events = Arc::new(Mutex::new(HashMap::<String, Vec<serde_json::Value>>::new()));
        let (inv, ev) = (Arc::clone(&invalidates), Arc::clone(&events));
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let e: serde_json::Value = serde_json::from_str(&line).unwrap();
                let name = e["event"].as_str().unwrap_or_default().to_owned();
                if name == "invalidate" {
                    inv.lock().unwrap().push(Instant::now());
                } else {
                    ev.lock().unwrap().entry(name).or_default().push(e);
                }
            }
        });
        Self {
            child,
            stdin,
            invalidates,
            events,
        }
    }

    fn pid(&self) -> i32 {
        self.child.id().expect("running") as i32
    }

    async fn wait_event(&self, name: &str, pred: impl Fn(&serde_json::Value) -> bool) {
        let ok = wait_until(|| {
            self.events
                .lock()
                .unwrap()
                .get(name)
                .is_some_and(|v| v.iter().any(&pred))
        })
        .await;
        assert!(ok, "no {name} event");
    }

    fn updates_between(&self, from: Instant, to: Instant) -> usize {
        let v = self.invalidates.lock().unwrap();
        v.iter().filter(|t| **t >= from && **t < to).count()
    }

    async fn dump(&mut self, path: &std::path::Path) -> (u32, u32, Vec<u8>) {
        let p = path.to_str().unwrap().to_owned();
        let cmd = serde_json::json!({"cmd": "dump", "path": p, "quiet_ms": 400});
        self.stdin
            .write_all(format!("{cmd}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
        self.wait_event("dumped", |e| e["path"] == p.as_str()).await;
        let e = self.events.lock().unwrap()["dumped"]
            .iter()
            .find(|e| e["path"] == p.as_str())
            .unwrap()
            .clone();
        (
            e["width"].as_u64().unwrap() as u32,
            e["height"].as_u64().unwrap() as u32,
            std::fs::read(path).unwrap(),
        )
    }
}

fn signal(pid: i32, sig: libc::c_int) {
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; `pid` is our own
    // child, still running (or a zombie we have not reaped, which ignores signals).
    let r = unsafe { libc::kill(pid, sig) };
    assert_eq!(r, 0, "kill({pid}, {sig})");
}

/// The process's anonymous resident memory, from /proc/self/status: the heap and stacks,
/// without the QXL region's shared pages (the guest's memory, which the producer walks
/// through as it allocates, and which RSS would count).
fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("RssAnon:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

const W: u32 = 640;
const H: u32 = 480;
/// The guest's frame rate.
const FPS: u64 = 30;
/// Each frame's rectangle.
const RW: u32 = 160;
const RH: u32 = 120;

/// Draws one moving rectangle per frame through the QXL producer until `stop`.
fn producer_thread(
    mut producer: qxl::Producer,
    stop: Arc<AtomicBool>,
    frames: Arc<AtomicU64>,
) -> std::thread::JoinHandle<qxl::Producer> {
    std::thread::spawn(move || {
        let tiles: Vec<Vec<u8>> = (0..8).map(|s| pattern(RW, RH, s + 50)).collect();
        let period = Duration::from_micros(1_000_000 / FPS);
        let start = Instant::now();
        let mut n: u64 = 0;
        while !stop.load(Ordering::Relaxed) {
            let x = ((n * 53) % u64::from(W - RW)) as i32;
            let y = ((n * 31) % u64::from(H - RH)) as i32;
            let rect = qxl::Rect {
                top: y,
                left: x,
                bottom: y + RH as i32,
                right: x + RW as i32,
            };
            producer
                .draw_copy(rect, &tiles[(n % 8) as usize], RW as usize * 4)
                .unwrap();
            n += 1;
            frames.store(n, Ordering::Relaxed);
            let next = start + period * n as u32;
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        producer
    })
}

fn guest_rgb(display: &vhost_user_spice::display::DisplayHandle) -> (u32, u32, Vec<u8>) {
    let snap = display.snapshot(0).unwrap();
    let rgb = snap
        .pixels
        .chunks_exact(4)
        .flat_map(|p| [p[2], p[1], p[0]])
        .collect();
    (snap.info.width, snap.info.height, rgb)
}

/// The bar of issue 4: four clients, one SIGSTOPped for 30 s while the guest draws at 30 fps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_client_among_four_costs_the_others_nothing_and_catches_up() {
    if !have_python_client() {
        return;
    }
    let budget = 1 << 20;
    let (mut producer, consumer) = qxl::new_device(qxl::DeviceConfig::default()).unwrap();
    let display = spawn_qxl(consumer);
    let server = SpiceServer::start(
        SpiceConfig {
            listeners: vec![vhost_user_spice::spice::ListenerSpec::tcp(
                std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
            )],
            pipe_budget: budget,
            ..SpiceConfig::new(Ticketing::Disabled)
        },
        display.clone(),
        Arc::new(RecordingSink::default()),
        Arc::new(RecordingControl::default()),
    )
    .await
    .unwrap();
    assert!(DEFAULT_STALL_TIMEOUT > Duration::from_secs(30));
    let port = server.local_addr().unwrap().port();
    producer.create_primary(W, H).unwrap();
    producer
        .draw_copy(
            qxl::Rect {
                top: 0,
                left: 0,
                bottom: H as i32,
                right: W as i32,
            },
            &pattern(W, H, 1),
            W as usize * 4,
        )
        .unwrap();

    let mut clients = Vec::new();
    for _ in 0..4 {
        let c = Watched::connect(port).await;
        c.wait_event("mark", |_| true).await;
        clients.push(c);
    }
    assert_eq!(server.client_count(), 4);

    let stop = Arc::new(AtomicBool::new(false));
    let frames = Arc::new(AtomicU64::new(0));
    let drawing = producer_thread(producer, Arc::clone(&stop), Arc::clone(&frames));

    // Baseline: all four reading.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_base = rss_bytes();
    let base_from = Instant::now();
    let base_frames = frames.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs(8)).await;
    let base_to = Instant::now();
    let base_frames = frames.load(Ordering::Relaxed) - base_frames;

    // Client 0 stops for 30 s.
    let rss_before = rss_bytes();
    signal(clients[0].pid(), libc::SIGSTOP);
    let stall_from = Instant::now();
    let stall_frames = frames.load(Ordering::Relaxed);
    let mut peak_rss = rss_before;
    let mut peak_pending = 0usize;
    while stall_from.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        peak_rss = peak_rss.max(rss_bytes());
        for s in server.client_stats() {
            if let Some(d) = s.display {
                peak_pending = peak_pending.max(d.peak_pending_bytes);
            }
        }
    }
    let stall_to = Instant::now();
    let stall_frames = frames.load(Ordering::Relaxed) - stall_frames;
    let stats_stalled = server.client_stats();
    signal(clients[0].pid(), libc::SIGCONT);

    let base_secs = (base_to - base_from).as_secs_f64();
    let stall_secs = (stall_to - stall_from).as_secs_f64();
    eprintln!(
        "guest: {:.1} frames/s baseline, {:.1} frames/s during the stall",
        base_frames as f64 / base_secs,
        stall_frames as f64 / stall_secs
    );
    for (i, c) in clients.iter().enumerate() {
        let base = c.updates_between(base_from, base_to) as f64 / base_secs;
        let during = c.updates_between(stall_from, stall_to) as f64 / stall_secs;
        eprintln!("client {i}: {base:.1} updates/s baseline, {during:.1} during the stall");
        if i > 0 {
            assert!(
                during >= 0.95 * base,
                "client {i} slowed down: {during:.1}/s against {base:.1}/s"
            );
            assert!(
                base > 0.8 * FPS as f64,
                "client {i} kept up at first: {base:.1}/s"
            );
        }
    }
    let growth = peak_rss.saturating_sub(rss_before);
    eprintln!(
        "anonymous RSS {:.1} MiB at the baseline's start, {:.1} MiB before the stall, \
         +{:.1} MiB at most during it; peak bytes waiting for any client's socket: \
         {peak_pending} (budget {budget})\nstats during the stall: {stats_stalled:#?}",
        rss_base as f64 / f64::from(1 << 20),
        rss_before as f64 / f64::from(1 << 20),
        growth as f64 / f64::from(1 << 20),
    );
    // One message may go past the budget; the largest here is a full frame.
    assert!(peak_pending <= budget + (W * H * 4) as usize + 4096);
    // The pipe budget, the image cache and allocator slack.
    assert!(growth < 16 << 20, "RSS grew by {growth} bytes");
    assert_eq!(
        server.client_count(),
        4,
        "the stalled client is still there"
    );

    // It resumes; the guest draws on a little, then stops, and everyone has its screen.
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let mut producer = drawing.join().unwrap();
    // Waits for the worker to have applied every command.
    producer
        .io(qxl::IoRequest::UpdateArea {
            surface_id: 0,
            area: qxl::Rect {
                top: 0,
                left: 0,
                bottom: 1,
                right: 1,
            },
        })
        .unwrap();
    let want = guest_rgb(&display);
    let dir = tempfile::tempdir().unwrap();
    for (i, c) in clients.iter_mut().enumerate() {
        let got = c.dump(&dir.path().join(format!("c{i}.rgb"))).await;
        assert_same_picture(&got, &want);
    }
    server.shutdown().await;
}

/// A display client that links, says INIT, and never reads.
async fn silent_client(port: u16) -> (Raw, Raw) {
    let (main, mut display) = Raw::display_session(port).await;
    display.send_display_init().await;
    (main, display)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_stalled_past_the_timeout_is_disconnected_and_the_others_stay() {
    let rig = start_with(SpiceConfig {
        listeners: vec![vhost_user_spice::spice::ListenerSpec::tcp(
            std::net::SocketAddr::from(([127, 0, 0, 1], 0)),
        )],
        pipe_budget: 64 * 1024,
        stall_timeout: Duration::from_secs(1),
        ..SpiceConfig::new(Ticketing::Disabled)
    })
    .await;
    let (w, h) = (320u32, 240u32);
    rig.guest.create_primary(w, h);
    rig.guest.sync();
    let (mut main, _display) = silent_client(rig.port).await;
    let mut good = match have_python_client() {
        true => Some(PyClient::connect(rig.port, None).await),
        false => None,
    };
    if let Some(g) = good.as_mut() {
        g.wait_event("mark").await;
    }
    let with_silent = 1 + usize::from(good.is_some());
    assert!(wait_until(|| rig.server.client_count() == with_silent).await);
    let started = Instant::now();
    let mut seed = 0;
    while rig.server.client_count() == with_silent {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the silent client is still connected"
        );
        seed += 1;
        rig.guest
            .draw(Rect::ltrb(0, 0, w as i32, h as i32), pattern(w, h, seed));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("silent client dropped after {:?}", started.elapsed());
    // Its whole session ends: the server closes its main connection too.
    main.expect_closed().await;
    if let Some(mut g) = good {
        rig.guest.sync();
        assert_same_picture(&g.dump(200).await, &rig.guest.primary_rgb());
        assert_eq!(rig.server.client_count(), 1);
    }
    rig.server.shutdown().await;
}
