//! A built-in QXL producer that draws a moving test picture and moves the cursor, so the
//! daemon shows a live screen with no VM attached (`--demo`).
//!
//! It goes through the same QXL rings as the virtio-gpu front: the display worker and the
//! SPICE server cannot tell the two apart. The picture is a pure function of the frame number
//! ([`DemoPicture`]), so a test can predict every pixel of the screen.
#![forbid(unsafe_code)]

use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use qxl::{Point, Producer, QxlError, Rect};
use tracing::{debug, info, warn};

/// Frame period: 30 frames per second is smooth enough to judge latency by eye.
pub const FRAME_PERIOD: Duration = Duration::from_millis(33);
/// Side of the bouncing square, in pixels.
pub const SQUARE: u32 = 96;
/// Side of the demo cursor (an ARGB arrow): the size the Linux qxl driver uses is 64; half
/// of it reads well on a 640 × 480 screen.
pub const CURSOR_SIDE: u16 = 32;
/// Pixels the square moves per frame, across and down: different, so it visits the whole
/// screen instead of retracing one diagonal.
const SQUARE_STEP: (u64, u64) = (7, 5);
/// Frames per radian of the cursor's Lissajous path (about 4 s a lap at 30 fps).
const CURSOR_FRAMES_PER_RADIAN: f64 = 20.0;
/// Colour bars of the background, xRGB (SMPTE-like order).
const BARS: [u32; 8] = [
    0xffffff, 0xffff00, 0x00ffff, 0x00ff00, 0xff00ff, 0xff0000, 0x0000ff, 0x000000,
];
/// The X byte of every pixel drawn: the display marks 32BIT bitmap pixels opaque, so the
/// demo's own pixels carry the same byte and its picture is exactly what the screen holds.
const OPAQUE: u32 = 0xff00_0000;

/// The picture: a deterministic function of the frame number, so tests can predict it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DemoPicture {
    width: u32,
    height: u32,
}

impl DemoPicture {
    pub fn new(width: u32, height: u32) -> Self {
        Self { width, height }
    }

    pub fn width(&self) -> u32 {
        self.width
    }

    pub fn height(&self) -> u32 {
        self.height
    }

    /// The whole screen.
    pub fn full(&self) -> Rect {
        rect(0, 0, self.width, self.height)
    }

    /// Background pixel (x, y) as xRGB: vertical colour bars shaded from half to full
    /// brightness down the screen.
    pub fn background(&self, x: u32, y: u32) -> u32 {
        let bars = BARS.len() as u64;
        let bar = u64::from(x) * bars / u64::from(self.width.max(1));
        let base = BARS
            .get(usize::try_from(bar).unwrap_or(0))
            .copied()
            .unwrap_or(0);
        let shade = 128 + u64::from(y) * 127 / u64::from(self.height.max(1));
        let scale = |shift: u32| ((u64::from(base >> shift & 0xff) * shade / 255) as u32) << shift;
        scale(16) | scale(8) | scale(0)
    }

    /// The square's top-left corner in frame `n`: bouncing between the edges.
    fn square_at(&self, n: u64) -> (u32, u32) {
        let bounce = |travelled: u64, span: u32| -> u32 {
            let span = u64::from(span);
            if span == 0 {
                return 0;
            }
            let p = travelled % (2 * span);
            // ≤ span, which came from a u32.
            (if p < span { p } else { 2 * span - p }) as u32
        };
        (
            bounce(
                n.wrapping_mul(SQUARE_STEP.0),
                self.width.saturating_sub(SQUARE),
            ),
            bounce(
                n.wrapping_mul(SQUARE_STEP.1),
                self.height.saturating_sub(SQUARE),
            ),
        )
    }

    /// The square in frame `n`, clipped to the screen.
    pub fn square(&self, n: u64) -> Rect {
        let (x, y) = self.square_at(n);
        rect(
            x,
            y,
            x.saturating_add(SQUARE).min(self.width),
            y.saturating_add(SQUARE).min(self.height),
        )
    }

    /// The square's colour in frame `n`, xRGB: a slow walk through bright colours.
    pub fn square_color(&self, n: u64) -> u32 {
        (n as u32).wrapping_mul(0x010305) & 0xffffff | 0x404040
    }

