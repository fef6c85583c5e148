//! The DISPLAY channel core: SET_ACK, waiting for the client's INIT, then the client's
//! [`DisplayPipe`] fed by display events (brief §3.2.1).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::debug;

use super::{ChannelCore, ChannelError};
use crate::display::DisplayEvent;
use crate::spice::outbox::{AckWindow, Outbox};
use crate::spice::pipe::{Canvas, DisplayPipe, PipeConfig};
use crate::spice::wire::{BaseClientMsg, ChannelType, DisplayClientMsg};

/// How long a client may take to send DISPLAY INIT (spice-server `COMMON_CLIENT_TIMEOUT`).
pub const DISPLAY_INIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Where the channel is in its startup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// SET_ACK sent; events are ignored (the state is read whole at INIT).
    ExpectInit { deadline: Instant },
    /// INIT received: the pipe runs.
    Ready,
}

/// The DISPLAY channel of one client.
pub struct DisplayChannel {
    phase: Phase,
    ack: AckWindow,
    pipe: DisplayPipe,
    canvas: Arc<dyn Canvas>,
}

impl std::fmt::Debug for DisplayChannel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DisplayChannel")
            .field("phase", &self.phase)
            .field("pipe", &self.pipe)
            .finish_non_exhaustive()
    }
}

impl DisplayChannel {
    /// A linked display channel: frames SET_ACK.
    pub fn new(
        canvas: Arc<dyn Canvas>,
        config: PipeConfig,
        now: Instant,
        out: &mut Outbox,
    ) -> Self {
        Self {
            phase: Phase::ExpectInit {
                deadline: now + DISPLAY_INIT_TIMEOUT,
            },
            ack: AckWindow::start(out),
            pipe: DisplayPipe::new(config),
            canvas,
        }
    }
}

impl ChannelCore for DisplayChannel {
    fn handle_message(
        &mut self,
        msg_type: u16,
        body: &[u8],
        _now: Instant,
        out: &mut Outbox,
    ) -> Result<(), ChannelError> {
        let msg =
            DisplayClientMsg::decode(msg_type, body).map_err(ChannelError::malformed(msg_type))?;
        match msg {
            DisplayClientMsg::Base(BaseClientMsg::AckSync(sync)) => {
                self.ack.handle_ack_sync(sync.generation)
            }
            DisplayClientMsg::Base(BaseClientMsg::Ack(_)) => self.ack.handle_ack(out.sent()),
            DisplayClientMsg::Base(BaseClientMsg::Disconnecting(d)) => {
                return Err(ChannelError::ClientDisconnecting(d.reason))
            }
            DisplayClientMsg::Base(_) => {}
            DisplayClientMsg::Init(init) => {
                if self.phase != Phase::Ready {
                    debug!(?init, "display INIT");
                    self.phase = Phase::Ready;
                    self.pipe.resync(self.canvas.as_ref());
                }
            }
            // We advertise neither STREAM_REPORT nor the preference caps, and never send GL
            // scanouts: a client sending these does not follow the protocol.
            DisplayClientMsg::StreamReport(_)
            | DisplayClientMsg::PreferredCompression(_)
            | DisplayClientMsg::GlDrawDone(_)
            | DisplayClientMsg::PreferredVideoCodecType(_)
            | DisplayClientMsg::Unknown(_) => {
                return Err(ChannelError::UnknownMessage {
                    channel: ChannelType::DISPLAY,
                    msg_type,
                })
            }
        }
        Ok(())
    }

    fn handle_event(&mut self, event: &DisplayEvent) {
        if self.phase == Phase::Ready {
            self.pipe.handle_event(event);
        }
    }

    fn summary(&self) -> Option<String> {
        Some(format!("{:?}", self.pipe.stats()))
    }

    fn handle_lagged(&mut self) {
        if self.phase == Phase::Ready {
            self.pipe.resync(self.canvas.as_ref());
        }
    }

    fn poll_transmit(&mut self, out: &mut Outbox) -> bool {
        match self.phase {
            Phase::Ready => self
                .pipe
                .poll_transmit(self.canvas.as_ref(), &self.ack, out),
            Phase::ExpectInit { .. } => false,
        }
    }

    fn deadline(&self) -> Option<Instant> {
        match self.phase {
            Phase::ExpectInit { deadline } => Some(deadline),
            Phase::Ready => None,
        }
    }

    fn handle_timeout(&mut self, now: Instant) -> Result<(), ChannelError> {
        match self.phase {
            Phase::ExpectInit { deadline } if now >= deadline => {
                Err(ChannelError::InitTimeout(DISPLAY_INIT_TIMEOUT))
            }
            _ => Ok(()),
        }
    }
}
