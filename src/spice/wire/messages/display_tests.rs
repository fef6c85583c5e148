// Tests index freely: a panic there is a failed test, not a crash.
#![allow(clippy::indexing_slicing)]

use super::test_util::{assert_round_trip, PREFILL};
use super::*;
use crate::spice::wire::{Codec, Framer, HeaderKind, Message, MessageWriter, WireError};

/// Brief §2.7: DRAW_COPY of a 2×2 32-bit top-down bitmap with the mini header, byte for
/// byte what spice-server's marshaller produces.
const WORKED_DRAW_COPY: [u8; 115] = [
    0x30, 0x01, 0x6d, 0x00, 0x00, 0x00, // mini header
    0x00, 0x00, 0x00, 0x00, // surface 0
    0x14, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x16, 0x00, 0x00, 0x00, 0x0c, 0x00, 0x00,
    0x00, // box
    0x00, // clip NONE
    0x39, 0x00, 0x00, 0x00, // src_bitmap -> 57
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00,
    0x00, // src_area
    0x08, 0x00, // OP_PUT
    0x00, // scale
    0x00, // mask flags
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // mask pos
    0x00, 0x00, 0x00, 0x00, // mask bitmap NULL
    0x02, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, // image id
    0x00, // BITMAP
    0x00, // flags
    0x02, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, // 2 x 2
    0x08, // 32BIT
    0x04, // TOP_DOWN
    0x02, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x08, 0x00, 0x00, 0x00, // x, y, stride
    0x00, 0x00, 0x00, 0x00, // palette NULL
    0x00, 0x00, 0xff, 0x00, 0x00, 0xff, 0x00, 0x00, // red, green
    0xff, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0x00, // blue, white
];

/// The body of [`WORKED_DRAW_COPY`], without the mini header.
pub(super) const WORKED_BODY: [u8; 109] = {
    let mut body = [0; 109];
    let mut i = 0;
    while i < 109 {
        body[i] = WORKED_DRAW_COPY[i + 6];
        i += 1;
    }
    body
};

fn worked_draw_copy() -> MsgDisplayDrawCopy {
    MsgDisplayDrawCopy {
        base: DisplayBase {
            surface_id: 0,
            bbox: Rect {
                top: 20,
                left: 10,
                bottom: 22,
                right: 12,
            },
            clip: Clip::None,
        },
        src_bitmap: Image {
            descriptor: ImageDescriptor {
                id: 0x0000_0001_0000_0002,
                flags: ImageFlags::NONE,
                width: 2,
                height: 2,
            },
            data: ImageData::Bitmap(Bitmap {
                format: BitmapFormat::FMT_32BIT,
                flags: BitmapFlags::TOP_DOWN,
                x: 2,
                y: 2,
                stride: 8,
                palette: BitmapPalette::None,
                data: vec![
                    0x00, 0x00, 0xff, 0x00, 0x00, 0xff, 0x00, 0x00, 0xff, 0x00, 0x00, 0x00, 0xff,
                    0xff, 0xff, 0x00,
                ],
            }),
        },
        src_area: Rect {
            top: 0,
            left: 0,
            bottom: 2,
            right: 2,
        },
        rop_descriptor: Ropd::OP_PUT,
        scale_mode: 0,
        mask: QMask::default(),
    }
}

#[test]
fn worked_draw_copy_decodes_field_by_field() {
    let mut framer = Framer::new(HeaderKind::Mini, 1 << 20);
    let (frame, used) = framer.next_frame(&WORKED_DRAW_COPY).unwrap().unwrap();
    assert_eq!(used, WORKED_DRAW_COPY.len());
    assert_eq!(DisplayMsg(frame.msg_type), DisplayMsg::DRAW_COPY);
    let msg = MsgDisplayDrawCopy::read_bytes(frame.body).unwrap();
    assert_eq!(msg, worked_draw_copy());
}

#[test]
fn worked_draw_copy_reencodes_byte_for_byte() {
    let mut out = vec![0xa5; PREFILL];
    MessageWriter::new(HeaderKind::Mini).write(&worked_draw_copy(), &mut out);
    assert_eq!(&out[..PREFILL], &[0xa5; PREFILL]);
    assert_eq!(&out[PREFILL..], &WORKED_DRAW_COPY[..]);
}

