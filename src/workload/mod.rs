//! Synthetic guest workloads for benchmarks: Rust ports of the kit's spice-ref-server
//! generators, producing the same commands (bounding box and pixels) for a given seed and
//! surface, so that our daemon and libspice-server are measured on identical input.
//!
//! # Layout
//! - [`content`]: the pixel generators (text, plasma, rectangles) and their tables.
//! - [`office`]: the `office` workload's windows.
//! - [`pacer`]: drives a generator into a QXL producer at the workload's frame rate and
//!   counts its own CPU.
//! - [`cpu`]: thread and process CPU, peak memory (the only file here with `unsafe`).
//! - [`report`]: the run's JSON summary, in spice-ref-server's field names.
//!
//! The reference values (`spice-ref-server --frame-hash 60`, seed 1) are checked in
//! `tests.rs`; [`frame_hash`] computes the same FNV-1a 64 hash.

pub mod content;
pub mod cpu;
pub mod office;
pub mod pacer;
pub mod report;

use std::fmt;
use std::str::FromStr;

use content::{hash3, xs32, Content};

/// Default surface of the light workloads (spice-ref-server's `--surface` default).
pub const DEFAULT_SURFACE: (u32, u32) = (1280, 800);
/// Default surface of `fullhd-video` and `office`.
pub const FULLHD_SURFACE: (u32, u32) = (1920, 1080);
/// `video`'s region, centred (`--video-size` default).
pub const DEFAULT_VIDEO: (u32, u32) = (640, 360);
/// `office`'s video window.
pub const OFFICE_VIDEO: (u32, u32) = (480, 270);
/// `desktop`'s rectangles per frame (`--rects` default).
pub const DEFAULT_RECTS: u32 = 4;
/// Smallest surface side spice-ref-server accepts (its option check): the cursor path keeps
/// 100 pixels from each edge.
pub const MIN_SURFACE_SIDE: u32 = 256;
/// Largest surface side we generate (the QXL device's limit is larger; this keeps one
/// command's pixels, allocated here, bounded).
pub const MAX_SURFACE_SIDE: u32 = 4096;
/// `desktop` rectangle sizes: width 24..=320, height 12..=120.
const DESKTOP_W: (u32, u32) = (24, 297);
const DESKTOP_H: (u32, u32) = (12, 109);
/// UI colours of `desktop` rectangles (`ui_bg`, `ui_fg`).
const UI_BG: [u32; 6] = [
    0xfff0_f0f0,
    0xffff_ffff,
    0xffdd_e6f0,
    0xfff5_efe0,
    0xffe0_f0e0,
    0xffee_eeee,
];
const UI_FG: [u32; 4] = [0xff20_2020, 0xff10_30a0, 0xff60_3010, 0xff00_0000];
/// `fullscreen`: the document scrolls this many pixels per frame under a title bar.
const FULLSCREEN_SCROLL: usize = 8;
const FULLSCREEN_TITLE_H: usize = 24;
const FULLSCREEN_TITLE: u32 = 0xff30_60a0;
const FULLSCREEN_PAPER: (u32, u32) = (0xffff_ffff, 0xff20_2020);
/// FNV-1a 64 parameters.
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// spice-ref-server's `--workload`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Workload {
    Idle,
    Desktop,
    Video,
    Fullscreen,
    FullhdVideo,
    Office,
}

