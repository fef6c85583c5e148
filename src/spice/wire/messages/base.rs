//! Messages every channel inherits from spice.proto's `BaseChannel` (brief §2.4, §2.5).

use crate::spice::wire::codec::{len_u32, Codec, PutLe, Reader, WireError};
use crate::spice::wire::enums::{wire_enum, ChannelType, SpiceLinkErr};
use crate::spice::wire::header::Message;

wire_enum! {
    /// spice-protocol enums.h: `SPICE_MSG_*` of the base channel (server → client).
    pub struct BaseMsg(u16) {
        /// Migration start.
        MIGRATE = 1,
        /// Migration data.
        MIGRATE_DATA = 2,
        /// ACK window.
        SET_ACK = 3,
        /// Latency probe.
        PING = 4,
        /// Cross-channel ordering.
        WAIT_FOR_CHANNELS = 5,
        /// Server closing.
        DISCONNECTING = 6,
        /// Text for the user or log.
        NOTIFY = 7,
        /// Sub-message list.
        LIST = 8,
    }
}

wire_enum! {
    /// spice-protocol enums.h: `SPICE_MSGC_*` of the base channel (client → server).
    pub struct BaseMsgc(u16) {
        /// Answer to SET_ACK.
        ACK_SYNC = 1,
        /// One window of messages received.
        ACK = 2,
        /// Answer to PING.
        PONG = 3,
        /// Migration flush mark.
        MIGRATE_FLUSH_MARK = 4,
        /// Migration data.
        MIGRATE_DATA = 5,
        /// Client closing.
        DISCONNECTING = 6,
    }
}

/// Any message with an empty body, numbered `TYPE`; each channel names its own with a type
/// alias (`MsgDisplayMark`, `MsgcAck`…). Messages of different channels that share a number
/// share this type, which is harmless: they encode identically.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EmptyMessage<const TYPE: u16>;

impl<const TYPE: u16> Codec<'_> for EmptyMessage<TYPE> {
    fn encode(&self, _out: &mut Vec<u8>) {}
    fn read(_r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self)
    }
}

impl<const TYPE: u16> Message<'_> for EmptyMessage<TYPE> {
    const TYPE: u16 = TYPE;
}

/// spice.proto `BaseChannel` server `set_ack`: `SpiceMsgSetAck`.
#[doc(alias = "SPICE_MSG_SET_ACK")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgSetAck {
    /// Echoed in ACK_SYNC; ACKs of older generations are ignored.
    pub generation: u32,
    /// Client ACKs every `window` messages.
    pub window: u32,
}

impl Codec<'_> for MsgSetAck {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.generation);
        out.put_u32(self.window);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            generation: r.u32("SpiceMsgSetAck.generation")?,
            window: r.u32("SpiceMsgSetAck.window")?,
        })
    }
}

impl Message<'_> for MsgSetAck {
    const TYPE: u16 = BaseMsg::SET_ACK.0;
}

/// spice.proto `BaseChannel` server `ping`: `SpiceMsgPing`; `data` runs to the end of the
/// message and is not echoed.
#[doc(alias = "SPICE_MSG_PING")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsgPing {
    /// Echoed in PONG.
    pub id: u32,
    /// Echoed in PONG (spice-server: ns for latency, µs for the net test).
    pub timestamp: u64,
    /// Padding for bandwidth tests.
    pub data: Vec<u8>,
}

impl Codec<'_> for MsgPing {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.id);
        out.put_u64(self.timestamp);
        out.extend_from_slice(&self.data);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            id: r.u32("SpiceMsgPing.id")?,
            timestamp: r.u64("SpiceMsgPing.timestamp")?,
            data: r.rest().to_vec(),
        })
    }
}

impl Message<'_> for MsgPing {
    const TYPE: u16 = BaseMsg::PING.0;
}

/// One entry of WAIT_FOR_CHANNELS and INVAL_ALL_PIXMAPS: `SpiceWaitForChannel`.
#[doc(alias = "SpiceWaitForChannel")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitForChannel {
    /// Channel to wait for.
    pub channel_type: ChannelType,
    /// Its instance.
    pub channel_id: u8,
    /// Wait until it has processed this serial.
    pub message_serial: u64,
}

