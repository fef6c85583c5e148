//! EDID 1.4 base block whose preferred mode is the size we report in display info.
//!
//! Layout from VESA E-EDID 1.4 (§3.1–3.10); QEMU's `hw/display/edid-generate.c` does the same
//! job for its devices. Linux re-reads EDID and display info after each display event and
//! prefers the EDID's modes, so both must agree.

/// Size of the EDID base block.
pub const EDID_BLOCK_SIZE: usize = 128;

/// The detailed timing descriptor stores active pixels in 12 bits.
pub const MAX_DTD_PIXELS: u32 = 4095;

/// Refresh rate of the preferred mode when the pixel clock allows it.
const REFRESH_HZ: u64 = 60;
/// The pixel clock field is a u16 in 10 kHz units (655.35 MHz).
const MAX_PIXEL_CLOCK_10KHZ: u64 = u16::MAX as u64;
/// Blanking, roughly CVT reduced blanking (VESA CVT 1.2: 160 pixels, 48 front, 32 sync).
const H_BLANK: u32 = 160;
const H_FRONT: u32 = 48;
const H_SYNC: u32 = 32;
const V_BLANK: u32 = 30;
const V_FRONT: u32 = 3;
const V_SYNC: u32 = 6;
/// Physical size is derived at 96 DPI (the X11/Windows default), in millimetres.
const DPI: u32 = 96;
const MM_PER_INCH_X10: u32 = 254;

/// Our three-letter PNP manufacturer id (5 bits per letter, 'A' = 1): "VUS".
const MANUFACTURER: [u8; 3] = *b"VUS";
const PRODUCT_CODE: u16 = 0x5350;
const MONITOR_NAME: &[u8] = b"vhost-spice";

/// Builds the base block for a `width` x `height` preferred mode, or `None` when the size
/// cannot be described by a detailed timing (over 4095 pixels, or zero).
pub fn generate(width: u32, height: u32) -> Option<[u8; EDID_BLOCK_SIZE]> {
    if width == 0 || height == 0 || width > MAX_DTD_PIXELS || height > MAX_DTD_PIXELS {
        return None;
    }
    let mut e = [0u8; EDID_BLOCK_SIZE];
    // §3.3 header.
    e[0..8].copy_from_slice(&[0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]);
    // §3.4 vendor & product: manufacturer big-endian, product code and serial little-endian.
    let [a, b, c] = MANUFACTURER.map(|l| u16::from(l - b'A' + 1));
    e[8..10].copy_from_slice(&((a << 10) | (b << 5) | c).to_be_bytes());
    e[10..12].copy_from_slice(&PRODUCT_CODE.to_le_bytes());
    e[16] = 1; // week of manufacture
    e[17] = 34; // year of manufacture − 1990: 2024
                // §3.5 EDID structure version 1.4.
    e[18] = 1;
    e[19] = 4;
    // §3.6 basic display parameters: digital input, 8 bits per colour, interface undefined.
    e[20] = 0b1010_0000;
    let (w_mm, h_mm) = (mm(width), mm(height));
    e[21] = u8::try_from(w_mm.div_ceil(10)).unwrap_or(u8::MAX); // cm
    e[22] = u8::try_from(h_mm.div_ceil(10)).unwrap_or(u8::MAX);
    e[23] = 120; // gamma 2.2 = (2.2 × 100) − 100
                 // Features: sRGB default colour space (bit 2), preferred timing is native (bit 1).
    e[24] = 0b0000_0110;
    // §3.7 chromaticity: the sRGB primaries and D65 white point.
    chromaticity(&mut e);
    // §3.8 no established timings; §3.9 standard timings unused (0x01 0x01).
    for i in 0..8 {
        e[38 + 2 * i] = 0x01;
        e[39 + 2 * i] = 0x01;
    }
    // §3.10 descriptors: preferred timing, monitor name, range limits, dummy.
    detailed_timing(&mut e[54..72], width, height, w_mm, h_mm);
    name_descriptor(&mut e[72..90]);
    range_limits(&mut e[90..108]);
    e[108..126].copy_from_slice(&dummy_descriptor());
    // e[126]: no extension blocks. e[127]: checksum, all 128 bytes sum to 0 mod 256.
    let sum = e[..127].iter().fold(0u8, |s, b| s.wrapping_add(*b));
    e[127] = 0u8.wrapping_sub(sum);
    Some(e)
}

fn mm(pixels: u32) -> u32 {
    pixels * MM_PER_INCH_X10 / (DPI * 10)
}

fn chromaticity(e: &mut [u8; EDID_BLOCK_SIZE]) {
    // 10-bit binary fractions (value × 1024) of x and y: red, green, blue, white.
    let v = |f: f64| (f * 1024.0).round() as u16;
    let c = [
        v(0.640),
        v(0.330),
        v(0.300),
        v(0.600),
        v(0.150),
        v(0.060),
        v(0.3127),
        v(0.3290),
    ];
    let lo = |i: usize| (c[i] & 0b11) as u8;
    e[25] = (lo(0) << 6) | (lo(1) << 4) | (lo(2) << 2) | lo(3);
    e[26] = (lo(4) << 6) | (lo(5) << 4) | (lo(6) << 2) | lo(7);
    for (i, value) in c.iter().enumerate() {
        e[27 + i] = (value >> 2) as u8;
    }
}