#[test]
fn worked_draw_copy_with_full_header_keeps_body_offsets() {
    let mut out = vec![0xa5; PREFILL];
    MessageWriter::new(HeaderKind::Full).write(&worked_draw_copy(), &mut out);
    assert_eq!(
        &out[PREFILL..PREFILL + 18],
        &[1, 0, 0, 0, 0, 0, 0, 0, 0x30, 0x01, 0x6d, 0, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(&out[PREFILL + 18..], &WORKED_DRAW_COPY[6..]);
}

#[test]
fn rejects_pointer_outside_message() {
    let mut body = WORKED_DRAW_COPY[6..].to_vec();
    body[21..25].copy_from_slice(&109u32.to_le_bytes());
    assert!(matches!(
        MsgDisplayDrawCopy::read_bytes(&body),
        Err(WireError::PointerOutOfBounds {
            offset: 109,
            len: 109,
            ..
        })
    ));
}

#[test]
fn rejects_null_source_image() {
    let mut body = WORKED_DRAW_COPY[6..].to_vec();
    body[21..25].copy_from_slice(&[0; 4]);
    assert_eq!(
        MsgDisplayDrawCopy::read_bytes(&body),
        Err(WireError::NullPointer("Copy.src_bitmap"))
    );
}

#[test]
fn rejects_trailing_data_after_pointee() {
    let mut body = WORKED_DRAW_COPY[6..].to_vec();
    body.push(0);
    assert!(matches!(
        MsgDisplayDrawCopy::read_bytes(&body),
        Err(WireError::TrailingData { left: 1, .. })
    ));
}

#[test]
fn rejects_bitmap_shorter_than_stride_times_rows() {
    let body = &WORKED_DRAW_COPY[6..WORKED_DRAW_COPY.len() - 1];
    assert_eq!(
        MsgDisplayDrawCopy::read_bytes(body),
        Err(WireError::MissingData("BitmapData.data"))
    );
}

#[test]
fn rejects_palette_pointer() {
    let mut body = WORKED_DRAW_COPY[6..].to_vec();
    body[89] = 1;
    assert!(matches!(
        MsgDisplayDrawCopy::read_bytes(&body),
        Err(WireError::Unsupported {
            what: "bitmap palette pointer",
            ..
        })
    ));
}

#[test]
fn draw_copy_with_mask_lz4_and_clip_round_trips() {
    let mut msg = worked_draw_copy();
    msg.base.clip = Clip::Rects(vec![Rect {
        top: 1,
        left: 2,
        bottom: 3,
        right: 4,
    }]);
    msg.src_bitmap.data = ImageData::Lz4(Lz4Data {
        top_down: true,
        format: BitmapFormat::FMT_32BIT,
        blocks: vec![vec![1, 2, 3], vec![]],
    });
    msg.mask.bitmap = Some(Image {
        descriptor: ImageDescriptor::default(),
        data: ImageData::FromCache,
    });
    let body = assert_round_trip(&msg);
    // Source pointer: right after the 41-byte clipped base... the fixed part is 21 + 20 + 36.
    assert_eq!(&body[41..45], &77u32.to_le_bytes());
}

#[test]
fn lz4_block_lengths_are_big_endian() {
    let image = Image {
        descriptor: ImageDescriptor {
            id: 9,
            flags: ImageFlags::CACHE_ME,
            width: 1,
            height: 1,
        },
        data: ImageData::Lz4(Lz4Data {
            top_down: true,
            format: BitmapFormat::FMT_32BIT,
            blocks: vec![vec![0xaa, 0xbb]],
        }),
    };
    let bytes = assert_round_trip(&image);
    assert_eq!(bytes[8], 109);
    assert_eq!(&bytes[18..], &[8, 0, 0, 0, 1, 8, 0, 0, 0, 2, 0xaa, 0xbb]);
}

#[test]
fn rejects_lz4_block_past_data_size() {
    let bytes = [
        0, 0, 0, 0, 0, 0, 0, 0, 109, 0, 1, 0, 0, 0, 1, 0, 0, 0, // descriptor
        7, 0, 0, 0, 1, 8, 0, 0, 0, 2, 0xaa, // block claims 2 bytes, 1 present in data_size
    ];
    assert_eq!(
        Image::read_bytes(&bytes),
        Err(WireError::MissingData("LZ4 block"))
    );
}

#[test]
fn other_images_round_trip() {
    for data in [
        ImageData::Jpeg(vec![0xff, 0xd8, 0xff, 0xd9]),
        ImageData::Surface(3),
        ImageData::FromCache,
        ImageData::FromCacheLossless,
        ImageData::Bitmap(Bitmap {
            format: BitmapFormat::FMT_RGBA,
            flags: BitmapFlags::NONE,
            x: 1,
            y: 1,
            stride: 4,
            palette: BitmapPalette::FromCache(77),
            data: vec![1, 2, 3, 4],
        }),
    ] {
        assert_round_trip(&Image {
            descriptor: ImageDescriptor {
                id: 5,
                flags: ImageFlags::CACHE_ME,
                width: 1,
                height: 1,
            },
            data,
        });
    }
}

#[test]
fn draw_fill_solid_is_41_bytes() {
    let msg = MsgDisplayDrawFill {
        base: DisplayBase::default(),
        brush: Brush::Solid(0x00ff_0000),
        rop_descriptor: Ropd::OP_PUT,
        mask: QMask::default(),
    };
    assert_eq!(assert_round_trip(&msg).len(), 41);
    assert_eq!(MsgDisplayDrawFill::TYPE, 302);
}

#[test]
fn rejects_pattern_brush() {
    let mut body = MsgDisplayDrawFill {
        base: DisplayBase::default(),
        brush: Brush::None,
        rop_descriptor: Ropd::OP_PUT,
        mask: QMask::default(),
    }
    .to_bytes();
    body[21] = 2;
    assert!(matches!(
        MsgDisplayDrawFill::read_bytes(&body),
        Err(WireError::Unsupported {
            what: "Brush.type",
            ..
        })
    ));
}

#[test]
fn rejects_clip_count_over_bytes() {
    let mut body = MsgDisplayCopyBits {
        base: DisplayBase::default(),
        src_pos: Point { x: 1, y: 2 },
    }
    .to_bytes();
    body[20] = 1;
    body.splice(21..21, 5u32.to_le_bytes());
    assert_eq!(
        MsgDisplayCopyBits::read_bytes(&body),
        Err(WireError::MissingData("Clip rects"))
    );
}

#[test]
fn simple_display_messages_round_trip() {
    assert_round_trip(&MsgDisplayCopyBits {
        base: DisplayBase::default(),
        src_pos: Point { x: -1, y: 7 },
    });
    let create = MsgDisplaySurfaceCreate {
        surface_id: 0,
        width: 1024,
        height: 768,
        format: SurfaceFormat::FMT_32_XRGB,
        flags: SurfaceFlags::PRIMARY,
    };
    assert_eq!(
        assert_round_trip(&create),
        [0, 0, 0, 0, 0, 4, 0, 0, 0, 3, 0, 0, 32, 0, 0, 0, 1, 0, 0, 0]
    );
    assert_round_trip(&MsgDisplaySurfaceDestroy { surface_id: 2 });
    assert_round_trip(&MsgDisplayMark::default());
    assert_eq!(MsgDisplayMark::TYPE, 102);
    assert_eq!(MsgDisplayReset::TYPE, 103);
    assert_eq!(MsgDisplayInvalAllPalettes::TYPE, 108);
    assert_round_trip(&MsgDisplayInvalList {
        resources: vec![ResourceId {
            resource_type: ResourceId::PIXMAP,
            id: 42,
        }],
    });
    assert_round_trip(&MsgDisplayInvalAllPixmaps {
        wait_list: WaitList(vec![WaitForChannel {
            channel_type: crate::spice::wire::ChannelType::DISPLAY,
            channel_id: 0,
            message_serial: 99,
        }]),
    });
}

#[test]
fn monitors_config_layout() {
    let msg = MsgDisplayMonitorsConfig {
        max_allowed: 1,
        heads: vec![Head {
            width: 800,
            height: 600,
            ..Head::default()
        }],
    };
    let body = assert_round_trip(&msg);
    assert_eq!(body.len(), 4 + 28);
    assert_eq!(&body[..4], &[1, 0, 1, 0]);
}

#[test]
fn rejects_monitors_over_limit() {
    let mut body = vec![0xff, 0xff, 1, 0];
    body.resize(4 + 28 * 0xffff, 0);
    assert!(matches!(
        MsgDisplayMonitorsConfig::read_bytes(&body),
        Err(WireError::TooMany { count: 0xffff, .. })
    ));
}

#[test]
fn display_client_messages_decode() {
    let init = MsgcDisplayInit {
        pixmap_cache_id: 1,
        pixmap_cache_size: 20_971_520,
        glz_dictionary_id: 1,
        glz_dictionary_window_size: 3_145_728,
    };
    let body = assert_round_trip(&init);
    assert_eq!(body.len(), 14);
    assert_eq!(
        DisplayClientMsg::decode(DisplayMsgc::INIT.0, &body),
        Ok(DisplayClientMsg::Init(init))
    );
    let report = MsgcDisplayStreamReport {
        stream_id: 1,
        unique_id: 2,
        start_frame_mm_time: 3,
        end_frame_mm_time: 4,
        num_frames: 0,
        num_drops: u32::MAX,
        last_frame_delay: -5,
        audio_delay: 6,
    };
    assert_eq!(assert_round_trip(&report).len(), 32);
    assert_round_trip(&MsgcDisplayPreferredCompression {
        image_compression: ImageCompression::LZ4,
    });
    let codecs = MsgcDisplayPreferredVideoCodecType { codecs: &[1, 2] };
    let bytes = codecs.to_bytes();
    assert_eq!(bytes, [2, 1, 2]);
    assert_eq!(
        DisplayClientMsg::decode(105, &bytes),
        Ok(DisplayClientMsg::PreferredVideoCodecType(codecs))
    );
    assert_eq!(
        DisplayClientMsg::decode(2, &[]),
        Ok(DisplayClientMsg::Base(BaseClientMsg::Ack(
            MsgcAck::default()
        )))
    );
    assert_eq!(
        DisplayClientMsg::decode(999, &[1]),
        Ok(DisplayClientMsg::Unknown(999))
    );
    assert!(matches!(
        DisplayClientMsg::decode(101, &body[..13]),
        Err(WireError::MissingData(_))
    ));
    assert!(matches!(
        DisplayClientMsg::decode(1, &[0; 5]),
        Err(WireError::TrailingData { left: 1, .. })
    ));
}
