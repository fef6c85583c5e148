//! Test helpers: a recording display sink, a counting notifier, request builders.

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::protocol::{ctrl_type as t, Rect, FLAG_FENCE};
use super::sink::{DisplaySink, SinkError, SinkRect};
use crate::virtio::ConfigChangeNotifier;

/// One call the device made on its sink; `Update` keeps the rect's pixels packed row by row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    SetPrimary(u32, u32),
    DisablePrimary,
    Update(SinkRect, Vec<u8>),
    CursorSet {
        argb: Vec<u8>,
        width: u32,
        height: u32,
        hot: (u32, u32),
        pos: (i32, i32),
    },
    CursorMove(i32, i32),
    CursorHide,
}

/// Records every call; clones share the record. `fail` makes every call fail.
#[derive(Clone, Default)]
pub struct RecordingSink {
    pub calls: Arc<Mutex<Vec<Call>>>,
    pub fail: Arc<Mutex<bool>>,
}

impl RecordingSink {
    pub fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().expect("test sink lock"))
    }

    fn record(&self, call: Call) -> Result<(), SinkError> {
        if *self.fail.lock().expect("test sink lock") {
            return Err(SinkError::Closed);
        }
        self.calls.lock().expect("test sink lock").push(call);
        Ok(())
    }
}

impl DisplaySink for RecordingSink {
    fn set_primary(&mut self, width: u32, height: u32) -> Result<(), SinkError> {
        self.record(Call::SetPrimary(width, height))
    }

    fn disable_primary(&mut self) -> Result<(), SinkError> {
        self.record(Call::DisablePrimary)
    }

    fn update(&mut self, rect: SinkRect, pixels: &[u8], stride: usize) -> Result<(), SinkError> {
        let row = rect.width as usize * 4;
        let mut packed = Vec::new();
        for y in 0..rect.height as usize {
            packed.extend_from_slice(&pixels[y * stride..y * stride + row]);
        }
        self.record(Call::Update(rect, packed))
    }

    fn cursor_set(
        &mut self,
        argb: &[u8],
        width: u32,
        height: u32,
        hot_x: u32,
        hot_y: u32,
        x: i32,
        y: i32,
    ) -> Result<(), SinkError> {
        assert_eq!(argb.len(), (width * height * 4) as usize);
        self.record(Call::CursorSet {
            argb: argb.to_vec(),
            width,
            height,
            hot: (hot_x, hot_y),
            pos: (x, y),
        })
    }

    fn cursor_move(&mut self, x: i32, y: i32) -> Result<(), SinkError> {
        self.record(Call::CursorMove(x, y))
    }

    fn cursor_hide(&mut self) -> Result<(), SinkError> {
        self.record(Call::CursorHide)
    }
}

/// Counts notifications; fails while `fail` is set (no backend channel yet).
#[derive(Default)]
pub struct CountingNotifier {
    pub count: AtomicUsize,
}

impl ConfigChangeNotifier for CountingNotifier {
    fn notify_config_change(&self) -> io::Result<()> {
        self.count.fetch_add(1, Ordering::SeqCst);
        Ok(())
    }
}

fn le(out: &mut Vec<u8>, values: &[u32]) {
    for v in values {
        out.extend_from_slice(&v.to_le_bytes());
    }
}

/// A 24-byte control header.
pub fn hdr(ctrl_type: u32) -> Vec<u8> {
    let mut b = Vec::new();
    le(&mut b, &[ctrl_type, 0]);
    b.extend_from_slice(&0u64.to_le_bytes());
    le(&mut b, &[0, 0]);
    b
}

/// The same request with FENCE set and `fence_id`.
pub fn fenced(mut req: Vec<u8>, fence_id: u64) -> Vec<u8> {
    req[4..8].copy_from_slice(&FLAG_FENCE.to_le_bytes());
    req[8..16].copy_from_slice(&fence_id.to_le_bytes());
    req[16..20].copy_from_slice(&3u32.to_le_bytes()); // ctx_id, echoed back
    req
}

fn rect_words(r: Rect) -> [u32; 4] {
    [r.x, r.y, r.width, r.height]
}

pub fn rect(x: u32, y: u32, width: u32, height: u32) -> Rect {
    Rect {
        x,
        y,
        width,
        height,
    }
}

pub fn display_info() -> Vec<u8> {
    hdr(t::GET_DISPLAY_INFO)
}

pub fn get_edid(scanout: u32) -> Vec<u8> {
    let mut b = hdr(t::GET_EDID);
    le(&mut b, &[scanout, 0]);
    b
}

pub fn create_2d(id: u32, format: u32, width: u32, height: u32) -> Vec<u8> {
    let mut b = hdr(t::RESOURCE_CREATE_2D);
    le(&mut b, &[id, format, width, height]);
    b
}

pub fn unref(id: u32) -> Vec<u8> {
    let mut b = hdr(t::RESOURCE_UNREF);
    le(&mut b, &[id, 0]);
    b
}

pub fn detach(id: u32) -> Vec<u8> {
    let mut b = hdr(t::RESOURCE_DETACH_BACKING);
    le(&mut b, &[id, 0]);
    b
}

/// ATTACH_BACKING as Linux sends it: the fixed part, then the entry array (separately, so
/// callers can put them in two descriptors).
pub fn attach(id: u32, entries: &[(u64, u32)]) -> (Vec<u8>, Vec<u8>) {
    let mut b = hdr(t::RESOURCE_ATTACH_BACKING);
    le(&mut b, &[id, entries.len() as u32]);
    let mut e = Vec::new();
    for &(addr, len) in entries {
        e.extend_from_slice(&addr.to_le_bytes());
        le(&mut e, &[len, 0]);
    }
    (b, e)
}

pub fn set_scanout(scanout: u32, id: u32, r: Rect) -> Vec<u8> {
    let mut b = hdr(t::SET_SCANOUT);
    le(&mut b, &rect_words(r));
    le(&mut b, &[scanout, id]);
    b
}

pub fn transfer(id: u32, r: Rect, offset: u64) -> Vec<u8> {
    let mut b = hdr(t::TRANSFER_TO_HOST_2D);
    le(&mut b, &rect_words(r));
    b.extend_from_slice(&offset.to_le_bytes());
    le(&mut b, &[id, 0]);
    b
}

pub fn flush(id: u32, r: Rect) -> Vec<u8> {
    let mut b = hdr(t::RESOURCE_FLUSH);
    le(&mut b, &rect_words(r));
    le(&mut b, &[id, 0]);
    b
}

/// UPDATE_CURSOR or MOVE_CURSOR.
pub fn cursor(ctrl_type: u32, scanout: u32, x: i32, y: i32, id: u32, hot: (u32, u32)) -> Vec<u8> {
    let mut b = hdr(ctrl_type);
    le(&mut b, &[scanout]);
    b.extend_from_slice(&x.to_le_bytes());
    b.extend_from_slice(&y.to_le_bytes());
    le(&mut b, &[0, id, hot.0, hot.1, 0]);
    b
}

/// The `type` field of a response.
pub fn resp_type(resp: &[u8]) -> u32 {
    u32::from_le_bytes(resp[0..4].try_into().expect("4 bytes"))
}

/// A test pixel, distinct per (x, y) and per frame.
pub fn pattern(x: u32, y: u32, frame: u8) -> [u8; 4] {
    [x as u8, y as u8, (x + y) as u8 ^ frame, 0xff ^ frame]
}