impl WaitForChannel {
    /// Encoded size.
    const SIZE: usize = 10;
}

impl Codec<'_> for WaitForChannel {
    fn encode(&self, out: &mut Vec<u8>) {
        self.channel_type.encode(out);
        out.push(self.channel_id);
        out.put_u64(self.message_serial);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            channel_type: ChannelType::read(r)?,
            channel_id: r.u8("SpiceWaitForChannel.channel_id")?,
            message_serial: r.u64("SpiceWaitForChannel.message_serial")?,
        })
    }
}

/// The `u8 wait_count; SpiceWaitForChannel[wait_count]` list shared by WAIT_FOR_CHANNELS and
/// DISPLAY INVAL_ALL_PIXMAPS. At most 255 entries by construction of the count.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WaitList(pub Vec<WaitForChannel>);

impl Codec<'_> for WaitList {
    fn encode(&self, out: &mut Vec<u8>) {
        let n = u8::try_from(self.0.len()).unwrap_or(u8::MAX);
        out.push(n);
        for w in self.0.iter().take(usize::from(n)) {
            w.encode(out);
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let count = r.u8("wait_count")?;
        let n = r.count(
            count.into(),
            WaitForChannel::SIZE,
            usize::from(u8::MAX),
            "wait list",
        )?;
        let mut list = Vec::with_capacity(n);
        for _ in 0..n {
            list.push(WaitForChannel::read(r)?);
        }
        Ok(Self(list))
    }
}

/// spice.proto `BaseChannel` server `wait_for_channels`: `SpiceMsgWaitForChannels`.
#[doc(alias = "SPICE_MSG_WAIT_FOR_CHANNELS")]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MsgWaitForChannels {
    /// What to wait for.
    pub wait_list: WaitList,
}

impl Codec<'_> for MsgWaitForChannels {
    fn encode(&self, out: &mut Vec<u8>) {
        self.wait_list.encode(out);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            wait_list: WaitList::read(r)?,
        })
    }
}

impl Message<'_> for MsgWaitForChannels {
    const TYPE: u16 = BaseMsg::WAIT_FOR_CHANNELS.0;
}

/// spice.proto `BaseChannel` server `disconnecting`: `SpiceMsgDisconnect`.
#[doc(alias = "SPICE_MSG_DISCONNECTING")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgDisconnecting {
    /// Server time.
    pub time_stamp: u64,
    /// Why.
    pub reason: SpiceLinkErr,
}

impl Codec<'_> for MsgDisconnecting {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.time_stamp);
        self.reason.encode(out);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            time_stamp: r.u64("SpiceMsgDisconnect.time_stamp")?,
            reason: SpiceLinkErr::read(r)?,
        })
    }
}

impl Message<'_> for MsgDisconnecting {
    const TYPE: u16 = BaseMsg::DISCONNECTING.0;
}

/// spice.proto `BaseChannel` server `notify`: `SpiceMsgNotify`.
///
/// The text is followed by a NUL that `message_len` does not count, as spice-server writes
/// it: spice-gtk prints `message` as a C string.
#[doc(alias = "SPICE_MSG_NOTIFY")]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MsgNotify {
    /// Server time.
    pub time_stamp: u64,
    /// 0 INFO, 1 WARN, 2 ERROR.
    pub severity: u32,
    /// 0 LOW, 1 MEDIUM, 2 HIGH.
    pub visibility: u32,
    /// What about.
    pub what: u32,
    /// The text, without NUL.
    pub message: Vec<u8>,
}

impl Codec<'_> for MsgNotify {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.time_stamp);
        out.put_u32(self.severity);
        out.put_u32(self.visibility);
        out.put_u32(self.what);
        out.put_u32(len_u32(self.message.len()));
        out.extend_from_slice(&self.message);
        out.push(0);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let time_stamp = r.u64("SpiceMsgNotify.time_stamp")?;
        let severity = r.u32("SpiceMsgNotify.severity")?;
        let visibility = r.u32("SpiceMsgNotify.visibility")?;
        let what = r.u32("SpiceMsgNotify.what")?;
        let len = r.u32("SpiceMsgNotify.message_len")?;
        let message = r
            .take(
                usize::try_from(len).unwrap_or(usize::MAX),
                "SpiceMsgNotify.message",
            )?
            .to_vec();
        // The NUL spice-server appends, if present; anything else is trailing data.
        if r.clone().rest() == [0] {
            r.u8("SpiceMsgNotify NUL")?;
        }
        Ok(Self {
            time_stamp,
            severity,
            visibility,
            what,
            message,
        })
    }
}

