//! MAIN channel messages, both directions, and the client-message decoder (brief §3.1).

use super::base::{BaseClientMsg, EmptyMessage};
use crate::spice::wire::codec::{len_u32, Codec, PutLe, Reader, WireError};
use crate::spice::wire::enums::{wire_enum, ChannelType};
use crate::spice::wire::header::Message;

/// Entries a CHANNELS_LIST may carry. A server lists a handful (main, display 0..n, inputs,
/// cursor); (type, id) pairs number 65 536 in theory, far past anything served.
pub const MAX_CHANNELS_LIST: usize = 1024;

wire_enum! {
    /// spice-protocol enums.h: `SPICE_MSG_MAIN_*` (server → client).
    pub struct MainMsg(u16) {
        /// Migration.
        MIGRATE_BEGIN = 101,
        /// Migration.
        MIGRATE_CANCEL = 102,
        /// Session id, mouse modes, agent state.
        INIT = 103,
        /// Channels to connect.
        CHANNELS_LIST = 104,
        /// Mouse mode changed.
        MOUSE_MODE = 105,
        /// Multimedia clock.
        MULTI_MEDIA_TIME = 106,
        /// Agent connected (clients without AGENT_CONNECTED_TOKENS).
        AGENT_CONNECTED = 107,
        /// Agent gone.
        AGENT_DISCONNECTED = 108,
        /// Agent bytes.
        AGENT_DATA = 109,
        /// Tokens back to the client.
        AGENT_TOKEN = 110,
        /// Migration.
        MIGRATE_SWITCH_HOST = 111,
        /// Migration.
        MIGRATE_END = 112,
        /// VM name.
        NAME = 113,
        /// VM UUID.
        UUID = 114,
        /// Agent connected, with tokens.
        AGENT_CONNECTED_TOKENS = 115,
        /// Migration.
        MIGRATE_BEGIN_SEAMLESS = 116,
        /// Migration.
        MIGRATE_DST_SEAMLESS_ACK = 117,
        /// Migration.
        MIGRATE_DST_SEAMLESS_NACK = 118,
    }
}

wire_enum! {
    /// spice-protocol enums.h: `SPICE_MSGC_MAIN_*` (client → server).
    pub struct MainMsgc(u16) {
        /// Cache size (not sent by spice-gtk).
        CLIENT_INFO = 101,
        /// Migration.
        MIGRATE_CONNECTED = 102,
        /// Migration.
        MIGRATE_CONNECT_ERROR = 103,
        /// Asks for CHANNELS_LIST.
        ATTACH_CHANNELS = 104,
        /// Asks for a mouse mode.
        MOUSE_MODE_REQUEST = 105,
        /// Client ready for agent data.
        AGENT_START = 106,
        /// Agent bytes.
        AGENT_DATA = 107,
        /// Tokens back to the server.
        AGENT_TOKEN = 108,
        /// Migration.
        MIGRATE_END = 109,
        /// Migration.
        MIGRATE_DST_DO_SEAMLESS = 110,
        /// Migration.
        MIGRATE_CONNECTED_SEAMLESS = 111,
        /// Quality indicator.
        QUALITY_INDICATOR = 112,
    }
}

wire_enum! {
    /// spice-protocol enums.h: `SpiceMouseMode` flags (u16 in MOUSE_MODE and its request).
    pub struct MouseMode(u16) {
        /// Relative motion, server draws the pointer.
        SERVER = 1 << 0,
        /// Absolute positions, client draws the pointer.
        CLIENT = 1 << 1,
    }
}

/// spice.proto `MainChannel` server `init`: `SpiceMsgMainInit`, eight u32 (32 bytes).
#[doc(alias = "SPICE_MSG_MAIN_INIT")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MsgMainInit {
    /// Non-zero; other channels link with it.
    pub session_id: u32,
    /// Display channels listed.
    pub display_channels_hint: u32,
    /// `MouseMode` bits supported.
    pub supported_mouse_modes: u32,
    /// Current `MouseMode`.
    pub current_mouse_mode: u32,
    /// 1 if an agent (or we, as pseudo-agent) is connected.
    pub agent_connected: u32,
    /// AGENT_DATA messages the client may send before it needs tokens.
    pub agent_tokens: u32,
    /// Multimedia clock (ms), behind "now" by the latency budget.
    pub multi_media_time: u32,
    /// QXL RAM size or 0.
    pub ram_hint: u32,
}

