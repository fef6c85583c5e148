//! Device-model tests: requests as plain bytes, a recording sink, small guest memory.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::*;
use crate::guest::{DisplayControl, HeadRequest};
use crate::virtio::gpu::control::GpuControl;
use crate::virtio::gpu::protocol::{ctrl_type as t, FLAG_FENCE, MAX_MEM_ENTRIES};
use crate::virtio::gpu::testutil::*;

const MEM_SIZE: usize = 0x10_0000;
/// The whole response area a chain offers by default (room for any response).
const ROOM: usize = 2048;

struct Dev {
    dev: GpuDevice<RecordingSink>,
    sink: RecordingSink,
    mem: GuestMemoryMmap,
}

impl Dev {
    fn new() -> Self {
        Self::with(GpuConfig {
            width: 160,
            height: 100,
            ..GpuConfig::default()
        })
    }

    fn with(config: GpuConfig) -> Self {
        let sink = RecordingSink::default();
        let dev = GpuDevice::new(&config, sink.clone()).expect("device");
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).expect("memory");
        Self { dev, sink, mem }
    }

    fn send_with_room(&mut self, req: &[u8], room: usize) -> Vec<u8> {
        let mut reader = req;
        self.dev.process_control(&mut reader, room, &self.mem)
    }

    fn send(&mut self, req: &[u8]) -> u32 {
        resp_type(&self.send_with_room(req, ROOM))
    }

    fn ok(&mut self, req: &[u8]) {
        assert_eq!(
            self.send(req),
            t::RESP_OK_NODATA,
            "request {:#x}",
            resp_type(req)
        );
    }

    /// Resource `id` of `w`x`h` in format `format`, backed by one extent at `addr`.
    fn backed(&mut self, id: u32, format: u32, (w, h): (u32, u32), addr: u64) {
        self.ok(&create_2d(id, format, w, h));
        let (mut req, entries) = attach(id, &[(addr, w * h * 4)]);
        req.extend_from_slice(&entries);
        self.ok(&req);
    }

    /// Keeps working after an error: a fresh resource can be created and dropped.
    fn still_works(&mut self) {
        self.ok(&create_2d(0xffff, 2, 16, 16));
        self.ok(&unref(0xffff));
    }
}

#[test]
fn rejects_unknown_resource_id() {
    let mut d = Dev::new();
    let r = rect(0, 0, 16, 16);
    let (mut req, entries) = attach(99, &[(0, 4096)]);
    req.extend_from_slice(&entries);
    for bad in [
        transfer(99, r, 0),
        flush(99, r),
        set_scanout(0, 99, r),
        detach(99),
        unref(99),
        req,
    ] {
        assert_eq!(d.send(&bad), t::RESP_ERR_INVALID_RESOURCE_ID);
    }
    d.still_works();
}

#[test]
fn rejects_resource_id_zero_and_duplicate_create() {
    let mut d = Dev::new();
    assert_eq!(
        d.send(&create_2d(0, 2, 16, 16)),
        t::RESP_ERR_INVALID_RESOURCE_ID
    );
    d.ok(&create_2d(1, 2, 16, 16));
    assert_eq!(
        d.send(&create_2d(1, 2, 16, 16)),
        t::RESP_ERR_INVALID_RESOURCE_ID
    );
    d.still_works();
}

#[test]
fn rejects_unsupported_format_and_empty_size() {
    let mut d = Dev::new();
    assert_eq!(
        d.send(&create_2d(1, 99, 16, 16)),
        t::RESP_ERR_INVALID_PARAMETER
    );
    assert_eq!(
        d.send(&create_2d(1, 2, 0, 16)),
        t::RESP_ERR_INVALID_PARAMETER
    );
    for format in [1, 2, 3, 4, 67, 68, 121, 134] {
        d.ok(&create_2d(10 + format, format, 16, 16));
    }
    d.still_works();
}

