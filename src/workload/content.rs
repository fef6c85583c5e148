//! The pixels of spice-ref-server's workloads: UI text and scrolling documents, plasma video,
//! solid rectangles, each a port of the kit's C generator that yields the same bytes.
//!
//! Pixels are written as xRGB words in little-endian order (bytes B, G, R, X), the layout of
//! the C generator's `uint32_t` buffers on x86 and the one `qxl::Producer::draw_copy` takes.
//! Every size comes from the workload configuration, never from a peer.
#![forbid(unsafe_code)]

/// Glyphs in the pseudo-font (`GLYPHS` in spice-ref-server.c).
const GLYPHS: usize = 64;
/// Glyph cell width in pixels; one row of a glyph is one byte of bits (`GLYPH_W`).
pub const GLYPH_W: usize = 8;
/// Glyph height; text lines are `LINE_H` pixels apart, the rest is the gap (`GLYPH_H`).
const GLYPH_H: usize = 14;
/// Pixel rows per text line.
const LINE_H: usize = 16;
/// `glyph(y)` rows above this or below `GLYPH_BLANK_BOTTOM` are blank (ascender / descender).
const GLYPH_BLANK_TOP: usize = 2;
const GLYPH_BLANK_BOTTOM: usize = 11;
/// Bits of a glyph row that may be set: never the cell's first and last column (spacing).
const GLYPH_ROW_MASK: u32 = 0x7e;
/// The third `hash3` argument of a line's own hash (length, empty or not).
const LINE_HASH_SALT: u32 = 7;
/// The third `hash3` argument of a plasma frame's noise seed.
const PLASMA_NOISE_SALT: u32 = 99;
/// Per-channel base and amplitude of the plasma palette: 124 ± 120 keeps every channel in
/// 4..244, so adding up to 7 of noise never carries into the next channel.
const PLASMA_BASE: i32 = 124;
/// Noise bits added to each of the plasma's three channels.
const NOISE_MASK: u32 = 7;

/// xorshift32, the C generator's only random source (`xs32`).
pub fn xs32(s: &mut u32) -> u32 {
    let mut x = *s;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *s = x;
    x
}

/// The C generator's integer hash of three words (`hash3`).
pub fn hash3(a: u32, b: u32, c: u32) -> u32 {
    let mut h = a.wrapping_mul(0x9E37_79B1)
        ^ b.wrapping_add(0x7F4A_7C15).wrapping_mul(0x85EB_CA77)
        ^ c.wrapping_add(0x1656_67B1).wrapping_mul(0xC2B2_AE3D);
    h ^= h >> 15;
    h = h.wrapping_mul(0x2C1B_3C6D);
    h ^= h >> 12;
    h
}

/// Tables made once per seed (`content_init`): an integer sine, the pseudo-font and the
/// plasma's colour of each phase.
#[derive(Clone, Debug)]
pub struct Content {
    sin: [i8; 256],
    glyphs: [[u8; GLYPH_H]; GLYPHS],
    plasma_pal: [u32; 256],
}

impl Content {
    pub fn new(seed: u32) -> Self {
        let mut sin = [0i8; 256];
        for (i, s) in sin.iter_mut().enumerate() {
            // A parabola per half wave, deterministic across libm versions. Its peak, 128,
            // does not fit an i8: the C code's `(int8_t)` cast wraps it to -128, and so must
            // we, or the plasma's pixels differ.
            let p = (i & 127) as i32;
            let v = (p * (128 - p)) >> 5;
            *s = if i < 128 { v as i8 } else { (-v) as i8 };
        }
        let mut s = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
        let mut glyphs = [[0u8; GLYPH_H]; GLYPHS];
        for glyph in glyphs.iter_mut() {
            for (y, row) in glyph.iter_mut().enumerate() {
                if (GLYPH_BLANK_TOP..=GLYPH_BLANK_BOTTOM).contains(&y) {
                    *row = (xs32(&mut s) & GLYPH_ROW_MASK) as u8;
                }
            }
        }
        let mut plasma_pal = [0u32; 256];
        for (v, c) in plasma_pal.iter_mut().enumerate() {
            // C's `/` truncates toward zero, as Rust's does.
            let ch = |phase: usize| (PLASMA_BASE + i32::from(sin[phase & 255]) * 15 / 16) as u32;
            *c = 0xff00_0000 | ch(v) << 16 | ch(v + 85) << 8 | ch(v + 170);
        }
        Self {
            sin,
            glyphs,
            plasma_pal,
        }
    }

    fn sin(&self, phase: u32) -> i32 {
        i32::from(self.sin[(phase & 255) as usize])
    }