impl Codec<'_> for MsgMainInit {
    fn encode(&self, out: &mut Vec<u8>) {
        for v in [
            self.session_id,
            self.display_channels_hint,
            self.supported_mouse_modes,
            self.current_mouse_mode,
            self.agent_connected,
            self.agent_tokens,
            self.multi_media_time,
            self.ram_hint,
        ] {
            out.put_u32(v);
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            session_id: r.u32("SpiceMsgMainInit.session_id")?,
            display_channels_hint: r.u32("SpiceMsgMainInit.display_channels_hint")?,
            supported_mouse_modes: r.u32("SpiceMsgMainInit.supported_mouse_modes")?,
            current_mouse_mode: r.u32("SpiceMsgMainInit.current_mouse_mode")?,
            agent_connected: r.u32("SpiceMsgMainInit.agent_connected")?,
            agent_tokens: r.u32("SpiceMsgMainInit.agent_tokens")?,
            multi_media_time: r.u32("SpiceMsgMainInit.multi_media_time")?,
            ram_hint: r.u32("SpiceMsgMainInit.ram_hint")?,
        })
    }
}

impl Message<'_> for MsgMainInit {
    const TYPE: u16 = MainMsg::INIT.0;
}

/// One entry of CHANNELS_LIST: `SpiceChannelId {u8 type, u8 id}`.
#[doc(alias = "SpiceChannelId")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChannelId {
    /// Type.
    pub channel_type: ChannelType,
    /// Instance.
    pub channel_id: u8,
}

/// spice.proto `MainChannel` server `channels_list`: `u32 num_of_channels; SpiceChannelId[]`.
#[doc(alias = "SPICE_MSG_MAIN_CHANNELS_LIST")]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MsgMainChannelsList {
    /// Every channel listed gets connected (brief §3.0): list only what is served.
    pub channels: Vec<ChannelId>,
}

impl Codec<'_> for MsgMainChannelsList {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(len_u32(self.channels.len()));
        for c in &self.channels {
            c.channel_type.encode(out);
            out.push(c.channel_id);
        }
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let count = r.u32("ChannelsList.num_of_channels")?;
        let n = r.count(count.into(), 2, MAX_CHANNELS_LIST, "ChannelsList")?;
        let mut channels = Vec::with_capacity(n);
        for _ in 0..n {
            channels.push(ChannelId {
                channel_type: ChannelType::read(r)?,
                channel_id: r.u8("SpiceChannelId.id")?,
            });
        }
        Ok(Self { channels })
    }
}

impl Message<'_> for MsgMainChannelsList {
    const TYPE: u16 = MainMsg::CHANNELS_LIST.0;
}

/// spice.proto `MainChannel` server `mouse_mode`: `u16 supported_modes, u16 current_mode`.
#[doc(alias = "SPICE_MSG_MAIN_MOUSE_MODE")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgMainMouseMode {
    /// Supported mode bits.
    pub supported_modes: MouseMode,
    /// Current mode.
    pub current_mode: MouseMode,
}

impl Codec<'_> for MsgMainMouseMode {
    fn encode(&self, out: &mut Vec<u8>) {
        self.supported_modes.encode(out);
        self.current_mode.encode(out);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            supported_modes: MouseMode::read(r)?,
            current_mode: MouseMode::read(r)?,
        })
    }
}

impl Message<'_> for MsgMainMouseMode {
    const TYPE: u16 = MainMsg::MOUSE_MODE.0;
}

/// A message whose body is one `u32`, numbered `TYPE`: MULTI_MEDIA_TIME, AGENT_DISCONNECTED,
/// AGENT_TOKEN, AGENT_CONNECTED_TOKENS and the client's AGENT_START and AGENT_TOKEN.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct U32Message<const TYPE: u16>(pub u32);

impl<const TYPE: u16> Codec<'_> for U32Message<TYPE> {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(self.0);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        r.u32("u32 message body").map(Self)
    }
}

impl<const TYPE: u16> Message<'_> for U32Message<TYPE> {
    const TYPE: u16 = TYPE;
}

/// spice.proto `MainChannel` server `multi_media_time`: `u32 time` (ms).
#[doc(alias = "SPICE_MSG_MAIN_MULTI_MEDIA_TIME")]
pub type MsgMainMultiMediaTime = U32Message<{ MainMsg::MULTI_MEDIA_TIME.0 }>;

