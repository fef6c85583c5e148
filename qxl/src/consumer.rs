//! The consumer end (spice-server's worker side): pops and parses commands, releases guest
//! resources through the release ring, and takes device I/O requests.
//!
//! QEMU hw/display/qxl.c `interface_get_command`, `interface_req_cmd_notification`,
//! `interface_release_resource` and `qxl_push_free_res` are the behaviour matched here.

use std::collections::HashMap;
use std::mem::size_of;
use std::sync::Arc;
use std::time::Duration;

use zerocopy::little_endian::U64;

use crate::abi::{QxlCommand, COMMAND_RING_SIZE, QXL_CMD_NOP, RELEASE_RING_SIZE};
use crate::chunks::Mem;
use crate::error::{IoError, ParseError, QxlError};
use crate::io::{IoCall, IoRequest};
use crate::memslot::{QxlPhys, Span};
use crate::parse;
use crate::ring::{RingAt, RingReader, RingWriter};
use crate::types::{Command, CursorCmd, SurfaceCmd, SurfaceCmdKind};
use crate::Shared;

/// Releases gathered before the chain is published (QEMU `QXL_FREE_BUNCH_SIZE`).
pub const RELEASE_BUNCH: u32 = 32;
/// Most heads a monitors-config request may carry (`QXLRom`'s client config holds 64).
pub const MAX_HEADS: usize = 64;

pub(crate) fn command_ring(shared: &Shared) -> RingAt {
    RingAt {
        base: shared.region.layout().cmd_ring(),
        num_items: COMMAND_RING_SIZE,
        item_size: size_of::<QxlCommand>(),
    }
}
pub(crate) fn cursor_ring(shared: &Shared) -> RingAt {
    RingAt {
        base: shared.region.layout().cursor_ring(),
        num_items: COMMAND_RING_SIZE,
        item_size: size_of::<QxlCommand>(),
    }
}
pub(crate) fn release_ring(shared: &Shared) -> RingAt {
    RingAt {
        base: shared.region.layout().release_ring(),
        num_items: RELEASE_RING_SIZE,
        item_size: size_of::<U64>(),
    }
}

/// The release ring from the device side: the slot at `prod` is open and holds the head of
/// the chain being built; each released resource's `release_info` becomes the link.
#[derive(Debug)]
struct ReleaseChain {
    writer: RingWriter,
    /// Resources in the open chain.
    pending: u32,
    /// The last resource linked into the open chain (its `next` gets the following id).
    last: Option<Span>,
}

/// The display worker's end of the device. `Send`; lives on the worker thread.
#[derive(Debug)]
pub struct Consumer {
    shared: Arc<Shared>,
    cmd: RingReader,
    cursor: RingReader,
    release: ReleaseChain,
    /// Surface id → release info of its CREATE, held until DESTROY.
    held: HashMap<u32, Span>,
    /// A ring whose indices were inconsistent is ignored until `Reset` (QEMU stops the device
    /// on such a guest bug).
    cmd_broken: bool,
    cursor_broken: bool,
}

impl Consumer {
    pub(crate) fn new(shared: Arc<Shared>) -> Result<Consumer, QxlError> {
        let (cmd, cursor, release) = (
            command_ring(&shared),
            cursor_ring(&shared),
            release_ring(&shared),
        );
        for ring in [cmd, cursor, release] {
            ring.init(&shared.region, 0)?;
        }
        Ok(Consumer {
            cmd: RingReader::new(cmd, 0),
            cursor: RingReader::new(cursor, 0),
            release: ReleaseChain {
                writer: RingWriter::new(release, 0),
                pending: 0,
                last: None,
            },
            held: HashMap::new(),
            cmd_broken: false,
            cursor_broken: false,
            shared,
        })
    }

