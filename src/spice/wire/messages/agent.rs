//! VD agent payloads carried in MAIN AGENT_DATA (spice-protocol vd_agent.h), enough to play
//! the guest agent for client-driven resizing (brief §3.1, "Agent").
//!
//! These are not SPICE messages: the channel reassembles the `VDAgentMessage` stream from
//! AGENT_DATA chunks, then decodes the header and the payload with these `Codec`s. The
//! 8-byte `VDIChunkHeader` of the guest link never appears on the SPICE socket.

use crate::spice::wire::codec::{len_u32, Codec, PutLe, Reader, WireError};
use crate::spice::wire::enums::wire_enum;
use crate::spice::wire::link::MAX_CAP_WORDS;

/// vd_agent.h: `VD_AGENT_PROTOCOL`.
pub const VD_AGENT_PROTOCOL: u32 = 1;
/// vd_agent.h: `VD_AGENT_MAX_DATA_SIZE`: the largest AGENT_DATA message, header included.
pub const VD_AGENT_MAX_DATA_SIZE: usize = 2048;
/// Monitors a client may describe. spice-gtk sends at most 16 (its `MAX_DISPLAY`, all slots
/// with SPARSE_MONITORS_CONFIG); 64 leaves room and bounds the allocation.
pub const MAX_AGENT_MONITORS: usize = 64;

wire_enum! {
    /// vd_agent.h: `VD_AGENT_*` message types (u32).
    pub struct VdAgentMessageType(u32) {
        /// Mouse state (guest-bound, unused by us).
        MOUSE_STATE = 1,
        /// The client's wanted monitor layout.
        MONITORS_CONFIG = 2,
        /// Answer to a request.
        REPLY = 3,
        /// Clipboard data.
        CLIPBOARD = 4,
        /// Display config.
        DISPLAY_CONFIG = 5,
        /// Capabilities.
        ANNOUNCE_CAPABILITIES = 6,
        /// Clipboard grab.
        CLIPBOARD_GRAB = 7,
        /// Clipboard request.
        CLIPBOARD_REQUEST = 8,
        /// Clipboard release.
        CLIPBOARD_RELEASE = 9,
        /// File transfer.
        FILE_XFER_START = 10,
        /// File transfer.
        FILE_XFER_STATUS = 11,
        /// File transfer.
        FILE_XFER_DATA = 12,
        /// Client gone.
        CLIENT_DISCONNECTED = 13,
        /// Clipboard limit.
        MAX_CLIPBOARD = 14,
        /// Volume.
        AUDIO_VOLUME_SYNC = 15,
        /// Graphics device info.
        GRAPHICS_DEVICE_INFO = 16,
    }
}

/// vd_agent.h: `VD_AGENT_CAP_*` bits of ANNOUNCE_CAPABILITIES.
pub struct VdAgentCap;
impl VdAgentCap {
    /// Mouse state.
    pub const MOUSE_STATE: u32 = 0;
    /// The agent applies MONITORS_CONFIG (what makes spice-gtk resize).
    pub const MONITORS_CONFIG: u32 = 1;
    /// The agent sends REPLY.
    pub const REPLY: u32 = 2;
    /// Clipboard.
    pub const CLIPBOARD: u32 = 3;
    /// Display config.
    pub const DISPLAY_CONFIG: u32 = 4;
    /// Clipboard by demand.
    pub const CLIPBOARD_BY_DEMAND: u32 = 5;
    /// Clipboard selection.
    pub const CLIPBOARD_SELECTION: u32 = 6;
    /// All monitor slots are sent, disabled ones as 0×0.
    pub const SPARSE_MONITORS_CONFIG: u32 = 7;
    /// Guest line ends LF.
    pub const GUEST_LINEEND_LF: u32 = 8;
    /// Guest line ends CRLF.
    pub const GUEST_LINEEND_CRLF: u32 = 9;
    /// Max clipboard.
    pub const MAX_CLIPBOARD: u32 = 10;
    /// Audio volume sync.
    pub const AUDIO_VOLUME_SYNC: u32 = 11;
    /// Monitor positions honoured.
    pub const MONITORS_CONFIG_POSITION: u32 = 12;
    /// File transfer disabled.
    pub const FILE_XFER_DISABLED: u32 = 13;
    /// Detailed file transfer errors.
    pub const FILE_XFER_DETAILED_ERRORS: u32 = 14;
    /// Graphics device info.
    pub const GRAPHICS_DEVICE_INFO: u32 = 15;
    /// Clipboard no release on regrab.
    pub const CLIPBOARD_NO_RELEASE_ON_REGRAB: u32 = 16;
    /// Clipboard grab serial.
    pub const CLIPBOARD_GRAB_SERIAL: u32 = 17;
}

/// vd_agent.h: `VDAgentMessage`, the 20-byte header of each agent message.
#[doc(alias = "VDAgentMessage")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VdAgentMessage {
    /// [`VD_AGENT_PROTOCOL`].
    pub protocol: u32,
    /// Payload type.
    pub msg_type: VdAgentMessageType,
    /// Opaque (0).
    pub opaque: u64,
    /// Payload bytes after this header, possibly spread over several AGENT_DATA.
    pub size: u32,
}

impl VdAgentMessage {
    /// Encoded size.
    pub const SIZE: usize = 20;
}

impl Codec<'_> for VdAgentMessage {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.protocol);
        self.msg_type.encode(out);
        out.put_u64(self.opaque);
        out.put_u32(self.size);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            protocol: r.u32("VDAgentMessage.protocol")?,
            msg_type: VdAgentMessageType::read(r)?,
            opaque: r.u64("VDAgentMessage.opaque")?,
            size: r.u32("VDAgentMessage.size")?,
        })
    }
}

