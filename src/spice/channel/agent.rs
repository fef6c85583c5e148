//! The guest agent side of the VD agent protocol, played by the server so that clients send
//! monitor layouts without a real agent in the guest (brief §3.1, "Agent").
//!
//! The client's AGENT_DATA messages are one byte stream of `VDAgentMessage`s (a header of 20
//! bytes, then `size` bytes of payload, split across AGENT_DATA chunks of at most 2048 bytes).
//! Capabilities and monitor layouts are collected and answered; everything else (clipboard,
//! file transfer) is skipped without being buffered.

use tracing::debug;

use super::ChannelError;
use crate::guest::HeadRequest;
use crate::spice::wire::{
    Codec, VdAgentAnnounceCapabilities, VdAgentCap, VdAgentMessage, VdAgentMessageType,
    VdAgentMonitorsConfig, VdAgentReply, VD_AGENT_PROTOCOL,
};

/// Largest payload collected: a monitors config with all 16 spice-gtk slots and physical
/// sizes is 8 + 16 × 24 = 392 bytes; capabilities are a few words. Larger messages of the
/// types we answer are skipped as malformed.
const MAX_COLLECTED_PAYLOAD: usize = 4096;

/// What the agent asks the main channel to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentAction {
    /// Send this VD agent message (header and payload) to the client in AGENT_DATA.
    Reply(Vec<u8>),
    /// The client asked for this display layout.
    Layout(Vec<HeadRequest>),
}

#[derive(Debug)]
enum Stage {
    /// Collecting the 20-byte header.
    Header(Vec<u8>),
    /// Collecting a payload we answer.
    Collect {
        header: VdAgentMessage,
        payload: Vec<u8>,
    },
    /// Dropping a payload we do not handle.
    Skip(usize),
}

/// The reassembler and responder. See the module documentation.
#[derive(Debug)]
pub struct PseudoAgent {
    stage: Stage,
}

impl Default for PseudoAgent {
    fn default() -> Self {
        Self {
            stage: Stage::Header(Vec::with_capacity(VdAgentMessage::SIZE)),
        }
    }
}

/// A whole VD agent message as the client gets it.
fn agent_message<'a>(msg_type: VdAgentMessageType, payload: &impl Codec<'a>) -> Vec<u8> {
    let body = payload.to_bytes();
    let mut out = Vec::with_capacity(VdAgentMessage::SIZE + body.len());
    VdAgentMessage {
        protocol: VD_AGENT_PROTOCOL,
        msg_type,
        opaque: 0,
        size: crate::spice::wire::len_u32(body.len()),
    }
    .encode(&mut out);
    out.extend_from_slice(&body);
    out
}

impl PseudoAgent {
    /// Takes one AGENT_DATA chunk; returns what to do about the messages it completed.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<Vec<AgentAction>, ChannelError> {
        let mut actions = Vec::new();
        while !data.is_empty() {
            match &mut self.stage {
                Stage::Header(buf) => {
                    let take = (VdAgentMessage::SIZE - buf.len()).min(data.len());
                    let (head, rest) = data.split_at(take);
                    buf.extend_from_slice(head);
                    data = rest;
                    if buf.len() == VdAgentMessage::SIZE {
                        let header =
                            VdAgentMessage::read_bytes(buf).map_err(ChannelError::malformed(0))?;
                        self.begin(header, &mut actions)?;
                    }
                }
                Stage::Collect { header, payload } => {
                    let want = usize::try_from(header.size).unwrap_or(usize::MAX);
                    let take = (want - payload.len()).min(data.len());
                    let (part, rest) = data.split_at(take);
                    payload.extend_from_slice(part);
                    data = rest;
                    if payload.len() == want {
                        let (header, payload) = (*header, std::mem::take(payload));
                        self.stage = Stage::Header(Vec::with_capacity(VdAgentMessage::SIZE));
                        Self::answer(header, &payload, &mut actions);
                    }
                }
                Stage::Skip(left) => {
                    let take = (*left).min(data.len());
                    *left -= take;
                    data = data.get(take..).unwrap_or_default();
                    if *left == 0 {
                        self.stage = Stage::Header(Vec::with_capacity(VdAgentMessage::SIZE));
                    }
                }
            }
        }
        Ok(actions)
    }

    fn begin(
        &mut self,
        header: VdAgentMessage,
        actions: &mut Vec<AgentAction>,
    ) -> Result<(), ChannelError> {
        if header.protocol != VD_AGENT_PROTOCOL {
            return Err(ChannelError::AgentProtocol(header.protocol));
        }
        let size = usize::try_from(header.size).unwrap_or(usize::MAX);
        let answered = matches!(
            header.msg_type,
            VdAgentMessageType::ANNOUNCE_CAPABILITIES | VdAgentMessageType::MONITORS_CONFIG
        );
        self.stage = if size == 0 {
            if answered {
                Self::answer(header, &[], actions);
            }
            Stage::Header(Vec::with_capacity(VdAgentMessage::SIZE))
        } else if !answered || size > MAX_COLLECTED_PAYLOAD {
            debug!(msg_type = ?header.msg_type, size, "agent message skipped");
            Stage::Skip(size)
        } else {
            Stage::Collect {
                header,
                payload: Vec::with_capacity(size),
            }
        };
        Ok(())
    }

    fn answer(header: VdAgentMessage, payload: &[u8], actions: &mut Vec<AgentAction>) {
        match header.msg_type {
            VdAgentMessageType::ANNOUNCE_CAPABILITIES => {
                let Ok(caps) = VdAgentAnnounceCapabilities::read_bytes(payload) else {
                    debug!("malformed agent capabilities skipped");
                    return;
                };
                if caps.request != 0 {
                    let ours = (1 << VdAgentCap::MONITORS_CONFIG) | (1 << VdAgentCap::REPLY);
                    actions.push(AgentAction::Reply(agent_message(
                        VdAgentMessageType::ANNOUNCE_CAPABILITIES,
                        &VdAgentAnnounceCapabilities {
                            request: 0,
                            caps: vec![ours],
                        },
                    )));
                }
            }
            VdAgentMessageType::MONITORS_CONFIG => {
                let result = match VdAgentMonitorsConfig::read_bytes(payload) {
                    Ok(config) => {
                        let heads = layout(&config);
                        if heads.is_empty() {
                            VdAgentReply::ERROR
                        } else {
                            actions.push(AgentAction::Layout(heads));
                            VdAgentReply::SUCCESS
                        }
                    }
                    Err(e) => {
                        debug!(error = %e, "malformed agent monitors config");
                        VdAgentReply::ERROR
                    }
                };
                actions.push(AgentAction::Reply(agent_message(
                    VdAgentMessageType::REPLY,
                    &VdAgentReply {
                        msg_type: VdAgentMessageType::MONITORS_CONFIG,
                        error: result,
                    },
                )));
            }
            _ => {}
        }
    }
}

