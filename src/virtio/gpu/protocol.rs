//! virtio-gpu 2D wire format: request decoding and response encoding, nothing else.
//!
//! Layouts are those of `include/uapi/linux/virtio_gpu.h` and the OASIS virtio spec §5.7
//! ("GPU Device"); every field is little-endian. Requests may be split across descriptors in
//! any way, so they are read field by field from an [`io::Read`] (virtio-queue's descriptor
//! chain `Reader` in the backend, a byte slice in tests) and never assumed to sit in one buffer.
//! Decoding never panics; a request that ends early is [`DecodeError::Truncated`].
#![deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)]

use std::io::Read;

/// `virtio_gpu_ctrl_hdr`: 24 bytes in front of every request and response.
pub const CTRL_HDR_SIZE: usize = 24;
/// `virtio_gpu_resp_display_info`: header + 16 × {rect, enabled, flags}.
pub const DISPLAY_INFO_SIZE: usize = 408;
/// `virtio_gpu_resp_edid`: header + size + padding + 1024 bytes of EDID.
pub const EDID_RESPONSE_SIZE: usize = 1056;
/// `VIRTIO_GPU_MAX_SCANOUTS`: the display-info response always has this many entries.
pub const MAX_SCANOUTS: usize = 16;
/// The EDID blob area of `virtio_gpu_resp_edid`.
pub const EDID_BLOB_SIZE: usize = 1024;
/// Upper bound on `nr_entries` of RESOURCE_ATTACH_BACKING, as QEMU's
/// `virtio_gpu_create_mapping_iov` ("nr_entries is too big"): 16384 entries = 256 KiB of
/// entries, 64 MiB of 4 KiB pages, more than any 2D framebuffer Linux allocates.
pub const MAX_MEM_ENTRIES: u32 = 16384;
/// `virtio_gpu_mem_entry`: addr u64, length u32, padding u32.
pub const MEM_ENTRY_SIZE: usize = 16;

/// `VIRTIO_GPU_FLAG_FENCE`: the driver waits for this command's completion.
pub const FLAG_FENCE: u32 = 1 << 0;
/// `VIRTIO_GPU_FLAG_INFO_RING_IDX`: `ring_idx` is valid (CONTEXT_INIT only).
pub const FLAG_INFO_RING_IDX: u32 = 1 << 1;

/// `VIRTIO_GPU_CMD_*` and `VIRTIO_GPU_RESP_*` values (`enum virtio_gpu_ctrl_type`).
pub mod ctrl_type {
    pub const GET_DISPLAY_INFO: u32 = 0x0100;
    pub const RESOURCE_CREATE_2D: u32 = 0x0101;
    pub const RESOURCE_UNREF: u32 = 0x0102;
    pub const SET_SCANOUT: u32 = 0x0103;
    pub const RESOURCE_FLUSH: u32 = 0x0104;
    pub const TRANSFER_TO_HOST_2D: u32 = 0x0105;
    pub const RESOURCE_ATTACH_BACKING: u32 = 0x0106;
    pub const RESOURCE_DETACH_BACKING: u32 = 0x0107;
    pub const GET_EDID: u32 = 0x010a;
    pub const UPDATE_CURSOR: u32 = 0x0300;
    pub const MOVE_CURSOR: u32 = 0x0301;

    pub const RESP_OK_NODATA: u32 = 0x1100;
    pub const RESP_OK_DISPLAY_INFO: u32 = 0x1101;
    pub const RESP_OK_EDID: u32 = 0x1104;
    pub const RESP_ERR_UNSPEC: u32 = 0x1200;
    pub const RESP_ERR_OUT_OF_MEMORY: u32 = 0x1201;
    pub const RESP_ERR_INVALID_SCANOUT_ID: u32 = 0x1202;
    pub const RESP_ERR_INVALID_RESOURCE_ID: u32 = 0x1203;
    pub const RESP_ERR_INVALID_CONTEXT_ID: u32 = 0x1204;
    pub const RESP_ERR_INVALID_PARAMETER: u32 = 0x1205;
}

/// A request that could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The readable part of the chain ended before the named field.
    #[error("Guest request ends before its {what}")]
    Truncated { what: &'static str },
    /// RESOURCE_ATTACH_BACKING with more entries than [`MAX_MEM_ENTRIES`].
    #[error("Guest attach-backing request has {count} entries (limit {MAX_MEM_ENTRIES})")]
    TooManyEntries { count: u32 },
}

/// `virtio_gpu_ctrl_hdr`.
#[doc(alias = "virtio_gpu_ctrl_hdr")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CtrlHdr {
    pub ctrl_type: u32,
    pub flags: u32,
    pub fence_id: u64,
    pub ctx_id: u32,
    pub ring_idx: u8,
}

