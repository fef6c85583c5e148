//! Plays a workload into a QXL producer the way spice-ref-server's guest thread does: a
//! cursor SET first, then one frame per tick on an absolute schedule (a late tick is
//! counted, and after more than a whole period of lag the schedule restarts from now), the
//! cursor moved `cursor_hz` times a second; and it counts its own thread's CPU time so a
//! benchmark can report the daemon's cost without the synthetic guest's.
//!
//! One difference is by design: spice-ref-server drops a command when its ring is full,
//! while our producer waits (bounded) for room, as DESIGN says a guest does. A wait shows up
//! as late frames; only a `Busy` give-up is counted as a dropped command.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use qxl::{Point, Producer, QxlError, Rect};

use super::{cpu, DrawCmd, Generator};

/// Side of the workload cursor, an ARGB arrow (spice-ref-server's `push_cursor`).
pub const CURSOR_SIDE: u16 = 32;
/// Where the cursor starts, and how far its path keeps from the surface's edges.
const CURSOR_MARGIN: u32 = 100;
/// Pixels the cursor moves per frame across and down (`frame * 7`, `frame * 3`).
const CURSOR_STEP: (u32, u32) = (7, 3);

/// What the pacer draws through: the four producer calls it needs, so tests can count
/// them without a consumer.
pub trait QxlTarget {
    fn draw_copy(&mut self, rect: Rect, pixels: &[u8], stride: usize) -> Result<(), QxlError>;
    fn cursor_set(&mut self, shape_argb: &[u8], side: u16, pos: Point) -> Result<(), QxlError>;
    fn cursor_move(&mut self, pos: Point) -> Result<(), QxlError>;
    /// Command memory lent to the consumer now (spice-ref-server's `inflight_bytes`).
    fn held_bytes(&mut self) -> usize {
        0
    }
}

impl QxlTarget for Producer {
    fn draw_copy(&mut self, rect: Rect, pixels: &[u8], stride: usize) -> Result<(), QxlError> {
        Producer::draw_copy(self, rect, pixels, stride)
    }

    fn cursor_set(&mut self, shape_argb: &[u8], side: u16, pos: Point) -> Result<(), QxlError> {
        Producer::cursor_set(self, shape_argb, side, side, 0, 0, pos, true)
    }

    fn cursor_move(&mut self, pos: Point) -> Result<(), QxlError> {
        Producer::cursor_move(self, pos)
    }

    fn held_bytes(&mut self) -> usize {
        // The producer takes releases back lazily, when it needs room: take them now so the
        // figure is what the consumer still holds. A broken release ring shows up elsewhere.
        let _ = self.reclaim();
        self.ram_used()
    }
}

/// How long and how the pacer runs.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Pace {
    /// Stop after this long (`None`: only when `stop` is set).
    pub duration: Option<Duration>,
    /// Cursor moves per second (0: none).
    pub cursor_hz: f64,
}

/// What the pacer did (the guest's part of spice-ref-server's summary).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PacerStats {
    pub frames: u64,
    pub late_frames: u64,
    pub commands_produced: u64,
    pub cursor_commands_produced: u64,
    /// Commands given up on because the device stayed full (`QxlError::Busy`).
    pub dropped_busy: u64,
    pub pixels_produced: u64,
    pub bitmap_bytes_produced: u64,
    /// Most command memory lent to the consumer, sampled after each frame.
    pub held_bytes_peak: usize,
    /// CPU time of the pacer's thread (generation + copying into the device).
    pub gen_cpu_s: f64,
    pub wall_s: f64,
    /// The error that stopped the pacer early, if one did.
    pub error: Option<String>,
}

