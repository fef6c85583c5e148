//! Shared by the SPICE end-to-end tests: a fake guest feeding the display worker, input and
//! resize test doubles, a server on 127.0.0.1:0, and finding the real clients.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use vhost_user_spice::demo::DemoPicture;
use vhost_user_spice::display::source::{
    Bitmap, BitmapFormat, CursorCommand, CursorShape, DrawCommand, DrawOp, Image, IoRequest,
    IoWork, Rop, Work,
};
use vhost_user_spice::display::{self, Clip, CommandSource, DisplayHandle, Point, Rect};
use vhost_user_spice::guest::{DisplayControl, HeadRequest, InputClientId, InputEvent, InputSink};
use vhost_user_spice::spice::ticket::{Secret, Ticketing};
use vhost_user_spice::spice::{SpiceConfig, SpiceServer};
use vhost_user_spice::workload::DrawCmd;

/// Generous: only reached when a test is failing.
pub const WAIT: Duration = Duration::from_secs(10);

struct FakeSource(mpsc::Receiver<Work>);

impl CommandSource for FakeSource {
    fn next(&mut self, timeout: Duration) -> Option<Work> {
        self.0.recv_timeout(timeout).ok()
    }
}

/// A guest drawing through the display worker, as the QXL producer would.
pub struct Guest {
    tx: Mutex<mpsc::Sender<Work>>,
    pub display: DisplayHandle,
}

/// The test picture: every pixel distinct enough that a shifted or swapped channel shows.
pub fn pattern(width: u32, height: u32, seed: u32) -> Vec<u8> {
    let mut v = Vec::with_capacity((width * height * 4) as usize);
    for y in 0..height {
        for x in 0..width {
            let r = (x * 7 + seed * 13) as u8;
            let g = (y * 5 + seed * 29) as u8;
            let b = ((x ^ y) + seed * 3) as u8;
            v.extend_from_slice(&[b, g, r, 0xff]);
        }
    }
    v
}

impl Guest {
    pub fn new() -> Self {
        let (tx, rx) = mpsc::channel();
        Self {
            tx: Mutex::new(tx),
            display: display::spawn(FakeSource(rx)),
        }
    }

    fn send(&self, w: Work) {
        self.tx.lock().unwrap().send(w).unwrap();
    }

    /// A device I/O request, waited for: everything sent before it has been applied.
    pub fn io(&self, request: IoRequest) {
        let (done_tx, done_rx) = mpsc::channel();
        self.send(Work::Io(IoWork::new(request, move |r| {
            let _ = done_tx.send(r);
        })));
        done_rx.recv_timeout(WAIT).unwrap().unwrap();
    }

    pub fn create_primary(&self, width: u32, height: u32) {
        self.io(IoRequest::CreatePrimary {
            format: 32,
            width,
            height,
            initial: None,
        });
    }

    /// Waits until the worker has applied everything sent so far.
    pub fn sync(&self) {
        self.io(IoRequest::UpdateArea {
            surface_id: 0,
            area: Rect::ltrb(0, 0, 1, 1),
        });
    }

    /// Draws one command of a benchmark workload's frame, as its QXL DRAW_COPY would.
    pub fn draw_workload(&self, cmd: DrawCmd<'_>) {
        let rect = Rect::ltrb(
            cmd.x as i32,
            cmd.y as i32,
            (cmd.x + cmd.width) as i32,
            (cmd.y + cmd.height) as i32,
        );
        self.draw(rect, cmd.pixels.to_vec());
    }

    /// Copies a top-down 32-bit bitmap (B, G, R, X) onto `rect` of the primary.
    pub fn draw(&self, rect: Rect, pixels: Vec<u8>) {
        let (w, h) = (rect.width() as u32, rect.height() as u32);
        self.send(Work::Draw(DrawCommand {
            surface_id: 0,
            bbox: rect,
            clip: Clip::None,
            op: DrawOp::Copy {
                src: Image::Bitmap(Bitmap {
                    format: BitmapFormat::THIRTY_TWO_BIT.0,
                    width: w,
                    height: h,
                    stride: w as usize * 4,
                    top_down: true,
                    data: pixels,
                    palette: None,
                }),
                src_area: Rect::ltrb(0, 0, w as i32, h as i32),
                rop: Rop::OP_PUT,
                scale_mode: 0,
            },
        }));
    }