/// The enabled monitors of a client's request (spice-gtk sends 0 × 0 for disabled slots);
/// positions only with USE_POS, negative ones clamped to 0.
fn layout(config: &VdAgentMonitorsConfig) -> Vec<HeadRequest> {
    let use_pos = config.flags & VdAgentMonitorsConfig::FLAG_USE_POS != 0;
    config
        .monitors
        .iter()
        .filter(|m| m.width > 0 && m.height > 0)
        .map(|m| HeadRequest {
            x: if use_pos {
                m.x.max(0).unsigned_abs()
            } else {
                0
            },
            y: if use_pos {
                m.y.max(0).unsigned_abs()
            } else {
                0
            },
            width: m.width,
            height: m.height,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spice::wire::VdAgentMonConfig;

    fn message(msg_type: VdAgentMessageType, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        VdAgentMessage {
            protocol: 1,
            msg_type,
            opaque: 0,
            size: payload.len() as u32,
        }
        .encode(&mut out);
        out.extend_from_slice(payload);
        out
    }

    fn monitors(w: u32, h: u32) -> Vec<u8> {
        VdAgentMonitorsConfig {
            flags: VdAgentMonitorsConfig::FLAG_USE_POS,
            monitors: vec![
                VdAgentMonConfig {
                    height: h,
                    width: w,
                    depth: 32,
                    x: 0,
                    y: 0,
                },
                VdAgentMonConfig::default(),
            ],
            physical_sizes: None,
        }
        .to_bytes()
    }

    #[test]
    fn monitors_config_split_across_chunks_becomes_a_layout_and_a_reply() {
        let stream = message(VdAgentMessageType::MONITORS_CONFIG, &monitors(1024, 768));
        let mut agent = PseudoAgent::default();
        let mut actions = Vec::new();
        for chunk in stream.chunks(7) {
            actions.extend(agent.feed(chunk).unwrap());
        }
        assert_eq!(
            actions[0],
            AgentAction::Layout(vec![HeadRequest {
                x: 0,
                y: 0,
                width: 1024,
                height: 768
            }])
        );
        let AgentAction::Reply(reply) = &actions[1] else {
            panic!("{actions:?}")
        };
        assert_eq!(&reply[4..8], &3u32.to_le_bytes(), "VD_AGENT_REPLY");
        assert_eq!(&reply[20..], &[2, 0, 0, 0, 1, 0, 0, 0]);
    }

    #[test]
    fn capabilities_request_is_answered_and_clipboard_skipped() {
        let mut stream = message(VdAgentMessageType::CLIPBOARD, &[0x55; 5000]);
        stream.extend(message(
            VdAgentMessageType::ANNOUNCE_CAPABILITIES,
            &[1, 0, 0, 0, 0xff, 0, 0, 0],
        ));
        let mut agent = PseudoAgent::default();
        let mut actions = Vec::new();
        for chunk in stream.chunks(2048) {
            actions.extend(agent.feed(chunk).unwrap());
        }
        assert_eq!(actions.len(), 1);
        let AgentAction::Reply(reply) = &actions[0] else {
            panic!()
        };
        assert_eq!(&reply[20..], &[0, 0, 0, 0, 6, 0, 0, 0]);
    }

    #[test]
    fn rejects_wrong_protocol() {
        let mut stream = message(VdAgentMessageType::CLIPBOARD, &[]);
        stream[0] = 2;
        assert!(matches!(
            PseudoAgent::default().feed(&stream),
            Err(ChannelError::AgentProtocol(2))
        ));
    }
}