/// The 32×32 arrow-ish triangle spice-ref-server sets: white edge, black inside.
pub fn cursor_shape() -> Vec<u8> {
    let n = u32::from(CURSOR_SIDE);
    let mut out = Vec::with_capacity((n * n * 4) as usize);
    for y in 0..n {
        for x in 0..n {
            let v: u32 = match x.cmp(&(y / 2)) {
                std::cmp::Ordering::Less => 0xff00_0000,
                std::cmp::Ordering::Equal => 0xffff_ffff,
                std::cmp::Ordering::Greater => 0,
            };
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

/// The cursor's position after frame count `frame` on a `w`×`h` surface.
fn cursor_at(frame: u32, (w, h): (u32, u32)) -> Point {
    let span = |side: u32| side.saturating_sub(2 * CURSOR_MARGIN).max(1);
    let at = |step: u32, side: u32| CURSOR_MARGIN + frame.wrapping_mul(step) % span(side);
    let c = |v: u32| i32::try_from(v).unwrap_or(i32::MAX);
    Point {
        x: c(at(CURSOR_STEP.0, w)),
        y: c(at(CURSOR_STEP.1, h)),
    }
}

/// `Busy` is a command dropped; anything else stops the pacer.
fn count(result: Result<(), QxlError>, dropped: &mut u64) -> Result<bool, QxlError> {
    match result {
        Ok(()) => Ok(true),
        Err(QxlError::Busy { .. }) => {
            *dropped += 1;
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Runs `gen` into `target` until `pace.duration` has passed or `stop` is set. The primary
/// surface must exist already.
pub fn run(
    target: &mut dyn QxlTarget,
    gen: &mut Generator,
    pace: Pace,
    stop: &AtomicBool,
) -> PacerStats {
    let cpu0 = cpu::thread_cpu_s();
    let start = Instant::now();
    let mut stats = PacerStats::default();
    let result = run_inner(target, gen, pace, stop, start, &mut stats);
    stats.gen_cpu_s = cpu::thread_cpu_s() - cpu0;
    stats.wall_s = start.elapsed().as_secs_f64();
    stats.error = result.err().map(|e| e.to_string());
    stats
}

fn run_inner(
    target: &mut dyn QxlTarget,
    gen: &mut Generator,
    pace: Pace,
    stop: &AtomicBool,
    start: Instant,
    stats: &mut PacerStats,
) -> Result<(), QxlError> {
    let cfg = *gen.config();
    let surface = (cfg.width, cfg.height);
    // The C pacer truncates the period to whole nanoseconds.
    let period = Duration::from_nanos((1e9 / cfg.fps) as u64);
    let cursor_period =
        (pace.cursor_hz > 0.0).then(|| Duration::from_secs_f64(1.0 / pace.cursor_hz));
    let margin = i32::try_from(CURSOR_MARGIN).unwrap_or(0);
    let shape = cursor_shape();
    let at = Point {
        x: margin,
        y: margin,
    };
    if count(
        target.cursor_set(&shape, CURSOR_SIDE, at),
        &mut stats.dropped_busy,
    )? {
        stats.cursor_commands_produced += 1;
    }
    let mut next = start;
    let mut cursor_next = start;
    let mut frame: u32 = 0;
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        if pace.duration.is_some_and(|d| t - start >= d) {
            break;
        }
        let mut failed = None;
        gen.frame(frame, &mut |cmd: DrawCmd<'_>| {
            if failed.is_some() {
                return;
            }
            let rect = Rect::from_xywh(cmd.x as i32, cmd.y as i32, cmd.width, cmd.height);
            let Some(rect) = rect else {
                failed = Some(QxlError::InvalidArgument("workload rectangle overflows"));
                return;
            };
            let stride = cmd.width as usize * 4;
            match count(
                target.draw_copy(rect, cmd.pixels, stride),
                &mut stats.dropped_busy,
            ) {
                Ok(true) => {
                    let px = u64::from(cmd.width) * u64::from(cmd.height);
                    stats.commands_produced += 1;
                    stats.pixels_produced += px;
                    stats.bitmap_bytes_produced += px * 4;
                }
                Ok(false) => {}
                Err(e) => failed = Some(e),
            }
        });
        if let Some(e) = failed {
            return Err(e);
        }
        frame = frame.wrapping_add(1);
        stats.frames += 1;
        stats.held_bytes_peak = stats.held_bytes_peak.max(target.held_bytes());
        if let Some(cp) = cursor_period {
            if t >= cursor_next {
                let moved = target.cursor_move(cursor_at(frame, surface));
                if count(moved, &mut stats.dropped_busy)? {
                    stats.cursor_commands_produced += 1;
                }
                cursor_next += cp;
            }
        }
        next += period;
        let now = Instant::now();
        if now > next {
            // The generator (or a full ring) could not keep up.
            stats.late_frames += 1;
            if now - next > period {
                next = now;
            }
        }
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{Workload, WorkloadConfig};

    #[derive(Default)]
    struct Counting {
        draws: Vec<Rect>,
        sets: u32,
        moves: Vec<Point>,
        busy_every: Option<usize>,
    }

    impl QxlTarget for Counting {
        fn draw_copy(&mut self, rect: Rect, px: &[u8], stride: usize) -> Result<(), QxlError> {
            assert_eq!(px.len(), stride * rect.height() as usize);
            self.draws.push(rect);
            match self.busy_every {
                Some(n) if self.draws.len() % n == 0 => Err(QxlError::Busy { what: "RAM" }),
                _ => Ok(()),
            }
        }
        fn cursor_set(&mut self, shape: &[u8], side: u16, _: Point) -> Result<(), QxlError> {
            assert_eq!(shape.len(), usize::from(side) * usize::from(side) * 4);
            self.sets += 1;
            Ok(())
        }
        fn cursor_move(&mut self, pos: Point) -> Result<(), QxlError> {
            self.moves.push(pos);
            Ok(())
        }
    }

    fn pace(ms: u64) -> Pace {
        Pace {
            duration: Some(Duration::from_millis(ms)),
            cursor_hz: 20.0,
        }
    }

    #[test]
    fn paces_frames_to_the_workload_rate() {
        let mut cfg = WorkloadConfig::new(Workload::Desktop);
        cfg.fps = 100.0;
        let mut t = Counting::default();
        let s = run(
            &mut t,
            &mut Generator::new(cfg),
            pace(300),
            &AtomicBool::new(false),
        );
        assert!((25..=32).contains(&s.frames), "{s:?}");
        assert_eq!(s.commands_produced, s.frames * 4);
        assert_eq!(t.draws.len() as u64, s.commands_produced);
        assert_eq!(t.sets, 1);
        // 20 Hz over 0.3 s: the first move at once, then every 50 ms.
        assert!((5..=8).contains(&t.moves.len()), "{}", t.moves.len());
        assert_eq!(s.cursor_commands_produced, 1 + t.moves.len() as u64);
        assert!(s.error.is_none());
    }

    #[test]
    fn busy_device_drops_commands_and_goes_on() {
        let mut cfg = WorkloadConfig::new(Workload::Desktop);
        cfg.fps = 200.0;
        let mut t = Counting {
            busy_every: Some(2),
            ..Counting::default()
        };
        let s = run(
            &mut t,
            &mut Generator::new(cfg),
            pace(50),
            &AtomicBool::new(false),
        );
        assert_eq!(s.dropped_busy, t.draws.len() as u64 / 2);
        assert_eq!(s.commands_produced + s.dropped_busy, s.frames * 4);
        assert_eq!(s.pixels_produced * 4, s.bitmap_bytes_produced);
    }

    #[test]
    fn stop_flag_ends_an_unbounded_run() {
        let cfg = WorkloadConfig::new(Workload::Idle);
        let stop = AtomicBool::new(true);
        let p = Pace {
            duration: None,
            cursor_hz: 0.0,
        };
        let s = run(&mut Counting::default(), &mut Generator::new(cfg), p, &stop);
        assert_eq!(s.frames, 0);
    }

    #[test]
    fn cursor_path_stays_inside_the_margins() {
        for frame in [0, 1, 999, u32::MAX] {
            let p = cursor_at(frame, (1280, 800));
            assert!(
                (100..1180).contains(&p.x) && (100..700).contains(&p.y),
                "{p:?}"
            );
        }
        assert_eq!(cursor_at(10, (1280, 800)), Point { x: 170, y: 130 });
    }
}
