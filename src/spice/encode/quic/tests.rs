//! Round trips through the test decoder (written after spice-common's): every size class,
//! flat areas (runs), noise, gradients, and mixtures that start and stop runs at segment
//! and row edges.

use super::decode::decode;
use super::*;

fn xorshift(s: &mut u32) -> u32 {
    *s ^= *s << 13;
    *s ^= *s >> 17;
    *s ^= *s << 5;
    *s
}

fn noise(width: u32, height: u32, seed: u32) -> Vec<u8> {
    let mut s = seed | 1;
    (0..width * height * 3)
        .map(|_| xorshift(&mut s) as u8)
        .collect()
}

fn gradient(width: u32, height: u32) -> Vec<u8> {
    (0..height)
        .flat_map(|y| (0..width).flat_map(move |x| [(x * 3) as u8, (y * 2) as u8, (x + y) as u8]))
        .collect()
}

fn flat(width: u32, height: u32) -> Vec<u8> {
    [0x20, 0x40, 0x60].repeat((width * height) as usize)
}

/// Blocks of flat colour with noisy stripes and single odd pixels: runs of every length,
/// starting and ending anywhere.
fn mixed(width: u32, height: u32, seed: u32) -> Vec<u8> {
    let mut s = seed | 1;
    let mut out = Vec::new();
    for y in 0..height {
        for x in 0..width {
            let r = xorshift(&mut s);
            let px = if (y / 5) % 3 == 2 && r % 4 != 0 {
                [r as u8, (r >> 8) as u8, (r >> 16) as u8]
            } else if r % 97 == 0 {
                [1, 2, 3]
            } else {
                let c = ((x / 37) + (y / 11)) as u8;
                [c, c.wrapping_mul(3), 200]
            };
            out.extend_from_slice(&px);
        }
    }
    out
}

/// Plasma plus low noise, like the benchmark's video frames.
fn video(width: u32, height: u32, seed: u32) -> Vec<u8> {
    let mut s = seed | 1;
    (0..height)
        .flat_map(|y| (0..width).map(move |x| (x, y)))
        .flat_map(|(x, y)| {
            let n = xorshift(&mut s);
            let v = (x * x / 97 + y * 3 + (x ^ y) / 5) as u8;
            [
                v.wrapping_add((n & 7) as u8),
                v.wrapping_mul(2).wrapping_add(((n >> 3) & 7) as u8),
                (255 - v).wrapping_add(((n >> 6) & 7) as u8),
            ]
        })
        .collect()
}

#[track_caller]
fn round_trip(width: u32, height: u32, pixels: &[u8]) -> usize {
    let payload = encode_bgr(pixels, width, height, usize::MAX).expect("encodes");
    assert!(payload.len() <= max_payload_len(width, height).unwrap());
    assert_eq!(payload.len() % 4, 0);
    let (w, h, back) = decode(&payload).expect("decodes");
    assert_eq!((w, h), (width, height));
    assert!(back == pixels, "{width}x{height}: pixels differ");
    payload.len()
}

const SIZES: [(u32, u32); 14] = [
    (1, 1),
    (1, 7),
    (7, 1),
    (2, 2),
    (3, 5),
    (5, 3),
    (13, 17),
    (64, 64),
    (127, 9),
    (2047, 3),
    (2048, 3),
    (2049, 3),
    (4100, 2),
    (333, 41),
];

#[test]
fn every_size_and_content_round_trips() {
    for (w, h) in SIZES {
        round_trip(w, h, &noise(w, h, w * 31 + h));
        round_trip(w, h, &gradient(w, h));
        round_trip(w, h, &flat(w, h));
        round_trip(w, h, &mixed(w, h, w + h * 7));
        round_trip(w, h, &video(w, h, w ^ h));
    }
}

#[test]
fn a_tall_image_crosses_every_wait_mask_step() {
    // 1 × 20000: each row is one pixel, so the 2048-pixel wait mask steps fall mid-image.
    round_trip(1, 20000, &mixed(1, 20000, 5));
    round_trip(3, 9000, &video(3, 9000, 5));
    round_trip(600, 40, &mixed(600, 40, 9));
}