/// spice.proto `MainChannel` server `agent_connected` (empty).
#[doc(alias = "SPICE_MSG_MAIN_AGENT_CONNECTED")]
pub type MsgMainAgentConnected = EmptyMessage<{ MainMsg::AGENT_CONNECTED.0 }>;

/// spice.proto `MainChannel` server `agent_disconnected`: `u32 error_code`.
#[doc(alias = "SPICE_MSG_MAIN_AGENT_DISCONNECTED")]
pub type MsgMainAgentDisconnected = U32Message<{ MainMsg::AGENT_DISCONNECTED.0 }>;

/// spice.proto `MainChannel` server `agent_token`: `u32 num_tokens` returned to the client.
#[doc(alias = "SPICE_MSG_MAIN_AGENT_TOKEN")]
pub type MsgMainAgentToken = U32Message<{ MainMsg::AGENT_TOKEN.0 }>;

/// spice.proto `MainChannel` server `agent_connected_tokens`: `u32 num_tokens`.
#[doc(alias = "SPICE_MSG_MAIN_AGENT_CONNECTED_TOKENS")]
pub type MsgMainAgentConnectedTokens = U32Message<{ MainMsg::AGENT_CONNECTED_TOKENS.0 }>;

/// spice.proto `MainChannel` server `agent_data`: VD agent bytes to the end of the message,
/// at most `VD_AGENT_MAX_DATA_SIZE` per message.
#[doc(alias = "SPICE_MSG_MAIN_AGENT_DATA")]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MsgMainAgentData {
    /// One chunk of the `VDAgentMessage` stream.
    pub data: Vec<u8>,
}

impl Codec<'_> for MsgMainAgentData {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.data);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            data: r.rest().to_vec(),
        })
    }
}

impl Message<'_> for MsgMainAgentData {
    const TYPE: u16 = MainMsg::AGENT_DATA.0;
}

/// spice.proto `MainChannel` server `name`: `u32 name_len, u8 name[name_len]`; `name_len`
/// counts a trailing NUL, as spice-server sends it (send only to NAME_AND_UUID clients).
#[doc(alias = "SPICE_MSG_MAIN_NAME")]
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MsgMainName {
    /// The VM name, without NUL.
    pub name: String,
}

impl Codec<'_> for MsgMainName {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u32(len_u32(self.name.len().saturating_add(1)));
        out.extend_from_slice(self.name.as_bytes());
        out.push(0);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        let len = r.u32("SpiceMsgMainName.name_len")?;
        let bytes = r.take(
            usize::try_from(len).unwrap_or(usize::MAX),
            "SpiceMsgMainName.name",
        )?;
        let bytes = bytes.strip_suffix(&[0]).unwrap_or(bytes);
        let name = std::str::from_utf8(bytes).map_err(|e| WireError::Invalid {
            what: "SpiceMsgMainName UTF-8 at byte",
            value: u64::try_from(e.valid_up_to()).unwrap_or(u64::MAX),
        })?;
        Ok(Self {
            name: name.to_owned(),
        })
    }
}

impl Message<'_> for MsgMainName {
    const TYPE: u16 = MainMsg::NAME.0;
}

/// spice.proto `MainChannel` server `uuid`: `u8 uuid[16]`.
#[doc(alias = "SPICE_MSG_MAIN_UUID")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MsgMainUuid {
    /// The VM UUID.
    pub uuid: [u8; 16],
}

impl Codec<'_> for MsgMainUuid {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.uuid);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            uuid: r.take_array("SpiceMsgMainUuid.uuid")?,
        })
    }
}

impl Message<'_> for MsgMainUuid {
    const TYPE: u16 = MainMsg::UUID.0;
}

/// spice.proto `MainChannel` client `client_info`: `u64 cache_size`.
#[doc(alias = "SPICE_MSGC_MAIN_CLIENT_INFO")]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MsgcMainClientInfo {
    /// Client cache size.
    pub cache_size: u64,
}

impl Codec<'_> for MsgcMainClientInfo {
    fn encode(&self, out: &mut Vec<u8>) {
        out.put_u64(self.cache_size);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            cache_size: r.u64("SpiceMsgcClientInfo.cache_size")?,
        })
    }
}

impl Message<'_> for MsgcMainClientInfo {
    const TYPE: u16 = MainMsgc::CLIENT_INFO.0;
}

