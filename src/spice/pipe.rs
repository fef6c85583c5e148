//! A display client's pipe: what it still has to receive, kept as state rather than as a
//! queue of encoded messages, so that a slow client gets squashed updates and bounded memory.
//!
//! # How it works
//! Display events do not encode anything. Damage joins the client's dirty region of the
//! primary; surface changes, COPY_BITS, monitors and marks join a short ordered queue. When
//! the connection can take more ([`DisplayPipe::poll_transmit`]: the ACK window is open and
//! fewer than `budget` bytes are waiting for the socket), the queue is sent first, then the
//! dirty region, each rectangle read *now* from the canonical surface. However far behind a
//! client falls, it holds at most the queue (bounded), the dirty rectangles (bounded) and the
//! bytes of one message beyond its budget.
//!
//! Invariant: once the queue is sent, the client's primary equals the canonical one outside
//! the dirty region (as of the events handled). Hence COPY_BITS is replayed only when its
//! source is clean, no read newer than the event has reached the client, and no dirty
//! rectangle can be sent ahead of it (no Flush is queued); otherwise its destination is
//! marked dirty.
//!
//! A client that falls behind a guest drawing natural images faster than it takes them (video)
//! is sent, for a dirty rectangle, the newest QUIC encoding another client already made of it
//! when that is newer than what the client has and the current version is not encoded yet:
//! the rectangle stays dirty (its reads record the older generation) and is taken up again at
//! the next call, by which time a newer encoding may be there too. Each behind client reading
//! its own version would otherwise spend a QUIC encoding (about 11 ns per pixel) of its own on
//! every frame it gets.
//!
//! Only the primary surface (0) reaches clients: every draw the guest makes elsewhere ends up
//! in the primary through the worker's rendering, and is sent as pixels.

use std::collections::VecDeque;
use std::sync::Arc;

use super::encode::{RawImage, BGR_BYTES};
use super::encode_pool::EncodePool;
use super::image_cache::{Encoding, ImageCache, ImageKey, InFlight, Lookup, Made, Older};
use super::outbox::{AckWindow, Outbox};
use super::region::{DirtyRegion, RecentReads};
use super::wire::{
    Clip, DisplayBase, EncodedImage, Head, Image, ImageData, ImageDescriptor, ImageFlags,
    ImageType, MsgDisplayCopyBits, MsgDisplayDrawCopy, MsgDisplayMark, MsgDisplayMonitorsConfig,
    MsgDisplayReset, MsgDisplaySurfaceCreate, MsgDisplaySurfaceDestroy, Point, QMask,
    Rect as WireRect, Ropd, SurfaceFlags, SurfaceFormat,
};
use crate::display::{self, DisplayEvent, Rect};

pub use canvas::Canvas;

/// The surface clients are shown.
const PRIMARY: u32 = 0;

/// Default byte budget of a pipe: one 1920 × 1080 32-bit primary. A client may hold that
/// much encoded-but-unwritten data before its updates start being squashed.
pub const DEFAULT_PIPE_BUDGET: usize = 1920 * 1080 * 4;

/// COPY_BITS queued at most; more are turned into damage (a scrolling guest does one per
/// frame, and a client this far behind is better served by one fresh image).
const MAX_QUEUED_COPY_BITS: usize = 32;

/// Messages framed per [`DisplayPipe::poll_transmit`] call, so one busy client yields to the
/// others between batches (STYLE §5.5).
const MAX_MESSAGES_PER_POLL: usize = 64;

/// Bytes encoded per [`DisplayPipe::poll_transmit`] call before it yields: a few milliseconds
/// of reading and encoding, so clients sharing a runtime thread take turns (one message
/// larger than this still goes out whole).
const MAX_BYTES_PER_POLL: usize = 1024 * 1024;

/// The primary's size as a client knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Size {
    width: u32,
    height: u32,
}

impl Size {
    fn rect(self) -> Rect {
        Rect::ltrb(0, 0, clamp_i32(self.width), clamp_i32(self.height))
    }
}