impl Message<'_> for MsgNotify {
    const TYPE: u16 = BaseMsg::NOTIFY.0;
}

/// spice.proto `BaseChannel` client `ack_sync`: `SpiceMsgcAckSync`.
#[doc(alias = "SPICE_MSGC_ACK_SYNC")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgcAckSync {
    /// The SET_ACK generation being acknowledged.
    pub generation: u32,
}

impl Codec<'_> for MsgcAckSync {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.generation);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            generation: r.u32("SpiceMsgcAckSync.generation")?,
        })
    }
}

impl Message<'_> for MsgcAckSync {
    const TYPE: u16 = BaseMsgc::ACK_SYNC.0;
}

/// spice.proto `BaseChannel` client `ack` (empty).
#[doc(alias = "SPICE_MSGC_ACK")]
pub type MsgcAck = EmptyMessage<{ BaseMsgc::ACK.0 }>;

/// spice.proto `BaseChannel` client `pong`: `SpiceMsgPing` without data.
#[doc(alias = "SPICE_MSGC_PONG")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgcPong {
    /// The PING's id.
    pub id: u32,
    /// The PING's timestamp.
    pub timestamp: u64,
}

impl Codec<'_> for MsgcPong {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.id);
        out.put_u64(self.timestamp);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            id: r.u32("SpiceMsgcPong.id")?,
            timestamp: r.u64("SpiceMsgcPong.timestamp")?,
        })
    }
}

impl Message<'_> for MsgcPong {
    const TYPE: u16 = BaseMsgc::PONG.0;
}

/// spice.proto `BaseChannel` client `migrate_flush_mark` (empty).
#[doc(alias = "SPICE_MSGC_MIGRATE_FLUSH_MARK")]
pub type MsgcMigrateFlushMark = EmptyMessage<{ BaseMsgc::MIGRATE_FLUSH_MARK.0 }>;

/// spice.proto `BaseChannel` client `disconnecting`: `SpiceMsgcDisconnecting`.
#[doc(alias = "SPICE_MSGC_DISCONNECTING")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgcDisconnecting {
    /// Client time.
    pub time_stamp: u64,
    /// Why.
    pub reason: SpiceLinkErr,
}

impl Codec<'_> for MsgcDisconnecting {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.time_stamp);
        self.reason.encode(out);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            time_stamp: r.u64("SpiceMsgcDisconnecting.time_stamp")?,
            reason: SpiceLinkErr::read(r)?,
        })
    }
}

impl Message<'_> for MsgcDisconnecting {
    const TYPE: u16 = BaseMsgc::DISCONNECTING.0;
}

/// A decoded base-channel client message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BaseClientMsg {
    /// ACK_SYNC.
    AckSync(MsgcAckSync),
    /// ACK.
    Ack(MsgcAck),
    /// PONG.
    Pong(MsgcPong),
    /// MIGRATE_FLUSH_MARK.
    MigrateFlushMark(MsgcMigrateFlushMark),
    /// DISCONNECTING.
    Disconnecting(MsgcDisconnecting),
}

impl BaseClientMsg {
    /// Decodes a base message, or `None` if `msg_type` is not one we parse.
    pub fn decode(msg_type: u16, body: &[u8]) -> Option<Result<Self, WireError>> {
        Some(match BaseMsgc(msg_type) {
            BaseMsgc::ACK_SYNC => MsgcAckSync::read_bytes(body).map(Self::AckSync),
            BaseMsgc::ACK => MsgcAck::read_bytes(body).map(Self::Ack),
            BaseMsgc::PONG => MsgcPong::read_bytes(body).map(Self::Pong),
            BaseMsgc::MIGRATE_FLUSH_MARK => {
                MsgcMigrateFlushMark::read_bytes(body).map(Self::MigrateFlushMark)
            }
            BaseMsgc::DISCONNECTING => MsgcDisconnecting::read_bytes(body).map(Self::Disconnecting),
            _ => return None,
        })
    }
}