impl CtrlHdr {
    pub fn decode(r: &mut impl Read) -> Result<Self, DecodeError> {
        let mut w = WireReader(r);
        let hdr = Self {
            ctrl_type: w.u32("header type")?,
            flags: w.u32("header flags")?,
            fence_id: w.u64("header fence_id")?,
            ctx_id: w.u32("header ctx_id")?,
            ring_idx: w.u8("header ring_idx")?,
        };
        w.skip::<3>("header padding")?;
        Ok(hdr)
    }

    /// The header of the response to this request: a fenced request gets its fence back
    /// (flag, id, context and ring), as QEMU's `virtio_gpu_ctrl_response` does.
    pub fn reply(&self, ctrl_type: u32) -> CtrlHdr {
        if self.flags & FLAG_FENCE == 0 {
            return CtrlHdr {
                ctrl_type,
                ..CtrlHdr::default()
            };
        }
        CtrlHdr {
            ctrl_type,
            flags: self.flags & (FLAG_FENCE | FLAG_INFO_RING_IDX),
            fence_id: self.fence_id,
            ctx_id: self.ctx_id,
            ring_idx: self.ring_idx,
        }
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ctrl_type.to_le_bytes());
        out.extend_from_slice(&self.flags.to_le_bytes());
        out.extend_from_slice(&self.fence_id.to_le_bytes());
        out.extend_from_slice(&self.ctx_id.to_le_bytes());
        out.push(self.ring_idx);
        out.extend_from_slice(&[0; 3]);
    }
}

/// `virtio_gpu_rect`.
#[doc(alias = "virtio_gpu_rect")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Rect {
    fn decode(w: &mut WireReader<'_, impl Read>) -> Result<Self, DecodeError> {
        Ok(Self {
            x: w.u32("rect x")?,
            y: w.u32("rect y")?,
            width: w.u32("rect width")?,
            height: w.u32("rect height")?,
        })
    }

    fn encode(&self, out: &mut Vec<u8>) {
        for v in [self.x, self.y, self.width, self.height] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    /// Whether the rectangle lies inside a `width` x `height` area, overflow included (the
    /// checks of QEMU's `virtio_gpu_transfer_to_host_2d`, `_resource_flush`, `_set_scanout`).
    pub fn fits_in(&self, width: u32, height: u32) -> bool {
        let right = self.x.checked_add(self.width);
        let bottom = self.y.checked_add(self.height);
        matches!((right, bottom), (Some(r), Some(b)) if r <= width && b <= height)
    }

    /// The common part of two rectangles, `None` when they do not overlap.
    pub fn intersect(&self, other: &Rect) -> Option<Rect> {
        let x1 = self.x.max(other.x);
        let y1 = self.y.max(other.y);
        let x2 = self
            .x
            .saturating_add(self.width)
            .min(other.x.saturating_add(other.width));
        let y2 = self
            .y
            .saturating_add(self.height)
            .min(other.y.saturating_add(other.height));
        let width = x2.checked_sub(x1).filter(|w| *w > 0)?;
        let height = y2.checked_sub(y1).filter(|h| *h > 0)?;
        Some(Rect {
            x: x1,
            y: y1,
            width,
            height,
        })
    }
}

/// `virtio_gpu_mem_entry`: one guest-physical extent of a resource's backing.
#[doc(alias = "virtio_gpu_mem_entry")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemEntry {
    pub addr: u64,
    pub length: u32,
}

/// `virtio_gpu_cursor_pos`. `x`/`y` are signed: Linux stores the plane's `crtc_x`/`crtc_y`,
/// negative when the cursor hangs off the top or left edge.
#[doc(alias = "virtio_gpu_cursor_pos")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CursorPos {
    pub scanout_id: u32,
    pub x: i32,
    pub y: i32,
}

/// `virtio_gpu_update_cursor` (used by both cursor commands).
#[doc(alias = "virtio_gpu_update_cursor")]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CursorCmd {
    pub pos: CursorPos,
    pub resource_id: u32,
    pub hot_x: u32,
    pub hot_y: u32,
}