    /// The cursor's position in frame `n`: a Lissajous path inside the screen.
    pub fn cursor_at(&self, n: u64) -> Point {
        let t = n as f64 / CURSOR_FRAMES_PER_RADIAN;
        let at = |side: u32, wave: f64| (f64::from(side) * (0.5 + 0.4 * wave)) as i32;
        Point {
            x: at(self.width, t.cos()),
            y: at(self.height, (1.3 * t).sin()),
        }
    }

    /// Pixels of `area` in frame `n`, rows top-down, bytes B, G, R, X (X = 0xff). Parts of
    /// `area` outside the screen are black.
    pub fn render(&self, n: u64, area: Rect) -> Vec<u8> {
        let square = self.square(n);
        let color = self.square_color(n);
        let mut out = Vec::with_capacity(area.width() as usize * area.height() as usize * 4);
        for y in area.top..area.bottom {
            for x in area.left..area.right {
                let inside = |r: &Rect| x >= r.left && x < r.right && y >= r.top && y < r.bottom;
                let px = match (u32::try_from(x), u32::try_from(y)) {
                    _ if inside(&square) => color,
                    (Ok(x), Ok(y)) if x < self.width && y < self.height => self.background(x, y),
                    _ => 0,
                };
                out.extend_from_slice(&(px | OPAQUE).to_le_bytes());
            }
        }
        out
    }

    /// The demo cursor: a white arrow with a black outline, ARGB, hot spot at (0, 0).
    pub fn cursor_shape() -> Vec<u8> {
        let n = usize::from(CURSOR_SIDE);
        let mut argb = Vec::with_capacity(n * n * 4);
        for y in 0..n {
            for x in 0..n {
                let px: u32 = if x > y || x + y >= 2 * n - 2 {
                    0
                } else if x == 0 || x == y || y == n - 1 {
                    0xff00_0000
                } else {
                    0xffff_ffff
                };
                argb.extend_from_slice(&px.to_le_bytes());
            }
        }
        argb
    }
}

