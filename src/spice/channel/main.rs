//! The MAIN channel core: the session greeting, the channel list, the mouse mode and the
//! pseudo-agent through which clients ask for display layouts (brief §3.1).

use std::sync::Arc;
use std::time::Instant;

use tracing::debug;

use super::agent::{AgentAction, PseudoAgent};
use super::{ChannelCore, ChannelError};
use crate::guest::DisplayControl;
use crate::spice::outbox::Outbox;
use crate::spice::session::{Session, SESSION_CHANNELS};
use crate::spice::wire::{
    BaseClientMsg, ChannelType, MainClientMsg, MouseMode, MsgMainAgentData, MsgMainAgentToken,
    MsgMainChannelsList, MsgMainInit, MsgMainMouseMode, U32Message,
};

/// AGENT_DATA messages a client may send before it needs tokens back (spice-server
/// `REDS_AGENT_WINDOW_SIZE`).
const AGENT_WINDOW: u32 = 10;

/// Tokens are returned in batches of this many (spice-server `REDS_TOKENS_TO_SEND`).
const AGENT_TOKENS_BATCH: u32 = 5;

/// Latency budget the client's multimedia clock runs behind ours (spice-server
/// `MM_TIME_DELTA`); only streams use it, we send none yet.
const MM_TIME_DELTA_MS: u32 = 400;

/// Where our multimedia clock starts, so that it never goes below zero minus the delta.
const MM_TIME_BASE_MS: u32 = 1000;

/// Server→client agent messages we keep while the client has lent us no tokens. Ours are
/// replies to its requests, so a client that sends requests without tokens loses replies.
const MAX_PENDING_AGENT_REPLIES: usize = 8;

/// The MAIN channel of one session. See [`super`] for the call order.
pub struct MainChannel {
    session: Arc<Session>,
    control: Arc<dyn DisplayControl>,
    agent: PseudoAgent,
    /// AGENT_DATA messages the client may still send.
    client_tokens: u32,
    /// Messages consumed and not yet returned as tokens.
    tokens_owed: u32,
    /// AGENT_DATA messages we may send (AGENT_START / AGENT_TOKEN); `None` before START.
    server_tokens: Option<u32>,
    pending_replies: Vec<Vec<u8>>,
}

impl std::fmt::Debug for MainChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MainChannel")
            .field("session", &self.session.id())
            .finish_non_exhaustive()
    }
}

impl MainChannel {
    /// A linked main channel: frames INIT.
    pub fn new(
        session: Arc<Session>,
        control: Arc<dyn DisplayControl>,
        started: Instant,
        out: &mut Outbox,
    ) -> Self {
        let mm_time = u32::try_from(started.elapsed().as_millis())
            .unwrap_or(u32::MAX)
            .wrapping_add(MM_TIME_BASE_MS);
        out.send(&MsgMainInit {
            session_id: session.id(),
            display_channels_hint: 1,
            supported_mouse_modes: u32::from((MouseMode::SERVER.0) | (MouseMode::CLIENT.0)),
            current_mouse_mode: u32::from(session.mouse_mode().0),
            // We play the agent, so that clients send monitor layouts (brief §3.1).
            agent_connected: 1,
            agent_tokens: AGENT_WINDOW,
            multi_media_time: mm_time.wrapping_sub(MM_TIME_DELTA_MS),
            ram_hint: 0,
        });
        Self {
            session,
            control,
            agent: PseudoAgent::default(),
            client_tokens: AGENT_WINDOW,
            tokens_owed: 0,
            server_tokens: None,
            pending_replies: Vec::new(),
        }
    }

    fn mouse_mode_msg(&self) -> MsgMainMouseMode {
        MsgMainMouseMode {
            supported_modes: MouseMode(MouseMode::SERVER.0 | MouseMode::CLIENT.0),
            current_mode: self.session.mouse_mode(),
        }
    }

    fn agent_data(&mut self, data: &[u8], out: &mut Outbox) -> Result<(), ChannelError> {
        self.client_tokens = self
            .client_tokens
            .checked_sub(1)
            .ok_or(ChannelError::AgentTokensExhausted)?;
        for action in self.agent.feed(data)? {
            match action {
                // A view-only client (input policy) does not change the guest's layout.
                AgentAction::Layout(heads) if !self.session.input_allowed() => {
                    debug!(?heads, "layout request of a view-only client ignored");
                }
                AgentAction::Layout(heads) => {
                    debug!(?heads, "client asks for a display layout");
                    self.control.request_layout(&heads);
                }
                AgentAction::Reply(reply) => {
                    if self.pending_replies.len() < MAX_PENDING_AGENT_REPLIES {
                        self.pending_replies.push(reply);
                    }
                }
            }
        }
        self.send_replies(out);
        self.tokens_owed = self.tokens_owed.saturating_add(1);
        if self.tokens_owed >= AGENT_TOKENS_BATCH {
            let tokens: MsgMainAgentToken = U32Message(self.tokens_owed);
            out.send(&tokens);
            self.client_tokens = self.client_tokens.saturating_add(self.tokens_owed);
            self.tokens_owed = 0;
        }
        Ok(())
    }

    fn send_replies(&mut self, out: &mut Outbox) {
        while let Some(tokens) = self.server_tokens.filter(|t| *t > 0) {
            if self.pending_replies.is_empty() {
                return;
            }
            let data = self.pending_replies.remove(0);
            out.send(&MsgMainAgentData { data });
            // 0xFFFFFFFF (what clients send) means unlimited; count down anyway.
            self.server_tokens = Some(tokens.saturating_sub(1));
        }
    }
}

impl ChannelCore for MainChannel {
    fn handle_message(
        &mut self,
        msg_type: u16,
        body: &[u8],
        _now: Instant,
        out: &mut Outbox,
    ) -> Result<(), ChannelError> {
        let msg =
            MainClientMsg::decode(msg_type, body).map_err(ChannelError::malformed(msg_type))?;
        match msg {
            MainClientMsg::Base(BaseClientMsg::Disconnecting(d)) => {
                return Err(ChannelError::ClientDisconnecting(d.reason))
            }
            MainClientMsg::Base(_) | MainClientMsg::ClientInfo(_) => {}
            MainClientMsg::AttachChannels(_) => {
                out.send(&MsgMainChannelsList {
                    channels: SESSION_CHANNELS.to_vec(),
                });
            }
            MainClientMsg::MouseModeRequest(req) => {
                if req.mode == MouseMode::CLIENT || req.mode == MouseMode::SERVER {
                    self.session.set_mouse_mode(req.mode);
                }
                out.send(&self.mouse_mode_msg());
            }
            MainClientMsg::AgentStart(tokens) => {
                self.server_tokens = Some(tokens.0);
                self.send_replies(out);
            }
            MainClientMsg::AgentData(data) => self.agent_data(data.data, out)?,
            MainClientMsg::AgentToken(tokens) => {
                self.server_tokens = Some(self.server_tokens.unwrap_or(0).saturating_add(tokens.0));
                self.send_replies(out);
            }
            MainClientMsg::Unknown(msg_type) => {
                return Err(ChannelError::UnknownMessage {
                    channel: ChannelType::MAIN,
                    msg_type,
                })
            }
        }
        Ok(())
    }
}
