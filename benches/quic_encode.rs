//! The QUIC encoder on the benchmark's natural content: frames of the `video` (640x360
//! region) and `fullhd-video` (1920x1080) workloads, plasma plus noise, encoded on one
//! thread as the server does once per frame for all clients. Times are the thread's CPU
//! time, so a busy machine slows the figures less than wall time would.
//! `cargo bench --bench quic_encode`; prints ns per pixel and bytes per pixel.

use vhost_user_spice::spice::quic;
use vhost_user_spice::workload::content::Content;
use vhost_user_spice::workload::cpu::thread_cpu_s;

/// Frames encoded per size (distinct frames: the plasma moves and the noise changes);
/// `QUIC_BENCH_FRAMES` overrides it (a few frames under callgrind).
const FRAMES: u32 = 30;

/// The plasma of frame `t` as 24-bit B, G, R rows.
fn frame(content: &Content, w: usize, h: usize, t: u32) -> Vec<u8> {
    let mut xrgb = vec![0u8; w * h * 4];
    content.fill_plasma(&mut xrgb, w, t, 1);
    xrgb.chunks_exact(4)
        .flat_map(|p| [p[0], p[1], p[2]])
        .collect()
}

fn main() {
    let frames_n = std::env::var("QUIC_BENCH_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(FRAMES);
    let content = Content::new(1);
    for (name, w, h) in [("video", 640, 360), ("fullhd-video", 1920, 1080)] {
        let frames: Vec<Vec<u8>> = (0..frames_n).map(|t| frame(&content, w, h, t)).collect();
        let raw = w * h * 3;
        // One warm-up pass, then the timed one.
        for f in frames.iter().take(2) {
            let _ = quic::encode_bgr(f, w as u32, h as u32, usize::MAX);
        }
        let mut bytes = 0usize;
        let start = thread_cpu_s();
        for f in &frames {
            bytes += quic::encode_bgr(f, w as u32, h as u32, raw).map_or(raw, |p| p.len());
        }
        let secs = thread_cpu_s() - start;
        let px = (w * h) as f64 * f64::from(frames_n);
        println!(
            "{name:>13} {w}x{h}: {:.2} ns/px, {:.3} bytes/px ({:.1} Mpx/s)",
            secs * 1e9 / px,
            bytes as f64 / px,
            px / secs / 1e6
        );
    }
}
