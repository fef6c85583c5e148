//! The guest's framebuffer test pattern, recomputed on the host, and frame comparison helpers.
//!
//! Definition (must match `guest/init`): pixel (x, y) of a W×H frame is the little-endian u32
//! `0x00RRGGBB` (bytes B, G, R, 0 in memory: virtio-gpu format B8G8R8X8, SPICE 32-bit xRGB) with
//! `R = x * 255 / (W - 1)`, `G = y * 255 / (H - 1)` (integer division) and `B = 0x80` when
//! `(x / 32 + y / 32)` is even, else `0x20`. The gradients catch scaling and offsets, the 32-pixel
//! checkerboard catches row/column shifts and flips, the three distinct channels catch swizzles.

use std::fs;
use std::path::Path;

/// Edge of the checkerboard tiles in the blue channel, in pixels (`guest/init`).
pub const PATTERN_TILE: u32 = 32;
/// Blue on tiles where `x / 32 + y / 32` is even (`guest/init`).
pub const PATTERN_BLUE_EVEN: u32 = 0x80;
/// Blue on the other tiles (`guest/init`).
pub const PATTERN_BLUE_ODD: u32 = 0x20;

/// The `0x00RRGGBB` value of pixel (`x`, `y`) in a `w`×`h` pattern. The guest never draws
/// frames narrower or lower than 2 pixels; for those the gradient is taken as 0.
pub fn pattern_pixel(x: u32, y: u32, w: u32, h: u32) -> u32 {
    let ramp = |v: u32, n: u32| if n < 2 { 0 } else { v * 255 / (n - 1) };
    let blue = if (x / PATTERN_TILE + y / PATTERN_TILE) % 2 == 0 {
        PATTERN_BLUE_EVEN
    } else {
        PATTERN_BLUE_ODD
    };
    (ramp(x, w) << 16) | (ramp(y, h) << 8) | blue
}

/// The whole `w`×`h` pattern as the guest writes it to `/dev/fb0`: rows of `w * 4` bytes (no
/// stride padding), each pixel a little-endian u32 `0x00RRGGBB`.
pub fn expected_pattern(w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(w as usize * h as usize * 4);
    for y in 0..h {
        for x in 0..w {
            out.extend_from_slice(&pattern_pixel(x, y, w, h).to_le_bytes());
        }
    }
    out
}

/// A pixel that differs from the pattern: position, the `0x00RRGGBB` seen and the one expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub x: u32,
    pub y: u32,
    pub got: u32,
    pub want: u32,
}

/// Compares a little-endian xRGB frame (`stride` bytes per row, the X byte ignored) with the
/// pattern; returns the number of differing pixels and the first one. Missing bytes (a frame
/// shorter than `stride * h`) count as mismatches.
pub fn compare_with_pattern(
    frame: &[u8],
    w: u32,
    h: u32,
    stride: usize,
) -> (usize, Option<Mismatch>) {
    let mut count = 0;
    let mut first = None;
    for y in 0..h {
        for x in 0..w {
            let at = y as usize * stride + x as usize * 4;
            let got = frame
                .get(at..at + 4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], 0]));
            let want = pattern_pixel(x, y, w, h);
            if got != Some(want) {
                count += 1;
                first.get_or_insert(Mismatch {
                    x,
                    y,
                    got: got.unwrap_or(u32::MAX),
                    want,
                });
            }
        }
    }
    (count, first)
}

/// A decoded picture: `width * height` little-endian `0x00RRGGBB` pixels, rows tightly packed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub xrgb: Vec<u8>,
}

/// Reads a binary PPM (`P6`, maxval 255), as written by `spicy-screenshot` and QEMU's QMP
/// `screendump`, into xRGB so it compares directly with [`expected_pattern`].
pub fn read_ppm(path: &Path) -> Result<Frame, String> {
    let data = fs::read(path).map_err(|e| format!("Cannot read {}: {e}", path.display()))?;
    parse_ppm(&data).map_err(|e| format!("{}: {e}", path.display()))
}

/// Parses a binary PPM (`P6`, maxval 255); comments in the header are allowed.
pub fn parse_ppm(data: &[u8]) -> Result<Frame, String> {
    let mut fields = Vec::with_capacity(4);
    let mut pos = 0;
    while fields.len() < 4 {
        match data.get(pos) {
            None => return Err("truncated PPM header".into()),
            Some(b'#') => {
                while data.get(pos).is_some_and(|&c| c != b'\n') {
                    pos += 1;
                }
            }
            Some(c) if c.is_ascii_whitespace() => pos += 1,
            Some(_) => {
                let start = pos;
                while data.get(pos).is_some_and(|c| !c.is_ascii_whitespace()) {
                    pos += 1;
                }
                fields.push(String::from_utf8_lossy(&data[start..pos]).into_owned());
            }
        }
    }
    // Exactly one whitespace byte separates the header from the raster.
    pos += 1;
    if fields[0] != "P6" {
        return Err(format!("not a binary PPM (magic {:?})", fields[0]));
    }
    let num = |s: &str| {
        s.parse::<u32>()
            .map_err(|_| format!("bad PPM header field {s:?}"))
    };
    let (width, height, maxval) = (num(&fields[1])?, num(&fields[2])?, num(&fields[3])?);
    if maxval != 255 {
        return Err(format!("PPM maxval {maxval}, only 255 is supported"));
    }
    let len = width as usize * height as usize * 3;
    let rgb = data.get(pos..pos + len).ok_or_else(|| {
        format!(
            "PPM raster has {} bytes, {width}x{height} needs {len}",
            data.len().saturating_sub(pos)
        )
    })?;
    let xrgb = rgb
        .chunks_exact(3)
        .flat_map(|p| [p[2], p[1], p[0], 0])
        .collect();
    Ok(Frame {
        width,
        height,
        xrgb,
    })
}

/// Asserts that the PPM screenshot at `path` is the `w` x `h` pattern, pixel for pixel.
pub fn assert_ppm_is_pattern(path: &Path, w: u32, h: u32) {
    let frame = read_ppm(path).expect("the screenshot is a readable PPM");
    assert_eq!((frame.width, frame.height), (w, h), "screenshot size");
    let (count, first) = compare_with_pattern(&frame.xrgb, w, h, w as usize * 4);
    assert_eq!(
        count, 0,
        "the screenshot differs from the pattern: {first:x?}"
    );
}