#[test]
fn rejects_rect_outside_resource() {
    let mut d = Dev::new();
    d.backed(1, 2, (32, 32), 0);
    let outside = [
        rect(10, 10, 30, 30),
        rect(u32::MAX, 0, 2, 1),
        rect(0, 1, 32, 32),
    ];
    for r in outside {
        assert_eq!(
            d.send(&transfer(1, r, 0)),
            t::RESP_ERR_INVALID_PARAMETER,
            "{r:?}"
        );
        assert_eq!(d.send(&flush(1, r)), t::RESP_ERR_INVALID_PARAMETER, "{r:?}");
        assert_eq!(
            d.send(&set_scanout(0, 1, r)),
            t::RESP_ERR_INVALID_PARAMETER,
            "{r:?}"
        );
    }
    // QEMU's minimum scanout size.
    assert_eq!(
        d.send(&set_scanout(0, 1, rect(0, 0, 8, 32))),
        t::RESP_ERR_INVALID_PARAMETER
    );
    assert!(d.sink.take().is_empty());
    d.still_works();
}

#[test]
fn rejects_backing_outside_guest_memory() {
    let mut d = Dev::new();
    d.ok(&create_2d(1, 2, 16, 16));
    let beyond = [(0, 1024), (MEM_SIZE as u64 - 512, 1024)];
    let (mut req, entries) = attach(1, &beyond);
    req.extend_from_slice(&entries);
    assert_eq!(d.send(&req), t::RESP_ERR_UNSPEC);
    let (mut req, entries) = attach(1, &[(u64::MAX - 10, 100)]);
    req.extend_from_slice(&entries);
    assert_eq!(d.send(&req), t::RESP_ERR_UNSPEC);
    // Nothing was attached: a valid attach still works.
    let (mut req, entries) = attach(1, &[(0, 1024)]);
    req.extend_from_slice(&entries);
    d.ok(&req);
    assert_eq!(d.send(&req), t::RESP_ERR_UNSPEC, "second attach");
    d.still_works();
}

#[test]
fn rejects_too_many_entries_before_reading_them() {
    let mut d = Dev::new();
    d.ok(&create_2d(1, 2, 16, 16));
    let (mut req, _) = attach(1, &[]);
    req[28..32].copy_from_slice(&(MAX_MEM_ENTRIES + 1).to_le_bytes());
    assert_eq!(d.send(&req), t::RESP_ERR_UNSPEC);
    // A count within the limit but more entries than the chain carries: truncated.
    req[28..32].copy_from_slice(&MAX_MEM_ENTRIES.to_le_bytes());
    assert_eq!(d.send(&req), t::RESP_ERR_UNSPEC);
    d.still_works();
}

#[test]
fn rejects_resources_over_the_memory_budget() {
    let mut d = Dev::with(GpuConfig {
        max_hostmem: 64 * 1024,
        ..GpuConfig::default()
    });
    assert_eq!(
        d.send(&create_2d(1, 2, 200, 200)),
        t::RESP_ERR_OUT_OF_MEMORY
    );
    assert_eq!(
        d.send(&create_2d(1, 2, u32::MAX, u32::MAX)),
        t::RESP_ERR_OUT_OF_MEMORY
    );
    d.ok(&create_2d(1, 2, 100, 100)); // 40000 bytes
    assert_eq!(
        d.send(&create_2d(2, 2, 100, 100)),
        t::RESP_ERR_OUT_OF_MEMORY
    );
    d.ok(&unref(1));
    d.ok(&create_2d(2, 2, 100, 100));
}

#[test]
fn rejects_bad_scanout_id() {
    let mut d = Dev::new();
    d.backed(1, 2, (32, 32), 0);
    assert_eq!(
        d.send(&set_scanout(1, 1, rect(0, 0, 32, 32))),
        t::RESP_ERR_INVALID_SCANOUT_ID
    );
    assert_eq!(
        d.send(&set_scanout(u32::MAX, 0, rect(0, 0, 0, 0))),
        t::RESP_ERR_INVALID_SCANOUT_ID
    );
    assert_eq!(d.send(&get_edid(1)), t::RESP_ERR_INVALID_PARAMETER);
    d.still_works();
}

#[test]
fn rejects_truncated_request() {
    let mut d = Dev::new();
    let req = create_2d(1, 2, 16, 16);
    assert_eq!(d.send(&req[..30]), t::RESP_ERR_UNSPEC);
    // A fenced request whose body is cut still gets its fence back.
    let req = fenced(transfer(1, rect(0, 0, 1, 1), 0), 42);
    let resp = d.send_with_room(&req[..40], ROOM);
    assert_eq!(resp_type(&resp), t::RESP_ERR_UNSPEC);
    assert_eq!(u64::from_le_bytes(resp[8..16].try_into().unwrap()), 42);
    // Not even a header.
    let resp = d.send_with_room(&req[..10], ROOM);
    assert_eq!(resp.len(), 24);
    assert_eq!(resp_type(&resp), t::RESP_ERR_UNSPEC);
    assert_eq!(d.send(&[]), t::RESP_ERR_UNSPEC);
    d.still_works();
}