impl Workload {
    pub const ALL: [Workload; 6] = [
        Workload::Idle,
        Workload::Desktop,
        Workload::Video,
        Workload::Fullscreen,
        Workload::FullhdVideo,
        Workload::Office,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Workload::Idle => "idle",
            Workload::Desktop => "desktop",
            Workload::Video => "video",
            Workload::Fullscreen => "fullscreen",
            Workload::FullhdVideo => "fullhd-video",
            Workload::Office => "office",
        }
    }

    /// Frames per second when `--fps` is not given (`default_fps`).
    pub fn default_fps(self) -> f64 {
        match self {
            Workload::Desktop => 60.0,
            Workload::Video | Workload::FullhdVideo | Workload::Office => 30.0,
            Workload::Fullscreen => 10.0,
            Workload::Idle => 1.0,
        }
    }

    /// Surface when `--surface` is not given.
    pub fn default_surface(self) -> (u32, u32) {
        match self {
            Workload::FullhdVideo | Workload::Office => FULLHD_SURFACE,
            _ => DEFAULT_SURFACE,
        }
    }

    /// Video region when `--video-size` is not given.
    pub fn default_video(self) -> (u32, u32) {
        match self {
            Workload::Office => OFFICE_VIDEO,
            _ => DEFAULT_VIDEO,
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Unknown workload {0:?} (idle, desktop, video, fullscreen, fullhd-video, office)")]
pub struct UnknownWorkload(pub String);

impl FromStr for Workload {
    type Err = UnknownWorkload;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Workload::ALL
            .into_iter()
            .find(|w| w.name() == s)
            .ok_or_else(|| UnknownWorkload(s.to_owned()))
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WorkloadError {
    #[error("Surface {0}x{1} outside {MIN_SURFACE_SIDE}..={MAX_SURFACE_SIDE} per side")]
    Surface(u32, u32),
    #[error("Video size {0}x{1} has a zero side")]
    Video(u32, u32),
    #[error("Frame rate {0} is not a positive number")]
    Fps(f64),
}

/// A workload with its options resolved (the defaults spice-ref-server applies).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct WorkloadConfig {
    pub workload: Workload,
    pub width: u32,
    pub height: u32,
    pub seed: u32,
    pub fps: f64,
    pub rects: u32,
    pub video: (u32, u32),
}

impl WorkloadConfig {
    /// `workload` with every default, seed 1.
    pub fn new(workload: Workload) -> Self {
        let (width, height) = workload.default_surface();
        Self {
            workload,
            width,
            height,
            seed: 1,
            fps: workload.default_fps(),
            rects: DEFAULT_RECTS,
            video: workload.default_video(),
        }
    }

    /// Checks the options the way spice-ref-server does before it starts.
    pub fn validate(&self) -> Result<(), WorkloadError> {
        let side = MIN_SURFACE_SIDE..=MAX_SURFACE_SIDE;
        if !side.contains(&self.width) || !side.contains(&self.height) {
            return Err(WorkloadError::Surface(self.width, self.height));
        }
        if self.video.0 == 0 || self.video.1 == 0 {
            return Err(WorkloadError::Video(self.video.0, self.video.1));
        }
        if !(self.fps.is_finite() && self.fps > 0.0) {
            return Err(WorkloadError::Fps(self.fps));
        }
        Ok(())
    }
}

/// One command of a frame: a DRAW_COPY of `pixels` (rows of `width` xRGB pixels, bytes
/// B, G, R, X) at (`x`, `y`).
#[derive(Debug)]
pub struct DrawCmd<'a> {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    pub pixels: &'a [u8],
}

/// Builds a workload's frames, deterministically: frame `n`'s commands depend only on the
/// configuration and on the frames built before it (desktop's geometry stream), not on time.
#[derive(Debug)]
pub struct Generator {
    cfg: WorkloadConfig,
    content: Content,
    /// `desktop`'s geometry stream (`geometry_rng_init`).
    rng: u32,
    /// One command's pixels, reused.
    buf: Vec<u8>,
}

impl Generator {
    /// `cfg` must have passed [`WorkloadConfig::validate`]; sizes are clamped anyway.
    pub fn new(cfg: WorkloadConfig) -> Self {
        let rng = cfg
            .seed
            .wrapping_mul(747_796_405)
            .wrapping_add(2_891_336_453);
        Self {
            content: Content::new(cfg.seed),
            rng: if rng == 0 { 1 } else { rng },
            buf: Vec::new(),
            cfg,
        }
    }

    pub fn config(&self) -> &WorkloadConfig {
        &self.cfg
    }

    /// Builds frame `frame` and hands each of its commands to `sink`, in queue order
    /// (`produce_frame`). Frames must be built in order from 0 for `desktop`.
    pub fn frame(&mut self, frame: u32, sink: &mut dyn FnMut(DrawCmd<'_>)) {
        let (sw, sh) = (
            self.cfg.width.clamp(1, MAX_SURFACE_SIDE),
            self.cfg.height.clamp(1, MAX_SURFACE_SIDE),
        );
        match self.cfg.workload {
            Workload::Idle => {}
            Workload::Desktop => {
                for i in 0..self.cfg.rects {
                    let w = (DESKTOP_W.0 + xs32(&mut self.rng) % DESKTOP_W.1).min(sw);
                    let h = (DESKTOP_H.0 + xs32(&mut self.rng) % DESKTOP_H.1).min(sh);
                    let x = xs32(&mut self.rng) % (sw - w + 1);
                    let y = xs32(&mut self.rng) % (sh - h + 1);
                    self.draw((x, y, w, h), frame, i, sink);
                }
            }
            Workload::Video => {
                let (w, h) = (self.cfg.video.0.min(sw), self.cfg.video.1.min(sh));
                self.draw(((sw - w) / 2, (sh - h) / 2, w, h), frame, 0, sink);
            }
            Workload::Fullscreen | Workload::FullhdVideo => {
                self.draw((0, 0, sw, sh), frame, 0, sink);
            }
            Workload::Office => {
                if frame == 0 {
                    self.draw((0, 0, sw, sh), frame, OFFICE_BACKGROUND, sink);
                }
                for (i, r) in office::REGIONS.iter().enumerate() {
                    if frame % r.period == 0 {
                        let rect = office::rect(r, (sw, sh), self.cfg.video);
                        self.draw(rect, frame, i as u32, sink);
                    }
                }
            }
        }
    }

    /// One command (`draw_rect`): fills the pixels of command `idx` of `frame` and hands it out.
    fn draw(
        &mut self,
        (x, y, w, h): (u32, u32, u32, u32),
        frame: u32,
        idx: u32,
        sink: &mut dyn FnMut(DrawCmd<'_>),
    ) {
        let (wu, hu) = (w as usize, h as usize);
        let mut buf = std::mem::take(&mut self.buf);
        buf.resize(wu * hu * 4, 0);
        let seed = self.cfg.seed;
        let c = &self.content;
        match self.cfg.workload {
            Workload::Desktop => {
                let bg = UI_BG[(frame.wrapping_add(idx) % UI_BG.len() as u32) as usize];
                let fg = UI_FG[(idx % UI_FG.len() as u32) as usize];
                c.fill_text(&mut buf, wu, hash3(seed, frame, idx), 0, bg, fg);
            }
            Workload::Video | Workload::FullhdVideo => c.fill_plasma(&mut buf, wu, frame, seed),
            Workload::Fullscreen => {
                let (paper, ink) = FULLSCREEN_PAPER;
                let scroll = frame as usize * FULLSCREEN_SCROLL;
                c.fill_text(&mut buf, wu, seed, scroll, paper, ink);
                for row in buf.chunks_exact_mut(wu * 4).take(FULLSCREEN_TITLE_H) {
                    for (xx, p) in row.chunks_exact_mut(4).enumerate() {
                        let v = FULLSCREEN_TITLE.wrapping_add((xx >> 4) as u32);
                        p.copy_from_slice(&v.to_le_bytes());
                    }
                }
            }
            Workload::Office => match office::REGIONS.get(idx as usize) {
                None => office::background(&mut buf, (w, h), self.cfg.video),
                Some(r) if r.is_video() => c.fill_plasma(&mut buf, wu, frame, seed),
                Some(r) => {
                    let n = frame / r.period;
                    if r.scroll != 0 {
                        let scroll = n as usize * r.scroll as usize;
                        c.fill_text(&mut buf, wu, hash3(seed, idx, 0), scroll, r.bg, r.fg);
                    } else {
                        c.fill_text(&mut buf, wu, hash3(seed, idx, n), 0, r.bg, r.fg);
                    }
                }
            },
            Workload::Idle => {}
        }
        sink(DrawCmd {
            x,
            y,
            width: w,
            height: h,
            pixels: &buf,
        });
        self.buf = buf;
    }
}

/// `draw_rect`'s index of office's frame-0 background (`OFFICE_BG_IDX`).
const OFFICE_BACKGROUND: u32 = 255;

/// What `--frame-hash` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameHash {
    pub frames: u32,
    pub commands: u64,
    pub pixels: u64,
    pub fnv1a64: u64,
}

/// FNV-1a 64 of `bytes`, continuing from `h`.
pub fn fnv1a64(mut h: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        h = (h ^ u64::from(b)).wrapping_mul(FNV_PRIME);
    }
    h
}

/// The first `frames` frames hashed as `spice-ref-server --frame-hash` does: each command's
/// `QXLRect` bbox (top, left, bottom, right as little-endian i32) then its pixels.
pub fn frame_hash(cfg: WorkloadConfig, frames: u32) -> FrameHash {
    let mut gen = Generator::new(cfg);
    let mut out = FrameHash {
        frames,
        commands: 0,
        pixels: 0,
        fnv1a64: FNV_OFFSET,
    };
    for f in 0..frames {
        gen.frame(f, &mut |cmd| {
            let (l, t) = (cmd.x, cmd.y);
            let (r, b) = (l + cmd.width, t + cmd.height);
            for v in [t, l, b, r] {
                out.fnv1a64 = fnv1a64(out.fnv1a64, &v.to_le_bytes());
            }
            out.fnv1a64 = fnv1a64(out.fnv1a64, cmd.pixels);
            out.commands += 1;
            out.pixels += u64::from(cmd.width) * u64::from(cmd.height);
        });
    }
    out
}

#[cfg(test)]
mod tests;
