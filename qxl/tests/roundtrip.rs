//! Producer → consumer round trips for every convenience method.

mod common;

use common::{pattern, small_config, Event, Worker};
use qxl::abi::{SPICE_BITMAP_FMT_32BIT, SPICE_ROPD_OP_PUT, SPICE_SURFACE_FMT_32_XRGB};
use qxl::{
    new_device, Clip, Command, CursorCmd, DeviceConfig, DrawOp, Image, IoRequest, Point, QxlError,
    Rect, SurfaceCmdKind,
};

fn io_event(w: &Worker) -> IoRequest {
    loop {
        if let Event::Io(r) = w.next() {
            return r;
        }
    }
}

#[test]
fn create_and_destroy_primary_arrive_as_io() {
    let (mut p, c) = new_device(small_config()).unwrap();
    let w = Worker::spawn(c);
    p.create_primary(640, 480).unwrap();
    match io_event(&w) {
        IoRequest::CreatePrimary(s) => {
            assert_eq!(
                (s.format, s.width, s.height, s.initial),
                (SPICE_SURFACE_FMT_32_XRGB, 640, 480, None)
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(p.primary(), Some((640, 480)));
    p.destroy_primary().unwrap();
    assert_eq!(io_event(&w), IoRequest::DestroyPrimary);
    assert_eq!(p.primary(), None);
}

#[test]
fn draw_copy_pixels_arrive_equal() {
    let (mut p, c) = new_device(small_config()).unwrap();
    let w = Worker::spawn(c);
    p.create_primary(64, 48).unwrap();
    let stride = 40 * 4 + 12;
    let pixels = pattern(40, 30, stride, 7);
    let rect = Rect {
        top: 5,
        left: 3,
        bottom: 35,
        right: 43,
    };
    p.draw_copy(rect, &pixels, stride).unwrap();
    let Command::Draw(d) = w.next_command() else {
        panic!("not a draw")
    };
    assert_eq!(
        (d.surface_id, d.bbox, d.clip.clone(), d.effect),
        (0, rect, Clip::None, 1)
    );
    let DrawOp::Copy {
        src: Image::Bitmap(b),
        src_area,
        rop,
        scale_mode,
    } = d.op
    else {
        panic!("{:?}", d.op)
    };
    assert_eq!(
        (src_area, rop, scale_mode),
        (
            Rect {
                top: 0,
                left: 0,
                bottom: 30,
                right: 40
            },
            SPICE_ROPD_OP_PUT,
            0
        )
    );
    assert_eq!(
        (b.format, b.width, b.height, b.stride),
        (SPICE_BITMAP_FMT_32BIT, 40, 30, 160)
    );
    let compact: Vec<u8> = pixels
        .chunks(stride)
        .flat_map(|r| r[..160].to_vec())
        .collect();
    assert_eq!(b.data, compact);
    assert_eq!(b.palette, None);
}

#[test]
fn large_frame_is_split_into_bands_that_cover_it() {
    let cfg = DeviceConfig::default();
    let (mut p, c) = new_device(cfg).unwrap();
    let w = Worker::spawn(c);
    let (fw, fh) = (3840usize, 2160usize);
    p.create_primary(fw as u32, fh as u32).unwrap();
    let pixels = pattern(fw, fh, fw * 4, 1);
    p.draw_copy(
        Rect {
            top: 0,
            left: 0,
            bottom: fh as i32,
            right: fw as i32,
        },
        &pixels,
        fw * 4,
    )
    .unwrap();
    let mut next_top = 0;
    while next_top < fh as i32 {
        let Command::Draw(d) = w.next_command() else {
            panic!()
        };
        assert_eq!(d.bbox.top, next_top);
        let DrawOp::Copy {
            src: Image::Bitmap(b),
            ..
        } = d.op
        else {
            panic!()
        };
        let start = next_top as usize * fw * 4;
        assert_eq!(b.data[..], pixels[start..start + b.data.len()]);
        next_top = d.bbox.bottom;
    }
    assert_eq!(next_top, fh as i32);
}

#[test]
fn fill_and_copy_bits_round_trip() {
    let (mut p, c) = new_device(small_config()).unwrap();
    let w = Worker::spawn(c);
    p.create_primary(100, 100).unwrap();
    let r = Rect {
        top: 1,
        left: 2,
        bottom: 11,
        right: 22,
    };
    p.fill(r, 0x00ab_cdef).unwrap();
    p.copy_bits(Point { x: 50, y: 60 }, r).unwrap();
    let Command::Draw(f) = w.next_command() else {
        panic!()
    };
    assert_eq!(
        (f.bbox, f.op),
        (
            r,
            DrawOp::Fill {
                color: 0x00ab_cdef,
                rop: SPICE_ROPD_OP_PUT
            }
        )
    );
    let Command::Draw(b) = w.next_command() else {
        panic!()
    };
    assert_eq!(
        (b.bbox, b.op),
        (
            r,
            DrawOp::CopyBits {
                src_pos: Point { x: 50, y: 60 }
            }
        )
    );
}

#[test]
fn cursor_commands_round_trip() {
    let (mut p, c) = new_device(small_config()).unwrap();
    let w = Worker::spawn(c);
    let shape: Vec<u8> = (0..32 * 24 * 4).map(|i| (i * 7) as u8).collect();
    p.cursor_set(&shape, 32, 24, 3, 4, Point { x: 100, y: -5 }, true)
        .unwrap();
    p.cursor_move(Point { x: 7, y: 8 }).unwrap();
    p.cursor_hide().unwrap();
    let CursorCmd::Set {
        position,
        visible,
        shape: s,
    } = w.next_cursor()
    else {
        panic!()
    };
    assert_eq!((position, visible), (Point { x: 100, y: -5 }, true));
    assert_eq!(
        (s.kind, s.width, s.height, s.hot_x, s.hot_y),
        (0, 32, 24, 3, 4)
    );
    assert_eq!(s.data, shape);
    assert_eq!(
        w.next_cursor(),
        CursorCmd::Move {
            position: Point { x: 7, y: 8 }
        }
    );
    assert_eq!(w.next_cursor(), CursorCmd::Hide);
}

#[test]
fn surface_create_is_held_until_destroy() {
    let (mut p, c) = new_device(small_config()).unwrap();
    let w = Worker::spawn(c);
    p.create_surface(5, 16, 8).unwrap();
    let Command::Surface(s) = w.next_command() else {
        panic!()
    };
    assert_eq!(s.surface_id, 5);
    let SurfaceCmdKind::Create(create) = s.kind else {
        panic!()
    };
    assert_eq!(
        (create.format, create.width, create.height, create.initial),
        (SPICE_SURFACE_FMT_32_XRGB, 16, 8, None)
    );
    p.io(IoRequest::FlushRelease).unwrap();
    p.reclaim().unwrap();
    assert_eq!(p.live_allocations(), 1, "the CREATE stays held");
    p.destroy_surface(5).unwrap();
    let Command::Surface(s) = w.next_command() else {
        panic!()
    };
    assert_eq!(s.kind, SurfaceCmdKind::Destroy);
    p.io(IoRequest::FlushRelease).unwrap();
    p.reclaim().unwrap();
    assert_eq!(p.live_allocations(), 0);
}

#[test]
fn everything_is_reclaimed_after_flush() {
    let (mut p, c) = new_device(small_config()).unwrap();
    let w = Worker::spawn(c);
    p.create_primary(32, 32).unwrap();
    for i in 0..100 {
        p.fill(
            Rect {
                top: 0,
                left: 0,
                bottom: 1 + i % 31,
                right: 1,
            },
            i as u32,
        )
        .unwrap();
    }
    for _ in 0..100 {
        w.next_command();
    }
    p.io(IoRequest::FlushRelease).unwrap();
    p.reclaim().unwrap();
    assert_eq!((p.live_allocations(), p.ram_used()), (0, 0));
}

#[test]
fn reset_forgets_allocations_and_rings() {
    let (mut p, c) = new_device(small_config()).unwrap();
    let w = Worker::spawn(c);
    p.create_primary(32, 32).unwrap();
    p.fill(
        Rect {
            top: 0,
            left: 0,
            bottom: 1,
            right: 1,
        },
        1,
    )
    .unwrap();
    w.next_command();
    p.reset().unwrap();
    assert_eq!((p.live_allocations(), p.primary()), (0, None));
    p.create_primary(16, 16).unwrap();
    p.fill(
        Rect {
            top: 0,
            left: 0,
            bottom: 2,
            right: 2,
        },
        2,
    )
    .unwrap();
    let Command::Draw(d) = w.next_command() else {
        panic!()
    };
    assert_eq!(
        d.op,
        DrawOp::Fill {
            color: 2,
            rop: SPICE_ROPD_OP_PUT
        }
    );
}

#[test]
fn producer_rejects_bad_arguments() {
    let (mut p, c) = new_device(small_config()).unwrap();
    let _w = Worker::spawn(c);
    assert!(matches!(
        p.fill(
            Rect {
                top: 0,
                left: 0,
                bottom: 1,
                right: 1
            },
            0
        ),
        Err(QxlError::NoPrimary)
    ));
    p.create_primary(10, 10).unwrap();
    assert!(matches!(
        p.fill(
            Rect {
                top: 0,
                left: 0,
                bottom: 11,
                right: 1
            },
            0
        ),
        Err(QxlError::InvalidRect { .. })
    ));
    assert!(matches!(
        p.fill(
            Rect {
                top: 5,
                left: 0,
                bottom: 5,
                right: 1
            },
            0
        ),
        Err(QxlError::InvalidRect { .. })
    ));
    assert!(matches!(
        p.draw_copy(
            Rect {
                top: 0,
                left: 0,
                bottom: 2,
                right: 2
            },
            &[0; 15],
            8
        ),
        Err(QxlError::PixelsTooShort { need: 16, got: 15 })
    ));
    assert!(p
        .cursor_set(&[0; 4], 1, 1, 1, 0, Point::default(), true)
        .is_err());
    assert_eq!(p.live_allocations(), 0);
}

#[test]
fn io_without_consumer_times_out() {
    let (mut p, _c) = new_device(small_config()).unwrap();
    assert!(matches!(
        p.create_primary(8, 8),
        Err(QxlError::IoTimeout(_))
    ));
}

#[test]
fn create_primary_replaces_an_existing_one() {
    let (mut p, c) = new_device(small_config()).unwrap();
    let w = Worker::spawn(c);
    p.create_primary(8, 8).unwrap();
    p.create_primary(16, 4).unwrap();
    assert!(matches!(io_event(&w), IoRequest::CreatePrimary(_)));
    assert_eq!(io_event(&w), IoRequest::DestroyPrimary);
    let IoRequest::CreatePrimary(s) = io_event(&w) else {
        panic!()
    };
    assert_eq!((s.width, s.height), (16, 4));
}

#[test]
fn other_io_requests_pass_through_and_invalid_ones_are_refused() {
    let (mut p, c) = new_device(small_config()).unwrap();
    let w = Worker::spawn(c);
    let heads = vec![qxl::Head {
        id: 0,
        surface_id: 0,
        width: 800,
        height: 600,
        x: 0,
        y: 0,
    }];
    p.io(IoRequest::MonitorsConfig(heads.clone())).unwrap();
    assert_eq!(io_event(&w), IoRequest::MonitorsConfig(heads));
    let area = Rect {
        top: 0,
        left: 0,
        bottom: 4,
        right: 4,
    };
    p.io(IoRequest::UpdateArea {
        surface_id: 0,
        area,
    })
    .unwrap();
    assert_eq!(
        io_event(&w),
        IoRequest::UpdateArea {
            surface_id: 0,
            area
        }
    );
    let bad = IoRequest::UpdateArea {
        surface_id: 64,
        area,
    };
    assert!(matches!(
        p.io(bad),
        Err(QxlError::Io(qxl::IoError::Rejected(_)))
    ));
    let bad = IoRequest::CreatePrimary(qxl::SurfaceCreate {
        format: 3,
        width: 1,
        height: 1,
        initial: None,
    });
    assert!(matches!(
        p.io(bad),
        Err(QxlError::Io(qxl::IoError::Rejected(_)))
    ));
}
