//! The workloads against spice-ref-server's own `--frame-hash 60` values (seed 1, default
//! options; the kit's README table), and the generator's determinism.

use super::*;

/// `spice-ref-server --workload W --frame-hash 60`: commands, pixels, FNV-1a 64. The pixel
/// counts are from the same runs (kit built against libspice-server 0.15.1).
const REFERENCE: [(Workload, u64, u64, u64); 5] = [
    (Workload::Desktop, 240, 2_829_572, 0x53e1_60fc_aeb7_8eda),
    (Workload::Video, 60, 13_824_000, 0xf4bb_ac77_fb6b_0492),
    (Workload::Fullscreen, 60, 61_440_000, 0xf7f9_cbf9_96f8_1a9d),
    (
        Workload::FullhdVideo,
        60,
        124_416_000,
        0x4bfb_1909_8c54_b0d2,
    ),
    (Workload::Office, 177, 80_017_792, 0x277a_2984_bd4f_8014),
];
/// Frames of the reference table.
const FRAMES: u32 = 60;

fn check(w: Workload) {
    let (_, commands, pixels, hash) = REFERENCE
        .into_iter()
        .find(|r| r.0 == w)
        .expect("workload is in the table");
    let got = frame_hash(WorkloadConfig::new(w), FRAMES);
    assert_eq!(
        (got.commands, got.pixels, got.fnv1a64),
        (commands, pixels, hash),
        "{w}: got {:016x}",
        got.fnv1a64
    );
}

#[test]
fn desktop_matches_spice_ref_server() {
    check(Workload::Desktop);
}

#[test]
fn video_matches_spice_ref_server() {
    check(Workload::Video);
}

#[test]
fn fullscreen_matches_spice_ref_server() {
    check(Workload::Fullscreen);
}

#[test]
fn fullhd_video_matches_spice_ref_server() {
    check(Workload::FullhdVideo);
}

#[test]
fn office_matches_spice_ref_server() {
    check(Workload::Office);
}

#[test]
fn idle_produces_nothing() {
    let h = frame_hash(WorkloadConfig::new(Workload::Idle), FRAMES);
    assert_eq!((h.commands, h.fnv1a64), (0, FNV_OFFSET));
}

#[test]
fn defaults_follow_spice_ref_server() {
    let o = WorkloadConfig::new(Workload::Office);
    assert_eq!(
        (o.width, o.height, o.video, o.fps),
        (1920, 1080, (480, 270), 30.0)
    );
    let d = WorkloadConfig::new(Workload::Desktop);
    assert_eq!((d.width, d.height, d.rects, d.fps), (1280, 800, 4, 60.0));
    assert_eq!("fullhd-video".parse(), Ok(Workload::FullhdVideo));
    assert!("4k".parse::<Workload>().is_err());
}

#[test]
fn validate_rejects_what_spice_ref_server_rejects() {
    let mut c = WorkloadConfig::new(Workload::Video);
    c.width = 255;
    assert!(c.validate().is_err());
    c.width = 256;
    assert!(c.validate().is_ok());
    c.fps = 0.0;
    assert!(c.validate().is_err());
}

#[test]
fn frames_are_the_same_on_every_run_and_stay_inside_the_surface() {
    let mut cfg = WorkloadConfig::new(Workload::Office);
    cfg.width = 1024;
    cfg.height = 768;
    assert_eq!(frame_hash(cfg, 3), frame_hash(cfg, 3));
    let mut gen = Generator::new(cfg);
    for f in 0..31 {
        gen.frame(f, &mut |c| {
            assert!(c.x + c.width <= 1024 && c.y + c.height <= 768, "{c:?}");
            assert_eq!(c.pixels.len(), (c.width * c.height * 4) as usize);
        });
    }
}
