//! Wire tests: every command decodes field by field, however the chain splits it.
// Tests may index: a panic there is a failed test, not a guest-triggered crash.
#![allow(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::io::Read;

use super::*;
use crate::virtio::gpu::testutil::{self as req, fenced, rect};

/// A reader that hands out at most `step` bytes per call, like a chain of tiny descriptors.
struct Dribble<'a> {
    data: &'a [u8],
    step: usize,
}

impl Read for Dribble<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.step).min(self.data.len());
        let (head, tail) = self.data.split_at(n);
        buf[..n].copy_from_slice(head);
        self.data = tail;
        Ok(n)
    }
}

fn decode(bytes: &[u8]) -> Result<(CtrlHdr, Command), DecodeError> {
    let mut r = Dribble {
        data: bytes,
        step: 3,
    };
    let hdr = CtrlHdr::decode(&mut r)?;
    let cmd = Command::decode(hdr.ctrl_type, &mut r)?;
    Ok((hdr, cmd))
}

#[test]
fn header_decodes_and_fenced_reply_echoes_it() {
    let (hdr, _) = decode(&fenced(req::display_info(), 0x1122_3344_5566_7788)).unwrap();
    assert_eq!(hdr.ctrl_type, ctrl_type::GET_DISPLAY_INFO);
    assert_eq!(hdr.flags, FLAG_FENCE);
    assert_eq!(hdr.fence_id, 0x1122_3344_5566_7788);
    assert_eq!(hdr.ctx_id, 3);
    let reply = hdr.reply(ctrl_type::RESP_OK_NODATA);
    assert_eq!(
        (reply.flags, reply.fence_id, reply.ctx_id),
        (FLAG_FENCE, hdr.fence_id, 3)
    );
    // Without FENCE nothing is echoed.
    let plain = CtrlHdr {
        fence_id: 9,
        ctx_id: 9,
        ..CtrlHdr::default()
    };
    assert_eq!(
        plain.reply(1),
        CtrlHdr {
            ctrl_type: 1,
            ..CtrlHdr::default()
        }
    );
}

#[test]
fn every_2d_command_decodes() {
    let r = rect(1, 2, 3, 4);
    let (mut attach, entries) = req::attach(5, &[(0x1000, 4096), (0x9000, 100)]);
    attach.extend_from_slice(&entries);
    let cases = [
        (req::display_info(), Command::GetDisplayInfo),
        (
            req::create_2d(5, 2, 640, 480),
            Command::ResourceCreate2d {
                resource_id: 5,
                format: 2,
                width: 640,
                height: 480,
            },
        ),
        (req::unref(5), Command::ResourceUnref { resource_id: 5 }),
        (
            req::set_scanout(1, 5, r),
            Command::SetScanout {
                rect: r,
                scanout_id: 1,
                resource_id: 5,
            },
        ),
        (
            req::flush(5, r),
            Command::ResourceFlush {
                rect: r,
                resource_id: 5,
            },
        ),
        (
            req::transfer(5, r, 1 << 40),
            Command::TransferToHost2d {
                rect: r,
                offset: 1 << 40,
                resource_id: 5,
            },
        ),
        (
            attach,
            Command::ResourceAttachBacking {
                resource_id: 5,
                entries: vec![
                    MemEntry {
                        addr: 0x1000,
                        length: 4096,
                    },
                    MemEntry {
                        addr: 0x9000,
                        length: 100,
                    },
                ],
            },
        ),
        (
            req::detach(5),
            Command::ResourceDetachBacking { resource_id: 5 },
        ),
        (req::get_edid(2), Command::GetEdid { scanout: 2 }),
    ];
    for (bytes, want) in cases {
        assert_eq!(decode(&bytes).unwrap().1, want);
        // Every byte is needed: one short is truncated.
        assert!(
            matches!(
                decode(&bytes[..bytes.len() - 1]),
                Err(DecodeError::Truncated { .. })
            ),
            "{want:?}"
        );
    }
}