/// vd_agent.h: `VDAgentMonConfig` (20 bytes; **height before width**).
#[doc(alias = "VDAgentMonConfig")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VdAgentMonConfig {
    /// Height.
    pub height: u32,
    /// Width.
    pub width: u32,
    /// Bits per pixel.
    pub depth: u32,
    /// X.
    pub x: i32,
    /// Y.
    pub y: i32,
}

/// vd_agent.h: `VDAgentMonitorMM`, physical size in mm (**height before width**).
#[doc(alias = "VDAgentMonitorMM")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct VdAgentMonitorMm {
    /// Height in mm.
    pub height: u16,
    /// Width in mm.
    pub width: u16,
}

/// vd_agent.h: `VDAgentMonitorsConfig` = `u32 num_of_monitors, u32 flags`, the monitors, then
/// with flag PHYSICAL_SIZE one `VDAgentMonitorMM` per monitor.
#[doc(alias = "VDAgentMonitorsConfig")]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VdAgentMonitorsConfig {
    /// Flags other than PHYSICAL_SIZE, which follows from `physical_sizes`.
    pub flags: u32,
    /// Monitors.
    pub monitors: Vec<VdAgentMonConfig>,
    /// Physical sizes, one per monitor, if sent.
    pub physical_sizes: Option<Vec<VdAgentMonitorMm>>,
}

impl VdAgentMonitorsConfig {
    /// `VD_AGENT_CONFIG_MONITORS_FLAG_USE_POS`.
    pub const FLAG_USE_POS: u32 = 1 << 0;
    /// `VD_AGENT_CONFIG_MONITORS_FLAG_PHYSICAL_SIZE`.
    pub const FLAG_PHYSICAL_SIZE: u32 = 1 << 1;
    const MON_CONFIG_SIZE: usize = 20;
}

impl Codec<'_> for VdAgentMonitorsConfig {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(len_u32(self.monitors.len()));
        let mut flags = self.flags & !Self::FLAG_PHYSICAL_SIZE;
        if self.physical_sizes.is_some() {
            flags |= Self::FLAG_PHYSICAL_SIZE;
        }
        out.put_u32(flags);
        for m in &self.monitors {
            out.put_u32(m.height);
            out.put_u32(m.width);
            out.put_u32(m.depth);
            out.put_i32(m.x);
            out.put_i32(m.y);
        }
        for mm in self.physical_sizes.iter().flatten() {
            out.put_u16(mm.height);
            out.put_u16(mm.width);
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let count = r.u32("VDAgentMonitorsConfig.num_of_monitors")?;
        let flags = r.u32("VDAgentMonitorsConfig.flags")?;
        let n = r.count(
            count.into(),
            Self::MON_CONFIG_SIZE,
            MAX_AGENT_MONITORS,
            "VDAgentMonConfig",
        )?;
        let mut monitors = Vec::with_capacity(n);
        for _ in 0..n {
            monitors.push(VdAgentMonConfig {
                height: r.u32("VDAgentMonConfig.height")?,
                width: r.u32("VDAgentMonConfig.width")?,
                depth: r.u32("VDAgentMonConfig.depth")?,
                x: r.i32("VDAgentMonConfig.x")?,
                y: r.i32("VDAgentMonConfig.y")?,
            });
        }
        let physical_sizes = if flags & Self::FLAG_PHYSICAL_SIZE != 0 {
            let mut sizes = Vec::with_capacity(n);
            for _ in 0..n {
                sizes.push(VdAgentMonitorMm {
                    height: r.u16("VDAgentMonitorMM.height")?,
                    width: r.u16("VDAgentMonitorMM.width")?,
                });
            }
            Some(sizes)
        } else {
            None
        };
        Ok(Self {
            flags: flags & !Self::FLAG_PHYSICAL_SIZE,
            monitors,
            physical_sizes,
        })
    }
}

/// vd_agent.h: `VDAgentAnnounceCapabilities` = `u32 request`, then capability words to the
/// end of the payload. The client sends `request = 1`; we answer with `request = 0`.
#[doc(alias = "VDAgentAnnounceCapabilities")]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VdAgentAnnounceCapabilities {
    /// 1: please announce yours back.
    pub request: u32,
    /// Capability words (`VdAgentCap` bits).
    pub caps: Vec<u32>,
}

impl Codec<'_> for VdAgentAnnounceCapabilities {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.request);
        for w in &self.caps {
            out.put_u32(*w);
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let request = r.u32("VDAgentAnnounceCapabilities.request")?;
        let words = r.left() / 4;
        let n = r.count(
            u64::try_from(words).unwrap_or(u64::MAX),
            4,
            MAX_CAP_WORDS,
            "VDAgentAnnounceCapabilities.caps",
        )?;
        let mut caps = Vec::with_capacity(n);
        for _ in 0..n {
            caps.push(r.u32("VDAgentAnnounceCapabilities.caps")?);
        }
        Ok(Self { request, caps })
    }
}

/// vd_agent.h: `VDAgentReply {u32 type, u32 error}`.
#[doc(alias = "VDAgentReply")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VdAgentReply {
    /// The message type answered.
    pub msg_type: VdAgentMessageType,
    /// `SUCCESS` or `ERROR`.
    pub error: u32,
}

impl VdAgentReply {
    /// `VD_AGENT_SUCCESS`.
    pub const SUCCESS: u32 = 1;
    /// `VD_AGENT_ERROR`.
    pub const ERROR: u32 = 2;
}

impl Codec<'_> for VdAgentReply {
    fn encode(&self, out: &mut Vec<u8>) {
        self.msg_type.encode(out);
        out.put_u32(self.error);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            msg_type: VdAgentMessageType::read(r)?,
            error: r.u32("VDAgentReply.error")?,
        })
    }
}