/// One decoded command; the body that follows [`CtrlHdr`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    GetDisplayInfo,
    /// `virtio_gpu_resource_create_2d`.
    ResourceCreate2d {
        resource_id: u32,
        format: u32,
        width: u32,
        height: u32,
    },
    /// `virtio_gpu_resource_unref`.
    ResourceUnref {
        resource_id: u32,
    },
    /// `virtio_gpu_set_scanout`.
    SetScanout {
        rect: Rect,
        scanout_id: u32,
        resource_id: u32,
    },
    /// `virtio_gpu_resource_flush`.
    ResourceFlush {
        rect: Rect,
        resource_id: u32,
    },
    /// `virtio_gpu_transfer_to_host_2d`.
    TransferToHost2d {
        rect: Rect,
        offset: u64,
        resource_id: u32,
    },
    /// `virtio_gpu_resource_attach_backing` + its `virtio_gpu_mem_entry` array.
    ResourceAttachBacking {
        resource_id: u32,
        entries: Vec<MemEntry>,
    },
    /// `virtio_gpu_resource_detach_backing`.
    ResourceDetachBacking {
        resource_id: u32,
    },
    /// `virtio_gpu_cmd_get_edid`.
    GetEdid {
        scanout: u32,
    },
    UpdateCursor(CursorCmd),
    MoveCursor(CursorCmd),
    /// A 3D, blob, capset or unknown command: answered with ERR_UNSPEC.
    Unsupported {
        ctrl_type: u32,
    },
}

impl Command {
    /// Decodes the body of a command of type `ctrl_type` (taken from its header).
    pub fn decode(ctrl_type: u32, r: &mut impl Read) -> Result<Self, DecodeError> {
        use self::ctrl_type as t;
        let mut w = WireReader(r);
        let cmd = match ctrl_type {
            t::GET_DISPLAY_INFO => Command::GetDisplayInfo,
            t::RESOURCE_CREATE_2D => Command::ResourceCreate2d {
                resource_id: w.u32("resource_id")?,
                format: w.u32("format")?,
                width: w.u32("width")?,
                height: w.u32("height")?,
            },
            t::RESOURCE_UNREF => {
                let resource_id = w.u32("resource_id")?;
                w.skip::<4>("padding")?;
                Command::ResourceUnref { resource_id }
            }
            t::SET_SCANOUT => Command::SetScanout {
                rect: Rect::decode(&mut w)?,
                scanout_id: w.u32("scanout_id")?,
                resource_id: w.u32("resource_id")?,
            },
            t::RESOURCE_FLUSH => {
                let rect = Rect::decode(&mut w)?;
                let resource_id = w.u32("resource_id")?;
                w.skip::<4>("padding")?;
                Command::ResourceFlush { rect, resource_id }
            }
            t::TRANSFER_TO_HOST_2D => {
                let rect = Rect::decode(&mut w)?;
                let offset = w.u64("offset")?;
                let resource_id = w.u32("resource_id")?;
                w.skip::<4>("padding")?;
                Command::TransferToHost2d {
                    rect,
                    offset,
                    resource_id,
                }
            }
            t::RESOURCE_ATTACH_BACKING => {
                let resource_id = w.u32("resource_id")?;
                let count = w.u32("nr_entries")?;
                if count > MAX_MEM_ENTRIES {
                    return Err(DecodeError::TooManyEntries { count });
                }
                // Grown as entries arrive, so a short chain costs only what it carried.
                let mut entries = Vec::new();
                for _ in 0..count {
                    let addr = w.u64("mem entry addr")?;
                    let length = w.u32("mem entry length")?;
                    w.skip::<4>("mem entry padding")?;
                    entries.push(MemEntry { addr, length });
                }
                Command::ResourceAttachBacking {
                    resource_id,
                    entries,
                }
            }
            t::RESOURCE_DETACH_BACKING => {
                let resource_id = w.u32("resource_id")?;
                w.skip::<4>("padding")?;
                Command::ResourceDetachBacking { resource_id }
            }
            t::GET_EDID => {
                let scanout = w.u32("scanout")?;
                w.skip::<4>("padding")?;
                Command::GetEdid { scanout }
            }
            t::UPDATE_CURSOR | t::MOVE_CURSOR => {
                let pos = CursorPos {
                    scanout_id: w.u32("cursor scanout_id")?,
                    x: w.i32("cursor x")?,
                    y: w.i32("cursor y")?,
                };
                w.skip::<4>("cursor pos padding")?;
                let cursor = CursorCmd {
                    pos,
                    resource_id: w.u32("resource_id")?,
                    hot_x: w.u32("hot_x")?,
                    hot_y: w.u32("hot_y")?,
                };
                w.skip::<4>("padding")?;
                if ctrl_type == t::UPDATE_CURSOR {
                    Command::UpdateCursor(cursor)
                } else {
                    Command::MoveCursor(cursor)
                }
            }
            other => Command::Unsupported { ctrl_type: other },
        };
        Ok(cmd)
    }
}