#[test]
fn cursor_commands_decode_signed_positions() {
    let bytes = req::cursor(ctrl_type::UPDATE_CURSOR, 0, -10, 20, 7, (3, 4));
    assert_eq!(bytes.len(), 56);
    let want = CursorCmd {
        pos: CursorPos {
            scanout_id: 0,
            x: -10,
            y: 20,
        },
        resource_id: 7,
        hot_x: 3,
        hot_y: 4,
    };
    assert_eq!(decode(&bytes).unwrap().1, Command::UpdateCursor(want));
    let bytes = req::cursor(ctrl_type::MOVE_CURSOR, 0, -10, 20, 7, (3, 4));
    assert_eq!(decode(&bytes).unwrap().1, Command::MoveCursor(want));
}

#[test]
fn unknown_types_decode_as_unsupported() {
    for ty in [0, 0x0108, 0x0200, 0x020a, 0x1100, u32::MAX] {
        assert_eq!(
            decode(&req::hdr(ty)).unwrap().1,
            Command::Unsupported { ctrl_type: ty }
        );
    }
}

#[test]
fn rejects_too_many_entries() {
    let (mut bytes, _) = req::attach(1, &[]);
    bytes[28..32].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(
        decode(&bytes),
        Err(DecodeError::TooManyEntries { count: u32::MAX })
    );
}

#[test]
fn rejects_truncated_header() {
    assert_eq!(
        decode(&[0; 23]),
        Err(DecodeError::Truncated {
            what: "header padding"
        })
    );
    assert_eq!(
        decode(&[]),
        Err(DecodeError::Truncated {
            what: "header type"
        })
    );
}

#[test]
fn responses_have_their_wire_sizes() {
    let hdr = CtrlHdr::default();
    let mut out = vec![0xa5; 3];
    Response::OkNoData.encode(&hdr, &mut out);
    assert_eq!(out.len(), 3 + CTRL_HDR_SIZE);
    assert_eq!(&out[3..7], &ctrl_type::RESP_OK_NODATA.to_le_bytes());
    assert!(out[7..].iter().all(|b| *b == 0));

    let one = DisplayOne {
        rect: rect(0, 0, 1280, 800),
        enabled: true,
        flags: 0,
    };
    let mut out = Vec::new();
    Response::OkDisplayInfo(vec![one]).encode(&hdr, &mut out);
    assert_eq!(out.len(), DISPLAY_INFO_SIZE);
    let words: Vec<u32> = out[24..48]
        .chunks(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(words, vec![0, 0, 1280, 800, 1, 0]);
    assert!(out[48..].iter().all(|b| *b == 0));

    let mut out = Vec::new();
    Response::OkEdid(vec![7; 128]).encode(&hdr, &mut out);
    assert_eq!(out.len(), EDID_RESPONSE_SIZE);
    assert_eq!(&out[24..28], &128u32.to_le_bytes());
    assert_eq!(&out[32..160], &[7; 128][..]);
    assert!(out[160..].iter().all(|b| *b == 0));

    let mut out = Vec::new();
    Response::Err(ErrorResponse::InvalidScanoutId).encode(&hdr, &mut out);
    assert_eq!(out.len(), CTRL_HDR_SIZE);
    assert_eq!(
        &out[..4],
        &ctrl_type::RESP_ERR_INVALID_SCANOUT_ID.to_le_bytes()
    );
}

#[test]
fn rects_check_overflow_and_intersect() {
    assert!(rect(0, 0, 10, 10).fits_in(10, 10));
    assert!(!rect(1, 0, 10, 10).fits_in(10, 10));
    assert!(!rect(u32::MAX, 0, 1, 1).fits_in(u32::MAX, 1));
    assert!(rect(0, 0, 0, 0).fits_in(0, 0));
    assert_eq!(
        rect(0, 0, 10, 10).intersect(&rect(5, 5, 10, 10)),
        Some(rect(5, 5, 5, 5))
    );
    assert_eq!(rect(0, 0, 5, 5).intersect(&rect(5, 0, 5, 5)), None);
    assert_eq!(
        rect(u32::MAX - 1, 0, 10, 1).intersect(&rect(0, 0, u32::MAX, 1)),
        Some(rect(u32::MAX - 1, 0, 1, 1))
    );
}