#[test]
fn rejects_unknown_command_type() {
    let mut d = Dev::new();
    for ty in [0x0000, 0x0108, 0x0200, 0x0209, 0x010c, 0x9999, u32::MAX] {
        let resp = d.send_with_room(&fenced(hdr(ty), 5), ROOM);
        assert_eq!(resp.len(), 24);
        assert_eq!(resp_type(&resp), t::RESP_ERR_UNSPEC, "type {ty:#x}");
        assert_eq!(
            u32::from_le_bytes(resp[4..8].try_into().unwrap()),
            FLAG_FENCE
        );
    }
    // Cursor commands belong on the cursor queue.
    let c = cursor(t::MOVE_CURSOR, 0, 1, 1, 0, (0, 0));
    assert_eq!(d.send(&c), t::RESP_ERR_UNSPEC);
    d.still_works();
}

#[test]
fn rejects_response_buffer_too_small_without_running_the_command() {
    let mut d = Dev::new();
    let resp = d.send_with_room(&display_info(), 24);
    assert_eq!(resp.len(), 24);
    assert_eq!(resp_type(&resp), t::RESP_ERR_UNSPEC);
    assert_eq!(
        resp_type(&d.send_with_room(&get_edid(0), 1000)),
        t::RESP_ERR_UNSPEC
    );
    // No room even for an error: nothing written, and the command did not run.
    assert!(d.send_with_room(&create_2d(1, 2, 16, 16), 10).is_empty());
    d.ok(&create_2d(1, 2, 16, 16));
    d.still_works();
}

#[test]
fn rejects_use_of_resources_without_backing() {
    let mut d = Dev::new();
    d.ok(&create_2d(1, 2, 32, 32));
    assert_eq!(
        d.send(&transfer(1, rect(0, 0, 32, 32), 0)),
        t::RESP_ERR_UNSPEC
    );
    assert_eq!(
        d.send(&set_scanout(0, 1, rect(0, 0, 32, 32))),
        t::RESP_ERR_UNSPEC
    );
    assert_eq!(d.send(&detach(1)), t::RESP_ERR_UNSPEC);
    // Flushing needs no backing (QEMU): it shows what the host already has.
    d.ok(&flush(1, rect(0, 0, 32, 32)));
    d.still_works();
}

#[test]
fn rejects_transfer_past_the_end_of_the_backing() {
    let mut d = Dev::new();
    d.backed(1, 2, (32, 32), 0);
    assert_eq!(
        d.send(&transfer(1, rect(0, 0, 32, 32), 4)),
        t::RESP_ERR_INVALID_PARAMETER
    );
    assert_eq!(
        d.send(&transfer(1, rect(0, 0, 1, 1), u64::MAX - 2)),
        t::RESP_ERR_INVALID_PARAMETER
    );
    d.ok(&transfer(1, rect(0, 31, 32, 1), 31 * 128));
    d.still_works();
}

#[test]
fn sink_failure_answers_unspec_and_recovers() {
    let mut d = Dev::new();
    d.backed(1, 2, (32, 32), 0);
    *d.sink.fail.lock().unwrap() = true;
    assert_eq!(
        d.send(&set_scanout(0, 1, rect(0, 0, 32, 32))),
        t::RESP_ERR_UNSPEC
    );
    *d.sink.fail.lock().unwrap() = false;
    // The failed surface creation is retried.
    d.ok(&set_scanout(0, 1, rect(0, 0, 32, 32)));
    assert_eq!(d.sink.take()[0], Call::SetPrimary(32, 32));
    d.ok(&flush(1, rect(0, 0, 32, 32)));
    d.still_works();
}

