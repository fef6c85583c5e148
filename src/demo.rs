//! A built-in QXL producer that draws a moving test picture and moves the cursor, so the
//! daemon shows a live screen with no VM attached (`--demo`).
//!
//! It goes through the same QXL rings as the virtio-gpu front: the display worker and the
//! SPICE server cannot tell the two apart.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use qxl::{Point, Producer, QxlError, Rect};
use tracing::{info, warn};

/// Frame period: 30 frames per second is smooth enough to judge latency by eye.
const FRAME_PERIOD: Duration = Duration::from_millis(33);
/// Side of the bouncing square, in pixels.
const SQUARE: u32 = 96;
/// The demo cursor: a 32x32 ARGB arrow-ish triangle.
const CURSOR_SIZE: u16 = 32;

/// The picture: a deterministic function of the frame number, so tests can predict it.
pub struct DemoPicture {
    width: u32,
    height: u32,
}

impl DemoPicture {
    pub fn new(width: u32, height: u32) -> Self {
        Self { width, height }
    }

    /// Background pixel (x, y) as xRGB: horizontal colour bars over a vertical ramp.
    pub fn background(&self, x: u32, y: u32) -> u32 {
        const BARS: [u32; 8] = [
            0xffffff, 0xffff00, 0x00ffff, 0x00ff00, 0xff00ff, 0xff0000, 0x0000ff, 0x000000,
        ];
        let bar = BARS[(x as usize * BARS.len()) / self.width.max(1) as usize % BARS.len()];
        let shade = 128 + (y * 127 / self.height.max(1));
        let scale = |c: u32| (c * shade / 255) & 0xff;
        (scale(bar >> 16 & 0xff) << 16) | (scale(bar >> 8 & 0xff) << 8) | scale(bar & 0xff)
    }

    /// Where the square is in frame `n`: bouncing between the edges.
    pub fn square_at(&self, n: u64) -> (u32, u32) {
        let bounce = |n: u64, span: u32| -> u32 {
            let span = u64::from(span.max(1));
            let p = n % (2 * span);
            (if p < span { p } else { 2 * span - p }) as u32
        };
        (
            bounce(n * 7, self.width.saturating_sub(SQUARE)),
            bounce(n * 5, self.height.saturating_sub(SQUARE)),
        )
    }

    /// Pixels of `rect` for frame `n`, rows top-down, B,G,R,X bytes.
    pub fn render(&self, n: u64, rect: Rect) -> Vec<u8> {
        let (sx, sy) = self.square_at(n);
        let hue = (n as u32).wrapping_mul(0x010305) | 0x404040;
        let mut out = Vec::with_capacity(rect_len(rect) * 4);
        for y in rect.top..rect.bottom {
            for x in rect.left..rect.right {
                let (x, y) = (x as u32, y as u32);
                let inside = x >= sx && x < sx + SQUARE && y >= sy && y < sy + SQUARE;
                let px = if inside {
                    hue & 0xffffff
                } else {
                    self.background(x, y)
                };
                out.extend_from_slice(&px.to_le_bytes());
            }
        }
        out
    }
}

fn rect_len(r: Rect) -> usize {
    ((r.right - r.left).max(0) as usize) * ((r.bottom - r.top).max(0) as usize)
}

fn square_rect(pos: (u32, u32)) -> Rect {
    Rect {
        top: pos.1 as i32,
        left: pos.0 as i32,
        bottom: (pos.1 + SQUARE) as i32,
        right: (pos.0 + SQUARE) as i32,
    }
}

fn union(a: Rect, b: Rect) -> Rect {
    Rect {
        top: a.top.min(b.top),
        left: a.left.min(b.left),
        bottom: a.bottom.max(b.bottom),
        right: a.right.max(b.right),
    }
}

fn cursor_shape() -> Vec<u8> {
    let n = usize::from(CURSOR_SIZE);
    let mut argb = Vec::with_capacity(n * n * 4);
    for y in 0..n {
        for x in 0..n {
            let px: u32 = if x <= y && x + y < 2 * n - 2 {
                if x == 0 || x == y || y == n - 1 {
                    0xff00_0000
                } else {
                    0xffff_ffff
                }
            } else {
                0
            };
            argb.extend_from_slice(&px.to_le_bytes());
        }
    }
    argb
}

/// The running demo producer; dropping it stops the thread.
pub struct Demo {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Demo {
    pub fn start(mut producer: Producer, width: u32, height: u32) -> Demo {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("demo".into())
            .spawn(move || {
                if let Err(e) = run(&mut producer, width, height, &flag) {
                    warn!(error = %e, "Demo source stopped");
                }
            })
            .expect("spawning a thread at start-up succeeds");
        info!(width, height, "Demo source drawing");
        Demo {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(p: &mut Producer, width: u32, height: u32, stop: &AtomicBool) -> Result<(), QxlError> {
    let picture = DemoPicture::new(width, height);
    p.create_primary(width, height)?;
    let full = Rect {
        top: 0,
        left: 0,
        bottom: height as i32,
        right: width as i32,
    };
    p.draw_copy(full, &picture.render(0, full), width as usize * 4)?;
    let shape = cursor_shape();
    p.cursor_set(
        &shape,
        CURSOR_SIZE,
        CURSOR_SIZE,
        0,
        0,
        Point { x: 0, y: 0 },
        true,
    )?;

    let start = Instant::now();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let prev = square_rect(picture.square_at(n));
        n += 1;
        let area = union(prev, square_rect(picture.square_at(n)));
        let stride = (area.right - area.left) as usize * 4;
        p.draw_copy(area, &picture.render(n, area), stride)?;
        let t = n as f64 / 20.0;
        let pos = Point {
            x: (f64::from(width) * (0.5 + 0.4 * t.cos())) as i32,
            y: (f64::from(height) * (0.5 + 0.4 * (1.3 * t).sin())) as i32,
        };
        p.cursor_move(pos)?;
        let next = start + FRAME_PERIOD * (n as u32);
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    Ok(())
}
