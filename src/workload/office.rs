//! The `office` workload's desktop: windows at 1920×1080 coordinates, scaled to the surface,
//! each redrawn at its own period (spice-ref-server.c `office_regions`, `office_rect`,
//! `office_background`).
#![forbid(unsafe_code)]

use super::content::fill_rect;

/// The reference screen the window coordinates are given in.
const REF_W: i64 = 1920;
const REF_H: i64 = 1080;
/// Rows of the reference screen above which the windows sit and the task bar starts.
const TOP_BAR_H: i64 = 32;
const TASK_BAR_Y: i64 = 1048;
/// A window's title bar height, and the title "text" band inside it.
const TITLE_H: i64 = 24;
const TITLE_TEXT: (i64, i64) = (18, 6);
/// Colours of the frame-0 background.
const DESKTOP: u32 = 0xff2d_5d8a;
const TOP_BAR: u32 = 0xff30_3030;
const TASK_BAR: u32 = 0xff20_2830;
const TITLE_BAR: u32 = 0xff4a_76b0;
const TITLE_TEXT_COLOUR: u32 = 0xffe8_e8e8;

/// One window's content area.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub name: &'static str,
    /// Content area at 1920×1080.
    pub x: i64,
    pub y: i64,
    pub w: i64,
    pub h: i64,
    /// Redrawn every `period` frames.
    pub period: u32,
    /// Pixels scrolled per redraw; 0 = a new page of text at every redraw.
    pub scroll: u32,
    /// Text colours; `bg == 0` marks the natural video (plasma).
    pub bg: u32,
    pub fg: u32,
}

impl Region {
    pub fn is_video(&self) -> bool {
        self.bg == 0
    }
}

/// The windows, in the order their commands are queued within a frame.
pub const REGIONS: [Region; 6] = [
    region("editor", 8, 64, 944, 976, 1, 2, 0xffff_ffff, 0xff20_2020),
    region(
        "terminal",
        968,
        64,
        944,
        440,
        3,
        16,
        0xff10_1418,
        0xffc8_c8c8,
    ),
    region("log", 968, 568, 440, 472, 2, 4, 0xfff5_efe0, 0xff60_3010),
    region("video", 1424, 568, 480, 270, 1, 0, 0, 0),
    region(
        "panel",
        1424,
        862,
        480,
        178,
        15,
        0,
        0xffdd_e6f0,
        0xff10_30a0,
    ),
    region(
        "clock",
        1784,
        1048,
        128,
        32,
        30,
        0,
        0xff20_2830,
        0xffe0_e0e0,
    ),
];

#[allow(clippy::too_many_arguments)] // one table row
const fn region(
    name: &'static str,
    x: i64,
    y: i64,
    w: i64,
    h: i64,
    period: u32,
    scroll: u32,
    bg: u32,
    fg: u32,
) -> Region {
    Region {
        name,
        x,
        y,
        w,
        h,
        period,
        scroll,
        bg,
        fg,
    }
}

/// Region `r`'s rectangle `(x, y, w, h)` on a `width`×`height` surface: text areas scale
/// with the surface, the video keeps `video` (its size) and is clipped to the surface.
pub fn rect(r: &Region, (width, height): (u32, u32), video: (u32, u32)) -> (u32, u32, u32, u32) {
    let (sw, sh) = (i64::from(width), i64::from(height));
    let (x0, y0) = (r.x * sw / REF_W, r.y * sh / REF_H);
    let (x, y, w, h) = if r.is_video() {
        let (w, h) = (i64::from(video.0).min(sw), i64::from(video.1).min(sh));
        (x0.min(sw - w), y0.min(sh - h), w, h)
    } else {
        let w = ((r.x + r.w) * sw / REF_W - x0).max(1);
        let h = ((r.y + r.h) * sh / REF_H - y0).max(1);
        (x0, y0, w, h)
    };
    // Every value lies in 0..=surface size, which came from a u32.
    let c = |v: i64| u32::try_from(v).unwrap_or(0);
    (c(x), c(y), c(w), c(h))
}

/// Frame 0's full-screen picture: desktop colour, top bar, task bar, window title bars.
pub fn background(px: &mut [u8], (width, height): (u32, u32), video: (u32, u32)) {
    let w = width as usize;
    let (sw, sh) = (i64::from(width), i64::from(height));
    fill_rect(px, w, (0, 0), (sw, sh), DESKTOP);
    fill_rect(px, w, (0, 0), (sw, TOP_BAR_H * sh / REF_H), TOP_BAR);
    fill_rect(px, w, (0, TASK_BAR_Y * sh / REF_H), (sw, sh), TASK_BAR);
    for r in REGIONS.iter().filter(|r| r.y < TASK_BAR_Y) {
        let (x, y, rw, _) = rect(r, (width, height), video);
        let (x, y, rw) = (i64::from(x), i64::from(y), i64::from(rw));
        fill_rect(
            px,
            w,
            (x - 1, y - TITLE_H * sh / REF_H),
            ((x + rw + 1).min(sw), y),
            TITLE_BAR,
        );
        fill_rect(
            px,
            w,
            (x + 8, y - TITLE_TEXT.0 * sh / REF_H),
            ((x + 8 + rw / 3).min(sw), y - TITLE_TEXT.1 * sh / REF_H),
            TITLE_TEXT_COLOUR,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_keep_their_reference_rectangles_at_1080p() {
        let full = (1920, 1080);
        assert_eq!(rect(&REGIONS[0], full, (480, 270)), (8, 64, 944, 976));
        assert_eq!(rect(&REGIONS[3], full, (480, 270)), (1424, 568, 480, 270));
        assert_eq!(rect(&REGIONS[5], full, (480, 270)), (1784, 1048, 128, 32));
    }

    #[test]
    fn video_window_is_clipped_to_a_small_surface() {
        let (x, y, w, h) = rect(&REGIONS[3], (640, 360), (480, 270));
        assert_eq!((w, h), (480, 270));
        assert!(x + w <= 640 && y + h <= 360);
    }
}
