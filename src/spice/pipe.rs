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
use super::image_cache::{Encoding, ImageCache, ImageKey, Made, Older};
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
        }
    }

    /// Shares encodings through `cache` with every other pipe using it.
    pub fn with_cache(mut self, cache: Arc<ImageCache>) -> Self {
        self.cache = Some(cache);
        self
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
        !self.queue.is_empty() || !self.dirty.is_empty()
    }

    /// Brings the client to the canonical state from scratch or after missed events: the
    /// primary is (re)created if the client's differs, and all of it marked dirty.
    pub fn resync(&mut self, canvas: &dyn Canvas) {
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
                self.dirty.clear();
                self.reads.clear();
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
        self.dirty.clear();
        self.dirty.add(size.rect());
        self.reads.clear();
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
        self.dirty.clear();
        self.reads.clear();
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
            self.send_next(canvas, out, behind);
        }
        self.has_work()
    }

    /// A guess of the next message's size (its raw size), to keep within the budget.
    fn next_len(&self) -> usize {
        let rect_bytes = |r: &Rect| {
            let px = r.width().saturating_mul(r.height());
            usize::try_from(px).map_or(0, |px| px.saturating_mul(BGR_BYTES))
        };
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
        let Some(Payload {
            generation,
            image: payload,
            current,
        }) = self.encode_image(canvas, rect)
        else {
            return;
        };
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
    /// (see the module documentation), else read and encoded here (LZ4 when the client takes
    /// it and it pays, else QUIC when configured and smaller, else a raw bitmap) and kept for
    /// the others.
    fn encode_image(&mut self, canvas: &dyn Canvas, rect: Rect) -> Option<Payload> {
        let (width, height) = rect_size(&rect);
        let encoding = match (self.config.lz4, self.config.quic) {
            (true, true) => Encoding::Lz4OrQuic,
            (true, false) => Encoding::Lz4,
            (false, true) => Encoding::Quic,
            (false, false) => Encoding::Raw,
        };
        let read = |cell: &mut Option<u64>| {
            let mut raw = RawImage::new(width, height)?;
            let stride = raw.stride();
            let version = canvas.read_rect_bgr(PRIMARY, rect, stride, raw.pixels())?;
            *cell = Some(version.generation);
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
        };
        let mut read_at = None;
        let payload = match &self.cache {
            Some(cache) => {
                let version = canvas.rect_version(PRIMARY, rect)?;
                let key = ImageKey {
                    surface_id: PRIMARY,
                    content: version.content,
                    rect,
                    encoding,
                };
                match self.older_image(cache, key) {
                    Some(older) => {
                        self.stats.older_images = self.stats.older_images.saturating_add(1);
                        self.stats.cache_hits = self.stats.cache_hits.saturating_add(1);
                        Payload {
                            generation: older.generation,
                            image: older.image,
                            current: false,
                        }
                    }
                    None => {
                        let (image, hit) = cache.get_or_encode(key, || read(&mut read_at))?;
                        if hit {
                            self.stats.cache_hits = self.stats.cache_hits.saturating_add(1);
                        }
                        Payload {
                            // A hit's pixels are those of `version`, unchanged up to its
                            // generation.
                            generation: read_at.unwrap_or(version.generation),
                            image,
                            current: true,
                        }
                    }
                }
            }
            None => {
                let made = read(&mut read_at)?;
                Payload {
                    generation: read_at.unwrap_or(0),
                    image: made.image,
                    current: true,
                }
            }
        };
        if payload.image.image_type == ImageType::LZ4 {
            self.stats.lz4_images = self.stats.lz4_images.saturating_add(1);
        } else if payload.image.image_type == ImageType::QUIC {
            self.stats.quic_images = self.stats.quic_images.saturating_add(1);
        }
        Some(payload)
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
