//! The DISPLAY channel core: SET_ACK, waiting for the client's INIT, then the client's
//! [`DisplayPipe`] fed by display events (brief §3.2.1).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::debug;

use super::{ChannelCore, ChannelError};
use crate::display::DisplayEvent;
use crate::spice::image_cache::InFlight;
use crate::spice::outbox::{AckWindow, Outbox};
use crate::spice::pipe::{Canvas, DisplayPipe, PipeConfig};
use crate::spice::session::{DisplayStats, Session};
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
    /// Where the client's statistics are published.
    session: Arc<Session>,
    peak_pending: usize,
    bytes_framed: u64,
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
    /// A linked display channel of `session`: frames SET_ACK. Its pipe shares encodings
    /// through the session's image cache and makes large ones in the sessions' encode pool.
    pub fn new(
        canvas: Arc<dyn Canvas>,
        config: PipeConfig,
        session: Arc<Session>,
        now: Instant,
        out: &mut Outbox,
    ) -> Self {
        let pipe = DisplayPipe::new(config)
            .with_cache(Arc::clone(session.image_cache()))
            .with_encode_pool(Arc::clone(session.encode_pool()), Arc::clone(&canvas));
        let this = Self {
            phase: Phase::ExpectInit {
                deadline: now + DISPLAY_INIT_TIMEOUT,
            },
            ack: AckWindow::start(out),
            pipe,
            canvas,
            session,
            peak_pending: 0,
            bytes_framed: 0,
        };
        this.publish(out.pending());
        this
    }

    fn publish(&self, pending: usize) {
        self.session.set_display_stats(DisplayStats {
            pipe: self.pipe.stats(),
            lz4: self.pipe.config().lz4,
            quic: self.pipe.config().quic,
            pending_bytes: pending,
            peak_pending_bytes: self.peak_pending,
            bytes_framed: self.bytes_framed,
        });
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
            Phase::Ready => {
                let before = out.pending();
                let more = self
                    .pipe
                    .poll_transmit(self.canvas.as_ref(), &self.ack, out);
                let pending = out.pending();
                if pending != before {
                    // Only framing adds to `pending`, so its peak is seen right here.
                    let framed = pending.saturating_sub(before);
                    self.bytes_framed = self
                        .bytes_framed
                        .saturating_add(u64::try_from(framed).unwrap_or(u64::MAX));
                    self.peak_pending = self.peak_pending.max(pending);
                    self.publish(pending);
                }
                more
            }
            Phase::ExpectInit { .. } => false,
        }
    }

    fn has_backlog(&self) -> bool {
        self.phase == Phase::Ready && self.pipe.has_work()
    }

    fn awaited(&self) -> Option<Arc<InFlight>> {
        self.pipe.awaited()
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