fn clamp_i32(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

/// One ordered step for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Item {
    Create(Size),
    Destroy,
    /// Send the whole dirty region before going on (the first image before MARK).
    Flush,
    MonitorsConfig,
    Mark,
    CopyBits {
        src: display::Point,
        dest: Rect,
    },
    Reset,
}

/// How the pipe encodes images for this client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PipeConfig {
    /// Encoded bytes that may wait for the socket before the pipe stops encoding.
    pub budget: usize,
    /// The client decodes LZ4 images (display cap LZ4_COMPRESSION).
    pub lz4: bool,
    /// Images LZ4 does not shrink go out as QUIC rather than raw (every client decodes it).
    pub quic: bool,
    /// The client understands MONITORS_CONFIG (display cap MONITORS_CONFIG).
    pub monitors_config: bool,
}

/// Counters for tests and logs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PipeStats {
    /// DRAW_COPY messages framed.
    pub draws: u64,
    /// Damage events that joined an already dirty area or were covered by a read.
    pub squashed: u64,
    /// COPY_BITS replayed as such.
    pub copy_bits: u64,
    /// Images sent as LZ4.
    pub lz4_images: u64,
    /// Images sent as QUIC.
    pub quic_images: u64,
    /// Images whose encoding came from the encode-once cache (another client made it).
    pub cache_hits: u64,
    /// Of those, older versions of a rectangle sent to a client behind (its rectangle kept
    /// dirty).
    pub older_images: u64,
    /// Images this client had made in the encode pool.
    pub pooled: u64,
    /// Images this client waited for while another client made them.
    pub waited: u64,
}

/// The per-client display pipe. See the module documentation.
#[derive(Debug)]
pub struct DisplayPipe {
    config: PipeConfig,
    queue: VecDeque<Item>,
    /// The primary as the client will know it once `queue` is sent.
    client_primary: Option<Size>,
    /// A generation no later than the client's primary's creation: cached encodings of an
    /// older content version belong to an earlier surface.
    primary_since: u64,
    dirty: DirtyRegion,
    reads: RecentReads,
    next_image_id: u64,
    stats: PipeStats,
    /// Encodings shared with the server's other clients.
    cache: Option<Arc<ImageCache>>,
    /// Where large encodings are made, off the client's thread.
    offload: Option<Offload>,
    /// The image of a dirty rectangle being made elsewhere: nothing more is framed until it
    /// is in, so messages keep the order they would have had with the encoding made here.
    awaiting: Option<Awaiting>,
    /// The last [`DisplayPipe::poll_transmit`] stopped because that image was not in.
    stopped_on_image: bool,
}

/// The encode pool and the display its jobs read.
struct Offload {
    pool: Arc<EncodePool>,
    canvas: Arc<dyn Canvas>,
}

impl std::fmt::Debug for Offload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Offload").finish_non_exhaustive()
    }
}

/// A dirty rectangle whose image is being made by the encode pool or another client.
#[derive(Debug)]
struct Awaiting {
    rect: Rect,
    slot: Arc<InFlight>,
    whose: Whose,
}

#[derive(Debug, Clone, Copy)]
enum Whose {
    /// This pipe's claim, made in the pool: whatever it read is the rectangle now.
    Own,
    /// Another client's encoding of the version looked up (`content`, as of `generation`).
    Other { content: u64, generation: u64 },
}

/// What [`DisplayPipe::encode_image`] has for a rectangle.
enum Step {
    Ready(Payload),
    Wait(Awaiting),
}

impl DisplayPipe {
    /// An empty pipe for a client that has nothing yet.
    pub fn new(config: PipeConfig) -> Self {
        Self {
            config,
            queue: VecDeque::new(),
            client_primary: None,
            primary_since: 0,
            dirty: DirtyRegion::default(),
            reads: RecentReads::default(),
            next_image_id: 1,
            stats: PipeStats::default(),
            cache: None,
            offload: None,
            awaiting: None,
            stopped_on_image: false,
        }
    }