    /// Text-like content (`fill_text`): `bg` everywhere, dark `fg` pseudo-glyphs on
    /// 16-pixel lines of document `doc`, scrolled down by `scroll` pixels. `px` holds `h`
    /// rows of `w` pixels.
    pub fn fill_text(&self, px: &mut [u8], w: usize, doc: u32, scroll: usize, bg: u32, fg: u32) {
        let (bgb, fgb) = (bg.to_le_bytes(), fg.to_le_bytes());
        let cols_per_line = (w / GLYPH_W + 1) as u32;
        for (y, row) in px.chunks_exact_mut(w * 4).enumerate() {
            let ly = y + scroll;
            let (line, gy) = ((ly / LINE_H) as u32, ly % LINE_H);
            let lh = hash3(doc, line, LINE_HASH_SALT);
            let line_len = (lh % cols_per_line) as usize;
            if gy >= GLYPH_H || lh & 0x700 == 0 {
                // The gap between lines, or an empty line.
                fill_row(row, bgb);
                continue;
            }
            for (col, cell) in row.chunks_mut(GLYPH_W * 4).enumerate() {
                let gh = hash3(doc, line, col as u32);
                if col >= line_len || gh & 7 == 0 {
                    // Past the end of the line, or a space.
                    fill_row(cell, bgb);
                    continue;
                }
                let bits = self.glyphs[gh as usize % GLYPHS][gy];
                for (bit, p) in cell.chunks_exact_mut(4).enumerate() {
                    p.copy_from_slice(if (bits >> bit) & 1 != 0 { &fgb } else { &bgb });
                }
            }
        }
    }

    /// "Natural" content (`fill_plasma`): a moving plasma of frame `t` plus 0..7 of noise per
    /// channel from an xorshift stream seeded by `seed` and `t`.
    pub fn fill_plasma(&self, px: &mut [u8], w: usize, t: u32, seed: u32) {
        let mut s = hash3(seed, t, PLASMA_NOISE_SALT) | 1;
        let colv: Vec<i32> = (0..w as u32)
            .map(|x| self.sin(x.wrapping_mul(2).wrapping_add(t.wrapping_mul(3))))
            .collect();
        for (y, row) in px.chunks_exact_mut(w * 4).enumerate() {
            let y = y as u32;
            let sy = self.sin(y.wrapping_mul(3).wrapping_add(t.wrapping_mul(2))) + 384;
            let d = y.wrapping_add(t.wrapping_mul(5));
            for ((x, p), cv) in row.chunks_exact_mut(4).enumerate().zip(&colv) {
                // Always in 0..=640: the low byte is the phase.
                let v = (cv + sy + self.sin((x as u32).wrapping_add(d))) & 255;
                let n = xs32(&mut s);
                let noise = (n & NOISE_MASK) << 16 | (n >> 3 & NOISE_MASK) << 8 | (n >> 6 & 7);
                p.copy_from_slice(&(self.plasma_pal[v as usize] + noise).to_le_bytes());
            }
        }
    }
}

/// Sets every pixel of `row` (whole pixels) to `c`.
pub fn fill_row(row: &mut [u8], c: [u8; 4]) {
    for p in row.chunks_exact_mut(4) {
        p.copy_from_slice(&c);
    }
}

/// `fill_rect`: pixels `x0..x1` × `y0..y1` of a `w`-pixel-wide buffer set to `c`; negative
/// starts clamp to 0, the ends are clamped to the buffer.
pub fn fill_rect(px: &mut [u8], w: usize, (x0, y0): (i64, i64), (x1, y1): (i64, i64), c: u32) {
    let h = (px.len() / (w * 4)) as i64;
    let (x0, x1) = (x0.max(0), x1.min(w as i64));
    let (y0, y1) = (y0.max(0), y1.min(h));
    if x0 >= x1 || y0 >= y1 {
        return;
    }
    let c = c.to_le_bytes();
    for row in px
        .chunks_exact_mut(w * 4)
        .take(y1 as usize)
        .skip(y0 as usize)
    {
        if let Some(span) = row.get_mut(x0 as usize * 4..x1 as usize * 4) {
            fill_row(span, c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sine_peak_wraps_like_the_c_cast() {
        let c = Content::new(1);
        assert_eq!(c.sin(64), -128);
        assert_eq!(c.sin(192), -128);
        assert_eq!(c.sin(32), 96);
        assert_eq!(c.sin(160), -96);
    }

    #[test]
    fn plasma_palette_leaves_room_for_noise() {
        let c = Content::new(1);
        for v in c.plasma_pal {
            for shift in [0, 8, 16] {
                let ch = v >> shift & 0xff;
                assert!((4..=244).contains(&ch), "{v:08x}");
            }
        }
    }

    #[test]
    fn fill_rect_clamps_to_the_buffer() {
        let mut px = vec![0u8; 4 * 4 * 4];
        fill_rect(&mut px, 4, (-1, 3), (9, 9), 0x0102_0304);
        assert!(px[..3 * 16].iter().all(|&b| b == 0));
        assert_eq!(&px[3 * 16..3 * 16 + 4], &[4, 3, 2, 1]);
        assert_eq!(&px[60..], &[4, 3, 2, 1]);
    }
}