/// A rectangle from corners that fit `i32` (screen coordinates are at most `MAX_SURFACE_DIM`).
fn rect(left: u32, top: u32, right: u32, bottom: u32) -> Rect {
    let c = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
    Rect {
        top: c(top),
        left: c(left),
        bottom: c(bottom),
        right: c(right),
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

/// What the demo thread and its [`Demo`] share.
#[derive(Debug, Default)]
struct Progress {
    stop: AtomicBool,
    /// Frames completed: frame `k` is complete once its drawing and its cursor move are
    /// pushed. 0 = not even the first picture yet.
    completed: AtomicU64,
}

/// What [`Demo::stop`] hands back.
#[derive(Debug)]
pub struct Stopped {
    pub producer: Producer,
    /// The error that ended the demo early, if one did.
    pub result: Result<(), QxlError>,
    /// The last frame completed (final: the thread has ended).
    pub last_frame: Option<u64>,
}

/// The running demo producer; dropping it stops the thread (as [`Demo::stop`] does).
#[derive(Debug)]
pub struct Demo {
    picture: DemoPicture,
    progress: Arc<Progress>,
    thread: Option<JoinHandle<(Producer, Result<(), QxlError>)>>,
}

impl Demo {
    /// Starts drawing on `producer`'s device: a `width` × `height` primary, the full
    /// picture of frame 0 and the cursor, then a frame every [`FRAME_PERIOD`].
    pub fn start(producer: Producer, width: u32, height: u32) -> io::Result<Demo> {
        let picture = DemoPicture::new(width, height);
        let progress = Arc::new(Progress::default());
        let shared = Arc::clone(&progress);
        let thread = thread::Builder::new()
            .name("qxl-demo".into())
            .spawn(move || {
                let mut producer = producer;
                let result = run(&mut producer, picture, &shared);
                if let Err(e) = &result {
                    warn!(error = %e, "Demo source stopped");
                }
                (producer, result)
            })?;
        info!(width, height, "Demo source drawing");
        Ok(Demo {
            picture,
            progress,
            thread: Some(thread),
        })
    }

    pub fn picture(&self) -> DemoPicture {
        self.picture
    }

    /// The last frame whose drawing and cursor move were pushed, `None` before the first.
    pub fn last_frame(&self) -> Option<u64> {
        self.progress
            .completed
            .load(Ordering::Acquire)
            .checked_sub(1)
    }

    /// True once the thread has ended (stopped, or failed: see [`Demo::stop`]).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Stops the thread between two frames and hands the producer back.
    ///
    /// # Panics
    /// If the demo thread panicked (a bug), the panic is resumed here.
    pub fn stop(mut self) -> Stopped {
        match self.join() {
            Some(Ok((producer, result))) => Stopped {
                producer,
                result,
                last_frame: self.last_frame(),
            },
            Some(Err(panic)) => std::panic::resume_unwind(panic),
            None => unreachable!("only `stop` and `drop` take the thread, each once"),
        }
    }

    fn join(&mut self) -> Option<thread::Result<(Producer, Result<(), QxlError>)>> {
        self.progress.stop.store(true, Ordering::Release);
        let thread = self.thread.take()?;
        thread.thread().unpark();
        Some(thread.join())
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Some(Err(_)) = self.join() {
            warn!("Demo thread panicked");
        }
    }
}

fn run(p: &mut Producer, picture: DemoPicture, progress: &Progress) -> Result<(), QxlError> {
    p.create_primary(picture.width(), picture.height())?;
    draw_full(p, picture, 0)?;
    let at = picture.cursor_at(0);
    let shape = DemoPicture::cursor_shape();
    p.cursor_set(&shape, CURSOR_SIDE, CURSOR_SIDE, 0, 0, at, true)?;
    progress.completed.store(1, Ordering::Release);

    let mut n = 0u64;
    let mut next = Instant::now() + FRAME_PERIOD;
    // After a frame the device had no room for, the screen is repainted whole.
    let mut repaint = false;
    loop {
        // Stop is only looked at here, so a stopped demo's last frame is whole.
        while !progress.stop.load(Ordering::Acquire) {
            match next.checked_duration_since(Instant::now()) {
                Some(wait) => thread::park_timeout(wait),
                None => break,
            }
        }
        if progress.stop.load(Ordering::Acquire) {
            return Ok(());
        }
        let frame = n + 1;
        let drawn = if repaint {
            draw_full(p, picture, frame)
        } else {
            let area = union(picture.square(n), picture.square(frame));
            draw(p, picture, frame, area)
        }
        .and_then(|()| p.cursor_move(picture.cursor_at(frame)));
        match drawn {
            Ok(()) => {
                n = frame;
                repaint = false;
                progress.completed.store(frame + 1, Ordering::Release);
            }
            // The consumer is slow: drop the frame, keep the clock.
            Err(QxlError::Busy { what }) => {
                debug!(what, frame, "Demo frame dropped: the device is busy");
                repaint = true;
            }
            Err(e) => return Err(e),
        }
        // A late frame does not make the next ones hurry: the schedule restarts from now.
        next = (next + FRAME_PERIOD).max(Instant::now());
    }
}

fn draw_full(p: &mut Producer, picture: DemoPicture, n: u64) -> Result<(), QxlError> {
    draw(p, picture, n, picture.full())
}

fn draw(p: &mut Producer, picture: DemoPicture, n: u64, area: Rect) -> Result<(), QxlError> {
    let stride = area.width() as usize * 4;
    p.draw_copy(area, &picture.render(n, area), stride)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::display::qxl_source::spawn_qxl;
    use crate::display::DisplayHandle;

    /// Generous: only reached when a test is failing.
    const WAIT: Duration = Duration::from_secs(5);

    fn demo(width: u32, height: u32) -> (Demo, DisplayHandle) {
        let (producer, consumer) = qxl::new_device(qxl::DeviceConfig::default()).unwrap();
        let handle = spawn_qxl(consumer);
        (Demo::start(producer, width, height).unwrap(), handle)
    }

    fn wait_frames(demo: &Demo, frames: u64) {
        let deadline = Instant::now() + WAIT;
        while demo.last_frame().is_none_or(|n| n < frames) {
            assert!(!demo.is_finished(), "the demo ended early");
            assert!(Instant::now() < deadline, "no frame {frames} yet");
            thread::sleep(FRAME_PERIOD / 4);
        }
    }

    fn shows(handle: &DisplayHandle, picture: DemoPicture, n: u64) -> bool {
        handle
            .snapshot(0)
            .is_some_and(|s| *s.pixels == picture.render(n, picture.full())[..])
    }

    #[test]
    fn the_screen_is_the_picture_of_the_last_frame_drawn() {
        let started = Instant::now();
        let (demo, handle) = demo(320, 240);
        let picture = demo.picture();
        wait_frames(&demo, 3);
        // While it runs, the screen is always some whole frame: the one last pushed, or one
        // the worker has not caught up past yet.
        assert!(handle.wait_until(WAIT, |h| {
            let last = demo.last_frame().unwrap_or(0);
            (last.saturating_sub(3)..=last + 1).any(|n| shows(h, picture, n))
        }));

        let Stopped {
            mut producer,
            result,
            last_frame,
        } = demo.stop();
        result.unwrap();
        let last = last_frame.unwrap();
        assert!(last >= 3);
        let secs = started.elapsed().as_secs_f64();
        eprintln!("demo: {} frames in {secs:.3} s", last + 1);
        // `stop` waits for a whole frame; an I/O request is answered once the worker has
        // applied every command before it.
        let area = picture.full();
        producer
            .io(qxl::IoRequest::UpdateArea {
                surface_id: 0,
                area,
            })
            .unwrap();
        let last = (0..).take_while(|&n| !shows(&handle, picture, n)).count() as u64;
        assert!(
            shows(&handle, picture, last),
            "the screen is the picture of frame {last}"
        );
        assert!(last >= 3);
        let cursor = handle.cursor();
        let shape = cursor.shape.expect("the demo sets a cursor");
        assert_eq!((shape.width, shape.height), (CURSOR_SIDE, CURSOR_SIDE));
        let at = picture.cursor_at(last);
        assert!(handle.wait_until(WAIT, |h| {
            let p = h.cursor().position;
            (p.x, p.y) == (at.x, at.y) && h.cursor().visible
        }));
    }

    #[test]
    fn a_screen_smaller_than_the_square_still_animates() {
        let (demo, handle) = demo(40, 30);
        wait_frames(&demo, 2);
        let picture = demo.picture();
        demo.stop().result.unwrap();
        assert!(handle.wait_until(WAIT, |h| (0..64).any(|n| shows(h, picture, n))));
    }

    #[test]
    fn an_impossible_screen_ends_the_demo_with_the_error() {
        let (demo, _handle) = demo(0, 480);
        let result = demo.stop().result;
        assert!(
            matches!(result, Err(QxlError::InvalidArgument(_))),
            "{result:?}"
        );
    }

    #[test]
    fn the_square_stays_on_the_screen() {
        for (w, h) in [(640, 480), (96, 96), (97, 300), (10, 10), (1, 1)] {
            let picture = DemoPicture::new(w, h);
            for n in 0..2000 {
                let s = picture.square(n);
                assert!(
                    s.left >= 0 && s.top >= 0 && !s.is_empty(),
                    "{w}x{h} frame {n}: {s:?}"
                );
                assert!(
                    s.right <= w as i32 && s.bottom <= h as i32,
                    "{w}x{h} frame {n}: {s:?}"
                );
                let c = picture.cursor_at(n);
                assert!((0..w as i32).contains(&c.x) && (0..h as i32).contains(&c.y));
            }
        }
    }

    #[test]
    fn a_frame_changes_only_the_union_of_the_two_squares() {
        let picture = DemoPicture::new(200, 150);
        let full = picture.full();
        for n in [0u64, 1, 17, 100] {
            let (before, after) = (picture.render(n, full), picture.render(n + 1, full));
            let area = union(picture.square(n), picture.square(n + 1));
            let mut patched = before.clone();
            let part = picture.render(n + 1, area);
            let row = area.width() as usize * 4;
            for (i, y) in (area.top..area.bottom).enumerate() {
                let at = (y as usize * 200 + area.left as usize) * 4;
                patched[at..at + row].copy_from_slice(&part[i * row..(i + 1) * row]);
            }
            assert!(patched == after, "frame {n}");
        }
    }
}