#[test]
fn flush_is_clipped_to_the_scanout_and_translated() {
    let mut d = Dev::new();
    let w = 32u32;
    for y in 0..w {
        for x in 0..w {
            d.mem
                .write_slice(&pattern(x, y, 0), GuestAddress(u64::from(y * w + x) * 4))
                .unwrap();
        }
    }
    d.backed(1, 2, (w, w), 0);
    d.ok(&transfer(1, rect(0, 0, w, w), 0));
    d.ok(&set_scanout(0, 1, rect(8, 8, 16, 16)));
    assert_eq!(d.sink.take()[0], Call::SetPrimary(16, 16));
    d.ok(&flush(1, rect(0, 0, 12, 12)));
    let mut want = Vec::new();
    for y in 8..12 {
        for x in 8..12 {
            want.extend_from_slice(&pattern(x, y, 0));
        }
    }
    let at = SinkRect {
        x: 0,
        y: 0,
        width: 4,
        height: 4,
    };
    assert_eq!(d.sink.take(), vec![Call::Update(at, want)]);
    // Outside the scanout: nothing to show.
    d.ok(&flush(1, rect(0, 0, 8, 8)));
    assert!(d.sink.take().is_empty());
    // Same size again: no new primary surface, just the pixels.
    d.ok(&set_scanout(0, 1, rect(0, 0, 16, 16)));
    assert!(matches!(d.sink.take().as_slice(), [Call::Update(..)]));
}

#[test]
fn rgba_formats_are_swizzled_to_bgra() {
    let mut d = Dev::new();
    d.mem
        .write_slice(&[0x11, 0x22, 0x33, 0x44].repeat(256), GuestAddress(0))
        .unwrap();
    for (id, format, want) in [
        (1, 67, [0x33, 0x22, 0x11, 0x44]),  // R8G8B8A8
        (2, 4, [0x44, 0x33, 0x22, 0x11]),   // X8R8G8B8
        (3, 121, [0x22, 0x33, 0x44, 0x11]), // A8B8G8R8
        (4, 2, [0x11, 0x22, 0x33, 0x44]),   // B8G8R8X8
    ] {
        d.backed(id, format, (16, 16), 0);
        d.ok(&transfer(id, rect(0, 0, 16, 16), 0));
        d.ok(&set_scanout(0, id, rect(0, 0, 16, 16)));
        let calls = d.sink.take();
        let Some(Call::Update(_, px)) = calls.last() else {
            panic!("no update: {calls:?}")
        };
        assert_eq!(&px[..4], &want, "format {format}");
    }
}

#[test]
fn cursor_update_move_and_hide_reach_the_sink() {
    let mut d = Dev::new();
    d.mem
        .write_slice(&[1, 2, 3, 0x80].repeat(64 * 64), GuestAddress(0))
        .unwrap();
    d.backed(7, 2, (64, 64), 0);
    d.ok(&transfer(7, rect(0, 0, 64, 64), 0));
    d.dev
        .process_cursor(&mut &cursor(t::UPDATE_CURSOR, 0, 100, -5, 7, (3, 4))[..]);
    d.dev
        .process_cursor(&mut &cursor(t::MOVE_CURSOR, 0, 200, 300, 7, (0, 0))[..]);
    d.dev
        .process_cursor(&mut &cursor(t::UPDATE_CURSOR, 0, 0, 0, 0, (0, 0))[..]);
    // Ignored: another scanout, a bad scanout, an unknown resource, a truncated command,
    // a control command on the cursor queue.
    d.dev
        .process_cursor(&mut &cursor(t::MOVE_CURSOR, 5, 1, 1, 0, (0, 0))[..]);
    d.dev
        .process_cursor(&mut &cursor(t::UPDATE_CURSOR, 0, 1, 1, 99, (0, 0))[..]);
    d.dev
        .process_cursor(&mut &cursor(t::UPDATE_CURSOR, 0, 1, 1, 7, (0, 0))[..20]);
    d.dev.process_cursor(&mut &display_info()[..]);
    let calls = d.sink.take();
    assert_eq!(calls.len(), 3, "{calls:?}");
    let Call::CursorSet {
        argb,
        width: 64,
        height: 64,
        hot: (3, 4),
        pos: (100, -5),
    } = &calls[0]
    else {
        panic!("not a cursor set: {:?}", calls[0]);
    };
    assert_eq!(
        &argb[..4],
        &[1, 2, 3, 0x80],
        "the X byte of format 2 is alpha"
    );
    assert_eq!(calls[1], Call::CursorMove(200, 300));
    assert_eq!(calls[2], Call::CursorHide);
}