/// §3.10.2 detailed timing descriptor for the preferred mode.
fn detailed_timing(d: &mut [u8], width: u32, height: u32, w_mm: u32, h_mm: u32) {
    let total = u64::from(width + H_BLANK) * u64::from(height + V_BLANK);
    // Lower the refresh rate when 60 Hz would overflow the clock field (very large modes).
    let refresh = REFRESH_HZ
        .min(MAX_PIXEL_CLOCK_10KHZ * 10_000 / total)
        .max(1);
    let clock = (total * refresh)
        .div_ceil(10_000)
        .min(MAX_PIXEL_CLOCK_10KHZ) as u16;
    d[0..2].copy_from_slice(&clock.to_le_bytes());
    let lo = |v: u32| (v & 0xff) as u8;
    let hi = |v: u32| ((v >> 8) & 0x0f) as u8;
    d[2] = lo(width);
    d[3] = lo(H_BLANK);
    d[4] = (hi(width) << 4) | hi(H_BLANK);
    d[5] = lo(height);
    d[6] = lo(V_BLANK);
    d[7] = (hi(height) << 4) | hi(V_BLANK);
    d[8] = lo(H_FRONT);
    d[9] = lo(H_SYNC);
    d[10] = (((V_FRONT & 0x0f) << 4) | (V_SYNC & 0x0f)) as u8;
    d[11] = ((((H_FRONT >> 8) & 3) << 6)
        | (((H_SYNC >> 8) & 3) << 4)
        | (((V_FRONT >> 4) & 3) << 2)
        | ((V_SYNC >> 4) & 3)) as u8;
    let (w_mm, h_mm) = (w_mm.min(0xfff), h_mm.min(0xfff));
    d[12] = lo(w_mm);
    d[13] = lo(h_mm);
    d[14] = (hi(w_mm) << 4) | hi(h_mm);
    d[15] = 0; // no border
    d[16] = 0;
    // Digital separate sync, +hsync −vsync (reduced blanking polarity).
    d[17] = 0b0001_1010;
}

/// §3.10.3.4 display product name (tag 0xFC): up to 13 bytes, LF-terminated, space-padded.
fn name_descriptor(d: &mut [u8]) {
    d[3] = 0xfc;
    let text = &mut d[5..18];
    text.fill(b' ');
    text[..MONITOR_NAME.len()].copy_from_slice(MONITOR_NAME);
    text[MONITOR_NAME.len()] = b'\n';
}

/// §3.10.3.3 display range limits (tag 0xFD), "default GTF" variant: 1–125 Hz vertical,
/// 1–255 kHz horizontal, 655 MHz maximum clock, so no mode we report falls outside.
fn range_limits(d: &mut [u8]) {
    d[3] = 0xfd;
    d[5] = 1; // min vertical Hz
    d[6] = 125; // max vertical Hz
    d[7] = 1; // min horizontal kHz
    d[8] = 255; // max horizontal kHz
    d[9] = 66; // max pixel clock / 10 MHz
    d[10] = 0x00; // default GTF
    d[11] = 0x0a;
    d[12..18].fill(b' ');
}

/// §3.10.3.11 dummy descriptor (tag 0x10).
fn dummy_descriptor() -> [u8; 18] {
    let mut d = [0u8; 18];
    d[3] = 0x10;
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dtd_size(e: &[u8; EDID_BLOCK_SIZE]) -> (u32, u32) {
        let d = &e[54..72];
        let w = u32::from(d[2]) | (u32::from(d[4] >> 4) << 8);
        let h = u32::from(d[5]) | (u32::from(d[7] >> 4) << 8);
        (w, h)
    }

    #[test]
    fn block_checksums_to_zero_and_has_header() {
        let e = generate(1280, 800).expect("1280x800 fits a DTD");
        assert_eq!(&e[..8], &[0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0]);
        assert_eq!(e.iter().fold(0u8, |s, b| s.wrapping_add(*b)), 0);
        assert_eq!((e[18], e[19]), (1, 4));
    }

    #[test]
    fn preferred_timing_is_the_display_size() {
        for (w, h) in [
            (1280, 800),
            (1024, 768),
            (3840, 2160),
            (4095, 4095),
            (32, 32),
        ] {
            let e = generate(w, h).expect("size fits a DTD");
            assert_eq!(dtd_size(&e), (w, h));
            let clock = u16::from_le_bytes([e[54], e[55]]);
            assert!(clock > 0, "{w}x{h}: pixel clock must be set");
        }
    }

    #[test]
    fn rejects_sizes_a_detailed_timing_cannot_hold() {
        assert_eq!(generate(4096, 768), None);
        assert_eq!(generate(1024, 0), None);
    }

    #[test]
    fn name_descriptor_is_terminated() {
        let e = generate(800, 600).expect("fits");
        assert_eq!(e[72 + 3], 0xfc);
        assert!(e[77..90].contains(&b'\n'));
    }
}