    /// The shared memory file, to map the region elsewhere.
    pub fn region_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.shared.region.fd()
    }

    pub fn n_surfaces(&self) -> u32 {
        self.shared.n_surfaces
    }

    fn mem(&self) -> Mem<'_> {
        Mem {
            region: &self.shared.region,
            slots: &self.shared.slots,
        }
    }

    fn has_items(&self, cursor: bool) -> bool {
        let (ring, broken) = if cursor {
            (&self.cursor, self.cursor_broken)
        } else {
            (&self.cmd, self.cmd_broken)
        };
        !broken && !matches!(ring.available(&self.shared.region), Ok(Ok(0)))
    }

    /// Something to do: a command, a cursor command or an I/O request.
    pub fn ready(&self) -> bool {
        self.has_items(false) || self.has_items(true) || self.shared.io.has_pending()
    }

    /// Waits up to `timeout` for work; true when there is some. Before sleeping it publishes
    /// pending releases and asks both rings for a notification, then re-checks, so a command
    /// pushed in between is never missed (QEMU `interface_req_cmd_notification`).
    pub fn wait(&mut self, timeout: Duration) -> bool {
        if self.ready() {
            return true;
        }
        self.flush_release();
        let seen = self.shared.to_consumer.seen();
        let region = &self.shared.region;
        let cmd_now = !self.cmd_broken && self.cmd.request_notification(region).unwrap_or(true);
        let cursor_now =
            !self.cursor_broken && self.cursor.request_notification(region).unwrap_or(true);
        if cmd_now || cursor_now || self.shared.io.has_pending() {
            return true;
        }
        self.shared.to_consumer.wait_past(seen, timeout);
        self.ready()
    }

    /// Pops one command from `ring`: `None` when empty or stopped.
    fn pop_raw(&mut self, cursor: bool) -> Option<Result<QxlCommand, ParseError>> {
        let shared = self.shared.clone();
        let region = &shared.region;
        let (ring, broken) = if cursor {
            (&mut self.cursor, &mut self.cursor_broken)
        } else {
            (&mut self.cmd, &mut self.cmd_broken)
        };
        if *broken {
            return None;
        }
        match ring.available(region) {
            Ok(Ok(0)) => return None,
            Ok(Ok(_)) => {}
            Ok(Err(bad)) => {
                *broken = true;
                return Some(Err(ParseError::RingIndexInvalid {
                    prod: bad.prod,
                    cons: bad.cons,
                    num_items: bad.num_items,
                }));
            }
            Err(_) => {
                *broken = true;
                return Some(Err(ParseError::RegionFault));
            }
        }
        let raw = match region.read_obj::<QxlCommand>(ring.front_offset()) {
            Ok(raw) => raw,
            Err(_) => {
                *broken = true;
                return Some(Err(ParseError::RegionFault));
            }
        };
        match ring.advance(region) {
            Ok(true) => shared.to_producer.ring(),
            Ok(false) => {}
            Err(_) => *broken = true,
        }
        Some(Ok(raw))
    }

    /// The release info at the start of the command's structure, if its address is readable.
    fn release_span(&self, raw: &QxlCommand) -> Option<Span> {
        if raw.ty.get() == QXL_CMD_NOP {
            return None;
        }
        self.shared
            .slots
            .resolve(QxlPhys(raw.data.get()), size_of::<U64>())
            .ok()
    }

    /// Pops and parses the next command, releasing its guest resource once it is copied out.
    pub fn pop_command(&mut self) -> Option<Result<Command, ParseError>> {
        let raw = match self.pop_raw(false)? {
            Ok(raw) => raw,
            Err(e) => return Some(Err(e)),
        };
        let release = self.release_span(&raw);
        let parsed = parse::command(self.mem(), raw, self.shared.n_surfaces);
        match (&parsed, release) {
            (
                Ok(Command::Surface(SurfaceCmd {
                    surface_id,
                    kind: SurfaceCmdKind::Create(_),
                })),
                Some(span),
            ) => {
                // QXL keeps a surface's memory valid until DESTROY; a second CREATE for the same
                // id (a guest bug) lets the older resource go.
                if let Some(old) = self.held.insert(*surface_id, span) {
                    self.release(old);
                }
            }
            (
                Ok(Command::Surface(SurfaceCmd {
                    surface_id,
                    kind: SurfaceCmdKind::Destroy,
                })),
                Some(span),
            ) => {
                if let Some(create) = self.held.remove(surface_id) {
                    self.release(create);
                }
                self.release(span);
            }
            (_, Some(span)) => self.release(span),
            (_, None) => {}
        }
        Some(parsed)
    }

    /// Pops and parses the next cursor command, releasing its guest resource.
    pub fn pop_cursor(&mut self) -> Option<Result<CursorCmd, ParseError>> {
        let raw = match self.pop_raw(true)? {
            Ok(raw) => raw,
            Err(e) => return Some(Err(e)),
        };
        let release = self.release_span(&raw);
        let parsed = parse::cursor_command(self.mem(), raw);
        if let Some(span) = release {
            self.release(span);
        }
        Some(parsed)
    }

    /// Links a resource into the open release chain (QEMU `interface_release_resource`).
    fn release(&mut self, info: Span) {
        let region = &self.shared.region;
        let Ok(id) = region.read_obj::<U64>(info.offset()) else {
            return;
        };
        if id.get() == 0 {
            // 0 ends a chain; a resource with id 0 cannot be handed back (guest bug).
            return;
        }
        let link_at = match self.release.last {
            None => self.release.writer.prod_offset(),
            Some(prev) => prev.offset(),
        };
        if region.write_obj(link_at, &id).is_err()
            || region.write_obj(info.offset(), &U64::new(0)).is_err()
        {
            return;
        }
        self.release.last = Some(info);
        self.release.pending = self.release.pending.saturating_add(1);
        if self.release.pending >= RELEASE_BUNCH {
            self.flush_release();
        }
    }

    /// Publishes the open release chain now (`QXL_IO_FLUSH_RELEASE`), unless the ring is full:
    /// the open slot needs a free successor (`prod − cons + 1 == N` means full, QEMU
    /// `qxl_push_free_res`); the chain then stays open and is published on a later call.
    pub fn flush_release(&mut self) {
        if self.release.pending == 0 {
            return;
        }
        let region = &self.shared.region;
        if !matches!(self.release.writer.room(region), Ok(Ok(room)) if room >= 2) {
            return;
        }
        let notify = self.release.writer.advance(region);
        self.release.pending = 0;
        self.release.last = None;
        // The new open slot starts empty; the producer reads only slots below `prod`.
        let _ = region.write_obj(self.release.writer.prod_offset(), &U64::new(0));
        if matches!(notify, Ok(true)) {
            self.shared.to_producer.ring();
        }
    }

    /// Resources taken and not yet published.
    pub fn pending_releases(&self) -> u32 {
        self.release.pending
    }

    /// Takes the pending I/O request, if any. Requests other than `Reset` wait until the command
    /// ring is drained (they are ordered after earlier commands). `FlushRelease` is handled
    /// here; invalid requests are answered with an error here. Both then return `None`.
    pub fn take_io(&mut self) -> Option<IoCall> {
        let drained = !self.has_items(false);
        let (id, request) = self
            .shared
            .io
            .take_if(|r| drained || matches!(r, IoRequest::Reset))?;
        let call = IoCall::new(request, id, self.shared.clone());
        match &call.request {
            IoRequest::FlushRelease => {
                self.flush_release();
                call.complete(Ok(()));
                return None;
            }
            IoRequest::Reset => {
                if let Err(e) = self.reset() {
                    call.complete(Err(IoError::Rejected(e.to_string())));
                    return None;
                }
            }
            other => {
                if let Err(reason) = self.check_request(other) {
                    call.complete(Err(IoError::Rejected(reason)));
                    return None;
                }
            }
        }
        Some(call)
    }

    fn check_request(&self, request: &IoRequest) -> Result<(), String> {
        match request {
            IoRequest::CreatePrimary(create) => {
                // The primary has no guest memory here; check it as if rows were packed, each
                // padded to the 4-byte stride alignment QEMU requires.
                let bpp = parse::surface_bpp(create.format).map_err(|e| e.to_string())?;
                let packed = u64::from(create.width)
                    .saturating_mul(u64::from(bpp))
                    .div_ceil(8);
                let stride = i64::try_from(packed.next_multiple_of(4)).unwrap_or(i64::MAX);
                let row = parse::check_surface(create.format, create.width, create.height, stride)
                    .map_err(|e| e.to_string())?;
                if let Some(initial) = &create.initial {
                    let need = row.saturating_mul(u64::from(create.height));
                    if u64::try_from(initial.len()).ok() != Some(need) {
                        return Err(format!(
                            "initial data is {} bytes, not {need}",
                            initial.len()
                        ));
                    }
                }
                Ok(())
            }
            IoRequest::UpdateArea { surface_id, area } => {
                if *surface_id >= self.shared.n_surfaces
                    || area.top > area.bottom
                    || area.left > area.right
                {
                    return Err(format!(
                        "invalid update area {area:?} of surface {surface_id}"
                    ));
                }
                Ok(())
            }
            IoRequest::MonitorsConfig(heads) if heads.len() > MAX_HEADS => {
                Err(format!("{} heads, at most {MAX_HEADS}", heads.len()))
            }
            _ => Ok(()),
        }
    }

    /// `QXL_IO_RESET`: fresh rings, no held or pending resources (QEMU `qxl_reset_state`).
    fn reset(&mut self) -> Result<(), QxlError> {
        let region = &self.shared.region;
        for ring in [self.cmd.at, self.cursor.at, self.release.writer.at] {
            ring.init(region, 0)?;
        }
        self.cmd = RingReader::new(self.cmd.at, 0);
        self.cursor = RingReader::new(self.cursor.at, 0);
        self.release = ReleaseChain {
            writer: RingWriter::new(self.release.writer.at, 0),
            pending: 0,
            last: None,
        };
        self.held.clear();
        self.cmd_broken = false;
        self.cursor_broken = false;
        Ok(())
    }
}
