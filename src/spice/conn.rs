//! One channel connection's task: the link handshake, then one `select!` loop around the
//! channel's sans-IO core. Only this file touches a client socket (STYLE §5.1).

use std::io::{self, IoSlice};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::{broadcast, watch};

use super::channel::{
    ChannelCore, ChannelError, CursorChannel, DisplayChannel, InputsChannel, MainChannel,
};
use super::encode::ImageCompression;
use super::image_cache::InFlight;
use super::link::{
    LinkContext, LinkError, LinkState, Linked, SecureChannels, LINK_TIMEOUT, MAX_LINK_INPUT,
};
use super::outbox::{Outbox, MAX_WRITE_SLICES};
use super::pipe::{Canvas, PipeConfig};
use super::session::{Session, SessionError, Sessions};
use super::ticket::{ServerKey, Ticketing};
use super::tls::HandshakeError;
use super::wire::{
    client_message_limit, ChannelType, DisplayCap, FrameError, Framer, MessageWriter,
};
use crate::display::{DisplayEvent, DisplayHandle};
use crate::guest::{DisplayControl, InputClient, InputClientId, InputSink};

/// Bytes read from the socket at once.
const READ_CHUNK: usize = 16 * 1024;

/// The core is asked for more only while fewer than this many bytes wait for the socket: a
/// few TCP windows, so that the socket never idles while the pipe holds work, and updates are
/// encoded as late as possible.
const LOW_WATER: usize = 256 * 1024;

/// Client messages are read only while fewer than this many bytes wait for the socket: a
/// client that sends requests (ATTACH_CHANNELS, motions…) without reading the answers is
/// left with its own full socket instead of growing our buffer.
const READ_GATE: usize = 4 * LOW_WATER;

/// Display events handed to the core per wake-up, beyond the one that woke it: a burst is
/// taken whole, and a flood still lets the loop write and read between bursts.
const MAX_EVENTS_PER_WAKE: usize = 256;

/// Client messages a connection may send per second, sustained. Real clients stay far below:
/// spice-gtk ACKs one display message in 20, its pointer stalls after 8 unacked motions, and
/// agent data is token-limited. A peer above it only costs us CPU.
const MESSAGE_RATE: u32 = 2_000;
/// Messages a connection may send in a burst above [`MESSAGE_RATE`].
const MESSAGE_BURST: u32 = 4_000;

/// How long a client may take nothing of what waits for it before it is disconnected: long
/// enough for a laptop lid closed over a coffee, or a debugger stop, to keep the session
/// (its backlog is squashed and bounded meanwhile), short enough to free a dead peer's place.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(60);

/// What every connection task shares.
pub(crate) struct Shared {
    pub(crate) key: ServerKey,
    /// Read once per link; replaced by `SpiceServer::set_ticketing`.
    pub(crate) ticketing: RwLock<Ticketing>,
    pub(crate) sessions: Sessions,
    pub(crate) display: DisplayHandle,
    pub(crate) input: Arc<dyn InputSink>,
    pub(crate) control: Arc<dyn DisplayControl>,
    pub(crate) started: Instant,
    pub(crate) pipe_budget: usize,
    pub(crate) image_compression: ImageCompression,
    pub(crate) stall_timeout: Duration,
    /// Channels refused on plaintext connections.
    pub(crate) secure_channels: SecureChannels,
}