    pub fn fill(&self, rect: Rect, color: u32) {
        self.send(Work::Draw(DrawCommand {
            surface_id: 0,
            bbox: rect,
            clip: Clip::None,
            op: DrawOp::Fill {
                color,
                rop: Rop::OP_PUT,
            },
        }));
    }

    /// An ALPHA cursor of `w × h` with hotspot `(hx, hy)` at `(x, y)`.
    pub fn cursor_set(&self, w: u16, h: u16, hx: u16, hy: u16, x: i32, y: i32) {
        self.send(Work::Cursor(CursorCommand::Set {
            position: Point { x, y },
            visible: true,
            shape: CursorShape {
                unique: 0,
                kind: CursorShape::ALPHA,
                width: w,
                height: h,
                hot_x: hx,
                hot_y: hy,
                data: vec![0xff; w as usize * h as usize * 4],
            },
        }));
    }

    pub fn cursor_move(&self, x: i32, y: i32) {
        self.send(Work::Cursor(CursorCommand::Move {
            position: Point { x, y },
        }));
    }

    /// The primary as RGB triplets, top-down (what a PPM holds).
    pub fn primary_rgb(&self) -> (u32, u32, Vec<u8>) {
        let snap = self.display.snapshot(0).expect("a primary exists");
        let mut rgb = Vec::new();
        for px in snap.pixels.chunks_exact(4) {
            rgb.extend_from_slice(&[px[2], px[1], px[0]]);
        }
        (snap.info.width, snap.info.height, rgb)
    }
}

/// Records what the server feeds the guest's input devices.
pub struct RecordingSink {
    pub events: Mutex<Vec<(InputClientId, InputEvent)>>,
    pub released: Mutex<Vec<InputClientId>>,
    /// The guest's lock LEDs, as the device would publish them.
    pub leds: tokio::sync::watch::Sender<u16>,
}

impl Default for RecordingSink {
    fn default() -> Self {
        Self {
            events: Mutex::default(),
            released: Mutex::default(),
            leds: tokio::sync::watch::channel(0).0,
        }
    }
}

impl InputSink for RecordingSink {
    fn input(&self, client: InputClientId, event: InputEvent) {
        self.events.lock().unwrap().push((client, event));
    }
    fn release_all_from(&self, client: InputClientId) {
        self.released.lock().unwrap().push(client);
    }
    fn guest_modifiers(&self) -> tokio::sync::watch::Receiver<u16> {
        self.leds.subscribe()
    }
}

impl RecordingSink {
    pub fn events(&self) -> Vec<InputEvent> {
        self.events
            .lock()
            .unwrap()
            .iter()
            .map(|(_, e)| *e)
            .collect()
    }
}

/// Records the layouts clients ask for.
#[derive(Default)]
pub struct RecordingControl(pub Mutex<Vec<Vec<HeadRequest>>>);

impl DisplayControl for RecordingControl {
    fn request_layout(&self, heads: &[HeadRequest]) {
        self.0.lock().unwrap().push(heads.to_vec());
    }
}

impl RecordingControl {
    pub fn requests(&self) -> Vec<Vec<HeadRequest>> {
        self.0.lock().unwrap().clone()
    }
}

pub fn password(p: &str) -> Ticketing {
    Ticketing::Password {
        secret: Secret::new(p),
        expires: None,
    }
}

pub struct Rig {
    pub guest: Guest,
    pub sink: Arc<RecordingSink>,
    pub control: Arc<RecordingControl>,
    pub server: SpiceServer,
    pub port: u16,
}

/// A server on 127.0.0.1 with a free port over a fresh guest.
pub async fn start(ticketing: Ticketing) -> Rig {
    start_with(SpiceConfig {
        listeners: vec![vhost_user_spice::spice::ListenerSpec::tcp(
            ([127, 0, 0, 1], 0).into(),
        )],
        ..SpiceConfig::new(ticketing)
    })
    .await
}

