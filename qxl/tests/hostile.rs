//! The consumer facing a hostile producer: hand-built malformed structures, one `rejects_*`
//! test per check, plus the normalisations (bottom-up rows, chunked data, palettes).

use qxl::abi::*;
use qxl::memslot::{QxlPhys, RAM_SLOT};
use qxl::parse::{MAX_CLIP_RECTS, MAX_IMAGE_BYTES};
use qxl::{
    new_device, AddrError, Allocation, Clip, Command, Consumer, CursorCmd, DeviceConfig, DrawOp,
    Image, ParseError, Producer, Rect, SurfaceCmdKind,
};
use zerocopy::little_endian::{I32, U16, U32, U64};
use zerocopy::{FromZeros, IntoBytes};

fn device() -> (Producer, Consumer) {
    new_device(DeviceConfig {
        ram_size: 1 << 20,
        vram_size: 1 << 18,
        n_surfaces: 16,
    })
    .unwrap()
}

/// Allocates and fills a block; returns it.
fn put(p: &mut Producer, bytes: &[u8]) -> Allocation {
    let a = p.alloc(bytes.len().max(8)).unwrap();
    p.write(&a, 0, bytes).unwrap();
    a
}

fn push(p: &mut Producer, ty: u32, data: u64) {
    p.push_command(QxlCommand {
        data: U64::new(data),
        ty: U32::new(ty),
        padding: U32::new(0),
    })
    .unwrap();
}

fn rect(top: i32, left: i32, bottom: i32, right: i32) -> QxlRect {
    QxlRect {
        top: I32::new(top),
        left: I32::new(left),
        bottom: I32::new(bottom),
        right: I32::new(right),
    }
}

/// A DRAW_COPY drawable (release id written by `push_drawable`) whose image is at `image`.
fn copy_drawable(image: u64, w: i32, h: i32) -> QxlDrawable {
    let mut d = QxlDrawable::new_zeroed();
    d.ty = QXL_DRAW_COPY;
    d.bbox = rect(0, 0, h, w);
    let copy = QxlCopy {
        src_bitmap: U64::new(image),
        src_area: rect(0, 0, h, w),
        ..Default::default()
    };
    d.u[..44].copy_from_slice(copy.as_bytes());
    d
}

fn push_drawable(p: &mut Producer, mut d: QxlDrawable) -> Allocation {
    let a = p.alloc(191).unwrap();
    d.release_info = U64::new(a.id);
    p.write(&a, 0, d.as_bytes()).unwrap();
    push(p, QXL_CMD_DRAW, a.phys.0);
    a
}

fn bitmap_image(
    format: u8,
    flags: u8,
    w: u32,
    h: u32,
    stride: u32,
    data: u64,
    palette: u64,
) -> QxlImage {
    let mut img = QxlImage::new_zeroed();
    img.descriptor.ty = SPICE_IMAGE_TYPE_BITMAP;
    img.bitmap = QxlBitmap {
        format,
        flags,
        x: U32::new(w),
        y: U32::new(h),
        stride: U32::new(stride),
        palette: U64::new(palette),
        data: U64::new(data),
    };
    img
}

fn chunk(size: u32, next: u64) -> Vec<u8> {
    QxlDataChunk {
        data_size: U32::new(size),
        prev_chunk: U64::new(0),
        next_chunk: U64::new(next),
    }
    .as_bytes()
    .to_vec()
}

fn pop_err(c: &mut Consumer) -> ParseError {
    c.pop_command().expect("a command").expect_err("rejected")
}