#[test]
fn resize_request_raises_the_display_event_and_notifies_once() {
    let notifier = Arc::new(CountingNotifier::default());
    let d = Dev::new();
    let device = Arc::new(Mutex::new(d.dev));
    let control = GpuControl::new(device.clone(), notifier.clone());
    control.request_layout(&[HeadRequest {
        x: 0,
        y: 0,
        width: 1920,
        height: 1080,
    }]);
    assert_eq!(notifier.count.load(Ordering::SeqCst), 1);
    let mut dev = device.lock().unwrap();
    assert_eq!(dev.events_read(), EVENT_DISPLAY);
    let info = dev.process_control(&mut &display_info()[..], ROOM, &d.mem);
    assert_eq!(u32::from_le_bytes(info[32..36].try_into().unwrap()), 1920);
    assert_eq!(u32::from_le_bytes(info[36..40].try_into().unwrap()), 1080);
    let edid = dev.process_control(&mut &get_edid(0)[..], ROOM, &d.mem);
    assert_eq!(resp_type(&edid), t::RESP_OK_EDID);
    let dtd = &edid[32 + 54..];
    assert_eq!(u32::from(dtd[2]) | (u32::from(dtd[4] >> 4) << 8), 1920);
    dev.clear_events(EVENT_DISPLAY);
    assert_eq!(dev.events_read(), 0);
    drop(dev);
    // The same size again changes nothing; absurd sizes are clamped.
    control.request_display_size(1920, 1080);
    assert_eq!(notifier.count.load(Ordering::SeqCst), 1);
    control.request_display_size(0, 100_000);
    assert_eq!(notifier.count.load(Ordering::SeqCst), 2);
    let info = device
        .lock()
        .unwrap()
        .process_control(&mut &display_info()[..], ROOM, &d.mem);
    assert_eq!(
        u32::from_le_bytes(info[32..36].try_into().unwrap()),
        MIN_DISPLAY_SIZE
    );
    assert_eq!(
        u32::from_le_bytes(info[36..40].try_into().unwrap()),
        MAX_DISPLAY_SIZE
    );
    // 32x8192 has no detailed timing: GET_EDID fails, display info alone is used.
    let edid = device
        .lock()
        .unwrap()
        .process_control(&mut &get_edid(0)[..], ROOM, &d.mem);
    assert_eq!(resp_type(&edid), t::RESP_ERR_UNSPEC);
}

#[test]
fn other_scanouts_are_accepted_but_not_shown() {
    let mut d = Dev::with(GpuConfig {
        num_scanouts: 2,
        ..GpuConfig::default()
    });
    d.backed(1, 2, (32, 32), 0);
    d.ok(&set_scanout(1, 1, rect(0, 0, 32, 32)));
    d.ok(&flush(1, rect(0, 0, 32, 32)));
    d.ok(&set_scanout(1, 0, rect(0, 0, 0, 0)));
    assert!(d.sink.take().is_empty());
    let info = d.send_with_room(&display_info(), ROOM);
    assert_eq!(
        u32::from_le_bytes(info[24 + 24 + 16..24 + 24 + 20].try_into().unwrap()),
        0
    );
    assert_eq!(
        resp_type(&d.send_with_room(&get_edid(1), ROOM)),
        t::RESP_OK_EDID
    );
}

#[test]
fn edid_disabled_answers_unspec() {
    let mut d = Dev::with(GpuConfig {
        edid: false,
        ..GpuConfig::default()
    });
    assert_eq!(d.send(&get_edid(0)), t::RESP_ERR_UNSPEC);
}

#[test]
fn invalid_configs_are_refused() {
    for config in [
        GpuConfig {
            num_scanouts: 0,
            ..GpuConfig::default()
        },
        GpuConfig {
            num_scanouts: 17,
            ..GpuConfig::default()
        },
        GpuConfig {
            width: 8,
            ..GpuConfig::default()
        },
        GpuConfig {
            height: 9000,
            ..GpuConfig::default()
        },
    ] {
        assert!(
            GpuDevice::new(&config, RecordingSink::default()).is_err(),
            "{config:?}"
        );
    }
}