/// `virtio_gpu_display_one`: one scanout's entry in the display-info response.
#[doc(alias = "virtio_gpu_display_one")]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DisplayOne {
    pub rect: Rect,
    pub enabled: bool,
    pub flags: u32,
}

/// The `VIRTIO_GPU_RESP_ERR_*` answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorResponse {
    Unspec,
    OutOfMemory,
    InvalidScanoutId,
    InvalidResourceId,
    InvalidContextId,
    InvalidParameter,
}

impl ErrorResponse {
    pub fn ctrl_type(self) -> u32 {
        use self::ctrl_type as t;
        match self {
            ErrorResponse::Unspec => t::RESP_ERR_UNSPEC,
            ErrorResponse::OutOfMemory => t::RESP_ERR_OUT_OF_MEMORY,
            ErrorResponse::InvalidScanoutId => t::RESP_ERR_INVALID_SCANOUT_ID,
            ErrorResponse::InvalidResourceId => t::RESP_ERR_INVALID_RESOURCE_ID,
            ErrorResponse::InvalidContextId => t::RESP_ERR_INVALID_CONTEXT_ID,
            ErrorResponse::InvalidParameter => t::RESP_ERR_INVALID_PARAMETER,
        }
    }
}

/// One response to a control-queue command.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    OkNoData,
    /// At most [`MAX_SCANOUTS`] entries; the rest of the 16 are sent as zeroes.
    OkDisplayInfo(Vec<DisplayOne>),
    /// The EDID bytes (at most [`EDID_BLOB_SIZE`]).
    OkEdid(Vec<u8>),
    Err(ErrorResponse),
}

impl Response {
    /// The number of bytes [`Response::encode`] writes, known before the command runs so that
    /// the chain's writable space is checked first.
    pub fn size_for(cmd: &Command) -> usize {
        match cmd {
            Command::GetDisplayInfo => DISPLAY_INFO_SIZE,
            Command::GetEdid { .. } => EDID_RESPONSE_SIZE,
            _ => CTRL_HDR_SIZE,
        }
    }

    fn ctrl_type(&self) -> u32 {
        match self {
            Response::OkNoData => ctrl_type::RESP_OK_NODATA,
            Response::OkDisplayInfo(_) => ctrl_type::RESP_OK_DISPLAY_INFO,
            Response::OkEdid(_) => ctrl_type::RESP_OK_EDID,
            Response::Err(e) => e.ctrl_type(),
        }
    }

    /// Appends the response to `request`'s header `hdr` (fence echoed) to `out`.
    pub fn encode(&self, hdr: &CtrlHdr, out: &mut Vec<u8>) {
        hdr.reply(self.ctrl_type()).encode(out);
        match self {
            Response::OkNoData | Response::Err(_) => {}
            Response::OkDisplayInfo(modes) => {
                let blank = DisplayOne::default();
                for i in 0..MAX_SCANOUTS {
                    let mode = modes.get(i).unwrap_or(&blank);
                    mode.rect.encode(out);
                    out.extend_from_slice(&u32::from(mode.enabled).to_le_bytes());
                    out.extend_from_slice(&mode.flags.to_le_bytes());
                }
            }
            Response::OkEdid(edid) => {
                let blob = edid.get(..EDID_BLOB_SIZE).unwrap_or(edid);
                // `blob` is at most EDID_BLOB_SIZE (1024) bytes, so the conversion holds.
                let size = u32::try_from(blob.len()).unwrap_or(0);
                out.extend_from_slice(&size.to_le_bytes());
                out.extend_from_slice(&[0; 4]);
                out.extend_from_slice(blob);
                out.resize(
                    out.len()
                        .saturating_add(EDID_BLOB_SIZE.saturating_sub(blob.len())),
                    0,
                );
            }
        }
    }
}

/// Little-endian fields off any reader; the only place request bytes are taken.
struct WireReader<'r, R: Read>(&'r mut R);

impl<R: Read> WireReader<'_, R> {
    fn take<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut buf = [0u8; N];
        // Any read failure (the chain ended, or a descriptor could not be read) means the
        // field is not there.
        self.0
            .read_exact(&mut buf)
            .map_err(|_| DecodeError::Truncated { what })?;
        Ok(buf)
    }

    fn skip<const N: usize>(&mut self, what: &'static str) -> Result<(), DecodeError> {
        self.take::<N>(what).map(|_| ())
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        self.take::<1>(what).map(|[b]| b)
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        self.take(what).map(u32::from_le_bytes)
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        self.take(what).map(i32::from_le_bytes)
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        self.take(what).map(u64::from_le_bytes)
    }
}

#[cfg(test)]
#[path = "protocol_tests.rs"]
mod tests;