/// A server over any display (the QXL device path, say), with recording doubles.
pub async fn serve_display(
    display: DisplayHandle,
    ticketing: Ticketing,
) -> (SpiceServer, Arc<RecordingSink>, u16) {
    init_logs();
    let sink = Arc::new(RecordingSink::default());
    let server = SpiceServer::start(
        SpiceConfig {
            listeners: vec![vhost_user_spice::spice::ListenerSpec::tcp(
                ([127, 0, 0, 1], 0).into(),
            )],
            ..SpiceConfig::new(ticketing)
        },
        display,
        sink.clone(),
        Arc::new(RecordingControl::default()),
    )
    .await
    .unwrap();
    let port = server.local_addr().unwrap().port();
    (server, sink, port)
}

fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "vhost_user_spice=info".into()),
        )
        .with_test_writer()
        .try_init();
}

pub async fn start_with(config: SpiceConfig) -> Rig {
    init_logs();
    let guest = Guest::new();
    let sink = Arc::new(RecordingSink::default());
    let control = Arc::new(RecordingControl::default());
    let server = SpiceServer::start(config, guest.display.clone(), sink.clone(), control.clone())
        .await
        .unwrap();
    let port = server.local_addr().map_or(0, |a| a.port());
    Rig {
        guest,
        sink,
        control,
        server,
        port,
    }
}

/// The path of a client program, or `None` (with a loud message) when it is not installed
/// outside CI. Under CI (`CI=true`) a missing client fails the test.
pub fn client(path: &str) -> Option<PathBuf> {
    if Path::new(path).exists() {
        return Some(PathBuf::from(path));
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{path} is missing; scripts/install-test-deps.sh installs it");
    }
    eprintln!("!!!!! SKIPPED: {path} is not installed (apt-get install spice-client-gtk gir1.2-spiceclientglib-2.0 python3-gi)");
    None
}

/// Reads a binary PPM (P6, maxval 255).
pub fn read_ppm(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 4 {
        while bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if bytes[i] == b'#' {
            while bytes[i] != b'\n' {
                i += 1;
            }
            continue;
        }
        let start = i;
        while !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        fields.push(String::from_utf8(bytes[start..i].to_vec()).unwrap());
    }
    assert_eq!(fields[0], "P6");
    assert_eq!(fields[3], "255");
    let (w, h): (u32, u32) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    let data = bytes[i + 1..].to_vec();
    assert_eq!(data.len(), (w * h * 3) as usize);
    (w, h, data)
}

/// Our scripted spice-gtk client (tests/tools/spice_client.py), driven over JSON lines.
pub struct PyClient {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    /// Every event seen so far.
    pub events: Vec<serde_json::Value>,
}

pub const PYTHON: &str = "/usr/bin/python3";

/// Whether the Python client can run here (else skipped loudly, or failed under CI).
pub fn have_python_client() -> bool {
    if client(PYTHON).is_none()
        || client("/usr/lib/x86_64-linux-gnu/girepository-1.0/SpiceClientGLib-2.0.typelib")
            .is_none()
    {
        return false;
    }
    true
}

impl PyClient {
    pub async fn connect(port: u16, password: Option<&str>) -> Self {
        Self::connect_to("127.0.0.1", port, password).await
    }

    /// `host` may be `unix:/path`.
    pub async fn connect_to(host: &str, port: u16, password: Option<&str>) -> Self {
        let mut args = vec![host.to_owned(), port.to_string()];
        args.extend(password.map(str::to_owned));
        Self::spawn(&args).await
    }

    /// Runs the client with these arguments (see the script's usage: TLS options first).
    pub async fn spawn(args: &[String]) -> Self {
        use tokio::io::AsyncBufReadExt;
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/spice_client.py");
        let mut cmd = tokio::process::Command::new(PYTHON);
        cmd.arg(script)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("python3 runs");
        let stdin = child.stdin.take().unwrap();
        let lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        Self {
            child,
            stdin,
            lines,
            events: Vec::new(),
        }
    }