    /// Shares encodings through `cache` with every other pipe using it.
    pub fn with_cache(mut self, cache: Arc<ImageCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Makes large encodings in `pool`, whose jobs read `canvas` (the display the pipe is
    /// given), so that they do not hold up the client's thread.
    pub fn with_encode_pool(mut self, pool: Arc<EncodePool>, canvas: Arc<dyn Canvas>) -> Self {
        self.offload = Some(Offload { pool, canvas });
        self
    }

    /// The encoding that stopped the last [`DisplayPipe::poll_transmit`]: the connection
    /// calls it again once the encoding is in (at once if it came in since). `None` when the
    /// call stopped for another reason (the ACK window, the budget), whose end wakes the
    /// connection anyway, so that a finished encoding never makes it spin.
    pub fn awaited(&self) -> Option<Arc<InFlight>> {
        self.awaiting
            .as_ref()
            .filter(|_| self.stopped_on_image)
            .map(|a| Arc::clone(&a.slot))
    }

    /// How this pipe encodes images.
    pub fn config(&self) -> PipeConfig {
        self.config
    }

    /// Counters so far.
    pub fn stats(&self) -> PipeStats {
        self.stats
    }

    /// Whether anything waits to be sent.
    pub fn has_work(&self) -> bool {
        !self.queue.is_empty() || !self.dirty.is_empty() || self.awaiting.is_some()
    }

    /// Brings the client to the canonical state from scratch or after missed events: the
    /// primary is (re)created if the client's differs, and all of it marked dirty.
    pub fn resync(&mut self, canvas: &dyn Canvas) {
        // All of the primary is sent afresh: an image still on its way is of no use.
        self.awaiting = None;
        let primary = canvas
            .surfaces()
            .into_iter()
            .find(|s| s.surface_id == PRIMARY);
        match primary {
            Some(info) => {
                let size = Size {
                    width: info.width,
                    height: info.height,
                };
                // Missed events may have replaced the surface by one of the same size.
                self.primary_since = info.generation;
                if self.client_primary == Some(size) {
                    self.dirty.add(size.rect());
                    self.push_monitors_config();
                } else {
                    self.surface_created(size);
                }
            }
            None => self.surface_destroyed(),
        }
    }

    /// Applies one display event.
    pub fn handle_event(&mut self, event: &DisplayEvent) {
        match *event {
            DisplayEvent::SurfaceCreated(info) if info.surface_id == PRIMARY => {
                self.primary_since = info.generation;
                self.surface_created(Size {
                    width: info.width,
                    height: info.height,
                });
            }
            DisplayEvent::SurfaceDestroyed { surface_id, .. } if surface_id == PRIMARY => {
                self.surface_destroyed();
            }
            DisplayEvent::Damage {
                surface_id,
                rect,
                generation,
            } if surface_id == PRIMARY => self.damage(rect, generation),
            DisplayEvent::CopyBits {
                surface_id,
                src,
                dest,
                generation,
            } if surface_id == PRIMARY => self.copy_bits(src, dest, generation),
            DisplayEvent::MonitorsConfig { .. } => self.push_monitors_config(),
            DisplayEvent::Reset { .. } => {
                self.queue.clear();
                self.queue.push_back(Item::Reset);
                self.client_primary = None;
                self.forget_pixels();
            }
            _ => {}
        }
    }

    fn surface_created(&mut self, size: Size) {
        if self.client_primary.is_some() {
            self.surface_destroyed();
        }
        self.queue.push_back(Item::Create(size));
        self.client_primary = Some(size);
        self.forget_pixels();
        self.dirty.add(size.rect());
        self.queue.push_back(Item::Flush);
        if self.config.monitors_config {
            self.queue.push_back(Item::MonitorsConfig);
        }
        self.queue.push_back(Item::Mark);
    }

    fn surface_destroyed(&mut self) {
        if self.client_primary.is_none() {
            return;
        }
        // Before every queued Create the client has no primary (surface_created destroys
        // first), so a Create the client has not seen is forgotten with all that follows it.
        match self
            .queue
            .iter()
            .rposition(|i| matches!(i, Item::Create(_)))
        {
            Some(at) => self.queue.truncate(at),
            None => self.queue.push_back(Item::Destroy),
        }
        // The dirty region is dropped below, so a Flush of the old surface still queued has
        // nothing left to wait for; left in place it would send the *next* surface's
        // rectangles before that surface is created.
        self.queue.retain(|i| *i != Item::Flush);
        self.client_primary = None;
        self.forget_pixels();
    }

    /// Forgets what the client is owed of the old primary's pixels: the dirty region, the
    /// reads recorded for COPY_BITS, and an image still being made.
    fn forget_pixels(&mut self) {
        self.dirty.clear();
        self.reads.clear();
        self.awaiting = None;
    }

    fn damage(&mut self, rect: Rect, generation: u64) {
        let Some(size) = self.client_primary else {
            return;
        };
        let Some(rect) = rect.intersect(&size.rect()) else {
            return;
        };
        if self.reads.covers(&rect, generation)
            || self.dirty.rects().iter().any(|d| d.contains(&rect))
        {
            self.stats.squashed = self.stats.squashed.saturating_add(1);
            return;
        }
        self.dirty.add(rect);
    }

    fn copy_bits(&mut self, src: display::Point, dest: Rect, generation: u64) {
        let Some(size) = self.client_primary else {
            return;
        };
        let src_rect = dest.translate(
            i64::from(src.x) - i64::from(dest.left),
            i64::from(src.y) - i64::from(dest.top),
        );
        let queued = self
            .queue
            .iter()
            .filter(|i| matches!(i, Item::CopyBits { .. }))
            .count();
        let replayable = match src_rect {
            Some(s) => {
                size.rect().contains(&s)
                    && size.rect().contains(&dest)
                    && !self.dirty.intersects(&s)
                    && generation > self.reads.newest()
                    && queued < MAX_QUEUED_COPY_BITS
                    // A pending Flush sends dirty rectangles read later than this event
                    // before the COPY_BITS behind it, and one of them may be its source.
                    && !self.queue.contains(&Item::Flush)
                    // So does an image still being made: its read is not recorded yet.
                    && self.awaiting.is_none()
            }
            None => false,
        };
        if replayable {
            self.queue.push_back(Item::CopyBits { src, dest });
        } else {
            self.damage(dest, generation);
        }
    }

    fn push_monitors_config(&mut self) {
        if !self.config.monitors_config || self.client_primary.is_none() {
            return;
        }
        // Latest value: one queued MONITORS_CONFIG is enough, it is built when sent.
        if !self.queue.contains(&Item::MonitorsConfig) {
            self.queue.push_back(Item::MonitorsConfig);
        }
    }

    /// Frames what the client should get next while `ack` allows and fewer than the budget's
    /// bytes wait in `out`, at most [`MAX_MESSAGES_PER_POLL`] messages or
    /// [`MAX_BYTES_PER_POLL`] bytes. Returns true only when it stopped at such a cap with work
    /// left (call again after yielding); when the window or
    /// the budget stops it, an ACK or the socket draining is what makes calling again useful.
    pub fn poll_transmit(
        &mut self,
        canvas: &dyn Canvas,
        ack: &AckWindow,
        out: &mut Outbox,
    ) -> bool {
        // Rectangles sent at an older version wait for the next call, when the socket has
        // taken what was framed: taken up again now they would be encoded at once.
        let mut behind = Vec::new();
        let more = self.transmit(canvas, ack, out, &mut behind);
        for rect in behind {
            self.dirty.add(rect);
        }
        more
    }

    fn transmit(
        &mut self,
        canvas: &dyn Canvas,
        ack: &AckWindow,
        out: &mut Outbox,
        behind: &mut Vec<Rect>,
    ) -> bool {
        let start = out.pending();
        self.stopped_on_image = false;
        for _ in 0..MAX_MESSAGES_PER_POLL {
            if !self.has_work() {
                return false;
            }
            if out.pending().saturating_sub(start) >= MAX_BYTES_PER_POLL {
                return true;
            }
            if !ack.is_open(out.sent()) {
                return false;
            }
            let next_len = self.next_len();
            if out.pending() > 0 && out.pending().saturating_add(next_len) > self.config.budget {
                return false;
            }
            if self.awaiting.is_some() {
                if !self.take_awaited(out, behind) {
                    self.stopped_on_image = true;
                    return false;
                }
            } else {
                self.send_next(canvas, out, behind);
            }
        }
        self.has_work()
    }

    /// A guess of the next message's size (its raw size), to keep within the budget.
    fn next_len(&self) -> usize {
        let rect_bytes = |r: &Rect| {
            let px = r.width().saturating_mul(r.height());
            usize::try_from(px).map_or(0, |px| px.saturating_mul(BGR_BYTES))
        };
        if let Some(awaiting) = &self.awaiting {
            return rect_bytes(&awaiting.rect);
        }
        match self.queue.front() {
            Some(Item::Flush) | None => self.dirty.rects().first().map_or(0, rect_bytes),
            Some(_) => 64,
        }
    }

    fn send_next(&mut self, canvas: &dyn Canvas, out: &mut Outbox, behind: &mut Vec<Rect>) {
        let item = match self.queue.front() {
            Some(Item::Flush) => {
                if self.dirty.is_empty() {
                    self.queue.pop_front();
                } else {
                    self.send_dirty_rect(canvas, out, behind);
                }
                return;
            }
            Some(_) => self.queue.pop_front(),
            None => None,
        };
        let Some(item) = item else {
            self.send_dirty_rect(canvas, out, behind);
            return;
        };
        match item {
            Item::Create(size) => {
                out.send(&MsgDisplaySurfaceCreate {
                    surface_id: PRIMARY,
                    width: size.width,
                    height: size.height,
                    format: SurfaceFormat::FMT_32_XRGB,
                    flags: SurfaceFlags::PRIMARY,
                });
            }
            Item::Destroy => {
                out.send(&MsgDisplaySurfaceDestroy {
                    surface_id: PRIMARY,
                });
            }
            Item::Flush => {}
            Item::MonitorsConfig => {
                out.send(&self.monitors_config(canvas));
            }
            Item::Mark => {
                out.send(&MsgDisplayMark::default());
            }
            Item::Reset => {
                out.send(&MsgDisplayReset::default());
            }
            Item::CopyBits { src, dest } => {
                self.stats.copy_bits = self.stats.copy_bits.saturating_add(1);
                out.send(&MsgDisplayCopyBits {
                    base: display_base(dest),
                    src_pos: Point { x: src.x, y: src.y },
                });
            }
        }
    }

    /// The guest's heads on the primary, or one head covering the primary: spice-gtk's
    /// widget shows nothing until a head with monitor_id 0 arrives (brief §3.2.6, §7.8).
    fn monitors_config(&self, canvas: &dyn Canvas) -> MsgDisplayMonitorsConfig {
        let size = self.client_primary.unwrap_or(Size {
            width: 0,
            height: 0,
        });
        let guest: Vec<Head> = canvas
            .monitors()
            .iter()
            .filter(|h| h.surface_id == PRIMARY && h.width > 0 && h.height > 0)
            .map(|h| Head {
                monitor_id: h.id,
                surface_id: PRIMARY,
                width: h.width,
                height: h.height,
                x: h.x,
                y: h.y,
                flags: 0,
            })
            .collect();
        let heads = if guest.iter().any(|h| h.monitor_id == 0) {
            guest
        } else {
            vec![Head {
                monitor_id: 0,
                surface_id: PRIMARY,
                width: size.width,
                height: size.height,
                x: 0,
                y: 0,
                flags: 0,
            }]
        };
        MsgDisplayMonitorsConfig {
            max_allowed: 1,
            heads,
        }
    }

    fn send_dirty_rect(&mut self, canvas: &dyn Canvas, out: &mut Outbox, behind: &mut Vec<Rect>) {
        let Some(rect) = self.dirty.pop() else {
            return;
        };
        // The surface may have changed size since: its events will follow and fix the
        // client; until then there is nothing consistent to send for this rectangle.
        match self.encode_image(canvas, rect) {
            Some(Step::Ready(payload)) => self.send_image(rect, payload, out, behind),
            Some(Step::Wait(awaiting)) => self.awaiting = Some(awaiting),
            None => {}
        }
    }

    /// Sends the awaited image once it is in; false while it is not.
    fn take_awaited(&mut self, out: &mut Outbox, behind: &mut Vec<Rect>) -> bool {
        let Some(made) = self.awaiting.as_ref().map(|a| a.slot.get()) else {
            return true;
        };
        let Some(made) = made.map(|m| m.cloned()) else {
            return false;
        };
        let Some(Awaiting { rect, whose, .. }) = self.awaiting.take() else {
            return true;
        };
        match (whose, made) {
            (Whose::Own, Some(made)) => self.send_image(rect, Payload::read(made), out, behind),
            // Read nothing: as when encoding here, the surface's events fix the client.
            (Whose::Own, None) => {}
            (
                Whose::Other {
                    content,
                    generation,
                },
                Some(made),
            ) if made.content == content => {
                self.stats.cache_hits = self.stats.cache_hits.saturating_add(1);
                let payload = Payload {
                    generation,
                    image: made.image,
                    current: true,
                };
                self.send_image(rect, payload, out, behind);
            }
            // The other client read another version (or nothing): look again.
            (Whose::Other { .. }, _) => self.dirty.add(rect),
        }
        true
    }

    fn send_image(
        &mut self,
        rect: Rect,
        payload: Payload,
        out: &mut Outbox,
        behind: &mut Vec<Rect>,
    ) {
        let Payload {
            generation,
            image: payload,
            current,
        } = payload;
        if payload.image_type == ImageType::LZ4 {
            self.stats.lz4_images = self.stats.lz4_images.saturating_add(1);
        } else if payload.image_type == ImageType::QUIC {
            self.stats.quic_images = self.stats.quic_images.saturating_add(1);
        }
        self.reads.record(rect, generation);
        if !current {
            behind.push(rect);
        }
        let (width, height) = rect_size(&rect);
        let id = self.next_image_id;
        self.next_image_id = self.next_image_id.wrapping_add(1);
        let msg = MsgDisplayDrawCopy {
            base: display_base(rect),
            src_bitmap: Image {
                descriptor: ImageDescriptor {
                    id,
                    flags: ImageFlags::NONE,
                    width,
                    height,
                },
                data: ImageData::Encoded(payload),
            },
            src_area: WireRect {
                top: 0,
                left: 0,
                bottom: clamp_i32(height),
                right: clamp_i32(width),
            },
            rop_descriptor: Ropd::OP_PUT,
            scale_mode: 0,
            mask: QMask::default(),
        };
        out.send_split(&msg, MsgDisplayDrawCopy::encode_head);
        self.stats.draws = self.stats.draws.saturating_add(1);
    }

    /// The wire payload of `rect` of the primary: another client's encoding of the same
    /// pixels if the shared cache has it (no pixel is read then), else one of older pixels
    /// (see the module documentation), else read and encoded (LZ4 when the client takes it
    /// and it pays, else QUIC when configured and smaller, else a raw bitmap) and kept for
    /// the others. An encoding another client is making, or a large one this pipe hands to
    /// the encode pool, is waited for.
    fn encode_image(&mut self, canvas: &dyn Canvas, rect: Rect) -> Option<Step> {
        let encoding = match (self.config.lz4, self.config.quic) {
            (true, true) => Encoding::Lz4OrQuic,
            (true, false) => Encoding::Lz4,
            (false, true) => Encoding::Quic,
            (false, false) => Encoding::Raw,
        };
        let Some(cache) = &self.cache else {
            let made = read_and_encode(canvas, rect, encoding)?;
            return Some(Step::Ready(Payload::read(made)));
        };
        let version = canvas.rect_version(PRIMARY, rect)?;
        let key = ImageKey {
            surface_id: PRIMARY,
            content: version.content,
            rect,
            encoding,
        };
        if let Some(older) = self.older_image(cache, key) {
            self.stats.older_images = self.stats.older_images.saturating_add(1);
            self.stats.cache_hits = self.stats.cache_hits.saturating_add(1);
            return Some(Step::Ready(Payload {
                generation: older.generation,
                image: older.image,
                current: false,
            }));
        }
        match cache.lookup(key) {
            Lookup::Hit(image) => {
                self.stats.cache_hits = self.stats.cache_hits.saturating_add(1);
                // A hit's pixels are those of `version`, unchanged up to its generation.
                Some(Step::Ready(Payload {
                    generation: version.generation,
                    image,
                    current: true,
                }))
            }
            Lookup::Busy(slot) => {
                self.stats.waited = self.stats.waited.saturating_add(1);
                Some(Step::Wait(Awaiting {
                    rect,
                    slot,
                    whose: Whose::Other {
                        content: version.content,
                        generation: version.generation,
                    },
                }))
            }
            Lookup::Miss(claim) => match &self.offload {
                Some(offload) if worth_offloading(encoding, &rect) => {
                    self.stats.pooled = self.stats.pooled.saturating_add(1);
                    let slot = Arc::clone(claim.slot());
                    let canvas = Arc::clone(&offload.canvas);
                    offload.pool.run(Box::new(move || {
                        claim.finish(read_and_encode(canvas.as_ref(), rect, encoding));
                    }));
                    Some(Step::Wait(Awaiting {
                        rect,
                        slot,
                        whose: Whose::Own,
                    }))
                }
                _ => {
                    let made = read_and_encode(canvas, rect, encoding);
                    claim.finish(made.clone());
                    made.map(|m| Step::Ready(Payload::read(m)))
                }
            },
        }
    }

    /// A cached QUIC encoding of `key`'s rectangle at an older version, newer than what the
    /// client holds, of the client's primary, while the current version is not encoded.
    /// Only QUIC: it costs more to make than to send; cheaper encodings are made afresh.
    fn older_image(&self, cache: &ImageCache, key: ImageKey) -> Option<Older> {
        if !self.config.quic {
            return None;
        }
        cache.older(key, self.primary_since, |older| {
            older.image.image_type == ImageType::QUIC
                && !self.reads.covers(&key.rect, older.generation)
        })
    }
}

/// What [`DisplayPipe::encode_image`] found for a rectangle.
struct Payload {
    /// The display generation the pixels are as of.
    generation: u64,
    image: EncodedImage,
    /// False for an older version than the rectangle's current one.
    current: bool,
}

impl Payload {
    /// A read made for this client: the rectangle as it is now.
    fn read(made: Made) -> Self {
        Self {
            generation: made.generation,
            image: made.image,
            current: true,
        }
    }
}

/// Pixels from which an encoding goes to the encode pool: about a millisecond of work
/// (measured per pixel: raw 24-bit read 0.2-0.5 ns, LZ4 about 1.2 ns, QUIC about 11 ns),
/// against the two thread hand-offs (some 20 µs) the pool costs.
fn worth_offloading(encoding: Encoding, rect: &Rect) -> bool {
    let min_pixels: u64 = match encoding {
        Encoding::Raw => 2 << 20,
        Encoding::Lz4 => 512 << 10,
        Encoding::Quic | Encoding::Lz4OrQuic => 64 << 10,
    };
    let side = |v| u64::try_from(v).unwrap_or(0);
    side(rect.width()).saturating_mul(side(rect.height())) >= min_pixels
}

/// Reads `rect` of the primary now and encodes it.
fn read_and_encode(canvas: &dyn Canvas, rect: Rect, encoding: Encoding) -> Option<Made> {
    let (width, height) = rect_size(&rect);
    let mut raw = RawImage::new(width, height)?;
    let stride = raw.stride();
    let version = canvas.read_rect_bgr(PRIMARY, rect, stride, raw.pixels())?;
    let image = match encoding {
        Encoding::Raw => raw.into_raw(),
        Encoding::Lz4 => raw.into_lz4_or_raw(),
        Encoding::Quic => raw.into_quic_or_raw(),
        Encoding::Lz4OrQuic => raw.into_lz4_or_quic_or_raw(),
    }?;
    Some(Made {
        image,
        content: version.content,
        generation: version.generation,
    })
}

fn rect_size(rect: &Rect) -> (u32, u32) {
    let w = u32::try_from(rect.width()).unwrap_or(0);
    let h = u32::try_from(rect.height()).unwrap_or(0);
    (w, h)
}

fn display_base(rect: Rect) -> DisplayBase {
    DisplayBase {
        surface_id: PRIMARY,
        bbox: WireRect {
            top: rect.top,
            left: rect.left,
            bottom: rect.bottom,
            right: rect.right,
        },
        clip: Clip::None,
    }
}

mod canvas;
#[cfg(test)]
mod tests;