/// Why a connection ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnError {
    #[error("Link failed")]
    Link(#[source] LinkError),
    #[error("TLS failed")]
    Tls(#[from] HandshakeError),
    #[error("Client closed the connection")]
    Closed,
    #[error("Client closed the connection in the middle of a message ({0} bytes buffered)")]
    ClosedMidMessage(usize),
    #[error("Client closed the connection during the link ({0} bytes buffered)")]
    ClosedDuringLink(usize),
    #[error("Socket error")]
    Io(#[from] io::Error),
    #[error("Client's framing is invalid")]
    Frame(#[from] FrameError),
    #[error("Client broke the channel protocol")]
    Channel(#[from] ChannelError),
    #[error("Client sent more than {rate} messages a second")]
    Flood { rate: u32 },
    #[error("The client's session ended")]
    SessionClosed,
    #[error("Client's session {0:#x} is gone")]
    NoSession(u32),
    #[error("Could not create a session")]
    Session(#[from] SessionError),
    #[error("Server shutting down")]
    Shutdown,
    #[error("Client took nothing of what waited for it for {0:?}")]
    Stalled(Duration),
}

impl ConnError {
    /// Whether the peer misbehaved (logged as a warning) rather than just left.
    pub(crate) fn is_misbehaviour(&self) -> bool {
        match self {
            // A client sent to the TLS port, as the protocol intends.
            Self::Link(LinkError::NeedSecured(_)) => false,
            Self::Link(_)
            | Self::Frame(_)
            | Self::Channel(_)
            | Self::Flood { .. }
            | Self::Stalled(_) => true,
            // Handshake failures are mostly clients refusing our certificate (or lacking
            // theirs): the client's business, logged plainly.
            _ => false,
        }
    }
}

/// A token bucket over client messages.
struct RateLimit {
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    fn new(now: Instant) -> Self {
        Self {
            tokens: f64::from(MESSAGE_BURST),
            last: now,
        }
    }

    fn take(&mut self, now: Instant) -> Result<(), ConnError> {
        let refill =
            now.saturating_duration_since(self.last).as_secs_f64() * f64::from(MESSAGE_RATE);
        self.tokens = (self.tokens + refill).min(f64::from(MESSAGE_BURST));
        self.last = now;
        if self.tokens < 1.0 {
            return Err(ConnError::Flood { rate: MESSAGE_RATE });
        }
        self.tokens -= 1.0;
        Ok(())
    }
}

/// What the log line of a finished connection names.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Identity {
    pub(crate) channel: Option<ChannelType>,
    pub(crate) session: Option<u32>,
}

/// Runs one connection to its end; `ident` is filled in as the link learns who it is.
/// `secured`: the stream is TLS (links to [`Shared::secure_channels`] are allowed).
pub(crate) async fn run<S>(
    stream: S,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    secured: bool,
    ident: &mut Identity,
) -> Result<(), ConnError>
where
    S: AsyncRead + AsyncWrite + Send + Unpin,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let (linked, leftover) = link(&mut rd, &mut wr, &shared, secured, &mut stop).await?;
    ident.channel = Some(linked.channel_type);
    let session = match linked.channel_type {
        ChannelType::MAIN => shared.sessions.create()?,
        _ => shared
            .sessions
            .get(linked.connection_id)
            .ok_or(ConnError::NoSession(linked.connection_id))?,
    };
    ident.session = Some(session.id());
    let result = match Driver::new(&shared, &session, &linked, leftover, secured) {
        Ok(mut driver) => {
            let result = driver.run(&mut rd, &mut wr, &mut stop).await;
            if let Some(summary) = driver.core.summary() {
                tracing::debug!(%summary, "channel counters");
            }
            result
        }
        Err(e) => Err(e),
    };
    // A stalled channel ends its whole client, as its main channel does.
    if linked.channel_type == ChannelType::MAIN || matches!(result, Err(ConnError::Stalled(_))) {
        shared.sessions.remove(session.id());
    }
    // Best effort: whatever the client still reads of what we framed is its business.
    let _ = wr.shutdown().await;
    result
}

async fn link<R, W>(
    rd: &mut R,
    wr: &mut W,
    shared: &Shared,
    secured: bool,
    stop: &mut watch::Receiver<bool>,
) -> Result<(Linked, Vec<u8>), ConnError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut state = LinkState::new(Instant::now());
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let deadline = state.deadline().unwrap_or_else(Instant::now);
        let n = tokio::select! {
            r = rd.read(&mut chunk) => r?,
            () = tokio::time::sleep_until(deadline.into()) => {
                return Err(ConnError::Link(LinkError::Timeout(LINK_TIMEOUT)));
            }
            _ = stop.changed() => return Err(ConnError::Shutdown),
        };
        if n == 0 {
            return Err(ConnError::ClosedDuringLink(buf.len()));
        }
        // The machine never needs more than MAX_LINK_INPUT bytes at once; a peer that sends
        // more before we answer is cut to that (the rest would be a protocol error anyway).
        let room = MAX_LINK_INPUT.saturating_sub(buf.len());
        buf.extend_from_slice(chunk.get(..n.min(room)).unwrap_or_default());
        let mut out = Vec::new();
        let step = link_step(state, &buf, shared, secured, &mut out);
        match step {
            Ok((next, used)) => {
                buf.drain(..used.min(buf.len()));
                wr.write_all(&out).await?;
                if let LinkState::Linked(linked) = next {
                    return Ok((linked, buf));
                }
                state = next;
            }
            Err(e) => {
                let _ = wr.write_all(&out).await;
                return Err(ConnError::Link(e));
            }
        }
    }
}

/// One synchronous turn of the link machine (no `.await` may see the borrowed context).
fn link_step(
    state: LinkState,
    buf: &[u8],
    shared: &Shared,
    secured: bool,
    out: &mut Vec<u8>,
) -> Result<(LinkState, usize), LinkError> {
    let ticketing = shared
        .ticketing
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let cx = LinkContext {
        key: &shared.key,
        ticketing: &ticketing,
        policy: &shared.sessions,
        secured,
        secure_channels: shared.secure_channels,
    };
    state.handle(buf, Instant::now(), &cx, out)
}

/// Receives the next display event, or never if there is no subscription.
async fn next_event(
    events: &mut Option<broadcast::Receiver<DisplayEvent>>,
) -> Result<DisplayEvent, RecvError> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// A linked channel connection: its core and everything its select loop watches.
struct Driver {
    core: Box<dyn ChannelCore>,
    out: Outbox,
    framer: Framer,
    /// Received bytes not yet framed (at most one message plus one read).
    inbuf: Vec<u8>,
    events: Option<broadcast::Receiver<DisplayEvent>>,
    /// The guest's lock LEDs, watched on inputs channels only.
    modifiers: Option<watch::Receiver<u16>>,
    closed: watch::Receiver<bool>,
    rate: RateLimit,
    stall_timeout: Duration,
    /// When the client last took something: bytes written, or (with nothing waiting for the
    /// socket) a message read, such as the ACK a backlog waits for.
    last_progress: Instant,
    /// TLS: hand each message to its own write, so that TLS records end where messages do
    /// (`Outbox::unsent_message`).
    one_record_per_message: bool,
}

impl Driver {
    /// Builds the channel's core, which frames its greeting.
    fn new(
        shared: &Shared,
        session: &Arc<Session>,
        linked: &Linked,
        inbuf: Vec<u8>,
        secured: bool,
    ) -> Result<Self, ConnError> {
        let now = Instant::now();
        let kind = linked.header_kind();
        let mut out = Outbox::new(MessageWriter::new(kind));
        let canvas: Arc<dyn Canvas> = Arc::new(shared.display.clone());
        // Subscribe before any state is read, so no change falls between (display/handle.rs).
        let events = match linked.channel_type {
            ChannelType::DISPLAY => Some(shared.display.subscribe()),
            ChannelType::CURSOR => Some(shared.display.subscribe_cursor()),
            _ => None,
        };
        let mut modifiers = None;
        let core: Box<dyn ChannelCore> = match linked.channel_type {
            ChannelType::MAIN => Box::new(MainChannel::new(
                Arc::clone(session),
                Arc::clone(&shared.control),
                shared.started,
                &mut out,
            )),
            ChannelType::DISPLAY => {
                let caps = &linked.client_channel_caps;
                let compression = shared.image_compression;
                let config = PipeConfig {
                    budget: shared.pipe_budget,
                    lz4: compression != ImageCompression::Off
                        && caps.has(DisplayCap::LZ4_COMPRESSION),
                    // QUIC needs no capability: every client decodes it.
                    quic: compression == ImageCompression::Auto,
                    monitors_config: caps.has(DisplayCap::MONITORS_CONFIG),
                };
                Box::new(DisplayChannel::new(
                    canvas,
                    config,
                    Arc::clone(session),
                    now,
                    &mut out,
                ))
            }
            ChannelType::CURSOR => Box::new(CursorChannel::new(canvas, &mut out)),
            _ => {
                let client = InputClient::new(
                    Arc::clone(&shared.input),
                    InputClientId(u64::from(session.id())),
                );
                let mut leds = shared.input.guest_modifiers();
                let initial = *leds.borrow_and_update();
                modifiers = Some(leds);
                Box::new(InputsChannel::new(
                    client,
                    canvas,
                    Arc::clone(session),
                    initial,
                    &mut out,
                ))
            }
        };
        let mut closed = session.closed();
        if *closed.borrow_and_update() {
            return Err(ConnError::SessionClosed);
        }
        Ok(Self {
            core,
            out,
            framer: Framer::new(kind, client_message_limit(linked.channel_type)),
            inbuf,
            events,
            modifiers,
            closed,
            rate: RateLimit::new(now),
            stall_timeout: shared.stall_timeout,
            last_progress: now,
            one_record_per_message: secured,
        })
    }

    /// Frames the messages in `inbuf` and hands them to the core.
    fn handle_input(&mut self) -> Result<(), ConnError> {
        let mut used_total = 0;
        while let Some((frame, used)) = self
            .framer
            .next_frame(self.inbuf.get(used_total..).unwrap_or_default())?
        {
            let now = Instant::now();
            self.rate.take(now)?;
            self.core
                .handle_message(frame.msg_type, frame.body, now, &mut self.out)?;
            used_total += used;
        }
        self.inbuf.drain(..used_total);
        Ok(())
    }

    /// Hands the core what the display worker published: `first`, then every event already
    /// waiting, so that one wake-up frames (and one write sends) the whole burst.
    fn take_events(&mut self, first: Result<DisplayEvent, RecvError>) {
        let mut received = first;
        for _ in 0..=MAX_EVENTS_PER_WAKE {
            match received {
                Ok(ev) => self.core.handle_event(&ev),
                Err(RecvError::Lagged(_)) => self.core.handle_lagged(),
                Err(RecvError::Closed) => self.events = None,
            }
            let Some(rx) = &mut self.events else {
                return;
            };
            received = match rx.try_recv() {
                Ok(ev) => Ok(ev),
                Err(TryRecvError::Empty) => return,
                Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
                Err(TryRecvError::Closed) => Err(RecvError::Closed),
            };
        }
    }

    /// The select loop (STYLE §5.2): socket in, socket out, display events, guest LEDs,
    /// deadlines, session end, server stop.
    async fn run<R, W>(
        &mut self,
        rd: &mut R,
        wr: &mut W,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), ConnError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin,
    {
        let mut chunk = vec![0u8; READ_CHUNK];
        let max_buffered = self.framer.max_frame_len();
        // One timer for the stall check, re-armed only when it fires before the stall is due.
        // A new timer on every turn of the loop is a timer registration per update, and one
        // due before the runtime's next wake-up unparks the thread waiting on the driver
        // (desktop, one client: each runtime thread switched in 136 -> 119 times a second).
        let stall_timer = tokio::time::sleep(self.stall_timeout);
        tokio::pin!(stall_timer);
        loop {
            let mut more = false;
            let mut awaited = None;
            if self.out.pending() < LOW_WATER {
                more = self.core.poll_transmit(&mut self.out);
                awaited = self.core.awaited();
            }
            let deadline = self.core.deadline();
            let waiting = self.out.pending() > 0 || self.core.has_backlog();
            if !waiting {
                self.last_progress = Instant::now();
            }
            tokio::select! {
                r = rd.read(&mut chunk),
                    if self.inbuf.len() <= max_buffered && self.out.pending() < READ_GATE =>
                {
                    let n = r?;
                    if n == 0 {
                        return Err(if self.inbuf.is_empty() {
                            ConnError::Closed
                        } else {
                            ConnError::ClosedMidMessage(self.inbuf.len())
                        });
                    }
                    if self.out.pending() == 0 {
                        self.last_progress = Instant::now();
                    }
                    self.inbuf.extend_from_slice(chunk.get(..n).unwrap_or_default());
                    self.handle_input()?;
                }
                w = write_some(wr, &self.out, self.one_record_per_message),
                    if self.out.pending() > 0 =>
                {
                    let n = w?;
                    if n == 0 {
                        return Err(ConnError::Io(io::ErrorKind::WriteZero.into()));
                    }
                    self.out.advance(n);
                    self.last_progress = Instant::now();
                }
                ev = next_event(&mut self.events) => self.take_events(ev),
                m = next_change(&mut self.modifiers) => match m {
                    Some(m) => self.core.handle_guest_modifiers(m, &mut self.out),
                    None => self.modifiers = None,
                },
                () = encoded(awaited.as_deref()) => {}
                () = sleep_until_opt(deadline) => self.core.handle_timeout(Instant::now())?,
                () = &mut stall_timer, if waiting => {
                    let due = self.last_progress + self.stall_timeout;
                    if Instant::now() >= due {
                        return Err(ConnError::Stalled(self.stall_timeout));
                    }
                    stall_timer.as_mut().reset(due.into());
                }
                _ = self.closed.changed() => {
                    // At shutdown every session closes too; name the real cause.
                    return Err(if *stop.borrow() {
                        ConnError::Shutdown
                    } else {
                        ConnError::SessionClosed
                    });
                }
                _ = stop.changed() => return Err(ConnError::Shutdown),
                () = std::future::ready(()), if more => tokio::task::yield_now().await,
            }
        }
    }
}

/// One write of what waits in `out`: every piece at once (a vectored write: shared image
/// payloads go from the cache to the socket without a copy into this client's buffer), or
/// the rest of one message for TLS (see [`Outbox::unsent_slices`]).
async fn write_some<W>(wr: &mut W, out: &Outbox, one_message: bool) -> io::Result<usize>
where
    W: AsyncWrite + Unpin,
{
    let mut slices = [IoSlice::new(&[]); MAX_WRITE_SLICES];
    let n = out.unsent_slices(one_message, &mut slices);
    wr.write_vectored(slices.get(..n).unwrap_or_default()).await
}

/// The next value of a watched LED state; `None` once its sender is gone; never without one.
async fn next_change(rx: &mut Option<watch::Receiver<u16>>) -> Option<u16> {
    match rx {
        Some(rx) => match rx.changed().await {
            Ok(()) => Some(*rx.borrow_and_update()),
            Err(_) => None,
        },
        None => std::future::pending().await,
    }
}

/// Resolves once the awaited encoding is in; never without one.
async fn encoded(awaited: Option<&InFlight>) {
    match awaited {
        Some(slot) => slot.done().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d.into()).await,
        None => std::future::pending().await,
    }
}

/// How long a connection may take to leave after the server asks it to.
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