fn pop_bitmap(c: &mut Consumer) -> qxl::Bitmap {
    match c.pop_command().expect("a command").expect("parses") {
        Command::Draw(d) => match d.op {
            DrawOp::Copy {
                src: Image::Bitmap(b),
                ..
            } => b,
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
}

#[test]
fn bottom_up_bitmap_is_normalised_to_top_down() {
    let (mut p, mut c) = device();
    let rows: Vec<u8> = (0..3u8).flat_map(|r| [r; 8]).collect(); // 2 px × 3 rows, stride 8
    let data = put(&mut p, &rows);
    let img = put(
        &mut p,
        bitmap_image(
            SPICE_BITMAP_FMT_32BIT,
            QXL_BITMAP_DIRECT,
            2,
            3,
            8,
            data.phys.0,
            0,
        )
        .as_bytes(),
    );
    push_drawable(&mut p, copy_drawable(img.phys.0, 2, 3));
    let b = pop_bitmap(&mut c);
    assert_eq!(b.data, [[2u8; 8], [1; 8], [0; 8]].concat());
}

#[test]
fn padded_top_down_bitmap_drops_the_padding() {
    let (mut p, mut c) = device();
    // 1 px × 3 rows of 4 bytes, stride 6: each row is followed by two padding bytes.
    let rows: Vec<u8> = (1..=3u8).flat_map(|r| [r, r, r, r, 0xee, 0xee]).collect();
    let data = put(&mut p, &rows);
    let img = put(
        &mut p,
        bitmap_image(
            SPICE_BITMAP_FMT_32BIT,
            QXL_BITMAP_DIRECT | QXL_BITMAP_TOP_DOWN,
            1,
            3,
            6,
            data.phys.0,
            0,
        )
        .as_bytes(),
    );
    push_drawable(&mut p, copy_drawable(img.phys.0, 1, 3));
    assert_eq!(pop_bitmap(&mut c).data, [[1u8; 4], [2; 4], [3; 4]].concat());
}

#[test]
fn chunked_bottom_up_padded_bitmap_is_gathered_and_turned_over() {
    let (mut p, mut c) = device();
    // 8BIT_A, 2 px × 2 rows, stride 3, bottom-up: the last row first, across two chunks.
    let second = put(&mut p, &[chunk(3, 0), vec![1, 2, 0xee]].concat());
    let first = put(
        &mut p,
        &[chunk(3, second.phys.0), vec![3, 4, 0xee]].concat(),
    );
    let img = put(
        &mut p,
        bitmap_image(SPICE_BITMAP_FMT_8BIT_A, 0, 2, 2, 3, first.phys.0, 0).as_bytes(),
    );
    push_drawable(&mut p, copy_drawable(img.phys.0, 2, 2));
    assert_eq!(pop_bitmap(&mut c).data, [1, 2, 3, 4]);
}

#[test]
fn chunked_bitmap_is_gathered_across_chunks() {
    let (mut p, mut c) = device();
    let second = put(&mut p, &[chunk(6, 0), vec![4, 5, 6, 7, 8, 9]].concat());
    let first = put(&mut p, &[chunk(2, second.phys.0), vec![2, 3]].concat());
    // 8BIT_A, 4 px × 2 rows, stride 4: 8 bytes in two chunks.
    let img = put(
        &mut p,
        bitmap_image(
            SPICE_BITMAP_FMT_8BIT_A,
            QXL_BITMAP_TOP_DOWN,
            4,
            2,
            4,
            first.phys.0,
            0,
        )
        .as_bytes(),
    );
    push_drawable(&mut p, copy_drawable(img.phys.0, 4, 2));
    assert_eq!(pop_bitmap(&mut c).data, [2, 3, 4, 5, 6, 7, 8, 9]);
}

#[test]
fn palette_bitmap_carries_its_palette() {
    let (mut p, mut c) = device();
    let pal = QxlPalette {
        unique: U64::new(9),
        num_ents: U16::new(2),
    };
    let pal = put(
        &mut p,
        &[
            pal.as_bytes(),
            &0x11u32.to_le_bytes(),
            &0x22u32.to_le_bytes(),
        ]
        .concat(),
    );
    let data = put(&mut p, &[0, 1, 1, 0]);
    let flags = QXL_BITMAP_DIRECT | QXL_BITMAP_TOP_DOWN;
    let img = put(
        &mut p,
        bitmap_image(
            SPICE_BITMAP_FMT_8BIT,
            flags,
            4,
            1,
            4,
            data.phys.0,
            pal.phys.0,
        )
        .as_bytes(),
    );
    push_drawable(&mut p, copy_drawable(img.phys.0, 4, 1));
    assert_eq!(pop_bitmap(&mut c).palette, Some(vec![0x11, 0x22]));
}

#[test]
fn rejects_palette_over_256_entries() {
    let (mut p, mut c) = device();
    let pal = put(
        &mut p,
        QxlPalette {
            unique: U64::new(1),
            num_ents: U16::new(257),
        }
        .as_bytes(),
    );
    let data = put(&mut p, &[0; 4]);
    let img = put(
        &mut p,
        bitmap_image(
            SPICE_BITMAP_FMT_8BIT,
            QXL_BITMAP_DIRECT,
            4,
            1,
            4,
            data.phys.0,
            pal.phys.0,
        )
        .as_bytes(),
    );
    push_drawable(&mut p, copy_drawable(img.phys.0, 4, 1));
    assert_eq!(pop_err(&mut c), ParseError::PaletteTooLarge(257));
}

#[test]
fn rejects_chunk_chain_loop() {
    let (mut p, mut c) = device();
    let a = p.alloc(64).unwrap();
    p.write(&a, 0, &chunk(0, a.phys.0)).unwrap(); // an empty chunk pointing at itself
    let img = put(
        &mut p,
        bitmap_image(SPICE_BITMAP_FMT_32BIT, 0, 1, 1, 4, a.phys.0, 0).as_bytes(),
    );
    push_drawable(&mut p, copy_drawable(img.phys.0, 1, 1));
    assert!(matches!(
        pop_err(&mut c),
        ParseError::ChunkChainTooLong { .. }
    ));
}

#[test]
fn rejects_chunk_chain_holding_more_than_declared() {
    let (mut p, mut c) = device();
    let a = p.alloc(64).unwrap();
    p.write(&a, 0, &[chunk(4, a.phys.0), vec![1; 4]].concat())
        .unwrap(); // 4 bytes, looping
    let img = put(
        &mut p,
        bitmap_image(SPICE_BITMAP_FMT_32BIT, 0, 4, 4, 16, a.phys.0, 0).as_bytes(),
    );
    push_drawable(&mut p, copy_drawable(img.phys.0, 4, 4));
    assert!(matches!(
        pop_err(&mut c),
        ParseError::ChunkSizeMismatch { expected: 64, .. }
    ));
}

#[test]
fn rejects_bitmap_data_outside_slot() {
    let (mut p, mut c) = device();
    let usable = p.layout().ram_usable;
    let near_end = QxlPhys::new(RAM_SLOT, 0, (usable - 8) as u64).unwrap();
    let img = put(
        &mut p,
        bitmap_image(
            SPICE_BITMAP_FMT_32BIT,
            QXL_BITMAP_DIRECT,
            4,
            1,
            16,
            near_end.0,
            0,
        )
        .as_bytes(),
    );
    push_drawable(&mut p, copy_drawable(img.phys.0, 4, 1));
    assert!(matches!(
        pop_err(&mut c),
        ParseError::Addr(AddrError::AddressOutsideSlot { len: 16, .. })
    ));
}

#[test]
fn rejects_oversized_bitmap() {
    let (mut p, mut c) = device();
    let data = put(&mut p, &[0; 8]);
    let img = put(
        &mut p,
        bitmap_image(
            SPICE_BITMAP_FMT_32BIT,
            QXL_BITMAP_DIRECT,
            8192,
            4097,
            32768,
            data.phys.0,
            0,
        )
        .as_bytes(),
    );
    push_drawable(&mut p, copy_drawable(img.phys.0, 1, 1));
    assert!(matches!(
        pop_err(&mut c),
        ParseError::DataTooLarge {
            limit: MAX_IMAGE_BYTES,
            ..
        }
    ));
}

#[test]
fn rejects_stride_shorter_than_a_row() {
    let (mut p, mut c) = device();
    let data = put(&mut p, &[0; 64]);
    let img = put(
        &mut p,
        bitmap_image(
            SPICE_BITMAP_FMT_32BIT,
            QXL_BITMAP_DIRECT,
            4,
            2,
            15,
            data.phys.0,
            0,
        )
        .as_bytes(),
    );
    push_drawable(&mut p, copy_drawable(img.phys.0, 4, 2));
    assert!(matches!(
        pop_err(&mut c),
        ParseError::InvalidBitmapGeometry { stride: 15, .. }
    ));
}

#[test]
fn rejects_unsupported_image_type_and_still_releases_it() {
    let (mut p, mut c) = device();
    let mut img = QxlImage::new_zeroed();
    img.descriptor.ty = 1; // QUIC
    let img = put(&mut p, img.as_bytes());
    push_drawable(&mut p, copy_drawable(img.phys.0, 1, 1));
    assert_eq!(pop_err(&mut c), ParseError::UnsupportedImageType(1));
    c.flush_release();
    p.reclaim().unwrap();
    assert_eq!(
        p.live_allocations(),
        1,
        "only the image block (not a command) is left"
    );
    p.free_unpushed(&img);
    assert_eq!(p.live_allocations(), 0);
}

#[test]
fn clip_rects_are_read_across_chunks() {
    let (mut p, mut c) = device();
    let second = put(
        &mut p,
        &[chunk(16, 0), rect(5, 6, 7, 8).as_bytes().to_vec()].concat(),
    );
    let clip = QxlClipRects {
        num_rects: U32::new(2),
        chunk: QxlDataChunk {
            data_size: U32::new(16),
            prev_chunk: U64::new(0),
            next_chunk: U64::new(second.phys.0),
        },
    };
    let clip = put(
        &mut p,
        &[clip.as_bytes(), rect(1, 2, 3, 4).as_bytes()].concat(),
    );
    let mut d = QxlDrawable::new_zeroed();
    d.ty = QXL_DRAW_NOP;
    d.clip = QxlClip {
        ty: U32::new(SPICE_CLIP_TYPE_RECTS),
        data: U64::new(clip.phys.0),
    };
    push_drawable(&mut p, d);
    let Some(Ok(Command::Draw(d))) = c.pop_command() else {
        panic!()
    };
    let r = |top, left, bottom, right| Rect {
        top,
        left,
        bottom,
        right,
    };
    assert_eq!(d.clip, Clip::Rects(vec![r(1, 2, 3, 4), r(5, 6, 7, 8)]));
    assert_eq!(
        d.op,
        DrawOp::Other {
            draw_type: QXL_DRAW_NOP
        }
    );
}

#[test]
fn rejects_too_many_clip_rects() {
    let (mut p, mut c) = device();
    let clip = put(
        &mut p,
        QxlClipRects {
            num_rects: U32::new(MAX_CLIP_RECTS + 1),
            ..Default::default()
        }
        .as_bytes(),
    );
    let mut d = QxlDrawable::new_zeroed();
    d.clip = QxlClip {
        ty: U32::new(SPICE_CLIP_TYPE_RECTS),
        data: U64::new(clip.phys.0),
    };
    push_drawable(&mut p, d);
    assert_eq!(
        pop_err(&mut c),
        ParseError::TooManyClipRects(MAX_CLIP_RECTS + 1)
    );
}

#[test]
fn rejects_inverted_bbox_and_bad_surface_id() {
    let (mut p, mut c) = device();
    let mut d = QxlDrawable::new_zeroed();
    d.bbox = rect(5, 0, 4, 1);
    push_drawable(&mut p, d);
    assert!(matches!(pop_err(&mut c), ParseError::InvalidRect { .. }));
    let mut d = QxlDrawable::new_zeroed();
    d.surface_id = U32::new(16);
    push_drawable(&mut p, d);
    assert_eq!(pop_err(&mut c), ParseError::SurfaceIdOutOfRange(16));
}

fn surface_cmd(
    id: u32,
    ty: u8,
    flags: u32,
    w: u32,
    h: u32,
    stride: i32,
    data: u64,
) -> QxlSurfaceCmd {
    let mut s = QxlSurfaceCmd::new_zeroed();
    s.surface_id = U32::new(id);
    s.ty = ty;
    s.flags = U32::new(flags);
    s.surface = QxlSurface {
        format: U32::new(SPICE_SURFACE_FMT_32_XRGB),
        width: U32::new(w),
        height: U32::new(h),
        stride: I32::new(stride),
        data: U64::new(data),
    };
    s
}

fn push_surface(p: &mut Producer, mut s: QxlSurfaceCmd) {
    let a = p.alloc(41).unwrap();
    s.release_info = U64::new(a.id);
    p.write(&a, 0, s.as_bytes()).unwrap();
    push(p, QXL_CMD_SURFACE, a.phys.0);
}

#[test]
fn keep_data_surface_with_negative_stride_arrives_top_down() {
    let (mut p, mut c) = device();
    // 1 px wide, 3 rows, stride −4: memory holds the bottom row first.
    let data = put(&mut p, &[[3u8; 4], [2; 4], [1; 4]].concat());
    push_surface(
        &mut p,
        surface_cmd(
            2,
            QXL_SURFACE_CMD_CREATE,
            QXL_SURF_FLAG_KEEP_DATA,
            1,
            3,
            -4,
            data.phys.0,
        ),
    );
    let Some(Ok(Command::Surface(s))) = c.pop_command() else {
        panic!()
    };
    let SurfaceCmdKind::Create(create) = s.kind else {
        panic!()
    };
    assert_eq!(create.initial, Some([[1u8; 4], [2; 4], [3; 4]].concat()));
}

#[test]
fn rejects_bad_surface_geometry() {
    let (mut p, mut c) = device();
    push_surface(
        &mut p,
        surface_cmd(1, QXL_SURFACE_CMD_CREATE, 0, 10, 10, 38, 0),
    );
    assert!(matches!(
        pop_err(&mut c),
        ParseError::InvalidSurfaceGeometry { .. }
    ));
    push_surface(
        &mut p,
        surface_cmd(1, QXL_SURFACE_CMD_CREATE, 0, 20000, 1, 80000, 0),
    );
    assert!(matches!(
        pop_err(&mut c),
        ParseError::InvalidSurfaceGeometry { .. }
    ));
    push_surface(&mut p, surface_cmd(1, 7, 0, 1, 1, 4, 0));
    assert_eq!(pop_err(&mut c), ParseError::UnknownSurfaceCmdType(7));
}

#[test]
fn rejects_cursor_with_wrong_alpha_size_and_wrong_ring_type() {
    let (mut p, mut c) = device();
    let mut cur = QxlCursor::new_zeroed();
    cur.header.width = U16::new(2);
    cur.header.height = U16::new(2);
    cur.data_size = U32::new(15);
    let shape = put(&mut p, cur.as_bytes());
    let mut cmd = QxlCursorCmd::new_zeroed();
    cmd.ty = QXL_CURSOR_SET;
    let set = QxlCursorSet {
        shape: U64::new(shape.phys.0),
        ..Default::default()
    };
    cmd.u.copy_from_slice(set.as_bytes());
    let a = put(&mut p, cmd.as_bytes());
    let push_cursor = |p: &mut Producer, ty, data| {
        p.push_cursor(QxlCommand {
            data: U64::new(data),
            ty: U32::new(ty),
            padding: U32::new(0),
        })
        .unwrap()
    };
    push_cursor(&mut p, QXL_CMD_CURSOR, a.phys.0);
    push_cursor(&mut p, QXL_CMD_DRAW, a.phys.0);
    assert!(matches!(
        c.pop_cursor(),
        Some(Err(ParseError::InvalidCursorGeometry { data_size: 15, .. }))
    ));
    assert_eq!(
        c.pop_cursor(),
        Some(Err(ParseError::UnexpectedCommandType(QXL_CMD_DRAW)))
    );
    assert_eq!(c.pop_cursor(), None::<Result<CursorCmd, _>>);
}

#[test]
fn corrupt_ring_index_stops_the_ring_until_reset() {
    let (mut p, mut c) = device();
    let prod_at = p.layout().cmd_ring() + RING_PROD_OFFSET;
    p.write_region(prod_at, &100u32.to_le_bytes()).unwrap();
    assert!(matches!(
        c.pop_command(),
        Some(Err(ParseError::RingIndexInvalid {
            prod: 100,
            cons: 0,
            ..
        }))
    ));
    assert_eq!(c.pop_command(), None);
    std::thread::scope(|s| {
        s.spawn(|| loop {
            c.wait(std::time::Duration::from_millis(10));
            if let Some(call) = c.take_io() {
                call.complete(Ok(()));
                return;
            }
        });
        p.reset().unwrap();
    });
    push(&mut p, QXL_CMD_NOP, 0);
    assert_eq!(c.pop_command(), Some(Ok(Command::Nop)));
}

#[test]
fn rejects_unknown_command_type() {
    let (mut p, mut c) = device();
    push(&mut p, 77, 0);
    assert_eq!(pop_err(&mut c), ParseError::UnexpectedCommandType(77));
}

#[test]
fn rejects_address_in_inactive_slot() {
    let (mut p, mut c) = device();
    push(&mut p, QXL_CMD_DRAW, QxlPhys::new(5, 0, 0).unwrap().0);
    assert!(matches!(
        pop_err(&mut c),
        ParseError::Addr(AddrError::SlotInvalid { slot: 5, .. })
    ));
}