#[test]
fn flat_images_are_mostly_runs() {
    let bytes = round_trip(640, 480, &flat(640, 480));
    // A run per row after the first: far below a bit per pixel.
    assert!(bytes < 640 * 480 / 16, "{bytes}");
}

#[test]
fn video_compresses_below_raw() {
    let (w, h) = (640, 360);
    let bytes = round_trip(w, h, &video(w, h, 3));
    assert!(bytes < (w * h * 3) as usize * 3 / 4, "{bytes}");
}

#[test]
fn limit_stops_the_encoder() {
    let (w, h) = (256, 64);
    let px = noise(w, h, 77);
    let full = encode_bgr(&px, w, h, usize::MAX).unwrap();
    assert_eq!(encode_bgr(&px, w, h, full.len() - 4), None);
    assert_eq!(encode_bgr(&px, w, h, full.len()), Some(full.clone()));
    assert_eq!(encode_bgr(&px, w, h, 3), None);
}

#[test]
fn header_and_size_checks() {
    let payload = encode_bgr(&[1, 2, 3], 1, 1, usize::MAX).unwrap();
    let size = u32::from_le_bytes(payload[..4].try_into().unwrap()) as usize;
    assert_eq!(size, payload.len() - 4);
    assert_eq!(&payload[4..8], b"QUIC");
    assert_eq!(payload[12..16], TYPE_RGB32.to_le_bytes());
    assert_eq!(encode_bgr(&[], 0, 1, usize::MAX), None);
    assert_eq!(encode_bgr(&[1, 2, 3], 1, 2, usize::MAX), None);
    assert_eq!(encode_bgr(&[1, 2, 3, 4], 1, 1, usize::MAX), None);
}

#[test]
fn a_cut_stream_does_not_decode() {
    let (w, h) = (50, 20);
    let payload = encode_bgr(&video(w, h, 1), w, h, usize::MAX).unwrap();
    let mut cut = payload[..payload.len() / 2].to_vec();
    cut.truncate(cut.len() / 4 * 4);
    let n = (cut.len() - 4) as u32;
    cut[..4].copy_from_slice(&n.to_le_bytes());
    assert!(decode(&cut).is_err());
}

#[test]
fn byte_lane_arithmetic_matches_per_byte() {
    let mut s = 12345;
    for _ in 0..100_000 {
        let (x, y) = (xorshift(&mut s) & 0xff_ffff, xorshift(&mut s) & 0xff_ffff);
        for sh in [0, 8, 16] {
            let (xb, yb) = ((x >> sh) as u8, (y >> sh) as u8);
            assert_eq!((sub_bytes(x, y) >> sh) as u8, xb.wrapping_sub(yb));
            assert_eq!(
                (avg_bytes(x, y) >> sh) as u8,
                ((u16::from(xb) + u16::from(yb)) >> 1) as u8
            );
        }
        assert_eq!(sub_bytes(x, y) >> 24, 0);
        assert_eq!(avg_bytes(x, y) >> 24, 0);
    }
}

#[test]
fn random_sizes_and_mixtures_round_trip() {
    // Sizes and contents drawn at random: runs start and stop at every position relative
    // to rows, segments and model updates.
    let mut s = 0x2545_f491;
    for _ in 0..300 {
        let w = 1 + xorshift(&mut s) % 300;
        let h = 1 + xorshift(&mut s) % 24;
        let seed = xorshift(&mut s);
        let px = match xorshift(&mut s) % 4 {
            0 => mixed(w, h, seed),
            1 => video(w, h, seed),
            2 => noise(w, h, seed),
            // Few colours: long and short runs everywhere.
            _ => {
                let mut t = seed | 1;
                (0..w * h)
                    .flat_map(|_| {
                        let c = (xorshift(&mut t) % 3) as u8 * 60;
                        if xorshift(&mut t) % 5 == 0 {
                            [c, c, c]
                        } else {
                            [9, 9, 9]
                        }
                    })
                    .collect()
            }
        };
        round_trip(w, h, &px);
    }
}