/// spice.proto `MainChannel` client `attach_channels` (empty): answer with CHANNELS_LIST.
#[doc(alias = "SPICE_MSGC_MAIN_ATTACH_CHANNELS")]
pub type MsgcMainAttachChannels = EmptyMessage<{ MainMsgc::ATTACH_CHANNELS.0 }>;

/// spice.proto `MainChannel` client `mouse_mode_request`: `u16 mode`.
#[doc(alias = "SPICE_MSGC_MAIN_MOUSE_MODE_REQUEST")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgcMainMouseModeRequest {
    /// The mode asked for.
    pub mode: MouseMode,
}

impl Codec<'_> for MsgcMainMouseModeRequest {
    fn encode(&self, out: &mut Vec<u8>) {
        self.mode.encode(out);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        Ok(Self {
            mode: MouseMode::read(r)?,
        })
    }
}

impl Message<'_> for MsgcMainMouseModeRequest {
    const TYPE: u16 = MainMsgc::MOUSE_MODE_REQUEST.0;
}

/// spice.proto `MainChannel` client `agent_start`: `u32 num_tokens`, the client's window for
/// our AGENT_DATA (spice-gtk and spice-html5 send 0xFFFFFFFF).
#[doc(alias = "SPICE_MSGC_MAIN_AGENT_START")]
pub type MsgcMainAgentStart = U32Message<{ MainMsgc::AGENT_START.0 }>;

/// spice.proto `MainChannel` client `agent_token`: `u32 num_tokens`.
#[doc(alias = "SPICE_MSGC_MAIN_AGENT_TOKEN")]
pub type MsgcMainAgentToken = U32Message<{ MainMsgc::AGENT_TOKEN.0 }>;

/// spice.proto `MainChannel` client `agent_data`: agent bytes to the end of the message.
#[doc(alias = "SPICE_MSGC_MAIN_AGENT_DATA")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsgcMainAgentData<'a> {
    /// One chunk of the client's `VDAgentMessage` stream.
    pub data: &'a [u8],
}

impl<'a> Codec<'a> for MsgcMainAgentData<'a> {
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.data);
    }
    fn read(r: &mut Reader<'a>) -> Result<Self, WireError> {
        Ok(Self { data: r.rest() })
    }
}

impl<'a> Message<'a> for MsgcMainAgentData<'a> {
    const TYPE: u16 = MainMsgc::AGENT_DATA.0;
}

/// A decoded MAIN client message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MainClientMsg<'a> {
    /// A base-channel message.
    Base(BaseClientMsg),
    /// CLIENT_INFO.
    ClientInfo(MsgcMainClientInfo),
    /// ATTACH_CHANNELS.
    AttachChannels(MsgcMainAttachChannels),
    /// MOUSE_MODE_REQUEST.
    MouseModeRequest(MsgcMainMouseModeRequest),
    /// AGENT_START.
    AgentStart(MsgcMainAgentStart),
    /// AGENT_DATA.
    AgentData(MsgcMainAgentData<'a>),
    /// AGENT_TOKEN.
    AgentToken(MsgcMainAgentToken),
    /// A type we do not parse (migration, quality indicator); logged and ignored.
    Unknown(u16),
}

impl<'a> MainClientMsg<'a> {
    /// Decodes one message body of type `msg_type`.
    pub fn decode(msg_type: u16, body: &'a [u8]) -> Result<Self, WireError> {
        if let Some(base) = BaseClientMsg::decode(msg_type, body) {
            return base.map(Self::Base);
        }
        match MainMsgc(msg_type) {
            MainMsgc::CLIENT_INFO => MsgcMainClientInfo::read_bytes(body).map(Self::ClientInfo),
            MainMsgc::ATTACH_CHANNELS => {
                MsgcMainAttachChannels::read_bytes(body).map(Self::AttachChannels)
            }
            MainMsgc::MOUSE_MODE_REQUEST => {
                MsgcMainMouseModeRequest::read_bytes(body).map(Self::MouseModeRequest)
            }
            MainMsgc::AGENT_START => MsgcMainAgentStart::read_bytes(body).map(Self::AgentStart),
            MainMsgc::AGENT_DATA => MsgcMainAgentData::read_bytes(body).map(Self::AgentData),
            MainMsgc::AGENT_TOKEN => MsgcMainAgentToken::read_bytes(body).map(Self::AgentToken),
            _ => Ok(Self::Unknown(msg_type)),
        }
    }
}