    /// Reads events until one satisfies `pred`; panics after [`WAIT`].
    pub async fn wait_for(
        &mut self,
        what: &str,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        if let Some(e) = self.events.iter().find(|e| pred(e)) {
            return e.clone();
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}; events: {:?}", self.events))
                .unwrap()
                .unwrap_or_else(|| {
                    panic!("client exited before {what}; events: {:?}", self.events)
                });
            // spice-gtk's own debug output (SPICE_DEBUG=1) goes to stdout as well.
            let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                eprintln!("client: {line}");
                continue;
            };
            self.events.push(event.clone());
            if pred(&event) {
                return event;
            }
        }
    }

    /// Waits for the first event named `name`.
    pub async fn wait_event(&mut self, name: &str) -> serde_json::Value {
        self.wait_for(name, |e| e["event"] == name).await
    }

    pub async fn send(&mut self, cmd: serde_json::Value) {
        use tokio::io::AsyncWriteExt;
        let mut line = cmd.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// The client's primary as RGB, once no update came for `quiet_ms`.
    pub async fn dump(&mut self, quiet_ms: u32) -> (u32, u32, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("primary.rgb");
        let p = path.to_str().unwrap().to_owned();
        self.send(serde_json::json!({"cmd": "dump", "path": p, "quiet_ms": quiet_ms}))
            .await;
        let e = self
            .wait_for("dump", |e| {
                e["event"] == "dumped" && e["path"] == p.as_str()
            })
            .await;
        let data = std::fs::read(&path).unwrap();
        (
            e["width"].as_u64().unwrap() as u32,
            e["height"].as_u64().unwrap() as u32,
            data,
        )
    }

    /// Kills the client process at once (an abrupt disconnect).
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }
}

/// Polls `pred` every 20 ms until it holds or [`WAIT`] passes.
pub async fn wait_until(pred: impl Fn() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    while tokio::time::Instant::now() < deadline {
        if pred() {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    pred()
}

/// 32-bit B, G, R, X pixels as RGB triplets (what a PPM holds).
pub fn rgb_of_bgrx(bgrx: &[u8]) -> Vec<u8> {
    bgrx.chunks_exact(4)
        .flat_map(|p| [p[2], p[1], p[0]])
        .collect()
}

/// The demo frame `shot` shows, searching every frame the demo can have drawn by now. The
/// square alone is compared first: cheap, and only a match is rendered whole.
pub fn demo_frame(picture: DemoPicture, shot: &(u32, u32, Vec<u8>), upto: u64) -> Option<u64> {
    assert_eq!((shot.0, shot.1), (picture.width(), picture.height()));
    let width = picture.width() as usize;
    let square_matches = |n: u64| {
        let square = picture.square(n);
        let want = rgb_of_bgrx(&picture.render(n, square));
        let row = square.width() as usize * 3;
        (square.top..square.bottom).enumerate().all(|(i, y)| {
            let at = (y as usize * width + square.left as usize) * 3;
            shot.2[at..at + row] == want[i * row..(i + 1) * row]
        })
    };
    (0..=upto)
        .find(|&n| square_matches(n) && rgb_of_bgrx(&picture.render(n, picture.full())) == shot.2)
}

pub mod raw;
pub mod tls;

/// Asserts two `(width, height, rgb)` pictures are equal, naming the first differing pixel
/// instead of printing megabytes.
#[track_caller]
pub fn assert_same_picture(got: &(u32, u32, Vec<u8>), want: &(u32, u32, Vec<u8>)) {
    assert_eq!((got.0, got.1), (want.0, want.1), "picture size");
    if let Some(i) = got.2.iter().zip(&want.2).position(|(a, b)| a != b) {
        let px = i / 3;
        panic!(
            "pictures differ first at pixel ({}, {}): got {:?}, want {:?}",
            px % got.0 as usize,
            px / got.0 as usize,
            &got.2[px * 3..px * 3 + 3],
            &want.2[px * 3..px * 3 + 3]
        );
    }
    assert_eq!(got.2.len(), want.2.len());
}
